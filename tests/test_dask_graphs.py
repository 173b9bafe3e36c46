"""Task graphs built by the transforms on dask: their size and build time, and loops.

A long computation must build its graph in time linear in its length, a ``while_loop``
must not grow a graph one layer per iteration, and a training loop that persists its
parameters each step must keep a flat graph. Each result is checked against NumPy or
JAX as well.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

import unijax

da = pytest.importorskip("dask.array")
unijax_dask = pytest.importorskip("unijax_dask")

from array_api_compat import array_namespace  # noqa: E402
from unijax_dask._namespace import MAX_LAYERS  # noqa: E402


def recurrence_loss(w: Any, steps: int) -> Any:
    xp = array_namespace(w)

    def body(c: Any, _: Any) -> Any:
        c = xp.tanh(c * w + 0.1)
        return c, xp.sum(c)

    _, ys = unijax.lax.scan(body, xp.ones(4, dtype=w.dtype), None, length=steps)
    return xp.sum(ys)


def recurrence_grad_numpy(w: np.ndarray, steps: int) -> np.ndarray:
    # Reverse mode by hand: c_{t+1} = tanh(c_t * w + 0.1), loss = sum_t sum(c_{t+1}).
    cs = [np.ones(4)]
    for _ in range(steps):
        cs.append(np.tanh(cs[-1] * w + 0.1))
    g, ct = np.zeros(4), np.zeros(4)
    for t in range(steps, 0, -1):
        ct = ct + 1.0
        d = ct * (1.0 - cs[t] ** 2)
        g += d * cs[t - 1]
        ct = d * w
    return g


def test_scan_gradient_graph_builds_in_linear_time() -> None:
    w = da.from_array(np.linspace(0.1, 0.5, 4), chunks=2)
    unijax.grad(recurrence_loss)(w, 20)  # warm: the body is staged and compiled once
    seconds, sizes, layers = {}, {}, {}
    for steps in (60, 120, 240):
        start = time.perf_counter()
        g = unijax.grad(recurrence_loss)(w, steps)
        seconds[steps] = time.perf_counter() - start
        sizes[steps] = len(g.__dask_graph__())
        layers[steps] = len(g.__dask_graph__().layers)
    # Every dask operation copies its input's mapping of layers, so building a chain whose
    # layers keep growing costs n**2; merged layers stay bounded and the cost linear.
    assert max(layers.values()) <= 2 * MAX_LAYERS, layers
    assert seconds[240] < 5.5 * seconds[60], seconds
    assert sizes[240] < 4.5 * sizes[60], sizes
    np.testing.assert_allclose(g.compute(scheduler="sync"),
                               recurrence_grad_numpy(np.linspace(0.1, 0.5, 4), 240),
                               rtol=1e-10)


def test_scan_gradient_through_a_cholesky_per_step_matches_jax() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    a0 = np.random.default_rng(0).standard_normal((3, 3))
    a = a0 @ a0.T + 3.0 * np.eye(3)

    def loss(s: Any, A: Any, xp: Any, scan: Any) -> Any:
        def body(c: Any, _: Any) -> Any:
            factor = xp.linalg.cholesky(A * c)  # one 2-D matrix per step
            return c * 0.9 + 0.01 * xp.sum(factor), xp.sum(factor * factor)

        c, ys = scan(body, s, None, length=5)
        return xp.sum(ys) + c

    xp = array_namespace(da.ones(1))
    got = unijax.grad(lambda s: loss(s, da.from_array(a), xp, unijax.lax.scan))(
        da.asarray(1.0))
    with jax.enable_x64(True):
        want = jax.grad(lambda s: loss(s, jnp.asarray(a), jnp, jax.lax.scan))(1.0)
    np.testing.assert_allclose(got.compute(scheduler="sync"), float(want), rtol=1e-10)


def test_batched_while_loop_runs_hundreds_of_iterations() -> None:
    # Each example grows by 1% until its sum passes a limit: about 180 and 200 iterations,
    # where a graph one layer deeper per iteration hit RecursionError at about 150.
    def grow(x: Any) -> Any:
        xp = array_namespace(x)
        return unijax.lax.while_loop(lambda c: xp.sum(c) < 30.0, lambda c: c * 1.01 + 0.01,
                                     x)

    x0 = np.asarray([[1.0, 4.0], [2.0, 2.0]])
    got = unijax.vmap(grow)(da.from_array(x0, chunks=1)).compute(scheduler="sync")
    want = []
    for row in x0:
        while row.sum() < 30.0:
            row = row * 1.01 + 0.01
        want.append(row)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-12)


def test_while_loop_outside_transforms_keeps_a_shallow_graph() -> None:
    x = da.from_array(np.asarray([0.5, 0.25]), chunks=1)
    out = unijax.lax.while_loop(lambda c: c[0] < 300, lambda c: (c[0] + 1, c[1] * 1.001),
                                (0, x))
    assert len(out[1].__dask_graph__().layers) < 10
    np.testing.assert_allclose(out[1].compute(scheduler="sync"),
                               np.asarray([0.5, 0.25]) * 1.001 ** 300, rtol=1e-12)


def test_training_loop_that_persists_each_step_keeps_a_flat_graph() -> None:
    rng = da.random.default_rng(0)
    X = rng.standard_normal((400, 3), chunks=(100, 3))
    y = X @ da.asarray([1.0, -2.0, 0.5])
    X, y = unijax_dask.persist((X, y), scheduler="sync")

    def loss(w: Any) -> Any:
        xp = array_namespace(w)
        r = X @ w - y
        return xp.sum(r * r) / 400.0

    step = unijax.grad(loss)
    w = da.zeros(3, chunks=3)
    sizes, seconds = [], []
    for k in range(40):
        start = time.perf_counter()
        w = unijax_dask.persist(w - 0.1 * step(w), scheduler="sync")
        seconds.append(time.perf_counter() - start)
        if k + 1 in (10, 20, 40):
            sizes.append(len(step(w).__dask_graph__()))
    assert sizes[0] == sizes[1] == sizes[2]
    assert np.median(seconds[30:]) < 3.0 * np.median(seconds[5:15]) + 0.01
    Xn, yn = unijax_dask.compute((X, y), scheduler="sync")
    w_np = np.zeros(3)
    for _ in range(40):
        w_np = w_np - 0.1 * (2.0 * Xn.T @ (Xn @ w_np - yn) / 400.0)
    np.testing.assert_allclose(w.compute(scheduler="sync"), w_np, rtol=1e-10)
