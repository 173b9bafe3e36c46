"""Reductions, with their derivatives and batching rules, and helpers for reduction rules.

Covered: ``sum``, ``prod``, ``mean``, ``max``, ``min``, ``var``, ``std``, ``all`` and
``any`` (the running functions and ``diff`` live in :mod:`unijax.engine.rules.cumulative`).

The traced functions normalise ``axis`` to a sorted tuple of distinct non-negative axes,
so the IR is canonical and every batching rule only moves the mapped axis to the front
and shifts the axes by one.

Derivatives follow JAX: ``max``/``min`` share the cotangent equally among tied extrema,
and ``prod`` is exact where inputs are zero (no division by ``x``), to every order.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from unijax._dtypes import is_inexact
from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive, base_value, namespace_for_value
from unijax.engine.registry import def_api, def_batch, def_jvp, def_nondifferentiable, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.errors import message

__all__ = [
    "axis_batch",
    "constant_zeros",
    "differentiable",
    "expand_reduced",
    "normalize_axis",
    "reduced_axes",
    "reduction_batch",
    "slice_axis",
]

Axis = int | tuple[int, ...] | None


# --- helpers ------------------------------------------------------------------------------
#
# Rules combine arrays with ``ops.multiply`` and friends rather than ``*``: a rule may meet a
# concrete array on the left and a tracer on the right, and backends such as
# array-api-strict raise instead of deferring to the tracer's reflected operator.


def reduced_axes(axis: Axis, ndim: int, name: str = "reduction") -> tuple[int, ...]:
    """``axis`` as a sorted tuple of distinct non-negative axes (``None``: all of them).

    Raises:
        ValueError: an axis is out of range for ``ndim`` dimensions, or repeated.
    """
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    axes = tuple(sorted(normalize_axis(a, ndim, name) for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(message(f"{name}(axis={axis!r}) repeats an axis",
                                 fix="Name each axis once."))
    return axes


def normalize_axis(axis: int, ndim: int, name: str = "reduction") -> int:
    """``axis`` made a non-negative Python int, checked against ``ndim``."""
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            message(f"{name}(axis={axis}) is out of range for a {ndim}-dimensional array",
                    expected=f"an axis in [{-ndim}, {ndim - 1}]", got=str(axis))
        )
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


def differentiable(x: Any) -> bool:
    """Whether ``x`` has a floating dtype, so it can carry a derivative."""
    return is_inexact(x.dtype)


def slice_axis(x: Any, axis: int, start: int | None, stop: int | None) -> Any:
    """``x[start:stop]`` along ``axis`` (non-negative), through the traced indexing."""
    # The trailing ellipsis keeps the key complete, which array-api-strict insists on.
    return x[(*(slice(None),) * axis, slice(start, stop), ...)]


def constant_zeros(shape: tuple[int, ...], like: Any) -> Any:
    """Zeros of ``like``'s dtype and device: a constant, with no derivative or batch axis."""
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


def axis_batch(prim: Primitive) -> Callable[..., Any]:
    """The batching rule of a function along one non-negative int ``axis`` param."""

    def rule(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int,
             **params: Any) -> Any:
        x = bdim_to_front(args[0], bdims[0])
        return prim.bind(x, axis=axis + 1, **params), 0

    return rule


# --- sum ----------------------------------------------------------------------------------

sum_p = Primitive("sum")


@def_api("sum")
def sum(x: Any, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
    """The sum of ``x`` over ``axis`` (the standard's ``sum``); linear, so differentiable.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def f(x):
        ...     xp = array_namespace(x)
        ...     return xp.sum(x * x, axis=(0, -1))
        >>> unijax.grad(f)(np.asarray([[1.0, 2.0], [3.0, 4.0]]))
        array([[2., 4.],
               [6., 8.]])
    """
    axes = reduced_axes(axis, ndim_of(x), "sum")
    return sum_p.bind(x, axis=axes, dtype=dtype, keepdims=keepdims)


@def_jvp(sum_p)
def _sum_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    out = sum_p.bind(primals[0], **params)
    if not (differentiable(primals[0]) and differentiable(out)):
        return out, None
    return out, sum_p.bind(tangents[0], **params)


@def_vjp(sum_p)
def _sum_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             dtype: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not (differentiable(x) and differentiable(out)):
        return (None,)
    return (unbroadcast(expand_reduced(ct, x, axis, keepdims), x),)


def_batch(sum_p, reduction_batch(sum_p))


# --- prod ---------------------------------------------------------------------------------

prod_p = Primitive("prod")


@def_api("prod")
def prod(x: Any, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
    """The product of ``x`` over ``axis`` (the standard's ``prod``).

    The partial derivative in each element is the product of the others, computed without
    dividing by ``x``, so it is exact where elements are zero (as in JAX), to every order.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> unijax.grad(lambda x: array_namespace(x).prod(x))(np.asarray([2.0, 0.0, 3.0]))
        array([0., 6., 0.])
    """
    axes = reduced_axes(axis, ndim_of(x), "prod")
    return prod_p.bind(x, axis=axes, dtype=dtype, keepdims=keepdims)


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
    g = ops.multiply(before, ops.flip(after, axis=last))
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
    if not (differentiable(x) and differentiable(out)):
        return out, None
    t = ops.sum(ops.multiply(x_dot, _prod_others(x, axis)), axis=axis, dtype=dtype,
                keepdims=keepdims)
    return out, t


@def_vjp(prod_p)
def _prod_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
              dtype: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not (differentiable(x) and differentiable(out)):
        return (None,)
    g = ops.multiply(expand_reduced(ct, x, axis, keepdims), _prod_others(x, axis))
    return (unbroadcast(g, x),)


def_batch(prod_p, reduction_batch(prod_p))


# --- mean ---------------------------------------------------------------------------------

mean_p = Primitive("mean")


@def_api("mean")
def mean(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
    """The arithmetic mean of ``x`` over ``axis`` (the standard's ``mean``)."""
    return mean_p.bind(x, axis=reduced_axes(axis, ndim_of(x), "mean"), keepdims=keepdims)


@def_jvp(mean_p)
def _mean_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    out = mean_p.bind(primals[0], **params)
    if not differentiable(primals[0]):
        return out, None
    return out, mean_p.bind(tangents[0], **params)


@def_vjp(mean_p)
def _mean_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
              keepdims: bool) -> Any:
    x = primals[0]
    if not differentiable(x):
        return (None,)
    return (unbroadcast(expand_reduced(ct, x, axis, keepdims) / _count(x, axis), x),)


def_batch(mean_p, reduction_batch(mean_p))


# --- max / min ----------------------------------------------------------------------------


def _chooser(name: str) -> Primitive:
    """``max`` or ``min``: the derivative is shared equally among tied extrema (as JAX)."""
    prim = Primitive(name)

    def api(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
        return prim.bind(x, axis=reduced_axes(axis, ndim_of(x), name), keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = f"The {name}imum of ``x`` over ``axis`` (the Array API's ``{name}``)."
    def_api(name)(api)

    def share(x: Any, out: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
        # 1/count at each position that attains the extremum, 0 elsewhere.
        hits = ops.astype(ops.equal(x, _keep(out, x, axis, keepdims)), x.dtype)
        return ops.divide(hits, ops.sum(hits, axis=axis, keepdims=True))

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
            keepdims: bool) -> Any:
        (x,), (x_dot,) = primals, tangents
        out = prim.bind(x, axis=axis, keepdims=keepdims)
        if not differentiable(x):
            return out, None
        t = ops.multiply(x_dot, share(x, out, axis, keepdims))
        return out, ops.sum(t, axis=axis, keepdims=keepdims)

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
            keepdims: bool) -> Any:
        x = primals[0]
        if not differentiable(x):
            return (None,)
        g = ops.multiply(expand_reduced(ct, x, axis, keepdims), share(x, out, axis, keepdims))
        return (unbroadcast(g, x),)

    def_jvp(prim, jvp)
    def_vjp(prim, vjp)
    def_batch(prim, reduction_batch(prim))
    return prim


max_p = _chooser("max")
min_p = _chooser("min")


# --- var / std ----------------------------------------------------------------------------

var_p = Primitive("var")
std_p = Primitive("std")


def spread_impl(name: str) -> Callable[..., Any]:
    """The concrete ``var``/``std``, given the canonical ``axis`` tuple.

    Every axis of ``x`` is written ``axis=None`` (a 0-d array's are ``()``) and no axis as
    a new length-one axis reduced, so the namespace always reduces over something:
    ``array_api_compat.torch`` reads ``axis=()`` as "nothing to reduce" and returns
    zeros, even for ``nan``.
    """

    def impl(xp: Any, x: Any, *, axis: tuple[int, ...], correction: int | float,
             keepdims: bool) -> Any:
        fn = getattr(xp, name)
        ndim = len(x.shape)
        if len(axis) == ndim:
            return fn(x, axis=None, correction=correction, keepdims=keepdims)
        if not axis:
            return fn(xp.expand_dims(x, axis=ndim), axis=ndim, correction=correction)
        return fn(x, axis=axis, correction=correction, keepdims=keepdims)

    impl.__name__ = f"{name}_impl"
    return impl


var_p.def_impl(spread_impl("var"))
std_p.def_impl(spread_impl("std"))


@def_api("var")
def var(x: Any, /, *, axis: Axis = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Any:
    """The variance of ``x`` over ``axis`` (the standard's ``var``), over ``N - correction``."""
    return var_p.bind(x, axis=reduced_axes(axis, ndim_of(x), "var"), correction=correction,
                      keepdims=keepdims)


@def_api("std")
def std(x: Any, /, *, axis: Axis = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Any:
    """The standard deviation of ``x`` over ``axis`` (the standard's ``std``).

    Its derivative is undefined (``nan``) where the spread is zero, as in JAX.
    """
    return std_p.bind(x, axis=reduced_axes(axis, ndim_of(x), "std"), correction=correction,
                      keepdims=keepdims)


def _centered(x: Any, axis: tuple[int, ...], correction: int | float) -> Any:
    """``(x - mean(x)) / (n - correction)``: half the gradient of ``var``."""
    centered = ops.subtract(x, ops.mean(x, axis=axis, keepdims=True))
    return centered / (_count(x, axis) - correction)


@def_jvp(var_p)
def _var_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = var_p.bind(x, axis=axis, correction=correction, keepdims=keepdims)
    if not differentiable(x):
        return out, None
    t = ops.sum(ops.multiply(_centered(x, axis, correction), x_dot), axis=axis,
                keepdims=keepdims)
    return out, 2 * t


@def_vjp(var_p)
def _var_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not differentiable(x):
        return (None,)
    g = ops.multiply(2 * _centered(x, axis, correction), expand_reduced(ct, x, axis, keepdims))
    return (unbroadcast(g, x),)


@def_jvp(std_p)
def _std_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = std_p.bind(x, axis=axis, correction=correction, keepdims=keepdims)
    if not differentiable(x):
        return out, None
    t = ops.sum(ops.multiply(_centered(x, axis, correction), x_dot), axis=axis,
                keepdims=keepdims)
    return out, ops.divide(t, out)


@def_vjp(std_p)
def _std_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: Any,
             correction: Any, keepdims: bool) -> Any:
    x = primals[0]
    if not differentiable(x):
        return (None,)
    g = ops.multiply(_centered(x, axis, correction),
                     expand_reduced(ops.divide(ct, out), x, axis, keepdims))
    return (unbroadcast(g, x),)


def_batch(var_p, reduction_batch(var_p))
def_batch(std_p, reduction_batch(std_p))


# --- all / any ----------------------------------------------------------------------------


def _logical_reduction(name: str) -> Primitive:
    prim = Primitive(name)

    def api(x: Any, /, *, axis: Axis = None, keepdims: bool = False) -> Any:
        return prim.bind(x, axis=reduced_axes(axis, ndim_of(x), name), keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = f"Whether {name} elements of ``x`` are true over ``axis`` (no derivative)."
    def_api(name)(api)
    def_nondifferentiable(prim)
    def_batch(prim, reduction_batch(prim))
    return prim


all_p = _logical_reduction("all")
any_p = _logical_reduction("any")
