"""Rules of the linear-algebra family (``matmul``, ``matrix_transpose``, ``tensordot``,
``vecdot`` and the ``linalg`` extension), driven by the ``OpSpec`` rows of
``unijax_conformance.specs.linalg`` (see ``linalg_fft_checks``); then targeted cases:
dtypes, integer inputs, batching layouts (one large product instead of many small ones),
complex inputs against JAX, derivative errors, result namedtuples and the
Gaussian-process likelihood.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import linalg_fft_checks as lc
import rules_checks as rc
from rules_checks import TRACED, engine_grad, jax, jnp
from unijax_conformance.specs.linalg import SPECS

import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.registry import (
    API_FUNCTIONS,
    batch_rules,
    jvp_rules,
    nondifferentiable,
    vjp_rules,
)
from unijax.engine.rules.linalg import matmul_p
from unijax.engine.rules.linalg_solve import solve_p
from unijax.errors import UnsupportedTransformError

IDS = [s.name for s in SPECS]
MAIN = ["matmul", "matrix_transpose", "tensordot", "vecdot"]
LINALG = """
cholesky cross det diagonal eigh eigvalsh inv matmul matrix_norm matrix_power matrix_rank
matrix_transpose outer pinv qr slogdet solve svd svdvals tensordot trace vecdot vector_norm
""".split()
RNG = np.random.default_rng(0)


def test_every_function_is_registered_with_rules() -> None:
    for name in MAIN + [f"linalg.{n}" for n in LINALG]:
        assert name in API_FUNCTIONS, name
        prim = core.PRIMITIVES.get(name) or core.PRIMITIVES[name.removeprefix("linalg.")]
        assert prim in batch_rules, name
        assert prim in nondifferentiable or (prim in jvp_rules and prim in vjp_rules), name


def test_every_function_has_a_spec_row() -> None:
    assert set(MAIN + [f"linalg.{n}" for n in LINALG]) <= {s.function for s in SPECS}
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_match_numpy_and_jax(spec: Any) -> None:
    lc.check_values(spec)


GRAD = [s for s in SPECS if s.grad]


@pytest.mark.parametrize("spec", GRAD, ids=[s.name for s in GRAD])
def test_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    lc.check_derivatives(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    lc.check_vmap(spec)


@pytest.mark.parametrize("spec", GRAD, ids=[s.name for s in GRAD])
def test_vmap_of_grad_matches_per_example_grads(spec: Any) -> None:
    lc.check_vmap_of_grad(spec)


JIT = [s for s in SPECS if s.jit and s.function in ("matmul", "linalg.solve", "linalg.eigh",
                                                    "linalg.cholesky", "linalg.svd")]


@pytest.mark.parametrize("spec", JIT, ids=[s.name for s in JIT])
def test_jit_matches_eager(spec: Any) -> None:
    lc.check_jit(spec)


SECOND = [s for s in SPECS if s.name in ("linalg.cholesky", "linalg.eigh",
                                         "linalg.svd#reduced", "linalg.qr")]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SECOND, ids=[s.name for s in SECOND])
def test_second_derivatives_match_jax(spec: Any) -> None:
    rc.check_derivatives(spec)


# --- helpers for the targeted tests -----------------------------------------------------------


def rand(*shape: int, dtype: Any = np.float64) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def spd(n: int) -> np.ndarray:
    m = rand(n, n)
    return m @ m.T + n * np.eye(n)


def grad_of(f: Callable[..., Any], *args: np.ndarray) -> list[Any]:
    return engine_grad(f, list(args))


@pytest.fixture
def calls() -> Iterator[list[tuple[str, tuple[tuple[int, ...], ...]]]]:
    """Record the operand shapes of every matmul and solve evaluated on concrete arrays."""
    log: list[tuple[str, tuple[tuple[int, ...], ...]]] = []
    saved = {p: p.custom_impl for p in (matmul_p, solve_p)}

    def spy(prim: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
        def impl(xp: Any, *args: Any, **params: Any) -> Any:
            log.append((prim.name, tuple(tuple(a.shape) for a in args)))
            return fn(xp)(*args, **params)

        return impl

    matmul_p.def_impl(spy(matmul_p, lambda xp: xp.matmul))
    solve_p.def_impl(spy(solve_p, lambda xp: xp.linalg.solve))
    try:
        yield log
    finally:
        for p, impl in saved.items():
            p.custom_impl = impl
            p._impls.clear()


# --- dtypes and integers ---------------------------------------------------------------------


@pytest.mark.parametrize("name, fn, make", [
    ("matmul", lambda xp, a: xp.sum(a @ a), lambda: rand(3, 3, dtype=np.float32)),
    ("solve", lambda xp, a: xp.sum(xp.linalg.solve(a, a[0])),
     lambda: (spd(3)).astype(np.float32)),
    ("cholesky", lambda xp, a: xp.sum(xp.linalg.cholesky(a)), lambda: spd(3).astype(np.float32)),
    ("eigvalsh", lambda xp, a: xp.sum(xp.linalg.eigvalsh(a) ** 2),
     lambda: spd(3).astype(np.float32)),
    ("svdvals", lambda xp, a: xp.sum(xp.linalg.svdvals(a)), lambda: rand(3, 2, dtype=np.float32)),
    ("det", lambda xp, a: xp.linalg.det(a), lambda: spd(3).astype(np.float32)),
    ("vector_norm", lambda xp, a: xp.linalg.vector_norm(a), lambda: rand(4, dtype=np.float32)),
    ("matrix_norm", lambda xp, a: xp.linalg.matrix_norm(a, ord="nuc"),
     lambda: rand(3, 2, dtype=np.float32)),
])
def test_float32_stays_float32(name: str, fn: Any, make: Any) -> None:
    x = make()
    (g,) = grad_of(lambda a: fn(TRACED, a), x)
    assert g.dtype == np.float32, name
    (ref,) = grad_of(lambda a: fn(TRACED, a), x.astype(np.float64))
    np.testing.assert_allclose(g, ref, rtol=2e-3, atol=2e-3)


def test_trace_dtype_widens_the_value_but_not_the_gradient() -> None:
    x = rand(3, 4, dtype=np.float32)
    out = TRACED.linalg.trace(x, offset=1, dtype=TRACED.float64)
    assert np.asarray(out).dtype == np.float64
    (g,) = grad_of(lambda a: TRACED.linalg.trace(a, offset=1, dtype=TRACED.float64), x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.eye(3, 4, k=1, dtype=np.float32))


def test_integer_operand_gets_no_gradient_but_the_float_one_does() -> None:
    ints = np.arange(6).reshape(2, 3)
    y = rand(3, 2)
    (g,) = grad_of(lambda b: TRACED.sum(TRACED.matmul(ints, b)), y)
    np.testing.assert_allclose(g, ints.T @ np.ones((2, 2)))
    out = TRACED.matmul(ints, ints.T)
    assert out.dtype == ints.dtype


def test_operator_at_on_tracers_is_matmul() -> None:
    a, b = rand(2, 3), rand(3)
    outs, backward = vjp_flat(lambda xs: [xs[0] @ xs[1]], [a, b])
    np.testing.assert_allclose(outs[0], a @ b)
    ga, gb = backward([np.ones(2)])
    np.testing.assert_allclose(ga, np.outer(np.ones(2), b))
    np.testing.assert_allclose(gb, a.T @ np.ones(2))


# --- batching layouts --------------------------------------------------------------------------


@pytest.mark.parametrize("bdim", [0, 1])
def test_vmap_of_matmul_with_shared_weights_is_one_gemm(calls: Any, bdim: int) -> None:
    x, w = rand(5, 4, 3) if bdim == 0 else rand(4, 5, 3), rand(3, 2)
    [(out, out_bdim)] = vmap_flat(lambda xs: [xs[0] @ xs[1]], [x, w], [bdim, None], 5)
    assert calls == [("matmul", ((20, 3), (3, 2)))]
    want = np.moveaxis(x, bdim, 0) @ w
    np.testing.assert_allclose(np.moveaxis(out, out_bdim, 0), want)


def test_vmap_of_matvec_over_vectors_is_one_gemm(calls: Any) -> None:
    a, v = rand(4, 3), rand(6, 3)
    [(out, bdim)] = vmap_flat(lambda xs: [xs[0] @ xs[1]], [a, v], [None, 0], 6)
    assert calls == [("matmul", ((4, 3), (3, 6)))]
    np.testing.assert_allclose(np.moveaxis(out, bdim, 0), v @ a.T)


def test_matmul_vjp_of_batched_inputs_with_shared_weights_is_one_gemm(calls: Any) -> None:
    x, w = rand(5, 4, 3), rand(3, 2)
    _, backward = vjp_flat(lambda xs: [xs[0] @ xs[1]], [x, w])
    calls.clear()
    _, gw = backward([np.ones((5, 4, 2))])
    assert ("matmul", ((3, 20), (20, 2))) in calls
    np.testing.assert_allclose(gw, np.einsum("bij,bik->jk", x, np.ones((5, 4, 2))))


def test_vmap_of_solve_over_right_hand_sides_factorises_once(calls: Any) -> None:
    a, b = spd(4), rand(6, 4)
    [(out, bdim)] = vmap_flat(lambda xs: [TRACED.linalg.solve(xs[0], xs[1])], [a, b],
                              [None, 0], 6)
    assert calls == [("solve", ((4, 4), (4, 6)))]
    np.testing.assert_allclose(np.moveaxis(out, bdim, 0), np.linalg.solve(a, b.T).T)
    calls.clear()
    m = rand(6, 4, 2)
    [(out, bdim)] = vmap_flat(lambda xs: [TRACED.linalg.solve(xs[0], xs[1])], [a, m],
                              [None, 0], 6)
    assert calls == [("solve", ((4, 4), (4, 12)))]
    np.testing.assert_allclose(np.moveaxis(out, bdim, 0), np.linalg.solve(a[None], m))


def test_vmap_of_solve_with_batched_matrices_and_vectors() -> None:
    a = np.stack([spd(3) for _ in range(4)])
    b = rand(3, 4)
    [(out, bdim)] = vmap_flat(lambda xs: [TRACED.linalg.solve(xs[0], xs[1])], [a, b], [0, 1], 4)
    want = np.stack([np.linalg.solve(a[i], b[:, i]) for i in range(4)])
    np.testing.assert_allclose(np.moveaxis(out, bdim, 0), want)


def test_nested_vmap_of_matmul() -> None:
    x, y = rand(2, 3, 4, 5), rand(3, 5, 2)

    def inner(xs: list[Any]) -> list[Any]:
        [(v, d)] = vmap_flat(lambda ys: [ys[0] @ ys[1]], xs, [0, 0], 3)
        return [TRACED.moveaxis(v, d, 0)]

    [(out, bdim)] = vmap_flat(inner, [x, y], [0, None], 2)
    got = np.moveaxis(np.asarray(out), bdim, 0)
    np.testing.assert_allclose(got, np.einsum("abij,bjk->abik", x, y))


# --- complex inputs: JAX's convention (the VJP is the transpose of the JVP) ----------------


def _complex(*shape: int) -> np.ndarray:
    return rand(*shape) + 1j * rand(*shape)


def _hpd(n: int) -> np.ndarray:
    m = _complex(n, n)
    return m @ m.conj().T + n * np.eye(n)


COMPLEX = [
    ("matmul", lambda xp, a, b: a @ b, lambda: (_complex(2, 3), _complex(3, 2))),
    ("vecdot", lambda xp, a, b: xp.vecdot(a, b), lambda: (_complex(2, 3), _complex(3))),
    ("solve", lambda xp, a, b: xp.linalg.solve(a, b), lambda: (_hpd(3), _complex(3))),
    ("cholesky", lambda xp, a: xp.linalg.cholesky(a), lambda: (_hpd(3),)),
    ("slogdet", lambda xp, a: tuple(xp.linalg.slogdet(a)), lambda: (_hpd(3) + 1j,)),
    ("eigh", lambda xp, a: (lambda w, v: (w, v @ xp.conj(xp.matrix_transpose(v))))(
        *xp.linalg.eigh(a)), lambda: (_hpd(3) + np.diag([0.0, 3.0, 7.0]),)),
    ("svd", lambda xp, a: (lambda u, s, vh: (s, u @ vh))(*xp.linalg.svd(a, full_matrices=False)),
     lambda: (_complex(4, 3),)),
    ("qr", lambda xp, a: tuple(xp.linalg.qr(a)), lambda: (_complex(4, 3),)),
    ("pinv", lambda xp, a: xp.linalg.pinv(a), lambda: (_complex(3, 2),)),
    ("vector_norm", lambda xp, a: xp.linalg.vector_norm(a, ord=3), lambda: (_complex(4),)),
]


@pytest.mark.parametrize("name, fn, make", COMPLEX, ids=[c[0] for c in COMPLEX])
def test_complex_vjp_and_jvp_match_jax(name: str, fn: Any, make: Any) -> None:
    args = make()
    outs, backward = vjp_flat(lambda xs: rc.outputs(fn(TRACED, *xs)), list(args))
    cts = [_complex(*np.shape(o)) if np.iscomplexobj(o) else rand(*np.shape(o)) for o in outs]
    got = backward(cts)

    def reference(primals: Any, cotangents: Any, directions: Any) -> Any:
        outs, pullback = jax.vjp(lambda *a: tuple(rc.outputs(fn(jnp, *a))), *primals)
        _, tangents = jax.jvp(lambda *a: tuple(rc.outputs(fn(jnp, *a))), primals, directions)
        return outs, pullback(cotangents), tangents

    ts = [_complex(*a.shape) for a in args]
    _, tangents = jvp_flat(lambda xs: rc.outputs(fn(TRACED, *xs)), list(args), ts)
    ref_outs, ref_cts, ref_t = jax.jit(reference)(
        tuple(jnp.asarray(a) for a in args), tuple(jnp.asarray(c) for c in cts),
        tuple(jnp.asarray(t) for t in ts))
    rc.assert_close(outs, ref_outs, rtol=1e-9, atol=1e-10)
    rc.assert_close(got, ref_cts, rtol=1e-9, atol=1e-10)
    rc.assert_close(tangents, ref_t, rtol=1e-9, atol=1e-10)


# --- errors and results -------------------------------------------------------------------------


def test_derivative_of_full_svd_of_a_non_square_matrix_is_an_error() -> None:
    with pytest.raises(UnsupportedTransformError, match="full_matrices=False"):
        grad_of(lambda a: TRACED.sum(TRACED.linalg.svd(a)[1]), rand(3, 2))
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.linalg.svd(a, full_matrices=False)[1]),
                   rand(3, 2))
    assert g.shape == (3, 2)


def test_derivative_of_qr_of_a_wide_matrix_is_an_error() -> None:
    with pytest.raises(UnsupportedTransformError, match="tall"):
        grad_of(lambda a: TRACED.sum(TRACED.linalg.qr(a)[1]), rand(2, 3))


def test_results_are_namedtuples_on_tracers_and_arrays() -> None:
    a = spd(3)

    def f(xs: list[Any]) -> list[Any]:
        x = xs[0]
        e, s, q, d = (TRACED.linalg.eigh(x), TRACED.linalg.svd(x), TRACED.linalg.qr(x),
                      TRACED.linalg.slogdet(x))
        return [e.eigenvalues, e.eigenvectors, s.U, s.S, s.Vh, q.Q, q.R, d.sign, d.logabsdet]

    outs, _ = vjp_flat(f, [a])
    np.testing.assert_allclose(outs[0], np.linalg.eigvalsh(a))
    np.testing.assert_allclose(outs[8], np.linalg.slogdet(a).logabsdet)
    assert TRACED.linalg.eigh(a).eigenvalues.shape == (3,)


def test_matrix_rank_has_no_derivative() -> None:
    x = rand(3, 3)
    (g,) = grad_of(lambda a: TRACED.sum(a) * TRACED.astype(TRACED.linalg.matrix_rank(a),
                                                           TRACED.float64), x)
    np.testing.assert_allclose(g, np.full((3, 3), 3.0))


def test_tensordot_negative_axes_match_positive_ones() -> None:
    a, b = rand(2, 3, 4), rand(4, 3, 5)
    (g1, h1) = grad_of(lambda x, y: TRACED.sum(TRACED.tensordot(x, y, axes=((-1, 1), (0, -2)))),
                       a, b)
    (g2, h2) = grad_of(lambda x, y: TRACED.sum(TRACED.tensordot(x, y, axes=((2, 1), (0, 1)))),
                       a, b)
    np.testing.assert_allclose(g1, g2)
    np.testing.assert_allclose(h1, h2)


# --- the Gaussian-process workload ---------------------------------------------------------


def _gp_nll(xp: Any, log_ls: Any, x: Any, y: Any) -> Any:
    d = xp.expand_dims(x, axis=1) - xp.expand_dims(x, axis=0)
    k = xp.exp(-0.5 * d * d / xp.exp(2 * log_ls)) + 0.1 * xp.eye(x.shape[0], dtype=x.dtype)
    chol = xp.linalg.cholesky(k)
    alpha = xp.linalg.solve(chol, y)
    return 0.5 * xp.sum(alpha * alpha) + xp.sum(xp.log(xp.linalg.diagonal(chol)))


def test_gaussian_process_nll_gradient_and_hessian_match_jax() -> None:
    x, y, log_ls = np.linspace(0, 3, 40), np.sin(np.linspace(0, 3, 40)), np.asarray(0.3)
    (g,) = grad_of(lambda p: _gp_nll(TRACED, p, x, y), log_ls)
    _, (h,) = jvp_flat(lambda ps: grad_of(lambda p: _gp_nll(TRACED, p, x, y), ps[0]),
                       [log_ls], [np.asarray(1.0)])
    nll = jax.grad(lambda p: _gp_nll(jnp, p, jnp.asarray(x), jnp.asarray(y)))
    ref, ref_h = jax.jit(lambda p: jax.jvp(nll, (p,), (jnp.ones_like(p),)))(jnp.asarray(0.3))
    np.testing.assert_allclose(g, ref, rtol=1e-9)
    np.testing.assert_allclose(h, ref_h, rtol=1e-8)


def test_gaussian_process_nll_gradients_vmap_over_length_scales() -> None:
    x, y = np.linspace(0, 3, 20), np.cos(np.linspace(0, 3, 20))
    scales = np.asarray([0.1, 0.3, -0.2])
    [(g, bdim)] = vmap_flat(lambda ps: grad_of(lambda p: _gp_nll(TRACED, p, x, y), ps[0]),
                            [scales], [0], 3)
    want = [grad_of(lambda p: _gp_nll(TRACED, p, x, y), s)[0] for s in scales]
    np.testing.assert_allclose(np.moveaxis(np.asarray(g), bdim, 0), want, rtol=1e-10)
