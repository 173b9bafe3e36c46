"""Session state the plugin sets before the suite's modules are imported (no imports here).

Example:
    >>> from unijax_conformance import _state
    >>> sorted(_state.PROFILES)
    ['ci', 'thorough']
"""

from __future__ import annotations

from typing import Any

#: Per profile: hypothesis examples per check, whether the seed is fixed, whether a failing
#: example is shrunk, and the share of spec rows (by a stable hash of the row's name) whose
#: derivatives are checked beyond first order. The ci numbers keep numpy, autograd, jax and
#: array_api_strict within about 5 minutes on two cores; thorough draws many examples,
#: shrinks failures and checks every row to its ``grad_order``.
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 2, "second_order_share": 0.2, "seeded": True, "shrink": False},
    "thorough": {"max_examples": 40, "second_order_share": 1.0, "seeded": False,
                 "shrink": True},
}

#: The backend every other backend is compared with (values and derivatives).
REFERENCE = "numpy"

#: The active profile (set by ``plugin.pytest_configure``).
profile = "ci"
