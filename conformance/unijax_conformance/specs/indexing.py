"""OpSpec rows for indexing: ``x[key]``, ``x[key] = value``, ``take`` and ``take_along_axis``.

Keys cover every kind the standard names (integers, slices with negative steps,
``...``, ``None``, integer arrays, boolean masks) plus NumPy's placement of advanced
indices (adjacent index arrays stay in place, separated ones move to the front). Index
arrays and masks are built inside ``fn`` from the input's shape, so they are constants
(the inputs are the float arrays being differentiated) and repeat entries on purpose:
the gradient of a gather must accumulate over repeats.

``x[key] = value`` is written functionally: on JAX with ``x.at[key].set(value)``, elsewhere
on a copy, so the reference namespaces never see their inputs modified.

The rows in :data:`BEYOND_STANDARD` use NumPy's indexing beyond the 2024.12 standard
(index arrays mixed with slices, ``...`` or ``None``, fewer indices than axes, a mask that
is not the sole index, ``None`` or index arrays in ``__setitem__``). unijax's traced
indexing accepts them on every backend, but some backends' own arrays (array-api-strict)
refuse them, so their reference values must come from NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["BEYOND_STANDARD", "SPECS"]

ANY: dict[str, Any] = {"min_value": -3.0, "max_value": 3.0, "allow_nan": False,
                       "allow_infinity": False}


def arrays(*, min_dims: int = 1, max_dims: int = 3, min_side: int = 1,
           count: int = 1) -> Callable[[Any], Any]:
    """``count`` float64 arrays of one random shape."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=4)
        return shapes.flatmap(lambda s: st.tuples(
            *(xps.arrays("float64", s, elements=ANY) for _ in range(count))))

    return strategy


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    return OpSpec(name, fn, strategy, **options)


def updated(xp: Any, x: Any, key: Any, value: Any) -> Any:
    """``x`` with ``x[key] = value``, leaving ``x`` itself unchanged."""
    if hasattr(x, "at"):
        return x.at[key].set(value)
    y = xp.asarray(x, copy=True)
    y[key] = value
    return y


def picks(xp: Any, n: int) -> Any:
    """Indices into an axis of size ``n`` with repeats and a negative entry."""
    return xp.asarray([0, n - 1, 0, -1])


def column(xp: Any, n: int) -> Any:
    return xp.asarray([[0], [n - 1], [n // 2]])


def distinct(xp: Any, n: int) -> Any:
    """Distinct indices (a setitem with repeats has no unique gradient for the value)."""
    return xp.asarray(list(range(n - 1, -1, -2)))


def mask(xp: Any, shape: tuple[int, ...]) -> Any:
    total = 1
    for d in shape:
        total *= d
    return xp.reshape(xp.asarray([i % 3 != 1 for i in range(total)]), shape)


def along(xp: Any, x: Any, axis: int) -> Any:
    """Indices for ``take_along_axis``: the shape of ``x`` but 3 long on ``axis``."""
    shape = list(x.shape)
    n = shape[axis]
    shape[axis] = 3
    size = 1
    for d in shape:
        size *= d
    return xp.reshape(xp.asarray([(7 * i + 2) % n for i in range(size)]), tuple(shape))


SPECS: list[OpSpec] = [
    # --- basic indexing ---
    row("__getitem__#int", lambda xp, x: x[0, ...], arrays()),
    row("__getitem__#negative", lambda xp, x: x[-1, ...], arrays()),
    row("__getitem__#ints", lambda xp, x: x[1, -1, ...], arrays(min_dims=2, min_side=2)),
    row("__getitem__#slice", lambda xp, x: x[1:, ...], arrays()),
    row("__getitem__#step", lambda xp, x: x[::2, 1:, ...], arrays(min_dims=2)),
    row("__getitem__#reverse", lambda xp, x: x[::-1, ...], arrays()),
    row("__getitem__#negative_step", lambda xp, x: x[..., -1:0:-2], arrays()),
    row("__getitem__#ellipsis", lambda xp, x: x[..., 0], arrays()),
    row("__getitem__#newaxis", lambda xp, x: x[None, ..., None, :], arrays()),
    row("__getitem__#scalar", lambda xp, x: x[(0,) * x.ndim], arrays()),
    # --- integer arrays ---
    row("__getitem__#array", lambda xp, x: x[picks(xp, x.shape[0])], arrays()),
    row("__getitem__#arrays",
        lambda xp, x: x[column(xp, x.shape[0]), picks(xp, x.shape[1])], arrays(min_dims=2)),
    row("__getitem__#slice_array",
        lambda xp, x: x[1:, picks(xp, x.shape[1])], arrays(min_dims=2)),
    row("__getitem__#separated",
        lambda xp, x: x[picks(xp, x.shape[0]), :, picks(xp, x.shape[2])], arrays(min_dims=3)),
    row("__getitem__#int_array",
        lambda xp, x: x[0, :, picks(xp, x.shape[2])], arrays(min_dims=3)),
    row("__getitem__#ellipsis_array",
        lambda xp, x: x[..., picks(xp, x.shape[-1])], arrays()),
    row("__getitem__#newaxis_array",
        lambda xp, x: x[None, picks(xp, x.shape[0])], arrays()),
    # --- boolean masks (constant masks, so the shape is known under vmap and jit too) ---
    row("__getitem__#mask", lambda xp, x: x[mask(xp, x.shape)], arrays()),
    row("__getitem__#mask_axis",
        lambda xp, x: x[:, mask(xp, x.shape[1:2])], arrays(min_dims=2)),
    # --- x[key] = value ---
    row("__setitem__#int", lambda xp, x: updated(xp, x, (0, ...), 2.5), arrays()),
    row("__setitem__#slice", lambda xp, x: updated(xp, x, (slice(1, None), ...), 2.0 * x[:-1, ...]),
        arrays()),
    row("__setitem__#reverse",
        lambda xp, x, v: updated(xp, x, (..., slice(None, None, -1)), v * v), arrays(count=2)),
    row("__setitem__#newaxis",
        lambda xp, x, v: updated(xp, x, (None, 0), v[0] ** 2), arrays(count=2)),
    row("__setitem__#array",
        lambda xp, x: updated(xp, x, distinct(xp, x.shape[0]),
                              x[distinct(xp, x.shape[0])] ** 2), arrays()),
    row("__setitem__#separated",
        lambda xp, x, v: updated(xp, x, (distinct(xp, x.shape[0]), slice(None), 0), 3.0 * v[
            distinct(xp, x.shape[0]), :, 1 % x.shape[2]]), arrays(min_dims=3, count=2)),
    row("__setitem__#mask", lambda xp, x: updated(xp, x, mask(xp, x.shape), 0.5), arrays()),
    row("__setitem__#mask_values",
        lambda xp, x: updated(xp, x, mask(xp, x.shape), x[mask(xp, x.shape)] ** 2), arrays()),
    # --- take / take_along_axis ---
    row("take", lambda xp, x: xp.take(x, picks(xp, x.shape[0]), axis=0), arrays()),
    row("take#axis", lambda xp, x: xp.take(x, picks(xp, x.shape[-1]), axis=-1), arrays()),
    row("take#vector", lambda xp, x: xp.take(x, picks(xp, x.shape[0])), arrays(max_dims=1)),
    row("take_along_axis", lambda xp, x: xp.take_along_axis(x, along(xp, x, -1)), arrays()),
    row("take_along_axis#axis",
        lambda xp, x: xp.take_along_axis(x, along(xp, x, 0), axis=0), arrays(min_dims=2)),
]

BEYOND_STANDARD: frozenset[str] = frozenset({
    "__getitem__#array", "__getitem__#arrays", "__getitem__#slice_array",
    "__getitem__#separated", "__getitem__#int_array", "__getitem__#ellipsis_array",
    "__getitem__#newaxis_array", "__getitem__#mask_axis", "__setitem__#newaxis",
    "__setitem__#array", "__setitem__#separated", "__setitem__#mask_values",
})
