"""Buffer planning: results written into dead buffers and slots, never into live values."""

from __future__ import annotations

import dataclasses
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest
import unijax_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import unijax
from unijax.engine.buffers import BufferPlan, plan_buffers
from unijax.engine.ir import Program
from unijax.engine.lower import compile_python, interpret
from unijax.engine.namespace import array_functions as ops
from unijax.engine.optimize import optimize
from unijax.engine.staging import stage

#: NumPy's buffer support with every non-scalar array taking part, however small.
ALL_ARRAYS = dataclasses.replace(unijax_numpy.BUFFERS, min_bytes=0)


def staged(fun: Callable[..., Any], *args: Any) -> Program:
    program, _ = stage(lambda xs: list(fun(*xs)), list(args))
    return program


def numpy_kind(eqn: Any) -> Any:
    form = ALL_ARRAYS.out_form(eqn.primitive)
    if form is not None:
        return "elementwise" if form.elementwise else "general"
    return "new" if ALL_ARRAYS.returns_new(eqn.primitive) else None


def plan_for(fun: Callable[..., Any], *args: Any) -> tuple[Program, BufferPlan]:
    program = staged(fun, *args)
    return program, plan_buffers(program, numpy_kind, min_bytes=0)


def written(program: Program, plan: BufferPlan) -> list[tuple[str, str]]:
    return [(program.equations[i].primitive.name, w) for i, w in plan.writes.items()]


X = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
S = np.linspace(0.5, 2.0, 9).reshape(3, 3)


def test_a_chain_of_elementwise_ops_runs_in_one_slot() -> None:
    program, plan = plan_for(lambda x: (ops.sum(ops.exp(ops.sin(x) * 2.0)),), X)
    assert written(program, plan) == [("sin", "slot 0"), ("multiply", "slot 0"),
                                      ("exp", "slot 0")]
    assert plan.slots == [((3, 4), np.dtype("float64"))]


def test_returned_values_never_live_in_a_slot() -> None:
    # sin's buffer is dead when multiply runs, but multiply's result is returned.
    program, plan = plan_for(lambda x: (ops.sin(x) * 2.0,), X)
    assert written(program, plan) == [("sin", "slot 0"), ("multiply", "new 1")]


def test_a_view_keeps_its_base_buffer_alive() -> None:
    def fun(x: Any) -> Any:
        t = ops.sin(x)
        v = ops.matrix_transpose(t)  # a view of t: t's buffer is live while v is
        u = ops.exp(x)
        return (ops.sum(v + ops.matrix_transpose(u)),)

    program, plan = plan_for(fun, S)
    writes = dict(written(program, plan))
    assert writes["sin"] != writes["exp"]  # exp may not take t's buffer


def test_a_general_equation_never_writes_into_its_own_operand() -> None:
    def fun(x: Any) -> Any:
        t = ops.sin(x)
        return (ops.sum(ops.matmul(t, t)),)

    program, plan = plan_for(fun, S)
    (i,) = [i for i, e in enumerate(program.equations) if e.primitive.name == "matmul"]
    assert plan.slot[i] != plan.slot[0]  # t dies at matmul, but matmul reads all of it


def test_inputs_and_constants_are_never_written_into() -> None:
    c = np.ones((3, 4))
    program, plan = plan_for(lambda x: (ops.sum(ops.sin(x) + c),), X)
    targets = set(plan.out.values())
    assert not targets & {*program.inputs, *program.constants}


def test_intermediates_above_the_slot_limit_are_allocated_per_call() -> None:
    program = staged(lambda x: (ops.sum(ops.exp(ops.sin(x) * 2.0)),), X)
    plan = plan_buffers(program, numpy_kind, min_bytes=0, max_slot_bytes=X.nbytes - 1)
    assert plan.slots == []
    assert written(program, plan) == [("sin", "new 0"), ("multiply", "new 0"),
                                      ("exp", "new 0")]  # still one buffer for the chain


def test_small_arrays_are_left_alone() -> None:
    program = staged(lambda x: (ops.sum(ops.sin(x) * 2.0),), X)
    plan = plan_buffers(program, numpy_kind, min_bytes=X.nbytes + 1)
    assert plan == BufferPlan()


def test_large_values_are_released_after_their_last_use() -> None:
    program, plan = plan_for(lambda x: (ops.sum(ops.sin(x) * ops.cos(x)),), X)
    sin_out, cos_out = program.equations[0].outputs[0], program.equations[1].outputs[0]
    (mul_index,) = [i for i, e in enumerate(program.equations) if e.primitive.name == "multiply"]
    assert plan.out[mul_index] is sin_out  # multiply writes into its dying operand
    assert set(plan.release[mul_index]) == {sin_out, cos_out}
    f = compile_python(program, xp, buffers=ALL_ARRAYS)
    lines = [line.strip() for line in f.source.splitlines()]
    mul_line = next(i for i, line in enumerate(lines) if "out_multiply" in line)
    assert lines[mul_line + 1].startswith("del ")
    assert f.buffer_plan == plan


# --- compiled with buffers == interpreted, call after call -----------------------------------

UNARY = [ops.sin, ops.exp, ops.tanh, ops.negative, ops.matrix_transpose,
         lambda v: ops.reshape(ops.reshape(v, (-1,)), (3, 3)), lambda v: v[:, ::-1],
         lambda v: ops.sum(v, axis=0, keepdims=True) + v]
BINARY = [ops.add, ops.multiply, ops.subtract, ops.matmul,
          lambda a, b: ops.where(a > b, a, b)]


@st.composite
def programs(draw: Any) -> Callable[..., Any]:
    steps = draw(st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 30),
                                    st.integers(0, 30)), min_size=1, max_size=12))
    returned = draw(st.lists(st.integers(0, 30), min_size=1, max_size=3))

    def fun(x: Any, y: Any) -> Any:
        values = [x, y]
        for binary, op, i, j in steps:
            a, b = values[i % len(values)], values[j % len(values)]
            values.append(BINARY[op % len(BINARY)](a, b) if binary else UNARY[op](a))
        return tuple(values[k % len(values)] for k in returned)

    return fun


@settings(max_examples=60, deadline=None)
@given(programs(), st.sampled_from([None, 0]))
def test_compiled_with_buffers_equals_interpreted_on_every_call(fun: Any,
                                                                max_slot: int | None) -> None:
    a, b = np.linspace(-1, 1, 9).reshape(3, 3), np.linspace(0.2, 0.9, 9).reshape(3, 3)
    program = optimize(staged(fun, a, b))
    buffers = ALL_ARRAYS if max_slot is None else \
        dataclasses.replace(ALL_ARRAYS, max_slot_bytes=max_slot)
    compiled = compile_python(program, xp, buffers=buffers)
    first = compiled(a, b)
    kept = [np.array(r, copy=True) for r in first]
    for scale in (1.0, -2.0):  # later calls must not touch earlier results or inputs
        args = (a * scale, b * scale)
        want = interpret(program, xp)(*args)
        got = compiled(*args)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert type(g) is type(w)
    for r, k in zip(first, kept, strict=True):
        np.testing.assert_array_equal(r, k)


def test_concurrent_calls_each_use_their_own_slots() -> None:
    program = staged(lambda x: (ops.sum(ops.exp(ops.sin(x) * 2.0) * x, axis=1),),
                     np.zeros((64, 64)))
    compiled = compile_python(program, xp, buffers=ALL_ARRAYS)
    assert compiled.buffer_plan.slots
    inputs = [np.full((64, 64), k / 10) for k in range(8)]
    want = [interpret(program, xp)(x)[0] for x in inputs]
    errors: list[str] = []

    def work(k: int) -> None:
        for _ in range(200):
            (got,) = compiled(inputs[k])
            if not np.array_equal(got, want[k]):
                errors.append(f"thread {k} got another call's values")
                return

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_later_call_allocates_only_its_results() -> None:
    n = 256 * 256  # 512 KiB per float64 array

    def chain(x: Any) -> Any:
        for _ in range(10):
            x = ops.sin(x) * 0.5 + x
        return (ops.sum(x, axis=0),)

    x = np.linspace(0.0, 1.0, n).reshape(256, 256)
    program = optimize(staged(chain, x))
    compiled = compile_python(program, xp, buffers=unijax_numpy.BUFFERS)
    plain = compile_python(program, xp)

    def peak(f: Callable[..., Any]) -> int:
        f(x)
        tracemalloc.start()
        try:
            f(x)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(compiled) < x.nbytes // 4  # the slots exist already; only the (256,) sum
    assert peak(plain) > 10 * x.nbytes  # every intermediate lives until the return
    np.testing.assert_array_equal(compiled(x)[0], plain(x)[0])


# --- through unijax.jit on NumPy ---------------------------------------------------------------


def mlp_loss(params: dict[str, Any], x: Any, onehot: Any) -> Any:
    h = ops.tanh(x @ params["w1"] + params["b1"])
    z = h @ params["w2"] + params["b2"]
    z = z - ops.max(z, axis=-1, keepdims=True)
    log_probs = z - ops.log(ops.sum(ops.exp(z), axis=-1, keepdims=True))
    return -ops.sum(onehot * log_probs) / x.shape[0]


@pytest.mark.parametrize("call", ["first", "later"])
def test_jit_grad_of_an_mlp_with_large_buffers_equals_eager_grad(call: str) -> None:
    rng = np.random.default_rng(0)
    params = {"w1": rng.standard_normal((64, 128)) * 0.1, "b1": np.zeros(128),
              "w2": rng.standard_normal((128, 10)) * 0.1, "b2": np.zeros(10)}
    x = rng.standard_normal((256, 64))
    onehot = np.eye(10)[rng.integers(0, 10, 256)]
    grad = unijax.grad(mlp_loss, backend="numpy")
    fast = unijax.jit(grad, backend="numpy")
    first = fast(params, x, onehot)
    kept = unijax.tree.tree_map(np.copy, first)
    got = fast(params, x * 0.5, onehot) if call == "later" else first
    want = grad(params, x * 0.5, onehot) if call == "later" else grad(params, x, onehot)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(first[k], kept[k])  # untouched by the later call


def test_ten_thousand_calls_add_no_memory() -> None:
    program = staged(lambda x: (ops.sum(ops.exp(ops.sin(x) * 2.0) * x, axis=0),),
                     np.zeros((8, 8)))
    compiled = compile_python(program, xp, buffers=ALL_ARRAYS)
    assert compiled.buffer_plan.slots  # the slots are what could leak
    x = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    tracemalloc.start()
    try:
        for _ in range(100):
            compiled(x)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10_000):
            compiled(x)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 4096, f"{after - before} bytes more after 10,000 calls"
