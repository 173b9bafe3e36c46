"""Creation functions that take arrays: ``*_like``, ``asarray``, ``tril``/``triu``, ``meshgrid``.

Functions that build arrays from Python data alone (``zeros``, ``ones``, ``empty``,
``full``, ``arange``, ``eye``, ``linspace``) are not traced: the traced namespace forwards
them to the concrete backend namespace, so the values they make are constants of any
transform. ``zeros_like`` and friends of a traced array depend only on its (static) shape
and dtype, so they also make constants. ``asarray`` of a list holding traced arrays stacks
them, so gradients flow through it.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive, Tracer, base_value, builtin_scalar, namespace_for_value
from unijax.engine.registry import def_api, def_batch, def_creation, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of
from unijax.engine.rules.manipulation import linear
from unijax.errors import message

__all__ = ["tril_p", "triu_p"]


def _make_like(name: str, x: Any, fill: tuple[Any, ...], dtype: Any, device: Any) -> Any:
    """``name(x, *fill, dtype=dtype, device=device)`` for an array or a tracer ``x``."""
    fill = tuple(builtin_scalar(v) for v in fill)
    if not isinstance(x, Tracer):
        xp = namespace_for_value(x)
        return getattr(xp, name)(x, *fill, dtype=dtype, device=device)
    dtype = x.dtype if dtype is None else dtype  # (NumPy dtypes are falsy: no `or`)
    if fill and isinstance(fill[0], Tracer):
        # full_like(x, traced_fill_value): the value varies, so the result is traced.
        return ops.broadcast_to(ops.astype(fill[0], dtype), x.shape)
    xp = namespace_for_value(base_value(x))
    value = getattr(xp, name.removesuffix("_like"))(
        x.shape, *fill, dtype=dtype, device=x.device if device is None else device)
    # A constant of x's transform rather than a bare array: operators then dispatch to
    # the tracer even on backends whose arrays refuse foreign operands (array-api-strict).
    return x._trace.pure(value)


def _like(name: str) -> None:
    def like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Any:
        return _make_like(name, x, (), dtype, device)

    like.__name__ = like.__qualname__ = name
    maker = name.removesuffix("_like")
    like.__doc__ = f"``{maker}`` with the shape (and by default dtype) of ``x``."
    def_api(name)(like)


for _name in ("zeros_like", "ones_like", "empty_like"):
    _like(_name)


@def_api("full_like")
def full_like(x: Any, /, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Any:
    """``full`` with the shape (and by default dtype) of ``x``; ``fill_value`` may be traced."""
    return _make_like("full_like", x, (fill_value,), dtype, device)


# --- asarray / from_dlpack ------------------------------------------------------------------


def _holds_array(obj: Any) -> bool:
    """Whether a (nested) sequence holds arrays, which the standard's asarray need not take."""
    return isinstance(obj, list | tuple) and any(
        hasattr(o, "shape") or _holds_array(o) for o in obj)


def _stacked(xp: Any, obj: Any) -> Any:
    """A (nested) sequence holding arrays as one array, by ``stack``."""
    if not isinstance(obj, list | tuple):
        return obj
    if not _holds_array(obj):
        return xp.asarray(obj)
    parts = [_stacked(xp, o) for o in obj]
    dtype = xp.result_type(*(p.dtype if hasattr(p, "dtype") else p for p in parts))
    parts = [
        (p if p.dtype == dtype else ops.astype(p, dtype)) if hasattr(p, "shape")
        else xp.asarray(p, dtype=dtype)
        for p in parts
    ]
    return ops.stack(parts, axis=0)


@def_creation("asarray")
def asarray(xp: Any, obj: Any, /, *, dtype: Any = None, device: Any = None,
            copy: bool | None = None) -> Any:
    """``obj`` as an array; a traced array (or a list holding them) stays traced.

    A list holding arrays (traced or not) is stacked, so it works on every backend.
    """
    if not _holds_array(obj) and not isinstance(obj, Tracer):
        kwargs = {k: v for k, v in (("dtype", dtype), ("device", device), ("copy", copy))
                  if v is not None}
        return xp.asarray(obj, **kwargs)
    if not isinstance(obj, Tracer):
        if copy is False:
            raise ValueError(message("asarray(copy=False) of a list cannot avoid a copy",
                                     fix="Pass copy=None or copy=True."))
        obj = _stacked(xp, obj)
        copy = None  # stacking made a new array already
    if dtype is not None and dtype != obj.dtype:
        if copy is False:
            raise ValueError(message("asarray(copy=False) cannot change the dtype without "
                                     "a copy", got=f"{obj.dtype} -> {dtype}"))
        return ops.astype(obj, dtype)
    return ops.astype(obj, obj.dtype) if copy else obj


@def_creation("from_dlpack")
def from_dlpack(xp: Any, x: Any, /, *, device: Any = None, copy: bool | None = None) -> Any:
    """An array of this namespace sharing ``x``'s data (a traced array is returned as is)."""
    if isinstance(x, Tracer):
        return ops.astype(x, x.dtype) if copy else x
    kwargs = {k: v for k, v in (("device", device), ("copy", copy)) if v is not None}
    return xp.from_dlpack(x, **kwargs)


# --- tril / triu ----------------------------------------------------------------------------


def _triangle(name: str) -> Primitive:
    prim = Primitive(name)
    linear(prim)

    @def_api(name)
    def api(x: Any, /, *, k: int = 0) -> Any:
        if ndim_of(x) < 2:
            raise ValueError(message(f"{name}: x needs at least two dimensions",
                                     got=f"shape {shape_of(x)}"))
        return prim.bind(x, k=int(k))

    api.__name__ = api.__qualname__ = name
    side = "lower" if name == "tril" else "upper"
    api.__doc__ = f"The {side} triangle of the last two axes of ``x`` (diagonal offset ``k``)."

    @def_vjp(prim)
    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, k: int) -> Any:
        return (prim.bind(ct, k=k),)

    @def_batch(prim)
    def batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, k: int) -> Any:
        return prim.bind(bdim_to_front(args[0], bdims[0]), k=k), 0

    return prim


tril_p = _triangle("tril")
triu_p = _triangle("triu")


# --- meshgrid -------------------------------------------------------------------------------


@def_api("meshgrid")
def meshgrid(*arrays: Any, indexing: str = "xy") -> list[Any]:
    """Coordinate grids from 1-D arrays (``indexing="xy"`` swaps the first two axes)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(message("meshgrid: indexing must be 'xy' or 'ij'", got=repr(indexing)))
    if any(ndim_of(a) != 1 for a in arrays):
        raise ValueError(message("meshgrid: every array must be one-dimensional",
                                 got=str([shape_of(a) for a in arrays])))
    sizes = [shape_of(a)[0] for a in arrays]
    positions = list(range(len(arrays)))
    if indexing == "xy" and len(arrays) > 1:
        positions[0], positions[1] = 1, 0
    shape = [0] * len(arrays)
    for size, position in zip(sizes, positions, strict=True):
        shape[position] = size
    grids = []
    for a, position in zip(arrays, positions, strict=True):
        lifted = [1] * len(arrays)
        lifted[position] = shape[position]
        grids.append(ops.broadcast_to(ops.reshape(a, tuple(lifted)), tuple(shape)))
    return grids
