"""Rules of the elementwise family: values, derivatives (against JAX and finite
differences, first and second order), JVP/VJP agreement and batching, driven by the
``OpSpec`` rows of ``unijax_conformance.specs.elementwise``; then targeted cases.

The checks run the engine directly on NumPy arrays (``vjp_flat``, ``jvp_flat``,
``vmap_flat``), so they test the rules themselves, whatever backend plugins are installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import array_api_compat.numpy as anp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.array_api import make_strategies_namespace

import unijax._core as core
from unijax._ad import jvp_flat, vjp_flat
from unijax._batching import vmap_flat
from unijax._namespace import TracedNamespace
from unijax._namespace import array_functions as ops
from unijax._registry import API_FUNCTIONS, batch_rules, jvp_rules, nondifferentiable, vjp_rules

try:
    from unijax_conformance.specs.elementwise import SPECS
except ModuleNotFoundError:  # a source checkout without the conformance package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
    from unijax_conformance.specs.elementwise import SPECS

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


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_match_numpy_and_jax(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        want = outputs(spec.fn(anp, *args))
        got = outputs(spec.fn(TRACED, *args))
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)
        with np.errstate(all="ignore"):
            ref = outputs(spec.fn(jnp, *jax_args(args)))
        for g, r in zip(got, ref, strict=True):
            assert np.asarray(r).shape == g.shape
            np.testing.assert_allclose(g, np.asarray(r), rtol=1e-12, atol=1e-14)

    check()


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=[s.name for s in DIFFERENTIABLE])
def test_grad_matches_jax_and_finite_differences(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        grads = engine_grad(f, args)
        for g, a in zip(grads, args, strict=True):
            assert g.shape == a.shape and g.dtype == a.dtype
        ref = jax.grad(scalar_fn(spec, jnp, w), argnums=tuple(range(len(args))))(
            *jax_args(args))
        assert_close(grads, ref)
        v = directions(args)
        fd = finite_difference(scalar_fn(spec, anp, w), args, v)
        np.testing.assert_allclose(dot(grads, v), fd, rtol=spec.grad_rtol, atol=1e-6)
        # Forward mode agrees with reverse mode: <grad, v> == jvp(f)(v).
        (_, ), (tangent, ) = jvp_flat(lambda xs: [f(*xs)], list(args), v)
        np.testing.assert_allclose(float(tangent), dot(grads, v), rtol=1e-10, atol=1e-12)

    check()


@pytest.mark.parametrize("spec", [s for s in DIFFERENTIABLE if s.grad_order >= 2],
                         ids=[s.name for s in DIFFERENTIABLE if s.grad_order >= 2])
def test_second_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    @EXAMPLES
    @given(spec_arrays(spec))
    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        v = directions(args)
        n = len(args)
        # Hessian-vector product, forward over reverse.
        _, hvp_fwd = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        jf = scalar_fn(spec, jnp, w)
        _, ref = jax.jvp(lambda *xs: jax.grad(jf, argnums=tuple(range(n)))(*xs),
                         tuple(jax_args(args)), tuple(jax_args(v)))
        assert_close(hvp_fwd, ref)
        # Reverse over reverse: the gradient of <grad f, v>.
        hvp_rev = engine_grad(lambda *xs: sum(
            TRACED.sum(g * d) for g, d in zip(engine_grad(f, xs), v, strict=True)), args)
        assert_close(hvp_rev, ref)
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
    last = [a.ndim for a in args]
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


# --- targeted cases -----------------------------------------------------------------------

X = np.array([[0.3, -0.7, 1.2], [2.0, -1.5, 0.4]])


def grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


def jax_grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    return list(jax.grad(f, argnums=tuple(range(len(args))))(*[jnp.asarray(a) for a in args]))


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
    cases = [
        lambda a: 2.0 * a, lambda a: a * 2.0, lambda a: 2 - a, lambda a: a / 3,
        lambda a: 3.0 / a, lambda a: a**2, lambda a: 2.0**a, lambda a: -a, lambda a: abs(a),
        lambda a: TRACED.maximum(a, 1.0), lambda a: TRACED.atan2(1.0, a),
        lambda a: TRACED.hypot(a, 1.0), lambda a: TRACED.logaddexp(0.5, a),
        lambda a: TRACED.copysign(a, -1.0), lambda a: a % 0.75, lambda a: a + 1,
        lambda a: TRACED.pow(a, 0.5),
    ]
    for case in cases:
        (out,), backward = vjp_flat(lambda xs, case=case: [case(xs[0])], [x])
        assert out.dtype == np.float32
        (g,) = backward([np.ones(3, dtype=np.float32)])
        assert g.dtype == np.float32 and g.shape == (3,)
        _, (t,) = jvp_flat(lambda xs, case=case: [case(xs[0])], [x],
                           [np.ones(3, dtype=np.float32)])
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
    (g,), backward = vjp_flat(lambda xs: [TRACED.pow(xs[0], xs[1])], [x, n])
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
    for name in ["add", "subtract", "multiply", "divide", "pow", "atan2", "hypot", "maximum",
                 "logaddexp", "copysign"]:
        got = grad_of(lambda x, y, name=name: TRACED.sum(getattr(TRACED, name)(x, y)), a, b)
        want = jax_grad_of(lambda x, y, name=name: jnp.sum(getattr(jnp, name)(x, y)), a, b)
        assert [g.shape for g in got] == [(2, 1, 3), (4, 1)]
        assert_close(got, want)


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
    want = jax.vmap(jax.grad(lambda v: jnp.sum(jnp.tanh(v) * jnp.maximum(v, 0.75))))(xs)
    assert_close([np.moveaxis(value, bdim, 0)], [want])


def test_clip_under_vmap_with_unbatched_and_missing_bounds() -> None:
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    hi = np.array([0.5, 1.0, 1.5])
    results = vmap_flat(lambda ys: [TRACED.clip(ys[0], None, ys[1])], [x, hi], [0, 0], 3)
    ((value, bdim),) = results
    want = np.stack([np.clip(x[i], None, hi[i]) for i in range(3)])
    np.testing.assert_array_equal(np.moveaxis(value, bdim, 0), want)
    results = vmap_flat(lambda ys: [TRACED.clip(ys[0], -0.5, ys[1])], [x.T, hi[:, None]],
                        [1, None], 3)
    ((value, bdim),) = results
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
