"""The engine's jit: equals eager, retraces exactly when the signature changes, caches."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.array_api import make_strategies_namespace

from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.jit import CacheInfo, JitFunction, make_ir
from unijax.engine.lower import compile_python
from unijax.engine.namespace import array_functions as ops
from unijax.errors import ConcretizationError, UnhashableStaticArgumentError

xps = make_strategies_namespace(xp)


def compiled_jit(fun: Callable[..., Any], **kwargs: Any) -> JitFunction:
    return JitFunction(fun, backend_compiler_lookup=lambda _xp: compile_python, **kwargs)


JITS = [JitFunction, compiled_jit]


def assert_tree_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_tree_equal(x, y)
    else:
        np.testing.assert_array_equal(a, b)
        assert getattr(a, "dtype", type(a)) == getattr(b, "dtype", type(b))


def _softplus(x: Any) -> Any:
    xp_ = array_namespace(x)
    return xp_.log(1.0 + xp_.exp(x))


FUNCTIONS: list[tuple[str, Callable[..., Any]]] = [
    ("elementwise", lambda x: ops.sin(x) * ops.cos(x) + 2.0),
    ("array_namespace", lambda x: _softplus(x) - array_namespace(x).tanh(x)),
    ("operators", lambda x: (x * x - x / 3.0) ** 2),
    ("reductions", lambda x: (ops.sum(x), ops.sum(x * x, axis=0))),
    ("reshape", lambda x: ops.reshape(ops.permute_dims(x, (1, 0)), (-1,))),
    ("matmul", lambda x: x @ ops.matrix_transpose(x)),
    ("identity", lambda x: x),
    ("constant", lambda x: np.arange(3.0)),
    ("python scalar output", lambda x: (x + 1, 7)),
    ("pytree output", lambda x: {"a": [x, ops.exp(x)], "b": (ops.sum(x),)}),
]


@pytest.mark.parametrize("make", JITS)
@pytest.mark.parametrize("fun", [f for _, f in FUNCTIONS], ids=[n for n, _ in FUNCTIONS])
def test_jit_equals_eager(make: Any, fun: Callable[..., Any]) -> None:
    jitted = make(fun)
    for k in range(3):  # the traced call, then compiled calls
        x = np.linspace(-1.0, 1.0, 6).reshape(2, 3) + k
        assert_tree_equal(jitted(x), fun(x))
    assert jitted.cache_info().misses == 1


@settings(deadline=None, max_examples=30)
@given(xps.arrays(dtype=st.sampled_from([np.float32, np.float64]),
                  shape=xps.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements={"min_value": -10, "max_value": 10}))
def test_jit_equals_eager_on_generated_arrays(x: Any) -> None:
    def f(x: Any) -> Any:
        y = ops.tanh(x) * 2.0 + x * 1.0 - ops.negative(-x)
        return y / (1.0 + ops.exp(-y)), ops.sum(y * y, axis=-1)

    jitted = compiled_jit(f)
    assert_tree_equal(jitted(x), f(x))
    x2 = x * 0.5
    assert_tree_equal(jitted(x2), f(x2))
    assert jitted.cache_info() == CacheInfo(hits=1, misses=1, size=1, maxsize=256)


# --- retracing ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", JITS)
def test_retraces_exactly_on_signature_changes(make: Any) -> None:
    traces: list[int] = []

    def f(x: Any, n: int) -> Any:
        traces.append(1)
        return x * n

    jitted = make(f, static_argnums=(1,))
    a = np.ones(3)
    jitted(a, 2)
    jitted(a + 1, 2)  # new values: no retrace
    assert jitted.cache_info() == CacheInfo(hits=1, misses=1, size=1, maxsize=256)
    jitted(np.ones(4), 2)  # shape
    jitted(np.ones(3, dtype=np.float32), 2)  # dtype
    jitted(a, 3)  # static value
    jitted(a, 2.0)  # static type (2 == 2.0, but they may trace differently)
    assert jitted.cache_info() == CacheInfo(hits=1, misses=5, size=5, maxsize=256)
    for args in [(a, 2), (np.ones(4), 2), (np.ones(3, dtype=np.float32), 2), (a, 3), (a, 2.0)]:
        jitted(*args)
    assert jitted.cache_info() == CacheInfo(hits=6, misses=5, size=5, maxsize=256)
    assert len(traces) == 5


def test_retraces_on_pytree_structure() -> None:
    jitted = compiled_jit(lambda tree: ops.sum(tree["x"]) + ops.sum(tree["y"][0]))
    a = np.ones(2)
    jitted({"x": a, "y": [a]})
    jitted({"x": a + 1, "y": [a]})
    jitted({"x": a, "y": (a,)})  # list -> tuple
    jitted({"x": a, "y": [a, a]})  # one more leaf
    assert jitted.cache_info()[:3] == (1, 3, 3)


def test_python_scalars_are_weak_dynamic_inputs() -> None:
    jitted = compiled_jit(lambda x, s: x * s)
    x = np.ones(3, dtype=np.float32)
    first = jitted(x, 2.0)
    second = jitted(x, 3.5)  # a new value is not a new signature
    assert first.dtype == second.dtype == np.float32
    np.testing.assert_array_equal(second, np.full(3, 3.5, dtype=np.float32))
    assert jitted.cache_info()[:2] == (1, 1)
    jitted(x, 2)  # int is another signature (it may promote differently)
    jitted(x, True)
    assert jitted.cache_info()[:2] == (1, 3)


@pytest.mark.parametrize("make", JITS)
def test_arithmetic_on_python_scalars_stays_weak(make: Any) -> None:
    def f(x: Any, s: Any) -> Any:
        return x * (s * s - 1.0)

    jitted = make(f)
    x = np.ones(2, dtype=np.float32)
    for s in (2.0, 3.0):
        out = jitted(x, s)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, f(x, s))


@pytest.mark.parametrize("make", JITS)
def test_array_api_strict_arrays(make: Any) -> None:
    import array_api_strict as xs

    def f(x: Any, s: Any) -> Any:
        xp_ = array_namespace(x)
        return xp_.sum(xp_.sin(x) * (s * s), axis=0), x * 1.0

    jitted = make(f)
    x = xs.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=xs.float32)
    for s in (2.0, 0.5):
        got, want = jitted(x, s), f(x, s)
        for g, w in zip(got, want, strict=True):
            assert type(g) is type(w) and g.dtype == w.dtype == xs.float32
            assert bool(xs.all(g == w))
    assert jitted.cache_info()[:2] == (1, 1)


def test_ten_thousand_calls_do_not_grow_the_cache() -> None:
    jitted = compiled_jit(lambda x, y: ops.sin(x) + y)
    x = np.ones(4)
    for i in range(10_000):
        jitted(x, float(i))
    assert jitted.cache_info() == CacheInfo(hits=9_999, misses=1, size=1, maxsize=256)


def test_cache_is_a_bounded_lru() -> None:
    jitted = compiled_jit(lambda x: x + 1.0, cache_size=2)
    one, two, three = np.ones(1), np.ones(2), np.ones(3)
    jitted(one)
    jitted(two)
    jitted(one)  # most recently used now
    jitted(three)  # evicts two
    assert jitted.cache_info() == CacheInfo(hits=1, misses=3, size=2, maxsize=2)
    jitted(one)
    jitted(two)
    assert jitted.cache_info() == CacheInfo(hits=2, misses=4, size=2, maxsize=2)


def test_clear_cache_forces_a_retrace() -> None:
    jitted = JitFunction(lambda x: x + 1.0)
    jitted(np.ones(2))
    jitted.clear_cache()
    assert jitted.cache_info().size == 0
    jitted(np.ones(2))
    assert jitted.cache_info()[:3] == (0, 2, 1)


# --- semantics ------------------------------------------------------------------------------


def test_side_effects_happen_at_trace_time_only() -> None:
    log: list[str] = []

    def f(x: Any) -> Any:
        log.append("traced")
        return x + 1.0

    jitted = compiled_jit(f)
    for _ in range(3):
        jitted(np.ones(2))
    assert log == ["traced"]


def test_python_if_on_traced_value_raises_concretization_error() -> None:
    def f(x: Any) -> Any:
        if x > 0:
            return x
        return -x

    with pytest.raises(ConcretizationError, match="static_argnums") as info:
        JitFunction(f)(np.asarray(1.0))
    assert "bool()" in str(info.value)
    assert JitFunction(f, static_argnums=(0,))(1.0) == 1.0


def test_unhashable_static_argument_error() -> None:
    jitted = JitFunction(lambda x, shape: ops.reshape(x, shape), static_argnums=(1,))
    with pytest.raises(UnhashableStaticArgumentError) as info:
        jitted(np.ones(4), [2, 2])
    text = str(info.value)
    assert "positional argument 1" in text
    assert "list" in text
    assert "Wrap it in a tuple or pass it as a dynamic array argument" in text
    assert isinstance(info.value, TypeError)
    assert jitted(np.ones(4), (2, 2)).shape == (2, 2)


def test_static_argnames_and_dynamic_kwargs() -> None:
    def f(x: Any, *, scale: Any, mode: str) -> Any:
        return x * scale if mode == "mul" else x + scale

    jitted = compiled_jit(f, static_argnames=("mode",))
    x = np.ones(2)
    np.testing.assert_array_equal(jitted(x, scale=np.full(2, 3.0), mode="mul"), [3.0, 3.0])
    np.testing.assert_array_equal(jitted(x, scale=np.full(2, 4.0), mode="mul"), [4.0, 4.0])
    np.testing.assert_array_equal(jitted(x, scale=np.full(2, 4.0), mode="add"), [5.0, 5.0])
    assert jitted.cache_info()[:2] == (1, 2)
    with pytest.raises(UnhashableStaticArgumentError, match="keyword argument 'mode'"):
        jitted(x, scale=x, mode={"a": 1})


def test_negative_static_argnums() -> None:
    jitted = compiled_jit(lambda x, n: x ** n, static_argnums=(-1,))
    np.testing.assert_array_equal(jitted(np.full(2, 3.0), 2), [9.0, 9.0])


def test_non_array_argument_leaf_is_rejected() -> None:
    with pytest.raises(TypeError, match="static_argnums"):
        JitFunction(lambda x, s: x)(np.ones(2), "text")


def test_constant_outputs_are_fresh_arrays() -> None:
    table = np.asarray([1.0, 2.0])
    jitted = compiled_jit(lambda x: (x + table, table))
    for _ in range(3):
        _, out = jitted(np.ones(2))
        out[0] = -1.0  # writing into a result must not change the next call's
    np.testing.assert_array_equal(jitted(np.ones(2))[1], [1.0, 2.0])
    np.testing.assert_array_equal(table, [1.0, 2.0])


def test_jit_inside_grad_is_not_staged() -> None:
    inner = compiled_jit(lambda x: ops.sin(x) * x)
    x = np.asarray([0.5, 1.0])
    _, backward = vjp_flat(lambda xs: [inner(xs[0])], [x])
    np.testing.assert_allclose(backward([np.ones(2)])[0], np.cos(x) * x + np.sin(x))
    _, tangents = jvp_flat(lambda xs: [inner(xs[0])], [x], [np.ones(2)])
    np.testing.assert_allclose(tangents[0], np.cos(x) * x + np.sin(x))
    assert inner.cache_info()[:3] == (0, 0, 0)


def test_grad_inside_jit_is_staged_once() -> None:
    def grad_f(x: Any) -> Any:
        _, backward = vjp_flat(lambda xs: [ops.sum(ops.sin(xs[0]) * ops.cos(xs[0]))], [x])
        return backward([np.asarray(1.0)])[0]

    jitted = compiled_jit(grad_f)
    for k in range(3):
        x = np.linspace(0.0, 1.0, 4) + k
        np.testing.assert_allclose(jitted(x), np.cos(2 * x))
    assert jitted.cache_info()[:2] == (2, 1)
    program = make_ir(grad_f)(np.zeros(4))
    assert program.primitive_counts()["cos"] == 1  # CSE across forward and backward


def test_nested_jit_stages_into_the_outer_program() -> None:
    inner = compiled_jit(lambda x: ops.exp(x) + 1.0)
    outer = compiled_jit(lambda x: inner(x) * 2.0)
    x = np.asarray([0.0, 1.0])
    np.testing.assert_allclose(outer(x), (np.exp(x) + 1.0) * 2.0)
    np.testing.assert_allclose(outer(x + 1), (np.exp(x + 1) + 1.0) * 2.0)
    assert inner.cache_info()[:3] == (0, 0, 0)
    assert outer.cache_info()[:3] == (1, 1, 1)


def test_closing_over_an_outer_tracer_is_never_cached() -> None:
    x = np.asarray([0.3, 0.7])

    def outer(ys: list[Any]) -> list[Any]:
        y = ys[0]
        jitted = compiled_jit(lambda z: ops.sin(y) * z)
        first = jitted(np.full(2, 2.0))
        second = jitted(np.full(2, 2.0))
        assert jitted.cache_info()[:3] == (0, 2, 0)
        return [first + second]

    outs, backward = vjp_flat(outer, [x])
    np.testing.assert_allclose(outs[0], 4.0 * np.sin(x))
    np.testing.assert_allclose(backward([np.ones(2)])[0], 4.0 * np.cos(x))


def test_compiler_lookup_is_asked_once_per_namespace() -> None:
    asked: list[Any] = []

    def lookup(namespace: Any) -> Any:
        asked.append(namespace)
        return compile_python

    jitted = JitFunction(lambda x: x + 1.0, backend_compiler_lookup=lookup)
    jitted(np.ones(1))
    jitted(np.ones(2))
    assert asked == [xp]


def test_backend_object_supplies_namespace_and_compiler() -> None:
    used: list[str] = []

    def compiler(program: Any, namespace: Any) -> Any:
        used.append("compiled")
        return compile_python(program, namespace)

    backend = types.SimpleNamespace(namespace=xp, compiler=compiler)
    jitted = JitFunction(lambda x, y: x * y, backend=backend)
    np.testing.assert_array_equal(jitted(np.ones(2), 3.0), [3.0, 3.0])
    np.testing.assert_array_equal(jitted(np.ones(2), 4.0), [4.0, 4.0])
    assert used == ["compiled"]


def test_jit_function_wraps_name_and_doc() -> None:
    def loss(x: Any) -> Any:
        """The loss."""
        return x

    jitted = JitFunction(loss)
    assert jitted.__name__ == "loss"
    assert jitted.__doc__ == "The loss."


def test_make_ir_prints_the_optimised_program() -> None:
    def f(x: Any, y: Any) -> Any:
        return ops.sin(x) * y + ops.sin(x) * 1.0

    program = make_ir(f)(np.zeros(3, dtype=np.float32), 2.0)
    assert str(program) == (
        "{ lambda ; a:f32[3] b:float[] . let\n"
        "    c:f32[3] = sin a\n"
        "    d:f32[3] = multiply c b\n"
        "    e:f32[3] = add d c\n"
        "  in (e,) }"
    )


def test_make_ir_with_static_arguments() -> None:
    program = make_ir(lambda x, n: x ** n, static_argnums=(1,))(np.ones(2), 3)
    assert program.primitive_counts() == {"pow": 1}
    assert len(program.inputs) == 1
