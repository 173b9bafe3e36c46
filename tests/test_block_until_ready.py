"""``unijax.block_until_ready``: computed arrays on every backend, flat graphs on Dask."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.cli.demo import train

needs_dask = pytest.mark.skipif(importlib.util.find_spec("dask") is None,
                                reason='dask is not installed ("unijax[dask]")')
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason='jax is not installed ("unijax[jax]")')


def test_eager_arrays_and_other_leaves_come_back_as_they_are() -> None:
    tree = {"w": np.ones(3), "opts": ("sgd", 0.1), "n": None}
    assert unijax.block_until_ready(tree) is tree


@needs_jax
def test_jax_arrays_come_back_ready_with_their_values() -> None:
    import jax.numpy as jnp

    tree = {"w": jnp.arange(3.0) * 2, "n": 4}
    out = unijax.block_until_ready(tree)
    assert out["n"] == 4
    np.testing.assert_array_equal(np.asarray(out["w"]), [0.0, 2.0, 4.0])


def _steps(n: int, ready: bool) -> int:
    """Graph size of the parameters after ``n`` gradient steps on Dask."""
    import dask.array as da

    def loss(w, x):
        xp = array_namespace(w)
        return xp.sum((x @ w - 1.0) ** 2)

    x = da.from_array(np.random.default_rng(0).normal(size=(64, 4)), chunks=16)
    w = da.zeros(4, chunks=4)
    grad = unijax.grad(loss)
    for _ in range(n):
        w = w - 0.01 * grad(w, x)
        if ready:
            w = unijax.block_until_ready(w)
    return len(w.__dask_graph__())


@needs_dask
def test_dask_graph_stays_flat_over_training_steps_when_parameters_are_ready() -> None:
    sizes = [_steps(n, ready=True) for n in (5, 10, 20)]
    assert sizes[0] == sizes[1] == sizes[2], sizes
    # Without it, each step's graph holds every earlier step: what the call prevents.
    assert _steps(10, ready=False) > 1.5 * _steps(5, ready=False) > 1.5 * sizes[0]


@needs_dask
def test_dask_mixed_tree_is_computed_once_and_keeps_values() -> None:
    import dask
    import dask.array as da
    from dask.callbacks import Callback

    a = da.arange(6.0, chunks=3) * 2
    tree = {"a": a, "b": a + 1, "c": np.ones(2), "s": "label"}
    starts: list[int] = []
    with Callback(start=lambda dsk: starts.append(len(dsk))):
        out = unijax.block_until_ready(tree)
    assert len(starts) == 1  # one dask.persist for every dask leaf
    assert out["s"] == "label" and out["c"] is tree["c"]
    np.testing.assert_array_equal(dask.compute(out["a"])[0], np.arange(6.0) * 2)
    np.testing.assert_array_equal(dask.compute(out["b"])[0], np.arange(6.0) * 2 + 1)


@needs_dask
def test_demo_on_dask_matches_numpy() -> None:
    want, want_accuracy = train(steps=4, backend="numpy")
    got, accuracy = train(steps=4, backend="dask")
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert accuracy == want_accuracy
