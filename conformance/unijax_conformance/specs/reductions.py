"""OpSpec rows for the statistical and utility functions of the Array API standard.

``sum``, ``prod``, ``mean``, ``max``, ``min``, ``var``, ``std``, ``cumulative_sum``,
``cumulative_prod``, ``all``, ``any`` and ``diff``, each with its default call and the
keyword patterns that change its rules (``axis`` as an int, a negative int or a tuple,
``keepdims``, ``correction``, ``include_initial``, ``n``, ``prepend``/``append``).

Domains: ``max``/``min`` draw distinct values from a lattice, so no two elements tie
(where the derivative jumps); ``std``/``var`` draw distinct values and reduce over at
least two of them, so the spread is never zero (where ``std`` has a kink). ``prod`` and
``cumulative_prod`` draw from a lattice that contains zero, which exercises their exact
derivatives at zeros: both are polynomials, so finite differences stay exact there.
Rows whose result is boolean take float arrays and compare inside ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["SPECS"]

_MAX_DIMS = 3
_MAX_SIDE = 4

ANY: dict[str, Any] = {"min_value": -3.0, "max_value": 3.0, "allow_nan": False,
                       "allow_infinity": False}
# Multiples of 1/4 in [-1.5, 1.5]: zeros and repeats appear often, products stay small.
SMALL_GRID = st.integers(-6, 6).map(lambda k: k / 4)
# Multiples of 1/8 in [-12.5, 12.5], drawn without repeats: no ties, spreads of at least
# 1/8, and enough values for 4 x 4 x 4 distinct elements.
GRID = st.integers(-100, 100).map(lambda k: k / 8)


def arrays(elements: Any, *, min_dims: int = 1, min_side: int = 1, max_dims: int = _MAX_DIMS,
           unique: bool = False) -> Callable[[Any], Any]:
    """A strategy factory for one float64 array."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=_MAX_SIDE)
        return st.tuples(xps.arrays("float64", shapes, elements=elements, unique=unique))

    return strategy


def vectors(elements: Any, *, min_side: int = 1, unique: bool = False) -> Callable[[Any], Any]:
    """A strategy factory for one float64 vector (for functions whose axis may be omitted)."""
    return arrays(elements, max_dims=1, min_side=min_side, unique=unique)


def with_neighbours(elements: Any) -> Callable[[Any], Any]:
    """``(x, prepend, append)``: three arrays equal in shape but for the last axis."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=1, max_dims=_MAX_DIMS, max_side=_MAX_SIDE)

        def three(shape: tuple[int, ...]) -> Any:
            lead = shape[:-1]
            return st.tuples(
                xps.arrays("float64", shape, elements=elements),
                st.integers(1, 2).flatmap(
                    lambda k: xps.arrays("float64", (*lead, k), elements=elements)),
                st.integers(1, 2).flatmap(
                    lambda k: xps.arrays("float64", (*lead, k), elements=elements)),
            )

        return shapes.flatmap(three)

    return strategy


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    """One row; ``name`` may carry a ``#suffix`` for a second call pattern."""
    return OpSpec(name, fn, strategy, **options)


_BOOLEAN = "boolean result: nothing to differentiate"

SPECS: list[OpSpec] = [
    # --- sum --------------------------------------------------------------------------
    row("sum", lambda xp, x: xp.sum(x), arrays(ANY)),
    row("sum#axis", lambda xp, x: xp.sum(x, axis=-1, keepdims=True), arrays(ANY)),
    row("sum#tuple", lambda xp, x: xp.sum(x, axis=(0, -1)), arrays(ANY, min_dims=2)),
    row("sum#dtype", lambda xp, x: xp.sum(x, axis=0, dtype=xp.float64), arrays(ANY)),
    # --- prod -------------------------------------------------------------------------
    row("prod", lambda xp, x: xp.prod(x), arrays(SMALL_GRID)),
    row("prod#axis", lambda xp, x: xp.prod(x, axis=-1, keepdims=True), arrays(SMALL_GRID)),
    row("prod#tuple", lambda xp, x: xp.prod(x, axis=(-1, 0)), arrays(SMALL_GRID, min_dims=2)),
    # --- mean -------------------------------------------------------------------------
    row("mean", lambda xp, x: xp.mean(x), arrays(ANY)),
    row("mean#axis", lambda xp, x: xp.mean(x, axis=(0,), keepdims=True), arrays(ANY)),
    # --- max / min (distinct values: no ties) ------------------------------------------
    row("max", lambda xp, x: xp.max(x), arrays(GRID, unique=True)),
    row("max#axis", lambda xp, x: xp.max(x, axis=-1), arrays(GRID, unique=True)),
    row("min", lambda xp, x: xp.min(x), arrays(GRID, unique=True)),
    row("min#keepdims", lambda xp, x: xp.min(x, axis=(0, -1), keepdims=True),
        arrays(GRID, min_dims=2, unique=True)),
    # --- var / std (distinct values over at least two elements: non-zero spread) -------
    row("var", lambda xp, x: xp.var(x), arrays(GRID, min_side=2, unique=True)),
    row("var#correction", lambda xp, x: xp.var(x, axis=-1, correction=1, keepdims=True),
        arrays(GRID, min_side=2, unique=True)),
    row("std", lambda xp, x: xp.std(x), arrays(GRID, min_side=2, unique=True)),
    row("std#axis", lambda xp, x: xp.std(x, axis=(0, -1), correction=1.0),
        arrays(GRID, min_dims=2, min_side=2, unique=True)),
    # --- cumulative -------------------------------------------------------------------
    row("cumulative_sum", lambda xp, x: xp.cumulative_sum(x), vectors(ANY)),
    row("cumulative_sum#axis", lambda xp, x: xp.cumulative_sum(x, axis=-1), arrays(ANY)),
    row("cumulative_sum#initial",
        lambda xp, x: xp.cumulative_sum(x, axis=0, include_initial=True), arrays(ANY)),
    row("cumulative_prod", lambda xp, x: xp.cumulative_prod(x), vectors(SMALL_GRID)),
    row("cumulative_prod#axis", lambda xp, x: xp.cumulative_prod(x, axis=-1),
        arrays(SMALL_GRID)),
    row("cumulative_prod#initial",
        lambda xp, x: xp.cumulative_prod(x, axis=0, include_initial=True), arrays(SMALL_GRID)),
    # --- all / any --------------------------------------------------------------------
    row("all", lambda xp, x: xp.all(x > -1.0), arrays(ANY), grad=False, reason=_BOOLEAN),
    row("all#axis", lambda xp, x: xp.all(x > 0.0, axis=-1, keepdims=True), arrays(ANY),
        grad=False, reason=_BOOLEAN),
    row("any", lambda xp, x: xp.any(x > 1.0), arrays(ANY), grad=False, reason=_BOOLEAN),
    row("any#axis", lambda xp, x: xp.any(x < 0.0, axis=(0,)), arrays(ANY), grad=False,
        reason=_BOOLEAN),
    # --- diff -------------------------------------------------------------------------
    row("diff", lambda xp, x: xp.diff(x), arrays(ANY)),
    row("diff#n", lambda xp, x: xp.diff(x, axis=0, n=2), arrays(ANY, min_side=2)),
    row("diff#prepend",
        lambda xp, x, before, after: xp.diff(x, n=2, prepend=before, append=after),
        with_neighbours(ANY)),
]
