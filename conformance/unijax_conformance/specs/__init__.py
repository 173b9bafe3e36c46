"""The operation table: one :class:`OpSpec` row per Array API function the engine knows.

Rows live in one module per family (``elementwise``, ``manipulation``, ...). The
conformance suite and unijax's own rule tests both read :func:`all_specs`, so a function
is specified once: how to call it, which inputs lie in its domain, and what to check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "OpSpec", "all_specs"]

FAMILIES = (
    "elementwise",
    "manipulation",
    "indexing",
    "creation",
    "reductions",
    "searching",
    "linalg",
    "fft",
)


@dataclass(frozen=True)
class OpSpec:
    """How to check one Array API function.

    Attributes:
        name: Qualified name in the standard (``"sin"``, ``"linalg.solve"``); a row id
            may add a suffix after ``"#"`` (``"sum#axis"``) for a second call pattern.
        fn: ``fn(xp, *arrays)`` calls the function through namespace ``xp``. It returns an
            array, or a tuple of arrays whose values are well defined (return ``v**2``
            rather than an eigenvector whose sign is arbitrary).
        arrays: ``arrays(xps)`` returns a hypothesis strategy of a tuple of float64 NumPy
            arrays inside the function's domain; ``xps`` is
            ``hypothesis.extra.array_api.make_strategies_namespace`` over NumPy.
        grad: Whether gradients are checked (finite differences, JAX, both orders).
        grad_order: Highest derivative order checked.
        vmap: Whether ``vmap`` is checked against a Python loop.
        jit: Whether ``jit`` is checked against eager evaluation.
        rtol: Relative tolerance for values at float64.
        atol: Absolute tolerance for values at float64.
        grad_rtol: Relative tolerance for derivatives against finite differences.
        reason: Why a check is switched off (shown in reports).
    """

    name: str
    fn: Callable[..., Any]
    arrays: Callable[[Any], Any]
    grad: bool = True
    grad_order: int = 2
    vmap: bool = True
    jit: bool = True
    rtol: float = 1e-10
    atol: float = 1e-12
    grad_rtol: float = 1e-5
    reason: str = ""

    @property
    def function(self) -> str:
        """The standard's function name, without a row suffix."""
        return self.name.partition("#")[0]


def all_specs() -> list[OpSpec]:
    """Every row of every family module that exists."""
    specs: list[OpSpec] = []
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"{__name__}.{family}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{family}":
                raise
            continue
        specs.extend(module.SPECS)
    return specs
