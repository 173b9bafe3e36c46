"""The dask backend: the engine's transforms over dask arrays, on a real cluster.

A two-worker ``dask.distributed.LocalCluster`` with worker processes runs in this module
(started once), so every computed result crossed process boundaries: the task graphs the
engine builds must serialise. Each result is checked against the same computation on
NumPy.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import unijax
from unijax.errors import MixedBackendError, ShapeError

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
unijax_dask = pytest.importorskip("unijax_dask")

from array_api_compat import array_namespace  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A real two-process cluster; ``dask.compute`` runs on it while the module runs."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  memory_limit="600MB", dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=True) as client:
        yield client


def loss(w: Any, X: Any, y: Any) -> Any:
    xp = array_namespace(w, X, y)
    r = X @ w - y
    return xp.sum(r * r) / X.shape[0]


def data(rows: int, features: int, chunk: int, seed: int = 0) -> tuple[Any, Any]:
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk, features))
    y = X @ da.arange(1.0, features + 1.0) + 0.1 * rng.standard_normal(rows, chunks=chunk)
    return X, y


def test_backend_is_found_by_entry_point_and_recognises_dask_arrays() -> None:
    x = da.ones(3, chunks=2)
    explanation = unijax.explain_backend(x)
    assert (explanation.backend, explanation.rule) == ("dask", "input_arrays")
    assert unijax.namespace("dask").__name__ == "array_api_compat.dask.array"


def test_grad_matches_numpy_and_stays_lazy(client: Any) -> None:
    X, y = data(2_000, 4, 500)
    w = da.zeros(4, chunks=4)
    value, g = unijax.value_and_grad(loss)(w, X, y)
    assert isinstance(g, da.Array) and isinstance(value, da.Array)
    Xn, yn = unijax_dask.compute((X, y))
    value_np, g_np = unijax.value_and_grad(loss)(np.zeros(4), Xn, yn)
    value_c, g_c = unijax_dask.compute((value, g))
    np.testing.assert_allclose(g_c, g_np, rtol=1e-12)
    np.testing.assert_allclose(value_c, value_np, rtol=1e-12)


def test_derivative_transforms_match_numpy(client: Any) -> None:
    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.sin(x) * xp.sum(x * x)

    xn = np.linspace(0.1, 1.0, 6)
    x = da.from_array(xn, chunks=3)
    t = np.arange(6.0)
    got = unijax_dask.compute({
        "jvp": unijax.jvp(f, (x,), (da.from_array(t, chunks=3),)),
        "vjp": unijax.vjp(f, x)[1](da.from_array(t, chunks=3)),
        "jacfwd": unijax.jacfwd(f)(x),
        "jacrev": unijax.jacrev(f)(x),
        "hessian": unijax.hessian(lambda v: array_namespace(v).sum(f(v)))(x),
    })
    want = {
        "jvp": unijax.jvp(f, (xn,), (t,)),
        "vjp": unijax.vjp(f, xn)[1](t),
        "jacfwd": unijax.jacfwd(f)(xn),
        "jacrev": unijax.jacrev(f)(xn),
        "hessian": unijax.hessian(lambda v: array_namespace(v).sum(f(v)))(xn),
    }
    for key in want:
        for a, b in zip(unijax.tree_util.tree_leaves(got[key]),
                        unijax.tree_util.tree_leaves(want[key]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=key)


def test_vmap_matches_numpy_and_keeps_the_batch_chunks(client: Any) -> None:
    X, _ = data(1_000, 3, 250)
    w = np.asarray([1.0, -2.0, 0.5])
    per_row = unijax.vmap(lambda row, w: array_namespace(row).tanh(row @ w),
                          in_axes=(0, None))
    out = per_row(X, w)
    assert out.chunks == ((250, 250, 250, 250),)
    row_grad = unijax.vmap(unijax.grad(lambda w, row: array_namespace(w).tanh(row @ w)),
                           in_axes=(None, 0))
    per_row_grad = row_grad(w, X)
    Xn = unijax_dask.compute(X)
    got, got_grad = unijax_dask.compute((out, per_row_grad))
    np.testing.assert_allclose(got, per_row(Xn, w), rtol=1e-12)
    np.testing.assert_allclose(got_grad, row_grad(w, Xn), rtol=1e-12)


def test_elementwise_gradient_keeps_the_input_chunks() -> None:
    x = da.ones((8, 3), chunks=(4, 3))
    g = unijax.grad(lambda v: array_namespace(v).sum(v * v))(x)
    assert g.chunks == x.chunks
    assert unijax.vmap(lambda r: array_namespace(r).sum(r))(x).chunks == ((4, 4),)


def test_jit_traces_once_per_shape_chunking_and_static(client: Any) -> None:
    calls: list[Any] = []

    def step(w: Any, X: Any, y: Any, lr: float) -> Any:
        calls.append(lr)
        return w - lr * unijax.grad(loss)(w, X, y)

    jitted = unijax.jit(step, static_argnames="lr")
    X, y = data(1_000, 3, 250)
    w = da.zeros(3, chunks=3)
    first = jitted(w, X, y, lr=0.1)
    second = jitted(first, X, y, lr=0.1)
    assert len(calls) == 1
    jitted(w, X.rechunk(500), y.rechunk(500), lr=0.1)  # new chunking: staged again
    assert len(calls) == 2
    jitted(w, X, y, lr=0.2)  # new static value
    assert len(calls) == 3
    jitted(w, X, y, lr=0.1)
    assert len(calls) == 3
    Xn, yn = unijax_dask.compute((X, y))
    w_np = np.zeros(3)
    for _ in range(2):
        w_np = step(w_np, Xn, yn, 0.1)
    np.testing.assert_allclose(unijax_dask.compute(second), w_np, rtol=1e-12)


def test_jit_builds_one_graph_that_dask_fuses() -> None:
    import dask

    @unijax.jit
    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.exp(xp.sin(x) * 2.0 + 1.0)

    x = da.ones(100, chunks=25)
    f(x)
    out = f(x)  # a warm call: the compiled program builds the graph
    assert isinstance(out, da.Array)
    (optimised,) = dask.optimize(out)
    # sin, multiply, add and exp fuse into one task per chunk.
    assert len(optimised.__dask_graph__()) <= 2 * x.npartitions
    assert len(out.__dask_graph__()) > len(optimised.__dask_graph__())
    np.testing.assert_allclose(out.compute(scheduler="sync"), np.exp(np.sin(1.0) * 2 + 1))


def test_compute_runs_shared_subgraphs_once() -> None:
    runs: list[int] = []

    def expensive(block: Any) -> Any:
        if block.size:  # not dask's call on an empty block to learn the output type
            runs.append(1)
        return block * 2.0

    x = da.ones(8, chunks=4).map_blocks(expensive, dtype=float)
    value, g = unijax.value_and_grad(lambda v: array_namespace(v).sum(v * v))(x)
    got_value, got_grad = unijax_dask.compute((value, g), scheduler="sync")
    assert float(got_value) == 32.0
    np.testing.assert_array_equal(got_grad, np.full(8, 4.0))
    assert len(runs) == 2  # once per chunk, although both results read x
    assert unijax_dask.computed(unijax.grad(lambda v: array_namespace(v).sum(v ** 3)),
                                scheduler="sync")(da.ones(2)).tolist() == [3.0, 3.0]


@pytest.mark.parametrize("transform", ["grad", "jit", "vmap", "jacfwd"])
def test_unknown_chunk_sizes_raise_naming_the_fix(transform: str) -> None:
    x = da.arange(10.0, chunks=5)
    masked = x[x > 3.0]
    assert np.isnan(masked.shape[0])
    fun = {
        "grad": unijax.grad(lambda v: array_namespace(v).sum(v * v)),
        "jit": unijax.jit(lambda v: v * 2.0),
        "vmap": unijax.vmap(lambda v: v * 2.0),
        "jacfwd": unijax.jacfwd(lambda v: v * 2.0),
    }[transform]
    with pytest.raises(ShapeError, match=r"compute_chunk_sizes\(\)"):
        fun(masked)
    masked.compute_chunk_sizes()
    assert masked.shape == (6,)
    assert unijax_dask.compute(fun(masked), scheduler="sync").shape in {(6,), (6, 6)}


def test_boolean_mask_inside_a_transform_raises_naming_the_fix() -> None:
    def f(v: Any) -> Any:
        return array_namespace(v).sum(v[v > 3.0] ** 2)

    with pytest.raises(ShapeError, match=r"compute_chunk_sizes\(\).*xp.where"):
        unijax.grad(f)(da.arange(10.0, chunks=5))


def test_numpy_next_to_dask_is_one_chunk_and_jax_is_refused() -> None:
    X = da.ones((8, 3), chunks=(4, 3))
    w = np.arange(3.0)
    wrapped = unijax.asarray(np.ones((3_000, 3_000)), backend="dask")
    assert wrapped.chunks == ((3_000,), (3_000,))  # dask's own asarray splits it in four
    g = unijax.grad(lambda w, X: array_namespace(w, X).sum(X @ w))(w, X)
    assert isinstance(g, da.Array) and g.chunks == ((3,),)
    np.testing.assert_allclose(g.compute(scheduler="sync"), np.full(3, 8.0))
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(MixedBackendError, match="dask"):
        unijax.grad(lambda w, X: array_namespace(w, X).sum(X @ w))(jnp.ones(3), X)
    with pytest.raises(MixedBackendError, match="dask"):
        unijax.jit(lambda w, X: X @ w, backend="dask")(jnp.ones(3), X)


def test_no_cluster_is_started_and_the_threaded_scheduler_computes() -> None:
    code = textwrap.dedent("""
        import sys
        import dask.array as da
        import unijax
        import unijax_dask
        from array_api_compat import array_namespace
        x = da.arange(6.0, chunks=2)
        g = unijax.jit(unijax.grad(lambda v: array_namespace(v).sum(v * v)))(x)
        values = unijax_dask.compute(g).tolist()
        client = None
        if "distributed" in sys.modules:  # dask's compute looks for a client
            client = sys.modules["distributed"].client._get_global_client()
        print(values, client)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["[0.0,", "2.0,", "4.0,", "6.0,", "8.0,", "10.0]", "None"]


def test_gradient_runs_chunked_on_both_workers(client: Any) -> None:
    # A small version of examples/dask_least_squares.py: generated per chunk on the
    # workers, never in this process.
    rows, features = 200_000, 10
    X, y = data(rows, features, 12_500, seed=1)
    w = np.zeros(features)
    with distributed.get_task_stream(client) as stream:
        g = unijax_dask.compute(unijax.grad(loss)(w, X, y))
    workers = {task["worker"] for task in stream.data}
    assert len(workers) == 2
    # The analytic gradient of the mean squared residual at w = 0 is -2 X^T y / n.
    Xn, yn = unijax_dask.compute((X, y))
    np.testing.assert_allclose(g, -2.0 * Xn.T @ yn / rows, rtol=1e-10)
    assert client.run(lambda: 1) == dict.fromkeys(client.scheduler_info()["workers"], 1)


@pytest.mark.parametrize("construct", ["fori_loop", "scan_xs", "scan_carry", "while_loop",
                                       "cond", "switch", "map"])
def test_unknown_chunk_sizes_in_lax_raise_the_transforms_shape_error(construct: str) -> None:
    x = da.arange(10.0, chunks=5)
    masked = x[x > 3.0]
    lax = unijax.lax
    run = {
        "fori_loop": lambda: lax.fori_loop(0, 3, lambda i, c: c * 2.0, masked),
        "scan_xs": lambda: lax.scan(lambda c, v: (c + v, c), 0.0, masked),
        "scan_carry": lambda: lax.scan(lambda c, v: (c + v, c), masked, da.ones(3)),
        "while_loop": lambda: lax.while_loop(lambda c: c[0] < 3,
                                             lambda c: (c[0] + 1, c[1] * 2.0), (0, masked)),
        "cond": lambda: lax.cond(True, lambda v: v * 2.0, lambda v: v, masked),
        "switch": lambda: lax.switch(1, [lambda v: v * 2.0, lambda v: v], masked),
        "map": lambda: lax.map(lambda v: v * 2.0, masked),
    }[construct]
    with pytest.raises(ShapeError, match=r"compute_chunk_sizes\(\)"):
        run()
    masked.compute_chunk_sizes()  # known sizes: the same call computes as on NumPy
    got = unijax_dask.compute(run())  # on the cluster if one is active: while_loop persists
    xn = np.arange(4.0, 10.0)
    want = {
        "fori_loop": lambda: xn * 8.0,
        "scan_xs": lambda: (xn.sum(), np.concatenate([[0.0], np.cumsum(xn)[:-1]])),
        "scan_carry": lambda: (xn + 3.0, np.stack([xn, xn + 1.0, xn + 2.0])),
        "while_loop": lambda: (3, xn * 8.0),
        "cond": lambda: xn * 2.0,
        "switch": lambda: xn,
        "map": lambda: xn * 2.0,
    }[construct]()
    for a, b in zip(unijax.tree_util.tree_leaves(got), unijax.tree_util.tree_leaves(want),
                    strict=True):
        np.testing.assert_allclose(a, b)


def test_jit_computes_nothing_while_staging_or_calling() -> None:
    from dask.callbacks import Callback

    computations: list[int] = []

    class Count(Callback):  # type: ignore[misc]
        def _start(self, dsk: Any) -> None:
            computations.append(len(dsk))

    X = da.random.default_rng(0).standard_normal((200, 3), chunks=(10, 3))
    y = X[:, 0] * 2.0
    w = da.zeros(3, chunks=3)

    def step(w: Any, X: Any, y: Any) -> Any:
        return w - 0.1 * unijax.grad(loss)(w, X, y)

    jitted = unijax.jit(step)
    with Count():
        first = jitted(w, X, y)
        second = jitted(first, X, y)
    assert computations == []  # neither staging nor the calls ran a graph
    Xn, yn = X.compute(scheduler="sync"), y.compute(scheduler="sync")
    want = step(step(np.zeros(3), Xn, yn), Xn, yn)
    np.testing.assert_allclose(second.compute(scheduler="sync"), want, rtol=1e-12)
