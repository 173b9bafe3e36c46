"""unijax.lax semantics at the edges, against jax.lax (float64) on every CPU backend.

Branch predicates and indices, Python scalars in a carry (weakly typed, as in JAX), which
branch runs on the caller's operands, argument checks, names of bodies, memory of a long
scan, and constructs that must give JAX's value rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import lax
from unijax.errors import ArgnumsError, TransformArgumentError

jax = pytest.importorskip("jax")
jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "array_api_strict", "autograd", "torch", "dask"]
MODES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "plain": lambda f: f, "jit": unijax.jit}
X = np.array([0.5, -1.25, 2.0])


def _backend(name: str) -> Any:
    if name == "torch":
        pytest.importorskip("torch")
    if name == "dask":
        pytest.importorskip("dask")
    return unijax.namespace(name)


def _same(got: Any, want: Any, exact: bool = False) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- cond and switch: predicates and indices ---------------------------------------------------


def _cond_program(L: Any) -> Callable[[Any, Any], Any]:
    def f(pred: Any, x: Any) -> Any:
        return L.cond(pred, lambda v: v * 2.0 + 1.0, lambda v: v - 3.0, x)
    return f


PREDICATES: dict[str, Callable[[Any], Any]] = {
    "py-1": lambda xp: -1,
    "py7": lambda xp: 7,
    "py0": lambda xp: 0,
    "int-1": lambda xp: xp.asarray(-1),
    "float0.5": lambda xp: xp.asarray(0.5),
    "float-2.5": lambda xp: xp.asarray(-2.5),
    "float0": lambda xp: xp.asarray(0.0),
    "boolTrue": lambda xp: xp.asarray(True),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pred", PREDICATES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_nonzero_predicate_takes_true_fun(backend: str, pred: str, mode: str) -> None:
    xp = _backend(backend)
    want = _cond_program(jax.lax)(PREDICATES[pred](jnp), jnp.asarray(X))
    f = _cond_program(lax)
    with unijax.use_backend(backend):
        p = PREDICATES[pred](xp)
        if mode == "jit" and not hasattr(p, "shape"):
            got = unijax.jit(lambda x: f(p, x))(xp.asarray(X))
        else:
            got = MODES[mode](f)(p, xp.asarray(X))
    _same(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_under_vmap_with_real_predicates(backend: str) -> None:
    xp = _backend(backend)
    preds = np.array([-1.0, 0.0, 0.5, 2.0])
    xs = np.stack([X, 2 * X, -X, X + 1.0])
    want = jax.vmap(_cond_program(jax.lax))(jnp.asarray(preds), jnp.asarray(xs))
    with unijax.use_backend(backend):
        got = unijax.vmap(_cond_program(lax))(xp.asarray(preds), xp.asarray(xs))
    _same(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("index", [-3, -1, 0, 1, 2, 5])
@pytest.mark.parametrize("backend", BACKENDS)
def test_switch_index_clamps(backend: str, index: int, mode: str) -> None:
    def f(L: Any, i: Any, x: Any) -> Any:
        return L.switch(i, [lambda v: v + 1.0, lambda v: v * 3.0, lambda v: v - 7.0], x)

    xp = _backend(backend)
    want = f(jax.lax, jnp.asarray(index), jnp.asarray(X))
    with unijax.use_backend(backend):
        got = MODES[mode](lambda i, x: f(lax, i, x))(xp.asarray(index), xp.asarray(X))
        got_py = lax.switch(index, [lambda v: v + 1.0, lambda v: v * 3.0,
                                    lambda v: v - 7.0], xp.asarray(X))
    _same(got, want)
    _same(got_py, want)


@pytest.mark.parametrize("backend", [*BACKENDS, "jax"])
def test_switch_huge_python_index_takes_the_last_branch(backend: str) -> None:
    xp = _backend(backend)
    branches = [lambda v: v + 1.0, lambda v: v * 3.0]
    with unijax.use_backend(backend):
        high = lax.switch(2**70, branches, xp.asarray(X))
        low = lax.switch(-(2**70), branches, xp.asarray(X))
    _same(high, X * 3.0)
    _same(low, X + 1.0)


@pytest.mark.parametrize("backend", [*BACKENDS, "jax"])
def test_non_integer_switch_index_and_complex_pred_are_refused(backend: str) -> None:
    xp = _backend(backend)
    with unijax.use_backend(backend):
        with pytest.raises(TransformArgumentError, match="index"):
            lax.switch(xp.asarray(1.5), [lambda v: v, lambda v: -v], xp.asarray(X))
        if backend != "torch" or hasattr(xp, "complex128"):
            with pytest.raises(TransformArgumentError, match="pred"):
                lax.cond(xp.asarray(1j), lambda v: v, lambda v: -v, xp.asarray(X))


# --- only the chosen branch runs on the operands ---------------------------------------------


def _zero_in_place(v: Any) -> Any:
    v[...] = 0.0
    return v


@pytest.mark.parametrize("backend", BACKENDS)
def test_untaken_branch_never_touches_the_operands(backend: str) -> None:
    xp = _backend(backend)
    with unijax.use_backend(backend):
        x = xp.asarray(X.copy())  # its own buffer: a write to it must not reach X
        out = lax.cond(True, lambda v: v, _zero_in_place, x)
        _same(x, X)
        _same(out, X)
        out = lax.switch(0, [lambda v: v * 1.0, _zero_in_place, _zero_in_place], x)
        _same(x, X)
        _same(out, X)
        g = unijax.grad(lambda v: array_namespace(v).sum(
            lax.cond(True, lambda u: u * 2.0, _zero_in_place, v)))(x)
        _same(x, X)
        _same(g, np.full(3, 2.0))
        out = unijax.jit(lambda v: lax.cond(True, lambda u: u * 1.0, _zero_in_place, v))(x)
        _same(x, X)
        _same(out, X)


def test_untaken_branch_never_touches_the_operands_under_torch_vmap() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor(np.stack([X, 2 * X]))
    out = unijax.vmap(lambda v: lax.cond(True, lambda u: u * 1.0, _zero_in_place, v))(x)
    _same(x, np.stack([X, 2 * X]))
    _same(out, np.stack([X, 2 * X]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_branch_types_are_still_checked_on_placeholders(backend: str) -> None:
    from unijax.errors import ControlFlowError

    xp = _backend(backend)
    with unijax.use_backend(backend), pytest.raises(ControlFlowError, match="branch"):
        lax.cond(True, lambda v: v, lambda v: v[:2], xp.asarray(X))


# --- Python scalars in a carry are weakly typed ----------------------------------------------


BIG = np.array([2**53, 1, 1], dtype=np.int64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_int_carry_stays_an_exact_integer(backend: str, mode: str) -> None:
    xp = _backend(backend)

    def total(L: Any, xs: Any) -> Any:
        return L.scan(lambda c, x: (c + x, None), 0, xs)[0]

    want = total(jax.lax, jnp.asarray(BIG))
    with unijax.use_backend(backend):
        got = MODES[mode](lambda xs: total(lax, xs))(xp.asarray(BIG))
    _same(got, want, exact=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_int_counters_stay_integers(backend: str, mode: str) -> None:
    xp = _backend(backend)

    def counters(L: Any, z: Any) -> Any:
        ns = array_namespace(z)
        fori = L.fori_loop(0, 5, lambda i, c: c + i, 0)
        count = L.while_loop(lambda c: c < 5, lambda c: c + 1, 0)
        return ns.stack([ns.asarray(fori) + z, ns.asarray(count) + z])

    want = counters(jax.lax, jnp.asarray(0))
    with unijax.use_backend(backend):
        got = MODES[mode](lambda z: counters(lax, z))(xp.asarray(0))
    _same(got, want, exact=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fori_loop_with_a_traced_bound_indexes_with_an_integer(backend: str) -> None:
    xp = _backend(backend)

    def f(L: Any, v: Any, n: Any) -> Any:
        return L.fori_loop(0, n, lambda i, c: c * 2.0 + v[i], 0.0)

    want = jax.jit(lambda v, n: f(jax.lax, v, n))(jnp.arange(5.0), jnp.asarray(3))
    with unijax.use_backend(backend):
        got = unijax.jit(lambda v, n: f(lax, v, n))(xp.asarray(np.arange(5.0)), xp.asarray(3))
    _same(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_int_carry_with_a_float_body_is_promoted(backend: str, mode: str) -> None:
    xp = _backend(backend)

    def f(L: Any, xs: Any) -> Any:
        ns = array_namespace(xs)
        total, _ = L.scan(lambda c, x: (c + x, None), 0, xs)
        half = L.fori_loop(0, 3, lambda i, c: c + 0.5, 0)
        grown = L.while_loop(lambda c: c < 2.0, lambda c: c + 0.75, 0)
        return ns.stack([total, ns.asarray(half), ns.asarray(grown)])

    want = f(jax.lax, jnp.asarray(X))
    with unijax.use_backend(backend):
        got = MODES[mode](lambda xs: f(lax, xs))(xp.asarray(X))
    _same(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_int_operand_of_a_branch_is_weakly_typed(backend: str, mode: str) -> None:
    xp = _backend(backend)

    def f(L: Any, y: Any) -> Any:
        return (L.cond(y > 0, lambda x: x * 2, lambda x: x * 3, 3),
                L.switch(1, [lambda x: x * 2.5, lambda x: x * 1.5], 3))

    want = f(jax.lax, jnp.asarray(2.0))
    with unijax.use_backend(backend):
        got = MODES[mode](lambda y: f(lax, y))(xp.asarray(2.0))
    for g, w in zip(got, want, strict=True):
        _same(g, w)


# --- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [-1, 2**70])
@pytest.mark.parametrize("backend", [*BACKENDS, "jax"])
def test_scan_length_out_of_range(backend: str, length: int) -> None:
    _backend(backend)
    with unijax.use_backend(backend):
        with pytest.raises(TransformArgumentError, match="length"):
            lax.scan(lambda c, x: (c, None), 0.0, None, length=length)
        with pytest.raises(TransformArgumentError, match="int64"):
            lax.fori_loop(0, length if length > 0 else 2**64, lambda i, c: c, 0.0)


@pytest.mark.parametrize("backend", [*BACKENDS, "jax"])
def test_checkpoint_non_array_argument(backend: str) -> None:
    xp = _backend(backend)

    def f(a: Any, mode: str) -> Any:
        return a * 2.0 if mode == "double" else a

    with unijax.use_backend(backend):
        with pytest.raises(TransformArgumentError, match="static_argnums"):
            unijax.checkpoint(f)(xp.asarray(X), "double")
        got = unijax.checkpoint(f, static_argnums=1)(xp.asarray(X), "double")
    _same(got, jax.checkpoint(f, static_argnums=1)(jnp.asarray(X), "double"))


@pytest.mark.parametrize("backend", [*BACKENDS, "jax"])
def test_checkpoint_static_argnums_out_of_range(backend: str) -> None:
    xp = _backend(backend)
    with pytest.raises(ArgnumsError, match="static_argnums"):
        unijax.checkpoint(lambda a: a, static_argnums=3)
    with pytest.raises(ArgnumsError, match="static_argnums"):
        unijax.checkpoint(lambda *a: a[0], static_argnums=3)(xp.asarray(X))


# --- names of bodies in generated code ---------------------------------------------------------


@pytest.mark.parametrize("name", ["f\u00b5", "\ufb01x", "x\u00b2", "\u212bngstr\u00f6m"])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "torch"])
def test_body_names_that_python_normalises(backend: str, name: str) -> None:
    xp = _backend(backend)

    def step(c: Any, x: Any) -> Any:
        return c * 0.5 + x, c

    def going(c: Any) -> Any:
        return c < 10.0

    def grow(c: Any) -> Any:
        return c * 2.0 + 1.0

    def going_back(c: Any) -> Any:
        return c - 1.0

    for fun in (step, going, grow, going_back):
        fun.__name__ = fun.__qualname__ = name

    def f(L: Any, xs: Any) -> Any:
        ns = array_namespace(xs)
        c, ys = L.scan(step, xs[0], xs)
        w = L.while_loop(going, grow, c)
        return ns.sum(ys) + L.cond(w > 0, grow, going_back, w)

    want = f(jax.lax, jnp.asarray(X))
    with unijax.use_backend(backend):
        for mode in ("plain", "jit"):
            _same(MODES[mode](lambda xs: f(lax, xs))(xp.asarray(X)), want)
        g = unijax.grad(lambda xs: lax.scan(step, xs[0], xs)[0])(xp.asarray(X))
    _same(g, jax.grad(lambda xs: jax.lax.scan(step, xs[0], xs)[0])(jnp.asarray(X)))


# --- memory --------------------------------------------------------------------------------------


class _Stop(Exception):
    pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_scan_allocates_nothing_ahead(backend: str) -> None:
    xp = _backend(backend)
    calls = []

    def step(c: Any, _: Any) -> Any:
        calls.append(1)
        if len(calls) > 3:
            raise _Stop
        return c + 1.0, None

    with unijax.use_backend(backend), pytest.raises(_Stop):
        lax.scan(step, xp.asarray(0.0), None, length=10**10)


# --- values JAX gives ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_through_fori_loop_with_a_concrete_int_bound(backend: str) -> None:
    xp = _backend(backend)

    def f(L: Any, p: Any, n: Any) -> Any:
        return L.fori_loop(0, n, lambda i, c: c * p + 0.1, p)

    want = jax.grad(lambda p, n: f(jax.lax, p, n))(1.1, np.asarray(5))
    with unijax.use_backend(backend):
        got = unijax.grad(lambda p, n: f(lax, p, n))(xp.asarray(np.asarray(1.1)), xp.asarray(5))
    _same(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_of_length_zero(backend: str) -> None:
    xp = _backend(backend)

    def f(L: Any, p: Any, xs: Any) -> Any:
        ns = array_namespace(p)
        c, ys = L.scan(lambda c, x: (c * x + p, {"y": c * x, "n": x * 2.0}), p * 3.0, xs)
        return ns.sum(c) + ns.sum(ys["y"]) + ns.sum(ys["n"]) + ys["y"].shape[0]

    xs = np.zeros((0, 3))
    p = np.array([0.5, 1.5, -2.0])
    with unijax.use_backend(backend):
        c, ys = lax.scan(lambda c, x: (c * x, {"y": c * x}), xp.asarray(p), xp.asarray(xs))
        _same(c, p)
        assert tuple(ys["y"].shape) == (0, 3)
        got = f(lax, xp.asarray(p), xp.asarray(xs))
        g = unijax.grad(lambda p: f(lax, p, xp.asarray(xs)))(xp.asarray(p))
    _same(got, f(jax.lax, jnp.asarray(p), jnp.asarray(xs)))
    _same(g, jax.grad(lambda p: f(jax.lax, p, jnp.asarray(xs)))(jnp.asarray(p)))
