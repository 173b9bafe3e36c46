"""Indexing: ``x[key]``, functional ``x[key] = v``, ``take`` and ``take_along_axis``.

Three primitives carry every index expression (keys are parsed by :mod:`unijax.engine.indexing`
into a hashable ``key`` param, with integer index arrays as positional arguments):

* ``getitem(x, *arrays, key)``: ``x[key]``;
* ``setitem(x, value, *arrays, key)``: a copy of ``x`` with ``x[key] = value``;
* ``scatter_add(ct, *arrays, key, shape)``: zeros of ``shape`` with ``ct`` *added* at
  ``key``, the transpose of ``getitem`` (repeated indices accumulate).

Batching keeps the batch axis an ordinary index: with unmapped index arrays a leading
full slice is prepended to the key; with mapped ones the batch axis becomes a leading
index array ``arange(B)`` broadcast against them, and the result's axes are permuted back
to the per-example layout (NumPy's placement of advanced-index axes makes that needed).
The impls (native NumPy/CuPy/JAX indexing, ``add.at``/``.at[].add`` for accumulation, a
portable fallback for other backends) are in :mod:`unijax.engine.rules._index_eval`.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.batching import BatchTracer, bdim_to_front, move_bdim
from unijax.engine.core import (
    TRACER_METHODS,
    Primitive,
    Tracer,
    base_value,
    builtin_scalar,
    namespace_for_value,
)
from unijax.engine.indexing import (
    FULL,
    Items,
    Layout,
    broadcast_shapes,
    dtype_kind,
    is_index_array,
    layout,
    parse_key,
    split_zero_d_masks,
)
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules._index_eval import gather, scatter_add, scatter_set
from unijax.engine.staging import StagingTracer
from unijax.errors import message

__all__ = [
    "getitem",
    "getitem_p",
    "scatter_add_p",
    "setitem",
    "setitem_p",
    "take_along_axis_p",
    "take_p",
]

getitem_p = Primitive("getitem")
setitem_p = Primitive("setitem")
scatter_add_p = Primitive("scatter_add")

getitem_p.def_impl(lambda xp, x, *arrays, key: gather(xp, x, arrays, key))
setitem_p.def_impl(lambda xp, x, value, *arrays, key: scatter_set(xp, x, value, arrays, key))
scatter_add_p.def_impl(
    lambda xp, ct, *arrays, key, shape: scatter_add(xp, ct, arrays, key, shape)
)


def _full(n: int) -> tuple[Any, ...]:
    return ("slice", 0, n, 1)


# --- x[key] and x[key] = value on arrays and tracers -------------------------------------


def _staged_constant(mask: Any) -> Any:
    """The value of a mask that is a constant of every transform wrapping it, else ``None``.

    A constant of ``jit`` (closed over, or made from Python data inside the function, as
    ``xp.asarray(True)``) is the same in every call of the compiled program, so the shape
    it selects does not depend on the inputs even though the mask is traced.
    """
    value = mask
    while isinstance(value, Tracer):
        if isinstance(value, BatchTracer) and value.bdim is not None:
            return None
        if isinstance(value, StagingTracer):
            constants = value._trace.constants  # type: ignore[attr-defined]
            if value.var not in constants:
                return None
            value = constants[value.var]
        else:
            value = value._primal()
    return value


def _with_constant_masks(key: Any) -> Any:
    """``key`` with each traced boolean mask that is a constant replaced by its value."""
    items = key if isinstance(key, tuple) else (key,)
    if not any(isinstance(k, Tracer) and dtype_kind(k.dtype) == "bool" for k in items):
        return key
    out = []
    for k in items:
        if isinstance(k, Tracer) and dtype_kind(k.dtype) == "bool":
            constant = _staged_constant(k)
            k = k if constant is None else constant
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0]


def getitem(x: Any, key: Any) -> Any:
    """``x[key]`` for an array or tracer ``x``, through the ``getitem`` primitive.

    Args:
        x: The array or tracer indexed.
        key: Any index NumPy accepts (see the module docstring for the semantics).

    Returns:
        The selection; ``x`` itself for a key that selects everything (``x[...]``).

    Raises:
        IndexError: The key is not a valid index for ``x``.
        ConcretizationError: A traced boolean mask under ``vmap`` or ``jit``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> def f(x):
        ...     xp = x.__array_namespace__()
        ...     return xp.sum(x[np.asarray([0, 0, 2])] ** 2)  # repeats accumulate
        >>> unijax.grad(f)(np.asarray([1.0, 2.0, 3.0]))
        array([4., 0., 6.])
    """
    key = _with_constant_masks(key)
    split = split_zero_d_masks(x, key)
    if split is not None:
        expand, key = split
        x = getitem(x, expand)
    items, arrays = parse_key(x, key)
    if not arrays and items == tuple((FULL, 0, n, 1) for n in x.shape):
        return x
    return getitem_p.bind(x, *arrays, key=items)


def setitem(x: Any, key: Any, value: Any) -> Any:
    """The value of ``x`` after ``x[key] = value``, computed functionally.

    A boolean mask with a value that does not depend on how many elements it selects
    (a scalar, or one row broadcast to every selected element) becomes ``where``, which
    works under every transform. ``value`` is cast to ``x``'s dtype.

    Args:
        x: The array or tracer updated (it is not modified).
        key: Any index NumPy accepts.
        value: A scalar or array broadcastable to the shape of ``x[key]``.

    Returns:
        A new array or tracer equal to ``x`` outside ``key`` and to ``value`` inside.

    Raises:
        IndexError: The key is not a valid index for ``x``.
        ValueError: ``value`` does not broadcast to the selection.
    """
    value = builtin_scalar(value)
    key = _with_constant_masks(key)
    split = split_zero_d_masks(x, key)
    if split is not None:
        # Update the array with the masks' axes inserted; it holds x's elements in order.
        expand, rest = split
        return ops.reshape(setitem(getitem(x, expand), rest, value), tuple(x.shape))
    fast = _mask_where(x, key, value)
    if fast is not None:
        return fast
    items, arrays = parse_key(x, key)
    value = _cast_value(x, value)
    lay = layout(items, x.shape, [a.shape for a in arrays])
    vshape = tuple(getattr(value, "shape", ()))
    try:
        if broadcast_shapes(vshape, lay.shape) != lay.shape:
            raise ValueError
    except ValueError:
        raise ValueError(
            message("x[key] = value: value cannot be broadcast to the selection",
                    expected=f"a shape broadcastable to {lay.shape}", got=f"shape {vshape}")
        ) from None
    return setitem_p.bind(x, value, *arrays, key=items)


def _cast_value(x: Any, value: Any) -> Any:
    if not is_index_array(value) or value.dtype == x.dtype:
        return value
    return ops.astype(value, x.dtype)


def _mask_where(x: Any, key: Any, value: Any) -> Any:
    """``x[mask] = value`` as ``where(mask, value, x)`` when the shapes allow it."""
    keys = key if isinstance(key, tuple) else (key,)
    trailing = len(keys) == 2 and keys[0] is Ellipsis
    mask = keys[-1] if len(keys) == 1 or trailing else None
    if (mask is None or not is_index_array(mask) or dtype_kind(mask.dtype) != "bool"
            or mask.ndim == 0):
        return None
    shape, k = tuple(x.shape), mask.ndim
    if k > len(shape) or tuple(mask.shape) != (shape[-k:] if trailing else shape[:k]):
        return None
    if not _has_where(ops):
        return None
    value = _cast_value(x, value)
    vshape = tuple(getattr(value, "shape", ()))
    if trailing:
        # Selection (*lead, count): the value's last axis must be 1 to be count-free.
        if vshape and vshape[-1] != 1:
            return None
        if vshape:
            value = ops.reshape(value, vshape[:-1] + (1,) * k)
    else:
        rest = len(shape) - k
        if len(vshape) > rest + 1 or (len(vshape) == rest + 1 and vshape[0] != 1):
            return None
        if len(vshape) == rest + 1:
            value = ops.reshape(value, vshape[1:])
        mask = ops.reshape(mask, tuple(mask.shape) + (1,) * rest)
    out = ops.where(mask, value, x)
    return out if out.dtype == x.dtype else ops.astype(out, x.dtype)


def _has_where(ops: Any) -> bool:
    try:
        ops.where  # noqa: B018
    except AttributeError:
        return False
    return True


TRACER_METHODS["getitem"] = getitem
TRACER_METHODS["setitem"] = setitem


# --- helpers for batching index expressions ---------------------------------------------------


def _axis_size(args: tuple[Any, ...], bdims: tuple[int | None, ...]) -> int:
    for a, d in zip(args, bdims, strict=True):
        if d is not None:
            return int(shape_of(a)[d])
    raise AssertionError("a batching rule was called with no mapped argument")


def _example_shape(a: Any, bdim: int | None) -> tuple[int, ...]:
    shape = shape_of(a)
    return shape if bdim is None else shape[:bdim] + shape[bdim + 1 :]


def _prefixed(key: Items, size: int) -> Items:
    """The key for a batch whose mapped axis (at the front) is kept whole."""
    return (_full(size), *key)


def _with_batch_index(key: Items) -> Items:
    """The key whose first index array (``arange(B)``) picks each example's batch entry."""
    shifted = tuple(("array", it[1] + 1) if it[0] == "array" else it for it in key)
    return (("array", 0), *shifted)


def _lift_indices(arrays: tuple[Any, ...], bdims: tuple[int | None, ...], rank: int
                  ) -> list[Any]:
    """Index arrays of rank ``rank + 1`` (batch first) so that batches broadcast together."""
    lifted = []
    for a, d in zip(arrays, bdims, strict=True):
        if d is not None:
            a = bdim_to_front(a, d)
            shape = shape_of(a)
            a = ops.reshape(a, (shape[0],) + (1,) * (rank + 1 - len(shape)) + shape[1:])
        lifted.append(a)
    return lifted


def _batch_index(like: Any, size: int, rank: int) -> Any:
    xp = namespace_for_value(base_value(like))
    return xp.reshape(xp.arange(size), (size,) + (1,) * rank)


def _block_perm(lay: Layout) -> tuple[int, ...]:
    """Axes taking ``(B, *block, *pre, *post)`` to ``(B, *pre, *block, *post)``."""
    p, nb = lay.block or 0, lay.block_ndim
    n = len(lay.shape)
    return (0, *range(1 + nb, 1 + nb + p), *range(1, 1 + nb), *range(1 + nb + p, 1 + n))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _arrange(v: Any, bdim: int | None, size: int, sel: tuple[int, ...], dst: int,
             full: bool = False) -> Any:
    """``v`` (one example broadcastable to ``sel``) with its batch axis at ``dst``.

    ``full`` materialises the whole batched selection shape (``scatter_add`` adds ``v``
    elementwise, so it needs the exact shape).
    """
    if not hasattr(v, "shape") or (bdim is None and dst == 0 and not full):
        return v  # a Python scalar, or a value that broadcasts from the right as it is
    v = move_bdim(v, bdim, 0, size)
    shape = shape_of(v)
    v = ops.reshape(v, (size,) + (1,) * (len(sel) + 1 - len(shape)) + shape[1:])
    if full:
        v = ops.broadcast_to(v, (size, *sel))
    return v if dst == 0 else ops.moveaxis(v, 0, dst)


# --- getitem ----------------------------------------------------------------------------------


@def_jvp(getitem_p)
def _getitem_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, key: Items) -> Any:
    x, *arrays = primals
    out = getitem_p.bind(x, *arrays, key=key)
    if tangents[0] is None:
        return out, None
    return out, getitem_p.bind(tangents[0], *arrays, key=key)


@def_vjp(getitem_p)
def _getitem_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                 key: Items) -> Any:
    x, *arrays = primals
    ct_x = scatter_add_p.bind(ct, *arrays, key=key, shape=shape_of(x))
    return (unbroadcast(ct_x, x), *(None,) * len(arrays))


@def_batch(getitem_p)
def _getitem_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                   key: Items) -> Any:
    x, *arrays = args
    x_dim, *dims = bdims
    size = _axis_size(args, bdims)
    lay = layout(key, _example_shape(x, x_dim), [_example_shape(a, d)
                                                 for a, d in zip(arrays, dims, strict=True)])
    if all(d is None for d in dims):
        out = getitem_p.bind(bdim_to_front(x, x_dim), *arrays, key=_prefixed(key, size))
        return out, lay.block_ndim if lay.front else 0
    lifted = _lift_indices(tuple(arrays), tuple(dims), lay.block_ndim)
    if x_dim is None:
        return getitem_p.bind(x, *lifted, key=key), lay.block
    index = _batch_index(x, size, lay.block_ndim)
    out = getitem_p.bind(bdim_to_front(x, x_dim), index, *lifted, key=_with_batch_index(key))
    perm = _block_perm(lay)
    return (out if perm == tuple(range(len(perm))) else ops.permute_dims(out, perm)), 0


# --- scatter_add (the transpose of getitem) ---------------------------------------------------


@def_jvp(scatter_add_p)
def _scatter_add_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, key: Items,
                     shape: tuple[int, ...]) -> Any:
    ct, *arrays = primals
    out = scatter_add_p.bind(ct, *arrays, key=key, shape=shape)
    if tangents[0] is None:
        return out, None
    return out, scatter_add_p.bind(tangents[0], *arrays, key=key, shape=shape)


@def_vjp(scatter_add_p)
def _scatter_add_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, key: Items,
                     shape: tuple[int, ...]) -> Any:
    x, *arrays = primals
    return (unbroadcast(getitem_p.bind(ct, *arrays, key=key), x), *(None,) * len(arrays))


@def_batch(scatter_add_p)
def _scatter_add_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, key: Items,
                       shape: tuple[int, ...]) -> Any:
    ct, *arrays = args
    ct_dim, *dims = bdims
    size = _axis_size(args, bdims)
    lay = layout(key, shape, [_example_shape(a, d) for a, d in zip(arrays, dims, strict=True)])
    out_shape = (size, *shape)
    if all(d is None for d in dims):
        dst = lay.block_ndim if lay.front else 0
        ct = _arrange(ct, ct_dim, size, lay.shape, dst, full=True)
        return scatter_add_p.bind(ct, *arrays, key=_prefixed(key, size), shape=out_shape), 0
    lifted = _lift_indices(tuple(arrays), tuple(dims), lay.block_ndim)
    index = _batch_index(ct, size, lay.block_ndim)
    ct = _arrange(ct, ct_dim, size, lay.shape, 0, full=True)
    perm = _inverse(_block_perm(lay))
    if perm != tuple(range(len(perm))):
        ct = ops.permute_dims(ct, perm)
    return scatter_add_p.bind(ct, index, *lifted, key=_with_batch_index(key),
                              shape=out_shape), 0


# --- setitem (functional) ---------------------------------------------------------------------


@def_jvp(setitem_p)
def _setitem_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, key: Items) -> Any:
    x, value, *arrays = primals
    x_dot, v_dot = tangents[0], tangents[1]
    out = setitem_p.bind(x, value, *arrays, key=key)
    if x_dot is None:
        x_dot = ops.zeros_like(x)
    return out, setitem_p.bind(x_dot, 0 if v_dot is None else v_dot, *arrays, key=key)


@def_vjp(setitem_p)
def _setitem_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                 key: Items) -> Any:
    _, value, *arrays = primals
    ct_x = setitem_p.bind(ct, 0, *arrays, key=key) if needs[0] else None
    ct_v = None
    if needs[1]:
        ct_v = unbroadcast(getitem_p.bind(ct, *arrays, key=key), value)
    return (ct_x, ct_v, *(None,) * len(arrays))


@def_batch(setitem_p)
def _setitem_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                   key: Items) -> Any:
    x, value, *arrays = args
    x_dim, v_dim, *dims = bdims
    size = _axis_size(args, bdims)
    lay = layout(key, _example_shape(x, x_dim), [_example_shape(a, d)
                                                 for a, d in zip(arrays, dims, strict=True)])
    x = move_bdim(x, x_dim, 0, size)
    if all(d is None for d in dims):
        dst = lay.block_ndim if lay.front else 0
        value = _arrange(value, v_dim, size, lay.shape, dst)
        return setitem_p.bind(x, value, *arrays, key=_prefixed(key, size)), 0
    lifted = _lift_indices(tuple(arrays), tuple(dims), lay.block_ndim)
    index = _batch_index(x, size, lay.block_ndim)
    value = _arrange(value, v_dim, size, lay.shape, 0, full=True)
    perm = _inverse(_block_perm(lay))
    if hasattr(value, "shape") and perm != tuple(range(len(perm))):
        value = ops.permute_dims(value, perm)
    return setitem_p.bind(x, value, index, *lifted, key=_with_batch_index(key)), 0


# --- take -------------------------------------------------------------------------------------

take_p = Primitive("take")


def _normalize_axis(axis: int, ndim: int, api: str) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{api}: axis {axis} is out of range for an array of {ndim} dimensions")
    return axis + ndim if axis < 0 else axis


@def_api("take")
def take(x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
    """Elements of ``x`` at ``indices`` along ``axis`` (the standard's ``take``)."""
    if axis is None:
        if ndim_of(x) != 1:
            raise ValueError(
                "take(x, indices): axis is required when x is not one-dimensional; "
                f"got x of shape {shape_of(x)}. Pass axis=... or flatten x first."
            )
        axis = 0
    return take_p.bind(x, indices, axis=_normalize_axis(axis, ndim_of(x), "take"))


def _take_key(axis: int, shape: tuple[int, ...]) -> Items:
    return (*(_full(n) for n in shape[:axis]), ("array", 0),
            *(_full(n) for n in shape[axis + 1 :]))


@def_jvp(take_p)
def _take_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int) -> Any:
    out = take_p.bind(*primals, axis=axis)
    return out, None if tangents[0] is None else take_p.bind(tangents[0], primals[1], axis=axis)


@def_vjp(take_p)
def _take_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int) -> Any:
    x, indices = primals
    shape = shape_of(x)
    ct_x = scatter_add_p.bind(ct, indices, key=_take_key(axis, shape), shape=shape)
    return unbroadcast(ct_x, x), None


@def_batch(take_p)
def _take_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int) -> Any:
    x, indices = args
    x_dim, i_dim = bdims
    if i_dim is None:
        return take_p.bind(bdim_to_front(x, x_dim), indices, axis=axis + 1), 0
    key = _take_key(axis, _example_shape(x, x_dim))
    return _getitem_batch(args, bdims, key=key)


# --- take_along_axis --------------------------------------------------------------------------

take_along_axis_p = Primitive("take_along_axis")


@def_api("take_along_axis")
def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Any:
    """Elements of ``x`` at ``indices`` along ``axis``, matched elementwise elsewhere."""
    n = ndim_of(x)
    if ndim_of(indices) != n:
        raise ValueError(
            "take_along_axis(x, indices): x and indices must have the same number of "
            f"dimensions; got {n} and {ndim_of(indices)}."
        )
    return take_along_axis_p.bind(x, indices, axis=_normalize_axis(axis, n, "take_along_axis"))


@def_jvp(take_along_axis_p)
def _take_along_axis_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
                         axis: int) -> Any:
    out = take_along_axis_p.bind(*primals, axis=axis)
    if tangents[0] is None:
        return out, None
    return out, take_along_axis_p.bind(tangents[0], primals[1], axis=axis)


@def_vjp(take_along_axis_p)
def _take_along_axis_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                         axis: int) -> Any:
    x, indices = primals
    shape = shape_of(x)
    xp = namespace_for_value(base_value(x))
    arrays = []
    for i, n in enumerate(shape):
        if i == axis:
            arrays.append(indices)
        else:
            arrays.append(xp.reshape(xp.arange(n), (1,) * i + (n,) + (1,) * (len(shape) - i - 1)))
    key = tuple(("array", i) for i in range(len(shape)))
    ct_x = scatter_add_p.bind(ct, *arrays, key=key, shape=shape)
    return unbroadcast(ct_x, x), None


@def_batch(take_along_axis_p)
def _take_along_axis_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                           axis: int) -> Any:
    x, indices = args
    size = _axis_size(args, bdims)
    x = move_bdim(x, bdims[0], 0, size)
    indices = move_bdim(indices, bdims[1], 0, size)
    return take_along_axis_p.bind(x, indices, axis=axis + 1), 0
