"""unijax.lax and checkpoint against jax.lax: every construct, under every transform, on
every CPU backend, with values equal to JAX's (float64).

The programs are written once against the Array API and take the control-flow module as an
argument, so the same source runs with ``unijax.lax`` on each backend and with ``jax.lax``
for the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import lax
from unijax.errors import ControlFlowError, TransformArgumentError, UnsupportedTransformError

jax = pytest.importorskip("jax")
jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "array_api_strict", "autograd", "jax"]
RNG = np.random.default_rng(7)
P = np.array([0.4, -0.8, 1.3])
PS = np.stack([P, 0.5 * P - 0.2, -P])
X = RNG.normal(size=(5, 3))
M = RNG.normal(size=(3, 3)) * 0.4
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _programs(L: Any, checkpoint: Callable[..., Any], asarray: Callable[[Any], Any]
              ) -> dict[str, Callable[[Any], Any]]:
    """Scalar functions of a float64[3] parameter, one per construct (and some nests)."""
    x, m = asarray(X), asarray(M)

    def scan(p: Any) -> Any:
        xp = array_namespace(p)

        def step(h: Any, row: Any) -> Any:
            h = xp.tanh(xp.matmul(m, h) * p + row)
            return h, xp.sum(h * h)

        h, ys = L.scan(step, p, x)
        return xp.sum(h) + xp.sum(ys)

    def scan_pytree_reverse(p: Any) -> Any:
        xp = array_namespace(p)

        def step(c: Any, rows: Any) -> Any:
            a, b = rows
            h = xp.sin(c["h"] * a) + b * p
            return {"h": h, "n": c["n"] + 1}, {"out": h * c["h"], "k": c["n"]}

        c, ys = L.scan(step, {"h": p, "n": xp.asarray(0)}, (x, 2.0 * x), reverse=True)
        k = xp.expand_dims(xp.astype(ys["k"], p.dtype), axis=1)
        return xp.sum(c["h"]) + xp.sum(ys["out"] * k)

    def scan_no_xs(p: Any) -> Any:
        xp = array_namespace(p)
        h, _ = L.scan(lambda h, _: (xp.cos(h) * p, None), p, None, length=4)
        return xp.sum(h)

    def fori(p: Any) -> Any:
        xp = array_namespace(p)
        return xp.sum(L.fori_loop(0, 4, lambda i, c: c * xp.cos(p) + xp.astype(i, p.dtype), p))

    def cond(p: Any) -> Any:
        xp = array_namespace(p)
        out = L.cond(xp.sum(p) > 0, lambda q: xp.sin(q) * 2.0, lambda q: xp.cos(q) * q, p)
        return xp.sum(out * p)

    def switch(p: Any) -> Any:
        xp = array_namespace(p)
        index = xp.astype(xp.sum(xp.astype(p > 0, xp.int32)), xp.int32)
        branches = [lambda q: q * q, lambda q: xp.exp(q), lambda q: xp.sin(q) * q]
        return xp.sum(L.switch(index, branches, p))

    def map_rows(p: Any) -> Any:
        xp = array_namespace(p)
        return xp.sum(L.map(lambda row: xp.sum(xp.tanh(row * p)), x))

    def nested(p: Any) -> Any:
        xp = array_namespace(p)

        def step(h: Any, row: Any) -> Any:
            h = L.cond(xp.sum(row) > 0, lambda v: v * xp.cos(p), lambda v: v + row * p, h)
            h = L.fori_loop(0, 2, lambda i, v: xp.sin(v) + p, h)
            return h, h[0]

        h, ys = L.scan(step, p, x)
        return xp.sum(h * h) + xp.sum(ys)

    def remat(p: Any) -> Any:
        xp = array_namespace(p)

        def segment(h: Any) -> Any:
            for _ in range(3):
                h = xp.tanh(xp.matmul(m, h) + p)
            return h

        h = p
        for _ in range(3):
            h = checkpoint(segment)(h)
        return xp.sum(h * h)

    def while_newton(p: Any) -> Any:
        xp = array_namespace(p)
        # Fixed-point iteration x = cos(p * x); the trip count depends on p.
        def going(c: Any) -> Any:
            k, v, prev = c
            return (k < 60) & (xp.max(xp.abs(v - prev)) > 1e-6)

        def advance(c: Any) -> Any:
            k, v, _ = c
            return k + 1, xp.cos(p * v), v

        _, v, _ = L.while_loop(going, advance, (xp.asarray(0), p * 0.0 + 1.0, p * 0.0))
        return xp.sum(v)

    return {f.__name__: f for f in (scan, scan_pytree_reverse, scan_no_xs, fori, cond, switch,
                                    map_rows, nested, remat, while_newton)}


REFERENCE = _programs(jax.lax, jax.checkpoint, jnp.asarray)
NAMES = list(REFERENCE)
REVERSE_MODE = [n for n in NAMES if n != "while_newton"]

TRANSFORMS: dict[str, tuple[Callable[..., Any], Callable[..., Any], np.ndarray]] = {
    "eager": (lambda f: f, lambda f: f, P),
    "grad": (unijax.grad, jax.grad, P),
    "jacfwd": (unijax.jacfwd, jax.jacfwd, P),
    "vmap": (unijax.vmap, jax.vmap, PS),
    "jit": (unijax.jit, jax.jit, P),
    "jit(grad)": (lambda f: unijax.jit(unijax.grad(f)), lambda f: jax.jit(jax.grad(f)), P),
    "vmap(grad)": (lambda f: unijax.vmap(unijax.grad(f)), lambda f: jax.vmap(jax.grad(f)), PS),
    "grad(grad)": (lambda f: unijax.jacfwd(unijax.grad(f)), jax.hessian, P),
    "jit(vmap)": (lambda f: unijax.jit(unijax.vmap(f)), lambda f: jax.jit(jax.vmap(f)), PS),
}
_REFERENCE_VALUES: dict[tuple[str, str], np.ndarray] = {}


def _reference(name: str, transform: str) -> np.ndarray:
    key = (name, transform)
    if key not in _REFERENCE_VALUES:
        _, ref_transform, arg = TRANSFORMS[transform]
        _REFERENCE_VALUES[key] = np.asarray(ref_transform(REFERENCE[name])(jnp.asarray(arg)))
    return _REFERENCE_VALUES[key]


def _cases() -> list[Any]:
    cases = []
    for backend in BACKENDS:
        for name in NAMES:
            for transform in TRANSFORMS:
                reverse = "grad" in transform
                if reverse and name not in REVERSE_MODE:
                    continue
                cases.append(pytest.param(backend, name, transform,
                                          id=f"{backend}-{name}-{transform}"))
    return cases


@pytest.fixture(scope="module")
def programs() -> dict[str, dict[str, Callable[[Any], Any]]]:
    built = {}
    for backend in BACKENDS:
        xp = unijax.namespace(backend)
        built[backend] = _programs(lax, unijax.checkpoint,
                                   lambda a, xp=xp: xp.asarray(np.asarray(a)))
    return built


@pytest.mark.parametrize(("backend", "name", "transform"), _cases())
def test_matches_jax(programs: Any, backend: str, name: str, transform: str) -> None:
    make, _, arg = TRANSFORMS[transform]
    with unijax.use_backend(backend):
        xp = unijax.namespace(backend)
        got = make(programs[backend][name])(xp.asarray(arg))
        assert unijax.explain_backend(got).backend == backend or backend == "autograd"
    np.testing.assert_allclose(np.asarray(got), _reference(name, transform), **TOL)


# --- the engine's loops are structured --------------------------------------------------------


def _rnn_loss(n: int) -> Callable[[Any, Any], Any]:
    def loss(w: Any, h0: Any) -> Any:
        xp = array_namespace(h0)
        h, _ = lax.scan(lambda h, _: (xp.tanh(w @ h), None), h0, None, length=n)
        return xp.sum(h * h)

    return loss


def test_staged_program_does_not_grow_with_trip_count() -> None:
    w, h0 = M, P
    sizes = {n: len(unijax.make_ir(unijax.grad(_rnn_loss(n)))(w, h0)) for n in (3, 3000)}
    assert sizes[3] == sizes[3000] <= 20
    program = unijax.make_ir(unijax.grad(_rnn_loss(3000)))(w, h0)
    assert program.primitive_counts()["scan"] == 2  # the forward loop and the backward loop


def test_jit_result_of_unexecuted_staging_is_the_programs() -> None:
    # jit stages loops without running them; the first call's value comes from the program.
    f = unijax.jit(_rnn_loss(50))
    first, second = f(M, P), f(M, P)
    want = _rnn_loss(50)(M, P)
    np.testing.assert_allclose(first, want, rtol=1e-12)
    np.testing.assert_allclose(second, want, rtol=1e-12)


def test_failure_on_placeholder_values_restages_exactly() -> None:
    # The loop's staged stand-in for its carry (the initial one, the identity) is singular;
    # the real carry is not. jit must stage again, running the loop, not fail.
    def f(a: Any) -> Any:
        xp = array_namespace(a)
        c, _ = lax.scan(lambda c, _: (c * 0.0 + c @ c, None), a, None, length=2)
        return xp.linalg.inv(c - xp.eye(2))

    a = np.array([[2.0, 1.0], [0.0, 3.0]])
    got = unijax.jit(f)(a)
    np.testing.assert_allclose(got, f(a), rtol=1e-12)


def test_grad_matches_finite_differences_on_every_engine_backend() -> None:
    loss = _rnn_loss(20)
    g = unijax.grad(loss, argnums=1)(M, P)
    eps = 1e-6
    fd = np.array([(loss(M, P + eps * e) - loss(M, P - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_while_loop_with_a_batched_predicate_keeps_finished_examples() -> None:
    def count_up(x: Any) -> Any:
        return lax.while_loop(lambda c: c[0] < c[1], lambda c: (c[0] + 1.0, c[1]), (0.0, x))[0]

    limits = np.array([0.5, 3.0, 7.0])
    got = unijax.vmap(count_up)(limits)
    np.testing.assert_array_equal(got, [count_up(v) for v in limits])
    np.testing.assert_array_equal(got, [1.0, 3.0, 7.0])


# --- checkpoint -------------------------------------------------------------------------------


def _chain(segments: int, steps: int, use_checkpoint: bool) -> Callable[[Any], Any]:
    def segment(h: Any) -> Any:
        xp = array_namespace(h)
        for _ in range(steps):
            h = xp.tanh(h * 1.01 + 0.1)
        return h

    seg = unijax.checkpoint(segment) if use_checkpoint else segment

    def f(h: Any) -> Any:
        for _ in range(segments):
            h = seg(h)
        return array_namespace(h).sum(h)

    return f


def test_checkpoint_keeps_the_gradient_and_lowers_peak_memory() -> None:
    import tracemalloc

    h = np.linspace(-1.0, 1.0, 20_000)
    peaks, grads = {}, {}
    for use in (False, True):
        fn = unijax.grad(_chain(20, 50, use))
        fn(h[:10])  # warm: imports and caches are not the chain's memory
        tracemalloc.start()
        grads[use] = fn(h)
        peaks[use] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-12)
    assert peaks[True] < 0.3 * peaks[False], peaks


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_branch_output_mismatch(backend: str) -> None:
    xp = unijax.namespace(backend)
    with unijax.use_backend(backend), pytest.raises(ControlFlowError):
        lax.cond(xp.asarray(True), lambda v: v, lambda v: (v, v), xp.asarray(P))
    with unijax.use_backend(backend), pytest.raises(ControlFlowError):
        unijax.jit(lambda v: lax.switch(0, [lambda u: u, lambda u: u[:2]], v))(xp.asarray(P))


@pytest.mark.parametrize("backend", BACKENDS)
def test_carry_that_changes_type(backend: str) -> None:
    xp = unijax.namespace(backend)
    with unijax.use_backend(backend), pytest.raises(ControlFlowError, match="carry"):
        lax.scan(lambda c, r: (xp.concat([c, c]), r), xp.asarray(P), xp.asarray(X))
    with unijax.use_backend(backend), pytest.raises(ControlFlowError, match="carry"):
        unijax.grad(lambda p: xp.sum(lax.fori_loop(0, 3, lambda i, c: c[:2], p)))(
            xp.asarray(P))


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_through_while_loop(backend: str) -> None:
    xp = unijax.namespace(backend)

    def f(p: Any) -> Any:
        ns = array_namespace(p)
        return ns.sum(lax.while_loop(lambda c: ns.sum(c) < 10.0, lambda c: c * 2.0, p))

    with unijax.use_backend(backend), pytest.raises(UnsupportedTransformError,
                                                     match="fori_loop"):
        unijax.grad(f)(xp.asarray(np.abs(P)))
    with unijax.use_backend(backend):  # forward mode is defined
        t = unijax.jvp(f, (xp.asarray(np.abs(P)),), (xp.asarray(np.ones(3)),))[1]
    # 2.5 doubles twice before reaching 10: the tangent is 4 * (1 + 1 + 1).
    np.testing.assert_allclose(np.asarray(t), 12.0, rtol=1e-12)


def test_argument_errors() -> None:
    with pytest.raises(TransformArgumentError, match="length"):
        lax.scan(lambda c, x: (c, x), 0.0, None)
    with pytest.raises(TransformArgumentError, match="disagree"):
        lax.scan(lambda c, x: (c, x), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(TransformArgumentError, match="scalar"):
        lax.cond(np.ones(2) > 0, lambda: 1.0, lambda: 2.0)
    with pytest.raises(TransformArgumentError, match="function"):
        lax.while_loop(None, lambda c: c, 0.0)
    with pytest.raises(ControlFlowError, match="pair"):
        lax.scan(lambda c, x: c, np.zeros(()), np.ones(3))
