"""Rules of the elementwise family: values, derivatives (against JAX and finite
differences, first and second order), JVP/VJP agreement and batching, driven by the
``OpSpec`` rows of ``unijax_conformance.specs.elementwise``; then targeted cases.

Most checks run the engine directly on NumPy arrays (``vjp_flat``, ``jvp_flat``,
``vmap_flat``), so they test the rules themselves; JAX is the reference for values and
derivatives (one jitted program for all rows). The public transforms (``check_grads``,
``jit``, ``vmap``) are then run on every row, on NumPy and on array-api-strict, whose arrays
do not defer ``array * tracer`` to the tracer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat.numpy as anp
import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.array_api import make_strategies_namespace
from unijax_conformance.specs.elementwise import SPECS

import unijax
import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.namespace import TracedNamespace
from unijax.engine.namespace import array_functions as ops
from unijax.engine.registry import (
    API_FUNCTIONS,
    batch_rules,
    jvp_rules,
    nondifferentiable,
    vjp_rules,
)
from unijax.testing import check_grads

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

# The plugin registry fills this cache; seeding it keeps these tests independent of it.
core._NAMESPACE_BY_TYPE.setdefault(np.ndarray, anp)

XPS = make_strategies_namespace(np)
TRACED = TracedNamespace(anp)
EXAMPLES = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JAX_RTOL, JAX_ATOL = 1e-10, 1e-11
IDS = [s.name for s in SPECS]
DIFFERENTIABLE = [s for s in SPECS if s.grad]

# Every elementwise function of the Array API standard (2024.12).
STANDARD = """
abs acos acosh add asin asinh atan atan2 atanh bitwise_and bitwise_left_shift
bitwise_invert bitwise_or bitwise_right_shift bitwise_xor ceil clip conj copysign cos cosh
divide equal exp expm1 floor floor_divide greater greater_equal hypot imag isfinite isinf
isnan less less_equal log log1p log2 log10 logaddexp logical_and logical_not logical_or
logical_xor maximum minimum multiply negative nextafter not_equal positive pow real
reciprocal remainder round sign signbit sin sinh square sqrt subtract tan tanh trunc
""".split()


# --- helpers ------------------------------------------------------------------------------


def outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, tuple) else [result]


def weights_for(spec: Any, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Fixed random weights that turn the outputs into one scalar."""
    rng = np.random.default_rng(7)
    return [rng.normal(size=np.shape(o)) for o in outputs(spec.fn(anp, *args))]


def scalar_fn(spec: Any, xp: Any, weights: Sequence[Any]) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        total = 0.0
        for out, w in zip(outputs(spec.fn(xp, *args)), weights, strict=True):
            total = total + xp.sum(out * w)
        return total

    return f


def engine_grad(f: Callable[..., Any], args: Sequence[Any]) -> list[Any]:
    """The gradient of scalar ``f`` by the engine's reverse mode."""
    (_, ), backward = vjp_flat(lambda xs: [f(*xs)], list(args))
    return backward([np.asarray(1.0)])


def jax_args(args: Sequence[np.ndarray]) -> list[Any]:
    return [jnp.asarray(a) for a in args]


def directions(args: Sequence[np.ndarray], seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=a.shape) for a in args]


def dot(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    return float(sum(np.sum(np.asarray(x) * np.asarray(y)) for x, y in zip(xs, ys, strict=True)))


def assert_close(got: Sequence[Any], want: Sequence[Any], rtol: float = JAX_RTOL,
                 atol: float = JAX_ATOL) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def finite_difference(f: Callable[..., Any], args: Sequence[np.ndarray],
                      v: Sequence[np.ndarray], h: float = 1e-6) -> Any:
    plus = f(*[a + h * d for a, d in zip(args, v, strict=True)])
    minus = f(*[a - h * d for a, d in zip(args, v, strict=True)])
    if isinstance(plus, list):
        return [(np.asarray(p) - np.asarray(m)) / (2 * h) for p, m in zip(plus, minus,
                                                                          strict=True)]
    return (float(plus) - float(minus)) / (2 * h)


def spec_arrays(spec: Any) -> Any:
    return spec.arrays(XPS)


# --- coverage -----------------------------------------------------------------------------


def test_every_standard_elementwise_function_has_rules() -> None:
    for name in STANDARD:
        assert name in API_FUNCTIONS, name
        prim = core.PRIMITIVES[name]
        assert prim in batch_rules, name
        assert prim in nondifferentiable or (prim in jvp_rules and prim in vjp_rules), name


def test_every_standard_elementwise_function_has_a_spec_row() -> None:
    assert set(STANDARD) <= {s.function for s in SPECS}
    assert len(IDS) == len(set(IDS))


# --- table-driven checks ------------------------------------------------------------------


@functools.cache
def example_for(spec: Any) -> tuple[np.ndarray, ...]:
    """The largest of a few examples hypothesis draws for ``spec`` (a non-trivial input)."""
    seen: list[tuple[np.ndarray, ...]] = []

    @settings(EXAMPLES, max_examples=3)
    @given(spec_arrays(spec))
    def collect(args: tuple[np.ndarray, ...]) -> None:
        seen.append(args)

    collect()
    return max(seen, key=lambda args: sum(a.size for a in args))


@functools.cache
def jax_inputs(spec: Any) -> tuple[tuple[np.ndarray, ...], list[np.ndarray], list[np.ndarray]]:
    """A row's example input, its output weights and a direction for JAX comparisons."""
    args = example_for(spec)
    return args, weights_for(spec, args), directions(args)


@functools.cache
def jax_references() -> dict[str, Any]:
    """JAX's values, gradients and Hessian-vector products for every row.

    Computed in one ``jax.jit`` program: compiling each row separately costs far more.
    """

    def reference(spec: Any, args: Any, w: Any, v: Any) -> Any:
        values = outputs(spec.fn(jnp, *args))
        if not spec.grad:
            return values, None, None
        grad = jax.grad(scalar_fn(spec, jnp, w), argnums=tuple(range(len(args))))
        grads, hvp = jax.jvp(grad, tuple(args), tuple(v))
        return values, grads, hvp

    def everything(inputs: dict[str, Any]) -> dict[str, Any]:
        return {spec.name: reference(spec, *inputs[spec.name]) for spec in SPECS}

    inputs = {spec.name: jax.tree_util.tree_map(jnp.asarray, jax_inputs(spec)) for spec in SPECS}
    return jax.jit(everything)(inputs)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_match_numpy(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        want = outputs(spec.fn(anp, *args))
        got = outputs(spec.fn(TRACED, *args))
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)

    check()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_and_derivatives_match_jax(spec: Any) -> None:
    args, w, v = jax_inputs(spec)
    ref_values, ref_grads, ref_hvp = jax_references()[spec.name]
    assert_close(outputs(spec.fn(TRACED, *args)), ref_values, rtol=1e-12, atol=1e-14)
    if not spec.grad:
        return
    f = scalar_fn(spec, TRACED, w)
    assert_close(engine_grad(f, args), ref_grads)
    if spec.grad_order >= 2:
        _, hvp = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        assert_close(hvp, ref_hvp)


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=[s.name for s in DIFFERENTIABLE])
def test_grad_matches_finite_differences_and_jvp(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        grads = engine_grad(f, args)
        for g, a in zip(grads, args, strict=True):
            assert g.shape == a.shape and g.dtype == a.dtype
        v = directions(args)
        fd = finite_difference(scalar_fn(spec, anp, w), args, v)
        np.testing.assert_allclose(dot(grads, v), fd, rtol=spec.grad_rtol, atol=1e-6)
        # Forward mode agrees with reverse mode: <grad, v> == jvp(f)(v).
        (_, ), (tangent, ) = jvp_flat(lambda xs: [f(*xs)], list(args), v)
        np.testing.assert_allclose(float(tangent), dot(grads, v), rtol=1e-10, atol=1e-12)

    check()


@pytest.mark.parametrize("spec", [s for s in DIFFERENTIABLE if s.grad_order >= 2],
                         ids=[s.name for s in DIFFERENTIABLE if s.grad_order >= 2])
def test_second_derivatives_match_finite_differences(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        f = scalar_fn(spec, TRACED, weights_for(spec, args))
        v = directions(args)
        # Hessian-vector products: forward over reverse, and reverse over reverse.
        _, hvp_fwd = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        hvp_rev = engine_grad(lambda *xs: sum(
            TRACED.sum(g * d) for g, d in zip(engine_grad(f, xs), v, strict=True)), args)
        assert_close(hvp_rev, hvp_fwd)
        fd = finite_difference(lambda *xs: engine_grad(f, xs), args, v)
        assert_close(hvp_fwd, fd, rtol=spec.grad_rtol, atol=1e-5)

    check()


def batched(a: np.ndarray, bdim: int, size: int = 3) -> np.ndarray:
    """``size`` examples that stay in ``a``'s domain (permutations of its elements)."""
    rng = np.random.default_rng(11)
    flat = a.reshape(-1)
    stack = [a] + [rng.permutation(flat).reshape(a.shape) for _ in range(size - 1)]
    return np.moveaxis(np.stack(stack), 0, bdim)


def vmap_configs(args: Sequence[np.ndarray]) -> list[list[int | None]]:
    """Batch axes to try: all first, all last, and mixes with unbatched operands."""
    last: list[int | None] = [a.ndim for a in args]
    configs: list[list[int | None]] = [[0] * len(args), last]
    if len(args) > 1:
        configs.append([last[0]] + [None] * (len(args) - 1))
        configs.append([None] + [min(1, a.ndim) for a in args[1:]])
    return configs


@pytest.mark.parametrize("spec", [s for s in SPECS if s.vmap],
                         ids=[s.name for s in SPECS if s.vmap])
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        for in_dims in vmap_configs(args):
            xs = [a if d is None else batched(a, d) for a, d in zip(args, in_dims, strict=True)]
            results = vmap_flat(lambda ys: outputs(spec.fn(TRACED, *ys)), xs, in_dims, 3)
            loop = [
                outputs(spec.fn(anp, *[x if d is None else np.take(x, i, axis=d)
                                       for x, d in zip(xs, in_dims, strict=True)]))
                for i in range(3)
            ]
            for k, (value, bdim) in enumerate(results):
                want = np.stack([np.asarray(ex[k]) for ex in loop])
                got = (np.broadcast_to(value, want.shape) if bdim is None
                       else np.moveaxis(np.asarray(value), bdim, 0))
                assert got.dtype == want.dtype
                np.testing.assert_allclose(got, want, rtol=spec.rtol, atol=spec.atol)

    check()


def through_namespace(spec: Any) -> Callable[..., Any]:
    """``spec.fn`` written like library code: the namespace comes from the arguments."""

    def f(*xs: Any) -> Any:
        return spec.fn(array_namespace(*xs), *xs)

    return f


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=[s.name for s in DIFFERENTIABLE])
def test_public_check_grads(spec: Any) -> None:
    args = example_for(spec)
    check_grads(through_namespace(spec), args, order=spec.grad_order, modes=("fwd", "rev"))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.jit], ids=[s.name for s in SPECS if s.jit])
def test_public_jit_matches_eager(spec: Any) -> None:
    args = example_for(spec)
    got = outputs(unijax.jit(through_namespace(spec))(*args))
    for g, w in zip(got, outputs(spec.fn(anp, *args)), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.vmap],
                         ids=[s.name for s in SPECS if s.vmap])
def test_public_vmap_with_unbatched_operands(spec: Any) -> None:
    args = example_for(spec)
    in_axes = (-1,) + (None,) * (len(args) - 1)
    xs = (batched(args[0], args[0].ndim), *args[1:])
    got = outputs(unijax.vmap(through_namespace(spec), in_axes=in_axes)(*xs))
    for k, g in enumerate(got):
        want = np.stack([outputs(spec.fn(anp, np.take(xs[0], i, axis=-1), *args[1:]))[k]
                         for i in range(3)])
        assert g.dtype == want.dtype
        np.testing.assert_allclose(g, want, rtol=spec.rtol, atol=spec.atol)


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=[s.name for s in DIFFERENTIABLE])
def test_second_order_on_array_api_strict(spec: Any) -> None:
    # array-api-strict arrays raise on ``array * tracer`` instead of deferring to the
    # tracer, so this catches rules that use Python operators between two arrays.
    strict = pytest.importorskip("array_api_strict")
    args = [strict.asarray(a) for a in example_for(spec)]
    check_grads(through_namespace(spec), args, order=2, modes=("fwd", "rev"))


# --- targeted cases -----------------------------------------------------------------------

X = np.array([[0.3, -0.7, 1.2], [2.0, -1.5, 0.4]])


def grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


def jax_grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    grad = jax.jit(jax.grad(f, argnums=tuple(range(len(args)))))
    return list(grad(*[jnp.asarray(a) for a in args]))


@pytest.mark.parametrize(
    ("name", "x", "y"),
    [
        ("maximum", [1.0, 2.0, -1.0], [1.0, 0.5, -1.0]),
        ("minimum", [1.0, 2.0, -1.0], [1.0, 0.5, -1.0]),
        ("hypot", [0.0, 0.0, -3.0], [0.0, 2.0, -3.0]),
        ("copysign", [0.0, -0.0, 1.5], [-2.0, 2.0, -0.0]),
        ("pow", [0.0, 0.0, 0.0, 2.0], [2.0, 0.0, 1.0, 0.0]),
        ("atan2", [1.0, -1.0], [2.0, 0.5]),
        ("remainder", [5.5, -5.5, 5.5], [2.0, 2.0, -2.0]),
        ("logaddexp", [1.0, -np.inf, 3.0], [2.0, 0.0, -np.inf]),
    ],
)
def test_binary_derivatives_at_special_points_match_jax(name: str, x: list[float],
                                                        y: list[float]) -> None:
    def f(xp: Any) -> Callable[..., Any]:
        return lambda a, b: xp.sum(getattr(xp, name)(a, b))

    x_arr, y_arr = np.array(x), np.array(y)
    with np.errstate(all="ignore"):
        got = grad_of(f(TRACED), x_arr, y_arr)
    want = jax_grad_of(f(jnp), x_arr, y_arr)
    assert_close(got, want)


@pytest.mark.parametrize("name", ["abs", "sqrt", "sign", "floor", "round"])
def test_unary_derivatives_at_zero_match_jax(name: str) -> None:
    x = np.array([0.0, -0.0, 1.0])
    with np.errstate(all="ignore"):
        got = grad_of(lambda a: TRACED.sum(getattr(TRACED, name)(a)), x)
    want = jax_grad_of(lambda a: jnp.sum(getattr(jnp, name)(a)), x)
    assert_close(got, want)


@pytest.mark.parametrize(
    ("x", "lo", "hi"),
    [
        ([0.0, 1.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]),  # ties, inside
        ([0.5, 0.5, 3.0], [2.0, 0.5, 0.0], [1.0, 0.5, 3.0]),  # min > max, all equal
    ],
)
def test_clip_ties_split_like_jax(x: list[float], lo: list[float], hi: list[float]) -> None:
    def f(xp: Any) -> Callable[..., Any]:
        return lambda a, b, c: xp.sum(xp.clip(a, b, c) * xp.asarray([1.0, 2.0, 3.0, 4.0][
            :len(x)]))

    args = (np.array(x), np.array(lo), np.array(hi))
    assert_close(grad_of(f(TRACED), *args), jax_grad_of(f(jnp), *args))


def test_clip_with_scalar_and_missing_bounds() -> None:
    x = np.array([-2.0, 0.3, 2.0], dtype=np.float32)
    for lo, hi in [(-1.0, 1.0), (None, 1.0), (-1.0, None), (None, None)]:
        out = TRACED.clip(x, lo, hi)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, np.clip(x, lo, hi) if (lo, hi) != (None, None) else x)
        (g,) = grad_of(lambda a, lo=lo, hi=hi: TRACED.sum(TRACED.clip(a, lo, hi)), x)
        assert g.dtype == np.float32
        want = [lo is None, True, hi is None]
        np.testing.assert_array_equal(g, np.asarray(want, dtype=np.float32))


def test_clip_keywords_and_broadcast_bounds() -> None:
    x = np.linspace(-2.0, 2.0, 6).reshape(2, 3)
    lo = np.array([-1.0, 0.0, -3.0])
    got = grad_of(lambda a, b: TRACED.sum(TRACED.clip(a, min=b, max=1.5)), x, lo)
    want = jax_grad_of(lambda a, b: jnp.sum(jnp.clip(a, min=b, max=1.5)), x, lo)
    assert_close(got, want)
    assert got[1].shape == (3,)


def test_python_scalars_on_either_side_keep_float32() -> None:
    x = np.array([0.5, 1.5, 2.5], dtype=np.float32)
    cases: list[Callable[[Any], Any]] = [
        lambda a: 2.0 * a, lambda a: a * 2.0, lambda a: 2 - a, lambda a: a / 3,
        lambda a: 3.0 / a, lambda a: a**2, lambda a: 2.0**a, lambda a: -a, lambda a: abs(a),
        lambda a: TRACED.maximum(a, 1.0), lambda a: TRACED.atan2(1.0, a),
        lambda a: TRACED.hypot(a, 1.0), lambda a: TRACED.logaddexp(0.5, a),
        lambda a: TRACED.copysign(a, -1.0), lambda a: a % 0.75, lambda a: a + 1,
        lambda a: TRACED.pow(a, 0.5),
    ]
    for case in cases:
        def fun(xs: list[Any], case: Callable[[Any], Any] = case) -> list[Any]:
            return [case(xs[0])]

        (out,), backward = vjp_flat(fun, [x])
        assert out.dtype == np.float32
        (g,) = backward([np.ones(3, dtype=np.float32)])
        assert g.dtype == np.float32 and g.shape == (3,)
        _, (t,) = jvp_flat(fun, [x], [np.ones(3, dtype=np.float32)])
        assert t.dtype == np.float32
        np.testing.assert_allclose(g, t, rtol=1e-6)


def test_operators_match_jax_gradients() -> None:
    a, b = X, X[::-1, ::-1] * 0.5

    def engine(a: Any, b: Any) -> Any:
        y = (a**2 + 2 - a / 3 + abs(-b) * a - 1.5**b + (a % 0.7) * b + 3 * (+a) - 2 / (b + 4))
        return TRACED.sum(y * TRACED.astype(a > b, a.dtype)
                          + y * TRACED.astype(a <= 0.5, a.dtype))

    def reference(a: Any, b: Any) -> Any:
        y = (a**2 + 2 - a / 3 + abs(-b) * a - 1.5**b + (a % 0.7) * b + 3 * (+a) - 2 / (b + 4))
        return jnp.sum(y * (a > b).astype(a.dtype) + y * (a <= 0.5).astype(a.dtype))

    assert_close(grad_of(engine, a, b), jax_grad_of(reference, a, b))


def test_integer_inputs_and_nondifferentiable_functions_give_zero_tangents() -> None:
    n = np.array([1, 2, 3])
    x = np.array([0.5, 1.5, -2.5])
    # An integer array closed over is a constant: its operations carry no tangent.
    (g,) = grad_of(lambda a: TRACED.sum(a * n + TRACED.pow(a, n) + a // 2 + TRACED.floor(a)), x)
    np.testing.assert_allclose(g, n + n * x ** (n - 1))
    # A float made integer inside the function stops the derivative there.
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.astype(TRACED.round(a), TRACED.int64) * a), x)
    np.testing.assert_allclose(g, np.round(x))
    _, (t,) = jvp_flat(lambda xs: [TRACED.sign(xs[0]) + TRACED.floor(xs[0])], [x], [np.ones(3)])
    np.testing.assert_array_equal(t, np.zeros(3))


def test_pow_with_integer_array_exponent_has_no_exponent_gradient() -> None:
    x = np.array([0.0, 2.0, -1.5])
    n = np.array([0, 3, 2])
    _, backward = vjp_flat(lambda xs: [TRACED.pow(xs[0], xs[1])], [x, n])
    ct_x, ct_n = backward([np.ones(3)])
    np.testing.assert_allclose(ct_x, [0.0, 12.0, -3.0])
    np.testing.assert_array_equal(ct_n, np.zeros(3))
    _, (t,) = jvp_flat(lambda xs: [TRACED.pow(xs[0], n)], [x], [np.ones(3)])
    np.testing.assert_allclose(t, [0.0, 12.0, -3.0])


def test_nextafter_derivative_is_identity_in_first_argument() -> None:
    x, y = np.array([1.0, -2.0]), np.array([2.0, -3.0])
    gx, gy = grad_of(lambda a, b: TRACED.sum(TRACED.nextafter(a, b)), x, y)
    np.testing.assert_array_equal(gx, np.ones(2))
    np.testing.assert_array_equal(gy, np.zeros(2))


@pytest.mark.parametrize("name", ["abs", "real", "imag", "conj", "exp", "sqrt", "sin", "square",
                                  "reciprocal", "log"])
def test_complex_vjp_is_the_transpose_of_the_jvp_like_jax(name: str) -> None:
    z = np.array([3.0 + 4.0j, -1.0 + 0.5j, 0.5 - 2.0j])
    ct = np.array([1.0 - 2.0j, 0.5 + 0.5j, -1.0 + 0.0j])
    (out,), backward = vjp_flat(lambda xs: [getattr(TRACED, name)(xs[0])], [z])
    ct = ct if np.iscomplexobj(out) else ct.real
    (got,) = backward([ct])
    _, jax_backward = jax.vjp(getattr(jnp, name), jnp.asarray(z))
    (want,) = jax_backward(jnp.asarray(ct))
    assert got.dtype == z.dtype
    assert_close([got], [want])
    _, (t,) = jvp_flat(lambda xs: [getattr(TRACED, name)(xs[0])], [z], [ct.conj() + 0j])
    _, want_t = jax.jvp(getattr(jnp, name), (jnp.asarray(z),), (jnp.asarray(ct.conj() + 0j),))
    assert_close([t], [want_t])


def test_abs_of_complex_zero_has_zero_derivative() -> None:
    (g,) = grad_of(lambda z: TRACED.sum(TRACED.abs(z)), np.zeros(2, dtype=complex))
    np.testing.assert_array_equal(g, np.zeros(2, dtype=complex))


def test_broadcasting_cotangents_reduce_to_operand_shapes() -> None:
    a = np.arange(6.0).reshape(2, 1, 3) + 0.5
    b = np.array([[1.0], [2.0], [3.0], [4.0]])
    names = ["add", "subtract", "multiply", "divide", "pow", "atan2", "hypot", "maximum",
             "minimum", "logaddexp", "copysign", "remainder"]

    def total(xp: Any) -> Callable[..., Any]:
        # One weighted sum over all functions: a single JAX compilation for the reference.
        return lambda x, y: sum(
            (k + 1) * xp.sum(getattr(xp, name)(x, y)) for k, name in enumerate(names))

    got = grad_of(total(TRACED), a, b)
    assert [g.shape for g in got] == [(2, 1, 3), (4, 1)]
    assert_close(got, jax_grad_of(total(jnp), a, b))


def test_zero_dimensional_operands() -> None:
    a, s = np.array([0.5, 1.5]), np.asarray(0.25)
    got = grad_of(lambda x, y: TRACED.sum(TRACED.multiply(TRACED.sin(x), TRACED.exp(y))), a, s)
    assert got[1].shape == ()
    assert_close(got, jax_grad_of(lambda x, y: jnp.sum(jnp.sin(x) * jnp.exp(y)), a, s))


def test_vmap_of_grad_gives_per_example_gradients() -> None:
    xs = np.array([[0.5, 1.0], [1.5, -0.5], [2.0, 0.25]])

    def per_example(ys: list[Any]) -> list[Any]:
        return engine_grad(lambda v: TRACED.sum(TRACED.tanh(v) * TRACED.maximum(v, 0.75)),
                           ys)

    ((value, bdim),) = vmap_flat(per_example, [xs], [0], 3)
    assert bdim is not None
    want = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(jnp.tanh(v) * jnp.maximum(v, 0.75)))))(xs)
    assert_close([np.moveaxis(value, bdim, 0)], [want])


def test_clip_under_vmap_with_unbatched_and_missing_bounds() -> None:
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    hi = np.array([0.5, 1.0, 1.5])
    results = vmap_flat(lambda ys: [TRACED.clip(ys[0], None, ys[1])], [x, hi], [0, 0], 3)
    ((value, bdim),) = results
    assert bdim is not None
    want = np.stack([np.clip(x[i], None, hi[i]) for i in range(3)])
    np.testing.assert_array_equal(np.moveaxis(value, bdim, 0), want)
    results = vmap_flat(lambda ys: [TRACED.clip(ys[0], -0.5, ys[1])], [x.T, hi[:, None]],
                        [1, None], 3)
    ((value, bdim),) = results
    assert bdim is not None
    want = np.stack([np.clip(x[i], -0.5, hi[:, None]) for i in range(3)])
    np.testing.assert_array_equal(np.moveaxis(value, bdim, 0), want)


def test_traced_namespace_functions_have_standard_signatures() -> None:
    import inspect

    unary = inspect.signature(ops.sin)
    assert [p.kind for p in unary.parameters.values()] == [inspect.Parameter.POSITIONAL_ONLY]
    binary = inspect.signature(ops.atan2)
    assert [p.kind for p in binary.parameters.values()] == [
        inspect.Parameter.POSITIONAL_ONLY] * 2
    clip = inspect.signature(ops.clip).parameters
    assert [(p.name, p.kind, p.default) for p in clip.values()] == [
        ("x", inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.empty),
        ("min", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("max", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
    ]
