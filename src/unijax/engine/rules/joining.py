"""Manipulation functions that join, split or replicate arrays.

``concat`` and ``stack`` take several arrays (their impls receive them as positional
arguments and pass a tuple to the backend); ``unstack`` returns several. ``repeat`` and
``tile`` replicate, so their VJPs sum the copies. Like every manipulation function they
are linear, and batching moves every mapped axis to the front (unmapped operands are
broadcast, because the joined result varies along the batch).
"""

from __future__ import annotations

from typing import Any

from unijax._dtypes import is_inexact
from unijax.engine.batching import bdim_to_front, move_bdim
from unijax.engine.core import Primitive, Tracer, base_value, namespace_for_value
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules.indexing import getitem, take
from unijax.engine.rules.manipulation import linear, normalize_axis, reshape, reshape_p
from unijax.errors import ConcretizationError, message

__all__ = ["concat_p", "repeat_p", "stack_p", "tile_p", "unstack_p"]


def _batch_all(args: tuple[Any, ...], bdims: tuple[int | None, ...]) -> list[Any]:
    size = next(shape_of(a)[d] for a, d in zip(args, bdims, strict=True) if d is not None)
    return [move_bdim(a, d, 0, size) for a, d in zip(args, bdims, strict=True)]


def _joined_jvp(prim: Primitive) -> None:
    """JVP of a function linear in all its arrays; zero tangents become zeros of the output."""

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
        out = prim.bind(*primals, **params)
        dots = [
            ops.zeros_like(p, dtype=out.dtype) if t is None
            else (t if t.dtype == out.dtype else ops.astype(t, out.dtype))
            for p, t in zip(primals, tangents, strict=True)
        ]
        return out, prim.bind(*dots, **params)

    def_jvp(prim, jvp)


def _check_arrays(arrays: Any, api: str) -> tuple[Any, ...]:
    if not isinstance(arrays, list | tuple) or not arrays:
        raise TypeError(message(f"{api}: arrays must be a non-empty tuple or list of arrays",
                                got=type(arrays).__name__))
    return tuple(arrays)


# --- concat ---------------------------------------------------------------------------------

concat_p = Primitive("concat")
concat_p.def_impl(lambda xp, *arrays, axis: xp.concat(arrays, axis=axis))
_joined_jvp(concat_p)


@def_api("concat")
def concat(arrays: tuple[Any, ...] | list[Any], /, *, axis: int | None = 0) -> Any:
    """The arrays joined along an existing ``axis`` (flattened first when ``None``)."""
    arrays = _check_arrays(arrays, "concat")
    if axis is None:
        arrays = tuple(reshape(a, (-1,)) for a in arrays)
        axis = 0
    n = ndim_of(arrays[0])
    if n == 0 or any(ndim_of(a) != n for a in arrays):
        raise ValueError(message("concat: the arrays need the same number (>= 1) of dimensions",
                                 got=str([shape_of(a) for a in arrays])))
    axis = normalize_axis(axis, n, "concat")
    return concat_p.bind(*arrays, axis=axis)


@def_vjp(concat_p)
def _concat_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int) -> Any:
    cts, start = [], 0
    lead = (slice(None),) * axis
    for x, need in zip(primals, needs, strict=True):
        stop = start + shape_of(x)[axis]
        if need and is_inexact(x.dtype):
            cts.append(unbroadcast(getitem(ct, (*lead, slice(start, stop))), x))
        else:
            cts.append(None)
        start = stop
    return tuple(cts)


@def_batch(concat_p)
def _concat_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int) -> Any:
    return concat_p.bind(*_batch_all(args, bdims), axis=axis + 1), 0


# --- stack / unstack ------------------------------------------------------------------------

stack_p = Primitive("stack")
stack_p.def_impl(lambda xp, *arrays, axis: xp.stack(arrays, axis=axis))
_joined_jvp(stack_p)


@def_api("stack")
def stack(arrays: tuple[Any, ...] | list[Any], /, *, axis: int = 0) -> Any:
    """The arrays (all of one shape) joined along a new ``axis``."""
    arrays = _check_arrays(arrays, "stack")
    shape = shape_of(arrays[0])
    if any(shape_of(a) != shape for a in arrays):
        raise ValueError(message("stack: the arrays need the same shape",
                                 got=str([shape_of(a) for a in arrays])))
    return stack_p.bind(*arrays, axis=normalize_axis(axis, len(shape) + 1, "stack"))


@def_vjp(stack_p)
def _stack_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int) -> Any:
    parts = unstack_p.bind(ct, axis=axis)
    return tuple(unbroadcast(c, x) if need and is_inexact(x.dtype) else None
                 for c, x, need in zip(parts, primals, needs, strict=True))


@def_batch(stack_p)
def _stack_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int) -> Any:
    return stack_p.bind(*_batch_all(args, bdims), axis=axis + 1), 0


def _unstack_impl(xp: Any, x: Any, *, axis: int) -> tuple[Any, ...]:
    fn = getattr(xp, "unstack", None)
    if fn is not None:
        return tuple(fn(x, axis=axis))
    lead = (slice(None),) * axis
    return tuple(x[(*lead, i, ...)] for i in range(x.shape[axis]))


unstack_p = Primitive("unstack", multiple_results=True, impl=_unstack_impl)


@def_api("unstack")
def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    """The slices of ``x`` along ``axis``, as a tuple."""
    return tuple(unstack_p.bind(x, axis=normalize_axis(axis, ndim_of(x), "unstack")))


@def_jvp(unstack_p)
def _unstack_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int) -> Any:
    outs = unstack_p.bind(primals[0], axis=axis)
    if tangents[0] is None:
        return outs, (None,) * len(outs)
    return outs, unstack_p.bind(tangents[0], axis=axis)


@def_vjp(unstack_p)
def _unstack_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any, needs: Any, *,
                 axis: int) -> Any:
    parts = [ops.zeros_like(o) if c is None else c for c, o in zip(cts, out, strict=True)]
    return (unbroadcast(stack_p.bind(*parts, axis=axis), primals[0]),)


@def_batch(unstack_p)
def _unstack_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int) -> Any:
    outs = unstack_p.bind(bdim_to_front(args[0], bdims[0]), axis=axis + 1)
    return outs, (0,) * len(outs)


# --- repeat ---------------------------------------------------------------------------------

repeat_p = Primitive("repeat")
linear(repeat_p)
repeat_p.def_impl(lambda xp, x, *, repeats, axis: xp.repeat(x, repeats, axis=axis))


def _concrete_repeats(repeats: Any) -> Any:
    if not isinstance(repeats, Tracer):
        return repeats
    try:
        return repeats._concrete("repeat counts")
    except ConcretizationError as err:
        raise ConcretizationError(
            message("repeat(x, repeats) with traced array repeats makes an array whose shape "
                    "depends on their values, which vmap and jit cannot know",
                    fix="Pass repeats as a Python int or a concrete array (not a traced one).")
        ) from err


@def_api("repeat")
def repeat(x: Any, repeats: int | Any, /, *, axis: int | None = None) -> Any:
    """Each element of ``x`` repeated ``repeats`` times along ``axis`` (flat when ``None``)."""
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    axis = normalize_axis(axis, ndim_of(x), "repeat")
    if not isinstance(repeats, int):
        counts = _concrete_repeats(repeats)
        if ndim_of(counts) > 1:
            raise ValueError(message("repeat: repeats must be an int or a 1-D array",
                                     got=f"shape {shape_of(counts)}"))
        if ndim_of(counts) == 0 or shape_of(counts)[0] == 1:
            repeats = int(counts if ndim_of(counts) == 0 else counts[0])
        else:
            # Per-element counts: the result is a gather, whose VJP sums the copies.
            xp = namespace_for_value(base_value(x))
            n = shape_of(x)[axis]
            return take(x, xp.repeat(xp.arange(n), counts), axis=axis)
    if repeats < 0:
        raise ValueError(message("repeat: repeats must be non-negative", got=str(repeats)))
    return repeat_p.bind(x, repeats=repeats, axis=axis)


@def_vjp(repeat_p)
def _repeat_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, repeats: int,
                axis: int) -> Any:
    shape = shape_of(primals[0])
    split = (*shape[: axis + 1], repeats, *shape[axis + 1 :])
    summed = ops.sum(reshape_p.bind(ct, shape=split), axis=axis + 1)
    return (unbroadcast(summed, primals[0]),)


@def_batch(repeat_p)
def _repeat_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, repeats: int,
                  axis: int) -> Any:
    return repeat_p.bind(bdim_to_front(args[0], bdims[0]), repeats=repeats, axis=axis + 1), 0


# --- tile -----------------------------------------------------------------------------------

tile_p = Primitive("tile")
linear(tile_p)
tile_p.def_impl(lambda xp, x, *, repetitions: xp.tile(x, repetitions))


@def_api("tile")
def tile(x: Any, repetitions: tuple[int, ...], /) -> Any:
    """``x`` repeated ``repetitions[i]`` times along each axis ``i``."""
    reps = tuple(int(r) for r in repetitions)
    if any(r < 0 for r in reps):
        raise ValueError(message("tile: repetitions must be non-negative", got=str(reps)))
    shape = shape_of(x)
    rank = max(len(shape), len(reps))
    if len(shape) < rank:
        x = reshape(x, (1,) * (rank - len(shape)) + shape)
    reps = (1,) * (rank - len(reps)) + reps
    if all(r == 1 for r in reps):
        return x
    return tile_p.bind(x, repetitions=reps)


@def_vjp(tile_p)
def _tile_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
              repetitions: tuple[int, ...]) -> Any:
    shape = shape_of(primals[0])
    split = tuple(d for r, n in zip(repetitions, shape, strict=True) for d in (r, n))
    summed = ops.sum(reshape_p.bind(ct, shape=split), axis=tuple(range(0, 2 * len(shape), 2)))
    return (unbroadcast(summed, primals[0]),)


@def_batch(tile_p)
def _tile_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                repetitions: tuple[int, ...]) -> Any:
    x = bdim_to_front(args[0], bdims[0])
    return tile_p.bind(x, repetitions=(1, *repetitions)), 0
