"""OpSpec rows for the searching, sorting and set functions of the Array API standard.

``argmax``, ``argmin``, ``count_nonzero``, ``nonzero``, ``searchsorted``, ``where``,
``argsort``, ``sort`` and the four ``unique_*`` functions.

Only ``where`` (in ``x1`` and ``x2``) and ``sort`` are differentiable. ``sort`` rows draw
distinct values so no two elements tie (where the derivative depends on the direction);
``where`` rows draw conditions that stay a quarter away from zero, so finite differences
never flip them. Integer-valued lattices make ties and zeros common in the rows without
derivatives, where they test stability (``argsort``), ``side=`` (``searchsorted``) and
counting. ``nonzero`` and the ``unique_*`` functions have data-dependent result shapes,
so they are checked eagerly only (no ``vmap``, no ``jit``).
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
SMALL_GRID = st.integers(-4, 4).map(lambda k: k / 2)  # repeats and zeros are common
GRID = st.integers(-100, 100).map(lambda k: k / 8)  # drawn unique: no ties
OFF_ZERO = st.integers(-8, 7).map(lambda k: k / 4 + 0.125)  # at least 1/8 from zero


def arrays(elements: Any, *, min_dims: int = 1, max_dims: int = _MAX_DIMS,
           unique: bool = False) -> Callable[[Any], Any]:
    """A strategy factory for one float64 array."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=_MAX_SIDE)
        return st.tuples(xps.arrays("float64", shapes, elements=elements, unique=unique))

    return strategy


def broadcastable(*elements: Any) -> Callable[[Any], Any]:
    """A strategy factory for float64 arrays of mutually broadcastable shapes."""

    def strategy(xps: Any) -> Any:
        shapes = xps.mutually_broadcastable_shapes(len(elements), min_dims=1,
                                                   max_dims=_MAX_DIMS, max_side=_MAX_SIDE)
        return shapes.flatmap(lambda bs: st.tuples(*(
            xps.arrays("float64", shape, elements=el)
            for shape, el in zip(bs.input_shapes, elements, strict=True))))

    return strategy


def sorted_and_queries(elements: Any) -> Callable[[Any], Any]:
    """``(x1, x2)``: a vector to search (sorted inside ``fn``) and an array of queries."""

    def strategy(xps: Any) -> Any:
        return st.tuples(
            xps.arrays("float64", xps.array_shapes(min_dims=1, max_dims=1, max_side=6),
                       elements=elements),
            xps.arrays("float64", xps.array_shapes(min_dims=1, max_dims=2, max_side=_MAX_SIDE),
                       elements=elements),
        )

    return strategy


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    """One row; ``name`` may carry a ``#suffix`` for a second call pattern."""
    return OpSpec(name, fn, strategy, **options)


_INDEX = "integer result: nothing to differentiate"
_DATA_SHAPE = ("integer result whose shape depends on the input's values: eager only "
               "(vmap and jit raise ConcretizationError)")


def _eager_only(name: str, fn: Callable[..., Any]) -> OpSpec:
    return row(name, fn, arrays(SMALL_GRID), grad=False, vmap=False, jit=False,
               reason=_DATA_SHAPE)


SPECS: list[OpSpec] = [
    # --- argmax / argmin --------------------------------------------------------------
    row("argmax", lambda xp, x: xp.argmax(x), arrays(SMALL_GRID), grad=False, reason=_INDEX),
    row("argmax#axis", lambda xp, x: xp.argmax(x, axis=-1, keepdims=True), arrays(SMALL_GRID),
        grad=False, reason=_INDEX),
    row("argmin", lambda xp, x: xp.argmin(x, keepdims=True), arrays(SMALL_GRID), grad=False,
        reason=_INDEX),
    row("argmin#axis", lambda xp, x: xp.argmin(x, axis=0), arrays(SMALL_GRID), grad=False,
        reason=_INDEX),
    # --- count_nonzero ----------------------------------------------------------------
    row("count_nonzero", lambda xp, x: xp.count_nonzero(x), arrays(SMALL_GRID), grad=False,
        reason=_INDEX),
    row("count_nonzero#axis", lambda xp, x: xp.count_nonzero(x, axis=(0, -1), keepdims=True),
        arrays(SMALL_GRID, min_dims=2), grad=False, reason=_INDEX),
    # --- searchsorted -----------------------------------------------------------------
    row("searchsorted", lambda xp, x1, x2: xp.searchsorted(xp.sort(x1), x2),
        sorted_and_queries(SMALL_GRID), grad=False, reason=_INDEX),
    row("searchsorted#right", lambda xp, x1, x2: xp.searchsorted(xp.sort(x1), x2, side="right"),
        sorted_and_queries(SMALL_GRID), grad=False, reason=_INDEX),
    row("searchsorted#sorter",
        lambda xp, x1, x2: xp.searchsorted(x1, x2, sorter=xp.argsort(x1)),
        sorted_and_queries(SMALL_GRID), grad=False, reason=_INDEX),
    # --- where ------------------------------------------------------------------------
    row("where", lambda xp, c, x1, x2: xp.where(c > 0, x1, x2),
        broadcastable(OFF_ZERO, ANY, ANY)),
    row("where#scalar", lambda xp, x: xp.where(x > 0, x, 0.5) + xp.where(x < 0, 2.0, x * x),
        arrays(OFF_ZERO)),
    # --- argsort / sort ---------------------------------------------------------------
    row("argsort", lambda xp, x: xp.argsort(x), arrays(SMALL_GRID), grad=False, reason=_INDEX),
    row("argsort#descending", lambda xp, x: xp.argsort(x, axis=0, descending=True),
        arrays(SMALL_GRID), grad=False, reason=_INDEX),
    row("sort", lambda xp, x: xp.sort(x), arrays(GRID, unique=True)),
    row("sort#descending", lambda xp, x: xp.sort(x, axis=0, descending=True),
        arrays(GRID, unique=True)),
    row("sort#ties", lambda xp, x: xp.sort(x, axis=-1, stable=False), arrays(SMALL_GRID),
        grad=False, reason="ties: the derivative depends on the direction"),
    # --- data-dependent shapes --------------------------------------------------------
    _eager_only("nonzero", lambda xp, x: xp.nonzero(x)),
    _eager_only("unique_all", lambda xp, x: tuple(xp.unique_all(x))),
    _eager_only("unique_counts", lambda xp, x: tuple(xp.unique_counts(x))),
    _eager_only("unique_inverse", lambda xp, x: tuple(xp.unique_inverse(x))),
    _eager_only("unique_values", lambda xp, x: xp.unique_values(x)),
]
