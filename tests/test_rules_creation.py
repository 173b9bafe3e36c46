"""Rules of the creation family, driven by the ``OpSpec`` rows of
``unijax_conformance.specs.creation`` (see ``rules_checks``); then targeted cases:
``asarray`` of lists holding traced arrays, copies and dtypes, ``*_like`` of tracers,
``meshgrid``/``tril``/``triu`` under ``vmap``, constants made from Python data.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unijax.engine.core as core
from unijax.engine.ad import vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.registry import (
    API_FUNCTIONS,
    CREATION_FUNCTIONS,
    batch_rules,
    jvp_rules,
    vjp_rules,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules_checks as rc
from rules_checks import TRACED, engine_grad
from unijax_conformance.specs.creation import SPECS

IDS = [s.name for s in SPECS]
ARRAY_FUNCTIONS = ["zeros_like", "ones_like", "empty_like", "full_like", "tril", "triu",
                   "meshgrid"]
PYTHON_DATA = ["asarray", "from_dlpack", "zeros", "ones", "empty", "full", "arange", "eye",
               "linspace"]


def test_every_creation_function_is_registered() -> None:
    for name in ARRAY_FUNCTIONS:
        assert name in API_FUNCTIONS, name
    for name in ("tril", "triu"):
        prim = core.PRIMITIVES[name]
        assert prim in batch_rules and prim in jvp_rules and prim in vjp_rules, name
    assert {"asarray", "from_dlpack"} <= set(CREATION_FUNCTIONS)
    for name in PYTHON_DATA:
        assert callable(getattr(TRACED, name)), name


def test_every_function_has_a_spec_row() -> None:
    assert set(ARRAY_FUNCTIONS + PYTHON_DATA) <= {s.function for s in SPECS}
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_values_match_numpy_and_jax(spec: Any) -> None:
    rc.check_values(spec)


GRAD = [s for s in SPECS if s.grad]


@pytest.mark.parametrize("spec", GRAD, ids=[s.name for s in GRAD])
def test_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    rc.check_derivatives(spec)


VMAP = [s for s in SPECS if s.vmap]


@pytest.mark.parametrize("spec", VMAP, ids=[s.name for s in VMAP])
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    rc.check_vmap(spec)


@pytest.mark.parametrize("spec", GRAD, ids=[s.name for s in GRAD])
def test_vmap_of_grad_matches_per_example_grads(spec: Any) -> None:
    rc.check_vmap_of_grad(spec)


JIT = [s for s in SPECS if s.jit]


@pytest.mark.parametrize("spec", JIT, ids=[s.name for s in JIT])
def test_jit_matches_eager(spec: Any) -> None:
    rc.check_jit(spec)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_rules_run_on_array_api_strict(spec: Any) -> None:
    rc.check_on_array_api_strict(spec)


# --- targeted cases -----------------------------------------------------------------------

X = np.array([[0.3, -0.7, 1.2], [2.0, -1.5, 0.4]])


def grad_of(f: Any, *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


def test_asarray_of_a_list_of_traced_arrays_is_differentiable() -> None:
    def f(a: Any) -> Any:
        rows = TRACED.asarray([[a[0, 0], 2.0], [a[1, 2] ** 2, a[0, 1]]])
        return TRACED.sum(rows * np.array([[1.0, 2.0], [3.0, 4.0]]))

    (g,) = grad_of(f, X)
    want = np.zeros_like(X)
    want[0, 0], want[1, 2], want[0, 1] = 1.0, 3.0 * 2 * X[1, 2], 4.0
    np.testing.assert_allclose(g, want)
    results = vmap_flat(lambda ys: [TRACED.asarray([ys[0][0], ys[0][1] * 2, 1.0])],
                        [X], [0], 2)
    np.testing.assert_allclose(results[0][0], [[0.3, -1.4, 1.0], [2.0, -3.0, 1.0]])


def test_asarray_dtypes_and_copies() -> None:
    x32 = X.astype(np.float32)
    seen: list[Any] = []

    def f(xs: Any) -> Any:
        a = xs[0]
        seen.append(TRACED.asarray([a[0, 0], 1.0]).dtype)
        seen.append(TRACED.asarray([a[0, 0], 1]).dtype)
        seen.append(TRACED.asarray(a, dtype=TRACED.float64).dtype)
        assert TRACED.asarray(a) is a and TRACED.asarray(a, copy=False) is a
        copy = TRACED.asarray(a, copy=True)
        copy[0, 0] = 5.0  # must not change `a`
        assert bool(a[0, 0] == float(x32[0, 0]))  # float() refuses a differentiated value
        with pytest.raises(ValueError):
            TRACED.asarray(a, dtype=TRACED.float64, copy=False)
        return [a]

    vjp_flat(f, [x32])
    assert seen == [np.float32, np.float32, np.float64]
    # Python data still goes straight to the backend.
    assert isinstance(TRACED.asarray([1.0, 2.0]), np.ndarray)


def test_like_functions_of_tracers() -> None:
    seen: list[Any] = []

    def f(xs: Any) -> Any:
        a = xs[0]
        seen.append(TRACED.zeros_like(a, dtype=np.dtype("int32")).dtype)  # a falsy dtype
        seen.append(TRACED.ones_like(a).dtype)
        seen.append(TRACED.full_like(a, 3, dtype=TRACED.int16).dtype)
        seen.append(TRACED.empty_like(a).shape)
        return [TRACED.full_like(a, TRACED.sum(a)) * a]  # a traced fill value

    (out,), backward = vjp_flat(f, [X])
    assert seen == [np.int32, np.float64, np.int16, (2, 3)]
    np.testing.assert_allclose(out, X.sum() * X)
    (g,) = backward([np.ones_like(X)])
    np.testing.assert_allclose(g, np.full_like(X, 2 * X.sum()))
    ((value, bdim),) = vmap_flat(lambda ys: [TRACED.zeros_like(ys[0]) + 1.0], [X], [1], 3)
    got = np.broadcast_to(value, (3, 2)) if bdim is None else np.moveaxis(value, bdim, 0)
    np.testing.assert_array_equal(got, np.ones((3, 2)))


def test_meshgrid_with_mixed_batched_operands() -> None:
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([0.5, -0.5])
    for indexing in ("xy", "ij"):
        results = vmap_flat(lambda ys, ix=indexing: list(TRACED.meshgrid(ys[0], ys[1],
                                                                          indexing=ix)),
                            [a, b], [0, None], 2)
        for k, (value, bdim) in enumerate(results):
            want = np.stack([np.meshgrid(a[i], b, indexing=indexing)[k] for i in range(2)])
            got = np.broadcast_to(value, want.shape) if bdim is None else np.moveaxis(
                value, bdim, 0)
            np.testing.assert_array_equal(got, want)


def test_tril_triu_batched_and_differentiated() -> None:
    x = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    for name in ("tril", "triu"):
        for k in (-1, 0, 2):
            fn = getattr(TRACED, name)
            results = vmap_flat(lambda ys, fn=fn, k=k: [fn(ys[0], k=k)], [x], [2], 4)
            value, bdim = results[0]
            want = np.stack([getattr(np, name)(x[..., i], k=k) for i in range(4)])
            np.testing.assert_array_equal(np.moveaxis(value, bdim, 0), want)
            (g,) = grad_of(lambda a, fn=fn, k=k: TRACED.sum(fn(a, k=k) * 2.0), x)
            np.testing.assert_array_equal(g, 2.0 * getattr(np, name)(np.ones_like(x), k=k))
    with pytest.raises(ValueError):
        TRACED.tril(np.ones(3))


def test_python_data_creation_functions_make_constants_under_transforms() -> None:
    import unijax

    def f(a: Any) -> Any:
        grid = TRACED.linspace(0.0, 1.0, a.shape[-1]) + TRACED.arange(a.shape[-1])
        return TRACED.sum(a * grid * TRACED.eye(2, a.shape[-1])[0] + TRACED.full(a.shape, 2.0)
                          + TRACED.zeros(a.shape) * TRACED.ones(a.shape))

    (g,) = grad_of(f, X)
    np.testing.assert_allclose(g, np.broadcast_to((np.linspace(0, 1, 3) + np.arange(3))
                                                  * np.eye(2, 3)[0], X.shape))
    np.testing.assert_allclose(unijax.jit(f)(X), f(X))


def test_from_dlpack_of_a_tracer_is_the_tracer() -> None:
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.from_dlpack(a) ** 2), X)
    np.testing.assert_allclose(g, 2 * X)
    out = TRACED.from_dlpack(X)
    assert isinstance(out, np.ndarray)
