"""Table-driven checks for ``test_rules_linalg`` and ``test_rules_fft``.

They run the engine directly on NumPy arrays (``vjp_flat``, ``jvp_flat``, ``vmap_flat``)
and differ from ``rules_checks`` in two ways that these families need:

* Batches for ``vmap`` are the drawn input scaled by ``1 + 0.03 k`` (as the conformance
  suite does), not permutations of its elements: a permuted well-conditioned matrix can be
  singular, and a permuted symmetric one is not symmetric.
* JAX is compiled once per row (first-order gradient and values, on the first draw);
  second derivatives are checked against finite differences of the engine's own gradient
  and between forward-over-reverse and reverse-over-reverse, which keeps the two files
  fast. (Second derivatives against JAX are in the ``slow`` tests.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rules_checks as rc
from hypothesis import HealthCheck, given, settings
from rules_checks import TRACED, XPS, anp, engine_grad, jnp, outputs

from unijax.engine.ad import jvp_flat
from unijax.engine.batching import vmap_flat

__all__ = ["check_derivatives", "check_jit", "check_values", "check_vmap",
           "check_vmap_of_grad"]

EXAMPLES = settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
BATCH = 3


def run(spec: Any, check: Callable[[tuple[np.ndarray, ...], bool], None]) -> None:
    """``check(args, first)`` on a few draws; ``first`` marks the one compared with JAX."""
    seen: list[int] = []

    def body(args: tuple[np.ndarray, ...]) -> None:
        check(args, not seen)
        seen.append(1)

    EXAMPLES(given(spec.arrays(XPS))(body))()


def check_values(spec: Any) -> None:
    def check(args: tuple[np.ndarray, ...], first: bool) -> None:
        want = outputs(spec.fn(anp, *args))
        got = outputs(spec.fn(TRACED, *args))
        for g, w in zip(got, want, strict=True):
            g = np.asarray(g)
            assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)
        if first:
            ref = outputs(rc.jax_call(lambda *a: spec.fn(jnp, *a),
                                      *[jnp.asarray(a) for a in args]))
            for g, r in zip(got, ref, strict=True):
                assert np.shape(r) == np.shape(g)
                np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=spec.rtol,
                                           atol=spec.atol)

    run(spec, check)


def _hvp_fd(f: Callable[..., Any], args: Sequence[np.ndarray], v: Sequence[np.ndarray],
            h: float = 1e-5) -> list[np.ndarray]:
    plus = engine_grad(f, [a + h * d for a, d in zip(args, v, strict=True)])
    minus = engine_grad(f, [a - h * d for a, d in zip(args, v, strict=True)])
    return [(np.asarray(p) - np.asarray(m)) / (2 * h) for p, m in zip(plus, minus, strict=True)]


def check_derivatives(spec: Any) -> None:
    """Gradients against JAX (first draw) and finite differences; forward against reverse
    mode; Hessian-vector products forward over reverse, reverse over reverse and against
    finite differences of the gradient."""

    def check(args: tuple[np.ndarray, ...], first: bool) -> None:
        w = rc.weights_for(spec, args)
        f = rc.scalar_fn(spec, TRACED, w)
        grads = engine_grad(f, args)
        for g, a in zip(grads, args, strict=True):
            assert g.shape == a.shape and g.dtype == a.dtype
        v = rc.directions(args)
        if first:
            import jax

            jf = jax.jit(jax.grad(rc.scalar_fn(spec, jnp, w), argnums=tuple(range(len(args)))))
            rc.assert_close(grads, jf(*[jnp.asarray(a) for a in args]))
        fd = rc.finite_difference(rc.scalar_fn(spec, anp, w), args, v)
        np.testing.assert_allclose(rc.dot(grads, v), fd, rtol=spec.grad_rtol, atol=1e-6)
        (_,), (tangent,) = jvp_flat(lambda xs: [f(*xs)], list(args), v)
        np.testing.assert_allclose(float(tangent), rc.dot(grads, v), rtol=1e-10, atol=1e-12)
        if spec.grad_order < 2:
            return
        _, hvp_fwd = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        hvp_rev = engine_grad(lambda *xs: sum(
            TRACED.sum(g * d) for g, d in zip(engine_grad(f, xs), v, strict=True)), args)
        rc.assert_close(hvp_fwd, hvp_rev, rtol=1e-9, atol=1e-10)
        for got, want in zip(hvp_fwd, _hvp_fd(f, args, v), strict=True):
            scale = 1.0 + float(np.max(np.abs(want), initial=0.0))
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5 * scale)

    run(spec, check)


def batched(a: np.ndarray, bdim: int) -> np.ndarray:
    """``BATCH`` examples of ``a`` (scaled copies, which stay in every row's domain)."""
    return np.moveaxis(np.stack([a * (1 + 0.03 * k) for k in range(BATCH)]), 0, bdim)


def check_vmap(spec: Any) -> None:
    def check(args: tuple[np.ndarray, ...], first: bool) -> None:
        for in_dims in rc.vmap_configs(args):
            xs = [a if d is None else batched(a, d) for a, d in zip(args, in_dims, strict=True)]
            results = vmap_flat(lambda ys: outputs(spec.fn(TRACED, *ys)), xs, in_dims, BATCH)
            loop = [
                outputs(spec.fn(anp, *[x if d is None else np.take(x, i, axis=d)
                                       for x, d in zip(xs, in_dims, strict=True)]))
                for i in range(BATCH)
            ]
            for k, (value, bdim) in enumerate(results):
                want = np.stack([np.asarray(ex[k]) for ex in loop])
                got = (np.broadcast_to(value, want.shape) if bdim is None
                       else np.moveaxis(np.asarray(value), bdim, 0))
                assert got.dtype == want.dtype, (got.dtype, want.dtype)
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)

    run(spec, check)


def check_vmap_of_grad(spec: Any) -> None:
    """``vmap(grad(f))`` equals the gradients taken one example at a time."""

    def check(args: tuple[np.ndarray, ...], first: bool) -> None:
        f = rc.scalar_fn(spec, TRACED, rc.weights_for(spec, args))
        xs = [batched(a, 0) for a in args]
        results = vmap_flat(lambda ys: engine_grad(f, ys), xs, [0] * len(xs), BATCH)
        for i in range(BATCH):
            want = engine_grad(f, [x[i] for x in xs])
            for (value, bdim), wnt in zip(results, want, strict=True):
                got = np.asarray(value) if bdim is None else np.take(value, i, axis=bdim)
                np.testing.assert_allclose(got, wnt, rtol=1e-9, atol=1e-11)

    run(spec, check)


def check_jit(spec: Any) -> None:
    import unijax

    def check(args: tuple[np.ndarray, ...], first: bool) -> None:
        fn = unijax.jit(lambda *xs: spec.fn(TRACED, *xs))
        for _ in range(2):  # the second call runs the compiled program
            got = outputs(fn(*args))
            want = outputs(spec.fn(anp, *args))
            for g, w in zip(got, want, strict=True):
                assert np.asarray(g).dtype == np.asarray(w).dtype
                np.testing.assert_allclose(np.asarray(g), w, rtol=spec.rtol, atol=spec.atol)

    run(spec, check)
