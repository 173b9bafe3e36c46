"""Rules of the searching, sorting and set functions: values, derivatives (``where`` and
``sort``), batching and jit, driven by the ``OpSpec`` rows of
``unijax_conformance.specs.searching``; then targeted cases (ties in ``sort``, Python
scalars in ``where``, per-example sorted arrays in ``searchsorted``, and the clear errors
of ``nonzero``/``unique_*`` under ``vmap`` and ``jit``).

The table-driven checks are the helpers of ``tests/test_rules_reductions.py``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import array_api_compat.numpy as anp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_rules_reductions import (
    TRACED,
    assert_close,
    check_coverage,
    check_grad,
    check_jit,
    check_second_derivatives,
    check_values,
    check_vmap,
    check_vmap_of_grad,
    engine_grad,
    grad_of,
    jax,
    jax_grad_of,
    jnp,
    rows,
    run_on,
)
from unijax_conformance.specs import searching as spec_module

from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.jit import JitFunction
from unijax.errors import ConcretizationError

SPECS = spec_module.SPECS

STANDARD = """
argmax argmin count_nonzero nonzero searchsorted where argsort sort
unique_all unique_counts unique_inverse unique_values
""".split()


# --- table-driven checks ------------------------------------------------------------------


def test_every_function_of_the_family_has_rules_and_rows() -> None:
    check_coverage(STANDARD, SPECS)


@rows(SPECS, "values")
def test_values_match_numpy_and_jax(spec: Any) -> None:
    check_values(spec)


@rows(SPECS, "grad")
def test_grad_matches_jax_and_finite_differences(spec: Any) -> None:
    check_grad(spec)


@rows(SPECS, "second")
def test_second_derivatives_match_jax_and_finite_differences(spec: Any) -> None:
    check_second_derivatives(spec)


@rows(SPECS, "vmap")
def test_vmap_matches_a_python_loop(spec: Any) -> None:
    check_vmap(spec)


@rows(SPECS, "vmap_grad")
def test_vmap_of_grad_matches_per_example_gradients(spec: Any) -> None:
    check_vmap_of_grad(spec)


@rows(SPECS, "jit")
def test_jit_matches_eager(spec: Any) -> None:
    check_jit(spec)


# --- where --------------------------------------------------------------------------------

X = np.array([[0.3, -0.7, 1.2], [2.0, -1.5, 0.4]])


def test_where_accepts_python_scalars_and_keeps_float32() -> None:
    x = X.astype(np.float32)
    for case in [lambda a: TRACED.where(a > 0, a, 0.0), lambda a: TRACED.where(a > 0, 1.5, a),
                 lambda a: TRACED.where(a > 0, a * 2, a)]:
        (out,), backward = vjp_flat(lambda xs, case=case: [case(xs[0])], [x])
        assert out.dtype == np.float32
        (g,) = backward([np.ones_like(x)])
        assert g.dtype == np.float32
        _, (t,) = jvp_flat(lambda xs, case=case: [case(xs[0])], [x], [np.ones_like(x)])
        assert t.dtype == np.float32
        np.testing.assert_array_equal(g, t)
    np.testing.assert_array_equal(TRACED.where(X > 0, 1.0, -1.0), np.where(X > 0, 1.0, -1.0))


def test_where_cotangents_reduce_to_broadcast_operand_shapes() -> None:
    c = np.array([[True], [False]])
    x1, x2 = np.array([1.0, 2.0, 3.0]), np.array([[4.0], [5.0]])
    gc, g1, g2 = grad_of(lambda a, b, d: TRACED.sum(TRACED.where(a > 0, b, d) ** 2),
                         c.astype(float), x1, x2)
    want = jax_grad_of(lambda a, b, d: jnp.sum(jnp.where(a > 0, b, d) ** 2),
                       c.astype(float), x1, x2)
    assert (g1.shape, g2.shape) == ((3,), (2, 1))
    assert_close([gc, g1, g2], want)
    np.testing.assert_array_equal(gc, np.zeros((2, 1)))


def test_where_with_a_batched_condition_only() -> None:
    cs = np.array([[True, False], [False, True], [True, True]])
    results = vmap_flat(lambda ys: [TRACED.where(ys[0], 2.0, np.array([0.5, -0.5]))], [cs],
                        [0], 3)
    ((value, bdim),) = results
    np.testing.assert_array_equal(np.moveaxis(value, bdim, 0),
                                  np.where(cs, 2.0, np.array([0.5, -0.5])))


def test_where_with_integer_operands_has_no_gradient() -> None:
    n = np.array([1, 2, 3])
    x = np.array([0.5, -1.0, 2.0])
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.where(a > 0, a, n)), x)
    np.testing.assert_array_equal(g, [1.0, 0.0, 1.0])
    (_,), backward = vjp_flat(lambda xs: [TRACED.where(xs[0] > 1, xs[0], xs[0])], [n])
    np.testing.assert_array_equal(backward([np.ones(3)])[0], np.zeros(3, dtype=int))


# --- sort / argsort -----------------------------------------------------------------------

TIES = np.array([[1.0, 3.0, 3.0, 2.0, 1.0], [0.5, 0.5, 0.5, -1.0, 2.0]])
RAMP = np.arange(10.0).reshape(2, 5) + 1


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("stable", [False, True])
@pytest.mark.parametrize("axis", [0, -1])
def test_sort_gradient_with_ties_matches_jax(descending: bool, stable: bool, axis: int) -> None:
    def f(xp: Any) -> Callable[..., Any]:
        return lambda a: xp.sum(xp.sort(a, axis=axis, descending=descending,
                                         stable=stable) * RAMP)

    assert_close(grad_of(f(TRACED), TIES), jax_grad_of(f(jnp), TIES))
    _, (t,) = jvp_flat(lambda xs: [TRACED.sort(xs[0], axis=axis, descending=descending)],
                       [TIES], [RAMP])
    _, want = jax.jvp(lambda a: jnp.sort(a, axis=axis, descending=descending),
                      (jnp.asarray(TIES),), (jnp.asarray(RAMP),))
    assert_close([t], [want])


def test_argsort_is_stable_in_both_directions() -> None:
    for descending in (False, True):
        got = TRACED.argsort(TIES, axis=-1, descending=descending)
        want = np.stack([sorted(range(5), key=lambda i, r=r: -r[i] if descending else r[i])
                         for r in TIES])
        np.testing.assert_array_equal(got, want)


def test_grad_of_sort_under_vmap_with_the_batch_axis_last() -> None:
    xs = np.array([[3.0, -1.0, 2.0], [0.5, 4.0, -2.0]]).T

    def per_example(ys: list[Any]) -> list[Any]:
        return engine_grad(lambda v: TRACED.sum(TRACED.sort(v) * np.array([1.0, 2.0, 3.0])), ys)

    ((value, bdim),) = vmap_flat(per_example, [xs], [1], 2)
    want = jax.vmap(jax.grad(lambda v: jnp.sum(jnp.sort(v) * jnp.array([1.0, 2.0, 3.0]))),
                    in_axes=1)(xs)
    assert_close([np.moveaxis(np.asarray(value), bdim, 0)], [want])


# --- argmax / argmin / count_nonzero ------------------------------------------------------


@pytest.mark.parametrize("name", ["argmax", "argmin", "count_nonzero"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_flattened_searches_under_vmap(name: str, keepdims: bool) -> None:
    xs = np.array([[[0.0, 2.0], [2.0, -1.0]], [[0.0, 0.0], [5.0, 1.0]], [[-3.0, 0.0], [0.0, 0.0]]])
    fn = getattr(TRACED, name)
    for bdim in range(3):
        batch = np.moveaxis(xs, 0, bdim)
        ((value, out_bdim),) = vmap_flat(lambda ys: [fn(ys[0], keepdims=keepdims)], [batch],
                                         [bdim], 3)
        want = np.stack([np.asarray(fn(x, keepdims=keepdims)) for x in xs])
        np.testing.assert_array_equal(np.moveaxis(np.asarray(value), out_bdim, 0), want)


# --- searchsorted -------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_with_a_sorted_array_per_example(side: str) -> None:
    nan = np.nan
    x1 = np.array([[0.0, 1.0, 1.0, 2.0, nan], [-1.0, -1.0, 0.5, 3.0, 3.0]])
    x2 = np.array([[1.0, nan, -5.0], [3.0, 0.5, 9.0]])
    sorter = np.argsort(x1[:, ::-1], axis=-1)
    cases = [
        ([x1, x2], [0, 0], lambda a, b: TRACED.searchsorted(a, b, side=side)),
        ([x1.T, x2[0]], [1, None], lambda a, b: TRACED.searchsorted(a, b, side=side)),
        ([x1[:, ::-1], x2, sorter], [0, 0, 0],
         lambda a, b, s: TRACED.searchsorted(a, b, side=side, sorter=s)),
    ]
    for args, in_dims, fn in cases:
        ((value, bdim),) = vmap_flat(lambda ys, fn=fn: [fn(*ys)], args, in_dims, 2)
        want = np.stack([
            np.searchsorted(*[a if d is None else np.take(a, i, axis=d)
                              for a, d in zip(args[:2], in_dims[:2], strict=True)], side=side,
                            sorter=None if len(args) == 2 else args[2][i])
            for i in range(2)])
        got = np.moveaxis(np.asarray(value), bdim, 0)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_searchsorted_with_one_sorted_array_and_batched_queries() -> None:
    x1 = np.array([0.0, 1.0, 1.0, 2.0])
    x2 = np.array([[1.0, 0.5], [2.0, -1.0], [1.5, 3.0]])
    ((value, bdim),) = vmap_flat(lambda ys: [TRACED.searchsorted(x1, ys[0], side="right")],
                                 [x2], [1], 2)
    np.testing.assert_array_equal(np.moveaxis(np.asarray(value), bdim, 0),
                                  np.searchsorted(x1, x2.T, side="right"))


def test_searchsorted_rejects_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="left"):
        TRACED.searchsorted(np.array([1.0]), np.array([1.0]), side="middle")


# --- data-dependent shapes ----------------------------------------------------------------

DATA_DEPENDENT = ["nonzero", "unique_all", "unique_counts", "unique_inverse", "unique_values"]


def test_unique_functions_return_the_standard_named_tuples() -> None:
    x = np.array([[2.0, 1.0], [2.0, 0.0]])
    result = TRACED.unique_all(x)
    assert result._fields == ("values", "indices", "inverse_indices", "counts")
    np.testing.assert_array_equal(result.values, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(result.counts, [1, 1, 2])
    np.testing.assert_array_equal(result.values[result.inverse_indices], x)
    assert TRACED.unique_counts(x)._fields == ("values", "counts")
    assert TRACED.unique_inverse(x)._fields == ("values", "inverse_indices")
    rows_, cols = TRACED.nonzero(x)
    np.testing.assert_array_equal(rows_, [0, 0, 1])
    np.testing.assert_array_equal(cols, [0, 1, 0])


@pytest.mark.parametrize("name", DATA_DEPENDENT)
def test_data_dependent_functions_run_under_grad(name: str) -> None:
    x = np.array([[2.0, 1.0], [2.0, 0.0]])

    def f(a: Any) -> Any:
        result = getattr(TRACED, name)(a)
        first = result if name == "unique_values" else result[0]
        return TRACED.sum(a * a) + TRACED.sum(TRACED.astype(first, a.dtype))

    (g,) = grad_of(f, x)
    np.testing.assert_array_equal(g, 2 * x)
    _, (t,) = jvp_flat(lambda xs: [f(xs[0])], [x], [np.ones_like(x)])
    assert float(t) == float(np.sum(2 * x))


@pytest.mark.parametrize("name", DATA_DEPENDENT)
def test_data_dependent_functions_refuse_vmap_and_jit(name: str) -> None:
    x = np.array([[2.0, 1.0], [2.0, 0.0]])
    fn = getattr(TRACED, name)
    with pytest.raises(ConcretizationError, match=rf"{name}\(\).*vmap"):
        vmap_flat(lambda ys: [fn(ys[0])], [x], [0], 2)
    with pytest.raises(ConcretizationError, match=rf"{name}\(\).*jit"):
        JitFunction(fn)(x)
    # Unbatched inside vmap: the same value for every example, so it runs.
    results = vmap_flat(lambda ys: [ys[0] * 2.0, fn(x)], [x], [0], 2)
    assert results[1][1] is None


# --- signatures ---------------------------------------------------------------------------


def test_traced_namespace_functions_have_standard_signatures() -> None:
    where = inspect.signature(TRACED.where).parameters
    assert [p.kind for p in where.values()] == [inspect.Parameter.POSITIONAL_ONLY] * 3
    sort = inspect.signature(TRACED.sort).parameters
    assert [(p.name, p.kind, p.default) for p in sort.values()] == [
        ("x", inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.empty),
        ("axis", inspect.Parameter.KEYWORD_ONLY, -1),
        ("descending", inspect.Parameter.KEYWORD_ONLY, False),
        ("stable", inspect.Parameter.KEYWORD_ONLY, True),
    ]
    assert list(inspect.signature(TRACED.searchsorted).parameters) == [
        "x1", "x2", "side", "sorter"]
    assert list(inspect.signature(TRACED.argmax).parameters) == ["x", "axis", "keepdims"]


@pytest.mark.parametrize(
    "call",
    [
        lambda xp, x: xp.sort(x, axis=0, descending=True),
        lambda xp, x: xp.where(x > 0, x * x, 0.5),
        lambda xp, x: xp.astype(xp.searchsorted(xp.sort(x[0, ...]), x), x.dtype) * x,
        lambda xp, x: xp.astype(xp.argmax(x, axis=1) + xp.argsort(x, axis=0)[0, ...], x.dtype),
        lambda xp, x: xp.astype(xp.count_nonzero(x, axis=0), x.dtype),
    ],
)
def test_rules_run_on_array_api_strict(call: Callable[..., Any]) -> None:
    strict = pytest.importorskip("array_api_strict")
    x = np.array([[0.0, 2.0, -1.5], [1.5, 0.0, 3.0], [1.0, -2.0, 0.5]])
    for got, want in zip(run_on(strict, call, x), run_on(anp, call, x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
