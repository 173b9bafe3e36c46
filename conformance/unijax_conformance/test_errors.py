"""Errors: the same ``unijax.errors`` class for the same misuse on every backend.

Each misuse is made with the backend's own arrays while the backend is selected, so a
backend with native transforms (JAX, Autograd) must raise exactly what the engine raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax import errors


class ForeignArray:
    """An Array API-looking object that no installed backend owns."""

    shape = (2,)
    dtype = np.dtype("float64")
    ndim = 1

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        raise AssertionError("unijax must not compute on an array it cannot place")


def _total(x: Any, y: Any | None = None) -> Any:
    xp = array_namespace(x)
    return xp.sum(x * x) if y is None else xp.sum(x * y)


def _branchy(x: Any) -> Any:
    return x if array_namespace(x).sum(x) > 0 else -x


def _enter(context: Any) -> None:
    with context:
        pass


# name -> (expected error class, misuse(backend under test))
MISUSES: dict[str, tuple[type[Exception], Callable[[Any], Any]]] = {
    "unknown_backend_argument": (
        errors.UnknownBackendError,
        lambda b: unijax.grad(_total, backend="no_such_backend")(b.asarray(np.ones(2)))),
    "unknown_backend_context": (
        errors.UnknownBackendError, lambda b: _enter(unijax.use_backend("no_such_backend"))),
    "mixed_backend_inputs": (
        errors.MixedBackendError,
        lambda b: unijax.grad(_total)(b.asarray(np.ones(2)), ForeignArray())),
    "argnums_out_of_range": (
        errors.ArgnumsError,
        lambda b: unijax.grad(_total, argnums=2)(b.asarray(np.ones(2)), b.asarray(np.ones(2)))),
    "argnums_negative_out_of_range": (
        errors.ArgnumsError,
        lambda b: unijax.grad(_total, argnums=-3)(b.asarray(np.ones(2)),
                                                  b.asarray(np.ones(2)))),
    "argnums_duplicated": (
        errors.ArgnumsError,
        lambda b: unijax.grad(_total, argnums=(0, 0))(b.asarray(np.ones(2)),
                                                      b.asarray(np.ones(2)))),
    "has_aux_not_a_pair": (
        errors.HasAuxError, lambda b: unijax.grad(_total, has_aux=True)(b.asarray(np.ones(2)))),
    "grad_of_non_scalar": (
        errors.NonScalarOutputError, lambda b: unijax.grad(lambda x: x * 2.0)(
            b.asarray(np.ones(3)))),
    "grad_of_integer_output": (
        errors.NonDifferentiableError,
        lambda b: unijax.grad(lambda x: array_namespace(x).argmax(x))(b.asarray(np.ones(3)))),
    "grad_wrt_integer_input": (
        errors.NonDifferentiableError,
        lambda b: unijax.grad(lambda x: array_namespace(x).sum(x * 2))(
            b.asarray(np.arange(3)))),
    "in_axes_too_long": (
        errors.InAxesError,
        lambda b: unijax.vmap(_total, in_axes=(0, 0, 0))(b.asarray(np.ones((2, 3))),
                                                         b.asarray(np.ones((2, 3))))),
    "in_axes_out_of_rank": (
        errors.InAxesError, lambda b: unijax.vmap(_total, in_axes=2)(b.asarray(np.ones(3)))),
    "in_axes_not_an_axis": (
        errors.InAxesError, lambda b: unijax.vmap(_total, in_axes="rows")(b.asarray(np.ones(3)))),
    "mismatched_axis_sizes": (
        errors.BatchingError,
        lambda b: unijax.vmap(_total)(b.asarray(np.ones((2, 3))), b.asarray(np.ones((4, 3))))),
    "unhashable_static_argument": (
        errors.UnhashableStaticArgumentError,
        lambda b: unijax.jit(lambda x, n: x, static_argnums=1)(b.asarray(np.ones(2)), [1, 2])),
    "concretization_under_vmap": (
        errors.ConcretizationError, lambda b: unijax.vmap(_branchy)(b.asarray(np.ones((2, 3))))),
    "concretization_under_jit_of_grad": (
        errors.ConcretizationError,
        lambda b: unijax.jit(unijax.grad(lambda x: array_namespace(x).sum(_branchy(x))))(
            b.asarray(np.ones(3)))),
}


@pytest.mark.parametrize("misuse", list(MISUSES))
def test_same_error_class(unijax_selected: Any, misuse: str) -> None:
    b = unijax_selected
    expected, make = MISUSES[misuse]
    with pytest.raises(Exception) as caught:
        make(b)
    assert type(caught.value) is expected or isinstance(caught.value, expected), (
        f"{misuse} on {b.name} raised {type(caught.value).__module__}."
        f"{type(caught.value).__qualname__}: {caught.value}; expected unijax.errors."
        f"{expected.__name__}")
    assert str(caught.value), "the error has no message"
