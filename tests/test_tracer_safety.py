"""No silent wrong answers: conversions that cut a derivative, non-scalar ``grad``
outputs, escaped tracers and closed-over arrays mutated after ``jit`` compiled them."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.errors import (
    ConcretizationError,
    NonScalarOutputError,
    UnexpectedTracerError,
)

ENGINE = ["numpy", "array_api_strict"]
EVERY = ["numpy", "array_api_strict", "autograd", "jax"]


def _x(backend: str, value=(1.5, 2.0)):
    return unijax.asarray(np.asarray(value), backend=backend)


# --- Python number conversions of a value being differentiated ------------------------------


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("convert", [float, complex, math.log, math.exp],
                         ids=["float", "complex", "math.log", "math.exp"])
def test_number_conversion_of_differentiated_value_raises(backend, convert):
    def f(x):
        xp = array_namespace(x)
        return xp.sum(x) * convert(x[0])

    with pytest.raises((ConcretizationError, TypeError)) as info:
        unijax.grad(f, backend=backend)(_x(backend))
    if backend in ENGINE:  # the engine's own error names the conversion and the fix
        assert isinstance(info.value, ConcretizationError)
        assert "stop_gradient" in str(info.value)


@pytest.mark.parametrize("backend", ENGINE)
def test_float_of_differentiated_value_raises_under_forward_mode(backend):
    def f(x):
        return x * float(x)

    with pytest.raises(ConcretizationError, match=r"float\(\)"):
        unijax.jvp(f, (_x(backend, 2.0),), (_x(backend, 1.0),))


@pytest.mark.parametrize("backend", ENGINE)
def test_conversions_that_cut_no_derivative_still_work(backend):
    def f(x):
        xp = array_namespace(x)
        n = int(xp.argmax(x))  # an integer result carries no derivative
        n += int(x[0])  # a step function: its derivative is zero, as int() says
        scale = float(unijax.stop_gradient(x[0]))
        if x[1] > 0:  # control flow on a concrete comparison, as in JAX
            return xp.sum(x ** 2) * scale + n
        return xp.sum(x)

    g = unijax.grad(f, backend=backend)(_x(backend))
    np.testing.assert_allclose(np.asarray(unijax.to_backend(g, "numpy")),
                               2 * np.asarray([1.5, 2.0]) * 1.5)


@pytest.mark.parametrize("backend", ENGINE)
def test_int_of_differentiated_value_is_a_step_with_zero_derivative(backend):
    def f(x):
        return x[0] * int(x[1]) + int(x[0])

    g = unijax.grad(f, backend=backend)(_x(backend, (1.5, 2.7)))
    np.testing.assert_allclose(np.asarray(unijax.to_backend(g, "numpy")), [2.0, 0.0])


# --- grad of a function whose output is not a scalar array --------------------------------


@pytest.mark.parametrize("backend", EVERY)
@pytest.mark.parametrize("output", [
    lambda x: [x[0]],
    lambda x: (x[0], x[1]),
    lambda x: {"loss": x[0]},
    lambda x: None,
    lambda x: "loss",
], ids=["list", "tuple", "dict", "None", "str"])
def test_grad_of_non_array_output_raises_on_every_backend(backend, output):
    with pytest.raises(NonScalarOutputError, match="needs a scalar output"):
        unijax.grad(output, backend=backend)(_x(backend))


# --- escaped tracers -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ENGINE)
def test_tracer_leaked_from_jit_cannot_be_used(backend):
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    unijax.jit(f, backend=backend)(_x(backend))
    with pytest.raises(UnexpectedTracerError, match="escaped"):
        leaked[0] + 1.0
    with pytest.raises(UnexpectedTracerError):
        unijax.grad(lambda y: array_namespace(y).sum(y * leaked[0]),
                    backend=backend)(_x(backend))


@pytest.mark.parametrize("backend", ENGINE)
def test_tracer_carried_out_of_grad_by_an_exception_cannot_be_used(backend):
    class Carrier(Exception):
        pass

    def f(x):
        raise Carrier(x)

    with pytest.raises(Carrier) as info:
        unijax.grad(f, backend=backend)(_x(backend))
    leaked = info.value.args[0]
    with pytest.raises(UnexpectedTracerError):
        unijax.grad(lambda y: array_namespace(y).sum(y * leaked), backend=backend)(
            _x(backend))
    with pytest.raises(UnexpectedTracerError):
        float(leaked[0])


@pytest.mark.parametrize("backend", ENGINE)
def test_returning_a_leaked_tracer_raises_instead_of_returning_it(backend):
    leaked = []
    unijax.vmap(lambda x: leaked.append(x) or x, backend=backend)(_x(backend))
    with pytest.raises(UnexpectedTracerError):
        unijax.jit(lambda y: (y, leaked[0]), backend=backend)(_x(backend))


def test_leaked_namespace_cannot_make_constants():
    spaces = []
    unijax.grad(lambda x: spaces.append(array_namespace(x)) or x[0])(np.ones(2))
    with pytest.raises(UnexpectedTracerError):
        spaces[0].zeros(2)


def test_tracers_of_nested_transforms_are_not_mistaken_for_leaks():
    def inner(x):
        return array_namespace(x).sum(x ** 3)

    x = np.asarray([1.0, 2.0])
    hess = unijax.jacfwd(unijax.grad(inner))(x)
    np.testing.assert_allclose(hess, np.diag(6 * x))
    per_row = unijax.jit(unijax.vmap(unijax.grad(inner)))(np.stack([x, 2 * x]))
    np.testing.assert_allclose(per_row, 3 * np.stack([x, 2 * x]) ** 2)


# --- closed-over arrays under jit: captured at trace time -----------------------------------


@pytest.mark.parametrize("backend", ["numpy"])
def test_closed_over_array_is_captured_when_jit_traces(backend):
    table = np.asarray([1.0, 2.0, 3.0])

    def f(x):
        xp = array_namespace(x)
        folded = xp.sum(table[:2])  # constant-only: evaluated while tracing
        return x * table + folded

    jitted = unijax.jit(f, backend=backend)
    x = np.ones(3)
    first = jitted(x)
    table[:] = [10.0, 20.0, 30.0]  # written after the trace: not seen by the program
    np.testing.assert_allclose(jitted(x), first)
    np.testing.assert_allclose(first, np.asarray([1.0, 2.0, 3.0]) + 3.0)


# --- concurrency: tracers of one thread never finish another's trace ------------------------


def test_concurrent_transforms_do_not_see_each_others_traces():
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            x = np.asarray([seed + 1.0, 2.0])
            for _ in range(20):
                g = unijax.grad(lambda v: array_namespace(v).sum(v ** 2))(x)
                np.testing.assert_allclose(g, 2 * x)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
