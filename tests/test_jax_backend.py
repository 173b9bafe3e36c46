"""The JAX backend: JAX's global x64 flag is the user's, and misuse raises unijax's errors.

Every transform on JAX runs inside a thread-local ``jax.enable_x64`` scope when unijax's
dtype policy asks for float64, so ``jax.config.jax_enable_x64`` reads the same before and
after any unijax call. Misuse under JAX's native transforms raises the same unijax error
class as the engine on NumPy for the same program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import lax
from unijax._fast_paths import call_native
from unijax.dispatch.plugins import get_backend
from unijax.errors import (
    ArgnumsError,
    ControlFlowError,
    ShapeError,
    TransformArgumentError,
    UnexpectedTracerError,
)

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

BACKENDS = ("numpy", "jax")


@pytest.fixture(params=[False, True], ids=["x64_off", "x64_on"])
def x64_flag(request: pytest.FixtureRequest) -> Iterator[bool]:
    """JAX's global x64 flag set to the parameter for the test, then restored."""
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", request.param)
    try:
        yield request.param
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64_off() -> Iterator[None]:
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _loss(x: Any) -> Any:
    return jnp.sum(jnp.sin(x) * x)


def _scan_sum(x: Any) -> Any:
    return lax.scan(lambda c, v: (c + v, c * v), jnp.zeros((), x.dtype), x)


# (name, call on a float32 JAX vector): every transform and lax construct.
_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("grad", lambda x: unijax.grad(_loss)(x)),
    ("value_and_grad", lambda x: unijax.value_and_grad(_loss)(x)),
    ("jvp", lambda x: unijax.jvp(_loss, (x,), (x,))),
    ("vjp", lambda x: unijax.vjp(jnp.sin, x)[1](x)),
    ("jacfwd", lambda x: unijax.jacfwd(jnp.sin)(x)),
    ("jacrev", lambda x: unijax.jacrev(jnp.sin)(x)),
    ("hessian", lambda x: unijax.hessian(_loss)(x)),
    ("vmap", lambda x: unijax.vmap(jnp.sin)(x)),
    ("jit", lambda x: unijax.jit(_loss)(x)),
    ("jit_of_grad", lambda x: unijax.jit(unijax.grad(_loss))(x)),
    ("scan", _scan_sum),
    ("grad_of_scan", lambda x: unijax.grad(lambda v: jnp.sum(_scan_sum(v)[1]))(x)),
    ("cond", lambda x: lax.cond(x[0] > 0, jnp.sin, jnp.cos, x)),
    ("switch", lambda x: lax.switch(1, [jnp.sin, jnp.cos], x)),
    ("while_loop", lambda x: lax.while_loop(lambda v: v[0] < 5, lambda v: v + 1, x)),
    ("fori_loop", lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2, x)),
    ("map", lambda x: lax.map(jnp.sin, x)),
    ("checkpoint", lambda x: unijax.grad(unijax.checkpoint(_loss))(x)),
    ("stop_gradient", lambda x: unijax.stop_gradient(x)),
]


@pytest.mark.parametrize(("name", "call"), _CALLS, ids=[name for name, _ in _CALLS])
def test_transform_leaves_x64_flag_unchanged(x64_flag: bool, name: str,
                                             call: Callable[[Any], Any]) -> None:
    x = jnp.asarray(np.linspace(0.5, 1.5, 3), dtype=jnp.float32)
    out = call(x)
    assert jax.config.read("jax_enable_x64") is x64_flag, name
    # float32 inputs keep float32 (the scope changes no dtype of the user's arrays).
    for leaf in jax.tree_util.tree_leaves(out):
        assert leaf.dtype == jnp.float32, (name, leaf.dtype)


def test_custom_vjp_leaves_x64_flag_unchanged(x64_flag: bool) -> None:
    @unijax.custom_vjp
    def square(x: Any) -> Any:
        return x * x

    square.defvjp(lambda x: (x * x, x), lambda x, ct: (2 * x * ct,))
    x = jnp.asarray([1.0, 2.0], dtype=jnp.float32)
    out = square(x), unijax.grad(lambda v: jnp.sum(square(v)))(x)
    assert jax.config.read("jax_enable_x64") is x64_flag
    np.testing.assert_allclose(np.asarray(out[1]), 2 * np.asarray(x))


def test_first_use_of_jax_leaves_x64_flag_unchanged() -> None:
    # A fresh process: unijax's first grad on a JAX array loads the plugin.
    script = (
        "import jax, jax.numpy as jnp, unijax\n"
        "before = jax.config.read('jax_enable_x64')\n"
        "unijax.grad(lambda x: jnp.sum(x * x))(jnp.ones(3, jnp.float32))\n"
        "unijax.asarray([1.0], backend='jax')\n"
        "print(before, jax.config.read('jax_enable_x64'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]


def test_x64_scope_is_not_seen_by_other_threads(x64_off: None) -> None:
    seen: list[bool] = []

    def loss(x: Any) -> Any:
        # Runs inside unijax's call: this thread computes in float64, another does not.
        reader = threading.Thread(target=lambda: seen.append(
            bool(jax.config.read("jax_enable_x64"))))
        reader.start()
        reader.join()
        seen.append(bool(jax.config.read("jax_enable_x64")))
        return jnp.sum(x * x)

    unijax.grad(loss)(jnp.ones(2, jnp.float32))
    assert seen == [False, True]
    assert jax.config.read("jax_enable_x64") is False


def test_float64_policy_computes_in_float64_with_x64_off(x64_off: None) -> None:
    # unijax's float64 policy holds inside its calls, whatever JAX's flag says.
    x = unijax.asarray([1.0, 2.0], backend="jax")
    assert str(x.dtype) == "float64"
    tiny = unijax.jit(lambda v: (v + 1e-12) - v)(x)
    np.testing.assert_allclose(np.asarray(tiny), 1e-12, rtol=1e-3)
    x_np = np.asarray([0.3, 0.7])

    def loss(v: Any) -> Any:
        xp = array_namespace(v)
        return xp.sum(xp.sin(v))

    got = unijax.grad(loss, backend="jax")(x_np)
    want = unijax.grad(loss, backend="numpy")(x_np)
    assert str(got.dtype) == "float64"
    np.testing.assert_allclose(np.asarray(got), np.cos(x_np), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-14)
    assert jax.config.read("jax_enable_x64") is False


def test_python_float_argument_is_float64_with_x64_off(x64_off: None) -> None:
    got = unijax.grad(lambda v: v * v * v, backend="jax")(1.5)
    assert str(got.dtype) == "float64"
    np.testing.assert_allclose(float(got), 3 * 1.5 ** 2, rtol=1e-15)
    assert jax.config.read("jax_enable_x64") is False


def test_float32_policy_does_not_switch_x64_on(x64_off: None) -> None:
    with unijax.use_default_float_dtype("float32"):
        x = unijax.asarray([1.0, 2.0], backend="jax")
        zeros = unijax.jit(lambda v: v + jnp.zeros(2))(x)
    assert str(x.dtype) == "float32" and str(zeros.dtype) == "float32"
    assert jax.config.read("jax_enable_x64") is False


# --- misuse: the same unijax error on NumPy (the engine) and on JAX (native) ----------


def _arr(backend: str, value: Any) -> Any:
    return unijax.asarray(np.asarray(value, dtype=np.float64), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("body", [
    lambda c, x: c + x,  # no pair
    lambda c, x: (c + x, x, x),  # a triple
], ids=["single", "triple"])
def test_scan_body_not_a_pair(backend: str, body: Callable[..., Any]) -> None:
    with pytest.raises(ControlFlowError, match=r"scan: the body .*must return a pair"):
        lax.scan(body, _arr(backend, 0.0), _arr(backend, [1.0, 2.0]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cond_fun", [
    lambda c: c < np.asarray([3.0, 4.0]),  # not a scalar
    lambda c: 3.0 - c,  # a float
], ids=["vector", "float"])
@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jit"])
def test_while_loop_cond_not_boolean_scalar(backend: str, cond_fun: Callable[..., Any],
                                            jitted: bool) -> None:
    def run(x: Any) -> Any:
        return lax.while_loop(cond_fun, lambda c: c + 1.0, x)

    with pytest.raises(ControlFlowError, match=r"cond_fun .*must return a boolean scalar"):
        (unijax.jit(run) if jitted else run)(_arr(backend, 0.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_pred_not_scalar(backend: str) -> None:
    x = _arr(backend, [1.0, -1.0])
    with pytest.raises(TransformArgumentError, match="cond: pred must be a scalar"):
        unijax.jit(lambda v: lax.cond(v > 0, lambda a: a, lambda a: -a, v))(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_pred_complex(backend: str) -> None:
    x = _arr(backend, [1.0, -1.0])
    with pytest.raises(TransformArgumentError, match="cond: pred must be a"):
        unijax.jit(lambda v: lax.cond(v[0] + 1j, lambda a: a, lambda a: -a, v))(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use", ["jit", "grad", "scan"])
def test_leaked_tracer_from_lax_body(backend: str, use: str) -> None:
    leaked: list[Any] = []

    def body(c: Any, x: Any) -> Any:
        leaked.append(c)  # the misuse: a traced value stored outside the body
        return c + x, x

    x = _arr(backend, [0.0, 1.0, 2.0])
    unijax.jit(lambda xs: lax.scan(body, xs[0], xs))(x)
    calls = {
        "jit": lambda: unijax.jit(lambda v: v + leaked[0])(x),
        "grad": lambda: unijax.grad(lambda v: (v * leaked[0]).sum())(x),
        "scan": lambda: lax.scan(lambda c, v: (c + leaked[0], c), x[0], x),
    }
    with pytest.raises(UnexpectedTracerError, match="was used after that transform"):
        calls[use]()


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_float32_tangent_for_float64_primal(backend: str) -> None:
    primal = _arr(backend, [1.0, 2.0])
    tangent = unijax.asarray(np.ones(2, np.float32), backend=backend)
    with pytest.raises(ShapeError, match="tangent must match its primal's shape and dtype"):
        unijax.jvp(lambda v: v * 2.0, (primal,), (tangent,))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("statics", [{"static_argnums": 1}, {"static_argnames": "n"}],
                         ids=["argnums", "argnames"])
def test_donate_argnums_overlapping_statics(backend: str, statics: dict[str, Any]) -> None:
    def power(x: Any, n: int) -> Any:
        return x ** n

    with pytest.raises(ArgnumsError, match="donate_argnums names argument"):
        unijax.jit(power, donate_argnums=(0, 1), backend=backend, **statics)
    # Disjoint is fine, and computes.
    jitted = unijax.jit(power, donate_argnums=0, backend=backend, **statics)
    np.testing.assert_allclose(np.asarray(jitted(_arr(backend, [2.0]), n=2)), [4.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_negative_length(backend: str) -> None:
    with pytest.raises(TransformArgumentError, match="length"):
        unijax.jit(lambda: lax.scan(lambda c, x: (c + 1.0, c), _arr(backend, 0.0), None,
                                    length=-2), backend=backend)()


def test_jax_cond_pred_error_translated() -> None:
    # JAX's own error for a complex predicate, below unijax's checks.
    backend = get_backend("jax")
    with pytest.raises(TransformArgumentError, match="cond: pred must be a scalar boolean"):
        call_native(backend, backend.native_transforms.lax.cond,
                    (jnp.asarray(1j), jnp.sin, jnp.cos, jnp.ones(2)), {})


def test_jax_scan_bad_length_error_translated() -> None:
    # JAX's own error for a negative length (XLA rejects the shape), below unijax's checks.
    backend = get_backend("jax")
    native_scan = backend.native_transforms.lax.scan
    with pytest.raises(TransformArgumentError, match="the number of iterations, length"):
        call_native(backend, native_scan, (lambda c, x: (c + 1.0, c), jnp.zeros(()), None),
                    {"length": -2})
    with pytest.raises(TransformArgumentError, match="scan: the number of iterations"):
        call_native(backend, native_scan, (lambda c, x: (c, x), jnp.zeros(()), jnp.ones(3)),
                    {"length": 4})
