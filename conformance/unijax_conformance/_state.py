"""Session state the plugin sets before the suite's modules are imported (no imports here).

Example:
    >>> from unijax_conformance import _state
    >>> sorted(_state.PROFILES)
    ['ci', 'thorough']
"""

from __future__ import annotations

from typing import Any

#: Per profile: hypothesis examples per check, the share of spec rows (by a stable hash of
#: the row's name) whose derivatives are checked beyond first order, the AD modes checked
#: against finite differences, whether the seed is fixed and whether a failing example is
#: shrunk. The ci numbers keep numpy, autograd, jax and array_api_strict within about 5
#: minutes on two cores: finite differences check reverse mode only, because every row's
#: forward mode is checked against its reverse mode (``<vjp(ct), t> == <ct, jvp(t)>``) and
#: against the engine. Where a backend runs a transform natively (JAX: all; Autograd: grad),
#: the per-row checks of that transform run on ``native_share`` of the rows (a stable hash
#: of row and backend picks them): native transforms compile a program per row and shape,
#: which costs ten times the engine's checks (JAX: about a second a row), they check the
#: library's own derivatives rather than unijax's, and the engine backends check every row.
#: The other rows are reported as skipped, with the reason; a row listed as an expected
#: failure always runs, so that an entry that starts passing fails the run.
#: thorough draws many examples, checks both modes at every row's ``grad_order``, every row
#: on every backend, and shrinks failures.
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 2, "second_order_share": 0.1, "fd_modes": ("rev",),
           "native_share": 0.15, "seeded": True, "shrink": False},
    "thorough": {"max_examples": 40, "second_order_share": 1.0, "fd_modes": ("fwd", "rev"),
                 "native_share": 1.0, "seeded": False, "shrink": True},
}

#: The backend every other backend is compared with (values and derivatives).
REFERENCE = "numpy"

#: The active profile (set by ``plugin.pytest_configure``).
profile = "ci"
