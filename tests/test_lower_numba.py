"""The Numba lowering: every primitive it handles, compiled against the Python lowering.

Each test stages a function once (``unijax.make_ir``), lowers the program both ways and
compares the results on random inputs to 1e-12 relative (float64), with ``inf``/``nan``
where NumPy gives them. Many primitives share one program, because each program costs a
Numba compile.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
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
          "negative", "positive", "square", "floor", "ceil", "trunc", "sign")
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


def test_basic_indexing_stack_and_concat() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 5))
    w = rng.standard_normal((6, 6))

    def f(x, w):
        m = x.__array_namespace__()
        return [x[1:3], x[::-1], x[2], x[:, 1:4] * 2.0, x[None, 1:], x[1, 2], x[0][None],
                x[3::-2, ::2] + 1.0, w[1:5, 2:4] @ x[:2, :], w[::2, ::2] @ w[::2, 0],
                m.stack([x, x * 2], axis=1), m.stack([x[0, 0], x[1, 1]]),
                m.stack([x[0], x[1]], axis=-1), m.concat([x, x * 3]),
                m.concat([x, x[:, :2]], axis=1), m.concat([x[:0], x[1:2]]),
                m.concat([x[0], w[0]], axis=None)]

    _check(f, x, w)


def test_shifts_remainders_and_index_reductions() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5))
    x[0, 1] = np.nan
    i = rng.integers(-40, 40, (4, 5)).astype(np.int32)
    u = rng.integers(0, 2**32 - 1, (6,), dtype=np.uint64).astype(np.uint32)
    amounts = np.array([-1, 0, 1, 31, 32, 40], np.int32)

    def f(x, i, u, s):
        m = x.__array_namespace__()
        return [m.remainder(x, 3.0), m.remainder(x, -0.0), m.remainder(i, 3),
                i // 3, m.remainder(i, i % 4), m.floor_divide(i, i % 3),
                m.floor_divide(x, 0.7), m.any(x > 0), m.all(x > -5, axis=0),
                m.any(i == 3, axis=1, keepdims=True), m.all(x), m.any(m.isnan(x)),
                m.argmax(x), m.argmin(x, axis=1), m.argmax(i, axis=0, keepdims=True),
                m.argmin(i), m.argmax(m.abs(x[1:])), m.argmax(x, axis=-1, keepdims=True),
                m.bitwise_left_shift(i, 3), m.bitwise_right_shift(i, 2),
                m.bitwise_left_shift(u, 13), m.bitwise_right_shift(u, 19),
                m.bitwise_left_shift(s * 0 + 5, s), m.bitwise_right_shift(s * 0 - 7, s),
                m.bitwise_right_shift(s * 0 + 7, s),
                m.bitwise_right_shift(u, m.astype(s, m.uint32)),
                m.bitwise_left_shift(u, m.astype(s, m.uint32)), m.sign(i), m.sign(u)]

    _check(f, x, i, u, amounts)


def test_where_arms_run_only_where_taken() -> None:
    """Long arms go inside an ``if``: the values are the same (``nan``/``inf`` included),
    shared and kept values stay outside, and nested selects nest."""
    rng = np.random.default_rng(7)
    x = _specials(64, rng)
    y = rng.standard_normal(64)

    def f(x, y):
        m = x.__array_namespace__()
        shared = m.exp(x) * 0.5
        big = m.log1p(m.abs(x)) * 3.0 + m.sin(x) - m.cos(y) * 2.0 + shared
        small = y + 1.0
        other = m.sqrt(m.abs(y)) * m.tanh(x) + m.exp(-y * y) - 1.0
        inner = m.where(y > 0.5, m.expm1(y) * m.atan(x) + y / 3.0 - 0.25, other)
        return [m.where(x > 0, big, small), m.where(m.isnan(x), small, inner),
                m.where(x < -1, shared, big), m.sum(m.where(y > 0, big * big + 1.0, small))]

    executable = _check(f, x, y)
    assert "if " in (executable.source or "").split("def run", 1)[1]


def test_random_draws_compile_and_match_the_python_lowering() -> None:
    from unijax import random

    def f(key):
        return [random.normal(key, (257,)), random.uniform(key, (3, 5), "float32"),
                random.bits(key, (9,)), random.split(key, 3), random.randint(key, (7,), 0, 9),
                random.bernoulli(key, 0.3, (6,)), random.gamma(key, 2.0, (5,)),
                random.categorical(key, np.linspace(0.0, 1.0, 5), shape=(4,)),
                random.laplace(key, (6,)), random.choice(key, 9, (3,)),
                random.dirichlet(key, np.ones(3), (2,)), random.truncated_normal(key, -1.0, 2.0)]

    _check(f, random.key(3))


def test_large_elementwise_programs_split_rows_over_threads_bit_for_bit() -> None:
    """A program ending in one large fused group runs its rows on several threads and
    gives the single-threaded values exactly; other programs are not split."""
    from unijax.engine.numba_codegen import ROWS_MIN_ELEMENTS, generate_rows

    rng = np.random.default_rng(8)
    x = rng.standard_normal((1 << 10, (ROWS_MIN_ELEMENTS >> 10) + 3))
    y = rng.standard_normal(x.shape[1])

    def f(x, y):
        m = x.__array_namespace__()
        s = m.sum(y)  # a small prologue, repeated by every thread
        first = m.exp(-x * x) * m.sin(x) + s
        return [first, m.where(x > y, m.log1p(m.abs(first)), y * 2.0)]

    program = unijax.make_ir(f)(x, y)
    assert generate_rows(program) is not None
    split = compile_numba(program, xp, fallback=_python, threads=3)
    single = compile_numba(program, xp, fallback=_python, threads=1)
    got, want = split(x, y), single(x, y)
    assert split._row_outputs is not None and single._row_outputs is None
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(got[0], compile_python(program, xp)(x, y)[0], rtol=1e-12)
    # Not split: a reduction at the end, a small program, an output of another shape.
    for fun, args in ((lambda x: [x.__array_namespace__().sum(x * 2.0)], (x,)),
                      (lambda x: [x * 2.0], (x[:4],)),
                      (lambda x, y: [x * 2.0, y + 1.0], (x, y))):
        assert generate_rows(unijax.make_ir(fun)(*args)) is None


_FORK_SCRIPT = """
import multiprocessing, numpy as np, unijax
import array_api_compat.numpy as xp
from unijax.engine.lower import compile_python
from unijax.engine.lower_numba import compile_numba
from unijax.engine.numba_codegen import ROWS_MIN_ELEMENTS

x = np.linspace(0.0, 1.0, ROWS_MIN_ELEMENTS).reshape(1024, -1)
program = unijax.make_ir(lambda x: [x.__array_namespace__().exp(x) * 3.0])(x)
split = compile_numba(program, xp, fallback=compile_python, threads=2)
want = split(x)[0]  # compiles, and starts the pool in this process

def child(queue):
    queue.put(split(x)[0])

ctx = multiprocessing.get_context("fork")
queue = ctx.Queue()
proc = ctx.Process(target=child, args=(queue,))
proc.start()
got = queue.get(timeout=60)
proc.join(60)
assert np.array_equal(got, want) and proc.exitcode == 0
print("forked child ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_row_split_works_in_a_forked_child(tmp_path: Any) -> None:
    """A child forked after the thread pool started gets its own (the parent's threads
    do not exist there, and work queued for them would wait for ever). In a fresh
    interpreter: forking one with JAX's or torch's threads running is unsafe in itself."""
    env = {**os.environ, "UNIJAX_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0 and "forked child ok" in out.stdout, out.stderr[-2000:]


def test_jit_threads_option_validates_and_reaches_the_lowering(clean_config: None) -> None:
    unijax.config.update("jit_threads", "3")
    assert unijax.config.read("jit_threads") == 3
    with pytest.raises(unijax.errors.ConfigError, match="non-negative integer"):
        unijax.config.update("jit_threads", -1)
    unijax.config.update("jit_compiler", "numba")
    unijax.config.update("jit_threads", 1)
    x = np.linspace(0.0, 1.0, 1 << 21).reshape(1 << 11, 1 << 10)
    f = unijax.jit(lambda x: x.__array_namespace__().exp(x) * 2.0)
    f(x)  # staging runs NumPy; the compiled program runs from the second call
    np.testing.assert_allclose(f(x), np.exp(x) * 2.0, rtol=1e-15)
    unijax.config.update("jit_threads", 2)
    g = unijax.jit(lambda x: x.__array_namespace__().exp(x) * 2.0)
    g(x)
    np.testing.assert_array_equal(g(x), f(x))


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


def test_generated_source_is_the_same_for_every_staging() -> None:
    """The disk cache is keyed by the source: staging the same function again (other
    Vars, hashing otherwise) must give the same text, or a new process compiles again."""
    rng = np.random.default_rng(12)
    w, h0, xs = rng.standard_normal((4, 4)), rng.standard_normal(4), rng.standard_normal((9, 4))
    sources = set()
    for _ in range(3):
        unijax.make_ir(lambda x: x * 2.0)(xs)  # shifts the Var counter between stagings
        sources.add(generate(unijax.make_ir(unijax.grad(_rnn))(w, h0, xs))[0])
        sources.add(generate(unijax.make_ir(unijax.grad(_ew, argnums=(0, 1)))(h0, xs))[0])
    assert len(sources) == 2


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


# --- which lowering runs a jit-compiled function (jit(f).lowering) ---------------------------


def _scan_cumsum(x: Any) -> Any:
    def step(carry: Any, v: Any) -> Any:
        carry = carry * 0.5 + v
        return carry, carry

    return lax.scan(step, x[0] * 0.0, x)[1]


def test_lowering_of_a_scan_under_numba_option_is_numba(clean_config: None, monkeypatch: Any,
                                                        tmp_path: Any) -> None:
    import dataclasses

    from unijax.extend import Lowering

    monkeypatch.setenv("UNIJAX_CACHE_DIR", str(tmp_path))
    unijax.config.update("jit_compiler", "numba")
    f = unijax.jit(_scan_cumsum)
    x = np.linspace(0.0, 1.0, 6)
    before = f.lowering(x)
    assert isinstance(before, Lowering)
    assert (before.backend, before.name) == ("numpy", "numba"), before.reason
    assert "jit_compiler='numba'" in before.reason
    assert before.compile_seconds is None  # compiled and cached, not run yet
    assert f.cache_info()["numpy"] == (0, 0, 1, 256)
    expected = compile_python(unijax.make_ir(_scan_cumsum)(x), xp)(x)[0]
    np.testing.assert_allclose(f(x), expected, rtol=1e-12)
    assert f.cache_info()["numpy"].hits == 1  # the program lowering() cached ran
    after = f.lowering(x)
    assert after.name == "numba" and math.isfinite(after.compile_seconds or math.nan)
    assert str(after).startswith("numba on numpy: ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.name = "python"


def test_lowering_of_an_unsupported_primitive_is_python_and_names_it(clean_config: None
                                                                     ) -> None:
    unijax.config.update("jit_compiler", "numba")
    f = unijax.jit(lambda a: a.__array_namespace__().linalg.inv(a) * 2.0)
    a = np.eye(3) * 4.0
    lowering = f.lowering(a)
    assert lowering.name == "python", lowering.reason
    assert "linalg.inv" in lowering.reason and lowering.compile_seconds is None
    np.testing.assert_allclose(f(a), np.eye(3) * 0.5)
    assert f.lowering(a).name == "python"


def test_lowering_under_auto_moves_from_python_to_numba(clean_config: None, monkeypatch: Any,
                                                        tmp_path: Any) -> None:
    from unijax.engine import lower_numba

    monkeypatch.setenv("UNIJAX_CACHE_DIR", str(tmp_path))  # nothing on disk: no early load
    f = unijax.jit(lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2.0 + 1.0, x))
    x = np.linspace(0.0, 1.0, 4)
    first = f.lowering(x)
    assert first.name == "python" and "jit_compiler='auto'" in first.reason, first.reason
    for _ in range(lower_numba.LOOP_CALLS - 1):
        np.testing.assert_allclose(f(x), x * 8.0 + 7.0)
    assert f.lowering(x).name == "python"
    np.testing.assert_allclose(f(x), x * 8.0 + 7.0)  # the call that compiles
    hot = f.lowering(x)
    assert hot.name == "numba" and "auto" in hot.reason, hot.reason
    assert hot.compile_seconds is not None


def test_lowering_with_python_option_statics_and_enclosing_transforms(clean_config: None
                                                                      ) -> None:
    unijax.config.update("jit_compiler", "python")
    power = unijax.jit(lambda x, n: x ** n, static_argnums=1)
    x = np.linspace(0.0, 1.0, 3)
    assert power.lowering(x, 2).name == "python"
    power(x, 2)
    assert power.cache_info()["numpy"] == (1, 0, 1, 256)  # the same cache key as a call
    seen = []

    def outer(v: Any) -> Any:
        seen.append(unijax.jit(lambda w: w * 2.0).lowering(v))
        return v.__array_namespace__().sum(v * v)

    unijax.grad(outer)(x)
    assert seen[0].name == "traced" and "enclosing transform" in seen[0].reason


def test_lowering_on_jax_is_its_native_jit() -> None:
    jnp = pytest.importorskip("jax.numpy")
    f = unijax.jit(lambda x: x * 2.0)
    lowering = f.lowering(jnp.ones(3))
    assert (lowering.backend, lowering.name) == ("jax", "native")
    assert "jit" in lowering.reason and lowering.compile_seconds is None
