"""The IR: vars, literals, canonical param keys, programs and their printed form."""

from __future__ import annotations

import math
from typing import Any

import array_api_strict
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unijax.engine.core import PRIMITIVES
from unijax.engine.ir import (
    Equation,
    Literal,
    Program,
    Var,
    dtype_kind,
    dtype_name,
    freeze,
    var_names,
)
from unijax.engine.namespace import array_functions as ops

F64 = np.dtype("float64")


def prim(name: str) -> Any:
    _ = ops.sin  # registers every primitive
    return PRIMITIVES[name]


def test_var_weak_only_for_python_scalar_types() -> None:
    assert Var((), float).weak
    assert Var((), bool).weak
    assert not Var((), F64).weak
    assert Var((2, 3), np.dtype("float32")).aval == "f32[2,3]"
    assert Var((), float).aval == "float[]"


@pytest.mark.parametrize(
    ("dtype", "name", "kind"),
    [
        (np.dtype("float64"), "f64", "real floating"),
        (np.dtype("float16"), "f16", "real floating"),
        (np.dtype("int8"), "i8", "integral"),
        (np.dtype("uint32"), "u32", "integral"),
        (np.dtype("complex128"), "c128", "complex floating"),
        (np.dtype("bool"), "bool", "bool"),
        (array_api_strict.float32, "f32", "real floating"),
        (array_api_strict.int64, "i64", "integral"),
        (float, "float", "real floating"),
        (int, "int", "integral"),
    ],
)
def test_dtype_name_and_kind_across_libraries(dtype: object, name: str, kind: str) -> None:
    assert dtype_name(dtype) == name
    assert dtype_kind(dtype) == kind


def test_literal_equality_distinguishes_type_and_sign() -> None:
    assert Literal(2.0) == Literal(2.0)
    assert hash(Literal(2.0)) == hash(Literal(2.0))
    assert Literal(2) != Literal(2.0)
    assert Literal(True) != Literal(1)
    assert Literal(0.0) != Literal(-0.0)
    assert Literal(math.nan) == Literal(math.nan)  # one nan literal is one value for CSE


def test_freeze_makes_unhashable_params_hashable() -> None:
    a = {"key": (slice(None, 2), [0, 1]), "axis": [1]}
    b = {"axis": [1], "key": (slice(None, 2), [0, 1])}
    assert hash(freeze(a)) == hash(freeze(b))
    assert freeze(a) == freeze(b)
    assert freeze([0, 1]) != freeze((0, 1))
    assert freeze(slice(0, 2)) != freeze(slice(0, 3))


def test_freeze_keys_unknown_unhashables_by_identity() -> None:
    x, y = np.zeros(2), np.zeros(2)
    assert freeze(x) == freeze(x)
    assert freeze(x) != freeze(y)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                    | st.builds(slice, inner, inner), max_leaves=8))
def test_freeze_is_deterministic_and_hashable(value: object) -> None:
    assert freeze(value) == freeze(value)
    hash(freeze(value))


def test_equation_key_equal_for_same_computation() -> None:
    reshape = prim("reshape")
    x, y1, y2 = Var((6,), F64), Var((2, 3), F64), Var((2, 3), F64)
    e1 = Equation(reshape, (x,), {"shape": [2, 3]}, (y1,))
    e2 = Equation(reshape, (x,), {"shape": [2, 3]}, (y2,))
    e3 = Equation(reshape, (x,), {"shape": [3, 2]}, (y2,))
    assert e1.key() == e2.key()
    assert e1.key() != e3.key()


def test_equation_replace_returns_self_when_unchanged() -> None:
    sin = prim("sin")
    x, y, z = Var((), F64), Var((), F64), Var((), F64)
    eqn = Equation(sin, (x,), {}, (y,))
    assert eqn.replace((x,)) is eqn
    assert eqn.replace((z,)).inputs == (z,)


def test_program_str_reads_like_make_jaxpr() -> None:
    sin, multiply, sum_ = prim("sin"), prim("multiply"), prim("sum")
    c0, a, b = Var((3,), F64), Var((3,), F64), Var((), F64)
    c, d, e = Var((3,), F64), Var((3,), F64), Var((), F64)
    program = Program(
        [a, b], {c0: np.ones(3)},
        [Equation(sin, (a,), {}, (c,)),
         Equation(multiply, (c, Literal(2.0)), {}, (d,)),
         Equation(sum_, (d,), {"axis": (0,), "dtype": None, "keepdims": False}, (e,))],
        [e, c0])
    assert str(program) == (
        "{ lambda c0:f64[3] ; a:f64[3] b:f64[] . let\n"
        "    c:f64[3] = sin a\n"
        "    d:f64[3] = multiply c 2.0\n"
        "    e:f64[] = sum[axis=(0,), dtype=None, keepdims=False] d\n"
        "  in (e, c0) }"
    )


def test_program_str_single_output_and_dtype_param() -> None:
    astype = prim("astype")
    a, b = Var((2,), F64), Var((2,), np.dtype("float32"))
    program = Program([a], {}, [Equation(astype, (a,), {"dtype": np.dtype("float32")}, (b,))],
                      [b])
    assert str(program) == ("{ lambda ; a:f64[2] . let\n"
                            "    b:f32[2] = astype[dtype=f32] a\n"
                            "  in (b,) }")


def test_var_names_escape_keywords_and_reserved() -> None:
    inputs = [Var((), F64) for _ in range(400)]
    names = var_names(Program(inputs, {}, [], []), reserved={"b"})
    assert names[inputs[0]] == "a"
    assert names[inputs[1]] == "b_"
    assert names[inputs[26]] == "ba"
    assert names[inputs[8 * 26 + 5]] == "if_"
    assert names[inputs[14 * 26 + 17]] == "or_"
    assert all(n.isidentifier() for n in names.values())
    assert len(set(names.values())) == len(inputs)


def test_program_replace_keeps_other_fields() -> None:
    a = Var((), F64)
    program = Program([a], {}, [], [a], cacheable=False)
    copy = program.replace(outputs=[Literal(1.0)])
    assert copy.inputs == [a]
    assert not copy.cacheable
    assert copy.outputs == [Literal(1.0)]
    assert program.outputs == [a]
    assert repr(copy) == "<Program: 1 inputs, 0 constants, 0 equations, 1 outputs>"
