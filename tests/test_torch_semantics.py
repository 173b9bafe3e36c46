"""The torch backend keeps unijax's meaning where torch's own differs: JAX's convention for
complex cotangents, refused Python numbers from differentiated tensors, the engine's
errors, negative slice steps under jit, reductions of 0-d arrays, ``UNIJAX_TORCH_COMPILE``
and no change of torch's global state. Checked against the numpy engine and JAX."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # a float64 reference

import jax.numpy as jnp  # noqa: E402
from array_api_compat import array_namespace  # noqa: E402

import unijax  # noqa: E402
from unijax import lax, testing  # noqa: E402
from unijax.errors import (  # noqa: E402
    ConcretizationError,
    ConfigError,
    UnsupportedTransformError,
)

Z = np.array([1 + 2j, 3 - 1j])
CT = np.array([0.5 - 1j, 2 + 0.3j])


def _real_of_complex(x: Any) -> Any:
    ns = array_namespace(x)
    return ns.sum(ns.real(x * ns.conj(x))) + ns.sum(ns.real(x) ** 3) + ns.sum(ns.imag(x) * 2.0)


def _complex_map(x: Any) -> Any:  # not holomorphic: conj
    return x * x * 2.0 + array_namespace(x).conj(x) * 3.0


def _np(x: Any) -> Any:
    return np.asarray(testing.to_numpy(x))


def close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(_np(got), np.asarray(want), rtol=1e-12, atol=1e-12)


# --- complex inputs: JAX's convention ---------------------------------------------------------


def test_grad_of_real_function_of_complex_input_follows_jax() -> None:
    want = jax.grad(_real_of_complex)(jnp.asarray(Z))
    close(unijax.grad(_real_of_complex)(Z), want)  # the numpy engine
    t = torch.tensor(Z)
    close(unijax.grad(_real_of_complex)(t), want)
    close(unijax.grad(lambda d: _real_of_complex(d["z"]))({"z": t})["z"], want)  # a tree
    value, g = unijax.value_and_grad(_real_of_complex)(t)
    close(g, want)
    close(value, _real_of_complex(jnp.asarray(Z)))
    (g_aux, _aux) = unijax.grad(lambda z: (_real_of_complex(z), 1), has_aux=True)(t)
    close(g_aux, want)
    close(unijax.jit(unijax.grad(_real_of_complex))(t), want)
    close(unijax.grad(unijax.jit(_real_of_complex))(t), want)


def test_vjp_and_jvp_of_complex_map_follow_jax() -> None:
    _, jax_pullback = jax.vjp(_complex_map, jnp.asarray(Z))
    _, pullback = unijax.vjp(_complex_map, torch.tensor(Z))
    close(pullback(torch.tensor(CT))[0], jax_pullback(jnp.asarray(CT))[0])
    _, np_pullback = unijax.vjp(_complex_map, Z)
    close(np_pullback(CT)[0], jax_pullback(jnp.asarray(CT))[0])
    _, want = jax.jvp(_complex_map, (jnp.asarray(Z),), (jnp.asarray(CT),))
    close(unijax.jvp(_complex_map, (torch.tensor(Z),), (torch.tensor(CT),))[1], want)


@unijax.custom_vjp
def _scaled(x: Any) -> Any:
    return x * (2.0 + 1.0j)


_scaled.defvjp(lambda x: (_scaled(x), None), lambda res, ct: (ct * (2.0 + 1.0j),))


def test_custom_vjp_rule_speaks_jax_convention_on_complex_values() -> None:
    def f(x: Any) -> Any:
        ns = array_namespace(x)
        return ns.sum(ns.real(_scaled(x) * ns.conj(x)))

    close(unijax.grad(f)(torch.tensor(Z)), unijax.grad(f)(Z))


def _smooth(x: Any) -> Any:
    ns = array_namespace(x)
    return ns.sum(ns.real(x) ** 3 * ns.imag(x)) + ns.sum(ns.abs(x) ** 2)


def _holo_and_real(x: Any) -> Any:
    return x * x * 2.0 + array_namespace(x).real(x) * 3.0


@pytest.mark.parametrize("fun", [_smooth, _holo_and_real])
def test_jacobians_of_complex_inputs_match_jax_rows_and_numpy(fun: Any) -> None:
    z = jnp.asarray(Z)
    basis = jnp.eye(2, dtype=z.dtype)
    out, pullback = jax.vjp(fun, z)
    rows = jax.vmap(lambda ct: pullback(ct)[0])(
        jnp.eye(out.size, dtype=out.dtype).reshape(out.size, *out.shape))
    columns = jax.vmap(lambda t: jax.jvp(fun, (z,), (t,))[1])(basis)
    want_rev = rows.reshape(*out.shape, 2)
    want_fwd = jnp.moveaxis(columns.reshape(2, out.size), 0, 1).reshape(*out.shape, 2)
    t = torch.tensor(Z)
    close(unijax.jacrev(fun)(t), want_rev)
    close(unijax.jacrev(fun)(Z), want_rev)
    close(unijax.jacfwd(fun)(t), want_fwd)
    close(unijax.jacfwd(fun)(Z), want_fwd)
    close(unijax.hessian(_smooth)(t), unijax.hessian(_smooth)(Z))
    jac, aux = unijax.jacrev(lambda v: (fun(v), 7), has_aux=True)(t)
    close(jac, want_rev)
    assert aux == 7


# --- Python numbers from differentiated tensors ----------------------------------------------


def _with_float(v: Any) -> Any:
    return v[0] * float(array_namespace(v).sum(v))


MISUSES = {
    "float": _with_float,
    "math.log": lambda v: array_namespace(v).sum(v * math.log(abs(v[0]))),
    "np.asarray": lambda v: v[0] * float(np.asarray(v).sum()),
}
RUNS = {
    "grad": lambda f, x: unijax.grad(f)(x),
    "value_and_grad": lambda f, x: unijax.value_and_grad(f)(x),
    "vjp": lambda f, x: unijax.vjp(f, x),
    "jvp": lambda f, x: unijax.jvp(f, (x,), (x,)),
    "jacfwd": lambda f, x: unijax.jacfwd(f)(x),
    "jacrev": lambda f, x: unijax.jacrev(f)(x),
}


@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("misuse", list(MISUSES))
def test_python_number_of_differentiated_tensor_raises_like_numpy(run: str, misuse: str) -> None:
    f = MISUSES[misuse]
    with pytest.raises(ConcretizationError):
        RUNS[run](f, np.array([0.7, 0.2, 0.3]))
    with pytest.raises(ConcretizationError):
        RUNS[run](f, torch.tensor([0.7, 0.2, 0.3], dtype=torch.float64))


def test_item_of_differentiated_tensor_raises_and_reported_example() -> None:
    with pytest.raises(ConcretizationError):
        unijax.grad(lambda x: x * math.log(abs(x)))(torch.tensor(0.7, dtype=torch.float64))
    with pytest.raises(ConcretizationError):
        unijax.grad(lambda v: v * v.item())(torch.tensor(0.7, dtype=torch.float64))
    with pytest.raises(ConcretizationError):
        unijax.grad(unijax.grad(lambda v: v * complex(v).real))(
            torch.tensor(0.7, dtype=torch.float64))


def test_int_bool_and_undifferentiated_values_still_convert() -> None:
    def f(v: Any, w: Any) -> Any:
        ns = array_namespace(v)
        scale = 2.0 if bool(ns.sum(v) > 0) else 1.0
        return ns.sum(v * v) * scale * int(ns.sum(v)) + v[0] * float(ns.sum(w))

    x = np.array([0.7, 0.9, 0.3])
    want = unijax.grad(f)(x, x)
    close(unijax.grad(f)(torch.tensor(x), torch.tensor(x)), want)
    close(jax.grad(lambda v: jnp.sum(v * v) * 2.0 * 1 + v[0] * float(np.sum(x)))(
        jnp.asarray(x)), want)


# --- the engine's errors and values -----------------------------------------------------------


@unijax.custom_vjp
def _doubled(x: Any) -> Any:
    return x * 2.0


_doubled.defvjp(lambda x: (x * 2.0, None), lambda res, g: (g * 2.0,))


@pytest.mark.parametrize("run", ["jvp", "jacfwd"])
def test_forward_mode_of_custom_vjp_raises_engine_error(run: str) -> None:
    for x in (np.ones(3), torch.ones(3, dtype=torch.float64)):
        with pytest.raises(UnsupportedTransformError, match="custom_vjp function '_doubled'"):
            RUNS[run](_doubled, x)


def _write_into_input(x: Any) -> Any:
    x[0] = 1.0
    return array_namespace(x).sum(x * x * x)


@pytest.mark.parametrize("run", ["grad", "value_and_grad", "jacrev"])
def test_item_assignment_into_differentiated_input_matches_numpy(run: str) -> None:
    x = np.array([0.7, 0.2, 0.3])
    want = RUNS[run](_write_into_input, x.copy())
    t = torch.tensor(x)
    got = RUNS[run](_write_into_input, t)
    close(got[1] if run == "value_and_grad" else got,
          want[1] if run == "value_and_grad" else want)
    close(t, x)  # the caller's tensor is not written, as on the engine
    _, pullback = unijax.vjp(_write_into_input, torch.tensor(x))
    close(pullback(torch.tensor(1.0, dtype=torch.float64))[0], want if run == "grad" else
          unijax.grad(_write_into_input)(x.copy()))


def test_nonzero_under_vmap_raises_concretization_error() -> None:
    def f(x: Any) -> Any:
        return array_namespace(x).nonzero(x)[0]

    for x in (np.ones((2, 3)), torch.ones(2, 3, dtype=torch.float64)):
        with pytest.raises(ConcretizationError):
            unijax.vmap(f)(x)


NEGATIVE_STEPS = {
    "reverse": lambda v: v[::-1],
    "every_other_backwards": lambda v: v[:, ::-2, 1],
    "with_new_axis": lambda v: v[1, -1:0:-2, None, ::-3],
    "empty": lambda v: v[:, 0:2:-1],
}


@pytest.mark.parametrize("case", list(NEGATIVE_STEPS))
def test_negative_slice_step_under_jit_matches_numpy_and_jax(case: str) -> None:
    f = NEGATIVE_STEPS[case]
    a = np.arange(24.0).reshape(2, 3, 4)
    got = unijax.jit(f)(torch.tensor(a))
    want = f(jnp.asarray(a))
    assert tuple(got.shape) == want.shape
    close(got, want)

    def loss(v: Any) -> Any:
        return array_namespace(v).sum(f(v) ** 2)

    close(unijax.jit(unijax.grad(loss))(torch.tensor(a)), jax.grad(loss)(jnp.asarray(a)))


@pytest.mark.parametrize("name", ["std", "var"])
@pytest.mark.parametrize("value", [float("nan"), 2.0])
def test_jit_spread_of_0d_matches_numpy_and_jax(name: str, value: float) -> None:
    def f(v: Any) -> Any:
        return getattr(array_namespace(v), name)(v)

    want = getattr(jnp, name)(jnp.asarray(value))
    close(unijax.jit(f)(np.asarray(value)), want)
    close(unijax.jit(f)(torch.tensor(value, dtype=torch.float64)), want)
    kept = unijax.jit(lambda v: getattr(array_namespace(v), name)(v, axis=(), keepdims=True))
    close(kept(torch.tensor([value, 1.0], dtype=torch.float64)),
          getattr(jnp, name)(jnp.asarray([value, 1.0]), axis=(), keepdims=True))


def test_jit_vector_norm_of_0d_matches_jax() -> None:
    for keepdims in (False, True):
        def f(v: Any, keepdims: bool = keepdims) -> Any:
            return array_namespace(v).linalg.vector_norm(v, keepdims=keepdims)

        want = jnp.linalg.vector_norm(jnp.asarray(-2.0), keepdims=keepdims)
        got = unijax.jit(f)(torch.tensor(-2.0, dtype=torch.float64))
        assert tuple(got.shape) == want.shape
        close(got, want)
    close(unijax.jit(unijax.grad(lambda v: array_namespace(v).linalg.vector_norm(v)))(
        torch.tensor(-2.0, dtype=torch.float64)), -1.0)


# --- configuration and global state -----------------------------------------------------------


def test_invalid_torch_compile_setting_raises_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from unijax_torch import compiler

    monkeypatch.setenv("UNIJAX_TORCH_COMPILE", "sometimes")
    with pytest.raises(ConfigError, match=r"UNIJAX_TORCH_COMPILE.*'auto', 'always', 'never'"):
        unijax.jit(lambda x: x * 3.0)(torch.ones(2))
    assert "invalid value" in compiler.status()


def _loops(x: Any) -> Any:
    ns = array_namespace(x)
    carry, _ = lax.scan(lambda c, v: (c + v, None), ns.zeros_like(x[0]), x)
    return ns.sum(lax.cond(ns.sum(carry) > 0, lambda c: c * 2.0, lambda c: c, carry))


TRANSFORMS = {
    "grad": lambda f, x: unijax.grad(f)(x),
    "value_and_grad": lambda f, x: unijax.value_and_grad(f)(x),
    "jvp": lambda f, x: unijax.jvp(f, (x,), (x,)),
    "vjp": lambda f, x: unijax.vjp(f, x)[1](f(x)),
    "jacfwd": lambda f, x: unijax.jacfwd(f)(x),
    "jacrev": lambda f, x: unijax.jacrev(f)(x),
    "hessian": lambda f, x: unijax.hessian(f)(x),
    "vmap": lambda f, x: unijax.vmap(lambda r: f(r[None]))(x),
    "jit": lambda f, x: unijax.jit(f)(x),
    "jit_grad": lambda f, x: unijax.jit(unijax.grad(f))(x),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_leave_torch_default_dtype_alone(name: str) -> None:
    assert torch.get_default_dtype() == torch.float32
    x = torch.ones(2, 3, dtype=torch.float32)
    with unijax.use_backend("torch"):
        TRANSFORMS[name](_loops, x)
        unijax.asarray([1.0, 2.0])
        unijax.grad(lambda v: v * v)(3.0)
    assert torch.get_default_dtype() == torch.float32
    # Python scalars and sequences still take unijax's default float dtype, explicitly.
    with unijax.use_backend("torch"):
        assert unijax.asarray([1.0]).dtype == torch.float64
        assert unijax.grad(lambda v: v * v)(3.0).dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32


def _made(x: Any) -> Any:
    """The dtypes torch's creation functions give without a dtype, and a scalar of x."""
    ns = array_namespace(x)
    made = (ns.zeros(2), ns.asarray(1.0), ns.asarray([1, 2.5]), ns.full((2,), 0.5),
            ns.arange(0.0, 1.0, 0.5), ns.linspace(0.0, 1.0, 3), ns.asarray(1j))
    _made.seen = [str(v.dtype).removeprefix("torch.") for v in made]  # type: ignore[attr-defined]
    _made.ints = [str(v.dtype) for v in (ns.asarray([1, 2]), ns.arange(3),  # type: ignore[attr-defined]
                                         ns.full((2,), 1))]
    return ns.sum(x * 2.0)


def test_creation_inside_unijax_calls_follows_policy_outside_torch_default() -> None:
    import threading

    policy64 = ["float64"] * 6 + ["complex128"]
    x = torch.ones(2, 3, dtype=torch.float32)
    for run in (lambda: unijax.grad(_made)(x), lambda: unijax.jvp(_made, (x,), (x,)),
                lambda: unijax.vmap(_made)(x)):
        run()
        assert _made.seen == policy64  # type: ignore[attr-defined]
        assert _made.ints == ["torch.int64"] * 3  # type: ignore[attr-defined]
        with unijax.use_default_float_dtype("float32"):
            run()
        assert _made.seen == ["float32"] * 6 + ["complex64"]  # type: ignore[attr-defined]
    _made(x)  # outside unijax's calls: torch's own default
    assert _made.seen == ["float32"] * 6 + ["complex64"]  # type: ignore[attr-defined]
    # Another thread's torch code never sees the policy of a call running beside it.
    inside, outside, seen = threading.Event(), threading.Event(), []

    def slow(v: Any) -> Any:
        inside.set()
        outside.wait(30)
        return array_namespace(v).sum(v * v)

    worker = threading.Thread(target=lambda: unijax.grad(slow)(x))
    worker.start()
    inside.wait(30)
    seen.append(torch.zeros(1).dtype)
    outside.set()
    worker.join(30)
    assert seen == [torch.float32] and torch.get_default_dtype() == torch.float32


def test_first_jit_calls_under_auto_never_import_inductor() -> None:
    code = textwrap.dedent("""
        import sys, torch, unijax
        from array_api_compat import array_namespace
        f = unijax.jit(lambda x: array_namespace(x).sum(array_namespace(x).sin(x) * x))
        for n in (3, 3, 4, 4, 3):
            f(torch.ones(n))
        from unijax_torch.compiler import status
        print(status())
        print(sorted(m for m in ("torch._inductor", "torch._dynamo") if m in sys.modules))
    """)
    env = {"UNIJAX_TORCH_COMPILE": "auto", "PATH": "/usr/bin:/bin"}
    import os

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    assert "compiled 0" in done.stdout


def test_auto_leaves_large_programs_to_generated_python(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from unijax_torch import compiler

    monkeypatch.setenv("UNIJAX_TORCH_COMPILE", "auto")
    monkeypatch.setattr(compiler, "_AUTO_MAX_LINES", 3)
    monkeypatch.setattr(compiler, "_AUTO_AFTER_S", 0.0)
    monkeypatch.setattr(compiler, "_AUTO_MIN_CALLS", 0)
    before = dict(compiler._counts)

    def chain(x: Any) -> Any:
        ns = array_namespace(x)
        for _ in range(6):
            x = ns.sin(x) * 1.5
        return x

    f = unijax.jit(chain)
    x = torch.ones(3, dtype=torch.float64)
    for _ in range(3):
        close(f(x), chain(x))
    assert compiler._counts["too large"] == before["too large"] + 1
    assert compiler._counts["compiled"] == before["compiled"]
    assert "too large 1" in compiler.status() or "too large" in compiler.status()
