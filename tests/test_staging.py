"""Concrete staging: recording programs while computing the real values."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest

from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.core import Primitive, bind
from unijax.engine.ir import Literal
from unijax.engine.namespace import array_functions as ops
from unijax.engine.staging import StagingTrace, StagingTracer, stage
from unijax.errors import ConcretizationError

# A test-only multiple-result primitive (a unique name: primitives register globally).
_split_p = Primitive("unijax_test_staging_split", multiple_results=True,
                     impl=lambda xp, x: (xp.sin(x), xp.cos(x)))


def test_stage_records_equations_with_concrete_shapes_and_dtypes() -> None:
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    program, outs = stage(lambda xs: [ops.sum(ops.sin(xs[0]), axis=1)], [x])
    assert program.primitive_counts() == {"sin": 1, "sum": 1}
    sin_eqn, sum_eqn = program.equations
    assert sin_eqn.outputs[0].shape == (2, 3)
    assert sin_eqn.outputs[0].dtype == np.float32
    assert sum_eqn.outputs[0].shape == (2,)
    assert program.outputs == [sum_eqn.outputs[0]]
    np.testing.assert_array_equal(outs[0], np.sum(np.sin(x), axis=1))


def test_stage_returns_traced_values_not_tracers() -> None:
    _, outs = stage(lambda xs: [xs[0] * 2.0, xs[0]], [np.ones(2)])
    assert all(type(o) is np.ndarray for o in outs)


def test_python_scalars_in_ops_become_literals() -> None:
    program, _ = stage(lambda xs: [xs[0] * 2.0 + 1], [np.ones(2)])
    mul, add = program.equations
    assert mul.inputs[1] == Literal(2.0)
    assert add.inputs[1] == Literal(1)


def test_closed_over_array_is_one_constant() -> None:
    c = np.asarray([1.0, 2.0])
    program, outs = stage(lambda xs: [xs[0] * c + c], [np.ones(2)])
    assert len(program.constants) == 1
    (var,) = program.constants
    # Captured at trace time: a copy, so later writes to ``c`` do not reach the program.
    assert program.constants[var] is not c
    np.testing.assert_array_equal(program.constants[var], c)
    assert program.equations[0].inputs[1] is var
    assert program.equations[1].inputs[1] is var
    np.testing.assert_array_equal(outs[0], np.ones(2) * c + c)


def test_constant_only_computations_are_folded_while_staging() -> None:
    c = np.asarray([1.0, 2.0])

    def f(xs: list[Any]) -> list[Any]:
        k = ops.exp(c) * 3.0  # no traced operand: evaluated, never recorded
        z = np.zeros(2)  # a creation function of the concrete namespace
        return [xs[0] + k + z]

    program, _ = stage(f, [np.ones(2)])
    assert program.primitive_counts() == {"add": 2}
    assert len(program.constants) == 2


def test_weak_python_scalar_input_keeps_array_dtype() -> None:
    x = np.ones(3, dtype=np.float32)
    seen: dict[str, Any] = {}

    def f(xs: list[Any]) -> list[Any]:
        seen["dtype"] = xs[1].dtype
        seen["shape"] = xs[1].shape
        return [xs[0] * xs[1]]

    program, outs = stage(f, [x, 2.5], xp=xp)
    assert program.inputs[1].weak
    assert program.inputs[1].dtype is float
    assert seen == {"dtype": np.float64, "shape": ()}
    assert outs[0].dtype == np.float32
    assert program.equations[0].outputs[0].dtype == np.float32


@pytest.mark.parametrize(("convert", "what"), [
    (bool, "bool"), (int, "int"), (float, "float"),
    (lambda t: range(t), "index"),
])
def test_concretization_error_names_the_conversion(convert: Any, what: str) -> None:
    def f(xs: list[Any]) -> list[Any]:
        convert(xs[0])
        return [xs[0]]

    with pytest.raises(ConcretizationError) as info:
        stage(f, [np.asarray(3)])
    text = str(info.value)
    assert f"{what}()" in text
    assert "jit" in text
    assert "static_argnums" in text and "static_argnames" in text
    assert "xp.where" in text
    assert isinstance(info.value, TypeError)


def test_concretization_error_on_python_if() -> None:
    def f(xs: list[Any]) -> list[Any]:
        if xs[0] > 0:
            return [xs[0]]
        return [-xs[0]]

    with pytest.raises(ConcretizationError, match="bool"):
        stage(f, [np.asarray(1.0)])


def test_multiple_result_primitive_returns_tuple_of_tracers() -> None:
    def f(xs: list[Any]) -> list[Any]:
        s, c = _split_p.bind(xs[0])
        assert type(s) is StagingTracer and type(c) is StagingTracer
        return [c, s]

    x = np.linspace(0.0, 1.0, 4)
    program, outs = stage(f, [x])
    (eqn,) = program.equations
    assert len(eqn.outputs) == 2
    assert program.outputs == [eqn.outputs[1], eqn.outputs[0]]
    np.testing.assert_array_equal(outs[0], np.cos(x))


def test_closing_over_an_outer_tracer_marks_program_uncacheable() -> None:
    x = np.asarray([0.3, 0.7])
    staged: list[Any] = []

    def outer(ys: list[Any]) -> list[Any]:
        y = ys[0]  # a reverse-mode tracer

        def inner(zs: list[Any]) -> list[Any]:
            return [ops.sin(y) * zs[0]]

        program, outs = stage(inner, [np.full(2, 2.0)])
        staged.append(program)
        return outs

    outs, backward = vjp_flat(outer, [x])
    assert not staged[0].cacheable
    np.testing.assert_allclose(outs[0], 2.0 * np.sin(x))
    np.testing.assert_allclose(backward([np.ones(2)])[0], 2.0 * np.cos(x))


def test_own_inputs_keep_program_cacheable() -> None:
    program, _ = stage(lambda xs: [ops.sin(xs[0])], [np.ones(2)])
    assert program.cacheable


def test_grad_inside_staging_records_forward_and_backward() -> None:
    x = np.asarray([0.1, 0.2])

    def grad_sin(xs: list[Any]) -> list[Any]:
        _, backward = vjp_flat(lambda ys: [ops.sin(ys[0])], xs)
        return backward([np.ones(2)])

    program, outs = stage(grad_sin, [x])
    assert program.primitive_counts().get("cos") == 1
    np.testing.assert_allclose(outs[0], np.cos(x))


def test_jvp_of_staged_function_matches() -> None:
    def f(xs: list[Any]) -> list[Any]:
        return jvp_flat(lambda ys: [ops.exp(ys[0])], xs, [np.ones(2)])[1]

    x = np.asarray([0.0, 1.0])
    program, outs = stage(f, [x])
    assert "exp" in program.primitive_counts()
    np.testing.assert_allclose(outs[0], np.exp(x))


def test_tracer_metadata_comes_from_the_var() -> None:
    trace = StagingTrace(xp)
    t = trace.new_input(np.zeros((2, 5), dtype=np.int32))
    assert t.shape == (2, 5)
    assert t.dtype == np.int32
    assert t.ndim == 2
    assert repr(t) == "StagingTracer<int32[2,5]>"
    assert trace.pure(np.ones(2)).var in trace.constants


def test_concrete_bind_outside_staging_is_untouched() -> None:
    sin = ops.sin(np.zeros(1))
    assert type(sin) is np.ndarray
    assert bind(_split_p, (np.zeros(1),), {})[1][0] == 1.0


def test_operations_on_weak_scalars_stay_weak() -> None:
    x = np.ones(2, dtype=np.float32)
    program, outs = stage(lambda xs: [xs[1] * xs[1] - 1.0, xs[0] * (xs[1] * xs[1])],
                          [x, 3.0], xp=xp)
    square = program.equations[0].outputs[0]
    assert square.weak and square.dtype is float
    assert type(outs[0]) is float and outs[0] == 8.0
    assert outs[1].dtype == np.float32  # a NumPy float64 scalar would have promoted it


@pytest.mark.parametrize("transform", ["grad", "jit", "vmap"])
def test_non_standard_array_method_names_the_namespace_function(transform: str) -> None:
    import unijax
    from unijax.errors import NonStandardAttributeError

    fn = getattr(unijax, transform)(lambda x: x.sum())
    with pytest.raises(NonStandardAttributeError, match=r"xp\.sum\(x") as info:
        fn(np.ones(3))
    assert isinstance(info.value, AttributeError)
    with pytest.raises(NonStandardAttributeError, match="namespace's functions"):
        getattr(unijax, transform)(lambda x: x.not_a_function)(np.ones(3))


def test_tracer_dunder_lookups_stay_plain_attribute_errors() -> None:
    # copy, pickle and hasattr probe dunders; those must not build a message.
    import unijax

    seen: list[bool] = []
    unijax.grad(lambda x: (seen.append(hasattr(x, "__array_interface__")), x.shape)
                and ops.sum(x))(np.ones(2))
    assert seen == [False]
