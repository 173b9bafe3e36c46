"""jit: every row compiled against eager evaluation (first call and cached call); retracing
exactly when shapes, dtypes or static values change; static arguments; the
concretization error for Python control flow on a traced value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import given

import unijax
from unijax.errors import ConcretizationError
from unijax.testing import check_jit
from unijax_conformance._support import (
    assert_trees_close,
    data_strategy,
    declared_limits,
    draw_args,
    hypothesis_settings,
    spec_function,
    spec_params,
)
from unijax_conformance.specs import OpSpec

_TOL = {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("spec", spec_params(lambda s: s.jit))
@pytest.mark.unijax_transform("jit")
@hypothesis_settings()
@given(data=data_strategy())
def test_jit_matches_eager(unijax_selected: Any, spec: OpSpec, data: Any) -> None:
    b = unijax_selected
    args = b.convert(draw_args(data, spec))
    with declared_limits(spec, b):
        check_jit(spec_function(spec), args, rtol=spec.rtol, atol=spec.atol)


# --- tracing semantics ----------------------------------------------------------------------


def _counting(body: Any) -> tuple[Any, list[int]]:
    traces: list[int] = []

    def f(*args: Any, **kwargs: Any) -> Any:
        traces.append(1)  # a Python side effect: runs only while tracing
        return body(*args, **kwargs)

    return f, traces


def test_jit_retraces_exactly_on_new_signatures(unijax_selected: Any) -> None:
    b = unijax_selected
    f, traces = _counting(lambda x: x * 2.0 + 1.0)
    jitted = unijax.jit(f)
    calls = [  # (input, traces expected after the call)
        (np.arange(3.0), 1),
        (np.arange(3.0) + 5.0, 1),  # new values, same shape and dtype: cached
        (np.arange(4.0), 2),  # new shape
        (np.arange(4.0, dtype=np.float32), 3),  # new dtype
        (np.ones(4, dtype=np.float32), 3),
        (np.arange(3.0) - 1.0, 3),
    ]
    for i, (x, expected) in enumerate(calls):
        out = jitted(b.asarray(x))
        assert_trees_close(out, x * 2.0 + 1.0, rtol=1e-6, atol=1e-6, what=f"call {i}")
        assert len(traces) == expected, (
            f"jit on {b.name}: after call {i} ({x.dtype}{list(x.shape)}) the function was "
            f"traced {len(traces)} times, expected {expected}")
    if "jit" not in b.native:
        info = jitted.cache_info()[b.name]
        assert (info.misses, info.hits) == (3, 3), f"cache_info on {b.name}: {info}"


def test_jit_static_arguments(unijax_selected: Any) -> None:
    b = unijax_selected
    f, traces = _counting(lambda x, n, *, shift=0.0: x**n + shift)
    by_position = unijax.jit(f, static_argnums=1)
    x = b.asarray(np.array([1.5, -2.0]))
    for n, expected in [(2, 1), (3, 2), (2, 2), (3, 2)]:
        assert_trees_close(by_position(x, n), np.array([1.5, -2.0]) ** n, **_TOL,
                           what=f"static_argnums with n={n}")
        assert len(traces) == expected, f"{len(traces)} traces after n={n}, expected {expected}"
    g, g_traces = _counting(lambda x, *, shift: x + shift)
    by_name = unijax.jit(g, static_argnames="shift")
    for shift, expected in [(1.0, 1), (2.0, 2), (1.0, 2)]:
        assert_trees_close(by_name(x, shift=shift), np.array([1.5, -2.0]) + shift, **_TOL,
                           what=f"static_argnames with shift={shift}")
        assert len(g_traces) == expected


def test_jit_concretization_error(unijax_selected: Any) -> None:
    b = unijax_selected

    def branchy(x: Any) -> Any:
        xp = array_namespace(x)
        if xp.sum(x) > 0:  # Python control flow on a traced value
            return x
        return -x

    with pytest.raises(ConcretizationError):
        unijax.jit(branchy)(b.asarray(np.array([1.0, 2.0])))
    # Marked static, the same value is fine.
    assert_trees_close(unijax.jit(lambda x, flag: x if flag else -x, static_argnums=1)(
        b.asarray(np.array([1.0])), True), np.array([1.0]), **_TOL, what="static flag")
