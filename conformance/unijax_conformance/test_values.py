"""Values: every row of the OpSpec table against its float64 NumPy reference.

Eagerly through the backend's own namespace (what user code gets from ``array_namespace``
outside transforms), and traced (the primal output of ``jvp``), which on engine backends
evaluates each primitive through the backend and on native backends runs the backend's
own tracing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

import unijax
from unijax_conformance._support import (
    assert_trees_close,
    data_strategy,
    draw_args,
    hypothesis_settings,
    reference,
    spec_function,
    spec_params,
)
from unijax_conformance.specs import OpSpec


@pytest.mark.parametrize("spec", spec_params())
@hypothesis_settings()
@given(data=data_strategy())
def test_values_eager(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    args = draw_args(data, spec)
    got = spec.fn(b.xp, *b.convert(args))
    assert_trees_close(got, reference(spec, args), rtol=spec.rtol, atol=spec.atol,
                       what=f"{spec.name} on {b.name}")


@pytest.mark.parametrize("spec", spec_params(lambda s: s.grad))
@hypothesis_settings()
@given(data=data_strategy())
def test_values_traced(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    args = draw_args(data, spec)
    primals = b.convert(args)
    tangents = tuple(b.xp.zeros_like(p) for p in primals)
    out, _ = unijax.jvp(spec_function(spec), primals, tangents)
    assert_trees_close(out, reference(spec, args), rtol=spec.rtol, atol=spec.atol,
                       what=f"primal output of jvp({spec.name}) on {b.name}")
