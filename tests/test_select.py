"""Backend resolution for one call: precedence, conversion of inputs, and its errors."""

from __future__ import annotations

import re
import types

import array_api_strict
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.array_api import make_strategies_namespace

import unijax
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins
from unijax.dispatch import selection as _select
from unijax.dispatch.selection import explain_backend, prepare_call, resolve_backend, to_backend
from unijax.errors import (
    DeviceTransferError,
    MixedBackendError,
    UnknownBackendError,
)
from unijax.extend import Backend, hookimpl, register_plugin

xps = make_strategies_namespace(array_api_strict)


pytestmark = pytest.mark.usefixtures("clean_config")


def rule(*args, backend=None):
    e = explain_backend(*args, backend=backend)
    return e.backend, e.rule


# --- precedence ---------------------------------------------------------------------------


def test_precedence_every_rule_in_order(monkeypatch, tmp_path):
    import jax.numpy as jnp

    arrays = (jnp.ones(2),)
    (tmp_path / "pyproject.toml").write_text('[tool.unijax]\nbackend = "autograd"\n')
    monkeypatch.setenv("UNIJAX_BACKEND", "array_api_strict")
    _config.reload()
    unijax.set_backend("jax")
    with unijax.use_backend("numpy"):
        assert rule(*arrays, backend="autograd") == ("autograd", "argument")
        assert resolve_backend("autograd", arrays).name == "autograd"
        assert prepare_call((1.0,), "autograd", "f")[0].name == "autograd"
        assert rule(*arrays) == ("numpy", "context")
        assert resolve_backend(None, arrays).name == "numpy"
        assert prepare_call(arrays, None, "f")[0].name == "numpy"
    assert rule(*arrays) == ("jax", "set_backend")
    unijax.set_backend(None)
    assert rule(*arrays) == ("array_api_strict", "env")
    assert prepare_call(arrays, None, "f")[0].name == "array_api_strict"
    monkeypatch.delenv("UNIJAX_BACKEND")
    _config.reload()
    assert rule(*arrays) == ("autograd", "config_file")
    (tmp_path / "pyproject.toml").unlink()
    _config.reload()
    assert rule(*arrays) == ("jax", "input_arrays")
    assert prepare_call(arrays, None, "f")[0].name == "jax"
    assert rule(1.0, "text") == ("numpy", "default")
    assert prepare_call((1.0,), None, "f")[0].name == "numpy"


def test_input_arrays_rule_prefers_non_numpy_arrays():
    import jax.numpy as jnp

    assert rule(np.ones(2), {"w": jnp.ones(2)}) == ("jax", "input_arrays")
    backend, use_engine, (a, b) = prepare_call((np.ones(2), jnp.zeros(2)), None, "f")
    assert backend.name == "jax" and not use_engine
    assert type(a) is type(b)


def test_explain_backend_reasons_are_sentences(monkeypatch):
    monkeypatch.setenv("UNIJAX_BACKEND", "jax")
    _config.reload()
    explanation = explain_backend()
    assert explanation.reason == "UNIJAX_BACKEND=jax in the environment"
    assert str(explanation) == ("backend 'jax', chosen by rule 'env': "
                                "UNIJAX_BACKEND=jax in the environment")
    with unijax.use_backend("numpy"):
        assert explain_backend().reason == "inside unijax.use_backend('numpy')"
    monkeypatch.delenv("UNIJAX_BACKEND")
    _config.reload()
    assert explain_backend(np.ones(1)).reason == ("the inputs include numpy arrays "
                                                  "(numpy.ndarray)")


def test_unknown_backend_from_env_names_the_source(monkeypatch):
    monkeypatch.setenv("UNIJAX_BACKEND", "jaxx")
    _config.reload()
    with pytest.raises(UnknownBackendError) as info:
        resolve_backend()
    text = str(info.value)
    assert "UNIJAX_BACKEND=jaxx in the environment" in text
    assert "Did you mean 'jax'?" in text
    with pytest.raises(UnknownBackendError, match="UNIJAX_BACKEND=jaxx"):
        explain_backend()
    with pytest.raises(UnknownBackendError):
        prepare_call((1.0,), None, "grad(f)")


def test_current_backend_and_namespace():
    import array_api_compat.numpy
    import jax.numpy as jnp

    assert unijax.current_backend() == "numpy"
    assert unijax.namespace() is array_api_compat.numpy
    assert unijax.namespace("jax") is jnp
    with unijax.use_backend("jax"):
        assert unijax.current_backend() == "jax"


# --- prepare_call: the fast path -------------------------------------------------------


def test_prepare_call_fast_path_returns_args_as_they_are(monkeypatch):
    x = np.ones(3)
    args = (x, 2.0, 3)
    prepare_call(args, None, "f")  # warm the caches

    def no_flattening(*a, **k):
        raise AssertionError("the fast path flattened a tree")

    monkeypatch.setattr(_select, "tree_leaves", no_flattening)
    for explicit in (None, "numpy"):
        backend, use_engine, out = prepare_call(args, explicit, "f")
        assert (backend.name, use_engine, out is args) == ("numpy", False, True)
    with unijax.use_backend("numpy"):
        assert prepare_call(args, None, "f")[2] is args


def _jax_jit_of_sin() -> tuple[object, object]:
    import jax

    def f(x):
        return jax.numpy.sin(x)

    return unijax.jit(f), jax.jit(f)


def test_jit_native_fast_path_skips_prepare_call_once_warm(monkeypatch):
    import jax.numpy as jnp

    from unijax import transforms as _api

    fast, native = _jax_jit_of_sin()
    x = jnp.linspace(0.0, 1.0, 3)
    with unijax.use_backend("jax"):
        np.testing.assert_array_equal(fast(x), native(x))  # warms the fast path

        def no_prepare(*a, **k):
            raise AssertionError("a warm call resolved the backend again")

        monkeypatch.setattr(_api, "prepare_call", no_prepare)
        np.testing.assert_array_equal(fast(x * 2.0), native(x * 2.0))
        with pytest.raises(AssertionError, match="resolved the backend"):
            fast(np.ones(3))  # another library's array: converted on the slow path


def test_jit_native_fast_path_walks_dicts_lists_and_tuples(monkeypatch):
    import jax
    import jax.numpy as jnp

    from unijax import transforms as _api

    def f(params, xs):
        return params["w"] * xs[0] + params["b"][1]

    fast, native = unijax.jit(f), jax.jit(f)
    unijax.namespace("jax")  # loads JAX's plugin first
    params = {"w": jnp.ones(3), "b": [None, jnp.full(3, 2.0)]}
    xs = (jnp.arange(3.0),)
    with unijax.use_backend("jax"):
        fast(params, xs)
        calls = []
        monkeypatch.setattr(_api, "prepare_call",
                            lambda *a, **k: calls.append(1) or prepare_call(*a, **k))
        np.testing.assert_array_equal(fast(params, xs), native(params, xs))
        assert calls == []  # every leaf a JAX array: straight to jax.jit
        mixed = {"w": np.ones(3), "b": params["b"]}  # a NumPy leaf: converted, slow path
        got = fast(mixed, xs)
    assert calls == [1]
    assert isinstance(got, jax.Array)
    np.testing.assert_array_equal(got, native(params, xs))


def test_jit_native_fast_path_follows_the_active_backend():
    import jax
    from array_api_compat import array_namespace

    fun = unijax.jit(lambda x: array_namespace(x).sin(x) * 2.0)
    x = np.linspace(0.0, 1.0, 3)
    x_jax = unijax.asarray(x, backend="jax")  # float64: unijax's calls on JAX use x64
    with unijax.use_backend("jax"):
        on_jax = fun(x_jax)
        on_jax = fun(x_jax)  # the warm path
    with unijax.use_backend("numpy"):
        on_numpy = fun(x)
    assert isinstance(on_jax, jax.Array)
    assert isinstance(on_numpy, np.ndarray)
    np.testing.assert_allclose(np.asarray(on_jax), on_numpy, rtol=1e-15)
    assert fun.cache_info()["numpy"].misses == 1


def test_jit_native_fast_path_is_dropped_when_plugins_change(monkeypatch):
    import jax.numpy as jnp

    from unijax import transforms as _api

    fast, _ = _jax_jit_of_sin()
    x = jnp.ones(3)
    with unijax.use_backend("jax"):
        fast(x)
        _plugins._notify()  # what registering or removing a plugin does
        calls = []
        monkeypatch.setattr(_api, "prepare_call",
                            lambda *a, **k: calls.append(1) or prepare_call(*a, **k))
        fast(x)
        fast(x)
    assert calls == [1]  # resolved once after the change, then warm again


def test_grad_native_fast_path_skips_prepare_call_once_warm(monkeypatch):
    import jax
    import jax.numpy as jnp

    from unijax import transforms as _api

    def f(x, y):
        return jnp.sum(jnp.sin(x) * y)

    g = unijax.grad(f, backend="jax")
    x, y = jnp.linspace(0.0, 1.0, 3), jnp.full(3, 2.0)
    g(x, y)  # warms the fast path
    calls = []
    monkeypatch.setattr(_api, "prepare_call",
                        lambda *a, **k: calls.append(1) or prepare_call(*a, **k))
    np.testing.assert_array_equal(g(x * 2.0, y), jax.grad(f)(x * 2.0, y))
    np.testing.assert_array_equal(g(x, 3.0), jax.grad(f)(x, 3.0))  # a scalar, not differentiated
    assert calls == []
    # Everything else takes the full path and meets the same checks as a cold call.
    np.testing.assert_array_equal(g(np.asarray(x), y), jax.grad(f)(x, y))  # converted
    with pytest.raises(unijax.errors.NonDifferentiableError):
        g(jnp.arange(3), y)  # an integer array where a gradient is asked for
    with pytest.raises(unijax.errors.ArgnumsError):
        unijax.grad(lambda *a: f(*a), argnums=1, backend="jax")(x)  # too few arguments
    assert len(calls) == 3  # one per call above
    _plugins._notify()  # what registering or removing a plugin does
    g(x, y)
    g(x, y)
    assert len(calls) == 4  # resolved once after the change, then warm again


def test_grad_native_fast_path_follows_the_active_backend():
    import jax
    from array_api_compat import array_namespace

    g = unijax.grad(lambda x: array_namespace(x).sum(array_namespace(x).sin(x)))
    x = np.linspace(0.0, 1.0, 3)
    x_jax = unijax.asarray(x, backend="jax")
    with unijax.use_backend("jax"):
        g(x_jax)
        on_jax = g(x_jax)  # the warm path
    with unijax.use_backend("numpy"):
        on_numpy = g(x)
    assert isinstance(on_jax, jax.Array)
    assert isinstance(on_numpy, np.ndarray)
    np.testing.assert_allclose(np.asarray(on_jax), np.cos(x), rtol=1e-15)
    np.testing.assert_allclose(on_numpy, np.cos(x), rtol=1e-15)


# --- prepare_call: tracers and conversion ----------------------------------------------


def test_prepare_call_with_engine_tracer_uses_engine_and_keeps_args():
    from unijax.engine import ad as _ad

    seen = []

    def fun(xs):
        args = ({"a": xs[0]}, 1.0)
        seen.append((args, prepare_call(args, "jax", "grad(f)")))
        return xs

    _ad.jvp_flat(fun, [np.ones(2)], [np.ones(2)])
    args, (backend, use_engine, out) = seen[0]
    assert backend.name == "jax" and use_engine and out is args


def test_prepare_call_converts_numpy_to_jax_losslessly():
    import jax

    data = {"f": np.arange(3.0), "i": np.arange(3, dtype=np.int32), "b": np.ones(2, bool)}
    backend, _, (out, scalar) = prepare_call((data, 1.5), "jax", "f")
    assert backend.name == "jax" and scalar == 1.5
    for key, value in data.items():
        assert isinstance(out[key], jax.Array)
        assert str(out[key].dtype) == str(value.dtype)
        np.testing.assert_array_equal(np.asarray(out[key]), value)


def test_prepare_call_converts_jax_and_strict_to_numpy():
    x_jax = unijax.asarray(np.arange(3.0), backend="jax")  # float64, JAX's x64 flag aside
    _, _, (a, b) = prepare_call((x_jax, [array_api_strict.asarray([1, 2])]), "numpy", "f")
    assert type(a) is np.ndarray and a.dtype == np.float64
    assert type(b[0]) is np.ndarray and b[0].tolist() == [1, 2]


def test_prepare_call_gives_immutable_backend_a_private_copy():
    x = array_api_strict.asarray([1.0, 2.0])
    _, _, (y,) = prepare_call((x,), "jax", "f")
    x[0] = 100.0  # a later write to the mutable source must not reach the JAX array
    assert float(y[0]) == 1.0


def test_prepare_call_numpy_into_autograd_is_unchanged():
    x = np.ones(2)
    backend, _, out = prepare_call((x,), "autograd", "grad(f)")
    assert backend.name == "autograd" and out[0] is x


def test_mixed_autograd_box_under_numpy_raises():
    import autograd

    errors = []

    def f(x):
        try:
            prepare_call((x,), "numpy", "grad(loss)")
        except MixedBackendError as err:
            errors.append(err)
        return x * 2.0

    autograd.grad(f)(np.float64(1.0))
    (err,) = errors
    assert isinstance(err, TypeError)
    text = str(err)
    assert text.startswith("grad(loss): ")
    assert "autograd" in text and "'numpy'" in text
    assert "backend='autograd'" in text


def test_mixed_jax_tracer_under_numpy_raises():
    import jax

    def f(x):
        with pytest.raises(MixedBackendError, match="cannot convert a jax array to backend "
                                                    "'numpy'"):
            prepare_call((x,), "numpy", "f")
        return x

    jax.jit(f)(np.ones(2))


def test_unknown_array_library_raises_mixed_backend_error():
    class Foreign:
        __module__ = "someotherlib.core"

        def __array_namespace__(self, api_version=None):
            return None

    with pytest.raises(MixedBackendError) as info:
        prepare_call((Foreign(),), "numpy", "vmap(f)")
    assert "someotherlib.core.test_unknown_array_library_raises_mixed_backend_error.<locals>" \
        ".Foreign" in str(info.value)
    assert "install the plugin" in str(info.value)


def test_non_arrays_pass_through():
    args = ("text", None, print, 3)
    assert prepare_call(args, "jax", "f")[2] == args


@settings(max_examples=30, deadline=None)
@given(st.recursive(
    xps.arrays(dtype=xps.scalar_dtypes(), shape=xps.array_shapes(max_dims=2, max_side=3)),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from("abc"), children, max_size=3),
    max_leaves=6))
def test_prepare_call_round_trip_keeps_values_and_dtypes(tree):
    as_numpy = to_backend(tree, "numpy")
    _, _, (on_jax,) = prepare_call((as_numpy,), "jax", "f")
    _, _, (back,) = prepare_call((on_jax,), "numpy", "f")
    want = unijax.tree_util.tree_leaves(as_numpy)
    got = unijax.tree_util.tree_leaves(back)
    assert unijax.tree_util.tree_structure(back) == unijax.tree_util.tree_structure(as_numpy)
    for w, g in zip(want, got, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


# --- devices ---------------------------------------------------------------------------


class GpuArray:
    """Arrays of a small third-party backend that lives on another device."""

    def __init__(self, data):
        self.data = np.asarray(data)
        self.dtype = self.data.dtype


GpuArray.__module__ = "unijax_test_gpu"


@pytest.fixture
def gpu_backend():
    module = types.ModuleType("unijax_test_gpu_plugin")
    namespace = types.SimpleNamespace(asarray=lambda x, device=None: GpuArray(x))

    @hookimpl
    def unijax_backend() -> Backend:
        return Backend("testgpu", ("unijax_test_gpu",), (), "", lambda: namespace, extras={
            "device_kind": lambda x: "gpu", "default_device_kind": lambda: "gpu",
            "to_host": lambda x: x.data})

    module.unijax_backend = unijax_backend  # type: ignore[attr-defined]
    backend = register_plugin(module)
    yield backend
    _plugins._reset()


def test_implicit_device_transfer_raises(gpu_backend):
    with pytest.raises(DeviceTransferError) as info:
        prepare_call((np.ones(2),), "testgpu", "grad(f)")
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "numpy array on cpu" in text and "computes on gpu" in text
    assert "unijax.to_backend(x, 'testgpu')" in text
    with pytest.raises(DeviceTransferError, match=re.escape("unijax.to_backend(x, 'numpy')")):
        prepare_call((GpuArray([1.0]),), "numpy", "f")


def test_to_backend_moves_between_devices_explicitly(gpu_backend):
    on_gpu = to_backend({"x": np.arange(3.0), "n": 2}, "testgpu")
    assert isinstance(on_gpu["x"], GpuArray) and on_gpu["n"] == 2
    back = to_backend(on_gpu, "numpy")
    np.testing.assert_array_equal(back["x"], np.arange(3.0))


@pytest.mark.gpu
@pytest.mark.skipif(not _plugins.get_backend("cupy", require_available=False).available,
                    reason="needs cupy and a GPU")
def test_cupy_implicit_transfer_raises_and_explicit_works():
    with pytest.raises(DeviceTransferError):
        prepare_call((np.ones(2),), "cupy", "f")
    x = to_backend(np.arange(3.0), "cupy")
    assert type(x).__module__.startswith("cupy")
    np.testing.assert_array_equal(to_backend(x, "numpy"), np.arange(3.0))


# --- asarray and to_backend -------------------------------------------------------------


def test_asarray_applies_default_float_dtype_to_python_floats():
    assert unijax.asarray([1.0, 2.0]).dtype == np.float64
    assert unijax.asarray(1j).dtype == np.complex128
    with unijax.use_default_float_dtype("float32"):
        assert unijax.asarray([1.0, 2.0]).dtype == np.float32
        assert unijax.asarray(1j).dtype == np.complex64
        assert str(unijax.asarray([1.0], backend="jax").dtype) == "float32"
        assert unijax.asarray(np.ones(2)).dtype == np.float64  # arrays keep their dtype
        assert unijax.asarray([1, 2]).dtype == np.int64
    assert unijax.asarray([1], dtype="float32").dtype == np.float32


def test_asarray_float64_on_jax_is_float64():
    x = unijax.asarray([1.0, 2.0], backend="jax")
    assert str(x.dtype) == "float64"
    y = unijax.asarray(np.arange(3.0), backend="jax")
    assert str(y.dtype) == "float64" and type(y).__module__.startswith("jax")


def test_to_backend_converts_pytree_leaves():
    import jax.numpy as jnp

    out = to_backend({"j": jnp.ones(2), "s": [array_api_strict.ones(1)], "t": "keep"},
                     "numpy")
    assert type(out["j"]) is np.ndarray and type(out["s"][0]) is np.ndarray
    assert out["t"] == "keep"
    strict = to_backend(np.arange(2.0), "array_api_strict")
    assert type(strict).__module__.startswith("array_api_strict")


def test_to_backend_unknown_name_raises():
    with pytest.raises(UnknownBackendError, match="to_backend"):
        to_backend(np.ones(1), "nupmy")
