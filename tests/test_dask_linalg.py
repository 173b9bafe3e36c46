"""The dask namespace's ``linalg`` against NumPy and JAX: values, dtypes and gradients.

dask's own ``cholesky`` returns the upper factor and its ``inv`` computes in float64;
both would be silently wrong results, so every function here is checked against NumPy
(values) and JAX (gradients), on one matrix and on a stack of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import unijax

da = pytest.importorskip("dask.array")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("unijax_dask")

from array_api_compat import array_namespace  # noqa: E402


def dask_namespace() -> Any:
    """What user code gets for a dask array (array_namespace), once the backend is loaded."""
    unijax.namespace("dask")
    return array_namespace(da.ones(1))


def spd(n: int, *batch: int, dtype: Any = np.float64, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((*batch, n, n))
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(dtype)


def compute(x: Any) -> Any:
    return x.compute(scheduler="sync")


@pytest.mark.parametrize("chunks", [None, 2])
def test_cholesky_is_the_lower_factor_like_numpy(chunks: int | None) -> None:
    xp = dask_namespace()
    a = spd(4)
    x = da.from_array(a, chunks=chunks or a.shape)
    np.testing.assert_allclose(compute(xp.linalg.cholesky(x)), np.linalg.cholesky(a),
                               rtol=1e-12)
    np.testing.assert_allclose(compute(xp.linalg.cholesky(x, upper=True)),
                               np.linalg.cholesky(a).T, rtol=1e-12)
    np.testing.assert_allclose(compute(unijax.namespace("dask").linalg.cholesky(x)),
                               np.linalg.cholesky(a), rtol=1e-12)


def test_cholesky_of_a_stack_maps_over_the_leading_axes() -> None:
    xp = dask_namespace()
    a = spd(3, 2, 4)
    got = xp.linalg.cholesky(da.from_array(a, chunks=(1, 2, 3, 3)))
    np.testing.assert_allclose(compute(got), np.linalg.cholesky(a), rtol=1e-12)


def test_gradient_through_cholesky_matches_jax() -> None:
    a = spd(4, seed=1)
    w = np.arange(16.0).reshape(4, 4)

    def f(x: Any) -> Any:
        xp = array_namespace(x)
        return xp.sum(xp.linalg.cholesky(x) * w)

    got = compute(unijax.grad(f)(da.from_array(a, chunks=2)))
    with jax.enable_x64(True):
        want = jax.grad(lambda x: jnp.sum(jnp.linalg.cholesky(x) * w))(jnp.asarray(a))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-9)


@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "eigvalsh", "cholesky"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linalg_values_and_dtypes_match_numpy(name: str, dtype: Any) -> None:
    xp = dask_namespace()
    for a, chunks in [(spd(4, dtype=dtype), 2), (spd(3, 2, dtype=dtype), (1, 3, 3))]:
        got = getattr(xp.linalg, name)(da.from_array(a, chunks=chunks))
        want = getattr(np.linalg, name)(a)
        got_leaves = tuple(got) if isinstance(got, tuple) else (got,)
        want_leaves = tuple(want) if isinstance(want, tuple) else (want,)
        for g, w in zip(got_leaves, want_leaves, strict=True):
            value = compute(g)
            assert value.dtype == w.dtype, (name, a.shape)
            np.testing.assert_allclose(value, w, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_eigh_matches_numpy_up_to_the_signs_of_the_vectors() -> None:
    xp = dask_namespace()
    a = spd(4, 3)
    w, v = xp.linalg.eigh(da.from_array(a, chunks=(1, 4, 4)))
    w_np, v_np = np.linalg.eigh(a)
    np.testing.assert_allclose(compute(w), w_np, rtol=1e-10)
    v = compute(v)
    np.testing.assert_allclose(np.abs(np.sum(v * v_np, axis=-2)), 1.0, rtol=1e-10)


@pytest.mark.parametrize("name", ["qr", "svd", "solve", "matrix_norm", "vector_norm",
                                  "trace", "outer", "vecdot", "tensordot", "svdvals"])
def test_other_linalg_functions_match_numpy_or_raise(name: str) -> None:
    # Tall-and-skinny, several row chunks: the one form dask's qr and svd take.
    xp = dask_namespace()
    rng = np.random.default_rng(2)
    a, s = rng.standard_normal((6, 3)), spd(3)
    x, sx = da.from_array(a, chunks=(2, 3)), da.from_array(s, chunks=3)
    cases = {
        "qr": (lambda m: m.linalg.qr(x if m is xp else a), "product"),
        "svd": (lambda m: m.linalg.svd(x if m is xp else a, full_matrices=False), "product"),
        "solve": (lambda m: m.linalg.solve(sx if m is xp else s, x[:3] if m is xp else a[:3]),
                  None),
        "matrix_norm": (lambda m: (xp.linalg.matrix_norm(sx) if m is xp
                                   else np.linalg.norm(s)), None),
        "vector_norm": (lambda m: (xp.linalg.vector_norm(x, ord=3) if m is xp
                                   else np.sum(np.abs(a) ** 3) ** (1 / 3)), None),
        "trace": (lambda m: xp.linalg.trace(sx, offset=1) if m is xp else np.trace(s, 1),
                  None),
        "outer": (lambda m: (xp.linalg.outer(x[:, 0], x[:, 1]) if m is xp
                             else np.outer(a[:, 0], a[:, 1])), None),
        "vecdot": (lambda m: xp.linalg.vecdot(x, x) if m is xp else np.sum(a * a, -1), None),
        "tensordot": (lambda m: (xp.linalg.tensordot(x, x, axes=((0,), (0,))) if m is xp
                                 else a.T @ a), None),
        "svdvals": (lambda m: (xp.linalg.svdvals(x) if m is xp
                               else np.linalg.svd(a, compute_uv=False)), None),
    }
    fn, check = cases[name]
    try:
        got = fn(xp)
    except (ValueError, TypeError, NotImplementedError, AttributeError):
        return  # refused: an error, never a wrong value
    got = tuple(compute(g) for g in got) if isinstance(got, tuple) else compute(got)
    if check == "product":  # factors are unique up to signs: check they rebuild a
        if name == "qr":
            q, r = got
            np.testing.assert_allclose(q @ r, a, atol=1e-12)
            np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
        else:
            u, sv, vh = got
            np.testing.assert_allclose((u * sv) @ vh, a, atol=1e-12)
            np.testing.assert_allclose(sv, np.linalg.svd(a, compute_uv=False), rtol=1e-12)
    else:
        np.testing.assert_allclose(got, fn(np), rtol=1e-12)
