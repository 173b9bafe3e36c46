"""Indexing of traced arrays: ``x[key]`` and the functional form of ``x[key] = value``.

A key is parsed once, when it is applied, into a canonical hashable tuple of *items* (the
``key`` param of the ``getitem``/``setitem``/``scatter_add`` primitives) and a list of
integer index arrays (their positional array arguments):

* ``("int", i)``: an integer, made non-negative;
* ``("slice", start, stop, step)``: in bounds and tight (``stop`` is ``None`` only for a
  negative step that runs through index 0; an empty slice is ``(0, 0, 1)``);
* ``("none",)``: a new axis of size 1;
* ``("array", k)``: the ``k``-th integer index array (negative entries count from the end);
* ``("ellipsis",)``: kept only where an empty ``...`` separates advanced indices, because
  NumPy then moves the indexed axes to the front of the result.

Every axis of ``x`` is indexed explicitly, so one key means one thing on every backend.
Semantics are NumPy's (which the standard's indexing is a subset of): integers and index
arrays are *advanced* indices when any index array is present; their broadcast shape
replaces the indexed axes in place when they are adjacent, or goes to the front when a
slice, ``None`` or ``...`` separates them. A boolean mask becomes the integer arrays of its
``nonzero()``; its values must be concrete (fine eagerly and under ``grad``, an error under
``vmap`` or ``jit``, where the result's shape would depend on traced values).

Concrete evaluation uses the backend's own indexing where it has NumPy's semantics (NumPy,
CuPy, JAX) and an equivalent portable sequence of standard calls otherwise (basic indexing,
``permute_dims``, ``reshape``, ``take``), as array-api-strict accepts no index arrays.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from unijax._core import Tracer, base_value, namespace_for_value
from unijax._dtypes import dtype_name
from unijax.errors import ConcretizationError, message

__all__ = [
    "Layout",
    "broadcast_shapes",
    "gather",
    "getitem",
    "layout",
    "parse_key",
    "scatter_add",
    "scatter_set",
    "setitem",
]

Item = tuple[Any, ...]
Items = tuple[Item, ...]

_FULL = "slice"


# --- parsing keys -----------------------------------------------------------------------------


def _is_array(k: Any) -> bool:
    return isinstance(k, Tracer) or (hasattr(k, "shape") and hasattr(k, "dtype"))


def _kind(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name == "bool":
        return "bool"
    if name.startswith(("int", "uint")):
        return "int"
    return name


def _index_error(what: str, got: str, fix: str | None = None) -> IndexError:
    return IndexError(message(f"x[key]: {what}", got=got, fix=fix))


def _concrete_mask(mask: Any) -> Any:
    if not isinstance(mask, Tracer):
        return mask
    try:
        return mask._concrete("boolean-mask index")
    except ConcretizationError as err:
        raise ConcretizationError(
            message(
                "x[mask] with a traced boolean mask makes an array whose shape depends on "
                "the mask's values, which vmap and jit cannot know",
                fix="Keep the shape static: use xp.where(mask, x, 0) (and reduce it) instead "
                "of x[mask]; x[mask] = value with a scalar value works everywhere.",
            )
        ) from err


def _slice_item(s: slice, n: int) -> Item:
    parts = []
    for v in (s.start, s.stop, s.step):
        parts.append(None if v is None else operator.index(v))
    if parts[2] == 0:
        raise ValueError(message("x[key]: a slice step cannot be zero", got=repr(s)))
    start, stop, step = slice(*parts).indices(n)
    length = len(range(start, stop, step))
    if length == 0:
        return (_FULL, 0, 0, 1)
    last = start + (length - 1) * step
    if step > 0:
        return (_FULL, start, last + 1, step)
    return (_FULL, start, last - 1 if last > 0 else None, step)


def slice_len(item: Item) -> int:
    """The number of elements a canonical ``("slice", ...)`` item selects."""
    _, start, stop, step = item
    return len(range(start, -1 if stop is None else stop, step))


def parse_key(x: Any, key: Any) -> tuple[Items, list[Any]]:
    """Canonical items and index arrays of ``x[key]`` (see the module docstring).

    Raises:
        IndexError: The key is not a valid index for ``x``.
        ConcretizationError: A boolean mask has no concrete value (under ``vmap``/``jit``).
    """
    shape = tuple(x.shape)
    raw = key if isinstance(key, tuple) else (key,)
    parsed: list[tuple[str, Any]] = []
    consumed = 0
    ellipses = 0
    for k in raw:
        if k is None:
            parsed.append(("none", None))
        elif k is Ellipsis:
            ellipses += 1
            parsed.append(("ellipsis", None))
        elif isinstance(k, slice):
            parsed.append(("slice", k))
            consumed += 1
        elif isinstance(k, bool):
            raise _index_error("a Python bool is not a valid index", got=repr(k),
                               fix="Use None to add an axis, or a boolean array as a mask.")
        elif isinstance(k, list | tuple) or _is_array(k):
            if not _is_array(k):
                xp = namespace_for_value(base_value(x))
                k = xp.asarray(k) if len(k) else xp.asarray(k, dtype=xp.int64)
            kind = _kind(k.dtype)
            if kind == "bool":
                if k.ndim == 0:
                    raise _index_error("a 0-d boolean index is not supported", got="x[True]",
                                       fix="Use x[None] or xp.expand_dims(x, axis=0).")
                parsed.append(("mask", k))
                consumed += k.ndim
            elif kind == "int":
                if k.ndim == 0 and not isinstance(k, Tracer):
                    parsed.append(("int", operator.index(k)))
                else:
                    parsed.append(("array", k))
                consumed += 1
            else:
                raise _index_error("index arrays must have an integer or boolean dtype",
                                   got=f"dtype {kind}")
        else:
            try:
                parsed.append(("int", operator.index(k)))
            except TypeError:
                raise _index_error(
                    "only integers, slices, ..., None and integer or boolean arrays are "
                    "valid indices", got=f"{type(k).__name__} {k!r}") from None
            consumed += 1
    if ellipses > 1:
        raise _index_error("an index can contain at most one ellipsis (...)",
                           got=f"{ellipses} of them")
    if consumed > len(shape):
        raise _index_error(f"too many indices for an array of {len(shape)} dimensions",
                           got=f"{consumed} indexed dimensions")
    if not ellipses:
        parsed.append(("ellipsis", None))
    return _canonical(parsed, shape, len(shape) - consumed)


def _canonical(parsed: list[tuple[str, Any]], shape: tuple[int, ...], fill: int
               ) -> tuple[Items, list[Any]]:
    advanced = any(kind in ("array", "mask") for kind, _ in parsed)
    items: list[Item] = []
    arrays: list[Any] = []
    axis = 0
    for position, (kind, k) in enumerate(parsed):
        if kind == "none":
            items.append(("none",))
        elif kind == "ellipsis":
            items.extend((_FULL, 0, shape[axis + i], 1) for i in range(fill))
            axis += fill
            if fill == 0 and advanced and _separates(parsed, position):
                items.append(("ellipsis",))
        elif kind == "slice":
            items.append(_slice_item(k, shape[axis]))
            axis += 1
        elif kind == "int":
            n = shape[axis]
            if not -n <= k < n:
                raise _index_error(f"index {k} is out of bounds for axis {axis} of size {n}",
                                   got=f"index {k}")
            items.append(("int", k + n if k < 0 else k))
            axis += 1
        elif kind == "array":
            items.append(("array", len(arrays)))
            arrays.append(k)
            axis += 1
        else:  # a boolean mask: the integer arrays of its nonzero()
            mask = _concrete_mask(k)
            dims = tuple(mask.shape)
            if dims != shape[axis : axis + len(dims)]:
                raise _index_error(
                    f"a boolean mask must match the shape of the axes it indexes, "
                    f"{shape[axis : axis + len(dims)]}", got=f"mask shape {dims}")
            for nz in namespace_for_value(mask).nonzero(mask):
                items.append(("array", len(arrays)))
                arrays.append(nz)
            axis += len(dims)
    return tuple(items), arrays


def _separates(parsed: list[tuple[str, Any]], position: int) -> bool:
    adv = ("int", "array", "mask")
    return (any(kind in adv for kind, _ in parsed[:position])
            and any(kind in adv for kind, _ in parsed[position + 1 :]))


# --- the shape of a result --------------------------------------------------------------------


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The broadcast of ``shapes`` (the standard's broadcasting rules).

    Raises:
        ValueError: Two shapes do not broadcast.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError(message("shapes do not broadcast",
                                             got=", ".join(str(tuple(t)) for t in shapes)))
                out[i] = d
    return tuple(out)


class Layout(NamedTuple):
    """The shape of ``x[key]`` and where its advanced-index block lies.

    Attributes:
        shape: The result's shape.
        block: Position of the broadcast index shape in ``shape`` (``None``: no arrays).
        block_ndim: Rank of the broadcast index shape.
        front: Whether NumPy moved the block to the front (non-adjacent advanced indices).
    """

    shape: tuple[int, ...]
    block: int | None
    block_ndim: int
    front: bool


def _advanced_positions(items: Items) -> list[int]:
    return [i for i, it in enumerate(items) if it[0] in ("int", "array")]


def layout(items: Items, shape: Sequence[int], array_shapes: Sequence[Sequence[int]]) -> Layout:
    """The :class:`Layout` of ``x[items]`` for ``x`` of ``shape`` and index ``array_shapes``."""
    has_arrays = any(it[0] == "array" for it in items)
    dims: list[int] = []
    first: int | None = None
    for it in items:
        if it[0] == _FULL:
            dims.append(slice_len(it))
        elif it[0] == "none":
            dims.append(1)
        elif has_arrays and it[0] in ("int", "array") and first is None:
            first = len(dims)
    if not has_arrays:
        return Layout(tuple(dims), None, 0, False)
    bshape = broadcast_shapes(*array_shapes)
    adv = _advanced_positions(items)
    front = adv[-1] - adv[0] + 1 != len(adv)
    block = 0 if front else first
    assert block is not None
    return Layout(tuple(dims[:block]) + bshape + tuple(dims[block:]), block, len(bshape), front)


# --- concrete evaluation ----------------------------------------------------------------------

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
        if kind == _FULL:
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
        if kind == _FULL:
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
        isinstance(b, slice) and b == slice(0, n, 1) or b == slice(None)
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
            if it[0] == _FULL:
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
    bshape = plan.lay.shape[plan.lay.block : plan.lay.block + plan.lay.block_ndim]
    return xp.reshape(xp.broadcast_to(xp.asarray(lin), bshape), (-1,))


def _to_front(xp: Any, y: Any, axes: Sequence[int]) -> Any:
    perm = (*axes, *(i for i in range(y.ndim) if i not in axes))
    return y if perm == tuple(range(y.ndim)) else xp.permute_dims(y, perm)


def _from_front(xp: Any, y: Any, axes: Sequence[int]) -> Any:
    perm = (*axes, *(i for i in range(y.ndim) if i not in axes))
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return y if perm == tuple(range(y.ndim)) else xp.permute_dims(y, tuple(inverse))


def _block_axes(lay: Layout) -> tuple[int, ...]:
    assert lay.block is not None
    return tuple(range(lay.block, lay.block + lay.block_ndim))


def gather(xp: Any, x: Any, arrays: Sequence[Any], items: Items) -> Any:
    """Concrete ``x[key]`` for canonical ``items`` (the ``getitem`` primitive's impl)."""
    if _native(x):
        out = x[_render(items, arrays)]
        return out if hasattr(out, "__array_namespace__") else xp.asarray(out)
    plan = _plan(items, x.shape, [a.shape for a in arrays])
    y = x if _is_identity(plan.basic, x.shape) else x[plan.basic]
    if plan.lay.block is None:
        return y
    lin = _linear_index(xp, items, arrays, plan)
    y = _to_front(xp, y, plan.axes)
    rest = tuple(y.shape[len(plan.axes) :])
    y = xp.take(xp.reshape(y, (-1, *rest)), lin, axis=0)
    bshape = plan.lay.shape[plan.lay.block : plan.lay.block + plan.lay.block_ndim]
    y = xp.reshape(y, (*bshape, *rest))
    return _from_front(xp, y, _block_axes(plan.lay))


def _zeros(xp: Any, shape: Sequence[int], like: Any) -> Any:
    from array_api_compat import device

    return xp.zeros(tuple(shape), dtype=like.dtype, device=device(like))


def _assign_basic(xp: Any, z: Any, basic: tuple[Any, ...], value: Any) -> Any:
    """``z`` with ``z[basic] = value`` (``z`` is a fresh array, updated in place if mutable)."""
    if hasattr(z, "at"):
        return z.at[basic].set(value)
    z[basic] = value
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
    y = _to_front(xp, ct, _block_axes(plan.lay))
    rest = tuple(y.shape[plan.lay.block_ndim :])
    y = xp.reshape(y, (-1, math.prod(rest)))
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
    sub = xp.reshape(sub, (-1, *rest))
    v = xp.reshape(_to_front(xp, value, _block_axes(plan.lay)), (-1, *rest))
    lin = _linear_index(xp, items, arrays, plan)
    if lin.shape[0] == 0:
        return out
    hits = xp.arange(sub.shape[0])[:, None] == lin[None, :]
    order = xp.arange(lin.shape[0])
    last = xp.max(xp.where(hits, order[None, :], -1), axis=1)
    taken = xp.take(v, xp.where(last < 0, 0, last), axis=0)
    mask = xp.reshape(last >= 0, (-1,) + (1,) * len(rest))
    sub = xp.reshape(xp.where(mask, taken, sub), (*adv_dims, *rest))
    sub = _from_front(xp, sub, plan.axes)
    if _is_identity(plan.basic, x.shape):
        return sub
    basic, sub = _setitem_key(xp, plan.basic, sub, plan.mid_shape)
    return _assign_basic(xp, out, basic, sub)


# --- the entry points used by Tracer.__getitem__ / __setitem__ -------------------------------


def getitem(x: Any, key: Any) -> Any:
    """``x[key]`` for an array or tracer ``x``, through the ``getitem`` primitive."""
    from unijax.rules.indexing import getitem_p

    items, arrays = parse_key(x, key)
    if not arrays and items == tuple((_FULL, 0, n, 1) for n in x.shape):
        return x
    return getitem_p.bind(x, *arrays, key=items)


def setitem(x: Any, key: Any, value: Any) -> Any:
    """The value of ``x`` after ``x[key] = value``, computed functionally.

    A boolean mask with a value that does not depend on how many elements it selects
    (a scalar, or one row broadcast to every selected element) becomes ``where``, which
    works under every transform.
    """
    from unijax.rules.indexing import setitem_p

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
    if not _is_array(value) or value.dtype == x.dtype:
        return value
    from unijax._namespace import array_functions as ops

    return ops.astype(value, x.dtype)


def _mask_where(x: Any, key: Any, value: Any) -> Any:
    """``x[mask] = value`` as ``where(mask, value, x)`` when the shapes allow it."""
    keys = key if isinstance(key, tuple) else (key,)
    trailing = len(keys) == 2 and keys[0] is Ellipsis
    mask = keys[-1] if len(keys) == 1 or trailing else None
    if mask is None or not _is_array(mask) or _kind(mask.dtype) != "bool" or mask.ndim == 0:
        return None
    shape, k = tuple(x.shape), mask.ndim
    if k > len(shape) or tuple(mask.shape) != (shape[-k:] if trailing else shape[:k]):
        return None
    from unijax._namespace import array_functions as ops

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
    return ops.where(mask, value, x)


def _has_where(ops: Any) -> bool:
    try:
        ops.where  # noqa: B018
    except AttributeError:
        return False
    return True
