"""Elementwise functions of the Array API standard, with their derivatives.

Most functions are one line: the name and the partial derivatives, written with ``ops`` so
they can be differentiated again. The derivatives are JAX's, including its conventions at
the points where the function is not differentiable:

* ``abs`` and ``copysign`` take the slope of the positive branch at ``x == 0``;
* ``maximum``, ``minimum`` and ``clip`` split the derivative equally between tied operands;
* ``pow`` has derivative ``0`` with respect to the exponent where the base is ``0``, and
  ``0`` with respect to the base for an integer exponent of ``0``;
* ``sign``, ``floor``, ``ceil``, ``round``, ``trunc``, ``floor_divide``, comparisons,
  logical and bitwise functions are piecewise constant: their derivative is zero.

``nextafter`` differs: JAX defines no derivative for it, unijax uses the identity in its
first argument (the result is the argument moved by one unit in the last place).

Conditions in derivatives are written as 0/1 masks (``astype(x >= 0, dtype)``) rather than
``where``, so the rules need only elementwise arithmetic and stay cheap to fuse under jit.
Arithmetic between two arrays goes through ``ops`` rather than Python operators: in a
nested transform one operand may be a concrete array and the other a tracer, and some
array types (array-api-strict's) raise instead of deferring to the tracer's operator.
Operators are kept only where one side is a Python scalar.

Complex inputs follow JAX's convention: the VJP is the transpose (not the conjugate
transpose) of the JVP; ``abs``, ``real``, ``imag`` and ``conj`` are the non-holomorphic
functions that need their own rules.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from typing import Any

from unijax._dtypes import is_complex, is_inexact
from unijax.engine.core import Primitive, Tracer, bind, builtin_scalar
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import (
    binary,
    binary_primitive,
    elementwise_batch,
    fit,
    nondiff,
    ops,
    unary,
    unbroadcast,
)


def _is_scalar(x: Any) -> bool:
    return not hasattr(x, "shape")


def _mask(cond: Any, like: Any) -> Any:
    """``cond`` as 0/1 values of ``like``'s dtype (``like`` must be an array)."""
    return ops.astype(cond, like.dtype)


def _positive_slope(x: Any, out: Any) -> Any:
    """``+1`` where ``x >= 0`` (``-0.0`` included), ``-1`` elsewhere: JAX's ``abs'``."""
    return 2 * _mask(ops.greater_equal(x, 0), out) - 1


def _unary_primitive(name: str) -> Primitive:
    """A unary elementwise primitive with its traced function and batching rule only."""
    prim = Primitive(name)

    @def_api(name)
    def api(x: Any, /) -> Any:
        return bind(prim, (x,), {})

    api.__name__ = api.__qualname__ = name
    def_batch(prim, lambda args, bdims: (prim.bind(args[0]), bdims[0]))
    return prim


def _linear_unary(name: str, transpose: Callable[[Any, Any], Any]) -> Primitive:
    """A unary primitive linear over the reals: its JVP applies it to the tangent.

    ``transpose(ct, x)`` maps an output cotangent to the cotangent of input ``x``.
    """
    prim = _unary_primitive(name)

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        return prim.bind(primals[0]), prim.bind(tangents[0])

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
        return (transpose(ct, primals[0]),)

    def_jvp(prim, jvp)
    def_vjp(prim, vjp)
    return prim


# --- arithmetic ---------------------------------------------------------------------------

add_p = binary("add", None, None, linear=(1, 1))
subtract_p = binary("subtract", None, None, linear=(1, -1))
multiply_p = binary("multiply", lambda x, y, out: y, lambda x, y, out: x, reads_out=False)
divide_p = binary_primitive("divide")


@def_jvp(divide_p)
def _divide_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    # Tangents are divided by y rather than multiplied by 1 / y: y may be a Python scalar,
    # and Python raises ZeroDivisionError where arrays give IEEE infinities (as JAX does).
    x, y = primals
    x_dot, y_dot = tangents
    out = divide_p.bind(x, y)
    t = None if x_dot is None else ops.divide(x_dot, y)
    if y_dot is not None:
        term = ops.negative(ops.multiply(y_dot, ops.divide(out, y)))
        t = term if t is None else ops.add(t, term)
    return out, None if t is None else fit(t, out)


@def_vjp(divide_p)
def _divide_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    x, y = primals
    if isinstance(x, Tracer) or isinstance(y, Tracer) or isinstance(out, Tracer):
        ct_x = ops.divide(ct, y) if needs[0] else None
        ct_y = ops.negative(ops.multiply(ct, ops.divide(out, y))) if needs[1] else None
    else:  # concrete: operators, for the reason given in _helpers.unary's rule
        ct_x = ct / y if needs[0] else None
        ct_y = -(ct * (out / y)) if needs[1] else None
    return (None if ct_x is None else unbroadcast(ct_x, x),
            None if ct_y is None else unbroadcast(ct_y, y))


# x mod y = x - floor(x / y) * y away from the jumps, where floor(x / y) is constant.
remainder_p = binary(
    "remainder", lambda x, y, out: 1, lambda x, y, out: ops.negative(ops.floor(ops.divide(x, y)))
)
floor_divide_p = nondiff("floor_divide", nargs=2)
square_p = unary("square", lambda x, out: 2 * x, reads="x")
reciprocal_p = unary("reciprocal", lambda x, out: ops.negative(ops.square(out)), reads="out")
negative_p = _linear_unary("negative", lambda ct, x: ops.negative(ct))
positive_p = _linear_unary("positive", lambda ct, x: ct)

# --- powers, exponentials and logarithms --------------------------------------------------

exp_p = unary("exp", lambda x, out: out, reads="out")
expm1_p = unary("expm1", lambda x, out: out + 1, reads="out")
log_p = unary("log", lambda x, out: 1 / x, reads="x")
log1p_p = unary("log1p", lambda x, out: 1 / (1 + x), reads="x")
log2_p = unary("log2", lambda x, out: (1 / x) / math.log(2), reads="x")
log10_p = unary("log10", lambda x, out: (1 / x) / math.log(10), reads="x")
sqrt_p = unary("sqrt", lambda x, out: 0.5 / out, reads="out")


def _is_integer(y: Any) -> bool:
    if _is_scalar(y):
        return isinstance(y, (bool, int))
    return not is_inexact(y.dtype)


def _pow_dx(x: Any, y: Any, out: Any) -> Any:
    if not _is_integer(y):
        return ops.multiply(y, ops.pow(x, y - 1))
    # An integer exponent has derivative 0 at y == 0 even where x == 0 (x**-1 is inf there).
    if _is_scalar(y):
        return 0 if y == 0 else ops.multiply(y, ops.pow(x, y - 1))
    return ops.multiply(y, ops.pow(x, ops.add(y - 1, _mask(ops.equal(y, 0), y))))


def _pow_dy(x: Any, y: Any, out: Any) -> Any:
    if _is_integer(y):
        return None
    # d/dy x**y = log(x) x**y, taken as 0 where x == 0 (JAX's convention).
    if _is_scalar(x):
        if isinstance(x, complex):
            return out * (cmath.log(x) if x != 0 else 0)
        return out * (math.log(x) if x > 0 else 0.0 if x == 0 else math.nan)
    return ops.multiply(out, ops.log(ops.add(x, _mask(ops.equal(x, 0), x))))


pow_p = binary_primitive("pow")


@def_jvp(pow_p)
def _pow_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    out = pow_p.bind(x, y)
    t = None if x_dot is None else ops.multiply(x_dot, _pow_dx(x, y, out))
    dy = None if y_dot is None else _pow_dy(x, y, out)
    if dy is not None:
        term = ops.multiply(y_dot, dy)
        t = term if t is None else ops.add(t, term)
    return out, None if t is None else fit(t, out)


@def_vjp(pow_p)
def _pow_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    x, y = primals
    ct_x = unbroadcast(ops.multiply(ct, _pow_dx(x, y, out)), x) if needs[0] else None
    dy = _pow_dy(x, y, out) if needs[1] else None
    return ct_x, None if dy is None else unbroadcast(ops.multiply(ct, dy), y)


def _logaddexp_dx(x: Any, y: Any, out: Any) -> Any:
    # 1 / (1 + e**(y - x)) is exp(x - out) without its nan at x = +inf.
    return 1 / (1 + ops.exp(ops.subtract(y, x)))


logaddexp_p = binary(
    "logaddexp", _logaddexp_dx, lambda x, y, out: _logaddexp_dx(y, x, out)
)

# --- trigonometric and hyperbolic ---------------------------------------------------------

sin_p = unary("sin", lambda x, out: ops.cos(x), reads="x")
cos_p = unary("cos", lambda x, out: -ops.sin(x), reads="x")
tan_p = unary("tan", lambda x, out: 1 + out * out, reads="out")
asin_p = unary("asin", lambda x, out: 1 / ops.sqrt(1 - x * x))
acos_p = unary("acos", lambda x, out: -1 / ops.sqrt(1 - x * x))
atan_p = unary("atan", lambda x, out: 1 / (1 + x * x))
sinh_p = unary("sinh", lambda x, out: ops.cosh(x))
cosh_p = unary("cosh", lambda x, out: ops.sinh(x))
# 1 - out**2 spelled so that every step has its temporary on the left: NumPy then computes
# the whole derivative (and the product with the cotangent) in one buffer. Equal to
# 1 - out * out except for the sign of a zero.
tanh_p = unary("tanh", lambda x, out: -(out * out - 1), reads="out")
asinh_p = unary("asinh", lambda x, out: 1 / ops.sqrt(x * x + 1))
acosh_p = unary("acosh", lambda x, out: 1 / ops.sqrt(x * x - 1))
atanh_p = unary("atanh", lambda x, out: 1 / ((1 + x) * (1 - x)))


def _squared_norm(x: Any, y: Any) -> Any:
    return ops.add(x * x, y * y)


atan2_p = binary(
    "atan2",
    lambda x, y, out: ops.divide(y, _squared_norm(x, y)),
    lambda x, y, out: ops.divide(-x, _squared_norm(x, y)),
)


def _hypot_dx(x: Any, y: Any, out: Any) -> Any:
    # x / hypot; at the origin JAX's maximum/minimum tie rule gives 1/2 to each operand.
    origin = _mask(ops.equal(out, 0), out)
    return ops.add(ops.divide(x, ops.add(out, origin)), 0.5 * origin)


hypot_p = binary("hypot", _hypot_dx, lambda x, y, out: _hypot_dx(y, x, out))

# --- sign, magnitude and complex parts ----------------------------------------------------

abs_p = _unary_primitive("abs")


def _abs_deriv(x: Any, out: Any) -> Any:
    if is_complex(x.dtype):
        # d|x| = re(conj(x) / |x| * dx); 0 at x == 0, as in JAX.
        return ops.divide(ops.conj(x), ops.add(out, _mask(ops.equal(out, 0), out)))
    return _positive_slope(x, out)


@def_jvp(abs_p)
def _abs_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = abs_p.bind(x)
    t = ops.multiply(x_dot, _abs_deriv(x, out))
    return out, fit(ops.real(t) if is_complex(t.dtype) else t, out)


@def_vjp(abs_p)
def _abs_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    (x,) = primals
    return (unbroadcast(ops.multiply(ct, _abs_deriv(x, out)), x),)


def _copysign_dx(x: Any, y: Any, out: Any) -> Any:
    # copysign(x, y) = ±|x| with the sign of y: JAX's abs' times that sign.
    if _is_scalar(y):
        return math.copysign(1.0, y) * _positive_slope(x, out)
    return ops.multiply(1 - 2 * _mask(ops.signbit(y), out), _positive_slope(x, out))


copysign_p = binary("copysign", _copysign_dx, None)
# JAX defines no derivative; the result is x1 moved by one ulp, so d/dx1 is 1.
nextafter_p = binary("nextafter", lambda x, y, out: 1, None)


def _real_transpose(ct: Any, x: Any) -> Any:
    # The transpose of re(): a real cotangent enters a complex input as ct + 0j.
    return unbroadcast(ct, x)


def _imag_transpose(ct: Any, x: Any) -> Any:
    # The transpose of im(): ct enters a complex input as -1j * ct (JAX's convention).
    return ops.astype(ct, x.dtype) * -1j


def _conj_transpose(ct: Any, x: Any) -> Any:
    return ops.conj(ct) if is_complex(x.dtype) else unbroadcast(ct, x)


real_p = _linear_unary("real", _real_transpose)
imag_p = _linear_unary("imag", _imag_transpose)
conj_p = _linear_unary("conj", _conj_transpose)

sign_p = nondiff("sign")
signbit_p = nondiff("signbit")

# --- extrema and clipping -------------------------------------------------------------------


def _tie_share(a: Any, b: Any, out: Any) -> Any:
    """The share of ``out``'s derivative that goes to ``a``: 1, 1/2 at a tie with ``b``, or 0."""
    a_won = _mask(ops.equal(a, out), out)
    return ops.divide(a_won, 1 + _mask(ops.equal(b, out), out))


maximum_p = binary(
    "maximum", lambda x, y, out: _tie_share(x, y, out), lambda x, y, out: _tie_share(y, x, out)
)
minimum_p = binary(
    "minimum", lambda x, y, out: _tie_share(x, y, out), lambda x, y, out: _tie_share(y, x, out)
)

clip_p = Primitive("clip")


@def_api("clip")
def clip(x: Any, /, min: Any = None, max: Any = None) -> Any:
    """Clamp each element of ``x`` to ``[min, max]`` (Array API ``clip``).

    Args:
        x: The input array.
        min: Lower bound: an array, a Python scalar or ``None`` (no lower bound).
        max: Upper bound: an array, a Python scalar or ``None`` (no upper bound).

    Returns:
        ``minimum(maximum(x, min), max)`` with the dtype of ``x``.
    """
    return clip_p.bind(x, builtin_scalar(min), builtin_scalar(max))


def_batch(clip_p, elementwise_batch(clip_p))


def _clip_shares(x: Any, lo: Any, hi: Any, out: Any) -> tuple[Any, Any, Any]:
    """The derivative shares of ``x``, ``lo`` and ``hi`` (``None``: no such bound).

    ``clip`` is ``minimum(maximum(x, lo), hi)`` as in JAX, and ties split equally at each
    of the two steps, so the shares match ``jax.numpy.clip``'s gradient exactly.
    """
    share_x: Any = 1
    share_lo = share_hi = None
    mid = x  # maximum(x, lo), in the dtype of the result
    if lo is not None:
        mid = out if hi is None else ops.astype(ops.maximum(x, lo), out.dtype, copy=False)
        share_x = _tie_share(x, lo, mid)
        share_lo = _tie_share(lo, x, mid)
    if hi is not None:
        share_mid = _tie_share(mid, hi, out)
        share_hi = _tie_share(hi, mid, out)
        share_x = share_mid if lo is None else ops.multiply(share_x, share_mid)
        share_lo = None if share_lo is None else ops.multiply(share_lo, share_mid)
    return share_x, share_lo, share_hi


@def_jvp(clip_p)
def _clip_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, lo, hi = primals
    out = clip_p.bind(x, lo, hi)
    t = None
    for share, dot in zip(_clip_shares(x, lo, hi, out), tangents, strict=True):
        if dot is not None and share is not None:
            term = ops.multiply(dot, share)
            t = term if t is None else ops.add(t, term)
    return out, None if t is None else fit(t, out)


@def_vjp(clip_p)
def _clip_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    x, lo, hi = primals
    shares = _clip_shares(x, lo, hi, out)
    return tuple(
        unbroadcast(ops.multiply(ct, share), p) if need and share is not None else None
        for share, p, need in zip(shares, primals, needs, strict=True)
    )


# --- rounding (piecewise constant) ----------------------------------------------------------

ceil_p = nondiff("ceil")
floor_p = nondiff("floor")
round_p = nondiff("round")
trunc_p = nondiff("trunc")

# --- classification, comparison and logic (boolean results) -------------------------------

isfinite_p = nondiff("isfinite")
isinf_p = nondiff("isinf")
isnan_p = nondiff("isnan")

equal_p = nondiff("equal", nargs=2)
not_equal_p = nondiff("not_equal", nargs=2)
less_p = nondiff("less", nargs=2)
less_equal_p = nondiff("less_equal", nargs=2)
greater_p = nondiff("greater", nargs=2)
greater_equal_p = nondiff("greater_equal", nargs=2)

logical_and_p = nondiff("logical_and", nargs=2)
logical_or_p = nondiff("logical_or", nargs=2)
logical_xor_p = nondiff("logical_xor", nargs=2)
logical_not_p = nondiff("logical_not")

# --- bitwise (integer and boolean results) --------------------------------------------------

bitwise_and_p = nondiff("bitwise_and", nargs=2)
bitwise_or_p = nondiff("bitwise_or", nargs=2)
bitwise_xor_p = nondiff("bitwise_xor", nargs=2)
bitwise_left_shift_p = nondiff("bitwise_left_shift", nargs=2)
bitwise_right_shift_p = nondiff("bitwise_right_shift", nargs=2)
bitwise_invert_p = nondiff("bitwise_invert")
