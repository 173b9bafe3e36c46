"""OpSpec rows for the elementwise functions of the Array API standard.

Inputs stay inside each function's domain and away from the points where finite
differences break: kinks (``abs`` at 0), jumps (``floor`` at integers, ``remainder`` where
``x1 / x2`` is an integer), ties (``maximum``) and branch cuts (``atan2`` on the negative
real axis). Ties and jumps are avoided with lattices: values ``k / 4 + 0.1`` never come
within 0.1 of a value ``k / 4`` or of an integer.

Functions with integer or boolean inputs (bitwise, logical) build them inside ``fn`` from
float64 arrays with integer values, so every row takes float64 arrays. Complex rows build
``z = x + 1j * y`` inside ``fn`` and return real and imaginary parts, so derivatives of
complex functions are checked through real inputs and outputs, where JAX's convention and
finite differences agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["SPECS"]

_MAX_DIMS = 3
_MAX_SIDE = 4

Elements = dict[str, Any] | st.SearchStrategy[float]


def interval(lo: float, hi: float) -> dict[str, Any]:
    """Finite floats in ``[lo, hi]``."""
    return {"min_value": lo, "max_value": hi, "allow_nan": False, "allow_infinity": False}


def away_from_zero(gap: float, hi: float = 3.0) -> st.SearchStrategy[float]:
    """Floats with ``gap <= |v| <= hi``."""
    return st.floats(gap, hi) | st.floats(-hi, -gap)


def lattice(offset: float = 0.0, lo: int = -12, hi: int = 12) -> st.SearchStrategy[float]:
    """Values ``k / 4 + offset``: with offset 0.1 they stay 0.1 from integers and halves."""
    return st.integers(lo, hi).map(lambda k: k / 4 + offset)


def integers(lo: int, hi: int) -> st.SearchStrategy[float]:
    """Integer-valued floats (cast to ``int64`` inside ``fn``)."""
    return st.integers(lo, hi).map(float)


ANY = interval(-3.0, 3.0)
UNIT = interval(-0.9, 0.9)
POSITIVE = interval(0.1, 3.0)
OFF_GRID = lattice(0.1)  # never within 0.1 of ON_GRID, of an integer or of a half
ON_GRID = lattice(0.0)
DIVISORS = st.sampled_from([-4.0, -2.0, -1.5, 1.5, 2.0, 4.0])  # OFF_GRID / d is off-integer
SPECIAL = {"allow_nan": True, "allow_infinity": True}


def arrays_of(*elements: Elements) -> Callable[[Any], Any]:
    """A strategy factory: float64 arrays of mutually broadcastable shapes."""

    def arrays(xps: Any) -> Any:
        if len(elements) == 1:
            shapes = xps.array_shapes(min_dims=1, max_dims=_MAX_DIMS, max_side=_MAX_SIDE)
            return st.tuples(xps.arrays("float64", shapes, elements=elements[0]))
        broadcastable = xps.mutually_broadcastable_shapes(
            len(elements), min_dims=1, max_dims=_MAX_DIMS, max_side=_MAX_SIDE
        )
        return broadcastable.flatmap(
            lambda bs: st.tuples(
                *(
                    xps.arrays("float64", shape, elements=el)
                    for shape, el in zip(bs.input_shapes, elements, strict=True)
                )
            )
        )

    return arrays


def _call(name: str) -> Callable[..., Any]:
    def fn(xp: Any, *arrays: Any) -> Any:
        return getattr(xp, name)(*arrays)

    return fn


def _parts(xp: Any, z: Any) -> tuple[Any, Any]:
    return xp.real(z), xp.imag(z)


def _int(xp: Any, x: Any) -> Any:
    return xp.astype(x, xp.int64)


_NOT_DIFFERENTIABLE = "boolean or integer result: nothing to differentiate"


def row(name: str, *elements: Elements, fn: Callable[..., Any] | None = None,
        **options: Any) -> OpSpec:
    """One row calling ``xp.<name>`` (or ``fn``) on arrays drawn from ``elements``."""
    return OpSpec(name, fn or _call(name.partition("#")[0]), arrays_of(*elements), **options)


def boolean_row(name: str, *elements: Elements, fn: Callable[..., Any] | None = None) -> OpSpec:
    """A row whose result is boolean or integer: values, vmap and jit only."""
    return row(name, *elements, fn=fn, grad=False, reason=_NOT_DIFFERENTIABLE)


def _complex_row(name: str, f: Callable[..., Any], *elements: Elements) -> OpSpec:
    return row(f"{name}#complex", *elements,
               fn=lambda xp, x, y: _parts(xp, f(xp, x + 1j * y)))


SPECS: list[OpSpec] = [
    # --- arithmetic ---------------------------------------------------------------------
    row("add", ANY, ANY),
    row("add#scalar", ANY, fn=lambda xp, x: xp.add(x, 1.5)),
    row("add#operator", ANY, ANY, fn=lambda xp, x, y: x + y + 1),
    row("subtract", ANY, ANY),
    row("subtract#scalar", ANY, fn=lambda xp, x: xp.subtract(2.0, x)),
    row("subtract#operator", ANY, fn=lambda xp, x: 2 - x),
    row("multiply", ANY, ANY),
    row("multiply#scalar", ANY, fn=lambda xp, x: xp.multiply(2.5, x)),
    row("multiply#operator", ANY, ANY, fn=lambda xp, x, y: x * y * 3),
    _complex_row("multiply", lambda xp, z: xp.multiply(z, z - 2j), ANY, ANY),
    row("divide", ANY, away_from_zero(0.3)),
    row("divide#scalar", away_from_zero(0.3), fn=lambda xp, x: xp.divide(2.0, x)),
    row("divide#operator", ANY, fn=lambda xp, x: x / 3),
    _complex_row("divide", lambda xp, z: xp.divide(1 + 0.5j, z), away_from_zero(0.3), ANY),
    row("negative", ANY),
    row("negative#operator", ANY, fn=lambda xp, x: -x),
    row("positive", ANY),
    row("positive#operator", ANY, fn=lambda xp, x: +x),
    row("square", ANY),
    _complex_row("square", lambda xp, z: xp.square(z), ANY, ANY),
    row("reciprocal", away_from_zero(0.3)),
    row("remainder", OFF_GRID, DIVISORS),
    row("remainder#operator", OFF_GRID, fn=lambda xp, x: x % 1.5),
    row("floor_divide", OFF_GRID, DIVISORS),
    row("floor_divide#operator", OFF_GRID, fn=lambda xp, x: x // 2.0),
    # --- powers, exponentials and logarithms --------------------------------------------
    row("pow", interval(0.2, 3.0), interval(-2.0, 2.0)),
    row("pow#int_exponent", ANY, fn=lambda xp, x: xp.pow(x, 3)),
    row("pow#scalar_base", ANY, fn=lambda xp, x: xp.pow(2.0, x)),
    row("pow#operator", ANY, fn=lambda xp, x: x**2),
    row("pow#reflected_operator", interval(-2.0, 2.0), fn=lambda xp, x: 1.5**x),
    row("exp", ANY),
    _complex_row("exp", lambda xp, z: xp.exp(z), ANY, ANY),
    row("expm1", ANY),
    row("log", POSITIVE),
    _complex_row("log", lambda xp, z: xp.log(z), POSITIVE, ANY),
    row("log1p", interval(-0.5, 3.0)),
    row("log2", POSITIVE),
    row("log10", POSITIVE),
    row("logaddexp", ANY, ANY),
    row("sqrt", POSITIVE),
    _complex_row("sqrt", lambda xp, z: xp.sqrt(z), POSITIVE, ANY),
    # --- trigonometric and hyperbolic ---------------------------------------------------
    row("sin", ANY),
    _complex_row("sin", lambda xp, z: xp.sin(z), ANY, ANY),
    row("cos", ANY),
    row("tan", interval(-1.2, 1.2)),
    row("asin", UNIT),
    row("acos", UNIT),
    row("atan", ANY),
    row("atan2", away_from_zero(0.1), ANY),
    row("sinh", ANY),
    row("cosh", ANY),
    row("tanh", ANY),
    _complex_row("tanh", lambda xp, z: xp.tanh(z), interval(-1.0, 1.0), interval(-1.0, 1.0)),
    row("asinh", ANY),
    row("acosh", interval(1.1, 3.0)),
    row("atanh", UNIT),
    row("hypot", away_from_zero(0.1), ANY),
    # --- sign, magnitude and complex parts ----------------------------------------------
    row("abs", away_from_zero(0.1)),
    row("abs#operator", away_from_zero(0.1), fn=lambda xp, x: abs(x)),
    row("abs#complex", away_from_zero(0.1), ANY, fn=lambda xp, x, y: xp.abs(x + 1j * y)),
    row("copysign", away_from_zero(0.1), away_from_zero(0.1)),
    row("sign", away_from_zero(0.1)),
    boolean_row("signbit", st.sampled_from([-2.0, -0.0, 0.0, 1.5])),
    row("real", ANY),
    row("real#complex", ANY, ANY, fn=lambda xp, x, y: xp.real((x + 1j * y) * (x - 2j))),
    row("imag#complex", ANY, ANY, fn=lambda xp, x, y: xp.imag((x + 1j * y) * (x + 1j * y))),
    row("conj", ANY),
    _complex_row("conj", lambda xp, z: xp.conj(z) * (1 + 2j), ANY, ANY),
    row(
        "nextafter", ANY, ANY, grad=False,
        reason="JAX defines no derivative for nextafter (unijax: 1 in x1, 0 in x2)",
    ),
    # --- extrema and clipping -----------------------------------------------------------
    row("maximum", OFF_GRID, ON_GRID),
    row("maximum#scalar", OFF_GRID, fn=lambda xp, x: xp.maximum(x, 0.5)),
    row("minimum", OFF_GRID, ON_GRID),
    row("minimum#scalar", OFF_GRID, fn=lambda xp, x: xp.minimum(-0.25, x)),
    row(
        "clip", OFF_GRID, ON_GRID, lattice(0.0, 0, 8),
        fn=lambda xp, x, lo, width: xp.clip(x, lo, lo + width + 0.5),
    ),
    row("clip#scalar", OFF_GRID, fn=lambda xp, x: xp.clip(x, -0.5, 1.0)),
    row("clip#min", OFF_GRID, ON_GRID, fn=lambda xp, x, lo: xp.clip(x, lo)),
    row("clip#max", OFF_GRID, ON_GRID, fn=lambda xp, x, hi: xp.clip(x, max=hi)),
    # --- rounding: derivative zero away from the jumps ----------------------------------
    row("ceil", OFF_GRID),
    row("floor", OFF_GRID),
    row("round", OFF_GRID),
    row("trunc", OFF_GRID),
    # --- classification and comparison --------------------------------------------------
    boolean_row("isfinite", SPECIAL),
    boolean_row("isinf", SPECIAL),
    boolean_row("isnan", SPECIAL),
    boolean_row("equal", ON_GRID, ON_GRID),
    boolean_row("equal#operator", ON_GRID, ON_GRID, fn=lambda xp, x, y: x == y),
    boolean_row("not_equal", ON_GRID, ON_GRID),
    boolean_row("not_equal#operator", ON_GRID, ON_GRID, fn=lambda xp, x, y: x != y),
    boolean_row("less", ON_GRID, ON_GRID),
    boolean_row("less#operator", ON_GRID, ON_GRID, fn=lambda xp, x, y: x < y),
    boolean_row("less_equal", ON_GRID, ON_GRID),
    boolean_row("less_equal#operator", ON_GRID, ON_GRID, fn=lambda xp, x, y: x <= y),
    boolean_row("greater", ON_GRID, ON_GRID),
    boolean_row("greater#operator", ON_GRID, fn=lambda xp, x: x > 0.5),
    boolean_row("greater_equal", ON_GRID, ON_GRID),
    boolean_row("greater_equal#operator", ON_GRID, fn=lambda xp, x: 0.5 >= x),
    # --- logic --------------------------------------------------------------------------
    boolean_row("logical_and", ANY, ANY, fn=lambda xp, x, y: xp.logical_and(x > 0, y > 0)),
    boolean_row("logical_or", ANY, ANY, fn=lambda xp, x, y: xp.logical_or(x > 0, y > 0)),
    boolean_row("logical_xor", ANY, ANY, fn=lambda xp, x, y: xp.logical_xor(x > 0, y > 0)),
    boolean_row("logical_not", ANY, fn=lambda xp, x: xp.logical_not(x > 0)),
    # --- bitwise ------------------------------------------------------------------------
    boolean_row("bitwise_and", integers(-8, 8), integers(-8, 8),
                fn=lambda xp, x, y: xp.bitwise_and(_int(xp, x), _int(xp, y))),
    boolean_row("bitwise_and#operator", integers(-8, 8), integers(-8, 8),
                fn=lambda xp, x, y: _int(xp, x) & _int(xp, y)),
    boolean_row("bitwise_or", integers(-8, 8), integers(-8, 8),
                fn=lambda xp, x, y: xp.bitwise_or(_int(xp, x), _int(xp, y))),
    boolean_row("bitwise_xor", integers(-8, 8), integers(-8, 8),
                fn=lambda xp, x, y: xp.bitwise_xor(_int(xp, x), _int(xp, y))),
    boolean_row("bitwise_left_shift", integers(-8, 8), integers(0, 5),
                fn=lambda xp, x, y: xp.bitwise_left_shift(_int(xp, x), _int(xp, y))),
    boolean_row("bitwise_right_shift", integers(-64, 64), integers(0, 5),
                fn=lambda xp, x, y: xp.bitwise_right_shift(_int(xp, x), _int(xp, y))),
    boolean_row("bitwise_invert", integers(-8, 8),
                fn=lambda xp, x: xp.bitwise_invert(_int(xp, x))),
    boolean_row("bitwise_invert#operator", integers(-8, 8), fn=lambda xp, x: ~_int(xp, x)),
]
