"""The Numba lowering: every primitive it handles, compiled against the Python lowering.

Each test stages a function once (``unijax.make_ir``), lowers the program both ways and
compares the results on random inputs to 1e-12 relative (float64), with ``inf``/``nan``
where NumPy gives them. Many primitives share one program, because each program costs a
Numba compile.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import unijax
from unijax import lax
from unijax.engine.lower import compile_python
from unijax.engine.lower_numba import compile_numba, generate, unsupported

pytest.importorskip("numba")

import array_api_compat.numpy as xp


def _python(program: Any, ns: Any) -> Any:
    return compile_python(program, ns)


def _check(fun: Callable[..., Any], *args: Any, lowered: bool = True) -> Any:
    """``fun``'s program through Numba and through Python agree on ``args``."""
    program = unijax.make_ir(fun)(*args)
    executable = compile_numba(program, xp, fallback=_python)
    expected = compile_python(program, xp)(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's own overflow/invalid warnings
        got = executable(*args)
    assert (executable.lowering == "numba") is lowered, executable.lowering_reason
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        assert g.shape == e.shape
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        if e.dtype.kind == "f":
            # float32 transcendental functions may differ from NumPy's SIMD loops by an
            # ulp (libm's expf/sinf); float64 results agree to 1e-12.
            rtol = 1e-12 if e.dtype == np.float64 else 4 * float(np.finfo(e.dtype).eps)
            np.testing.assert_allclose(g, e, rtol=rtol, atol=0, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, e)
    return executable


@pytest.fixture(autouse=True)
def _quiet_numpy() -> Any:
    with np.errstate(all="ignore"):
        yield


_UNARY = ("exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "sin", "cos", "tan",
          "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "abs",
          "negative", "positive", "square", "floor", "ceil", "trunc")
_BINARY = ("add", "subtract", "multiply", "divide", "pow", "maximum", "minimum", "atan2",
           "hypot", "copysign", "logaddexp")
_COMPARE = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")


def _specials(n: int, rng: Any) -> Any:
    x = rng.standard_normal(n) * 3
    x[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0]
    return x


def test_float_elementwise_primitives_match_python_lowering() -> None:
    rng = np.random.default_rng(0)
    x, y = _specials(40, rng), _specials(40, rng)[::-1].copy()

    def f(x, y):
        outs = [getattr(x.__array_namespace__(), name)(x) for name in _UNARY]
        outs += [getattr(x.__array_namespace__(), name)(x, y) for name in _BINARY]
        outs += [getattr(x.__array_namespace__(), name)(x, y) for name in _COMPARE]
        m = x.__array_namespace__()
        outs += [m.isnan(x), m.isinf(x), m.isfinite(x), m.where(x > y, x, 0.5 * y),
                 m.clip(x, -1.0, 2.0), m.clip(x, None, 0.5), m.logical_and(x > 0, y > 0),
                 m.logical_or(x > 0, y > 0), m.logical_not(x > 0),
                 m.logical_xor(x > 0, y > 0), m.astype(x > 0, m.float64) * 2.5]
        return outs

    _check(f, x, y)


def test_broadcast_zero_d_empty_and_weak_scalars() -> None:
    rng = np.random.default_rng(1)

    def f(a, b, s, z, e):
        m = a.__array_namespace__()
        return [m.tanh(a * b + s), a * z + 1.0, m.exp(z) * 2.0, e * 3.0 - 1.0,
                m.sum(e), m.sum(a * b, axis=0), m.max(a * b, axis=1, keepdims=True),
                m.broadcast_to(z, (2, 3)) + s]

    _check(f, rng.standard_normal((4, 1)), rng.standard_normal((1, 5)), 0.25,
           np.asarray(1.5), np.zeros((0, 3)))


def test_integer_and_bool_arrays() -> None:
    rng = np.random.default_rng(2)
    i = rng.integers(-50, 50, (3, 4)).astype(np.int32)
    j = rng.integers(1, 9, (3, 4)).astype(np.int64)
    u = rng.integers(0, 200, (4,)).astype(np.uint8)
    b = rng.random((3, 4)) > 0.5

    def f(i, j, u, b):
        m = i.__array_namespace__()
        return [i + j, i * 3, i - j, m.abs(i), -u, u + 100, i / j, m.maximum(i, j),
                i < j, m.bitwise_and(i, j), m.bitwise_xor(b, i > 0), m.where(b, i, j),
                m.astype(i, m.float32) * 0.5, m.astype(b, m.int64), m.sum(b), m.sum(i, axis=1),
                m.prod(j, axis=0), m.min(i), m.max(u), m.astype(i * 1.5, m.int16)]

    _check(f, i, j, u, b)


def test_float32_chain_rounds_like_numpy() -> None:
    x = np.linspace(-3, 3, 50, dtype=np.float32)

    def f(x):
        m = x.__array_namespace__()
        return [m.exp(m.sin(x) * 0.1 + x / 3.0), m.mean(x * x), m.sum(m.tanh(x) + 2.0)]

    _check(f, x)


def test_reductions_and_structural_primitives() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4, 5))
    w = rng.standard_normal((5, 5))
    v = rng.standard_normal(5)

    def f(a, w, v):
        m = a.__array_namespace__()
        return [m.sum(a), m.sum(a, axis=(0, 2)), m.prod(a, axis=1, keepdims=True),
                m.mean(a, axis=-1), m.min(m.exp(a), axis=(1,)), m.max(a),
                w @ v, v @ w, v @ v, w @ w, m.matrix_transpose(w) @ v,
                m.reshape(a, (12, 5)) @ w, m.permute_dims(a, (2, 0, 1)) * 2.0,
                m.moveaxis(a, 0, -1) + 1.0, m.expand_dims(v, axis=0) * v,
                m.squeeze(m.reshape(v, (1, 5)), axis=0), m.sum(m.exp(a) * 2.0 + a)]

    _check(f, a, w, v)


def test_large_sum_rounding_within_tolerance() -> None:
    x = np.random.default_rng(4).random(200_000)
    _check(lambda x: [x.__array_namespace__().sum(x * 1.5)], x)


# --- control flow -----------------------------------------------------------------------------


def _rnn(w, h0, xs):
    m = h0.__array_namespace__()

    def step(h, x):
        h = m.tanh(w @ h + x)
        return h, m.sum(h * h)

    h, ys = lax.scan(step, h0, xs)
    return m.sum(h) + m.sum(ys)


def _ew(h0, xs):
    m = h0.__array_namespace__()

    def step(h, x):
        return m.tanh(0.9 * h + x), None

    h, _ = lax.scan(step, h0, xs, reverse=True)
    return m.sum(h * h)


def test_scan_forward_grad_and_vmap_compile_natively() -> None:
    rng = np.random.default_rng(5)
    w, h0, xs = rng.standard_normal((4, 4)) / 2, rng.standard_normal(4), rng.standard_normal(
        (7, 4))
    _check(_rnn, w, h0, xs)
    _check(unijax.grad(_rnn, argnums=(0, 1, 2)), w, h0, xs)
    _check(_ew, h0, xs)
    _check(unijax.grad(_ew, argnums=(0, 1)), h0, xs)
    _check(unijax.vmap(_ew, in_axes=(0, None)), rng.standard_normal((3, 4)), xs)


def test_fori_while_cond_and_switch() -> None:
    def f(x, k):
        m = x.__array_namespace__()
        y = lax.fori_loop(0, 5, lambda i, v: v * 1.5 + i, x)
        z = lax.while_loop(lambda v: m.sum(v) < 100.0, lambda v: v * 2.0 + 1.0, y)
        c = lax.cond(m.sum(z) > 50.0, lambda v: v - 1.0, lambda v: v * 3.0, z)
        s = lax.switch(k, [lambda v: v + 1.0, lambda v: m.sin(v), lambda v: v * v], c)
        n = lax.fori_loop(0, k, lambda i, v: v + m.cos(v), s)  # traced bound: a while loop
        return n

    x = np.linspace(0.1, 0.5, 3)
    for k in (0, 1, 2, 7):
        _check(f, x, np.asarray(k))
    _check(unijax.grad(lambda x: _sum(lax.fori_loop(0, 4, lambda i, v: m_sin(v) * v, x))), x)
    _check(unijax.jacfwd(lambda x: f(x, np.asarray(2))), x)


def m_sin(v: Any) -> Any:
    return v.__array_namespace__().sin(v)


def _sum(v: Any) -> Any:
    return v.__array_namespace__().sum(v)


def test_jit_with_numba_option_matches_eager_and_reports_lowering() -> None:
    rng = np.random.default_rng(6)
    w, h0, xs = rng.standard_normal((4, 4)) / 2, rng.standard_normal(4), rng.standard_normal(
        (9, 4))
    unijax.config.update("jit_compiler", "numba")
    try:
        g = unijax.jit(unijax.grad(_rnn))
        first, second = g(w, h0, xs), g(w, h0, xs)
    finally:
        unijax.config.update("jit_compiler", None)
    expected = unijax.grad(_rnn)(w, h0, xs)
    np.testing.assert_allclose(first, expected, rtol=1e-12)
    np.testing.assert_allclose(second, expected, rtol=1e-12)


# --- fallback, options, cache -------------------------------------------------------------------


def test_unsupported_primitive_falls_back_to_python_with_reason() -> None:
    x = np.asarray([3.0, 1.0, 2.0])
    executable = _check(lambda x: [x.__array_namespace__().sort(x) * 2.0], x, lowered=False)
    assert "sort" in executable.lowering_reason
    program = unijax.make_ir(lambda x: x.__array_namespace__().sort(x))(x)
    assert "sort" in (unsupported(program) or "")


def test_auto_compiles_when_hot_and_loads_cached_code_at_once(monkeypatch: Any,
                                                               tmp_path: Any) -> None:
    from unijax.engine import lower_numba

    monkeypatch.setenv("UNIJAX_CACHE_DIR", str(tmp_path))
    x = np.linspace(0, 1, 5)
    plain = unijax.make_ir(lambda x: x.__array_namespace__().sin(x) * 2.0)(x)
    loop = unijax.make_ir(lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2.0, x))(x)
    lazy = compile_numba(plain, xp, fallback=_python, when="auto")
    for _ in range(lower_numba.HOT_CALLS - 1):
        np.testing.assert_allclose(lazy(x)[0], np.sin(x) * 2.0, rtol=1e-12)
    assert lazy.lowering == "python", lazy.lowering_reason
    np.testing.assert_allclose(lazy(x)[0], np.sin(x) * 2.0, rtol=1e-12)
    assert lazy.lowering == "numba", lazy.lowering_reason
    looped = compile_numba(loop, xp, fallback=_python, when="auto")
    for _ in range(lower_numba.LOOP_CALLS - 1):
        np.testing.assert_allclose(looped(x)[0], x * 8.0)
    assert looped.lowering == "python"
    np.testing.assert_allclose(looped(x)[0], x * 8.0)
    assert looped.lowering == "numba" and looped.compile_seconds is not None
    again = compile_numba(loop, xp, fallback=_python, when="auto")  # on disk now
    assert again.lowering == "numba" and "disk" in again.lowering_reason
    np.testing.assert_allclose(again(x)[0], x * 8.0)


def test_option_validation_and_python_choice(clean_config: None) -> None:
    with pytest.raises(unijax.errors.ConfigError, match="jit_compiler"):
        unijax.config.update("jit_compiler", "llvm")
    unijax.config.update("jit_compiler", "python")
    f = unijax.jit(lambda x: lax.fori_loop(0, 3, lambda i, v: v + 1.0, x))
    np.testing.assert_allclose(f(np.zeros(2)), 3.0)
    np.testing.assert_allclose(f(np.zeros(2)), 3.0)


def test_env_variable_sets_jit_compiler(clean_config: None, monkeypatch: Any) -> None:
    monkeypatch.setenv("UNIJAX_JIT_COMPILER", "NUMBA")
    unijax.config.reload()
    assert unijax.config.read("jit_compiler") == "numba"


def test_numba_without_numba_names_the_extra(clean_config: None, monkeypatch: Any) -> None:
    import unijax_numpy

    monkeypatch.setattr(unijax_numpy, "numba_available", lambda: False)
    unijax.config.update("jit_compiler", "numba")
    with pytest.raises(unijax.errors.MissingDependencyError, match=r"unijax\[numba\]"):
        unijax.jit(lambda x: x * 2.0)(np.ones(2))
    unijax.config.update("jit_compiler", "auto")
    np.testing.assert_allclose(unijax.jit(lambda x: x * 3.0)(np.ones(2)), 3.0)


def test_generated_source_goes_to_the_disk_cache(monkeypatch: Any, tmp_path: Any) -> None:
    monkeypatch.setenv("UNIJAX_CACHE_DIR", str(tmp_path))
    x = np.linspace(0, 1, 3)
    program = unijax.make_ir(lambda x: x.__array_namespace__().cos(x) + 0.25)(x)
    executable = compile_numba(program, xp, fallback=_python)
    np.testing.assert_allclose(executable(x)[0], np.cos(x) + 0.25, rtol=1e-12)
    files = list((tmp_path / "numba").glob("unijax_*.py"))
    assert len(files) == 1 and files[0].read_text() == generate(program)[0]
    assert math.isfinite(executable.compile_seconds or math.nan)


def test_read_only_inputs_and_weak_scalar_outputs() -> None:
    x = np.linspace(0, 1, 4)
    x.setflags(write=False)
    program = unijax.make_ir(
        lambda x, s: [lax.fori_loop(0, 3, lambda i, v: v * 2.0 + s, x), s * 2.0])(x, 1.5)
    executable = compile_numba(program, xp, fallback=_python)
    loop, doubled = executable(x, 1.5)
    assert executable.lowering == "numba", executable.lowering_reason
    expected = compile_python(program, xp)(x, 1.5)
    np.testing.assert_allclose(loop, expected[0], rtol=1e-12)
    assert type(doubled) is type(expected[1]) is float and doubled == expected[1]


def test_program_of_large_matrix_products_keeps_the_python_lowering() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((80, 60)), rng.standard_normal((60, 70))
    executable = _check(lambda a, b: [xp_tanh(a @ b) * 2.0], a, b, lowered=False)
    assert "matrix products" in executable.lowering_reason
    small = _check(lambda a, b: [xp_tanh(a @ b) * 2.0], a[:4, :3], b[:3, :5])
    assert small.lowering == "numba"


def xp_tanh(v: Any) -> Any:
    return v.__array_namespace__().tanh(v)


def test_sum_of_outer_products_is_one_matrix_product() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((30, 7))

    def f(a, b):
        m = a.__array_namespace__()
        return [m.sum(m.reshape(a, (30, 5, 1)) * m.reshape(b, (30, 1, 7)), axis=0),
                m.sum(m.reshape(b, (30, 1, 7)) * m.reshape(a, (30, 5, 1)), axis=0)]

    _check(f, a, b)
    program = unijax.make_ir(f)(a, b)
    assert generate(program)[0].count("np.dot(") == 2


def test_elementwise_and_reductions_under_vmap_and_grad() -> None:
    rng = np.random.default_rng(9)
    xs = rng.standard_normal((6, 5))

    def loss(x):
        m = x.__array_namespace__()
        return m.sum(m.tanh(x) * m.exp(-x * x) + m.maximum(x, 0.1) / (1.0 + m.abs(x))) + \
            m.max(m.sin(x)) * m.mean(m.sqrt(x * x + 1.0))

    _check(unijax.vmap(unijax.grad(loss)), xs)
    _check(unijax.grad(lambda x: unijax.vmap(loss)(x)[2] * 2.0), xs)
    _check(unijax.jacfwd(lambda x: m_sin(x) * x), xs[0])
