"""NumPy's and torch's dispatch protocols on tracers: helpers that close over the caller's
namespace, or call NumPy directly, under inner and outer transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from array_api_compat import array_namespace

import unijax
from unijax.engine import protocols_numpy
from unijax.errors import ConcretizationError

jax.config.update("jax_enable_x64", True)

Q = np.linspace(0.1, 1.0, 3)
P = np.asarray([1.0, -0.5, 2.0])


def step(q, p):
    """The helper closes over the caller's namespace; the inner grad traces it."""
    xp = array_namespace(q)
    potential = lambda q: xp.sum(xp.sin(q) * q)  # noqa: E731
    return p - 0.1 * unijax.grad(potential)(q)


def step_numpy(q, p):
    potential = lambda q: np.sum(np.sin(q) * q)  # noqa: E731
    return p - 0.1 * unijax.grad(potential)(q)


def step_jax(q, p):
    return p - 0.1 * jax.grad(lambda q: jnp.sum(jnp.sin(q) * q))(q)


def _loss(f):
    return lambda q, p: array_namespace(q).sum(f(q, p) ** 2)


def _run(f, transform, be):
    """``transform`` of ``f`` on backend ``be``'s arrays, as NumPy, and JAX's answer."""
    q = unijax.asarray(Q, backend=be)
    p = unijax.asarray(P, backend=be)
    qs = unijax.asarray(np.stack([Q, 2 * Q]), backend=be)
    runs = {
        "plain": (lambda: f(q, p), lambda: step_jax(Q, P)),
        "grad": (lambda: unijax.grad(_loss(f))(q, p),
                 lambda: jax.grad(lambda q, p: jnp.sum(step_jax(q, p) ** 2))(Q, P)),
        "vmap": (lambda: unijax.vmap(f, in_axes=(0, None))(qs, p),
                 lambda: jax.vmap(step_jax, in_axes=(0, None))(np.stack([Q, 2 * Q]), P)),
        "jit": (lambda: unijax.jit(f)(q, p), lambda: jax.jit(step_jax)(Q, P)),
        "jacfwd": (lambda: unijax.jacfwd(f)(q, p), lambda: jax.jacfwd(step_jax)(Q, P)),
    }
    got, want = runs[transform]
    out = got()
    return (out.compute() if be == "dask" else unijax.to_backend(out, "numpy")), want()


TRANSFORMS = ("plain", "grad", "vmap", "jit", "jacfwd")


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("be", ["numpy", "torch", "dask", "autograd"])
def test_captured_namespace_inner_grad_matches_jax(be, transform):
    got, want = _run(step, transform, be)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("be", ["numpy", "dask", "autograd", "array_api_strict"])
def test_numpy_calls_inner_grad_matches_jax(be, transform):
    got, want = _run(step_numpy, transform, be)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("transform", ["grad", "vmap", "jit"])
def test_captured_strict_namespace_under_outer_transform_matches_jax(transform):
    got, want = _run(step, transform, "array_api_strict")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("transform", ["plain", "jacfwd"])
def test_captured_strict_namespace_on_plain_arrays_names_rule_one(transform):
    # array-api-strict accepts only its own arrays, by design (see the libraries guide);
    # jacfwd first runs the function on the plain inputs, as a plain call does.
    with pytest.raises(ConcretizationError, match=r"array_api_strict\.sin.*rule 1"):
        _run(step, transform, "array_api_strict")


def test_strict_functions_without_tracers_are_unchanged():
    import array_api_strict as strict

    x = unijax.asarray(Q, backend="array_api_strict")
    assert isinstance(strict.sin(x), strict._array_object.Array)
    with pytest.raises(TypeError, match="Only Array objects"):
        strict.sin(Q)  # strict's own refusal of foreign arrays stands


# --- every ufunc with a counterpart, against the traced namespace's own function -----------

_BINARY = {"add", "subtract", "multiply", "divide", "floor_divide", "remainder", "pow",
           "logaddexp", "hypot", "copysign", "nextafter", "maximum", "minimum", "atan2",
           "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
           "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or",
           "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift", "matmul", "vecdot"}
_INTEGER = {"bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
            "bitwise_right_shift", "bitwise_invert"}
_BOOL = {"logical_and", "logical_or", "logical_xor", "logical_not"}
_DOMAIN = {"acosh": 1.5, "log": 0.0, "log2": 0.0, "log10": 0.0, "sqrt": 0.0, "pow": 0.0}
_DIFFERENTIABLE = {"add", "subtract", "multiply", "divide", "pow", "logaddexp", "hypot",
                   "maximum", "minimum", "atan2", "matmul", "vecdot", "abs", "negative",
                   "positive", "sqrt", "square", "reciprocal", "exp", "expm1", "log",
                   "log1p", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                   "asin", "acos", "atan", "asinh", "acosh", "atanh", "conj"}


def _ufunc_case(uname):
    std = protocols_numpy.UFUNCS[uname]
    x = np.asarray([0.3, 0.6, 0.9]) + _DOMAIN.get(std, 0.0)
    y = np.asarray([0.7, 0.2, 0.5])
    if std in ("asin", "acos", "atanh"):
        x = x - 0.2
    if std in _INTEGER:
        x, y = np.asarray([3, 5, 12]), np.asarray([1, 2, 3])
    if std in _BOOL:
        x, y = x > 0.5, y > 0.5
    args = (x, y) if std in _BINARY else (x,)
    return getattr(np, uname), std, args


UFUNC_NAMES = sorted(n for n, std in protocols_numpy.UFUNCS.items() if hasattr(np, n))


@pytest.mark.parametrize("uname", UFUNC_NAMES)
def test_ufunc_on_tracers_matches_traced_namespace(uname):
    ufunc, std, args = _ufunc_case(uname)

    def with_numpy(x, *rest):
        return ufunc(x, *rest)

    def with_namespace(x, *rest):
        return getattr(array_namespace(x), std)(x, *rest)

    batched = tuple(np.stack([a, a[::-1]]) for a in args)
    for transform, inputs in ((unijax.vmap, batched), (unijax.jit, args)):
        np.testing.assert_array_equal(transform(with_numpy)(*inputs),
                                      transform(with_namespace)(*inputs))
    if std in _DIFFERENTIABLE:
        def total(f):
            return lambda *a: array_namespace(a[0]).sum(f(*a))

        np.testing.assert_allclose(unijax.grad(total(with_numpy))(*args),
                                   unijax.grad(total(with_namespace))(*args), rtol=1e-14)


def test_ufunc_methods_reduce_accumulate_outer():
    x = np.asarray([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    cases = [
        (lambda a: np.add.reduce(a), lambda a, xp: xp.sum(a, axis=0)),
        (lambda a: np.multiply.reduce(a, axis=1), lambda a, xp: xp.prod(a, axis=1)),
        (lambda a: np.maximum.reduce(a, axis=None), lambda a, xp: xp.max(a)),
        (lambda a: np.add.accumulate(a), lambda a, xp: xp.cumulative_sum(a, axis=0)),
        (lambda a: np.multiply.outer(a[0], a[1]),
         lambda a, xp: a[0][:, None] * a[1][None, :]),
    ]
    for f_np, f_xp in cases:
        def ref(a, f_xp=f_xp):
            return f_xp(a, array_namespace(a))

        np.testing.assert_allclose(unijax.jit(f_np)(x), unijax.jit(ref)(x))
        np.testing.assert_allclose(f_np(x), unijax.jit(ref)(x))  # NumPy's own answer
        batched = np.stack([x, 2 * x])
        np.testing.assert_allclose(unijax.vmap(f_np)(batched), unijax.vmap(ref)(batched))
        total = lambda f: lambda a: array_namespace(a).sum(f(a))  # noqa: E731
        np.testing.assert_allclose(unijax.grad(total(f_np))(x), unijax.grad(total(ref))(x))


def test_ufunc_method_without_counterpart_is_refused():
    with pytest.raises(ConcretizationError, match=r"numpy\.maximum\.accumulate"):
        unijax.grad(lambda x: np.sum(np.maximum.accumulate(x)))(np.ones(3))
    with pytest.raises(ConcretizationError, match=r"numpy\.add\.at"):
        unijax.grad(lambda x: np.add.at(x, [0], 1.0))(np.ones(3))


def test_ufunc_without_counterpart_is_refused_naming_it():
    with pytest.raises(ConcretizationError, match=r"numpy\.cbrt.*xp\.sign"):
        unijax.grad(lambda x: np.sum(np.cbrt(x)))(np.ones(3))


# --- the most used NumPy functions ---------------------------------------------------------

A = np.asarray([[2.0, 0.5, -1.0], [0.3, 1.5, 0.2], [-0.4, 0.1, 3.0]])
V = np.asarray([0.4, -1.2, 2.5])

# (name, numpy call, the same with the traced namespace, input)
FUNCTIONS = [
    ("sum", lambda a: np.sum(a, axis=0), lambda a, xp: xp.sum(a, axis=0), A),
    ("sum-all", lambda a: np.sum(a), lambda a, xp: xp.sum(a), A),
    ("prod", lambda a: np.prod(a, axis=1, keepdims=True),
     lambda a, xp: xp.prod(a, axis=1, keepdims=True), A),
    ("mean", lambda a: np.mean(a, axis=(0, 1)), lambda a, xp: xp.mean(a), A),
    ("std", lambda a: np.std(a, ddof=1), lambda a, xp: xp.std(a, correction=1), A),
    ("var", lambda a: np.var(a, axis=0), lambda a, xp: xp.var(a, axis=0), A),
    ("max", lambda a: np.max(a, axis=1), lambda a, xp: xp.max(a, axis=1), A),
    ("amin", lambda a: np.amin(a), lambda a, xp: xp.min(a), A),
    ("argmax", lambda a: np.argmax(a), lambda a, xp: xp.argmax(xp.reshape(a, (-1,))), A),
    ("argmin", lambda a: np.argmin(a, axis=0), lambda a, xp: xp.argmin(a, axis=0), A),
    ("all", lambda a: np.all(a > 0, axis=0), lambda a, xp: xp.all(a > 0, axis=0), A),
    ("any", lambda a: np.any(a > 2), lambda a, xp: xp.any(a > 2), A),
    ("count_nonzero", lambda a: np.count_nonzero(a > 0),
     lambda a, xp: xp.count_nonzero(a > 0), A),
    ("cumsum", lambda a: np.cumsum(a), lambda a, xp: xp.cumulative_sum(xp.reshape(a, (-1,))),
     A),
    ("cumprod", lambda a: np.cumprod(a, axis=1), lambda a, xp: xp.cumulative_prod(a, axis=1),
     A),
    ("concatenate", lambda a: np.concatenate([a, 2 * a], axis=1),
     lambda a, xp: xp.concat([a, 2 * a], axis=1), A),
    ("stack", lambda a: np.stack([a, a * a]), lambda a, xp: xp.stack([a, a * a]), A),
    ("hstack", lambda a: np.hstack([a, a]), lambda a, xp: xp.concat([a, a], axis=1), A),
    ("vstack", lambda a: np.vstack([a[0], a[1]]), lambda a, xp: xp.stack([a[0], a[1]]), A),
    ("reshape", lambda a: np.reshape(a, (9,)), lambda a, xp: xp.reshape(a, (9,)), A),
    ("ravel", lambda a: np.ravel(a), lambda a, xp: xp.reshape(a, (-1,)), A),
    ("transpose", lambda a: np.transpose(a), lambda a, xp: xp.permute_dims(a, (1, 0)), A),
    ("swapaxes", lambda a: np.swapaxes(a, 0, 1), lambda a, xp: a.mT, A),
    ("moveaxis", lambda a: np.moveaxis(a, 0, -1), lambda a, xp: xp.moveaxis(a, 0, -1), A),
    ("expand_dims", lambda a: np.expand_dims(a, (0, 2)),
     lambda a, xp: xp.reshape(a, (1, 3, 1, 3)), A),
    ("squeeze", lambda a: np.squeeze(a[None]), lambda a, xp: a, A),
    ("flip", lambda a: np.flip(a, axis=0), lambda a, xp: xp.flip(a, axis=0), A),
    ("roll", lambda a: np.roll(a, 2), lambda a, xp: xp.roll(a, 2), A),
    ("tile", lambda a: np.tile(a, 2), lambda a, xp: xp.tile(a, (1, 2)), A),
    ("repeat", lambda a: np.repeat(a, 2, axis=0), lambda a, xp: xp.repeat(a, 2, axis=0), A),
    ("broadcast_to", lambda a: np.broadcast_to(a, (2, 3, 3)),
     lambda a, xp: xp.broadcast_to(a, (2, 3, 3)), A),
    ("where", lambda a: np.where(a > 0, a, 0.5 * a),
     lambda a, xp: xp.where(a > 0, a, 0.5 * a), A),
    ("clip", lambda a: np.clip(a, -0.5, 1.0), lambda a, xp: xp.clip(a, -0.5, 1.0), A),
    ("take", lambda a: np.take(a, [2, 0], axis=1),
     lambda a, xp: xp.take(a, xp.asarray([2, 0]), axis=1), A),
    ("diff", lambda a: np.diff(a, axis=0), lambda a, xp: xp.diff(a, axis=0), A),
    ("tril", lambda a: np.tril(a, -1), lambda a, xp: xp.tril(a, k=-1), A),
    ("triu", lambda a: np.triu(a), lambda a, xp: xp.triu(a), A),
    ("copy", lambda a: np.copy(a) * a, lambda a, xp: a * a, A),
    ("zeros_like", lambda a: np.zeros_like(a) + a, lambda a, xp: a, A),
    ("ones_like", lambda a: np.ones_like(a) * a, lambda a, xp: a, A),
    ("full_like", lambda a: np.full_like(a, 2.0) * a, lambda a, xp: 2.0 * a, A),
    ("round", lambda a: np.round(a) + a, lambda a, xp: xp.round(a) + a, A),
    ("sort", lambda a: np.sort(a, axis=0), lambda a, xp: xp.sort(a, axis=0), A),
    ("argsort", lambda a: np.argsort(a), lambda a, xp: xp.argsort(a), A),
    ("isclose", lambda a: np.isclose(a, 0.5), lambda a, xp: xp.abs(a - 0.5) <= 1e-8 + 5e-6, A),
    ("dot", lambda a: np.dot(a, a), lambda a, xp: a @ a, A),
    ("dot-vector", lambda a: np.dot(a[0], a[1]), lambda a, xp: xp.vecdot(a[0], a[1]), A),
    ("inner", lambda a: np.inner(a, a), lambda a, xp: a @ a.mT, A),
    ("vdot", lambda a: np.vdot(a, a), lambda a, xp: xp.sum(a * a), A),
    ("outer", lambda a: np.outer(a[0], a[1]), lambda a, xp: xp.linalg.outer(a[0], a[1]), A),
    ("tensordot", lambda a: np.tensordot(a, a, axes=1), lambda a, xp: a @ a, A),
    ("trace", lambda a: np.trace(a), lambda a, xp: xp.linalg.trace(a), A),
    ("diagonal", lambda a: np.diagonal(a, 1), lambda a, xp: xp.linalg.diagonal(a, offset=1),
     A),
    ("cross", lambda a: np.cross(a[0], a[1]), lambda a, xp: xp.linalg.cross(a[0], a[1]), A),
    ("meshgrid", lambda a: np.meshgrid(a[0], a[1])[0] * 1.0,
     lambda a, xp: xp.meshgrid(a[0], a[1])[0] * 1.0, A),
    ("linalg.solve", lambda a: np.linalg.solve(a, a[0]),
     lambda a, xp: xp.linalg.solve(a, a[0]), A),
    ("linalg.inv", lambda a: np.linalg.inv(a), lambda a, xp: xp.linalg.inv(a), A),
    ("linalg.det", lambda a: np.linalg.det(a), lambda a, xp: xp.linalg.det(a), A),
    ("linalg.slogdet", lambda a: np.linalg.slogdet(a)[1],
     lambda a, xp: xp.linalg.slogdet(a)[1], A),
    ("linalg.cholesky", lambda a: np.linalg.cholesky(a @ a.T + np.eye(3)),
     lambda a, xp: xp.linalg.cholesky(a @ a.mT + xp.eye(3)), A),
    ("linalg.eigh", lambda a: np.linalg.eigh(a + a.T)[0],
     lambda a, xp: xp.linalg.eigh(a + a.mT)[0], A),
    ("linalg.eigvalsh", lambda a: np.linalg.eigvalsh(a + a.T),
     lambda a, xp: xp.linalg.eigvalsh(a + a.mT), A),
    ("linalg.svd", lambda a: np.linalg.svd(a, compute_uv=False),
     lambda a, xp: xp.linalg.svdvals(a), A),
    ("linalg.qr", lambda a: np.linalg.qr(a)[1], lambda a, xp: xp.linalg.qr(a)[1], A),
    ("linalg.pinv", lambda a: np.linalg.pinv(a), lambda a, xp: xp.linalg.pinv(a), A),
    ("linalg.matrix_power", lambda a: np.linalg.matrix_power(a, 3),
     lambda a, xp: a @ a @ a, A),
    ("linalg.multi_dot", lambda a: np.linalg.multi_dot([a, a, a[0]]),
     lambda a, xp: a @ a @ a[0], A),
    ("linalg.norm", lambda a: np.linalg.norm(a), lambda a, xp: xp.sqrt(xp.sum(a * a)), A),
    ("linalg.norm-axis", lambda a: np.linalg.norm(a, ord=1, axis=1),
     lambda a, xp: xp.sum(xp.abs(a), axis=1), A),
    ("linalg.norm-matrix", lambda a: np.linalg.norm(a, ord=1),
     lambda a, xp: xp.max(xp.sum(xp.abs(a), axis=0)), A),
    ("fft.rfft", lambda a: np.abs(np.fft.rfft(a)), lambda a, xp: xp.abs(xp.fft.rfft(a)), A),
    ("fft.fftn", lambda a: np.real(np.fft.fftn(a)), lambda a, xp: xp.real(xp.fft.fftn(a)), A),
    ("fft.fftshift", lambda a: np.fft.fftshift(a), lambda a, xp: xp.fft.fftshift(a), A),
]


def _numpy_reference(f_np, x):
    """The NumPy function on plain NumPy, which the traced results must also equal."""
    return f_np(x)


@pytest.mark.parametrize(("name", "f_np", "f_xp", "x"), FUNCTIONS, ids=[c[0] for c in FUNCTIONS])
def test_numpy_function_on_tracers_matches_traced_namespace(name, f_np, f_xp, x):
    def ref(a):
        return f_xp(a, array_namespace(a))

    want_plain = _numpy_reference(f_np, x)
    batched = np.stack([x, 0.5 * x])
    np.testing.assert_allclose(unijax.jit(f_np)(x), unijax.jit(ref)(x), rtol=1e-12)
    np.testing.assert_allclose(unijax.jit(f_np)(x), want_plain, rtol=1e-12)
    np.testing.assert_allclose(unijax.vmap(f_np)(batched), unijax.vmap(ref)(batched),
                               rtol=1e-12)
    out = f_np(x)
    if np.asarray(out).dtype.kind == "f":
        def total(f):
            return lambda a: array_namespace(a).sum(f(a))

        np.testing.assert_allclose(unijax.grad(total(f_np))(x), unijax.grad(total(ref))(x),
                                   rtol=1e-10, atol=1e-12)


def test_sixty_most_used_functions_are_covered():
    covered = {c[0].split("-")[0] for c in FUNCTIONS}
    assert len(covered) >= 60
    assert all(("numpy." + n) in protocols_numpy.FUNCTIONS for n in covered)


# --- errors --------------------------------------------------------------------------------

def test_asarray_of_differentiated_tracer_raises_concretization():
    with pytest.raises(ConcretizationError, match=r"np\.asarray"):
        unijax.grad(lambda x: np.sum(np.asarray(x)))(V)


def test_float_of_differentiated_tracer_raises_concretization():
    with pytest.raises(ConcretizationError, match="float"):
        unijax.grad(lambda x: float(np.sum(x)))(V)


def test_eig_on_tracer_raises_concretization_naming_eigh():
    with pytest.raises(ConcretizationError, match=r"numpy\.linalg\.eig\b.*eigh"):
        unijax.grad(lambda a: np.sum(np.real(np.linalg.eig(a)[0])))(A)


def test_function_without_counterpart_runs_on_known_constants():
    # A constant of the trace stays convertible, so NumPy computes on it as before.
    def f(x):
        xp = array_namespace(x)
        c = xp.asarray(A)  # a constant of the trace
        w = np.linalg.eig(c)[0]
        return xp.sum(x * float(np.max(np.real(w))))

    expected = np.max(np.real(np.linalg.eig(A)[0]))
    np.testing.assert_allclose(unijax.grad(f)(V), np.full(3, expected))
    assert unijax.jit(lambda x: x + np.asarray(np.asarray(2.0)))(V).shape == (3,)


def test_asarray_of_constant_tracer_still_converts():
    def f(x):
        xp = array_namespace(x)
        c = np.asarray(xp.ones(3))
        return xp.sum(x * xp.asarray(c))

    np.testing.assert_allclose(unijax.grad(f)(V), np.ones(3))


def test_out_argument_is_refused():
    with pytest.raises(ConcretizationError, match="out="):
        unijax.grad(lambda x: np.sum(np.sin(x, out=np.empty(3))))(V)
    with pytest.raises(ConcretizationError, match="out="):
        unijax.grad(lambda x: np.sum(np.sum(x, axis=0, out=np.empty(()))))(A)

    def accumulate(x):
        acc = np.zeros(3)
        acc += x
        return np.sum(acc)

    with pytest.raises(ConcretizationError, match="out="):
        unijax.grad(accumulate)(V)


def test_unsupported_argument_is_refused_naming_it():
    with pytest.raises(ConcretizationError, match="where="):
        unijax.grad(lambda x: np.sum(x, where=x > 0))(V)
    with pytest.raises(ConcretizationError, match="where="):
        unijax.grad(lambda x: np.sum(np.sin(x, where=np.asarray([True, False, True]))))(V)
    with pytest.raises(ConcretizationError, match="initial="):
        unijax.grad(lambda x: np.add.reduce(x, initial=1.0))(V)


def test_ndarray_operators_with_tracers_still_work():
    w = np.asarray([1.0, 2.0, 3.0])

    def f(x):
        return np.sum(w * x + w @ x - (w < x) * x)

    np.testing.assert_allclose(unijax.grad(f)(V), jax.grad(
        lambda x: jnp.sum(w * x + w @ x - (w < x) * x))(V))


# --- torch ---------------------------------------------------------------------------------

TORCH_CASES = [
    ("sin-sum", lambda x: torch.sum(torch.sin(x) * x), lambda x: jnp.sum(jnp.sin(x) * x)),
    ("mean", lambda x: torch.mean(torch.exp(x) + torch.tanh(x)),
     lambda x: jnp.mean(jnp.exp(x) + jnp.tanh(x))),
    ("dim", lambda x: torch.max(torch.sum(torch.cumsum(torch.reshape(x, (3, 1)) * x, 0), dim=1)),
     lambda x: jnp.max(jnp.sum(jnp.cumsum(x[:, None] * x, 0), axis=1))),
    ("operators", lambda x: torch.sum(torch.ones(3, dtype=torch.float64) * x
                                      + 2.0 * torch.div(x, 3.0, rounding_mode=None)),
     lambda x: jnp.sum(x + 2.0 * x / 3.0)),
    ("linalg", lambda x: torch.sum(torch.linalg.vector_norm(torch.stack([x, x * x]), dim=1)),
     lambda x: jnp.sum(jnp.linalg.norm(jnp.stack([x, x * x]), axis=1))),
]


@pytest.mark.parametrize(("name", "f", "f_jax"), TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_torch_functions_on_engine_tracers_match_jax(name, f, f_jax):
    x = torch.tensor(V)
    with unijax.use_backend("torch"):
        value = unijax.jit(f)(x)
        grad = unijax.jit(unijax.grad(f))(x)
    np.testing.assert_allclose(value.numpy(), f_jax(V), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), jax.grad(f_jax)(V), rtol=1e-12)


_W = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
TORCH_AUTOGRAD_CASES = [
    ("sigmoid", lambda x: torch.sum(torch.sigmoid(x))),
    ("tensor-operators", lambda x: torch.sum(_W * x + _W @ x - x / _W + (_W > x) * x)),
    ("reflected", lambda x: torch.sum(2.0 - x + _W ** x)),
    ("transpose", lambda x: torch.sum(torch.transpose(torch.outer(x, _W), 0, 1)[0])),
    ("permute", lambda x: torch.sum(torch.permute(torch.outer(x, _W), (1, 0))[0])),
    ("squeeze", lambda x: torch.sum(torch.squeeze(torch.unsqueeze(x, 0)))),
    ("cat", lambda x: torch.sum(torch.cat([x, _W]) ** 2)),
    ("std", lambda x: torch.std(x)),
    ("clamp", lambda x: torch.sum(torch.clamp(x, min=0.0))),
    ("where", lambda x: torch.sum(torch.where(x > 0, x, _W))),
    ("solve", lambda x: torch.sum(torch.linalg.solve(
        2 * torch.eye(3, dtype=torch.float64) + torch.outer(x, x), _W))),
]


@pytest.mark.parametrize(("name", "f"), TORCH_AUTOGRAD_CASES,
                         ids=[c[0] for c in TORCH_AUTOGRAD_CASES])
def test_torch_functions_on_engine_tracers_match_torch_autograd(name, f):
    x = torch.tensor([0.1, 0.5, -0.3], dtype=torch.float64)
    with unijax.use_backend("torch"):
        grad = unijax.jit(unijax.grad(f))(x)
    leaf = x.clone().requires_grad_(True)
    f(leaf).backward()
    np.testing.assert_allclose(grad.numpy(), leaf.grad.numpy(), rtol=1e-12)


def test_torch_function_without_counterpart_is_refused():
    x = torch.tensor(V)
    with unijax.use_backend("torch"), pytest.raises(ConcretizationError, match=r"torch\.kron"):
        unijax.jit(lambda x: torch.kron(x, x))(x)


def test_torch_function_without_counterpart_runs_on_known_constants():
    def f(x):
        xp = array_namespace(x)
        c = xp.asarray([1.0, 2.0])  # a constant of the trace
        return xp.sum(x * xp.sum(torch.kron(c, c)))

    x = torch.tensor([0.1, 0.5], dtype=torch.float64)
    with unijax.use_backend("torch"):
        grad = unijax.jit(unijax.grad(f))(x)
    np.testing.assert_allclose(grad.numpy(), np.full(2, np.kron([1.0, 2.0], [1.0, 2.0]).sum()))


TORCH_FORMS = [
    ("std-positional", lambda x: torch.std(x, 1, False, True)),
    ("std-unbiased", lambda x: torch.std(x, False)),
    ("var-correction", lambda x: torch.var(x, dim=0, correction=0)),
    ("amax-keepdim", lambda x: torch.amax(x, 1, True)),
    ("max-pair", lambda x: torch.max(x, x * x)),
    ("squeeze-tuple", lambda x: torch.squeeze(x[None], (0, 1))),
    ("sum-dtype", lambda x: torch.sum(x, 0, True)),
    ("cumsum", lambda x: torch.cumsum(x, 1)),
    ("roll", lambda x: torch.roll(x, 1, 1)),
    ("tril", lambda x: torch.tril(x, 1)),
    ("flip", lambda x: torch.flip(x, (0,))),
    ("sub-alpha", lambda x: torch.sub(x, x * x, alpha=2.0)),
    ("div-floor", lambda x: torch.div(x, 0.3, rounding_mode="floor")),
    ("div-trunc", lambda x: torch.div(x, 0.3, rounding_mode="trunc")),
]


@pytest.mark.parametrize(("name", "f"), TORCH_FORMS, ids=[c[0] for c in TORCH_FORMS])
def test_torch_argument_forms_under_jit_match_torch(name, f):
    x = torch.tensor([[0.1, 0.5, 0.3], [1.0, 2.0, -1.0]], dtype=torch.float64)
    with unijax.use_backend("torch"):
        got = unijax.jit(f)(x)
    want = f(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_torch_out_and_unknown_arguments_are_refused():
    x = torch.tensor([0.1, 0.5], dtype=torch.float64)
    with unijax.use_backend("torch"):
        with pytest.raises(ConcretizationError, match="out="):
            unijax.jit(lambda x: torch.sin(x, out=torch.empty(2, dtype=torch.float64)))(x)
        with pytest.raises(ConcretizationError, match=r"torch\.max.*xp\.argmax"):
            unijax.jit(lambda x: torch.max(x, 0))(x)
        with pytest.raises(ConcretizationError, match="decimals=2"):
            unijax.jit(lambda x: torch.round(x, decimals=2))(x)


def test_instance_opts_out_of_ufuncs_so_cupy_and_dask_operators_defer():
    # NumPy finds the protocol on the type; CuPy's and dask's operators ask the instance
    # whether it opts out of ufuncs, and then defer to the tracer's reflected operator.
    def f(x):
        assert x.__array_ufunc__ is None
        assert callable(type(x).__array_ufunc__)
        return array_namespace(x).sum(x * x)

    unijax.grad(f)(V)
    w = unijax.asarray(np.asarray([1.0, 2.0, 3.0]), backend="dask")
    x = unijax.asarray(V, backend="dask")
    grad = unijax.grad(lambda x: array_namespace(x).sum(w * x * x))(x)
    np.testing.assert_allclose(np.asarray(grad.compute()), 2 * np.asarray([1.0, 2.0, 3.0]) * V)
