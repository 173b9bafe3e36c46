"""Optimisation passes: each removes what it should, keeps what it must, changes no value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest

from unijax.engine.ad import vjp_flat
from unijax.engine.core import PRIMITIVES
from unijax.engine.ir import Equation, Literal, Program, Var
from unijax.engine.lower import interpret
from unijax.engine.namespace import array_functions as ops
from unijax.engine.optimize import cse, dce, fold_constants, optimize, simplify
from unijax.engine.staging import stage

F64 = np.dtype("float64")


def staged(fun: Callable[..., Any], *args: Any) -> Program:
    program, _ = stage(lambda xs: list(fun(*xs)), list(args))
    return program


def assert_same_results(a: Program, b: Program, *args: Any) -> None:
    for x, y in zip(interpret(a, xp)(*args), interpret(b, xp)(*args), strict=True):
        np.testing.assert_array_equal(x, y)
        assert getattr(x, "dtype", type(x)) == getattr(y, "dtype", type(y))


X = np.asarray([-1.5, -0.0, 0.0, 2.0, np.inf, np.nan])


@pytest.fixture(autouse=True)
def _quiet_float_errors() -> Any:
    # inf and nan inputs are deliberate: rewrites must be exact for them too.
    with np.errstate(all="ignore"):
        yield


# --- dce ------------------------------------------------------------------------------------


def test_dce_drops_unused_equations_and_constants() -> None:
    c = np.ones(6)
    program = staged(lambda x: (ops.sin(x), ops.cos(x) * c, ops.exp(x)), X)
    program = program.replace(outputs=program.outputs[:1])
    pruned = dce(program)
    assert program.primitive_counts() == {"sin": 1, "cos": 1, "multiply": 1, "exp": 1}
    assert pruned.primitive_counts() == {"sin": 1}
    assert pruned.constants == {}
    assert pruned.inputs == program.inputs
    assert_same_results(program, pruned, X)


def test_dce_keeps_unused_inputs() -> None:
    program = staged(lambda x, y: (ops.sin(x),), X, X)
    assert len(dce(program).inputs) == 2


# --- cse ------------------------------------------------------------------------------------


def test_cse_merges_same_primitive_inputs_and_params() -> None:
    def f(x: Any) -> Any:
        a = ops.sum(ops.reshape(ops.sin(x), (2, 3)), axis=1)
        b = ops.sum(ops.reshape(ops.sin(x), (2, 3)), axis=1)
        return (a * b,)

    program = staged(f, X)
    merged = cse(program)
    assert len(program) == 7
    assert merged.primitive_counts() == {"sin": 1, "reshape": 1, "sum": 1, "multiply": 1}
    assert_same_results(program, merged, X)


def test_cse_keeps_different_params_and_literal_types() -> None:
    i = np.arange(6)

    def f(x: Any) -> Any:
        return (ops.sum(x, axis=0), ops.sum(x, axis=0, keepdims=True), x * 2, x * 2.0)

    program = staged(f, i)
    merged = cse(program)
    assert len(merged) == 4
    outs = interpret(merged, xp)(i)
    assert outs[2].dtype == np.int64 and outs[3].dtype == np.float64


def test_cse_merges_forward_and_backward_of_jit_grad() -> None:
    # d/dx sum(sin(x) * cos(x)): the VJPs of sin and cos recompute cos(x) and sin(x).
    def grad_f(xs: list[Any]) -> list[Any]:
        out, backward = vjp_flat(lambda ys: [ops.sum(ops.sin(ys[0]) * ops.cos(ys[0]))], xs)
        return backward([ops.ones_like(out[0])])

    x = np.linspace(-1.0, 1.0, 5)
    program, outs = stage(grad_f, [x])
    assert program.primitive_counts()["cos"] == 2
    assert program.primitive_counts()["sin"] == 2
    best = optimize(program)
    assert best.primitive_counts()["cos"] == 1
    assert best.primitive_counts()["sin"] == 1
    assert "sum" not in best.primitive_counts()  # the forward value is dead in grad
    np.testing.assert_allclose(interpret(best, xp)(x)[0], np.cos(2 * x))
    np.testing.assert_allclose(outs[0], np.cos(2 * x))


# --- simplify -------------------------------------------------------------------------------

INTS = np.asarray([-3, 0, 7])
M = np.arange(6.0).reshape(2, 3)
T3 = np.arange(24.0).reshape(2, 3, 4)

SIMPLIFIED: list[tuple[str, Callable[..., Any], Any]] = [
    ("x*1", lambda x: x * 1, X),
    ("1*x", lambda x: 1.0 * x, X),
    ("x*ones", lambda x: x * np.ones(6), X),
    ("x*0d-one", lambda x: x * np.asarray(1.0), X),
    ("x/1", lambda x: x / 1, X),
    ("x-0", lambda x: x - 0, X),
    ("x-0.0", lambda x: x - 0.0, X),
    ("x+(-0.0)", lambda x: x + -0.0, X),
    ("(-0.0)+x", lambda x: -0.0 + x, X),
    ("int x+0", lambda x: x + 0, INTS),
    ("int 0+x", lambda x: 0 + x, INTS),
    ("int x-0", lambda x: x - 0, INTS),
    ("int x*1", lambda x: x * 1, INTS),
    ("neg neg", lambda x: ops.negative(-x), X),
    ("astype same", lambda x: ops.astype(x, x.dtype), X),
    ("reshape same", lambda x: ops.reshape(x, (2, 3)), M),
    ("broadcast same", lambda x: ops.broadcast_to(x, (2, 3)), M),
    ("permute twice", lambda x: ops.permute_dims(ops.permute_dims(x, (1, 2, 0)), (2, 0, 1)), T3),
    ("mT twice", lambda x: ops.matrix_transpose(ops.matrix_transpose(x)), T3),
    ("reshape chain", lambda x: ops.reshape(ops.reshape(x, (6,)), (2, 3)), M),
]


@pytest.mark.parametrize(("fun", "x"), [(f, x) for _, f, x in SIMPLIFIED],
                         ids=[name for name, _, _ in SIMPLIFIED])
def test_simplify_removes_identity(fun: Callable[..., Any], x: Any) -> None:
    program = staged(lambda x: (ops.sin(fun(x)) if x.dtype == np.float64 else -fun(x),), x)
    best = dce(simplify(program))
    assert len(best) == 1, str(best)
    assert_same_results(program, best, x)


KEPT: list[tuple[str, Callable[..., Any], Any]] = [
    ("x+0.0 (float: -0.0 + 0.0 is +0.0)", lambda x: x + 0.0, X),
    ("x-(-0.0)", lambda x: x - -0.0, X),
    ("x*2", lambda x: x * 2.0, X),
    ("0-x", lambda x: 0.0 - x, X),
    ("x/1 on ints promotes", lambda x: x / 1, INTS),
    ("int x*1.0 promotes", lambda x: x * 1.0, INTS),
    ("f32 x * f64 0-d one promotes", lambda x: x * np.asarray(1.0),
     np.ones(3, dtype=np.float32)),
    ("x*ones broadcasts", lambda x: x * np.ones((2, 6)), X),
    ("x*mixed", lambda x: x * np.asarray([1.0, 1, 1, 1, 1, 2]), X),
    ("x+mixed zeros", lambda x: x + np.asarray([0.0, -0.0, 0, 0, 0, 0]), X),
    ("complex x*1", lambda x: x * 1.0, np.asarray([complex(np.inf, 1.0)])),
    ("astype other", lambda x: ops.astype(x, np.float32), X),
    ("permute not identity", lambda x: ops.permute_dims(ops.permute_dims(x, (1, 2, 0)),
                                                        (1, 2, 0)), T3),
]


@pytest.mark.parametrize(("fun", "x"), [(f, x) for _, f, x in KEPT],
                         ids=[name for name, _, _ in KEPT])
def test_simplify_keeps_inexact_or_type_changing_rewrites(fun: Callable[..., Any],
                                                           x: Any) -> None:
    program = staged(lambda x: (ops.negative(fun(x)),), x)
    best = optimize(program)
    assert len(best) == len(program), str(best)
    assert_same_results(program, best, x)


def test_simplify_never_returns_an_input_where_a_fresh_array_was_returned() -> None:
    program = staged(lambda x: (x * 1.0,), X)
    assert len(optimize(program)) == 1
    out = interpret(optimize(program), xp)(X)[0]
    assert out is not X


def test_simplify_collapses_reshape_chains_that_are_not_identity() -> None:
    program = staged(lambda x: (ops.reshape(ops.reshape(ops.reshape(x, (6,)), (3, 2)), (1, 6)),),
                     M)
    best = optimize(program)
    assert best.primitive_counts() == {"reshape": 1}
    assert best.equations[0].inputs[0] is best.inputs[0]
    assert_same_results(program, best, M)


def test_simplify_signed_zeros_are_exact_bitwise() -> None:
    x = np.asarray([-0.0, 0.0])
    program = staged(lambda x: (ops.sin(x + -0.0), ops.sin(x + 0.0)), x)
    best = optimize(program)
    assert best.primitive_counts() == {"sin": 2, "add": 1}
    a, b = interpret(best, xp)(x)
    np.testing.assert_array_equal(np.signbit(a), [True, False])
    np.testing.assert_array_equal(np.signbit(b), [False, False])


# --- constant folding -----------------------------------------------------------------------


def _sin() -> Any:
    _ = ops.sin  # registers the primitives
    return PRIMITIVES["sin"]


def test_fold_constants_evaluates_all_constant_equations() -> None:
    sin, multiply = _sin(), PRIMITIVES["multiply"]
    a, c, y, z = (Var((2,), F64) for _ in range(4))
    program = Program([a], {c: np.asarray([0.0, 1.0])},
                      [Equation(sin, (c,), {}, (y,)),
                       Equation(multiply, (y, a), {}, (z,))], [z])
    folded = fold_constants(program)
    assert folded.primitive_counts() == {"multiply": 1}
    np.testing.assert_array_equal(folded.constants[y], np.sin([0.0, 1.0]))
    assert_same_results(program, folded, np.asarray([2.0, 3.0]))
    assert dce(folded).constants.keys() == {y}


def test_fold_constants_keeps_equations_that_fail() -> None:
    _ = ops.matmul  # registers the primitives
    matmul = PRIMITIVES["matmul"]
    c, y = Var((2,), F64), Var((), F64)
    program = Program([], {c: np.ones(2)}, [Equation(matmul, (c, Literal(3.0)), {}, (y,))], [y])
    assert len(fold_constants(program)) == 1


# --- the pipeline ---------------------------------------------------------------------------


def test_optimize_reaches_a_fixed_point() -> None:
    def f(x: Any) -> Any:
        a = ops.negative(-(ops.sin(x) * 1.0))
        b = ops.negative(-(ops.sin(x) * 1.0))  # equal to a only after simplification and CSE
        return (ops.reshape(ops.reshape(a + b, (6, 1)), (6,)),)

    program = staged(f, X)
    best = optimize(program)
    assert best.primitive_counts() == {"sin": 1, "add": 1}
    again = optimize(best)
    assert [e.primitive for e in again.equations] == [e.primitive for e in best.equations]
    assert_same_results(program, best, X)


def test_optimize_preserves_cacheable_flag() -> None:
    program = staged(lambda x: (ops.sin(x),), X).replace(cacheable=False)
    assert not optimize(program).cacheable
