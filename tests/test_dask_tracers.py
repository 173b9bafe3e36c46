"""Traced values never enter a dask graph as data: they are routed or refused.

A helper that takes its namespace from a plain dask array and is differentiated inside
(a leapfrog integrator's force) must get the derivative right, checked against a plain
NumPy loop with the analytic gradient; a dask-only call on a traced value must raise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unijax
from unijax.errors import ConcretizationError

da = pytest.importorskip("dask.array")
pytest.importorskip("unijax_dask")

from array_api_compat import array_namespace  # noqa: E402


def potential_grad(q: np.ndarray) -> np.ndarray:
    """The analytic gradient of sum(sin(q) * q + q**2 / 2)."""
    return np.cos(q) * q + np.sin(q) + q


def leapfrog(q: Any, p: Any, steps: int, eps: float = 0.1) -> Any:
    def body(i: Any, carry: Any) -> Any:
        q, p = carry
        xp = array_namespace(q)  # the dask namespace, closed over by the potential

        def potential(q: Any) -> Any:
            return xp.sum(xp.sin(q) * q + 0.5 * q * q)

        p = p - 0.5 * eps * unijax.grad(potential)(q)
        q = q + eps * p
        p = p - 0.5 * eps * unijax.grad(potential)(q)
        return q, p

    return unijax.lax.fori_loop(0, steps, body, (q, p))


def test_leapfrog_with_a_closed_over_namespace_matches_a_numpy_loop() -> None:
    q0, p0 = np.linspace(0.1, 1.0, 4), np.ones(4)
    q, p = q0, p0
    for _ in range(10):
        p = p - 0.05 * potential_grad(q)
        q = q + 0.1 * p
        p = p - 0.05 * potential_grad(q)
    got = leapfrog(da.from_array(q0, chunks=2), da.from_array(p0, chunks=2), 10)
    got_q, got_p = (x.compute(scheduler="sync") for x in got)
    np.testing.assert_allclose(got_q, q, rtol=1e-12)
    np.testing.assert_allclose(got_p, p, rtol=1e-12)


@pytest.mark.parametrize("case", ["sum", "matmul", "stack", "asarray", "where", "linalg"])
def test_namespace_functions_route_a_traced_value(case: str) -> None:
    q_np = np.linspace(0.1, 1.0, 4)
    q = da.from_array(q_np, chunks=2)
    xp = array_namespace(q)
    fun = {
        "sum": lambda v: xp.sum(v * v),
        "matmul": lambda v: xp.matmul(v, v),
        "stack": lambda v: xp.sum(xp.stack([v, v * v])),
        "asarray": lambda v: xp.sum(xp.asarray(v) ** 3) / 3.0,
        "where": lambda v: xp.sum(xp.where(v > 0.5, v * v, v)),
        "linalg": lambda v: xp.linalg.vector_norm(v) ** 2,
    }[case]
    # Central finite differences of the same function on NumPy.
    npx = array_namespace(q_np)
    fun_np = {
        "sum": lambda v: npx.sum(v * v),
        "matmul": lambda v: v @ v,
        "stack": lambda v: npx.sum(v + v * v),
        "asarray": lambda v: npx.sum(v ** 3) / 3.0,
        "where": lambda v: npx.sum(npx.where(v > 0.5, v * v, v)),
        "linalg": lambda v: npx.sum(v * v),
    }[case]
    h = 1e-6
    want = np.array([(fun_np(q_np + h * e) - fun_np(q_np - h * e)) / (2 * h)
                     for e in np.eye(4)])
    got = unijax.grad(fun)(q).compute(scheduler="sync")
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("call", ["da.sum", "da.asarray", "da.from_array", "map_blocks"])
def test_dask_only_calls_on_a_traced_value_raise(call: str) -> None:
    q = da.from_array(np.linspace(0.1, 1.0, 4), chunks=2)
    xp = array_namespace(q)
    fun = {
        "da.sum": lambda v: da.sum(v * v),
        "da.asarray": lambda v: xp.sum(da.asarray(v)),
        "da.from_array": lambda v: xp.sum(da.from_array(v)),
        "map_blocks": lambda v: xp.sum(xp.map_blocks(np.sin, v)),
    }[call]
    with pytest.raises(ConcretizationError, match=r"traced array.*array_namespace"):
        unijax.grad(fun)(q)


def test_plain_dask_calls_are_unchanged() -> None:
    unijax.namespace("dask")  # the wrappers are installed
    x = da.arange(6.0, chunks=3)
    xp = array_namespace(x)
    assert float(xp.sum(x).compute(scheduler="sync")) == 15.0
    assert da.from_array(np.ones(3)).sum().compute(scheduler="sync") == 3.0
    assert xp.map_blocks(np.sin, x).chunks == x.chunks


def _positive_sum_of_squares(x: Any) -> Any:
    """Library code with an eager path (a boolean mask: data-dependent shape) and a lazy one,
    chosen the way array-api-extra and SciPy choose."""
    from array_api_compat import is_lazy_array

    xp = array_namespace(x)
    if is_lazy_array(x):
        return xp.sum(xp.where(x > 0, x * x, 0.0))
    return xp.sum(x[x > 0] ** 2)


@pytest.mark.parametrize("transform", ["grad", "vmap", "jit"])
def test_traced_dask_values_are_lazy_to_library_code(transform: str) -> None:
    from array_api_compat import is_lazy_array

    x_np = np.asarray([-1.5, 0.5, 2.0, -0.25, 3.0, 1.0])
    x = da.from_array(x_np, chunks=3)
    seen: list[bool] = []

    def probe(v: Any) -> Any:
        seen.append(bool(is_lazy_array(v)))
        return _positive_sum_of_squares(v)

    if transform == "grad":
        got = unijax.grad(probe)(x).compute(scheduler="sync")
        want = np.where(x_np > 0, 2 * x_np, 0.0)
    elif transform == "vmap":
        got = unijax.vmap(probe)(da.stack([x, -x])).compute(scheduler="sync")
        want = np.asarray([_positive_sum_of_squares(x_np), _positive_sum_of_squares(-x_np)])
    else:
        got = unijax.jit(probe)(x).compute(scheduler="sync")
        want = _positive_sum_of_squares(x_np)
    assert seen and all(seen), seen
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_python_control_flow_on_a_traced_dask_value_raises_instead_of_computing() -> None:
    from dask.callbacks import Callback

    x = da.from_array(np.asarray([1.0, -2.0, 3.0]), chunks=2)
    computed: list[int] = []
    with Callback(start=lambda dsk: computed.append(len(dsk))), \
            pytest.raises(ConcretizationError, match="lazy"):
        unijax.grad(lambda v: array_namespace(v).sum(v) if v[0] > 0 else v[0])(x)
    assert computed == []  # nothing ran: the truth of a graph is never computed behind it
