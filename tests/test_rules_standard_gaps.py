"""Places where the rules fell short of the Array API standard or of JAX, each checked on
the engine's backends (NumPy and array-api-strict) through the public transforms:

* derivatives of arithmetic with a Python-scalar zero follow IEEE, as the values do;
* derivatives of ``det``/``slogdet`` at singular matrices, and of ``qr`` at rank-deficient
  ones, are JAX's instead of a ``LinAlgError``;
* ``vmap`` of ``matmul`` refuses 0-d examples, as eager ``matmul`` does;
* the traced functions have the standard's signatures;
* 0-d boolean indices add an axis of length 1 or 0, as in NumPy;
* instances of ``int``/``float`` subclasses (``IntEnum``) are the numbers they stand for.

Derivatives are compared with JAX's of the same ``jax.numpy`` code and with central finite
differences, ``vmap`` with a Python loop.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import array_api_strict as strict
import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.engine.core import API_FUNCTIONS, CREATION_FUNCTIONS
from unijax.engine.rules.linalg_solve import triangular_solve_p
from unijax.errors import ConcretizationError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "array_api_strict"]


def array(values: Any, backend: str) -> Any:
    """``values`` as a float64 (or given-dtype) array of ``backend``."""
    a = np.asarray(values, dtype=np.result_type(np.asarray(values).dtype, np.float64))
    return strict.asarray(a) if backend == "array_api_strict" else a


def numpy_of(a: Any) -> np.ndarray:
    return np.asarray(a)


@contextmanager
def ieee() -> Iterator[None]:
    """Division by zero and invalid results, without NumPy's warnings (errors in tests)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        yield


def assert_same(got: Any, want: Any, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Equal values, and the same infinities (with sign) and NaNs."""
    got, want = numpy_of(got), np.asarray(want)
    assert got.shape == want.shape
    if np.iscomplexobj(got) or np.iscomplexobj(want):
        assert_same(np.real(got), np.real(want), rtol, atol)
        assert_same(np.imag(got), np.imag(want), rtol, atol)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=atol)


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, v: np.ndarray,
                       h: float = 1e-6) -> float:
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


# --- 1. Python-scalar zeros in derivatives --------------------------------------------------

X_ZERO = [0.0, 1.5, -2.0, np.inf, -0.0]
SCALARS = [0.0, -0.0, 0, 0j, 2.5]
OPS = ["divide", "pow", "remainder", "floor_divide"]


def scalar_case(name: str, scalar: Any, side: str) -> Callable[[Any, Any], Any]:
    def f(xp: Any, x: Any) -> Any:
        a, b = (x, scalar) if side == "right" else (scalar, x)
        return getattr(xp, name)(a, b)

    return f


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
@pytest.mark.parametrize("name", OPS)
def test_scalar_zero_operands_give_ieee_derivatives(name: str, scalar: Any, side: str,
                                                    backend: str) -> None:
    if isinstance(scalar, complex) and name in ("remainder", "floor_divide"):
        pytest.skip("not defined for complex numbers")
    f = scalar_case(name, scalar, side)
    # Complex powers of infinity differ between NumPy and XLA whatever the exponent.
    values = X_ZERO[:3] if isinstance(scalar, complex) else X_ZERO
    x = array(values, backend)
    t = array(np.linspace(0.5, 1.5, len(values)), backend)
    w = np.linspace(-1.0, 1.0, len(values))
    jx, jt = jnp.asarray(values), jnp.asarray(numpy_of(t))
    with ieee():
        _, tangent = unijax.jvp(lambda x: f(array_namespace(x), x), (x,), (t,))
        _, want_tangent = jax.jvp(lambda x: f(jnp, x), (jx,), (jt,))
        assert_same(tangent, want_tangent)

        def weighted(xp: Any, x: Any) -> Any:
            out = f(xp, x)
            return xp.sum(xp.real(out) * xp.asarray(w)) if out.dtype in (
                xp.complex64, xp.complex128) else xp.sum(out * xp.asarray(w))

        grad = unijax.grad(lambda x: weighted(array_namespace(x), x))(x)
        assert_same(grad, jax.grad(lambda x: weighted(jnp, x))(jx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_division_by_a_python_scalar_matches_finite_differences(backend: str) -> None:
    # The rule divides the tangent by y instead of multiplying by 1 / y; away from zero
    # both directions of the derivative are still the quotient rule.
    x0 = np.array([0.3, -1.2, 2.0])
    v = np.array([1.0, 0.5, -2.0])

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.sum(x / 2.5 + 1.5 / x)

    grad = numpy_of(unijax.grad(f)(array(x0, backend)))
    _, tangent = unijax.jvp(f, (array(x0, backend),), (array(v, backend),))
    fd = central_difference(lambda a: float(numpy_of(f(array(a, backend)))), x0, v)
    np.testing.assert_allclose(float(numpy_of(tangent)), fd, rtol=1e-8)
    np.testing.assert_allclose(float(grad @ v), fd, rtol=1e-8)
    np.testing.assert_allclose(grad, jax.grad(lambda a: jnp.sum(a / 2.5 + 1.5 / a))(
        jnp.asarray(x0)), rtol=1e-12)


# --- 2. det and slogdet at singular matrices ------------------------------------------------

SINGULAR = {
    "1x1 zero": [[0.0]],
    "2x2 rank 1": [[1.0, 2.0], [2.0, 4.0]],
    "2x2 zero": [[0.0, 0.0], [0.0, 0.0]],
    "3x3 zero row": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [7.0, 8.0, 10.0]],
    "3x3 rank 1": [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 6.0, 9.0]],
    "4x4 repeated row": [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 5.0, 2.0],
                         [3.0, 1.0, 0.0, 1.0]],
    "4x4 rank 2": [[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], [0.0, 1.0, 5.0, 2.0],
                   [1.0, 3.0, 8.0, 6.0]],
    "5x5 zero column": [[0.0, 1.0, 2.0, 3.0, 1.0], [0.0, 4.0, 1.0, 2.0, 0.0],
                        [0.0, 1.0, 5.0, 1.0, 2.0], [0.0, 2.0, 1.0, 7.0, 1.0],
                        [0.0, 1.0, 1.0, 1.0, 9.0]],
}


def cofactors(a: np.ndarray) -> np.ndarray:
    """The cofactor matrix from its definition (determinants of minors)."""
    n = a.shape[0]
    out = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, axis=0), j, axis=1)
            out[i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return out


def det(x: Any) -> Any:
    return array_namespace(x).linalg.det(x)


def logabsdet(x: Any) -> Any:
    return array_namespace(x).linalg.slogdet(x)[1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SINGULAR)
def test_det_derivatives_at_singular_matrices_are_the_cofactors(name: str,
                                                                backend: str) -> None:
    a = np.asarray(SINGULAR[name])
    v = np.linspace(-1.0, 1.0, a.size).reshape(a.shape)
    want = cofactors(a)
    grad = numpy_of(unijax.grad(det)(array(a, backend)))
    np.testing.assert_allclose(grad, want, atol=1e-10)
    np.testing.assert_allclose(numpy_of(unijax.jit(unijax.grad(det))(array(a, backend))),
                               want, atol=1e-10)
    _, tangent = unijax.jvp(det, (array(a, backend),), (array(v, backend),))
    np.testing.assert_allclose(float(numpy_of(tangent)), np.sum(want * v), atol=1e-10)
    # det is a polynomial: central differences are exact up to rounding.
    fd = central_difference(lambda m: float(np.linalg.det(m)), a, v)
    np.testing.assert_allclose(float(numpy_of(tangent)), fd, rtol=1e-6, atol=1e-7)
    if name != "5x5 zero column":
        # JAX's LU-based rule zeroes the gradient when the zero pivot is not the last
        # one (the first column here); elsewhere it is the cofactor matrix too.
        np.testing.assert_allclose(grad, jax.grad(jnp.linalg.det)(jnp.asarray(a)),
                                   atol=1e-10)


@pytest.mark.parametrize("name", [k for k in SINGULAR if len(SINGULAR[k]) <= 3])
def test_second_derivatives_of_small_det_at_singular_matrices_match_jax(name: str) -> None:
    a = np.asarray(SINGULAR[name])
    want = jax.hessian(jnp.linalg.det)(jnp.asarray(a))
    np.testing.assert_allclose(unijax.hessian(det)(a), want, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_det_gradients_of_a_batch_mixing_singular_and_regular_matrices(backend: str) -> None:
    batch = np.stack([np.asarray(SINGULAR["4x4 repeated row"]),
                      np.eye(4) + 0.1 * np.arange(16.0).reshape(4, 4) / 16,
                      np.asarray(SINGULAR["4x4 rank 2"])])
    want = np.stack([cofactors(m) for m in batch])
    grad_det = unijax.grad(det)
    got = unijax.vmap(grad_det)(array(batch, backend))
    np.testing.assert_allclose(numpy_of(got), want, atol=1e-10)
    got = unijax.jit(unijax.vmap(grad_det))(array(batch, backend))
    np.testing.assert_allclose(numpy_of(got), want, atol=1e-10)
    loop = [numpy_of(grad_det(array(m, backend))) for m in batch]
    np.testing.assert_allclose(numpy_of(got), np.stack(loop), atol=1e-10)
    # Second derivatives at the regular matrix through the jit path, which computes both
    # formulas and selects: the unused one must not leak NaNs into the derivative.
    hess = unijax.jit(unijax.hessian(det))(array(batch[1], backend))
    np.testing.assert_allclose(numpy_of(hess), jax.hessian(jnp.linalg.det)(
        jnp.asarray(batch[1])), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_det_derivatives_near_singular_matrices_match_jax(backend: str) -> None:
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0 + 1e-9], [0.0, 1.0, 5.0, 2.0],
                  [3.0, 1.0, 0.0, 1.0]])
    grad = numpy_of(unijax.grad(det)(array(a, backend)))
    np.testing.assert_allclose(grad, jax.grad(jnp.linalg.det)(jnp.asarray(a)), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(grad, cofactors(a), rtol=1e-6, atol=1e-6)
    log_grad = numpy_of(unijax.grad(logabsdet)(array(a, backend)))
    # atol as above: entries reach 2e9, and the one that is zero in exact arithmetic comes
    # out as rounding noise (about 1e-9) in either library.
    np.testing.assert_allclose(log_grad, jax.grad(lambda m: jnp.linalg.slogdet(m)[1])(
        jnp.asarray(a)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SINGULAR)
def test_slogdet_derivatives_at_singular_matrices(name: str, backend: str) -> None:
    a = np.asarray(SINGULAR[name])
    v = np.ones_like(a) + np.eye(len(a))
    jax_logabsdet = lambda m: jnp.linalg.slogdet(m)[1]  # noqa: E731
    want_grad = np.asarray(jax.grad(jax_logabsdet)(jnp.asarray(a)))
    _, want_tangent = jax.jvp(jax_logabsdet, (jnp.asarray(a),), (jnp.asarray(v),))
    with ieee():
        grad = numpy_of(unijax.grad(logabsdet)(array(a, backend)))
        jit_grad = numpy_of(unijax.jit(unijax.grad(logabsdet))(array(a, backend)))
        _, tangent = unijax.jvp(logabsdet, (array(a, backend),), (array(v, backend),))
    assert_same(jit_grad, grad)
    assert not np.isfinite(grad).any()
    if len(a) <= 3:
        # adj(a)^T / 0: infinite where the cofactor is not zero, NaN where it is. (Larger
        # matrices take the cofactors from the SVD, where zeros are rounding errors.)
        with ieee():
            assert_same(grad, np.where(np.abs(cofactors(a)) < 1e-9, 0.0, cofactors(a)) / 0.0)
    if len(a) <= 2 or name in ("3x3 zero row", "3x3 rank 1"):
        # JAX's formula for n <= 2 is this one; for these 3x3 its LU solve agrees.
        assert_same(grad, want_grad)
    else:
        # JAX's LU solve spreads NaNs differently; both are infinite or NaN throughout.
        assert not np.isfinite(grad).any() and not np.isfinite(want_grad).any()
    if len(a) <= 2:
        assert_same(tangent, want_tangent)
    else:
        assert not np.isfinite(numpy_of(tangent)) and not np.isfinite(want_tangent)



# --- 3. qr of rank-deficient matrices -------------------------------------------------------

RANK_DEFICIENT = {
    "zero column": [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]],
    "zero matrix": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
    "square rank 1": [[1.0, 1.0], [0.0, 0.0]],
}


def qr_parts(x: Any) -> Any:
    return tuple(array_namespace(x).linalg.qr(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", RANK_DEFICIENT)
def test_qr_derivatives_of_rank_deficient_matrices_follow_jax(name: str,
                                                             backend: str) -> None:
    a = np.asarray(RANK_DEFICIENT[name])
    t = np.linspace(0.5, 1.5, a.size).reshape(a.shape)
    with ieee():
        _, tangents = unijax.jvp(qr_parts, (array(a, backend),), (array(t, backend),))
        _, want = jax.jvp(lambda m: tuple(jnp.linalg.qr(m)), (jnp.asarray(a),),
                          (jnp.asarray(t),))
        for got, ref in zip(tangents, want, strict=True):
            assert_same(got, ref)

        def total(x: Any) -> Any:
            xp = array_namespace(x)
            q, r = xp.linalg.qr(x)
            return xp.sum(q) + xp.sum(r)

        grad = numpy_of(unijax.grad(total)(array(a, backend)))
        want_grad = np.asarray(jax.grad(lambda m: jnp.sum(jnp.linalg.qr(m)[0])
                                        + jnp.sum(jnp.linalg.qr(m)[1]))(jnp.asarray(a)))
    # The gradient transposes the JVP; JAX's transposes propagate NaN where these give
    # infinities, so the comparison is of which entries are finite.
    np.testing.assert_array_equal(np.isfinite(grad), np.isfinite(want_grad))


TRIANGULAR = np.array([[2.0, 0.0, 0.0], [1.0, 3.0, 0.0], [-1.0, 0.5, 1.5]])
RHS = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.25]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lower", [True, False])
def test_triangular_solve_matches_jax(lower: bool, backend: str) -> None:
    a = TRIANGULAR if lower else TRIANGULAR.T
    da = np.tril(np.full((3, 3), 0.3)) if lower else np.triu(np.full((3, 3), 0.3))
    db = np.full_like(RHS, -0.2)

    def f(m: Any, b: Any) -> Any:
        return triangular_solve_p.bind(m, b, lower=lower)

    def ref(m: Any, b: Any) -> Any:
        return jax.scipy.linalg.solve_triangular(m, b, lower=lower)

    args = (array(a, backend), array(RHS, backend))
    out, tangent = unijax.jvp(f, args, (array(da, backend), array(db, backend)))
    want, want_tangent = jax.jvp(ref, (jnp.asarray(a), jnp.asarray(RHS)),
                                 (jnp.asarray(da), jnp.asarray(db)))
    np.testing.assert_allclose(numpy_of(out), want, rtol=1e-12)
    np.testing.assert_allclose(numpy_of(tangent), want_tangent, rtol=1e-12)

    def loss(m: Any, b: Any) -> Any:
        xp = array_namespace(m, b)
        return xp.sum(f(m, b) ** 2)

    grads = unijax.grad(loss, argnums=(0, 1))(*args)
    want_grads = jax.grad(lambda m, b: jnp.sum(ref(m, b) ** 2), argnums=(0, 1))(
        jnp.asarray(a), jnp.asarray(RHS))
    # JAX's solve_triangular reads one triangle, so the other gets no cotangent.
    for g, w in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(numpy_of(g), w, rtol=1e-10, atol=1e-12)
    fd = central_difference(lambda m: float(np.sum(np.linalg.solve(m, RHS) ** 2)), a, da)
    np.testing.assert_allclose(float(np.sum(numpy_of(grads[0]) * da)), fd, rtol=1e-7)
    rhs = np.stack([RHS, 2 * RHS, -RHS])
    factors = np.stack([a, a + np.diag([1.0, 2.0, 3.0]), 2 * a])
    for in_axes in ((None, 0), (0, None), (0, 0)):
        ms = factors if in_axes[0] == 0 else a
        bs = rhs if in_axes[1] == 0 else RHS
        got = unijax.vmap(f, in_axes=in_axes)(array(ms, backend), array(bs, backend))
        loop = np.stack([np.linalg.solve(ms[i] if in_axes[0] == 0 else ms,
                                         bs[i] if in_axes[1] == 0 else bs) for i in range(3)])
        np.testing.assert_allclose(numpy_of(got), loop, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_triangular_solve_with_a_zero_pivot_gives_ieee_values(backend: str) -> None:
    a = np.array([[2.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    with ieee():
        got = triangular_solve_p.bind(array(a, backend), array(RHS, backend), lower=False)
        want = jax.scipy.linalg.solve_triangular(jnp.asarray(a), jnp.asarray(RHS),
                                                 lower=False)
    assert_same(got, want)


# --- 4. vmap of matmul with 0-d examples ----------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("shapes", "in_axes"), [
    (((3,), (1,)), (0, None)),
    (((3,), (3, 2)), (0, 0)),
    (((3, 2), (3,)), (0, 0)),
    (((2,), (3,)), (None, 0)),
    (((3,), (3,)), (0, 0)),
])
def test_vmap_of_matmul_refuses_0d_examples_as_eager_matmul_does(
        shapes: tuple[tuple[int, ...], ...], in_axes: tuple[int | None, ...],
        backend: str) -> None:
    args = [array(np.ones(s), backend) for s in shapes]
    example = [np.ones(s)[0] if d == 0 else np.ones(s) for s, d in zip(shapes, in_axes,
                                                                        strict=True)]
    xp = array_namespace(args[0])
    with pytest.raises(ValueError):
        xp.matmul(*[array(e, backend) for e in example])
    with pytest.raises(ValueError, match="at least one dimension"):
        unijax.vmap(lambda a, b: array_namespace(a, b).matmul(a, b), in_axes=in_axes)(*args)


# --- 5. signatures --------------------------------------------------------------------------

#: Where the traced namespace deliberately differs from array-api-strict's signature.
EXTENSIONS = {
    # The standard made axis positional-or-keyword when it allowed tuples; the default of
    # 0 of its earlier text (keyword-only, optional) is kept for code written against it.
    "expand_dims": {"axis"},
}


def _reference(name: str) -> Any:
    obj: Any = strict
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _parameters(fn: Any, drop_first: bool = False) -> list[tuple[str, Any, Any]]:
    params = list(inspect.signature(fn).parameters.values())[int(drop_first):]
    # array-api-strict marks some defaults with a sentinel where the standard says None.
    return [(p.name, p.kind, None if type(p.default).__name__ == "Undef" else p.default)
            for p in params]


def test_traced_functions_have_the_standards_signatures() -> None:
    compared = 0
    for table, drop_first in ((API_FUNCTIONS, False), (CREATION_FUNCTIONS, True)):
        for name, fn in table.items():
            ref = _reference(name)
            if ref is None or not callable(ref):
                continue  # not in the standard (or not in array-api-strict)
            ours, theirs = _parameters(fn, drop_first), _parameters(ref)
            allowed = EXTENSIONS.get(name, set())
            ours = [p if p[0] not in allowed else p[:1] for p in ours]
            theirs = [p if p[0] not in allowed else p[:1] for p in theirs]
            assert ours == theirs, f"{name}: {inspect.signature(fn)} vs {inspect.signature(ref)}"
            compared += 1
    assert compared > 150


@pytest.mark.parametrize("backend", BACKENDS)
def test_standard_keyword_forms_work_under_transforms(backend: str) -> None:
    def f(x: Any) -> Any:
        xp = array_namespace(x)
        a = xp.expand_dims(x, 1) + xp.expand_dims(x, axis=1)  # (3, 1)
        b = xp.full_like(x, fill_value=2.0) * xp.full_like(x, 3.0)
        return xp.sum(a[:, 0] * b * x)

    def kinds(x: Any) -> Any:
        xp = array_namespace(x)
        assert xp.isdtype(dtype=x.dtype, kind="real floating")
        assert xp.isdtype(x.dtype, kind=("integral", "real floating"))
        assert not xp.isdtype(x.dtype, "integral")
        return xp.sum(x)

    x = array([1.0, -2.0, 0.5], backend)
    for transform in (unijax.grad, unijax.jit, unijax.vmap):
        transform(kinds)(x)
    grad = numpy_of(unijax.grad(f)(x))
    np.testing.assert_allclose(grad, 24.0 * numpy_of(x))
    np.testing.assert_allclose(numpy_of(unijax.jit(f)(x)), 12.0 * np.sum(numpy_of(x) ** 2))
    batch = array(np.stack([numpy_of(x), 2 * numpy_of(x)]), backend)
    np.testing.assert_allclose(numpy_of(unijax.vmap(f)(batch)),
                               [12.0 * np.sum(numpy_of(x) ** 2), 48.0 * np.sum(
                                   numpy_of(x) ** 2)])


# --- 6. 0-d boolean indices -----------------------------------------------------------------

X2 = np.arange(12.0).reshape(3, 4) / 7 - 0.5
T, F = np.asarray(True), np.asarray(False)
ZERO_D_KEYS = [
    T, F, (Ellipsis, T), (T, Ellipsis), (0, T), (T, 0), (slice(None), T, 1),
    (np.asarray([0, 2]), T), (np.asarray([0, 2]), slice(None), T), (None, T), (T, None, 1),
    (T, T), (T, np.asarray([True, False, True])), (Ellipsis, F), (slice(1, None), F),
]
#: Keys where JAX's placement of the new axis differs from NumPy's (JAX gives x[None, True]
#: the shape (1, 1, 1, 4)); the standard follows NumPy.
JAX_DIFFERS = {9}


def key_for(key: Any, backend: str) -> Any:
    def one(k: Any) -> Any:
        if isinstance(k, np.ndarray):
            return strict.asarray(k) if backend == "array_api_strict" else k
        return k

    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


def jax_key(key: Any) -> Any:
    def one(k: Any) -> Any:
        return jnp.asarray(k) if isinstance(k, np.ndarray) else k

    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(ZERO_D_KEYS)))
def test_0d_boolean_indices_follow_numpy(index: int, backend: str) -> None:
    key = ZERO_D_KEYS[index]
    k = key_for(key, backend)
    want = X2[key]
    x = array(X2, backend)
    weights = np.linspace(-1.0, 2.0, want.size).reshape(want.shape)

    def loss(y: Any) -> Any:
        xp = array_namespace(y)
        return xp.sum(y[k] ** 2 * xp.asarray(weights))

    out, tangent = unijax.jvp(lambda y: y[k], (x,), (array(np.ones_like(X2), backend),))
    np.testing.assert_array_equal(numpy_of(out), want)
    assert numpy_of(tangent).shape == want.shape
    grad = numpy_of(unijax.grad(loss)(x))
    manual = np.zeros_like(X2)
    np.add.at(manual, key, 2 * want * weights)  # NumPy's own scatter for the same key
    np.testing.assert_allclose(grad, manual, rtol=1e-12)
    if index not in JAX_DIFFERS:
        jk = jax_key(key)
        np.testing.assert_allclose(grad, jax.grad(lambda y: jnp.sum(y[jk] ** 2 * weights))(
            jnp.asarray(X2)), rtol=1e-12)
    v = np.linspace(0.5, 1.5, X2.size).reshape(X2.shape)
    fd = central_difference(lambda a: float(np.sum(a[key] ** 2 * weights)), X2, v)
    np.testing.assert_allclose(float(np.sum(grad * v)), fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(numpy_of(unijax.jit(lambda y: y[k])(x)), want)

    def update(y: Any) -> Any:
        y = y * 1.0
        y[k] = 7.0
        return y

    expected = X2.copy()
    expected[key] = 7.0
    np.testing.assert_array_equal(numpy_of(unijax.jit(update)(x)), expected)
    set_grad = numpy_of(unijax.grad(lambda y: array_namespace(y).sum(update(y) * y))(x))
    np.testing.assert_allclose(set_grad, expected + np.where(expected == 7.0, 0.0, X2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_0d_boolean_indices_under_vmap_and_jit(backend: str) -> None:
    batch = array(np.stack([X2, 2 * X2]), backend)
    t = key_for(T, backend)
    got = unijax.vmap(lambda y: y[..., t])(batch)
    np.testing.assert_array_equal(numpy_of(got), np.stack([X2[..., T], 2 * X2[..., T]]))
    # A mask made inside the compiled function is a constant of it: its shape is static.
    got = unijax.jit(lambda y: y[array_namespace(y).asarray(False), 1:])(array(X2, backend))
    np.testing.assert_array_equal(numpy_of(got), X2[F, 1:])
    # A mask that varies (a jit input, or mapped by vmap) makes the shape data-dependent.
    with pytest.raises(ConcretizationError, match="boolean mask"):
        unijax.jit(lambda y, m: y[m])(array(X2, backend), key_for(T, backend))
    masks = key_for(np.asarray([True, False]), backend)
    with pytest.raises(ConcretizationError):
        unijax.vmap(lambda y, m: y[m], in_axes=(None, 0))(array(X2, backend), masks)


# --- 7. int and float subclasses ------------------------------------------------------------


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


class MyFloat(float):
    pass


def scalar_program(one: Any, two: Any, half: Any) -> Callable[[Any], Any]:
    """A function of x using the scalars ``one``, ``two`` (ints) and ``half`` (a float)."""

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        y = x * half + half * x - x / half + xp.pow(x, two) + xp.multiply(x, half)
        y = y + xp.where(x > half, x, half) + xp.clip(x, half, two) + xp.maximum(x, half)
        y = y + xp.sum(x, axis=one, keepdims=True) + xp.full_like(x, half)
        y = y + xp.pow(half, x) + x**two + xp.copysign(x, half)
        z = y * 1.0
        z[one] = half
        z[:, one:two] = z[:, one:two] * two
        return xp.sum(z * z) + xp.linalg.vector_norm(x, ord=half + 2) + xp.sum(
            xp.roll(x, one, axis=one) * x) + xp.sum(xp.expand_dims(x, axis=one)[:, 0] * x)

    return f


@pytest.mark.parametrize("backend", BACKENDS)
def test_int_and_float_subclasses_are_their_numbers(backend: str) -> None:
    plain = scalar_program(1, 2, 0.5)
    subclassed = scalar_program(Level.ONE, Level.TWO, MyFloat(0.5))
    x = array(X2[:2, :3] + 0.1, backend)
    batch = array(np.stack([X2[:2, :3], X2[1:, 1:]]), backend)
    tangent = array(np.ones((2, 3)), backend)
    for transform in (
        unijax.grad,
        unijax.jit,
        lambda f: unijax.jit(unijax.grad(f)),
        lambda f: (lambda y: unijax.jvp(f, (y,), (tangent,))[1]),
    ):
        np.testing.assert_allclose(numpy_of(transform(subclassed)(x)),
                                   numpy_of(transform(plain)(x)), rtol=1e-12)
    np.testing.assert_allclose(numpy_of(unijax.vmap(subclassed)(batch)),
                               numpy_of(unijax.vmap(plain)(batch)), rtol=1e-12)
    np.testing.assert_allclose(numpy_of(unijax.vmap(unijax.grad(subclassed))(batch)),
                               numpy_of(unijax.vmap(unijax.grad(plain))(batch)), rtol=1e-12)
    # The program writes in place, which jax.numpy cannot: finite differences instead.
    x0 = numpy_of(x)
    v = np.linspace(-1.0, 1.0, x0.size).reshape(x0.shape)
    fd = central_difference(lambda a: float(plain(a)), x0, v)
    np.testing.assert_allclose(float(np.sum(numpy_of(unijax.grad(subclassed)(x)) * v)), fd,
                               rtol=1e-6)
