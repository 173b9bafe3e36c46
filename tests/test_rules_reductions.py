"""Rules of the reductions family (statistical and utility functions): values, derivatives
(against JAX and finite differences, first and second order), JVP/VJP agreement, batching
and jit, driven by the ``OpSpec`` rows of ``unijax_conformance.specs.reductions``; then
targeted cases (zeros in products, tied extrema, dtypes, integer inputs, axes).

The checks run the engine directly on NumPy arrays (``vjp_flat``, ``jvp_flat``,
``vmap_flat``, ``JitFunction``), so they test the rules themselves, whatever backend
plugins are installed. ``tests/test_rules_searching.py`` reuses the ``check_*`` helpers.
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

import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.jit import JitFunction
from unijax.engine.namespace import TracedNamespace
from unijax.engine.registry import (
    API_FUNCTIONS,
    batch_rules,
    jvp_rules,
    nondifferentiable,
    vjp_rules,
)

try:
    from unijax_conformance.specs import reductions as spec_module
except ModuleNotFoundError:  # a source checkout without the conformance package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
    from unijax_conformance.specs import reductions as spec_module

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

# The plugin registry fills this cache; seeding it keeps these tests independent of it.
# NumPy reductions return NumPy scalars (np.float64, ...), so those types are seeded too.
for _type in (np.ndarray, np.float64, np.float32, np.int64, np.int32, np.bool_):
    core._NAMESPACE_BY_TYPE.setdefault(_type, anp)

XPS = make_strategies_namespace(np)
TRACED = TracedNamespace(anp)
EXAMPLES = settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
JAX_RTOL, JAX_ATOL = 1e-10, 1e-11
SPECS = spec_module.SPECS

STANDARD = """
sum prod mean max min var std cumulative_sum cumulative_prod all any diff
""".split()


# --- helpers (shared with test_rules_searching.py) ------------------------------------------


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
    (_,), backward = vjp_flat(lambda xs: [f(*xs)], list(args))
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
        return [(np.asarray(p) - np.asarray(m)) / (2 * h)
                for p, m in zip(plus, minus, strict=True)]
    return (float(plus) - float(minus)) / (2 * h)


def permuted(a: np.ndarray, seed: int) -> np.ndarray:
    """Another input of ``a``'s shape and domain: its elements in another order."""
    return np.random.default_rng(seed).permutation(a.reshape(-1)).reshape(a.shape)


def batched(a: np.ndarray, bdim: int, size: int = 3) -> np.ndarray:
    """``size`` examples that stay in ``a``'s domain, stacked along ``bdim``."""
    stack = [a] + [permuted(a, 11 + i) for i in range(size - 1)]
    return np.moveaxis(np.stack(stack), 0, bdim)


def vmap_configs(args: Sequence[np.ndarray]) -> list[list[int | None]]:
    """Batch axes to try: all first, all last, and mixes with unbatched operands."""
    last = [a.ndim for a in args]
    configs: list[list[int | None]] = [[0] * len(args), last]
    if len(args) > 1:
        configs.append([last[0]] + [None] * (len(args) - 1))
        configs.append([None] + [min(1, a.ndim) for a in args[1:]])
    return configs


def jax_hvp(f: Callable[..., Any], n: int) -> Callable[..., Any]:
    """JAX's Hessian-vector product of ``f`` (``n`` arguments), compiled: JAX's eager
    derivatives of scans compile op by op, which is much slower for fresh shapes."""

    def hvp(xs: Sequence[Any], vs: Sequence[Any]) -> Any:
        grad = jax.grad(f, argnums=tuple(range(n)))
        return jax.jvp(lambda *ys: grad(*ys), tuple(xs), tuple(vs))[1]

    return jax.jit(hvp)


def check_values(spec: Any) -> None:
    """The traced namespace gives NumPy's values and dtypes, and JAX's values."""

    @EXAMPLES
    @given(spec.arrays(XPS))
    def check(args: tuple[np.ndarray, ...]) -> None:
        want = outputs(spec.fn(anp, *args))
        got = outputs(spec.fn(TRACED, *args))
        for g, w in zip(got, want, strict=True):
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)
        # Compiled where shapes allow: JAX compiles each eager op afresh for new shapes.
        reference = jax.jit(lambda *xs: spec.fn(jnp, *xs)) if spec.jit else (
            lambda *xs: spec.fn(jnp, *xs))
        ref = outputs(reference(*jax_args(args)))
        for g, r in zip(got, ref, strict=True):
            assert np.shape(r) == np.shape(g)
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-12, atol=1e-14)

    check()


def check_grad(spec: Any) -> None:
    """Reverse mode matches JAX and finite differences; forward mode agrees with it."""

    @EXAMPLES
    @given(spec.arrays(XPS))
    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        grads = engine_grad(f, args)
        for g, a in zip(grads, args, strict=True):
            assert g.shape == a.shape and g.dtype == a.dtype
        ref = jax.jit(jax.grad(scalar_fn(spec, jnp, w), argnums=tuple(range(len(args)))))(
            *jax_args(args))
        assert_close(grads, ref)
        v = directions(args)
        fd = finite_difference(scalar_fn(spec, anp, w), args, v)
        np.testing.assert_allclose(dot(grads, v), fd, rtol=spec.grad_rtol, atol=1e-6)
        (_,), (tangent,) = jvp_flat(lambda xs: [f(*xs)], list(args), v)
        np.testing.assert_allclose(float(tangent), dot(grads, v), rtol=1e-10, atol=1e-12)

    check()


def check_second_derivatives(spec: Any) -> None:
    """Hessian-vector products, forward over reverse and reverse over reverse."""

    @EXAMPLES
    @given(spec.arrays(XPS))
    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        v = directions(args)
        n = len(args)
        _, hvp_fwd = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        jf = scalar_fn(spec, jnp, w)
        ref = jax_hvp(jf, n)(jax_args(args), jax_args(v))
        assert_close(hvp_fwd, ref, rtol=1e-9, atol=1e-10)
        hvp_rev = engine_grad(lambda *xs: sum(
            TRACED.sum(g * d) for g, d in zip(engine_grad(f, xs), v, strict=True)), args)
        assert_close(hvp_rev, ref, rtol=1e-9, atol=1e-10)
        fd = finite_difference(lambda *xs: engine_grad(f, xs), args, v)
        assert_close(hvp_fwd, fd, rtol=spec.grad_rtol, atol=1e-5)

    check()


def check_vmap(spec: Any) -> None:
    """``vmap`` equals a Python loop, batch axis first, last, or on some operands only."""

    @EXAMPLES
    @given(spec.arrays(XPS))
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


def check_vmap_of_grad(spec: Any) -> None:
    """``vmap(grad(f))`` equals the gradients taken one example at a time (batch axis last)."""

    @EXAMPLES
    @given(spec.arrays(XPS))
    def check(args: tuple[np.ndarray, ...]) -> None:
        f = scalar_fn(spec, TRACED, weights_for(spec, args))
        in_dims = [a.ndim for a in args]
        xs = [batched(a, d) for a, d in zip(args, in_dims, strict=True)]
        results = vmap_flat(lambda ys: engine_grad(f, ys), xs, in_dims, 3)
        for i in range(3):
            want = engine_grad(f, [np.take(x, i, axis=d) for x, d in zip(xs, in_dims,
                                                                         strict=True)])
            for (value, bdim), w in zip(results, want, strict=True):
                got = np.asarray(value) if bdim is None else np.take(value, i, axis=bdim)
                np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)

    check()


def check_jit(spec: Any) -> None:
    """A compiled program gives the eager values on new inputs of the same signature."""

    @EXAMPLES
    @given(spec.arrays(XPS))
    def check(args: tuple[np.ndarray, ...]) -> None:
        compiled = JitFunction(lambda *xs: outputs(spec.fn(TRACED, *xs)))
        for seed in (None, 5):
            inputs = args if seed is None else tuple(permuted(a, seed) for a in args)
            got = compiled(*inputs)
            want = outputs(spec.fn(anp, *inputs))
            for g, w in zip(got, want, strict=True):
                g, w = np.asarray(g), np.asarray(w)
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)

    check()


def check_coverage(names: Sequence[str], specs: Sequence[Any]) -> None:
    for name in names:
        assert name in API_FUNCTIONS, name
        prim = core.PRIMITIVES[name]
        assert prim in batch_rules, name
        assert prim in nondifferentiable or (prim in jvp_rules and prim in vjp_rules), name
    assert set(names) <= {s.function for s in specs}
    ids = [s.name for s in specs]
    assert len(ids) == len(set(ids))


def rows(specs: Sequence[Any], check: str) -> Any:
    """``pytest.mark.parametrize`` over the rows for which ``check`` is switched on."""
    chosen = [s for s in specs if {"grad": s.grad, "second": s.grad and s.grad_order >= 2,
                                   "vmap": s.vmap, "vmap_grad": s.vmap and s.grad,
                                   "jit": s.jit, "values": True}[check]]
    return pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])


# --- table-driven checks ------------------------------------------------------------------


def test_every_function_of_the_family_has_rules_and_rows() -> None:
    check_coverage(STANDARD, SPECS)


@rows(SPECS, "values")
def test_values_match_numpy_and_jax(spec: Any) -> None:
    check_values(spec)


@rows(SPECS, "grad")
def test_grad_matches_jax_and_finite_differences(spec: Any) -> None:
    check_grad(spec)


@rows(SPECS, "second")
def test_second_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    check_second_derivatives(spec)


@rows(SPECS, "vmap")
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    check_vmap(spec)


@rows(SPECS, "vmap_grad")
def test_vmap_of_grad_matches_per_example_gradients(spec: Any) -> None:
    check_vmap_of_grad(spec)


@rows(SPECS, "jit")
def test_jit_matches_eager(spec: Any) -> None:
    check_jit(spec)


# --- targeted cases -----------------------------------------------------------------------


def grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


def jax_grad_of(f: Callable[..., Any], *args: Any) -> list[Any]:
    grad = jax.jit(jax.grad(f, argnums=tuple(range(len(args)))))
    return list(grad(*[jnp.asarray(a) for a in args]))


def hessian_vector(f: Callable[..., Any], x: np.ndarray, v: np.ndarray) -> Any:
    _, (h,) = jvp_flat(lambda xs: engine_grad(f, xs), [x], [v])
    return h


def jax_hessian_vector(f: Callable[..., Any], x: np.ndarray, v: np.ndarray) -> Any:
    return jax_hvp(f, 1)([jnp.asarray(x)], [jnp.asarray(v)])[0]


ZEROS = np.array([[0.0, 2.0, -1.5, 0.5], [1.5, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 2.0],
                  [1.0, -2.0, 0.5, 1.5]])
WEIGHTS = np.arange(16.0).reshape(4, 4) / 7 - 1


@pytest.mark.parametrize(
    "call",
    [
        lambda xp, x: xp.prod(x, axis=1),
        lambda xp, x: xp.prod(x, axis=0, keepdims=True),
        lambda xp, x: xp.prod(x),
        lambda xp, x: xp.cumulative_prod(x, axis=1),
        lambda xp, x: xp.cumulative_prod(x, axis=0),
        lambda xp, x: xp.cumulative_prod(x, axis=-1, include_initial=True),
    ],
    ids=["prod-row", "prod-col", "prod-all", "cumprod-row", "cumprod-col", "cumprod-initial"],
)
def test_products_with_zeros_match_jax_to_second_order(call: Callable[..., Any]) -> None:
    def f(xp: Any) -> Callable[..., Any]:
        def scalar(x: Any) -> Any:
            out = call(xp, x)
            return xp.sum(out * xp.reshape(xp.asarray(np.arange(out.size) / 3.0 - 1.0),
                                           out.shape))

        return scalar

    assert_close(grad_of(f(TRACED), ZEROS), jax_grad_of(f(jnp), ZEROS))
    v = WEIGHTS[::-1]
    assert_close([hessian_vector(f(TRACED), ZEROS, v)],
                 [jax_hessian_vector(f(jnp), ZEROS, v)], rtol=1e-9, atol=1e-10)


def test_third_derivative_of_prod_with_a_zero_matches_jax() -> None:
    x, v = np.array([0.0, 2.0, -1.5, 3.0]), np.array([1.0, -0.5, 0.25, 2.0])

    def d(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda y: jvp_flat(lambda ys: [f(ys[0])], [y], [v])[1][0]

    def jax_d(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda y: jax.jvp(f, (y,), (jnp.asarray(v),))[1]

    got = d(d(d(TRACED.prod)))(x)
    want = jax_d(jax_d(jax_d(jnp.prod)))(jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", ["max", "min"])
def test_tied_extrema_share_the_gradient_like_jax(name: str) -> None:
    x = np.array([[1.0, 3.0, 3.0, 2.0], [-5.0, -5.0, -5.0, 0.0], [2.0, 1.0, 2.0, 2.0]])
    calls = [(axis, keepdims) for axis in [None, 0, 1, (0, 1)] for keepdims in [False, True]]

    def f(xp: Any) -> Callable[..., Any]:
        def total(a: Any) -> Any:
            return sum(xp.sum(getattr(xp, name)(a, axis=axis, keepdims=keepdims) ** 2) * (k + 1)
                       for k, (axis, keepdims) in enumerate(calls))

        return total

    assert_close(grad_of(f(TRACED), x), jax_grad_of(f(jnp), x))
    for axis, keepdims in calls:
        _, (t,) = jvp_flat(lambda xs, axis=axis, keepdims=keepdims: [getattr(TRACED, name)(
            xs[0], axis=axis, keepdims=keepdims)], [x], [WEIGHTS[:3]])
        hits = x == getattr(np, name)(x, axis=axis, keepdims=True)
        share = np.sum(WEIGHTS[:3] * hits, axis=axis, keepdims=keepdims) / np.sum(
            hits, axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(t, share, rtol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda xp, x: xp.sum(x, axis=1),
        lambda xp, x: xp.prod(x, axis=(0, 1)),
        lambda xp, x: xp.mean(x, axis=-1, keepdims=True),
        lambda xp, x: xp.max(x, axis=0),
        lambda xp, x: xp.var(x, axis=1, correction=1),
        lambda xp, x: xp.std(x),
        lambda xp, x: xp.cumulative_sum(x, axis=1, include_initial=True),
        lambda xp, x: xp.cumulative_prod(x, axis=0),
        lambda xp, x: xp.diff(x, n=2, axis=0),
    ],
)
def test_float32_stays_float32(call: Callable[..., Any]) -> None:
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [2.0, 0.0, 1.0]], dtype=np.float32)
    (out,), backward = vjp_flat(lambda xs: [call(TRACED, xs[0])], [x])
    assert np.asarray(out).dtype == np.float32
    (g,) = backward([np.ones(np.shape(out), dtype=np.float32)])
    assert g.dtype == np.float32 and g.shape == x.shape
    _, (t,) = jvp_flat(lambda xs: [call(TRACED, xs[0])], [x], [np.ones_like(x)])
    assert np.asarray(t).dtype == np.float32


def test_sum_with_a_wider_dtype_casts_the_cotangent_back() -> None:
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    (out,), backward = vjp_flat(lambda xs: [TRACED.sum(xs[0], dtype=anp.float64)], [x])
    assert np.asarray(out).dtype == np.float64
    (g,) = backward([np.asarray(2.0)])
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])
    (out,), backward = vjp_flat(
        lambda xs: [TRACED.cumulative_prod(xs[0], dtype=anp.float64)], [x])
    assert np.asarray(out).dtype == np.float64
    (g,) = backward([np.ones(3)])
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [1 + 2 + 6, 1 + 3, 2])


@pytest.mark.parametrize(
    "call",
    [
        lambda xp, x: xp.sum(x), lambda xp, x: xp.prod(x, axis=0),
        lambda xp, x: xp.max(x, axis=1), lambda xp, x: xp.min(x),
        lambda xp, x: xp.cumulative_sum(x, axis=0),
        lambda xp, x: xp.cumulative_prod(x, axis=1, include_initial=True),
    ],
)
def test_integer_inputs_get_no_gradient(call: Callable[..., Any]) -> None:
    n = np.array([[1, 2], [3, 4]])
    (out,), backward = vjp_flat(lambda xs: [call(TRACED, xs[0])], [n])
    (g,) = backward([np.ones(np.shape(out))])
    np.testing.assert_array_equal(g, np.zeros_like(n))
    _, (t,) = jvp_flat(lambda xs: [call(TRACED, xs[0])], [n], [np.ones_like(n)])
    np.testing.assert_array_equal(t, np.zeros(np.shape(out)))


def test_axes_are_normalised_so_equivalent_calls_share_one_program() -> None:
    from unijax.engine.staging import stage

    x = np.ones((2, 3, 4))
    texts = []
    for axis in [(0, 2), (-1, 0), (2, -3)]:
        program, _ = stage(lambda xs, axis=axis: [TRACED.var(xs[0], axis=axis)], [x])
        texts.append(str(program))
    assert texts[0] == texts[1] == texts[2]
    assert "axis=(0, 2)" in texts[0]


def test_empty_axis_tuple_reduces_nothing() -> None:
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_array_equal(TRACED.sum(x, axis=()), x)
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.prod(a, axis=()) * 2.0), x)
    np.testing.assert_array_equal(g, np.full((2, 2), 2.0))


def test_cumulative_functions_need_an_axis_for_arrays_of_rank_two() -> None:
    with pytest.raises(ValueError, match="axis"):
        TRACED.cumulative_sum(np.ones((2, 2)))
    with pytest.raises(ValueError, match="axis"):
        TRACED.cumulative_prod(np.ones((2, 2)))


def test_cumulative_functions_on_empty_axes() -> None:
    x = np.ones((2, 0))
    for name in ["cumulative_sum", "cumulative_prod"]:
        fn = getattr(TRACED, name)
        (out,), backward = vjp_flat(lambda xs, fn=fn: [fn(xs[0], axis=1,
                                                          include_initial=True)], [x])
        assert np.shape(out) == (2, 1)
        (g,) = backward([np.ones((2, 1))])
        assert g.shape == (2, 0)


def test_diff_with_prepend_and_append_batches_unbatched_neighbours() -> None:
    x = np.arange(12.0).reshape(3, 4) ** 2
    before, after = np.array([-1.0]), np.array([[7.0], [8.0], [9.0]])
    for in_dims in ([0, 0], [1, 1]):
        xs = [x if in_dims[0] == 0 else x.T, after if in_dims[1] == 0 else after.T]
        ((value, bdim),) = vmap_flat(
            lambda ys: [TRACED.diff(ys[0], prepend=before, append=ys[1], n=2)], xs, in_dims, 3)
        want = np.stack([np.diff(x[i], prepend=before, append=after[i], n=2) for i in range(3)])
        np.testing.assert_allclose(np.moveaxis(np.asarray(value), bdim, 0), want)


def test_std_and_var_gradients_under_vmap_of_grad() -> None:
    xs = np.array([[0.5, 1.0, -2.0], [1.5, -0.5, 0.0], [2.0, 0.25, 3.0]])

    def per_example(ys: list[Any]) -> list[Any]:
        return engine_grad(lambda v: TRACED.std(v, correction=1) + TRACED.var(v), ys)

    ((value, bdim),) = vmap_flat(per_example, [xs], [1], 3)
    want = jax.vmap(jax.grad(lambda v: jnp.std(v, ddof=1) + jnp.var(v)), in_axes=1)(xs)
    assert_close([np.moveaxis(np.asarray(value), bdim, 0)], [want])


def test_traced_namespace_functions_have_standard_signatures() -> None:
    import inspect

    params = inspect.signature(TRACED.var).parameters
    assert [(p.name, p.kind, p.default) for p in params.values()] == [
        ("x", inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.empty),
        ("axis", inspect.Parameter.KEYWORD_ONLY, None),
        ("correction", inspect.Parameter.KEYWORD_ONLY, 0.0),
        ("keepdims", inspect.Parameter.KEYWORD_ONLY, False),
    ]
    params = inspect.signature(TRACED.cumulative_sum).parameters
    assert list(params) == ["x", "axis", "dtype", "include_initial"]
    params = inspect.signature(TRACED.diff).parameters
    assert list(params) == ["x", "axis", "n", "prepend", "append"]


# --- a strict backend ---------------------------------------------------------------------


def run_on(xp: Any, call: Callable[..., Any], x: np.ndarray) -> list[np.ndarray]:
    """Value, gradient, JVP, Hessian-vector product and vmap of ``call`` on namespace ``xp``,
    as NumPy arrays (rules must not lean on NumPy's leniency: operators that defer to
    tracers, incomplete index keys, sums of booleans)."""
    core._NAMESPACE_BY_TYPE.setdefault(type(xp.asarray(1.0)), xp)
    traced = TracedNamespace(xp)
    a = xp.asarray(x)
    t = xp.asarray(np.linspace(-1.0, 1.0, x.size).reshape(x.shape))

    def f(xs: list[Any]) -> list[Any]:
        return [call(traced, xs[0])]

    (out,), backward = vjp_flat(f, [a])
    ct = xp.ones(out.shape, dtype=out.dtype)
    (g,) = backward([ct])
    _, (tangent,) = jvp_flat(f, [a], [t])
    _, (hvp,) = jvp_flat(lambda xs: vjp_flat(f, xs)[1]([ct]), [a], [t])
    ((batched_out, bdim),) = vmap_flat(f, [xp.stack([a, -a])], [0], 2)
    assert bdim is not None
    return [np.asarray(v) for v in (out, g, tangent, hvp, batched_out)]


STRICT_CALLS = [
    lambda xp, x: xp.prod(x, axis=0),
    lambda xp, x: xp.max(x, axis=1, keepdims=True),
    lambda xp, x: xp.std(x, axis=(0, 1), correction=1),
    lambda xp, x: xp.var(x, axis=-1),
    lambda xp, x: xp.mean(x, axis=0),
    lambda xp, x: xp.cumulative_sum(x, axis=0, include_initial=True),
    lambda xp, x: xp.cumulative_prod(x, axis=0, include_initial=True),
    lambda xp, x: xp.diff(x, axis=0, n=2, append=x),
]


@pytest.mark.parametrize("call", STRICT_CALLS)
def test_rules_run_on_array_api_strict(call: Callable[..., Any]) -> None:
    strict = pytest.importorskip("array_api_strict")
    x = np.array([[0.0, 2.0, -1.5], [1.5, 0.0, 3.0], [1.0, -2.0, 0.5]])
    for got, want in zip(run_on(strict, call, x), run_on(anp, call, x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
