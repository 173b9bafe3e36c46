"""Concrete evaluation of the indexing primitives (their impls), on any backend.

Keys arrive canonical (see :mod:`unijax.engine.indexing`). Where the backend's own indexing has
NumPy's semantics (NumPy, CuPy, JAX) the key is applied directly; elsewhere an equivalent
portable sequence of standard calls does the work (basic indexing, ``permute_dims``,
``reshape``, ``take``), because array-api-strict (like the standard) accepts no index
arrays mixed with slices and no ``None`` in ``__setitem__``. The portable path turns the
advanced indices into row-major positions in the flattened indexed axes, so a gather is one
``take`` and a scatter one matrix product.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from unijax.engine.indexing import (
    FULL,
    Items,
    Layout,
    block_axes,
    block_shape,
    layout,
    slice_len,
)

__all__ = ["gather", "scatter_add", "scatter_set"]


_NATIVE_ROOTS = frozenset({"numpy", "cupy", "jax", "jaxlib", "autograd"})
_native_by_type: dict[type, bool] = {}


def _native(x: Any) -> bool:
    """Whether ``x``'s own ``__getitem__`` has NumPy's full semantics (index arrays too)."""
    tp = type(x)
    native = _native_by_type.get(tp)
    if native is None:
        native = _native_by_type[tp] = tp.__module__.partition(".")[0] in _NATIVE_ROOTS
    return native


def _render(items: Items, arrays: Sequence[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for it in items:
        kind = it[0]
        if kind == FULL:
            out.append(slice(it[1], it[2], it[3]))
        elif kind == "int":
            out.append(it[1])
        elif kind == "array":
            out.append(arrays[it[1]])
        elif kind == "none":
            out.append(None)
        else:
            out.append(Ellipsis)
    return tuple(out)


def _basic(items: Items, *, keep_none: bool = True) -> tuple[Any, ...]:
    """``items`` with every advanced index replaced by a full slice (``...`` dropped)."""
    has_arrays = any(it[0] == "array" for it in items)
    out: list[Any] = []
    for it in items:
        kind = it[0]
        if kind == FULL:
            out.append(slice(it[1], it[2], it[3]))
        elif kind == "int":
            out.append(slice(None) if has_arrays else it[1])
        elif kind == "array":
            out.append(slice(None))
        elif kind == "none" and keep_none:
            out.append(None)
    return tuple(out)


def _is_identity(basic: tuple[Any, ...], shape: Sequence[int]) -> bool:
    return len(basic) == len(shape) and all(
        (isinstance(b, slice) and b == slice(0, n, 1)) or b == slice(None)
        for b, n in zip(basic, shape, strict=True)
    )


class _Plan(NamedTuple):
    """How the portable path gathers: the axes of ``x[basic]`` that index arrays address."""

    basic: tuple[Any, ...]
    mid_shape: tuple[int, ...]  # shape of x[basic]
    axes: tuple[int, ...]  # the advanced axes of x[basic]
    lay: Layout


def _plan(items: Items, shape: Sequence[int], array_shapes: Sequence[Sequence[int]]) -> _Plan:
    basic = _basic(items)
    mid: list[int] = []
    axes: list[int] = []
    axis = 0
    for it in items:
        if it[0] == "none":
            mid.append(1)
        elif it[0] == "ellipsis":
            continue
        else:
            if it[0] == FULL:
                mid.append(slice_len(it))
            else:
                axes.append(len(mid))
                mid.append(shape[axis])
            axis += 1
    return _Plan(basic, tuple(mid), tuple(axes), layout(items, shape, array_shapes))


def _linear_index(xp: Any, items: Items, arrays: Sequence[Any], plan: _Plan) -> Any:
    """The row-major position of each selected element among the advanced axes."""
    lin: Any = 0
    stride = 1
    adv = [it for it in items if it[0] in ("int", "array")]
    for it, axis in zip(reversed(adv), reversed(plan.axes), strict=True):
        n = plan.mid_shape[axis]
        if it[0] == "int":
            term: Any = it[1]
        else:
            a = xp.astype(arrays[it[1]], xp.int64)
            term = xp.where(a < 0, a + n, a)
        lin = lin + term * stride
        stride *= n
    bshape = block_shape(plan.lay)
    return xp.reshape(xp.broadcast_to(xp.asarray(lin), bshape), (math.prod(bshape),))


def _to_front(xp: Any, y: Any, axes: Sequence[int]) -> Any:
    perm = (*axes, *(i for i in range(y.ndim) if i not in axes))
    return y if perm == tuple(range(y.ndim)) else xp.permute_dims(y, perm)


def _from_front(xp: Any, y: Any, axes: Sequence[int]) -> Any:
    perm = (*axes, *(i for i in range(y.ndim) if i not in axes))
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return y if perm == tuple(range(y.ndim)) else xp.permute_dims(y, tuple(inverse))


def gather(xp: Any, x: Any, arrays: Sequence[Any], items: Items) -> Any:
    """Concrete ``x[key]`` for canonical ``items`` (the ``getitem`` primitive's impl)."""
    if _native(x):
        out = x[_render(items, arrays)]
        return out if hasattr(out, "__array_namespace__") else xp.asarray(out)
    plan = _plan(items, x.shape, [a.shape for a in arrays])
    y = x if _is_identity(plan.basic, x.shape) else _get_basic(xp, x, plan.basic)
    if plan.lay.block is None:
        return y
    lin = _linear_index(xp, items, arrays, plan)
    y = _to_front(xp, y, plan.axes)
    rest = tuple(y.shape[len(plan.axes) :])
    rows = math.prod(y.shape[: len(plan.axes)])
    y = xp.take(xp.reshape(y, (rows, *rest)), lin, axis=0)
    y = xp.reshape(y, (*block_shape(plan.lay), *rest))
    return _from_front(xp, y, block_axes(plan.lay))


def _zeros(xp: Any, shape: Sequence[int], like: Any) -> Any:
    from array_api_compat import device

    return xp.zeros(tuple(shape), dtype=like.dtype, device=device(like))


def _positive_steps(basic: tuple[Any, ...], shape: Sequence[int]
                    ) -> tuple[tuple[Any, ...], tuple[int, ...]]:
    """``basic`` with each negative-step slice as the same elements in increasing order,
    and the axes of the result to flip back (torch refuses negative steps)."""
    out: list[Any] = []
    flips: list[int] = []
    axis = position = 0  # axis of the array, axis of the result
    for b in basic:
        if isinstance(b, slice) and b.step is not None and b.step < 0:
            start, stop, step = b.indices(shape[axis])
            count = len(range(start, stop, step))
            last = start + step * (count - 1)
            out.append(slice(last, start + 1, -step) if count else slice(0, 0, 1))
            flips.append(position)
        else:
            out.append(b)
        axis += b is not None
        position += not isinstance(b, int)
    return tuple(out), tuple(flips)


def _get_basic(xp: Any, x: Any, basic: tuple[Any, ...]) -> Any:
    """``x[basic]``, with negative steps as positive ones and ``flip``."""
    positive, flips = _positive_steps(basic, x.shape)
    y = x[positive]
    return xp.flip(y, axis=flips) if flips else y


def _assign_basic(xp: Any, z: Any, basic: tuple[Any, ...], value: Any) -> Any:
    """``z`` with ``z[basic] = value`` (``z`` is a fresh array, updated in place if mutable)."""
    if hasattr(z, "at"):
        return z.at[basic].set(value)
    positive, flips = _positive_steps(basic, z.shape)
    if flips:
        value = xp.flip(xp.broadcast_to(xp.asarray(value, dtype=z.dtype),
                                        tuple(z[positive].shape)), axis=flips)
    z[positive] = value
    return z


def _setitem_key(xp: Any, basic: tuple[Any, ...], value: Any, sel_shape: tuple[int, ...]
                 ) -> tuple[tuple[Any, ...], Any]:
    """A basic key without ``None`` (array-api-strict refuses it) and the value to match."""
    if all(b is not None for b in basic):
        return basic, value
    value = xp.broadcast_to(xp.asarray(value), sel_shape)
    keep: list[int] = []
    position = 0
    for b in basic:
        if isinstance(b, slice):
            keep.append(sel_shape[position])
        if b is None or isinstance(b, slice):
            position += 1
    return tuple(b for b in basic if b is not None), xp.reshape(value, tuple(keep))


def scatter_add(xp: Any, ct: Any, arrays: Sequence[Any], items: Items,
                shape: Sequence[int]) -> Any:
    """Zeros of ``shape`` with ``ct`` added at ``items``; repeated indices accumulate.

    The transpose of :func:`gather` (the ``scatter_add`` primitive's impl). NumPy and CuPy
    use ``add.at``, JAX ``.at[].add``; other backends a one-hot matrix product, which is
    portable but costs memory proportional to (indexed elements) x (selected elements).
    """
    has_arrays = bool(arrays)
    root = type(ct).__module__.partition(".")[0]
    if has_arrays and _native(ct):
        key = _render(items, arrays)
        z = _zeros(xp, shape, ct)
        if hasattr(z, "at"):
            return z.at[key].add(ct)
        add_at = getattr(getattr(sys.modules.get(root), "add", None), "at", None)
        if add_at is not None:
            add_at(z, key, ct)
            return z
    plan = _plan(items, shape, [a.shape for a in arrays])
    if plan.lay.block is None:
        if _is_identity(plan.basic, shape):
            return xp.reshape(ct, tuple(shape))
        basic, value = _setitem_key(xp, plan.basic, ct, plan.lay.shape)
        return _assign_basic(xp, _zeros(xp, shape, ct), basic, value)
    y = _to_front(xp, ct, block_axes(plan.lay))
    rest = tuple(y.shape[plan.lay.block_ndim :])
    y = xp.reshape(y, (math.prod(block_shape(plan.lay)), math.prod(rest)))
    lin = _linear_index(xp, items, arrays, plan)
    adv_dims = tuple(plan.mid_shape[a] for a in plan.axes)
    rows = math.prod(adv_dims)
    one_hot = xp.astype(xp.arange(rows)[:, None] == lin[None, :], ct.dtype)
    y = xp.reshape(xp.matmul(one_hot, y), (*adv_dims, *rest))
    y = _from_front(xp, y, plan.axes)
    if _is_identity(plan.basic, shape):
        return xp.reshape(y, tuple(shape))
    basic, value = _setitem_key(xp, plan.basic, y, plan.mid_shape)
    return _assign_basic(xp, _zeros(xp, shape, ct), basic, value)


def scatter_set(xp: Any, x: Any, value: Any, arrays: Sequence[Any], items: Items) -> Any:
    """A copy of ``x`` with ``x[items] = value`` (the ``setitem`` primitive's impl).

    With repeated indices the last write wins, as in NumPy.
    """
    if hasattr(x, "at"):
        return x.at[_render(items, arrays)].set(value)
    if _native(x):
        out = xp.asarray(x, copy=True)
        out[_render(items, arrays)] = value
        return out
    plan = _plan(items, x.shape, [a.shape for a in arrays])
    out = xp.asarray(x, copy=True)
    value = xp.asarray(value, dtype=x.dtype)
    if plan.lay.block is None:
        basic, value = _setitem_key(xp, plan.basic, value, plan.lay.shape)
        return _assign_basic(xp, out, basic, value)
    # Index arrays: rewrite the selected rows of x[basic] with the last write to each.
    value = xp.broadcast_to(value, plan.lay.shape)
    sub = out if _is_identity(plan.basic, x.shape) else out[plan.basic]
    sub = _to_front(xp, sub, plan.axes)
    adv_dims = tuple(sub.shape[: len(plan.axes)])
    rest = tuple(sub.shape[len(plan.axes) :])
    sub = xp.reshape(sub, (math.prod(adv_dims), *rest))
    v = xp.reshape(_to_front(xp, value, block_axes(plan.lay)),
                   (math.prod(block_shape(plan.lay)), *rest))
    lin = _linear_index(xp, items, arrays, plan)
    if lin.shape[0] == 0:
        return out
    hits = xp.arange(sub.shape[0])[:, None] == lin[None, :]
    order = xp.arange(lin.shape[0])
    last = xp.max(xp.where(hits, order[None, :], -1), axis=1)
    taken = xp.take(v, xp.where(last < 0, 0, last), axis=0)
    mask = xp.reshape(last >= 0, (sub.shape[0],) + (1,) * len(rest))
    sub = xp.reshape(xp.where(mask, taken, sub), (*adv_dims, *rest))
    sub = _from_front(xp, sub, plan.axes)
    if _is_identity(plan.basic, x.shape):
        return sub
    basic, sub = _setitem_key(xp, plan.basic, sub, plan.mid_shape)
    return _assign_basic(xp, out, basic, sub)
