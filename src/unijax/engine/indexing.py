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
``vmap`` or ``jit``, where the result's shape would depend on traced values; the front ends
in :mod:`unijax.engine.rules.indexing` pass constants of ``jit`` as their values). A 0-d mask
adds an axis of length 1 or 0; :func:`split_zero_d_masks` rewrites it into a new axis and
an integer index array before parsing.

Concrete evaluation (the primitives' impls) lives in :mod:`unijax.engine.rules._index_eval`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

from unijax._dtypes import dtype_name
from unijax.engine.core import (
    CREATION_FUNCTIONS,
    Tracer,
    base_value,
    device_of,
    namespace_for_value,
)
from unijax.errors import ConcretizationError, message

__all__ = [
    "FULL",
    "Item",
    "Items",
    "Layout",
    "block_axes",
    "block_shape",
    "broadcast_shapes",
    "dtype_kind",
    "is_index_array",
    "layout",
    "parse_key",
    "slice_len",
    "split_zero_d_masks",
]

Item = tuple[Any, ...]
Items = tuple[Item, ...]

FULL = "slice"


# --- parsing keys -----------------------------------------------------------------------------


def is_index_array(k: Any) -> bool:
    return isinstance(k, Tracer) or (hasattr(k, "shape") and hasattr(k, "dtype"))


def dtype_kind(dtype: Any) -> str:
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


def _sequence_index(x: Any, k: list[Any] | tuple[Any, ...]) -> Any:
    """A list used as an index (NumPy's extension), as an array; it may hold tracers."""
    xp = namespace_for_value(base_value(x))
    if not len(k):
        return xp.asarray(k, dtype=xp.int64)
    return CREATION_FUNCTIONS["asarray"](xp, k)


def split_zero_d_masks(x: Any, key: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """``(expand, rest)`` with ``x[key] == x[expand][rest]`` for a key holding 0-d masks.

    A 0-d boolean index adds an axis of length 1 (``True``) or 0 (``False``) and is an
    advanced index, as in NumPy: ``expand`` inserts a length-1 axis of ``x`` at each such
    position, and ``rest`` indexes that axis with the integer array ``[0]`` or ``[]``, so
    it broadcasts and places the result's axes with the other advanced indices. Returns
    ``None`` for a key without 0-d masks.

    Raises:
        ConcretizationError: A 0-d mask has no concrete value (under ``vmap``/``jit``).
    """
    raw = key if isinstance(key, tuple) else (key,)
    if not any(is_index_array(k) and dtype_kind(k.dtype) == "bool" and k.ndim == 0
               for k in raw):
        return None
    xp = namespace_for_value(base_value(x))
    device = device_of(base_value(x))
    expand: list[Any] = []
    rest: list[Any] = []
    for k in raw:
        if isinstance(k, list | tuple):
            k = _sequence_index(x, k)
        if k is None:
            rest.append(k)  # a new axis of the result, not of x
        elif k is Ellipsis:
            expand.append(k)
            rest.append(k)
        elif is_index_array(k) and dtype_kind(k.dtype) == "bool" and k.ndim == 0:
            taken = bool(_concrete_mask(k))
            expand.append(None)
            rest.append(xp.zeros((1 if taken else 0,), dtype=xp.int64, device=device))
        else:
            # Every other index consumes axes of x, which the expanded array keeps whole.
            used = k.ndim if is_index_array(k) and dtype_kind(k.dtype) == "bool" else 1
            expand.extend([slice(None)] * used)
            rest.append(k)
    return tuple(expand), tuple(rest)


def _slice_item(s: slice, n: int) -> Item:
    parts = []
    for v in (s.start, s.stop, s.step):
        parts.append(None if v is None else operator.index(v))
    if parts[2] == 0:
        raise ValueError(message("x[key]: a slice step cannot be zero", got=repr(s)))
    start, stop, step = slice(*parts).indices(n)
    length = len(range(start, stop, step))
    if length == 0:
        return (FULL, 0, 0, 1)
    last = start + (length - 1) * step
    if step > 0:
        return (FULL, start, last + 1, step)
    return (FULL, start, last - 1 if last > 0 else None, step)


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
        elif isinstance(k, list | tuple) or is_index_array(k):
            if not is_index_array(k):
                k = _sequence_index(x, k)
            kind = dtype_kind(k.dtype)
            if kind == "bool":
                if k.ndim == 0:
                    # getitem and setitem rewrite these first (split_zero_d_masks).
                    raise _index_error("a 0-d boolean index must be split off first",
                                       got="a 0-d mask in the key",
                                       fix="Pass the key through split_zero_d_masks.")
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
            items.extend((FULL, 0, shape[axis + i], 1) for i in range(fill))
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
        if it[0] == FULL:
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


def block_axes(lay: Layout) -> tuple[int, ...]:
    """The axes of ``lay.shape`` that the index arrays' broadcast shape occupies."""
    assert lay.block is not None
    return tuple(range(lay.block, lay.block + lay.block_ndim))


def block_shape(lay: Layout) -> tuple[int, ...]:
    """The broadcast shape of the index arrays."""
    return tuple(lay.shape[a] for a in block_axes(lay))


# --- the entry points used by Tracer.__getitem__ / __setitem__ -------------------------------
