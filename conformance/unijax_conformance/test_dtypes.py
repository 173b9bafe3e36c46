"""Dtypes: the same program gives the same result dtypes on every backend.

The policy: float64 unless asked otherwise (``unijax.use_default_float_dtype``), float32
inputs stay float32 through every transform, and nothing is silently computed in float32
when float64 was asked for (JAX without x64 would).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import given

import unijax
from unijax.testing import to_numpy
from unijax_conformance._support import (
    data_strategy,
    draw_args,
    dtype_names,
    eager,
    hypothesis_settings,
    reference,
    spec_params,
)
from unijax_conformance.specs import OpSpec


@pytest.mark.parametrize("spec", spec_params())
@hypothesis_settings(examples_scale=0.5)
@given(data=data_strategy())
def test_float32_result_dtypes_match_reference(unijax_selected: Any, spec: OpSpec,
                                               data: Any) -> None:
    # float64 inputs are checked with the values (test_values.py).
    b = unijax_selected
    args = tuple(a.astype("float32") for a in draw_args(data, spec))
    want = dtype_names(reference(spec, args))
    got = dtype_names(eager(spec, b, args))
    assert got == want, f"{spec.name} with float32 inputs on {b.name}: result dtypes {got}, " \
                        f"NumPy gives {want}"


def _program(x: Any) -> Any:
    xp = array_namespace(x)
    return xp.sum(xp.sin(x) * x + 2.0)


def _elementwise(x: Any) -> Any:
    return array_namespace(x).exp(x) * 0.5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transforms_keep_input_dtype(unijax_selected: Any, dtype: str) -> None:
    b = unijax_selected
    x = b.asarray(np.array([0.5, -1.5, 2.0], dtype=dtype))
    t = b.asarray(np.array([1.0, 0.0, -1.0], dtype=dtype))
    results = {
        "value": _program(x),
        "grad": unijax.grad(_program)(x),
        "value_and_grad": unijax.value_and_grad(_program)(x),
        "jvp": unijax.jvp(_elementwise, (x,), (t,)),
        "vjp": unijax.vjp(_elementwise, x)[1](t),
        "vmap": unijax.vmap(_elementwise)(x),
        "jit": unijax.jit(_elementwise)(x),
        "jit(grad)": unijax.jit(unijax.grad(_program))(x),
        "jacfwd": unijax.jacfwd(_elementwise)(x),
        "hessian": unijax.hessian(_program)(x),
    }
    wrong = {name: dtype_names(out) for name, out in results.items()
             if set(dtype_names(out)) != {dtype}}
    assert not wrong, f"{dtype} inputs on {b.name} gave other dtypes: {wrong}"


@pytest.mark.parametrize("policy", ["float64", "float32"])
def test_python_scalars_follow_the_default_float_dtype(unijax_selected: Any,
                                                       policy: str) -> None:
    b = unijax_selected
    with unijax.use_default_float_dtype(policy):
        results = {
            "asarray": unijax.asarray([1.0, 2.0]),
            "grad": unijax.grad(lambda x: x * x)(3.0),
            "value_and_grad": unijax.value_and_grad(lambda x: x * x + 1.0)(3.0),
        }
    wrong = {name: dtype_names(out) for name, out in results.items()
             if set(dtype_names(out)) != {policy}}
    assert not wrong, f"default float dtype {policy} on {b.name}: got {wrong}"


def test_float64_is_really_float64(unijax_selected: Any) -> None:
    b = unijax_selected
    x = b.asarray(np.array([1.0, 1.0]))
    y = unijax.jit(lambda v: (v + 1e-12) - v)(x)
    g = unijax.grad(lambda v: array_namespace(v).sum((v + 1e-12) ** 2))(x)
    assert dtype_names((x, y, g)) == ["float64"] * 3, f"on {b.name}: {dtype_names((x, y, g))}"
    assert abs(float(np.asarray(to_numpy(y))[0]) - 1e-12) < 1e-15, (
        f"on {b.name}, (1 + 1e-12) - 1 is not computed in float64")
