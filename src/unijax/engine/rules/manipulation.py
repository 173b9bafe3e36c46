"""Manipulation functions that re-arrange one array: reshape, broadcast, permute, flip, roll.

All are linear in their array argument: the JVP applies the function to the tangent and
the VJP applies the inverse re-arrangement (or a sum, for broadcasting) to the cotangent.
Batching moves the mapped axis to the front and shifts the axis parameters by one. Axis
and shape parameters are normalised when the function is called (non-negative axes, no
``-1`` in shapes), so the recorded program is canonical. The functions that join or
split arrays live in :mod:`unijax.engine.rules.joining`.
"""

from __future__ import annotations

import math
from typing import Any

from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive
from unijax.engine.indexing import broadcast_shapes
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, shape_of, unbroadcast
from unijax.errors import UnijaxError, message

__all__ = [
    "AxisError",
    "broadcast_to_p",
    "expand_dims_p",
    "flip_p",
    "linear",
    "moveaxis_p",
    "normalize_axes",
    "normalize_axis",
    "permute_dims_p",
    "reshape_p",
    "roll_p",
    "squeeze_p",
]


class AxisError(UnijaxError, IndexError, ValueError):
    """An axis argument out of range or repeated (NumPy's ``AxisError`` is both, too)."""


def normalize_axis(axis: int, ndim: int, api: str) -> int:
    """``axis`` made non-negative for an array of ``ndim`` dimensions.

    Raises:
        AxisError: ``axis`` is not in ``[-ndim, ndim)``.
    """
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(message(f"{api}: axis must be an integer", got=repr(axis)))
    axis = int(axis)  # an IntEnum member is the int it stands for
    if not -ndim <= axis < ndim:
        raise AxisError(
            message(f"{api}: axis {axis} is out of range",
                    expected=f"an axis in [{-ndim}, {ndim}) for an array of {ndim} dimensions",
                    got=str(axis))
        )
    return axis + ndim if axis < 0 else axis


def normalize_axes(axes: int | tuple[int, ...] | list[int], ndim: int, api: str
                   ) -> tuple[int, ...]:
    """An int or sequence of axes as a tuple of distinct non-negative axes (order kept).

    Raises:
        AxisError: An axis is out of range or repeated.
    """
    items = (axes,) if isinstance(axes, int) else tuple(axes)
    out = tuple(normalize_axis(a, ndim, api) for a in items)
    if len(set(out)) != len(out):
        raise AxisError(message(f"{api}: repeated axis", got=str(tuple(items))))
    return out


def linear(prim: Primitive) -> None:
    """Register the JVP of a primitive linear in its one array argument (params kept)."""

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
        out = prim.bind(primals[0], **params)
        return out, None if tangents[0] is None else prim.bind(tangents[0], **params)

    def_jvp(prim, jvp)


# --- reshape ------------------------------------------------------------------------------

reshape_p = Primitive("reshape")
linear(reshape_p)
reshape_p.def_impl(lambda xp, x, *, shape: xp.reshape(x, shape))


def _resolve_shape(shape: tuple[int, ...], size: int) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    unknown = [i for i, d in enumerate(shape) if d == -1]
    known = math.prod(d for d in shape if d != -1)
    if len(unknown) > 1 or any(d < -1 for d in shape):
        raise ValueError(message("reshape: invalid shape", got=str(shape),
                                 fix="Use non-negative sizes and at most one -1."))
    if unknown:
        if known == 0 or size % known:
            raise ValueError(message(f"reshape: cannot reshape an array of size {size}",
                                     got=f"shape {shape}"))
        shape = (*shape[: unknown[0]], size // known, *shape[unknown[0] + 1 :])
    if math.prod(shape) != size:
        raise ValueError(message(f"reshape: cannot reshape an array of size {size}",
                                 got=f"shape {shape}"))
    return shape


@def_api("reshape")
def reshape(x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
    """``x`` with a new ``shape`` (one entry may be ``-1``)."""
    shape = _resolve_shape(tuple(shape), math.prod(shape_of(x)))
    return reshape_p.bind(x, shape=shape)


@def_vjp(reshape_p)
def _reshape_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, shape: Any) -> Any:
    return (reshape_p.bind(ct, shape=shape_of(primals[0])),)


@def_batch(reshape_p)
def _reshape_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, shape: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return reshape_p.bind(x, shape=(shape_of(x)[0], *shape)), 0


# --- broadcast_to / broadcast_arrays --------------------------------------------------------

broadcast_to_p = Primitive("broadcast_to")
linear(broadcast_to_p)
broadcast_to_p.def_impl(lambda xp, x, *, shape: xp.broadcast_to(x, shape))


@def_api("broadcast_to")
def broadcast_to(x: Any, /, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape``."""
    shape = tuple(int(d) for d in shape)
    try:
        ok = broadcast_shapes(shape_of(x), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(message("broadcast_to: the array cannot be broadcast",
                                 expected=f"a shape broadcastable to {shape}",
                                 got=f"shape {shape_of(x)}"))
    return broadcast_to_p.bind(x, shape=shape)


@def_vjp(broadcast_to_p)
def _broadcast_to_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                      shape: Any) -> Any:
    return (unbroadcast(ct, primals[0]),)


@def_batch(broadcast_to_p)
def _broadcast_to_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, shape: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    xs = shape_of(x)
    missing = len(shape) - (len(xs) - 1)
    if missing:
        x = reshape_p.bind(x, shape=(xs[0],) + (1,) * missing + xs[1:])
    return broadcast_to_p.bind(x, shape=(xs[0], *shape)), 0


@def_api("broadcast_arrays")
def broadcast_arrays(*arrays: Any) -> list[Any]:
    """The arrays broadcast against one another."""
    shape = broadcast_shapes(*(shape_of(a) for a in arrays))
    return [a if shape_of(a) == shape else broadcast_to(a, shape) for a in arrays]


# --- permute_dims / moveaxis ----------------------------------------------------------------

permute_dims_p = Primitive("permute_dims")
linear(permute_dims_p)
permute_dims_p.def_impl(lambda xp, x, *, axes: xp.permute_dims(x, axes))


@def_api("permute_dims")
def permute_dims(x: Any, /, axes: tuple[int, ...]) -> Any:
    """``x`` with its axes in the order ``axes``."""
    n = ndim_of(x)
    normalized = normalize_axes(tuple(axes), n, "permute_dims")
    if len(normalized) != n:
        raise AxisError(message("permute_dims: axes must be a permutation of the axes of x",
                                got=f"{tuple(axes)} for {n} dimensions"))
    if normalized == tuple(range(n)):
        return x
    return permute_dims_p.bind(x, axes=normalized)


@def_vjp(permute_dims_p)
def _permute_dims_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                      axes: Any) -> Any:
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (permute_dims_p.bind(ct, axes=tuple(inverse)),)


@def_batch(permute_dims_p)
def _permute_dims_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axes: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return permute_dims_p.bind(x, axes=(0, *(a + 1 for a in axes))), 0


moveaxis_p = Primitive("moveaxis")
linear(moveaxis_p)
moveaxis_p.def_impl(lambda xp, x, *, source, destination: xp.moveaxis(x, source, destination))


@def_api("moveaxis")
def moveaxis(x: Any, source: int | tuple[int, ...], destination: int | tuple[int, ...],
             /) -> Any:
    """``x`` with axes ``source`` moved to positions ``destination``."""
    n = ndim_of(x)
    src = normalize_axes(source, n, "moveaxis")
    dst = normalize_axes(destination, n, "moveaxis")
    if len(src) != len(dst):
        raise ValueError(message("moveaxis: source and destination need as many axes",
                                 got=f"{source} and {destination}"))
    if src == dst:
        return x
    return moveaxis_p.bind(x, source=src, destination=dst)


@def_vjp(moveaxis_p)
def _moveaxis_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, source: Any,
                  destination: Any) -> Any:
    return (moveaxis_p.bind(ct, source=destination, destination=source),)


@def_batch(moveaxis_p)
def _moveaxis_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, source: Any,
                    destination: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return moveaxis_p.bind(x, source=tuple(a + 1 for a in source),
                           destination=tuple(a + 1 for a in destination)), 0


# --- expand_dims / squeeze ------------------------------------------------------------------

expand_dims_p = Primitive("expand_dims")
linear(expand_dims_p)


@def_api("expand_dims")
def expand_dims(x: Any, /, axis: int | tuple[int, ...] = 0) -> Any:
    """``x`` with new axes of size one at ``axis`` (an int, or a tuple as in 2025.12).

    ``axis`` may be passed by position or by name, as the standard says since its
    revision that allowed tuples; its default of ``0`` is kept for code written against
    the earlier text, where it was keyword-only and optional.
    """
    shape = shape_of(x)
    if isinstance(axis, int):
        return expand_dims_p.bind(x, axis=normalize_axis(axis, len(shape) + 1, "expand_dims"))
    axes = sorted(normalize_axes(tuple(axis), len(shape) + len(axis), "expand_dims"))
    if len(axes) == 1:
        return expand_dims_p.bind(x, axis=axes[0])
    new = list(shape)
    for a in axes:
        new.insert(a, 1)
    return reshape_p.bind(x, shape=tuple(new))


@def_vjp(expand_dims_p)
def _expand_dims_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                     axis: int) -> Any:
    return (reshape_p.bind(ct, shape=shape_of(primals[0])),)


@def_batch(expand_dims_p)
def _expand_dims_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: int) -> Any:
    return expand_dims_p.bind(bdim_to_front(args[0], bdims[0]), axis=axis + 1), 0


squeeze_p = Primitive("squeeze")
linear(squeeze_p)


@def_api("squeeze")
def squeeze(x: Any, /, axis: int | tuple[int, ...]) -> Any:
    """``x`` without the axes ``axis``, each of which must have size one."""
    shape = shape_of(x)
    axes = normalize_axes(axis, len(shape), "squeeze")
    if any(shape[a] != 1 for a in axes):
        raise ValueError(message("squeeze: only axes of size one can be removed",
                                 got=f"axis {axis} of an array of shape {shape}"))
    if not axes:
        return x
    return squeeze_p.bind(x, axis=tuple(sorted(axes)))


@def_vjp(squeeze_p)
def _squeeze_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any) -> Any:
    return (reshape_p.bind(ct, shape=shape_of(primals[0])),)


@def_batch(squeeze_p)
def _squeeze_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return squeeze_p.bind(x, axis=tuple(a + 1 for a in axis)), 0


# --- flip / roll ----------------------------------------------------------------------------

flip_p = Primitive("flip")
linear(flip_p)


@def_api("flip")
def flip(x: Any, /, *, axis: int | tuple[int, ...] | None = None) -> Any:
    """``x`` reversed along ``axis`` (all axes by default)."""
    n = ndim_of(x)
    axes = tuple(range(n)) if axis is None else tuple(sorted(normalize_axes(axis, n, "flip")))
    if not axes:
        return x
    return flip_p.bind(x, axis=axes)


@def_vjp(flip_p)
def _flip_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any) -> Any:
    return (flip_p.bind(ct, axis=axis),)


@def_batch(flip_p)
def _flip_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: Any) -> Any:
    return flip_p.bind(bdim_to_front(args[0], bdims[0]), axis=tuple(a + 1 for a in axis)), 0


roll_p = Primitive("roll")
linear(roll_p)
roll_p.def_impl(lambda xp, x, *, shift, axis: xp.roll(x, shift, axis=axis))


@def_api("roll")
def roll(x: Any, /, shift: int | tuple[int, ...], *,
         axis: int | tuple[int, ...] | None = None) -> Any:
    """``x`` with elements shifted by ``shift`` along ``axis`` (flattened when ``None``)."""
    shape = shape_of(x)
    if axis is None:
        if not isinstance(shift, int):
            raise TypeError(message("roll: with axis=None, shift must be an integer",
                                    got=repr(shift)))
        flat = roll(reshape(x, (-1,)), shift, axis=0)
        return reshape_p.bind(flat, shape=shape) if len(shape) != 1 else flat
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    if len(shifts) != len(axes):
        raise ValueError(message("roll: shift and axis need the same number of entries",
                                 got=f"shift={shift}, axis={axis}"))
    total: dict[int, int] = {}
    for a, s in zip((normalize_axis(a, len(shape), "roll") for a in axes), shifts, strict=True):
        total[a] = total.get(a, 0) + int(s)
    final = {a: s % shape[a] for a, s in total.items() if shape[a] and s % shape[a]}
    if not final:
        return x
    keys = tuple(sorted(final))
    return roll_p.bind(x, shift=tuple(final[a] for a in keys), axis=keys)


@def_vjp(roll_p)
def _roll_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, shift: Any,
              axis: Any) -> Any:
    return (roll_p.bind(ct, shift=tuple(-s for s in shift), axis=axis),)


@def_batch(roll_p)
def _roll_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, shift: Any,
                axis: Any) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return roll_p.bind(x, shift=shift, axis=tuple(a + 1 for a in axis)), 0
