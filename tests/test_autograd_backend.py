"""The autograd backend: its Array API namespace and its JAX-signature native transforms."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import autograd
import autograd.numpy as anp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import tree_util
from unijax.dispatch.plugins import get_backend
from unijax.errors import NonScalarOutputError, UnsupportedTransformError

jax.config.update("jax_enable_x64", True)  # a float64 reference

backend = get_backend("autograd")
xp = backend.namespace
native = backend.native_transforms
JNP = get_backend("jax").namespace

rng = np.random.default_rng(0)
X = rng.uniform(0.2, 0.9, size=(3, 3))


def spd(ns: Any, x: Any) -> Any:
    return ns.matmul(x, ns.matrix_transpose(x)) + 3.0 * ns.eye(3)


# Each case is written once against the standard and run with both namespaces.
CASES: dict[str, Any] = {
    "elementwise": lambda ns, x: ns.sum(ns.sin(x) * ns.acos(x) + ns.pow(x, 3.0)
                                        + ns.atan2(x, 2.0) + ns.expm1(x) + ns.log1p(x)
                                        + ns.logaddexp(x, 1.0) + ns.hypot(x, 2.0)
                                        + ns.copysign(x, -1.0) + ns.positive(x)),
    "concat": lambda ns, x: ns.sum(ns.concat([x, 2.0 * x], axis=1) ** 2)
    + ns.sum(ns.concat([x, x], axis=None)),
    "stack_unstack": lambda ns, x: ns.sum(ns.stack(ns.unstack(x, axis=1), axis=0) * X),
    "permute": lambda ns, x: ns.sum(ns.permute_dims(x, (1, 0)) * X)
    + ns.sum(ns.matrix_transpose(x) * X) + ns.sum(ns.moveaxis(x, 0, 1) * X),
    "stats": lambda ns, x: ns.std(x, correction=1) + ns.sum(ns.var(x, axis=0))
    + ns.mean(x, axis=1, keepdims=True)[0, 0],
    "reductions": lambda ns, x: ns.sum(ns.prod(x, axis=(0, 1))) + ns.prod(x[0])
    + ns.max(x) + ns.min(x, axis=0)[1] + ns.sum(x, dtype=ns.float64),
    "cumulative": lambda ns, x: ns.sum(ns.cumulative_sum(x, axis=1, include_initial=True)
                                       ** 2),
    "shape": lambda ns, x: ns.sum(ns.flip(x, axis=0) * X)
    + ns.sum(ns.roll(x, (1, 2), axis=(0, 1)) * X) + ns.sum(ns.reshape(x, (9,)) ** 2)
    + ns.sum(ns.broadcast_to(x, (2, 3, 3))) + ns.sum(ns.expand_dims(x, axis=0) ** 3)
    + ns.sum(ns.squeeze(x[:1], axis=0)) + ns.sum(ns.tile(x, (2, 1)) ** 2)
    + ns.sum(ns.repeat(x, 2, axis=0) ** 2),
    "indexing": lambda ns, x: ns.sum(ns.take(x, ns.asarray([2, 0]), axis=1) ** 2)
    + ns.sum(ns.take_along_axis(x, ns.argsort(x, axis=1), axis=1) * X)
    + ns.sum(ns.sort(x, axis=0, descending=True) * X)
    + ns.sum(ns.where(x > 0.5, x ** 2, -x)) + ns.sum(ns.clip(x, 0.3, 0.7)),
    "creation": lambda ns, x: ns.sum(ns.full_like(x, 2.0) * x)
    + ns.sum(ns.asarray([x[0, 0], x[1, 1]]) ** 2) + ns.sum(ns.astype(x, ns.float32) * 1.0)
    + ns.sum(ns.meshgrid(x[0], x[1])[1] * ns.meshgrid(x[0], x[1])[0]),
    "products": lambda ns, x: ns.sum(ns.vecdot(x, X)) + ns.sum(ns.tensordot(x, X, axes=1))
    + ns.sum(ns.matmul(x, x)) + ns.sum(ns.linalg.outer(x[0], x[1])),
    "linalg": lambda ns, x: ns.linalg.det(spd(ns, x)) + ns.sum(ns.linalg.inv(spd(ns, x)))
    + ns.sum(ns.linalg.solve(spd(ns, x), x[0])) + ns.sum(ns.linalg.cholesky(spd(ns, x)))
    + ns.sum(ns.linalg.eigvalsh(spd(ns, x))) + ns.linalg.slogdet(spd(ns, x))[1]
    + ns.linalg.trace(x) + ns.sum(ns.linalg.diagonal(x)),
    "norms": lambda ns, x: ns.linalg.vector_norm(x) + ns.linalg.vector_norm(x, ord=3, axis=1)[0]
    + ns.linalg.matrix_norm(x) + ns.sum(ns.linalg.svdvals(x))
    + ns.sum(ns.linalg.matrix_power(x, 3)) + ns.sum(ns.linalg.pinv(x)),
    "fft": lambda ns, x: ns.sum(ns.abs(ns.fft.rfft(x[:, :2], axis=1)) ** 2)
    + ns.sum(ns.real(ns.fft.ifft(ns.fft.fft(x))) * X),
}


@pytest.mark.parametrize("name", list(CASES))
def test_namespace_gradients_match_jax(name):
    case = CASES[name]
    got = native.grad(lambda x: case(xp, x))(X)
    want = jax.jit(jax.grad(lambda x: case(jnp, x)))(jnp.asarray(X))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-7, atol=1e-9)


def test_array_namespace_of_a_box_is_the_autograd_namespace():
    seen = []

    def f(x):
        seen.append(array_namespace(x))
        return xp.sum(x)

    autograd.grad(f)(np.ones(2))
    assert seen == [xp]
    assert array_namespace(np.ones(2)).__name__ == "array_api_compat.numpy"


def test_non_differentiable_functions_work_on_boxes():
    def f(x):
        i = xp.argmax(x)
        mask = xp.astype(xp.isnan(x) | xp.equal(x, 0.0), xp.float64)
        return x[i] * 3.0 + xp.sum(xp.floor(x)) + xp.sum(mask)

    np.testing.assert_allclose(native.grad(f)(np.asarray([0.5, 2.5, 1.0])), [0.0, 3.0, 0.0])


def test_function_autograd_cannot_differentiate_raises_instead_of_lying():
    with pytest.raises(NotImplementedError, match="nextafter"):
        native.grad(lambda x: xp.sum(xp.nextafter(x, 2.0)))(np.ones(3))


def test_namespace_is_array_api_shaped():
    assert xp.__array_api_version__ == "2024.12"
    assert xp.__array_namespace_info__().default_dtypes()["real floating"] == np.float64
    assert int(xp.sum(xp.arange(4))) == 6
    assert xp.linalg.vector_norm(xp.asarray([3.0, 4.0])) == 5.0


# --- native transforms with JAX's signatures --------------------------------------------


@tree_util.register_dataclass
@dataclasses.dataclass
class Layer:
    w: Any
    b: Any
    name: str = dataclasses.field(default="l", metadata={"static": True})


def loss(params: Any, x: Any) -> Any:
    return xp.sum(xp.tanh(x @ params["w"] + params["b"]) ** 2)


def jloss(params: Any, x: Any) -> Any:
    return jnp.sum(jnp.tanh(x @ params["w"] + params["b"]) ** 2)


PARAMS = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}


def test_grad_argnums_int_matches_autograd():
    f = lambda x: xp.sum(xp.sin(x) ** 2)  # noqa: E731
    np.testing.assert_allclose(native.grad(f)(X), autograd.grad(f)(X))


def test_grad_of_pytree_and_tuple_argnums_match_jax():
    got = native.grad(loss)(PARAMS, X)
    want = jax.grad(jloss)(PARAMS, X)
    assert set(got) == {"w", "b"}
    for k in got:
        np.testing.assert_allclose(got[k], want[k])
    g_params, g_x = native.grad(loss, argnums=(0, 1))(PARAMS, X)
    np.testing.assert_allclose(g_x, jax.grad(jloss, argnums=1)(PARAMS, X))
    np.testing.assert_allclose(g_params["b"], want["b"])


def test_grad_of_registered_dataclass():
    layer = Layer(w=np.ones(2), b=0.5, name="dense")
    g = native.grad(lambda p: xp.sum(p.w ** 2) * p.b)(layer)
    assert isinstance(g, Layer) and g.name == "dense"
    np.testing.assert_allclose(g.w, [1.0, 1.0])
    assert g.b == pytest.approx(2.0)


def test_grad_has_aux_returns_plain_aux():
    def f(x):
        y = xp.sin(x)
        return xp.sum(y), {"y": y}

    g, aux = native.grad(f, has_aux=True)(X)
    assert type(aux["y"]) is np.ndarray
    np.testing.assert_allclose(g, np.cos(X))
    (value, aux2), g2 = native.value_and_grad(f, has_aux=True)(X)
    assert value == pytest.approx(np.sin(X).sum()) and type(aux2["y"]) is np.ndarray
    np.testing.assert_allclose(g2, g)


def test_value_and_grad_returns_value_and_grad():
    value, g = native.value_and_grad(loss)(PARAMS, X)
    assert value == pytest.approx(float(jloss(PARAMS, X)))
    np.testing.assert_allclose(g["w"], jax.grad(jloss)(PARAMS, X)["w"])


def test_second_order_grad():
    d2 = native.grad(native.grad(lambda x: xp.sin(x)))(0.3)
    assert d2 == pytest.approx(-np.sin(0.3))


def test_grad_of_non_scalar_output_raises():
    with pytest.raises(NonScalarOutputError, match="real scalar output") as info:
        native.grad(lambda x: x * 2.0, argnums=(0,))(np.ones(3))
    assert isinstance(info.value, TypeError)


def test_vjp_matches_jax_with_pytree_output_and_aux():
    def f(x, y):
        return {"a": xp.sin(x) * y, "b": xp.sum(x)}, "aux"

    def jf(x, y):
        return {"a": jnp.sin(x) * y, "b": jnp.sum(x)}, "aux"

    out, vjp_fn, aux = native.vjp(f, X, 2.0, has_aux=True)
    jout, jvjp_fn, jaux = jax.vjp(jf, X, 2.0, has_aux=True)
    assert aux == jaux == "aux"
    np.testing.assert_allclose(out["a"], jout["a"])
    ct = {"a": np.ones((3, 3)), "b": 1.0}
    got, want = vjp_fn(ct), jvjp_fn(ct)
    assert len(got) == 2
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(np.ones(3))


def test_jacrev_matches_jax():
    f = lambda x, y: xp.sin(x) * y  # noqa: E731
    np.testing.assert_allclose(native.jacrev(f)(X, 2.0),
                               jax.jacrev(lambda x, y: jnp.sin(x) * y)(X, 2.0))
    got = native.jacrev(loss)(PARAMS, X)
    want = jax.jacrev(jloss)(PARAMS, X)
    assert got["w"].shape == want["w"].shape == (3, 2)
    jac_xy = native.jacrev(lambda x, y: {"o": x * y}, argnums=(0, 1))(np.ones(2), 3.0)
    assert jac_xy["o"][0].shape == (2, 2) and jac_xy["o"][1].shape == (2,)


def _best_seconds(fn: Any, arg: Any, number: int, repeat: int = 9) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def test_grad_adapter_overhead_is_within_five_percent_of_autograd(monkeypatch):
    # The adapter's own cost is measured against a do-nothing stand-in for autograd.grad's
    # result (wall-clock ratios of two ~50 us calls are too noisy on a shared machine).
    f = lambda x: anp.sum(anp.sin(x) * x)  # noqa: E731
    x = np.ones(16)
    per_call = _best_seconds(autograd.grad(f), x, 200)

    def inner(x: Any) -> Any:
        return x

    monkeypatch.setattr(autograd, "grad", lambda fun, argnum=0: inner)
    adapted = native.grad(f)
    assert adapted(x) is x  # it went through the stand-in
    overhead = _best_seconds(adapted, x, 20000) - _best_seconds(inner, x, 20000)
    assert overhead <= 0.05 * per_call, (overhead, per_call)


# --- constants on the tape --------------------------------------------------------------------

_vjp_calls: dict[str, int] = {}


@autograd.extend.primitive
def _scaled(data, weight):
    return data * weight


def _data_vjp(ans, data, weight):
    _vjp_calls["data"] = _vjp_calls.get("data", 0) + 1
    return lambda g: g * weight


def _weight_vjp(ans, data, weight):
    _vjp_calls["weight"] = _vjp_calls.get("weight", 0) + 1
    return lambda g: g * data


autograd.extend.defvjp(_scaled, _data_vjp, _weight_vjp)


def test_grad_computes_no_cotangent_towards_constant_data():
    import unijax

    def loss(params, data):
        # array_namespace sees data too: it is boxed next to params, as a constant
        ns = array_namespace(params["w"], data)
        return ns.sum(_scaled(data, params["w"]) ** 2)

    data = np.linspace(0.5, 1.5, 4)
    params = {"w": np.linspace(-1.0, 1.0, 4)}
    _vjp_calls.clear()
    got = unijax.grad(loss, backend="autograd")(params, data)
    np.testing.assert_allclose(got["w"], 2 * data**2 * params["w"], rtol=1e-14)
    assert _vjp_calls == {"weight": 1}


def test_values_computed_from_constants_only_record_no_vjp():
    import unijax

    def loss(params, data):
        ns = array_namespace(params["w"], data)
        return ns.sum(_scaled(data, data) * params["w"])  # data * data: constants only

    data = np.asarray([3.0, 1.0, 2.0])
    params = {"w": np.asarray([1.0, 2.0, 3.0])}
    _vjp_calls.clear()
    got = unijax.grad(loss, backend="autograd")(params, data)
    np.testing.assert_allclose(got["w"], data**2, rtol=1e-15)
    assert _vjp_calls == {}


# --- Array-API library code: device, in-place writes, integer arguments --------------------


def _finite_differences(f: Any, x: np.ndarray, *args: Any, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f(x, *args)``, run eagerly on NumPy."""
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        out[i] = (float(f(x + step, *args)) - float(f(x - step, *args))) / (2 * eps)
    return out


def _check_gradient(f: Any, x: np.ndarray, *args: Any, engine: Any = True) -> np.ndarray:
    """unijax.grad on Autograd against the numpy backend's engine and finite differences.

    ``engine``: False to skip the engine, or another function whose engine gradient is
    the reference (the same mathematics written so that the engine can run it).
    """
    import unijax

    got = unijax.grad(f, backend="autograd")(x, *args)
    assert type(got) is np.ndarray and got.shape == x.shape
    if engine is not False:
        reference = f if engine is True else engine
        np.testing.assert_allclose(got, unijax.grad(reference, backend="numpy")(x, *args),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, _finite_differences(f, x, *args), rtol=1e-6, atol=1e-7)
    return got


XW = np.asarray([0.3, -1.2, 0.8, 2.0])


def test_box_reports_its_device():
    from array_api_compat import device

    def f(x):
        ns = array_namespace(x)
        assert x.device == "cpu" and device(x) == "cpu"
        assert x.to_device("cpu") is x
        y = ns.zeros(x.shape[0], dtype=x.dtype, device=device(x))
        return ns.sum((y + x) ** 2) + ns.sum(ns.ones_like(x, device=x.device) * x)

    _check_gradient(f, XW)
    with pytest.raises(ValueError, match="CPU"):
        native.grad(lambda x: xp.sum(x.to_device("gpu")))(XW)


def test_box_has_the_matrix_transpose_attribute():
    m = X[:2]
    _check_gradient(lambda x: array_namespace(x).sum(x.mT * m.mT), m)


def test_write_into_a_box():
    def f(x):
        ns = array_namespace(x)
        y = x * 1.0
        y[0] = 5.0  # overwritten: no derivative towards x[0] through y
        y[1:3] = y[1:3] * x[3]
        y[-1] += ns.sum(x)  # read, then write
        return ns.sum(y**2)

    g = _check_gradient(f, XW)
    assert g[0] == pytest.approx(2 * (XW[3] + XW.sum()))  # only through the += of the sum


def test_write_into_a_box_leaves_other_references_to_its_value():
    def f(x):
        ns = array_namespace(x)
        y = x * 2.0
        z = ns.asarray(y, copy=True)  # another object: writes to y do not reach it
        alias = y  # the same object: it sees the write, as with NumPy
        y[1] = x[0] ** 3
        assert alias is y
        return ns.sum(z * alias)

    _check_gradient(f, XW)


def _filled(y: Any) -> Any:
    y[...] = 1.5  # a plain value written into a created array: it stays a constant
    return y


CREATED: dict[str, Any] = {
    "zeros": lambda ns, x: ns.zeros(6),
    "ones": lambda ns, x: ns.ones((6,), dtype=ns.float64),
    "full": lambda ns, x: ns.full(6, 0.5),
    "empty": lambda ns, x: _filled(ns.empty(6)),
    "asarray": lambda ns, x: ns.asarray([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
    "arange": lambda ns, x: ns.arange(6.0),
    "linspace": lambda ns, x: ns.linspace(0.0, 1.0, 6),
    "eye": lambda ns, x: ns.eye(6)[2],
    "zeros_like": lambda ns, x: ns.zeros_like(ns.concat([x, x[:2]])),
    "ones_like": lambda ns, x: ns.ones_like(ns.concat([x, x[:2]])),
    "empty_like": lambda ns, x: _filled(ns.empty_like(ns.concat([x, x[:2]]))),
    "full_like": lambda ns, x: ns.full_like(ns.concat([x, x[:2]]), 2.0),
}


def _write_into(make: Any) -> Any:
    def f(x):
        ns = array_namespace(x)
        y = make(ns, x)
        y[0] = x[0]
        y[2:4] = x[1:3] * x[3]
        y[5] = ns.sin(x[3])
        return ns.sum(y**2) + ns.sum(y[1:])

    return f


@pytest.mark.parametrize("name", list(CREATED))
def test_write_a_box_into_a_created_array(name):
    g = _check_gradient(_write_into(CREATED[name]), XW)
    assert np.all(g != 0.0)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "full_like"])
def test_write_a_box_into_an_array_created_like_a_plain_one(name):
    # The engine cannot write a tracer into xp.ones_like(plain) (NumPy calls float() on
    # it); its reference is the same function creating like a traced array.
    plain = np.full(6, 7.0)

    def like(ns, x):
        return getattr(ns, name)(plain, *([2.0] if name == "full_like" else []))

    boxed = CREATED[name]
    g = _check_gradient(_write_into(like if name != "empty_like" else
                                    lambda ns, x: _filled(like(ns, x))), XW,
                        engine=_write_into(boxed))
    assert np.all(g != 0.0)


def test_created_arrays_take_boxes_on_every_path():
    # grad of one array goes through autograd.grad itself; other array arguments through
    # the adapter's own trace (constants boxed); vjp and jacrev too.
    import unijax

    def f(x, w):
        ns = array_namespace(x)
        y = ns.zeros(2)
        y[1] = ns.sum(x * w)
        return ns.sum(y * y)

    w = np.asarray([1.0, 2.0, 3.0, 4.0])
    want = 2 * np.sum(XW * w) * w
    np.testing.assert_allclose(native.grad(lambda x: f(x, w))(XW), want)
    np.testing.assert_allclose(unijax.grad(f, backend="autograd")(XW, w), want)
    _, vjp_fn = native.vjp(f, XW, w)
    np.testing.assert_allclose(vjp_fn(1.0)[0], want)
    np.testing.assert_allclose(native.jacrev(f)(XW, w), want)


def test_created_arrays_are_plain_outside_any_trace():
    for name, make in CREATED.items():
        y = make(xp, XW)
        assert type(y) is np.ndarray, name
    assert type(xp.asarray(2.0)) is np.ndarray
    assert type(xp.zeros(3, dtype=xp.int64)) is np.ndarray
    # ... and under a trace this plugin did not start (autograd's own forward mode)
    from autograd.differential_operators import make_jvp

    seen = []

    def f(x):
        seen.append(type(xp.zeros(2)))
        return x * 2.0

    make_jvp(f)(1.0)(1.0)
    assert seen == [np.ndarray]


def test_integer_and_boolean_creations_stay_plain_under_grad():
    def f(x):
        idx = xp.arange(2)
        mask = xp.zeros(4, dtype=xp.bool)
        assert type(idx) is np.ndarray and type(mask) is np.ndarray
        mask[1] = True
        return xp.sum(x[idx]) + xp.sum(xp.where(mask, x, 0.0))

    np.testing.assert_allclose(native.grad(f)(XW), [1.0, 2.0, 0.0, 0.0])


SETITEM_KEYS: dict[str, Any] = {
    # name: (key, value made from x)
    "int": (1, lambda ns, x: x[0] * x[1]),
    "negative": (-1, lambda ns, x: ns.exp(x[0])),
    "slice_broadcast_scalar": (slice(1, 4), lambda ns, x: x[0] ** 2),
    "step_slice": (slice(None, None, 2), lambda ns, x: x[1:3] * 2.0),
    "column": ((slice(None), 0), lambda ns, x: x * x[0]),
    "row_broadcast": ((slice(1, 3), slice(None)), lambda ns, x: x[1:3] * 2.0),
    "int_array_pair": ((np.asarray([0, 3]), np.asarray([1, 0])), lambda ns, x: x[:2] ** 2),
    "int_array": (np.asarray([3, 0]), lambda ns, x: x[1:3] ** 2),
    "int_array_duplicates": (np.asarray([2, 2, 0]), lambda ns, x: x[:3] * x[3]),
    "duplicates_broadcast": (np.asarray([1, 1]), lambda ns, x: ns.sin(x[2])),
    "int_list": ([0, 2], lambda ns, x: x[2:] * 3.0),
    "bool_mask": (np.asarray([True, False, True, False]), lambda ns, x: x[1:3] ** 3),
    "mask_broadcast": (np.asarray([False, True, True, True]), lambda ns, x: x[0] * 2.0),
    "ellipsis": (Ellipsis, lambda ns, x: x[::-1] * x[0]),
    "value_leading_ones": (slice(0, 2), lambda ns, x: ns.reshape(x[2:], (1, 2))),
}


# The engine of the numpy backend differs from NumPy (and from finite differences) on
# these: it sums the cotangents of values written twice to one element, where NumPy keeps
# one write; and it refuses a value with more leading length-1 axes than the selection.
ENGINE_DIFFERS = {"int_array_duplicates", "duplicates_broadcast", "value_leading_ones"}


@pytest.mark.parametrize("name", list(SETITEM_KEYS))
def test_setitem_gradient_for_each_kind_of_key(name):
    key, value = SETITEM_KEYS[name]

    def f(x):
        ns = array_namespace(x)
        y = ns.stack([x, x**2], axis=1) if isinstance(key, tuple) else x * 1.0  # 2-D: (4, 2)
        y[key] = value(ns, x)
        weights = ns.reshape(ns.arange(1.0, 1.0 + math.prod(y.shape)), y.shape)
        return ns.sum(ns.sin(y) * weights)

    _check_gradient(f, XW, engine=name not in ENGINE_DIFFERS)


def test_setitem_into_a_plain_argument_array_under_grad():
    # the other arrays of a call are boxed as constants: they accept boxes too
    def f(x, buf):
        ns = array_namespace(x, buf)
        buf[1] = x[0] * x[1]
        return ns.sum(buf**2)

    import unijax

    buf = np.asarray([1.0, 2.0, 3.0])
    unijax.grad(f, backend="autograd")(XW, buf)
    np.testing.assert_array_equal(buf, [1.0, 2.0, 3.0])  # the caller's array is untouched
    _check_gradient(f, XW, buf)


def test_setitem_second_order():
    def f(x):
        y = xp.zeros(2)
        y[0] = x**3
        y[1] = xp.sin(x)
        return xp.sum(y * y)

    d2 = native.grad(native.grad(f))(0.7)
    want = 30 * 0.7**4 + 2 * np.cos(2 * 0.7)
    assert d2 == pytest.approx(want, rel=1e-12)


def test_setitem_forward_mode():
    from autograd.differential_operators import make_jvp

    def f(x):
        y = x * 1.0
        y[1:] = x[:2] ** 2
        return y

    x = np.asarray([1.0, 2.0, 3.0])
    _, tangent = make_jvp(f)(x)(np.asarray([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(tangent, [1.0, 2.0, 4.0])


def test_write_of_a_value_from_a_nested_trace_raises():
    outer = {}

    def inner(x):
        outer["y"][0] = x[0]  # y belongs to the outer trace
        return xp.sum(x)

    def f(x):
        outer["y"] = x * 1.0
        native.grad(inner)(x * 2.0)
        return xp.sum(outer["y"])

    # The engine's class for a write into an array of an enclosing transform.
    with pytest.raises(UnsupportedTransformError, match="cannot update x in place"):
        native.grad(f)(XW)


# --- integer and boolean arguments ---------------------------------------------------------


def test_array_namespace_of_a_box_and_integer_arguments_is_one_namespace():
    import unijax

    def f(x, idx, mask):
        ns = array_namespace(x)
        assert array_namespace(x, idx, mask) is ns
        assert array_namespace(idx, mask, x) is ns  # whatever comes first
        return ns.sum(x[idx]) + ns.sum(x[mask])

    idx, mask = np.asarray([0, 3]), np.asarray([True, False, True, False])
    _check_gradient(f, XW, idx, mask)
    seen = []
    unijax.grad(lambda x, i: seen.append(array_namespace(i, x)) or xp.sum(x),
                backend="autograd")(XW, idx)
    assert seen == [xp]


def test_integer_and_boolean_arguments_behave_as_integer_arrays():
    # Library code on index and mask arguments: scalars out of them, Python integers,
    # operators without a derivative, tuple keys, counts.
    def f(x, idx, mask):
        ns = array_namespace(x, idx, mask)
        n = int(ns.max(idx)) + 1
        first = idx[0]
        parts = [x[j] for j in range(n)]
        m = ns.reshape(x, (2, 2))
        return (ns.sum(ns.stack(parts)) + x[first] + [x[0], x[1]][idx[-1] // 2]
                + ns.sum(x[~mask]) + ns.sum(x[mask & (idx[0] == 0)]) + ns.sum(x[mask | mask])
                + ns.sum(x[mask ^ ~mask]) + ns.sum(mask) * x[1]
                + ns.sum(m[idx // 2, 0]) + ns.sum(m[idx[:1] // 2, :]) + float(first) * x[2]
                + ns.sum(idx << 1) * x[3] + ns.sum(x[idx >> 1]))

    idx, mask = np.asarray([0, 3]), np.asarray([True, False, True, False])
    _check_gradient(f, XW, idx, mask)


_int_vjp_calls: dict[str, int] = {}


@autograd.extend.primitive
def _gather(values, index):
    return values[index]


def _gather_vjp(ans, values, index):
    def vjp(g):
        out = np.zeros_like(values)
        np.add.at(out, index, g)
        return out
    return vjp


def _gather_index_vjp(ans, values, index):
    _int_vjp_calls["index"] = _int_vjp_calls.get("index", 0) + 1
    return lambda g: np.zeros(np.shape(index))


autograd.extend.defvjp(_gather, _gather_vjp, _gather_index_vjp)


def test_no_vjp_is_built_towards_integer_arguments():
    import unijax

    def f(x, idx):
        ns = array_namespace(x, idx)
        return ns.sum(_gather(x, idx + 1) ** 2)

    _int_vjp_calls.clear()
    g = unijax.grad(f, backend="autograd")(XW, np.asarray([0, 0, 2]))
    np.testing.assert_allclose(g, [0.0, 4 * XW[1], 0.0, 2 * XW[3]])
    assert _int_vjp_calls == {}


def test_arraybox_is_completed_once_and_only_by_the_plugin():
    import subprocess
    import sys

    import unijax_autograd.namespace as namespace
    from autograd.numpy.numpy_boxes import ArrayBox

    raw = ArrayBox._unijax_raw_getitem
    namespace._install()  # again: nothing is wrapped twice
    assert ArrayBox._unijax_raw_getitem is raw and getattr(raw, "_is_autograd_primitive", 0)
    np.testing.assert_allclose(native.grad(lambda x: x[0] * x[1])(XW), [XW[1], XW[0], 0, 0])
    # `import unijax` (and loading autograd) leaves autograd's classes alone
    code = ("import unijax, autograd.numpy; from autograd.numpy.numpy_boxes import ArrayBox; "
            "print(any(hasattr(ArrayBox, a) for a in ('device', '__setitem__', '__index__')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("make", [
    lambda xp, x: xp.sum(xp.ones_like(x)),
    lambda xp, x: xp.sum(xp.zeros(3) + 2.0),
    lambda xp, x: xp.sum(xp.asarray([1.0, 2.0]) * 3.0),
], ids=["ones_like", "zeros", "asarray"])
def test_grad_of_an_output_made_from_constants_is_zero(make):
    # The output is boxed (made by the namespace on the trace) but independent of x:
    # autograd's own backward pass would hand back the seed as the gradient.
    def f(x):
        return make(array_namespace(x), x)

    x = np.ones(3)
    np.testing.assert_array_equal(unijax.grad(f, backend="autograd")(x), np.zeros(3))
    np.testing.assert_array_equal(unijax.grad(f, backend="numpy")(x), np.zeros(3))


# --- values derived from boxes: one namespace -----------------------------------------------


DERIVED: dict[str, Any] = {
    "comparison": lambda ns, x: x > 0.5,
    "reflected_comparison": lambda ns, x: 0.5 >= x,
    "equal": lambda ns, x: x == x[0],
    "invert": lambda ns, x: ~(x > 0.5),
    "and": lambda ns, x: (x > 0.0) & (x < 1.0),
    "floor_divide": lambda ns, x: x // 2.0,
    "isnan": lambda ns, x: ns.isnan(x),
    "argmax": lambda ns, x: ns.argmax(x),
    "all": lambda ns, x: ns.all(x > -5.0),
    "any_method": lambda ns, x: (x > 0.5).any(),
    "argsort_method": lambda ns, x: x.argsort(),
    "count": lambda ns, x: ns.sum(x > 0.5),
    "nonzero": lambda ns, x: ns.nonzero(x > 0.5)[0],
    "unique": lambda ns, x: ns.unique_values(ns.floor(x)),
    "where_of_plain": lambda ns, x: ns.where(x > 0.5, 1.0, 0.0),
    "norm_0": lambda ns, x: ns.linalg.vector_norm(x, ord=0),
}


@pytest.mark.parametrize("name", list(DERIVED))
def test_array_namespace_of_values_derived_from_boxes(name):
    # Library code takes the namespace of a mask or an index next to the array it came
    # from (array_namespace(x > 0, x)), in either order.
    seen = []

    def f(x):
        ns = array_namespace(x)
        d = DERIVED[name](ns, x)
        seen.append((array_namespace(d, x), array_namespace(x, d)))
        return ns.sum(x * x)

    native.grad(f)(XW)
    unijax.grad(f, backend="autograd")(XW, )
    native.grad(lambda x, w: f(x) * w, argnums=(0, 1))(XW, 2.0)
    assert seen == [(xp, xp)] * 3


def test_masks_and_indices_from_boxes_give_jaxs_gradient():
    def f(ns, x, data):
        mask = x > 0.5
        weight = ns.astype(mask, x.dtype) + ns.astype(0.0 >= x, x.dtype) * 0.5
        i = ns.argmax(x)
        picked = x[i] * ns.sum(x > 0.0) + x[ns.argmin(x)] * x[ns.nonzero(mask)[0][0]]
        shifted = ns.where(~mask, data, x) * ns.where(mask & (x < 1.5), x, 0.25)
        return ns.sum(weight * x ** 2) + picked + ns.sum(shifted) + ns.max(
            ns.concat([x, data])) * ns.sum(ns.stack([data, x]))

    data = np.asarray([0.1, 0.4, -0.2, 1.0])

    def ours(x):
        return f(array_namespace(x > 0.5, x), x, data)

    want = jax.grad(lambda x: f(JNP, x, jnp.asarray(data)))(jnp.asarray(XW))
    np.testing.assert_allclose(unijax.grad(ours, backend="autograd")(XW), want, rtol=1e-12)
    np.testing.assert_allclose(native.grad(ours)(XW), want, rtol=1e-12)
    _check_gradient(ours, XW)


def test_masks_and_indices_from_boxes_under_second_order_match_jax():
    def f(ns, x):
        mask = x > 0.2
        return (ns.sum(ns.where(mask, x ** 3, x ** 2))
                + x[ns.argmax(x)] ** 3 * ns.sum(ns.astype(mask, x.dtype)))

    def ours(x):
        return f(array_namespace(x > 0.2, x), x)

    want = jax.hessian(lambda x: f(JNP, x))(jnp.asarray(XW))
    with unijax.use_backend("autograd"):
        np.testing.assert_allclose(unijax.jacrev(unijax.grad(ours))(XW), want, rtol=1e-12)
        np.testing.assert_allclose(unijax.hessian(ours)(XW), want, rtol=1e-12)


def test_namespace_takes_mixes_of_boxes_arrays_and_numpy_scalars():
    data, scale = np.asarray([0.5, -1.0, 2.0, 0.3]), np.float64(0.25)

    def f(ns, x):
        return ns.sum(ns.where(data > 0, x, scale) * ns.maximum(x, scale)
                      + ns.clip(x, scale, 1.5) * ns.pow(scale, x) + ns.matmul(data, x)
                      + ns.concat([x, data, ns.asarray([scale])])[1:5] * x
                      + ns.broadcast_arrays(x, data)[1] * ns.add(scale, x))

    want = jax.grad(lambda x: f(JNP, x))(jnp.asarray(XW))
    np.testing.assert_allclose(unijax.grad(lambda x: f(xp, x), backend="autograd")(XW), want,
                               rtol=1e-12)


@pytest.mark.parametrize("scalar", [np.float64(2.5), np.int64(3), np.bool_(True)],
                         ids=["float64", "int64", "bool"])
def test_numpy_scalar_arguments_share_the_namespace_of_boxes(scalar):
    def f(ns, x, s):
        return ns.sum(ns.sin(x) * s + x * x)

    def ours(x, s):
        return f(array_namespace(s, x), x, s) + f(array_namespace(x, s), x, s)

    want = jax.grad(lambda x: 2 * f(JNP, x, scalar))(jnp.asarray(XW))
    np.testing.assert_allclose(unijax.grad(ours, backend="autograd")(XW, scalar), want,
                               rtol=1e-14)
    np.testing.assert_allclose(native.jacrev(ours)(XW, scalar), want, rtol=1e-14)


def test_output_made_only_from_a_mask_has_zero_gradient():
    # The mask is a constant box: a result made from it alone carries no derivative.
    def f(x):
        ns = array_namespace(x)
        return ns.sum(ns.astype(x > 0.5, x.dtype))

    for grad in (native.grad, lambda g: unijax.grad(g, backend="autograd")):
        np.testing.assert_array_equal(grad(f)(XW), np.zeros(4))


def test_derived_values_stay_plain_outside_this_plugins_traces():
    seen = []

    def f(x):
        seen.append((type(x > 0), type(xp.argmax(x)), type(xp.isnan(x))))
        return xp.sum(x * x)

    f(XW)
    autograd.grad(f)(XW)  # autograd's own grad: no constant boxes on its trace
    assert seen == [(np.ndarray, np.int64, np.ndarray)] * 2


# --- the special extension --------------------------------------------------------------------

POS = np.asarray([0.3, 1.1, 2.5, 4.0])
PROB = np.asarray([0.05, 0.3, 0.6, 0.95])

SPECIAL: dict[str, Any] = {
    # name: (function of (ns.special, args), args, argnums to differentiate)
    "erf": (lambda s, x: s.erf(x), (XW,), (0,)),
    "ndtr": (lambda s, x: s.ndtr(x), (XW,), (0,)),
    "log_ndtr": (lambda s, x: s.log_ndtr(x), (np.asarray([-25.0, -3.0, 0.6, 6.0]),), (0,)),
    "ndtri": (lambda s, p: s.ndtri(p), (PROB,), (0,)),
    "erfinv": (lambda s, p: s.erfinv(2.0 * p - 1.0), (PROB,), (0,)),
    "gammaln": (lambda s, x: s.gammaln(x), (POS,), (0,)),
    "psi": (lambda s, x: s.psi(x), (POS,), (0,)),
    "polygamma": (lambda s, x: s.polygamma(2, x), (POS,), (0,)),
    "gammainc": (lambda s, a, x: s.gammainc(a, x), (POS[::-1], POS), (0, 1)),
    "betainc": (lambda s, x: s.betainc(2.0, 3.0, x), (PROB,), (0,)),
    "xlogy": (lambda s, x, y: s.xlogy(x, y), (XW, POS), (0, 1)),
    "expit_logit": (lambda s, p: s.expit(s.logit(p)) * s.logit(p), (PROB,), (0,)),
    "i1e": (lambda s, x: s.i1e(x), (XW,), (0,)),
    "multigammaln": (lambda s, x: s.multigammaln(x, 3), (POS + 1.5,), (0,)),
    "rel_entr": (lambda s, x, y: s.rel_entr(x, y) + s.kl_div(x, y) + s.entr(x), (POS, PROB),
                 (0, 1)),
}
JAX_SPECIAL_NAMES = {"psi": "digamma"}


def _jax_special() -> Any:
    import types

    import jax.scipy.special as jsp

    return types.SimpleNamespace(**{n: getattr(jsp, JAX_SPECIAL_NAMES.get(n, n)) for n in (
        "erf ndtr log_ndtr ndtri erfinv gammaln psi polygamma gammainc betainc "
        "xlogy expit logit i1e multigammaln rel_entr kl_div entr").split()})


@pytest.mark.parametrize("name", list(SPECIAL))
def test_special_extension_matches_the_engine_and_jax(name):
    fun, args, argnums = SPECIAL[name]
    jsp = _jax_special()

    def total(*a):
        ns = array_namespace(a[0])
        return ns.sum(fun(ns.special, *a) * np.arange(1.0, 5.0))

    def jax_total(*a):
        return jnp.sum(fun(jsp, *a) * jnp.arange(1.0, 5.0))

    import scipy.special

    value = fun(xp.special, *args)
    np.testing.assert_allclose(value, fun(scipy.special, *args), rtol=1e-13, atol=1e-15)
    # JAX's own algorithms agree to about 1e-8 in the tails (log_ndtr(6) ~ -1e-9).
    np.testing.assert_allclose(value, np.asarray(fun(jsp, *map(jnp.asarray, args))),
                               rtol=1e-7)
    got = unijax.grad(total, argnums=argnums, backend="autograd")(*args)
    engine = unijax.grad(total, argnums=argnums, backend="numpy")(*args)
    want = jax.jit(jax.grad(jax_total, argnums=argnums))(*map(jnp.asarray, args))
    for g, e, w in zip(got, engine, want, strict=True):
        assert type(g) is np.ndarray
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-9, atol=1e-12)


def test_special_extension_has_every_function_of_the_traced_namespace():
    seen = []
    unijax.grad(lambda x: seen.append(array_namespace(x).special) or x, backend="numpy")(1.0)
    names = {n for n in dir(seen[0]) if not n.startswith("_")}
    assert names and names == {n for n in dir(xp.special) if not n.startswith("_")}
    x = np.asarray([0.5, 1.5])
    for name in ("erf", "gammaln", "i0", "expit", "exp1"):
        np.testing.assert_array_equal(getattr(xp.special, name)(x),
                                      getattr(seen[0], name)(x))


def test_special_second_derivative_under_autograds_grad_matches_jax():
    def f(x):
        s = array_namespace(x).special
        return xp.sum(s.ndtr(x) * s.xlogy(x, x + 3.0) + s.i1e(x))

    jsp = _jax_special()
    want = jax.jit(jax.hessian(
        lambda x: jnp.sum(jsp.ndtr(x) * jsp.xlogy(x, x + 3.0) + jsp.i1e(x))))(
        jnp.asarray(XW))
    np.testing.assert_allclose(native.jacrev(native.grad(f))(XW), want, rtol=1e-9, atol=1e-12)


def test_scipy_special_dispatches_to_the_extension_under_grad():
    # With SCIPY_ARRAY_API=1 SciPy looks xp.special.<name> up on the namespace of a box.
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, numpy as np, unijax, scipy.special as sc, scipy.stats as st\n"
        "from array_api_compat import array_namespace\n"
        "x = np.array([-30.0, -2.0, 0.5, 3.0])\n"
        "g = unijax.grad(lambda x: array_namespace(x).sum(sc.log_ndtr(x)), "
        "backend='autograd')(x)\n"
        "print(json.dumps([g.tolist(), np.exp(st.norm.logpdf(x) - sc.log_ndtr(x)).tolist()]))\n"
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    env.pop("UNIJAX_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    got, want = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got, want, rtol=1e-9)


# --- unijax.lax on Autograd ------------------------------------------------------------------

WHILE_LOOPS: dict[str, Any] = {
    # name: (function of (lax, n) with n traced; the init is never traced)
    "python_int_carry": lambda lx, n: lx.while_loop(lambda c: c < n, lambda c: c + 1, 0),
    "python_float_carry": lambda lx, n: lx.while_loop(lambda c: c < n, lambda c: c + 1.5,
                                                      0.0),
    "numpy_carry": lambda lx, n: lx.while_loop(lambda c: c * 2.0 < n, lambda c: c * 3.0,
                                               np.float64(0.25)),
    "tuple_carry": lambda lx, n: lx.while_loop(lambda c: c[1] < n,
                                               lambda c: (c[0] + 1, c[1] + c[0] * 0.5),
                                               (0, 0.0)),
    # the predicate becomes traced only once the body has made the carry traced
    "traced_by_the_body": lambda lx, n: lx.while_loop(lambda c: c < 20.0,
                                                      lambda c: c + n, 0.0),
}


@pytest.mark.parametrize("name", list(WHILE_LOOPS))
def test_while_loop_with_a_traced_predicate_under_jit_and_vmap_matches_jax(name):
    from unijax import lax

    f = WHILE_LOOPS[name]
    ns = np.asarray([0.7, 3.5, 6.0])
    with unijax.use_backend("autograd"):
        jitted = [unijax.jit(lambda n: f(lax, n))(n) for n in ns]
        mapped = unijax.vmap(lambda n: f(lax, n))(ns)
    want_jit = [jax.jit(lambda n: f(jax.lax, n))(jnp.asarray(n)) for n in ns]
    want_vmap = jax.vmap(lambda n: f(jax.lax, n))(jnp.asarray(ns))
    for got, want in zip([*jitted, mapped], [*want_jit, want_vmap], strict=True):
        for g, w in zip(tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                        strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-15)
            assert np.asarray(g).dtype == np.asarray(w).dtype


def test_scan_of_length_zero_matches_jax():
    from unijax import lax

    def f(lx, w, xs):
        def body(c, x):
            return c * w + x[0], {"y": c * x, "w": w * 2.0}

        return lx.scan(body, w, xs)

    xs, w = np.zeros((0, 2)), np.asarray([0.5, -1.5])
    want = f(jax.lax, jnp.asarray(w), jnp.asarray(xs))
    with unijax.use_backend("autograd"):
        got = f(lax, w, xs)
        g = unijax.grad(lambda w: xp.sum(f(lax, w, xs)[0] * w))(w)
        ints = lax.scan(lambda c, x: (c + x, c * x), 0, np.zeros(0))
    for a, b in zip(tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, np.asarray(b))
    np.testing.assert_allclose(g, jax.grad(lambda w: jnp.sum(f(jax.lax, w, xs)[0] * w))(
        jnp.asarray(w)), rtol=1e-15)
    # A Python int carry with a float body: promoted to the body's dtype, as in JAX.
    want_ints = jax.lax.scan(lambda c, x: (c + x, c * x), 0, jnp.zeros(0))
    for a, b in zip(ints, want_ints, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


def test_unary_plus_of_a_box_is_a_new_box_of_the_same_value():
    def f(ns, x):
        y = +x
        return ns.sum(ns.sin(y) * x)

    def written(x):
        y = +x
        y[0] = 5.0  # through +x: x itself keeps its value
        ns = array_namespace(x)
        return ns.sum(x * x) + ns.sum(y)

    want = jax.grad(lambda x: f(JNP, x))(jnp.asarray(XW))
    np.testing.assert_allclose(unijax.grad(lambda x: f(xp, x), backend="autograd")(XW), want,
                               rtol=1e-14)
    _check_gradient(written, XW)


def test_solve_of_a_batched_system_and_one_vector_matches_jax():
    a = rng.normal(size=(2, 3, 3)) + 4.0 * np.eye(3)
    b = rng.normal(size=3)

    def f(ns, a, b):
        return ns.sum(ns.linalg.solve(a, b) ** 2)

    got = unijax.grad(lambda a, b: f(xp, a, b), argnums=(0, 1), backend="autograd")(a, b)
    want = jax.grad(lambda a, b: f(JNP, a, b), argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12)


# --- prod at zeros and FFTs of complex inputs ------------------------------------------------

#: Inputs of prod with no zero, one zero and several zeros along the reduced axes.
PROD_CASES = [
    (np.asarray([1.5, 0.0, 2.0, -3.0]), {}),
    (np.asarray([0.0, 0.0, 2.0]), {}),
    (np.asarray([1.5, -0.5, 2.0, 1.2, 0.7]), {}),
    (np.asarray([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0]]), {"axis": 1}),
    (np.asarray([[0.0, 2.0, 3.0], [1.0, 4.0, 0.5]]), {"axis": -2, "keepdims": True}),
    (np.asarray([[0.0, 2.0, 3.0], [1.0, 0.0, 0.5]]), {"axis": (0, 1)}),
    (np.arange(-2.0, 10.0).reshape(2, 3, 2), {"axis": (2, 0), "keepdims": True}),
    (np.arange(-2.0, 10.0).reshape(2, 3, 2), {"axis": (), "dtype": np.float64}),
    (np.asarray([[0.0, 2.0], [0.0, 0.5]]), {"dtype": np.float64}),
]


def _weighted_prod(ns: Any, kw: dict[str, Any]) -> Any:
    """``sum(prod(x, **kw) * w)`` with distinct weights, so that each output is checked."""
    def f(x: Any) -> Any:
        out = ns.prod(x, **kw)
        w = ns.reshape(ns.arange(1.0, 1.0 + math.prod(out.shape)), out.shape)
        return ns.sum(ns.sin(out) * w)

    return f


@pytest.mark.parametrize(("x", "kw"), PROD_CASES)
def test_prod_at_zeros_matches_jax_to_third_order(x, kw):
    f, jf = _weighted_prod(xp, kw), _weighted_prod(jnp, kw)
    np.testing.assert_allclose(f(x), jf(jnp.asarray(x)), rtol=1e-14)
    np.testing.assert_allclose(native.grad(f)(x), jax.grad(jf)(x), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(native.jacrev(native.grad(f))(x), jax.hessian(jf)(x),
                               rtol=1e-13, atol=1e-300)

    def third(g: Any, ns: Any, fn: Any) -> Any:
        return g(lambda v: ns.sum(g(fn)(v) * ns.cos(v)))

    np.testing.assert_allclose(third(native.grad, xp, f)(x), third(jax.grad, jnp, jf)(x),
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(("x", "kw"), [
    (np.asarray([1.5, 0.0, 2.0, -3.0, 0.0]), {}),
    (np.asarray([[0.0, 2.0, 3.0], [1.0, 0.0, 0.5]]), {"axis": 0}),
    (np.asarray([[0.0, 2.0, 3.0], [1.0, 0.0, 0.5]]), {"axis": 1, "include_initial": True}),
    (np.arange(-2.0, 10.0).reshape(2, 6), {"axis": -1}),
])
def test_cumulative_prod_at_zeros_matches_jax_to_second_order(x, kw):
    def f(ns: Any) -> Any:
        def fn(v: Any) -> Any:
            out = ns.cumulative_prod(v, **kw)
            w = ns.reshape(ns.arange(1.0, 1.0 + math.prod(out.shape)), out.shape)
            return ns.sum(ns.sin(out) * w)

        return fn

    np.testing.assert_allclose(f(xp)(x), f(jnp)(x), rtol=1e-14)
    np.testing.assert_allclose(native.grad(f(xp))(x), jax.grad(f(jnp))(x), rtol=1e-13)
    np.testing.assert_allclose(native.jacrev(native.grad(f(xp)))(x), jax.hessian(f(jnp))(x),
                               rtol=1e-12, atol=1e-300)


def test_prod_forward_mode_at_zeros_matches_jax():
    from autograd.differential_operators import make_jvp

    x = np.asarray([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    t = np.asarray([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    for kw in ({}, {"axis": 1}, {"axis": (0, 1), "keepdims": True}):
        _, got = make_jvp(lambda v, kw=kw: xp.prod(v, **kw))(x)(t)
        _, want = jax.jvp(lambda v, kw=kw: jnp.prod(v, **kw), (x,), (t,))
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_prod_of_an_empty_axis_and_of_integers_matches_jax():
    empty = np.zeros((2, 0))
    np.testing.assert_array_equal(
        native.grad(lambda v: xp.sum(xp.prod(v, axis=1)))(empty),
        jax.grad(lambda v: jnp.sum(jnp.prod(v, axis=1)))(empty))
    hessian = native.jacrev(native.grad(lambda v: xp.sum(xp.prod(v, axis=1))))(empty)
    want = jax.hessian(lambda v: jnp.sum(jnp.prod(v, axis=1)))(empty)
    assert hessian.shape == want.shape and hessian.dtype == want.dtype
    ints = np.asarray([[2, 0, 3], [1, 4, 5]], dtype=np.int64)
    got = native.grad(lambda v, i: xp.sum(xp.prod(i, axis=1) * v))(np.ones(2), ints)
    np.testing.assert_array_equal(got, jnp.prod(ints, axis=1))


def _complex_fft(ns: Any, name: str, kw: dict[str, Any]) -> Any:
    """``fft.name`` of the complex array with parts ``re``, ``im``, reduced to a real scalar
    that weighs the real and imaginary parts of every output differently."""
    def f(re: Any, im: Any) -> Any:
        z = ns.astype(re, ns.complex128) + ns.astype(im, ns.complex128) * 1j
        out = getattr(ns.fft, name)(z, **kw)
        w = ns.reshape(ns.arange(1.0, 1.0 + math.prod(out.shape)), out.shape)
        if ns.isdtype(out.dtype, "complex floating"):
            return ns.sum(ns.real(out) * w) + ns.sum(ns.imag(out) * ns.cos(w))
        return ns.sum(out * w)

    return f


@pytest.mark.parametrize(("name", "kw", "shape"), [
    ("fft", {}, (3,)),
    ("fft", {"n": 2, "axis": 0, "norm": "ortho"}, (3, 2)),
    ("fft", {"n": 5}, (2, 3)),
    ("ifft", {"n": 3, "norm": "forward"}, (4,)),
    ("fftn", {"s": (3, 5), "axes": (0, -1), "norm": "ortho"}, (2, 4)),
    ("ifftn", {}, (2, 3)),
    ("irfft", {"n": 4, "norm": "ortho"}, (3,)),
    ("irfft", {"n": 4}, (2, 5)),
    ("irfftn", {"axes": (0,)}, (3, 2)),
])
def test_fft_of_a_complex_input_built_from_real_parts_matches_jax(name, kw, shape):
    re, im = rng.normal(size=shape), rng.normal(size=shape)
    got = native.grad(_complex_fft(xp, name, kw), argnums=(0, 1))(re, im)
    want = jax.grad(_complex_fft(jnp, name, kw), argnums=(0, 1))(re, im)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_astype_of_a_real_box_to_complex_matches_jax_in_both_modes():
    from autograd.differential_operators import make_jvp

    x = rng.normal(size=(2, 3))

    def f(ns: Any, v: Any) -> Any:
        z = ns.astype(v, ns.complex64) * (2.0 + 1.5j)
        return ns.sum(ns.real(z * z) + ns.imag(z))

    got = native.grad(lambda v: f(xp, v))(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, jax.grad(lambda v: f(jnp, v))(x), rtol=1e-6)
    _, tangent = make_jvp(lambda v: xp.astype(v, xp.complex128))(x)(x)
    np.testing.assert_array_equal(tangent, x.astype(np.complex128))


@pytest.mark.parametrize(("n", "shape"), [(2, (4,)), (2, (3, 5)), (6, (3,)), (4, (2, 4))])
def test_rfft_gradient_with_n_matches_jax(n, shape):
    x = rng.normal(size=shape)

    def f(ns: Any, v: Any) -> Any:
        out = ns.fft.rfft(v, n=n, norm="forward")
        w = ns.reshape(ns.arange(1.0, 1.0 + math.prod(out.shape)), out.shape)
        return ns.sum(ns.real(out) * w) + ns.sum(ns.imag(out) * ns.cos(w))

    np.testing.assert_allclose(f(xp, x), f(jnp, jnp.asarray(x)), rtol=1e-12)
    np.testing.assert_allclose(native.grad(lambda v: f(xp, v))(x),
                               jax.grad(lambda v: f(jnp, v))(x), rtol=1e-12, atol=1e-12)


def test_rfft_gradient_for_an_odd_n_raises_instead_of_lying():
    with pytest.raises(NotImplementedError, match="odd lengthed"):
        native.grad(lambda v: xp.sum(xp.real(xp.fft.rfft(v, n=5))))(np.ones(4))
