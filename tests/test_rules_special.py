"""Rules of the ``special`` extension: every function on the numpy, array-api-strict,
Autograd and JAX backends, through the public transforms.

For each function of ``CASES``: values against ``scipy.special``; gradients against
``jax.grad`` of ``jax.scipy.special`` (one jitted program per function) and against
central finite differences of SciPy; ``vmap`` against a Python loop; ``jit``
against eager evaluation. Then second derivatives, JAX's conventions at edge points,
``d gammainc / da`` against ``jax.lax.igamma_grad_a``, dtypes, errors, and SciPy's own
array-API dispatch running on unijax's tracers in a subprocess (``SCIPY_ARRAY_API=1`` has
to be set before SciPy is imported).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import array_api_compat.numpy as anp
import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.engine.namespace import TracedNamespace
from unijax.engine.registry import (
    API_FUNCTIONS,
    batch_rules,
    jvp_rules,
    nondifferentiable,
    vjp_rules,
)
from unijax.engine.rules import special
from unijax.errors import BackendUnavailableError, UnsupportedTransformError
from unijax.testing import check_grads, to_numpy

scipy_special = pytest.importorskip("scipy.special")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jsp = pytest.importorskip("jax.scipy.special")
jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("numpy", "array_api_strict", "autograd", "jax")

# --- the table ----------------------------------------------------------------------------------

REAL = np.array([-1.7, -0.4, 0.6, 2.2])
POSITIVE = np.array([0.3, 1.1, 2.5, 4.0])
PROB = np.array([0.05, 0.3, 0.6, 0.95])
ORDERS = np.array([1, 2, 3, 1])


def column(a: np.ndarray) -> np.ndarray:
    """``a[:2]`` as a column, so binary functions broadcast ``(2, 1)`` against ``(4,)``."""
    return a[:2].reshape(2, 1)


@dataclass(frozen=True)
class Case:
    """One function: its arguments, which of them are differentiated, trailing statics."""

    name: str
    args: tuple[np.ndarray, ...]
    wrt: tuple[int, ...] = (0,)
    static: tuple[Any, ...] = ()
    jax_name: str = ""

    @property
    def reference(self) -> Callable[..., Any]:
        return getattr(jsp, self.jax_name or self.name)


CASES = [
    Case("erf", (REAL,)),
    Case("erfc", (REAL,)),
    Case("erfinv", (2 * PROB - 1,)),
    Case("erfcx", (REAL,)),
    Case("ndtr", (REAL,)),
    Case("ndtri", (PROB,)),
    Case("log_ndtr", (np.array([-25.0, -3.0, 0.6, 6.0]),)),
    Case("logit", (PROB,)),
    Case("expit", (REAL,)),
    Case("gammaln", (POSITIVE,)),
    Case("digamma", (POSITIVE,)),
    Case("psi", (POSITIVE,), jax_name="digamma"),
    Case("polygamma", (ORDERS, POSITIVE), wrt=(1,)),
    Case("gamma", (REAL,)),
    Case("gammasgn", (REAL,), wrt=()),
    Case("betaln", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("poch", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("multigammaln", (POSITIVE + 1.5,), static=(3,)),
    Case("gammainc", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("gammaincc", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("betainc", (POSITIVE, POSITIVE[::-1], PROB), wrt=(2,)),
    Case("exp1", (POSITIVE,)),
    Case("expi", (REAL,)),
    Case("expn", (ORDERS, POSITIVE), wrt=(1,)),
    Case("xlogy", (column(REAL), POSITIVE), wrt=(0, 1)),
    Case("xlog1py", (REAL, PROB - 0.5), wrt=(0, 1)),
    Case("entr", (POSITIVE,)),
    Case("rel_entr", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("kl_div", (column(POSITIVE), POSITIVE), wrt=(0, 1)),
    Case("i0", (REAL,)),
    Case("i0e", (REAL,)),
    Case("i1", (REAL,)),
    Case("i1e", (REAL,)),
]
IDS = [c.name for c in CASES]
DIFFERENTIABLE = [c for c in CASES if c.wrt]
#: Cases whose Hessian-vector products are checked against JAX.
SECOND_ORDER = ("erf", "erfinv", "log_ndtr", "logit", "gammaln", "polygamma", "xlogy",
                "rel_entr", "i1", "i1e", "betainc", "multigammaln")
#: On JAX every function takes the same path (``jax.scipy.special`` on JAX's arrays and
#: tracers), and each costs a compilation per transform: a few of each kind run there.
ON_JAX = ("erf", "polygamma", "xlogy", "multigammaln")


def table(cases: list[Case]) -> Any:
    """``(case, backend)`` parameters for every backend (on JAX, the ``ON_JAX`` cases)."""
    return pytest.mark.parametrize(("case", "backend"), [
        pytest.param(c, b, id=f"{c.name}-{b}") for c in cases for b in BACKENDS
        if b != "jax" or c.name in ON_JAX])


#: unijax's special functions as one namespace, for arrays whose own namespace has no
#: ``special`` extension (outside the engine's transforms; JAX's and Autograd's tracers).
SPECIAL = types.SimpleNamespace(**{n: API_FUNCTIONS[f"special.{n}"] for n in special.FUNCTIONS})


def special_of(*args: Any) -> Any:
    """``xp.special`` of the first array argument whose namespace has one, else ``SPECIAL``."""
    for a in args:
        if hasattr(a, "shape"):
            ext = getattr(array_namespace(a), "special", None)
            if ext is not None:
                return ext
    return SPECIAL


def fn(case: Case) -> Callable[..., Any]:
    """The case's function as library code writes it: ``xp.special`` where the namespace
    has the extension (the engine's traced namespace), else unijax's function itself (the
    one SciPy dispatches to for them)."""
    name = case.name

    def f(*args: Any) -> Any:
        return getattr(special_of(*args), name)(*args, *case.static)

    return f


def weights(case: Case) -> np.ndarray:
    shape = np.broadcast_shapes(*[a.shape for a in case.args])
    return np.random.default_rng(5).uniform(0.5, 1.5, size=shape)


def loss(case: Case, w: Any) -> Callable[..., Any]:
    """A scalar of the case's output: its sum weighted by ``w`` (the tracer on the left,
    since array-api-strict arrays refuse a tracer as right operand)."""
    f = fn(case)

    def scalar(*args: Any) -> Any:
        out = f(*args)
        return array_namespace(out).sum(out * w)

    return scalar


def on(backend: str, values: Any) -> Any:
    return [unijax.asarray(v, backend=backend) for v in values]


def scipy_value(case: Case, *args: np.ndarray) -> np.ndarray:
    return np.asarray(getattr(scipy_special, case.name)(*args, *case.static))


@functools.cache
def jax_reference(name: str) -> tuple[Any, Any, Any]:
    """JAX's value, gradient and (for ``SECOND_ORDER``) Hessian-vector product for one
    case, computed in one jitted program."""
    case = next(c for c in CASES if c.name == name)
    w = jnp.asarray(weights(case))

    def f(*a: Any) -> Any:
        return case.reference(*a, *case.static)

    def grad(*a: Any) -> Any:
        return jax.grad(lambda *b: jnp.sum(f(*b) * w), argnums=case.wrt)(*a)

    def reference(args: list[Any], v: list[Any]) -> Any:
        value = f(*args)
        if not case.wrt:
            return value, None, None
        grads = grad(*args)
        if name not in SECOND_ORDER:
            return value, grads, None

        def grad_of_wrt(*chosen: Any) -> Any:
            full = list(args)
            for i, c in zip(case.wrt, chosen, strict=True):
                full[i] = c
            return grad(*full)

        _, hvp = jax.jvp(grad_of_wrt, tuple(args[i] for i in case.wrt),
                         tuple(v[i] for i in case.wrt))
        return value, grads, hvp

    args = [jnp.asarray(a) for a in case.args]
    v = [jnp.asarray(d) for d in directions(case)]
    # JAX's exp1 and expn close over traced values, which its jit refuses: run eagerly.
    run = reference if name in ("exp1", "expn") else jax.jit(reference)
    return run(args, v)


def directions(case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.normal(size=a.shape) if i in case.wrt else np.zeros(a.shape)
            for i, a in enumerate(case.args)]


# --- coverage -----------------------------------------------------------------------------------


def test_every_function_has_rules_and_a_case() -> None:
    assert {c.name for c in CASES} == set(special.FUNCTIONS)
    for name in special.FUNCTIONS:
        assert f"special.{name}" in API_FUNCTIONS, name
    for name, prim in special.PRIMITIVES.items():
        assert prim.name == name and prim.qualname == f"special.{name}"
        assert prim in batch_rules, name
        assert prim in nondifferentiable or (prim in jvp_rules and prim in vjp_rules), name


def test_the_traced_namespace_has_the_extension() -> None:
    ext = TracedNamespace(anp).special
    for name in special.FUNCTIONS:
        assert getattr(ext, name) is API_FUNCTIONS[f"special.{name}"]
    assert ext.psi is ext.digamma
    assert not hasattr(ext, "no_such_function")  # SciPy then falls back to NumPy
    assert "gammainc_grad_a" not in dir(ext)
    seen = []

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        seen.append(xp.special)
        return xp.sum(xp.special.erf(x))

    unijax.grad(f)(np.asarray([0.5, 1.0]))
    assert seen and seen[0].erf is API_FUNCTIONS["special.erf"]


# --- the table's checks -------------------------------------------------------------------------


@table(CASES)
def test_values_match_scipy(case: Case, backend: str) -> None:
    want = scipy_value(case, *case.args)
    args = on(backend, case.args)
    got = fn(case)(*args)
    assert type(got) is type(args[-1])  # the backend's own array type
    got = np.asarray(to_numpy(got))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-7 if backend == "jax" else 1e-13,
                               atol=1e-15)
    # JAX computes with its own algorithms: they agree to about 1e-8 in the tails
    # (log_ndtr(6) ~ -1e-9), and give ~1e-18 where SciPy's value is 0.
    np.testing.assert_allclose(got, np.asarray(jax_reference(case.name)[0]), rtol=1e-7,
                               atol=1e-15)


@table(DIFFERENTIABLE)
def test_grad_matches_jax_and_finite_differences(case: Case, backend: str) -> None:
    w = weights(case)
    grads = unijax.grad(loss(case, unijax.asarray(w, backend=backend)), argnums=case.wrt,
                        backend=backend)(*on(backend, case.args))
    grads = [np.asarray(to_numpy(g)) for g in grads]
    for g, i in zip(grads, case.wrt, strict=True):
        assert g.shape == case.args[i].shape and g.dtype == case.args[i].dtype
    for g, want in zip(grads, jax_reference(case.name)[1], strict=True):
        np.testing.assert_allclose(g, np.asarray(want), rtol=1e-9, atol=1e-12)
    # Central differences of SciPy along a random direction.
    v = directions(case)
    h = 1e-6

    def total(t: float) -> float:
        return float(np.sum(scipy_value(case, *[a + t * d for a, d in zip(case.args, v,
                                                                            strict=True)]) * w))

    fd = (total(h) - total(-h)) / (2 * h)
    slope = sum(float(np.sum(g * v[i])) for g, i in zip(grads, case.wrt, strict=True))
    np.testing.assert_allclose(slope, fd, rtol=1e-6, atol=1e-8)


def batched(a: np.ndarray, size: int = 3) -> np.ndarray:
    """``size`` examples that stay in ``a``'s domain (permutations of its elements)."""
    rng = np.random.default_rng(11)
    flat = a.reshape(-1)
    return np.stack([a] + [rng.permutation(flat).reshape(a.shape) for _ in range(size - 1)])


@table(CASES)
def test_vmap_matches_a_python_loop(case: Case, backend: str) -> None:
    # The first argument is mapped along its last axis, the others along their first;
    # a last argument that is not the only one stays unmapped.
    n = len(case.args)
    in_axes = tuple(-1 if i == 0 else None if i == n - 1 and n > 1 else 0 for i in range(n))
    xs = [a if ax is None else np.moveaxis(batched(a), 0, ax)
          for a, ax in zip(case.args, in_axes, strict=True)]
    got = unijax.vmap(fn(case), in_axes=in_axes, backend=backend)(*on(backend, xs))
    want = np.stack([
        scipy_value(case, *[x if ax is None else np.take(x, k, axis=ax)
                            for x, ax in zip(xs, in_axes, strict=True)])
        for k in range(3)
    ])
    got = np.asarray(to_numpy(got))
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-7 if backend == "jax" else 1e-13,
                               atol=1e-15)


@table(CASES)
def test_jit_matches_eager(case: Case, backend: str) -> None:
    args = on(backend, case.args)
    want = np.asarray(to_numpy(fn(case)(*args)))
    compiled = unijax.jit(fn(case), backend=backend)
    for _ in range(2):  # the call that stages and the one that reuses the program
        got = np.asarray(to_numpy(compiled(*args)))
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


# --- second derivatives -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("case", [c for c in CASES if c.name in SECOND_ORDER],
                         ids=[c.name for c in CASES if c.name in SECOND_ORDER])
def test_hessian_vector_products_match_jax(case: Case, backend: str) -> None:
    w = unijax.asarray(weights(case), backend=backend)
    grad = unijax.grad(loss(case, w), argnums=case.wrt, backend=backend)
    args = on(backend, case.args)
    tangents = on(backend, [directions(case)[i] for i in case.wrt])

    def grad_of_wrt(*chosen: Any) -> Any:
        full = list(args)
        for i, c in zip(case.wrt, chosen, strict=True):
            full[i] = c
        return grad(*full)

    _, hvp = unijax.jvp(grad_of_wrt, tuple(args[i] for i in case.wrt), tuple(tangents),
                        backend=backend)
    # log_ndtr'' = -d (x + d) at x = -25 cancels to 3 digits: both sides lose precision.
    rtol = 1e-5 if case.name == "log_ndtr" else 1e-8
    for got, want in zip(hvp, jax_reference(case.name)[2], strict=True):
        np.testing.assert_allclose(np.asarray(to_numpy(got)), np.asarray(want), rtol=rtol,
                                   atol=1e-10)


@pytest.mark.parametrize("name", ["ndtr", "erf", "xlogy", "i1e"])
def test_second_derivatives_under_autograds_own_grad(name: str) -> None:
    # On Autograd's boxes each function is an Autograd primitive whose VJPs are unijax's
    # derivatives (ndtr, xlogy and i1e are not in autograd.scipy.special at all): Autograd
    # must be able to differentiate them again.
    case = next(c for c in CASES if c.name == name)
    k = case.wrt[-1]
    others = list(case.args)

    def first(x: Any) -> Any:
        args = [*others[:k], x, *others[k + 1:]]
        out = fn(case)(*args)
        return array_namespace(out).sum(out)

    def second(x: Any) -> Any:
        g = unijax.grad(first, backend="autograd")(x)
        return array_namespace(g).sum(g)

    got = unijax.grad(second, backend="autograd")(case.args[k])

    def jax_first(x: Any) -> Any:
        return jnp.sum(case.reference(*others[:k], x, *others[k + 1:]))

    want = jax.grad(lambda x: jnp.sum(jax.grad(jax_first)(x)))(jnp.asarray(case.args[k]))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-9)


def test_check_grads_to_second_order() -> None:
    x = np.array([-2.5, -0.3, 0.7, 3.0])
    p = np.array([0.2, 0.45, 0.7, 0.9])

    def f(x: Any, p: Any) -> Any:
        s = special_of(x)
        return (s.log_ndtr(x) * s.logit(p) + s.xlog1py(x, p) + s.i0e(x) * s.erfinv(p)
                + s.gammaln(p + 0.5) * s.expit(x))

    check_grads(f, (x, p), order=2)


def test_gammainc_mixed_second_derivative_matches_finite_differences() -> None:
    # d/dx of d/da: JAX has no derivative of its igamma_grad_a; unijax does.
    a, x = np.array([0.7, 2.0, 5.0]), np.array([0.4, 3.0, 4.0])

    def da(x: Any) -> Any:
        return unijax.grad(
            lambda b: array_namespace(b).sum(API_FUNCTIONS["special.gammainc"](b, x)))(a)

    _, got = unijax.jvp(da, (x,), (np.ones(3),))
    h = 1e-5
    fd = (scipy_special.gammainc(a + h, x + h) - scipy_special.gammainc(a - h, x + h)
          - scipy_special.gammainc(a + h, x - h) + scipy_special.gammainc(a - h, x - h)) / (
              4 * h * h)
    np.testing.assert_allclose(got, fd, rtol=1e-5)


# --- edge points: JAX's conventions -------------------------------------------------------------

EDGES: list[tuple[str, tuple[list[float], ...]]] = [
    ("xlogy", ([0.0, 0.0, 2.0, 0.0], [0.0, 1.0, 3.0, 2.0])),
    ("xlog1py", ([0.0, 0.0, 2.0], [-1.0, 0.5, 1.0])),
    ("entr", ([0.0, -1.0, 0.5],)),
    ("rel_entr", ([0.0, 0.0, 1.0, -1.0, 0.5], [0.0, 1.0, 0.0, 1.0, 0.3])),
    ("kl_div", ([0.0, 0.0, 1.0, -1.0, 0.5], [0.0, 1.0, 0.0, 1.0, 0.3])),
    ("i1", ([0.0, -0.0, 1e-300],)),
    ("i1e", ([0.0, 1e-300],)),
    ("i0e", ([0.0, -0.5],)),
    ("log_ndtr", ([-1e3, -40.0, 40.0],)),
    ("gammainc", ([1.0, 2.0, 0.5], [0.0, 0.0, 0.0])),
    ("logit", ([0.0, 1.0],)),
]


@functools.cache
def jax_edge_reference(name: str, values: tuple[tuple[float, ...], ...]) -> Any:
    """JAX's value and gradient of ``sum(name(*values))`` (once for both backends)."""
    ref = getattr(jsp, name)
    args = [jnp.asarray(v) for v in values]
    grads = jax.grad(lambda *a: jnp.sum(ref(*a)), argnums=tuple(range(len(args))))(*args)
    return np.asarray(ref(*args)), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("backend", ["numpy", "autograd"])
@pytest.mark.parametrize(("name", "values"), EDGES, ids=[e[0] for e in EDGES])
def test_values_and_derivatives_at_edge_points_match_jax(name: str, values: Any,
                                                         backend: str) -> None:
    args = [np.asarray(v) for v in values]
    f = API_FUNCTIONS[f"special.{name}"]
    argnums = tuple(range(len(args)))
    with np.errstate(all="ignore"):
        value = f(*on(backend, args))
        grads = unijax.grad(lambda *a: array_namespace(a[0]).sum(f(*a)), argnums=argnums,
                            backend=backend)(*on(backend, args))
    want_value, want = jax_edge_reference(name, tuple(tuple(v) for v in values))
    np.testing.assert_allclose(np.asarray(value), want_value, rtol=1e-12)
    for g, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-9)


def test_edge_points_where_unijax_gives_the_limit() -> None:
    # JAX's values here come from how it computes the function (piecewise definitions).
    ndtri, i1, expn = (API_FUNCTIONS[f"special.{n}"] for n in ("ndtri", "i1", "expn"))
    with np.errstate(all="ignore"):
        g = unijax.grad(lambda p: array_namespace(p).sum(ndtri(p)))(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(g, [np.inf, np.inf])
    i1pp = unijax.grad(unijax.grad(lambda x: i1(x)))(np.asarray(0.0))
    assert float(i1pp) == 0.0  # i1 is odd
    x = np.array([0.5, 2.0])
    g = unijax.grad(lambda x: array_namespace(x).sum(expn(0, x)))(x)
    np.testing.assert_allclose(g, -np.exp(-x) / x * (1 + 1 / x), rtol=1e-13)


def test_nondifferentiable_and_integer_arguments() -> None:
    x = np.array([-2.5, 0.5, 3.5])
    (g,) = [unijax.grad(lambda x: array_namespace(x).sum(
        API_FUNCTIONS["special.gammasgn"](x) * x))(x)]
    np.testing.assert_array_equal(g, scipy_special.gammasgn(x))
    # n of polygamma is an integer: the derivative in x is polygamma(n + 1, x).
    n = np.array([0, 1, 2])
    g = unijax.grad(lambda x: array_namespace(x).sum(API_FUNCTIONS["special.polygamma"](n, x)))(
        x + 3.0)
    np.testing.assert_allclose(g, scipy_special.polygamma(n + 1, x + 3.0), rtol=1e-13)
    g = unijax.grad(lambda x: API_FUNCTIONS["special.polygamma"](2, x))(np.asarray(1.5))
    np.testing.assert_allclose(g, scipy_special.polygamma(3, 1.5), rtol=1e-13)


# --- d gammainc / da ----------------------------------------------------------------------------


def test_gammainc_derivative_in_a_matches_jax_over_a_wide_range() -> None:
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0.01, 50.0, 100), [1e3, 1e4, 0.5, 1e-3, 3.0, 2.0]])
    x = np.concatenate([rng.uniform(0.0, 80.0, 100), [1.01e3, 9.95e3, 50.0, 1e-4, 0.0, 1.5]])
    prim = special.PRIMITIVES["gammainc_grad_a"]
    got = prim.bind(a, x)
    want = np.asarray(jax.lax.igamma_grad_a(jnp.asarray(a), jnp.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)
    strict = pytest.importorskip("array_api_strict")
    got_strict = prim.bind(strict.asarray(a[:20]), strict.asarray(x[:20]))
    np.testing.assert_allclose(np.asarray(got_strict), want[:20], rtol=1e-10, atol=1e-300)
    got32 = prim.bind(a[:50].astype(np.float32), x[:50].astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want[:50], rtol=2e-3, atol=1e-6)
    with np.errstate(all="ignore"):
        bad = prim.bind(np.array([-1.0, 1.0, np.nan]), np.array([1.0, -1.0, 1.0]))
    assert np.isnan(bad).all()


# --- dtypes, devices and errors -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_single_precision_is_kept(backend: str) -> None:
    x = unijax.asarray(np.array([0.25, 0.5], dtype=np.float32), backend=backend)
    n = unijax.asarray(np.array([1, 2]), backend=backend)
    for out in (API_FUNCTIONS["special.ndtri"](x), API_FUNCTIONS["special.polygamma"](n, x),
                API_FUNCTIONS["special.xlogy"](x, 2.0), API_FUNCTIONS["special.gammainc"](x, x),
                unijax.grad(lambda v: array_namespace(v).sum(
                    API_FUNCTIONS["special.i1e"](v)), backend=backend)(x)):
        assert str(out.dtype).endswith("float32"), out.dtype


def test_array_api_strict_results_stay_on_the_arguments_device() -> None:
    strict = pytest.importorskip("array_api_strict")
    device = strict.Device("device1")
    x = strict.asarray([0.2, 0.7], device=device)
    out = API_FUNCTIONS["special.erf"](x)
    assert out.device == device
    np.testing.assert_allclose(np.asarray(out.to_device(strict.Device("CPU_DEVICE"))),
                               scipy_special.erf([0.2, 0.7]), rtol=1e-14)


def test_unsupported_derivatives_raise_a_clear_error() -> None:
    a, b, x = np.array([2.0, 3.0]), np.array([1.5, 2.0]), np.array([0.3, 0.6])
    betainc = API_FUNCTIONS["special.betainc"]
    with pytest.raises(UnsupportedTransformError, match=r"betainc with respect to a"):
        unijax.grad(lambda a: array_namespace(a).sum(betainc(a, b, x)))(a)
    with pytest.raises(UnsupportedTransformError, match=r"betainc with respect to b"):
        unijax.jvp(lambda b: betainc(a, b, x), (b,), (np.ones(2),))
    gammainc = API_FUNCTIONS["special.gammainc"]

    def da(a: Any) -> Any:
        return unijax.grad(lambda c: array_namespace(c).sum(gammainc(c, x)))(a)

    with pytest.raises(UnsupportedTransformError, match=r"gammainc with respect to a twice"):
        unijax.jacrev(da)(a)


SCALAR_OPERANDS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("gammainc-a", lambda m, v: m.gammainc(2.0, v)),
    ("gammainc-x", lambda m, v: m.gammainc(v, 2.0)),
    ("xlogy", lambda m, v: m.xlogy(v, 2.0)),
    ("betaln", lambda m, v: m.betaln(2.0, v)),
    ("poch", lambda m, v: m.poch(2.5, v)),
    ("betainc", lambda m, v: m.betainc(2.0, 3.0, v)),
    ("polygamma", lambda m, v: m.polygamma(2, v)),
    ("expn", lambda m, v: m.expn(2, v)),
    ("rel_entr", lambda m, v: m.rel_entr(v, 0.3)),
    ("kl_div", lambda m, v: m.kl_div(1.0, v)),
]


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "autograd"])
def test_python_scalar_operands(backend: str) -> None:
    # A derivative's formula must not compute on the Python scalar alone: the default
    # namespace's result would meet array-api-strict's arrays, which refuse it.
    x, h = np.array([0.35, 0.7]), 1e-6
    for name, f in SCALAR_OPERANDS:
        got = unijax.grad(lambda v, f=f: array_namespace(v).sum(f(special_of(v), v)),
                          backend=backend)(unijax.asarray(x, backend=backend))
        fd = (f(scipy_special, x + h) - f(scipy_special, x - h)) / (2 * h)
        np.testing.assert_allclose(np.asarray(to_numpy(got)), fd, rtol=1e-6, err_msg=name)


def test_missing_scipy_is_reported_with_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # import now raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install scipy"):
        special._host_function("erf", None)


def test_multigammaln_checks_its_dimension() -> None:
    with pytest.raises(ValueError, match="positive dimension"):
        API_FUNCTIONS["special.multigammaln"](np.asarray(3.0), 0)


# --- SciPy's own dispatch ----------------------------------------------------------------------

SCIPY_SCRIPT = textwrap.dedent("""
    import json, sys
    import unijax
    scipy_on_import = "scipy" in sys.modules  # unijax loads SciPy only when it computes
    import numpy as np
    import scipy.special as sc
    import scipy.stats as st
    from array_api_compat import array_namespace

    def total(f):
        return lambda *a: array_namespace(a[0]).sum(f(*a))

    result = {}
    x = np.array([-40.0, -3.0, 0.5, 4.0])
    got = unijax.grad(total(sc.log_ndtr))(x)
    want = np.exp(st.norm.logpdf(x) - sc.log_ndtr(x))
    result["log_ndtr"] = [got.tolist(), want.tolist()]

    v, q = np.array([1.5, 3.0, 7.0]), np.array([0.5, 2.0, 9.0])
    got = unijax.grad(total(sc.chdtr), argnums=1)(v, q)  # SciPy's generic chdtr on gammainc
    result["chdtr"] = [got.tolist(), st.chi2.pdf(q, v).tolist()]

    p, r = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.25, 0.25, 0.25, 0.25])
    # scipy.stats on special.rel_entr; r is an argument, so that it is traced as well
    # (SciPy refuses a mix of namespaces).
    got = unijax.grad(st.entropy)(p, r)
    P = p / p.sum()
    kl = np.sum(P * np.log(P / r))
    result["entropy"] = [got.tolist(), ((np.log(P / r) - kl) / p.sum()).tolist()]

    batched = unijax.vmap(sc.xlogy)(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0]))
    result["xlogy"] = [batched.tolist(), [0.0, float(np.log(2.0)), 2 * float(np.log(3.0))]]
    print(json.dumps({"scipy_on_import": scipy_on_import, **result}))
""")


def test_scipy_array_api_functions_run_under_unijax_transforms() -> None:
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    env.pop("UNIJAX_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", SCIPY_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("scipy_on_import") is False
    assert set(result) == {"log_ndtr", "chdtr", "entropy", "xlogy"}
    for name, (got, want) in result.items():
        np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=name)
