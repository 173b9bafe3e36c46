"""Reductions, statistical and utility functions, with their derivatives and batching rules.

Covered: ``sum``, ``prod``, ``mean``, ``max``, ``min``, ``var``, ``std``, ``all``,
``any``, ``cumulative_sum``, ``cumulative_prod`` and ``diff``.

The traced functions normalise ``axis`` to a sorted tuple of non-negative axes (an
``int`` for the cumulative functions and ``diff``), so the IR is canonical and every
batching rule only moves the mapped axis to the front and shifts the axes by one.

Derivatives follow JAX: ``max``/``min`` share the cotangent equally among tied extrema,
and ``prod``/``cumulative_prod`` are exact where inputs are zero (no division by
``x``), to every order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from unijax._batching import bdim_to_front
from unijax._core import Primitive, base_value, namespace_for_value
from unijax._dtypes import is_inexact
from unijax._registry import def_api, def_batch, def_jvp, def_nondifferentiable, def_vjp
from unijax.rules._helpers import ndim_of, ops, shape_of, unbroadcast

__all__ = [
    "expand_reduced",
    "reduced_axes",
    "reduction_batch",
    "linear_recurrence",
    "reverse_cumsum",
    "slice_axis",
]

Axis = int | tuple[int, ...] | None


# --- helpers ------------------------------------------------------------------------------


def reduced_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (``None``: all of them)."""
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a + ndim if a < 0 else a for a in items))


def _single_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def expand_reduced(ct: Any, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    """Broadcast the cotangent of a reduction over ``axes`` back to the shape of ``x``."""
    shape = shape_of(x)
    if not keepdims:
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
        ct = ops.reshape(ct, kept)
    return ops.broadcast_to(ct, shape)


def _keep(y: Any, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    # A reduced value in the layout of keepdims=True, so it broadcasts against ``x``.
    if keepdims:
        return y
    return ops.reshape(y, tuple(1 if i in axes else d for i, d in enumerate(shape_of(x))))


def _count(x: Any, axes: tuple[int, ...]) -> int:
    shape = shape_of(x)
    return math.prod(shape[a] for a in axes)


def _real(x: Any) -> bool:
    return is_inexact(x.dtype)


def slice_axis(x: Any, axis: int, start: int | None, stop: int | None) -> Any:
    """``x[start:stop]`` along ``axis`` (non-negative), through the traced indexing."""
    return x[(slice(None),) * axis + (slice(start, stop),)]


def reverse_cumsum(x: Any, axis: int) -> Any:
    """``out[i] = sum(x[i:])`` along ``axis``: the transpose of ``cumulative_sum``."""
    return ops.flip(ops.cumulative_sum(ops.flip(x, axis=axis), axis=axis), axis=axis)


def _zeros(shape: tuple[int, ...], like: Any) -> Any:
    # A constant of the concrete namespace (it carries no derivative and no batch axis).
    base = base_value(like)
    xp = namespace_for_value(base)
    from array_api_compat import device

    return xp.zeros(shape, dtype=like.dtype, device=device(base))


def reduction_batch(prim: Primitive) -> Callable[..., Any]:
    """The batching rule of a reduction whose ``axis`` param is a tuple of axes."""

    def rule(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: tuple[int, ...],
             **params: Any) -> Any:
        x = bdim_to_front(args[0], bdims[0])
        return prim.bind(x, axis=tuple(a + 1 for a in axis), **params), 0

    return rule


def _cumulative_batch(prim: Primitive) -> Callable[..., Any]:
    def rule(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int,
             **params: Any) -> Any:
        x = bdim_to_front(args[0], bdims[0])
        return prim.bind(x, axis=axis + 1, **params), 0

    return rule


# --- sum ----------------------------------------------------------------------------------

sum_p = Primitive("sum")


@def_api("sum")
def sum(x: Any, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
    return sum_p.bind(x, axis=reduced_axes(axis, ndim_of(x)), dtype=dtype, keepdims=keepdims)


@def_jvp(sum_p)
def _sum_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    out = sum_p.bind(primals[0], **params)
    if not (_real(primals[0]) and _real(out)):
        return out, None
    return out, sum_p.bind(tangents[0], **params)


@def_vjp(sum_p)
def _sum_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             dtype: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not (_real(x) and _real(out)):
        return (None,)
    return (unbroadcast(expand_reduced(ct, x, axis, keepdims), x),)


def_batch(sum_p, reduction_batch(sum_p))


# --- prod ---------------------------------------------------------------------------------

prod_p = Primitive("prod")


@def_api("prod")
def prod(x: Any, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
    return prod_p.bind(x, axis=reduced_axes(axis, ndim_of(x)), dtype=dtype, keepdims=keepdims)


def _prod_others(x: Any, axes: tuple[int, ...]) -> Any:
    """``g[k] = prod(x[j] for j != k)`` over ``axes``: the partials of ``prod``.

    Products of the elements before and after each one (exclusive cumulative products)
    give them exactly, zeros included, with no division; they are differentiable again
    through ``cumulative_prod``'s own rules.
    """
    shape = shape_of(x)
    n = _count(x, axes)
    if n <= 1:
        return ops.ones_like(x)
    rest = tuple(i for i in range(len(shape)) if i not in axes)
    order = rest + axes
    moved = ops.permute_dims(x, order) if order != tuple(range(len(shape))) else x
    lead = tuple(shape[i] for i in rest)
    flat = ops.reshape(moved, (*lead, n)) if len(axes) != 1 else moved
    last = len(lead)
    before = slice_axis(ops.cumulative_prod(flat, axis=last, include_initial=True),
                        last, None, -1)
    flipped = ops.flip(flat, axis=last)
    after = slice_axis(ops.cumulative_prod(flipped, axis=last, include_initial=True),
                       last, None, -1)
    g = before * ops.flip(after, axis=last)
    if len(axes) != 1:
        g = ops.reshape(g, shape_of(moved))
    if order != tuple(range(len(shape))):
        inverse = tuple(order.index(i) for i in range(len(shape)))
        g = ops.permute_dims(g, inverse)
    return g


@def_jvp(prod_p)
def _prod_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any, dtype: Any,
              keepdims: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = prod_p.bind(x, axis=axis, dtype=dtype, keepdims=keepdims)
    if not (_real(x) and _real(out)):
        return out, None
    t = ops.sum(x_dot * _prod_others(x, axis), axis=axis, dtype=dtype, keepdims=keepdims)
    return out, t


@def_vjp(prod_p)
def _prod_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
              dtype: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not (_real(x) and _real(out)):
        return (None,)
    return (unbroadcast(expand_reduced(ct, x, axis, keepdims) * _prod_others(x, axis), x),)


def_batch(prod_p, reduction_batch(prod_p))


# --- mean ---------------------------------------------------------------------------------

mean_p = Primitive("mean")


@def_api("mean")
def mean(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
    return mean_p.bind(x, axis=reduced_axes(axis, ndim_of(x)), keepdims=keepdims)


@def_jvp(mean_p)
def _mean_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    return mean_p.bind(primals[0], **params), mean_p.bind(tangents[0], **params)


@def_vjp(mean_p)
def _mean_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
              keepdims: bool) -> Any:
    x = primals[0]
    return (unbroadcast(expand_reduced(ct, x, axis, keepdims) / _count(x, axis), x),)


def_batch(mean_p, reduction_batch(mean_p))


# --- max / min ----------------------------------------------------------------------------


def _chooser(name: str) -> Primitive:
    """``max`` or ``min``: the derivative is shared equally among tied extrema (as JAX)."""
    prim = Primitive(name)

    def api(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
        return prim.bind(x, axis=reduced_axes(axis, ndim_of(x)), keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = f"The {name}imum of ``x`` over ``axis`` (the Array API's ``{name}``)."
    def_api(name)(api)

    def share(x: Any, out: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
        # 1/count at each position that attains the extremum, 0 elsewhere.
        hits = ops.astype(x == _keep(out, x, axis, keepdims), x.dtype)
        return hits / ops.sum(hits, axis=axis, keepdims=True)

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
            keepdims: bool) -> Any:
        (x,), (x_dot,) = primals, tangents
        out = prim.bind(x, axis=axis, keepdims=keepdims)
        if not _real(x):
            return out, None
        return out, ops.sum(x_dot * share(x, out, axis, keepdims), axis=axis, keepdims=keepdims)

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
            keepdims: bool) -> Any:
        x = primals[0]
        if not _real(x):
            return (None,)
        return (unbroadcast(expand_reduced(ct, x, axis, keepdims) * share(x, out, axis, keepdims),
                            x),)

    def_jvp(prim, jvp)
    def_vjp(prim, vjp)
    def_batch(prim, reduction_batch(prim))
    return prim


max_p = _chooser("max")
min_p = _chooser("min")


# --- var / std ----------------------------------------------------------------------------

var_p = Primitive("var")
std_p = Primitive("std")


@def_api("var")
def var(x: Any, /, *, axis: Axis = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Any:
    return var_p.bind(x, axis=reduced_axes(axis, ndim_of(x)), correction=correction,
                      keepdims=keepdims)


@def_api("std")
def std(x: Any, /, *, axis: Axis = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Any:
    return std_p.bind(x, axis=reduced_axes(axis, ndim_of(x)), correction=correction,
                      keepdims=keepdims)


def _centered(x: Any, axis: tuple[int, ...], correction: int | float) -> Any:
    """``(x - mean(x)) / (n - correction)``: half the gradient of ``var``."""
    return (x - ops.mean(x, axis=axis, keepdims=True)) / (_count(x, axis) - correction)


@def_jvp(var_p)
def _var_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = var_p.bind(x, axis=axis, correction=correction, keepdims=keepdims)
    t = ops.sum(_centered(x, axis, correction) * x_dot, axis=axis, keepdims=keepdims)
    return out, 2 * t


@def_vjp(var_p)
def _var_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    x = primals[0]
    g = 2 * _centered(x, axis, correction) * expand_reduced(ct, x, axis, keepdims)
    return (unbroadcast(g, x),)


@def_jvp(std_p)
def _std_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = std_p.bind(x, axis=axis, correction=correction, keepdims=keepdims)
    t = ops.sum(_centered(x, axis, correction) * x_dot, axis=axis, keepdims=keepdims)
    return out, t / out


@def_vjp(std_p)
def _std_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    x = primals[0]
    g = _centered(x, axis, correction) * expand_reduced(ct / out, x, axis, keepdims)
    return (unbroadcast(g, x),)


def_batch(var_p, reduction_batch(var_p))
def_batch(std_p, reduction_batch(std_p))


# --- all / any ----------------------------------------------------------------------------


def _logical_reduction(name: str) -> Primitive:
    prim = Primitive(name)

    def api(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
        return prim.bind(x, axis=reduced_axes(axis, ndim_of(x)), keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = f"Whether {name} elements of ``x`` are true over ``axis`` (no derivative)."
    def_api(name)(api)
    def_nondifferentiable(prim)
    def_batch(prim, reduction_batch(prim))
    return prim


all_p = _logical_reduction("all")
any_p = _logical_reduction("any")


# --- cumulative_sum -----------------------------------------------------------------------

cumulative_sum_p = Primitive("cumulative_sum")


def _cumulative_axis(x: Any, axis: int | None, name: str) -> int:
    n = ndim_of(x)
    if axis is None:
        if n != 1:
            raise ValueError(
                f"{name}(x) needs axis= for a {n}-dimensional x; axis may be omitted only "
                "for one-dimensional arrays. Pass axis=... explicitly."
            )
        return 0
    return _single_axis(axis, n)


@def_api("cumulative_sum")
def cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                   include_initial: bool = False) -> Any:
    return cumulative_sum_p.bind(x, axis=_cumulative_axis(x, axis, "cumulative_sum"),
                                 dtype=dtype, include_initial=include_initial)


@def_jvp(cumulative_sum_p)
def _cumulative_sum_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...],
                        **params: Any) -> Any:
    out = cumulative_sum_p.bind(primals[0], **params)
    if not (_real(primals[0]) and _real(out)):
        return out, None
    return out, cumulative_sum_p.bind(tangents[0], **params)


@def_vjp(cumulative_sum_p)
def _cumulative_sum_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                        axis: int, dtype: Any, include_initial: bool) -> Any:
    x = primals[0]
    if not (_real(x) and _real(out)):
        return (None,)
    if include_initial:
        ct = slice_axis(ct, axis, 1, None)  # the initial zero does not depend on x
    return (unbroadcast(reverse_cumsum(ct, axis), x),)


def_batch(cumulative_sum_p, _cumulative_batch(cumulative_sum_p))


# --- cumulative_prod ----------------------------------------------------------------------
#
# d out[i] = sum_{k <= i} x_dot[k] * prod(x[:k]) * prod(x[k+1:i+1]), a first-order linear
# recurrence, s[i] = x[i] * s[i-1] + prod(x[:i]) * x_dot[i]. Solving it with a parallel
# prefix scan of multiplications (as JAX does) is exact where x has zeros, and the rules
# stay polynomial in x, so every higher derivative is exact too. Dividing by x would not be.

cumulative_prod_p = Primitive("cumulative_prod")


@def_api("cumulative_prod")
def cumulative_prod(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                    include_initial: bool = False) -> Any:
    return cumulative_prod_p.bind(x, axis=_cumulative_axis(x, axis, "cumulative_prod"),
                                  dtype=dtype, include_initial=include_initial)


def linear_recurrence(a: Any, b: Any, axis: int) -> Any:
    """``s[i] = b[i] + a[i] * s[i-1]`` along ``axis`` (``s[-1] = 0``), by a prefix scan.

    Hillis-Steele doubling: ``log2(n)`` steps of slices, multiplications and one concat,
    all traced functions, so the result is differentiable in ``a`` and ``b``.
    """
    n = shape_of(b)[axis]
    step = 1
    while step < n:
        head_b = slice_axis(b, axis, None, step)
        a_late, b_early = slice_axis(a, axis, step, None), slice_axis(b, axis, None, n - step)
        b = ops.concat([head_b, slice_axis(b, axis, step, None) + a_late * b_early], axis=axis)
        if step * 2 < n:
            a_early = slice_axis(a, axis, None, n - step)
            a = ops.concat([slice_axis(a, axis, None, step), a_late * a_early], axis=axis)
        step *= 2
    return b


def _exclusive_cumprod(x: Any, axis: int) -> Any:
    """``prod(x[:i])`` along ``axis``."""
    full = ops.cumulative_prod(x, axis=axis, include_initial=True)
    return slice_axis(full, axis, None, shape_of(x)[axis])


def _initial_slice(t: Any, axis: int) -> Any:
    """``t`` with a zero slice in front along ``axis`` (the tangent of the initial value)."""
    shape = tuple(1 if i == axis else d for i, d in enumerate(shape_of(t)))
    return ops.concat([_zeros(shape, t), t], axis=axis)


def _as_cumulative_dtype(x: Any, dtype: Any) -> Any:
    return x if dtype is None or x.dtype == dtype else ops.astype(x, dtype)


@def_jvp(cumulative_prod_p)
def _cumulative_prod_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int,
                         dtype: Any, include_initial: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = cumulative_prod_p.bind(x, axis=axis, dtype=dtype, include_initial=include_initial)
    if not (_real(x) and _real(out)) or shape_of(x)[axis] == 0:
        return out, None
    x, x_dot = _as_cumulative_dtype(x, dtype), _as_cumulative_dtype(x_dot, dtype)
    t = linear_recurrence(x, _exclusive_cumprod(x, axis) * x_dot, axis)
    return out, _initial_slice(t, axis) if include_initial else t


@def_vjp(cumulative_prod_p)
def _cumulative_prod_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                         axis: int, dtype: Any, include_initial: bool) -> Any:
    # The transpose runs the recurrence backwards: s[k] = ct[k] + x[k+1] * s[k+1], and
    # the cotangent of x[k] is prod(x[:k]) * s[k].
    x = primals[0]
    n = shape_of(x)[axis]
    if not (_real(x) and _real(out)) or n == 0:
        return (None,)
    if include_initial:
        ct = slice_axis(ct, axis, 1, None)  # the initial one does not depend on x
    xc = _as_cumulative_dtype(x, dtype)
    a = _initial_slice(ops.flip(slice_axis(xc, axis, 1, None), axis=axis), axis)
    s = ops.flip(linear_recurrence(a, ops.flip(ct, axis=axis), axis), axis=axis)
    return (unbroadcast(_exclusive_cumprod(xc, axis) * s, x),)


def_batch(cumulative_prod_p, _cumulative_batch(cumulative_prod_p))


# --- diff ---------------------------------------------------------------------------------

diff_p = Primitive("diff")
diff_p.def_impl(lambda xp, x, *, axis, n: xp.diff(x, axis=axis, n=n))


@def_api("diff")
def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None,
         append: Any = None) -> Any:
    axis = _single_axis(axis, ndim_of(x))
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, x, append) if p is not None]
        x = ops.concat(parts, axis=axis)
    if n == 0:
        return x
    return diff_p.bind(x, axis=axis, n=n)


@def_jvp(diff_p)
def _diff_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    return diff_p.bind(primals[0], **params), diff_p.bind(tangents[0], **params)


@def_vjp(diff_p)
def _diff_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int,
              n: int) -> Any:
    # The transpose of n-th differences: pad n zeros on both sides, difference n times,
    # and flip the sign n times.
    x = primals[0]
    pad_shape = tuple(n if i == axis else d for i, d in enumerate(shape_of(ct)))
    pad = _zeros(pad_shape, ct)
    g = diff_p.bind(ops.concat([pad, ct, pad], axis=axis), axis=axis, n=n)
    return (unbroadcast(-g if n % 2 else g, x),)


def_batch(diff_p, _cumulative_batch(diff_p))
