"""Values: every row of the OpSpec table against its float64 NumPy reference.

Evaluated eagerly through the backend's own namespace (what user code gets outside
transforms), comparing values and result dtypes. Traced evaluation is checked by the
grad (primal output of ``jvp``), vmap and jit areas.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from unijax_conformance._support import (
    assert_trees_close,
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
@hypothesis_settings()
@given(data=data_strategy())
def test_values_eager(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    args = draw_args(data, spec)
    got = eager(spec, b, args)
    want = reference(spec, args)
    assert dtype_names(got) == dtype_names(want), (
        f"{spec.name} with float64 inputs on {b.name}: result dtypes {dtype_names(got)}, "
        f"NumPy gives {dtype_names(want)}")
    assert_trees_close(got, want, rtol=spec.rtol, atol=spec.atol,
                       what=f"{spec.name} on {b.name}")
