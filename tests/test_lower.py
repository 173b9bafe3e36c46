"""Lowering programs: the interpreter and the generated-Python compiler."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unijax.engine.core import Primitive
from unijax.engine.ir import Equation, Program, Var
from unijax.engine.lower import _source_literal, compile_python, interpret
from unijax.engine.namespace import array_functions as ops
from unijax.engine.optimize import optimize
from unijax.engine.staging import stage

LOWERINGS = [interpret, compile_python]

# Test-only primitives (unique names: primitives register globally).
_pair_p = Primitive("unijax_test_lower_pair", multiple_results=True,
                    impl=lambda xp, x: (xp.sin(x), xp.cos(x)))
_one_p = Primitive("unijax_test_lower_one", multiple_results=True,
                   impl=lambda xp, x: (x + 1,))
_scaled_p = Primitive("unijax_test_lower_scaled", impl=lambda xp, x, *, factor: x * factor)


def staged(fun: Callable[..., Any], *args: Any) -> Program:
    program, _ = stage(lambda xs: list(fun(*xs)), list(args))
    return program


A = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
B = np.linspace(0.5, 2.0, 3)

FUNCTIONS: list[tuple[str, Callable[..., Any]]] = [
    ("elementwise", lambda x, y: (ops.sin(x) * y + ops.exp(-x) / y,)),
    ("reduce", lambda x, y: (ops.sum(x * y, axis=1), ops.sum(x))),
    ("reshape", lambda x, y: (ops.reshape(ops.permute_dims(x, (1, 0)), (6,)),)),
    ("matmul", lambda x, y: (ops.matmul(x, y),)),
    ("scalar literal out", lambda x, y: (x + 1.0, 3, "text")),
    ("input passthrough", lambda x, y: (y, ops.cos(x))),
    ("multiple results", lambda x, y: (*_pair_p.bind(x), _one_p.bind(y)[0])),
    ("custom impl with params", lambda x, y: (_scaled_p.bind(x, factor=2.5),)),
]


@pytest.mark.parametrize("lower", LOWERINGS)
@pytest.mark.parametrize("fun", [f for _, f in FUNCTIONS], ids=[n for n, _ in FUNCTIONS])
def test_lowered_program_equals_eager(lower: Any, fun: Callable[..., Any]) -> None:
    program = optimize(staged(fun, A, B))
    x, y = A * 0.3, B + 1.0
    got = lower(program, xp)(x, y)
    want = list(fun(x, y))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
        assert type(g) is type(w)


def test_generated_source_calls_the_namespace_directly() -> None:
    program = staged(lambda x, y: (ops.sum(ops.sin(x) * y, axis=1),), A, B)
    f = compile_python(program, xp)
    tree = ast.parse(f.source)
    (fn,) = tree.body
    assert isinstance(fn, ast.FunctionDef)
    assert len(fn.body) == len(program) + 1  # one line per equation, then return
    assert "xp.sin(a)" in f.source
    assert "xp.multiply(c, b)" in f.source
    assert "axis=(1,)" in f.source
    assert f.program is program


def test_generated_source_binds_constants_and_opaque_params_as_globals() -> None:
    c = np.asarray([1.0, 2.0, 3.0])
    program = staged(lambda x: (ops.sum(x * c, axis=0, dtype=np.float32),
                                _scaled_p.bind(x, factor=math.inf)), A)
    f = compile_python(program, xp)
    assert "xp.multiply(a, c0)" in f.source
    assert "dtype=_p" in f.source  # a numpy dtype has no literal form
    assert "factor=_p" in f.source  # nor does inf
    assert "= _impl_unijax_test_lower_scaled_" in f.source
    out = f(A)
    np.testing.assert_array_equal(out[0], np.sum(A * c, axis=0, dtype=np.float32))
    assert out[0].dtype == np.float32


def test_generated_code_handles_keyword_named_vars() -> None:
    def f(x: Any) -> Any:
        for _ in range(240):
            x = ops.sin(x)
        return (x,)

    program = staged(f, B)
    compiled = compile_python(program, xp)
    assert "if_ = xp.sin(" in compiled.source
    np.testing.assert_array_equal(compiled(B)[0], interpret(program, xp)(B)[0])


@pytest.mark.parametrize("lower", LOWERINGS)
def test_constant_outputs_are_copies(lower: Any) -> None:
    c = np.asarray([1.0, 2.0])
    program = staged(lambda x: (x + c, c), np.ones(2))
    run = lower(program, xp)
    first = run(np.ones(2))[1]
    first[0] = 100.0
    np.testing.assert_array_equal(run(np.ones(2))[1], [1.0, 2.0])
    np.testing.assert_array_equal(c, [1.0, 2.0])


@pytest.mark.parametrize("lower", LOWERINGS)
def test_single_output_multiple_result_primitive(lower: Any) -> None:
    program = staged(lambda x: (_one_p.bind(x)[0],), B)
    assert "," in compile_python(program, xp).source.splitlines()[1].split("=")[0]
    np.testing.assert_array_equal(lower(program, xp)(B)[0], B + 1)


def test_interpreter_checks_argument_count() -> None:
    program = staged(lambda x: (ops.sin(x),), B)
    with pytest.raises(TypeError, match="takes 1 inputs"):
        interpret(program, xp)(B, B)
    assert interpret(program, xp).source is None


def test_missing_namespace_function_fails_at_compile_time() -> None:
    ghost = Primitive("unijax_test_lower_not_in_numpy")
    x, y = Var((3,), np.dtype("float64")), Var((3,), np.dtype("float64"))
    program = Program([x], {}, [Equation(ghost, (x,), {}, (y,))], [y])
    for lower in LOWERINGS:
        with pytest.raises(AttributeError):
            lower(program, xp)


def test_compile_python_names_the_function() -> None:
    program = staged(lambda x: (ops.sin(x),), B)
    assert compile_python(program, xp, name="loss").source.startswith("def loss(a):")
    assert compile_python(program, xp, name="not valid").source.startswith("def compiled(")


_literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.complex_numbers(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.builds(slice, inner, inner, inner),
    max_leaves=10,
)


@given(_literals)
def test_source_literal_round_trips(value: Any) -> None:
    text = _source_literal(value)
    assert text is not None
    back = eval(text, {"__builtins__": {"slice": slice, "complex": complex}})
    assert back == value
    assert type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0 keeps its sign


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, complex(math.inf, 0),
                                   np.float64(1.0), (1, math.nan), object()])
def test_source_literal_refuses_values_without_exact_source(value: Any) -> None:
    assert _source_literal(value) is None


@pytest.mark.parametrize("lower", LOWERINGS)
def test_weak_scalar_equations_return_python_scalars(lower: Any) -> None:
    program = staged(lambda x, s: (s * s, x * (s + 1.0)), np.ones(2, dtype=np.float32), 2.0)
    square, scaled = lower(program, xp)(np.ones(2, dtype=np.float32), 3.0)
    assert type(square) is float and square == 9.0
    assert scaled.dtype == np.float32
    assert "_weak_multiply_" in compile_python(program, xp).source
