"""Running functions and differences: ``cumulative_sum``, ``cumulative_prod``, ``diff``.

Each takes one int ``axis`` (normalised to non-negative at API time), and is linear in
its input except ``cumulative_prod``, whose derivative is exact where the input has zeros,
to every order, as in JAX: it solves the linear recurrence of the tangent with a parallel
prefix scan of multiplications instead of dividing by ``x``.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.core import Primitive
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules.reductions import (
    axis_batch,
    constant_zeros,
    differentiable,
    normalize_axis,
    slice_axis,
)
from unijax.errors import message

__all__ = ["linear_recurrence", "reverse_cumsum"]


def reverse_cumsum(x: Any, axis: int) -> Any:
    """``out[i] = sum(x[i:])`` along ``axis``: the transpose of ``cumulative_sum``."""
    return ops.flip(ops.cumulative_sum(ops.flip(x, axis=axis), axis=axis), axis=axis)


# --- cumulative_sum -----------------------------------------------------------------------

cumulative_sum_p = Primitive("cumulative_sum")


def _cumulative_axis(x: Any, axis: int | None, name: str) -> int:
    n = ndim_of(x)
    if axis is None:
        if n != 1:
            raise ValueError(
                message(f"{name}(x) needs an axis for a {n}-dimensional x",
                        expected="a one-dimensional x when axis is omitted",
                        got=f"shape {shape_of(x)}", fix="Pass axis=... explicitly.")
            )
        return 0
    return normalize_axis(axis, n, name)


@def_api("cumulative_sum")
def cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                   include_initial: bool = False) -> Any:
    """Running sums of ``x`` along ``axis`` (the standard's ``cumulative_sum``).

    Raises:
        ValueError: ``axis`` is omitted but ``x`` is not one-dimensional.
    """
    return cumulative_sum_p.bind(x, axis=_cumulative_axis(x, axis, "cumulative_sum"),
                                 dtype=dtype, include_initial=include_initial)


@def_jvp(cumulative_sum_p)
def _cumulative_sum_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...],
                        **params: Any) -> Any:
    out = cumulative_sum_p.bind(primals[0], **params)
    if not (differentiable(primals[0]) and differentiable(out)):
        return out, None
    return out, cumulative_sum_p.bind(tangents[0], **params)


@def_vjp(cumulative_sum_p)
def _cumulative_sum_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                        axis: int, dtype: Any, include_initial: bool) -> Any:
    x = primals[0]
    if not (differentiable(x) and differentiable(out)):
        return (None,)
    if include_initial:
        ct = slice_axis(ct, axis, 1, None)  # the initial zero does not depend on x
    return (unbroadcast(reverse_cumsum(ct, axis), x),)


def_batch(cumulative_sum_p, axis_batch(cumulative_sum_p))


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
    """Running products of ``x`` along ``axis`` (the standard's ``cumulative_prod``).

    Derivatives are exact where ``x`` has zeros, to every order (see above).

    Raises:
        ValueError: ``axis`` is omitted but ``x`` is not one-dimensional.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def f(x):
        ...     return array_namespace(x).sum(array_namespace(x).cumulative_prod(x))
        >>> unijax.grad(f)(np.asarray([2.0, 0.0, 3.0]))
        array([1., 8., 0.])
    """
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
        late = ops.add(slice_axis(b, axis, step, None), ops.multiply(a_late, b_early))
        b = ops.concat([head_b, late], axis=axis)
        if step * 2 < n:
            a_early = slice_axis(a, axis, None, n - step)
            a = ops.concat([slice_axis(a, axis, None, step), ops.multiply(a_late, a_early)],
                           axis=axis)
        step *= 2
    return b


def _exclusive_cumprod(x: Any, axis: int) -> Any:
    """``prod(x[:i])`` along ``axis``."""
    full = ops.cumulative_prod(x, axis=axis, include_initial=True)
    return slice_axis(full, axis, None, shape_of(x)[axis])


def _initial_slice(t: Any, axis: int) -> Any:
    """``t`` with a zero slice in front along ``axis`` (the tangent of the initial value)."""
    shape = tuple(1 if i == axis else d for i, d in enumerate(shape_of(t)))
    return ops.concat([constant_zeros(shape, t), t], axis=axis)


def _as_cumulative_dtype(x: Any, dtype: Any) -> Any:
    return x if dtype is None or x.dtype == dtype else ops.astype(x, dtype)


@def_jvp(cumulative_prod_p)
def _cumulative_prod_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int,
                         dtype: Any, include_initial: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = cumulative_prod_p.bind(x, axis=axis, dtype=dtype, include_initial=include_initial)
    if not (differentiable(x) and differentiable(out)) or shape_of(x)[axis] == 0:
        return out, None
    x, x_dot = _as_cumulative_dtype(x, dtype), _as_cumulative_dtype(x_dot, dtype)
    t = linear_recurrence(x, ops.multiply(_exclusive_cumprod(x, axis), x_dot), axis)
    return out, _initial_slice(t, axis) if include_initial else t


@def_vjp(cumulative_prod_p)
def _cumulative_prod_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                         axis: int, dtype: Any, include_initial: bool) -> Any:
    # The transpose runs the recurrence backwards: s[k] = ct[k] + x[k+1] * s[k+1], and
    # the cotangent of x[k] is prod(x[:k]) * s[k].
    x = primals[0]
    n = shape_of(x)[axis]
    if not (differentiable(x) and differentiable(out)) or n == 0:
        return (None,)
    if include_initial:
        ct = slice_axis(ct, axis, 1, None)  # the initial one does not depend on x
    xc = _as_cumulative_dtype(x, dtype)
    a = _initial_slice(ops.flip(slice_axis(xc, axis, 1, None), axis=axis), axis)
    s = ops.flip(linear_recurrence(a, ops.flip(ct, axis=axis), axis), axis=axis)
    return (unbroadcast(ops.multiply(_exclusive_cumprod(xc, axis), s), x),)


def_batch(cumulative_prod_p, axis_batch(cumulative_prod_p))


# --- diff ---------------------------------------------------------------------------------

diff_p = Primitive("diff")
diff_p.def_impl(lambda xp, x, *, axis, n: xp.diff(x, axis=axis, n=n))


@def_api("diff")
def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None,
         append: Any = None) -> Any:
    """The ``n``-th forward difference of ``x`` along ``axis`` (the standard's ``diff``).

    ``prepend`` and ``append`` are concatenated to ``x`` first, and are differentiable too.
    """
    axis = normalize_axis(axis, ndim_of(x), "diff")
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, x, append) if p is not None]
        x = ops.concat(parts, axis=axis)
    if n == 0:
        return x
    return diff_p.bind(x, axis=axis, n=n)


@def_jvp(diff_p)
def _diff_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    out = diff_p.bind(primals[0], **params)
    if not differentiable(primals[0]):
        return out, None
    return out, diff_p.bind(tangents[0], **params)


@def_vjp(diff_p)
def _diff_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int,
              n: int) -> Any:
    # The transpose of n-th differences: pad n zeros on both sides, difference n times,
    # and flip the sign n times.
    x = primals[0]
    if not differentiable(x):
        return (None,)
    pad_shape = tuple(n if i == axis else d for i, d in enumerate(shape_of(ct)))
    pad = constant_zeros(pad_shape, ct)
    g = diff_p.bind(ops.concat([pad, ct, pad], axis=axis), axis=axis, n=n)
    return (unbroadcast(-g if n % 2 else g, x),)


def_batch(diff_p, axis_batch(diff_p))
