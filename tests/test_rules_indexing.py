"""Rules of the indexing family (``x[key]``, ``x[key] = v``, ``take``,
``take_along_axis``), driven by the ``OpSpec`` rows of ``unijax_conformance.specs.indexing``
(see ``rules_checks``); then targeted cases: the native (NumPy, JAX) and portable
(array-api-strict) concrete paths, accumulation over repeated indices, batched and
unbatched index arrays in every placement, boolean masks under transforms, errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import array_api_strict as xs
import numpy as np
import pytest

import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.indexing import parse_key
from unijax.engine.registry import API_FUNCTIONS, batch_rules, jvp_rules, vjp_rules
from unijax.engine.rules._index_eval import gather, scatter_add, scatter_set
from unijax.errors import ConcretizationError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules_checks as rc
from rules_checks import TRACED, engine_grad
from unijax_conformance.specs.indexing import BEYOND_STANDARD, SPECS

IDS = [s.name for s in SPECS]
PRIMITIVES = ["getitem", "setitem", "scatter_add", "take", "take_along_axis"]


def test_every_indexing_primitive_has_rules() -> None:
    for name in PRIMITIVES:
        prim = core.PRIMITIVES[name]
        assert prim in batch_rules and prim in jvp_rules and prim in vjp_rules, name
    assert {"take", "take_along_axis"} <= set(API_FUNCTIONS)


def test_every_function_has_a_spec_row() -> None:
    assert {"__getitem__", "__setitem__", "take", "take_along_axis"} <= {s.function
                                                                         for s in SPECS}
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
    rc.check_on_array_api_strict(spec, BEYOND_STANDARD)


# --- targeted cases -----------------------------------------------------------------------

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(3, 4, 5))
IDX = np.array([0, 2, -1, 0])
JDX = np.array([[1], [2]])
M0 = X3[:, 0, 0] > 0
KEYS = [
    0, -1, (1, 2), slice(None, None, -1), (slice(None), slice(3, 0, -2)), (Ellipsis, 1),
    (None, 1, None), (IDX,), (IDX, JDX), (slice(None), IDX), (IDX, slice(None), 2),
    (1, slice(None), IDX), (Ellipsis, IDX), (IDX, Ellipsis, IDX), (slice(None), IDX, None, IDX),
    (None, IDX), (JDX, IDX, slice(1, 3)),
    (slice(None), JDX, IDX), (np.array([True, False, True]),), (slice(None), X3[0] > 0),
    (Ellipsis, X3[0, 0] > 0), ([0, 1, 1],), (slice(1, 1),), (slice(-100, 100, 3), 1),
    (IDX, None, slice(None), 0), (slice(None), 0, IDX),
]
KEY_IDS = [f"key{i}" for i in range(len(KEYS))]


def grad_of(f: Any, *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
def test_concrete_paths_match_numpy_on_numpy_and_array_api_strict(key: Any) -> None:
    """The native path (NumPy) and the portable one (array-api-strict) give NumPy's results
    for gathers, accumulating scatters and last-write-wins sets."""
    want = X3[key]
    items, arrays = parse_key(X3, key)
    strict_arrays = [xs.asarray(np.asarray(a)) for a in arrays]
    ct = RNG.normal(size=want.shape)
    added = np.zeros_like(X3)
    np.add.at(added, key, ct)
    assigned = X3.copy()
    assigned[key] = ct
    for xp, x, arrs, conv in [(rc.anp, X3, arrays, np.asarray),
                              (xs, xs.asarray(X3), strict_arrays, xs.asarray)]:
        got = np.asarray(gather(xp, x, arrs, items))
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(np.asarray(scatter_add(xp, conv(ct), arrs, items, X3.shape)),
                                   added, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(np.asarray(scatter_set(xp, x, conv(ct), arrs, items)),
                                      assigned)


def test_jax_concrete_path_matches_numpy() -> None:
    jnp = rc.jnp
    for key in [(IDX, JDX), (slice(None), IDX, None, IDX), (1, slice(None), IDX),
                (Ellipsis, IDX)]:
        items, arrays = parse_key(X3, key)
        jarrays = [jnp.asarray(a) for a in arrays]
        np.testing.assert_array_equal(np.asarray(gather(jnp, jnp.asarray(X3), jarrays, items)),
                                      X3[key])
        ct = np.ones(X3[key].shape)
        added = np.zeros_like(X3)
        np.add.at(added, key, ct)
        got = scatter_add(jnp, jnp.asarray(ct), jarrays, items, X3.shape)
        np.testing.assert_allclose(np.asarray(got), added)


def test_repeated_indices_accumulate_gradients() -> None:
    x = np.array([1.0, 2.0, 3.0])
    idx = np.array([0, 0, 2, 0, -1])
    (g,) = grad_of(lambda a: TRACED.sum(a[idx] * np.arange(5.0)), x)
    np.testing.assert_allclose(g, [0 + 1 + 3, 0, 2 + 4])
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.take(a, idx) ** 2), x)
    np.testing.assert_allclose(g, [6 * 1.0, 0, 4 * 3.0])
    y = np.arange(6.0).reshape(2, 3)
    along = np.array([[0, 0, 1], [2, 2, 2]])
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.take_along_axis(a, along, axis=1)), y)
    np.testing.assert_allclose(g, [[2, 1, 0], [0, 0, 3]])


def test_portable_scatter_add_accumulates_repeats() -> None:
    items, arrays = parse_key(X3, (slice(None), np.array([1, 1, 3, 1])))
    ct = xs.ones((3, 4, 5), dtype=xs.float64)
    got = np.asarray(scatter_add(xs, ct, [xs.asarray(arrays[0])], items, X3.shape))
    np.testing.assert_array_equal(got[0, :, 0], [0, 3, 0, 1])


def test_float32_stays_float32() -> None:
    x = X3.astype(np.float32)

    def f(a: Any) -> Any:
        b = TRACED.asarray(a, copy=True)
        b[0, ::-1] = a[1] * 2
        return TRACED.sum(b[IDX, None] * 2) + TRACED.sum(TRACED.take(a, IDX, axis=-1))

    (out,), backward = vjp_flat(lambda xs_: [f(xs_[0])], [x])
    assert out.dtype == np.float32
    (g,) = backward([np.float32(1.0)])
    assert g.dtype == np.float32 and g.shape == x.shape
    _, (t,) = jvp_flat(lambda xs_: [f(xs_[0])], [x], [np.ones_like(x)])
    assert t.dtype == np.float32


def test_setitem_inside_grad_matches_jax() -> None:
    x = RNG.normal(size=(4, 3))

    def engine(a: Any) -> Any:
        b = TRACED.asarray(a, copy=True)
        b[1:, 0] = b[:-1, 1] ** 2
        b[np.array([0, 3])] = TRACED.sin(a[np.array([2, 1])])
        b[b > 0.5] = 0.25
        return TRACED.sum(b * a)

    def reference(a: Any) -> Any:
        jnp = rc.jnp
        b = a.at[1:, 0].set(a[:-1, 1] ** 2)
        b = b.at[np.array([0, 3])].set(jnp.sin(a[np.array([2, 1])]))
        b = jnp.where(b > 0.5, 0.25, b)
        return jnp.sum(b * a)

    rc.assert_close(grad_of(engine, x), [rc.jax.grad(reference)(rc.jnp.asarray(x))])


def test_setitem_on_an_input_keeps_its_gradient_and_the_caller_array() -> None:
    x = np.arange(4.0)
    before = x.copy()
    grad_of(lambda a: TRACED.sum(TRACED.where(a > 1, a, 0.0)), x)

    def f(a: Any) -> Any:
        a[0] = 10.0  # rebinds the tracer, never the caller's array
        return TRACED.sum(a * a)

    (g,) = grad_of(f, x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(g, [0.0, 2.0, 4.0, 6.0])


def vmap_check(fn: Any, args: list[np.ndarray], in_dims: list[int | None],
               size: int = 3) -> None:
    results = vmap_flat(lambda ys: rc.outputs(fn(TRACED, *ys)), args, in_dims, size)
    for k, (value, bdim) in enumerate(results):
        want = np.stack([
            np.asarray(rc.outputs(fn(rc.anp, *[a if d is None else np.take(a, i, axis=d)
                                              for a, d in zip(args, in_dims, strict=True)]))[k])
            for i in range(size)])
        got = np.broadcast_to(value, want.shape) if bdim is None else np.moveaxis(
            np.asarray(value), bdim, 0)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


BATCHED_KEYS = [
    lambda i, j: (i,), lambda i, j: (i, j), lambda i, j: (slice(None), i),
    lambda i, j: (i, slice(None), j), lambda i, j: (1, slice(None), i),
    lambda i, j: (slice(1, None), i, j), lambda i, j: (None, i, j), lambda i, j: (i, None, j),
    lambda i, j: (Ellipsis, i), lambda i, j: (slice(None, None, -1), j, i),
]


@pytest.mark.parametrize("make_key", BATCHED_KEYS, ids=[f"k{i}" for i in range(len(BATCHED_KEYS))])
@pytest.mark.parametrize("dims", [(0, 0, 0), (None, 0, None), (2, None, 1), (None, 1, 0),
                                  (1, None, None)])
def test_vmap_of_indexing_with_batched_and_unbatched_indices(make_key: Any, dims: Any) -> None:
    xd, id_, jd = dims
    x = RNG.normal(size=(4, 3, 5))
    i = np.array([[0, 2, -1], [1, 1, 2]])  # per-example shape (2, 3) when unbatched
    j = np.array([0, 2, 1])
    if xd is not None:
        x = np.stack([x, x * 2, x + 1], axis=xd)
    if id_ is not None:
        i = np.stack([i, i[::-1], (i + 1) % 3], axis=id_)
    if jd is not None:
        j = np.stack([j, j[::-1], (j + 1) % 3], axis=jd)

    def get(xp: Any, x: Any, i: Any, j: Any) -> Any:
        return x[make_key(i, j)]

    vmap_check(get, [x, i, j], [xd, id_, jd])

    def put(xp: Any, x: Any, i: Any, j: Any) -> Any:
        y = xp.asarray(x, copy=True)
        y[make_key(i, j)] = 7.0
        return y

    vmap_check(put, [x, i, j], [xd, id_, jd])

    def grad_of_get(xp: Any, x: Any, i: Any, j: Any) -> Any:
        if xp is TRACED:
            return engine_grad(lambda a: xp.sum(a[make_key(i, j)] ** 2), [x])[0]
        out = np.zeros_like(x)
        np.add.at(out, make_key(i, j), 2 * x[make_key(i, j)])
        return out

    vmap_check(grad_of_get, [x, i, j], [xd, id_, jd])


def test_vmap_of_setitem_with_batched_values() -> None:
    x = RNG.normal(size=(3, 4, 5, 2))
    v = RNG.normal(size=(3, 4))
    i = np.array([[0, 2], [1, 3], [3, 0]])

    def put(xp: Any, x: Any, v: Any, i: Any) -> Any:
        y = xp.asarray(x, copy=True)
        y[i, 1:3, 0] = v[i, None] * 2.0
        return y

    for dims in ([0, 0, 0], [None, 0, None], [0, None, 0], [None, None, 0], [0, 1, None]):
        args = [x if dims[0] is not None else x[0], v if dims[1] is not None else v[0],
                i if dims[2] is not None else i[0]]
        args = [a if d in (None, 0) else np.moveaxis(a, 0, d) for a, d in zip(args, dims,
                                                                                strict=True)]
        vmap_check(put, args, dims)


def test_vmap_of_take_and_take_along_axis_with_batched_indices() -> None:
    x = RNG.normal(size=(3, 4, 5))
    idx = np.array([[0, 3, 3], [1, -1, 0], [2, 2, 2]])
    vmap_check(lambda xp, a, i: xp.take(a, i, axis=0), [x, idx], [0, 0])
    vmap_check(lambda xp, a, i: xp.take(a, i, axis=-1), [x[0], idx], [None, 0])
    along = np.array([[[0, 1, 1, 4]] * 4, [[2, 2, 2, 3]] * 4, [[4, 3, 2, 1]] * 4])
    vmap_check(lambda xp, a, i: xp.take_along_axis(a, i, axis=-1), [x, along], [0, 0])
    vmap_check(lambda xp, a, i: xp.take_along_axis(a, i, axis=-1), [x[0], along], [None, 0])
    vmap_check(lambda xp, a, i: xp.take_along_axis(a, i, axis=-1),
               [np.moveaxis(x, 0, -1), along[0]], [2, None])


def test_traced_integer_index_under_vmap_and_jit() -> None:
    import unijax

    x = np.arange(12.0).reshape(3, 4)
    vmap_check(lambda xp, a, i: a[i], [x, np.array([2, 0, 1])], [None, 0])
    vmap_check(lambda xp, a, i: a[:, i], [x, np.array([3, 0, 1])], [None, 0])
    vmap_check(lambda xp, a, i: a[i], [x.T, np.array([3, 0, 1])], [1, 0])
    f = unijax.jit(lambda a, i: TRACED.sum(a[i] * 2))
    for k in (0, 2):
        assert float(f(x, np.asarray(k))) == float(np.sum(x[k] * 2))


def test_traced_boolean_mask_under_vmap_is_a_clear_error() -> None:
    x = RNG.normal(size=(3, 4))
    with pytest.raises(ConcretizationError, match=r"xp\.where"):
        vmap_flat(lambda ys: [ys[0][ys[0] > 0]], [x], [0], 3)
    # Setting through a traced mask needs no data-dependent shape: it works.
    def put(xp: Any, a: Any) -> Any:
        b = xp.asarray(a, copy=True)
        b[b > 0] = 0.0
        b[..., b[0] < 0] = 1.0
        return b

    vmap_check(put, [x[:, None, :].repeat(2, 1)], [0])


def test_traced_boolean_mask_under_jit_is_a_clear_error() -> None:
    import unijax

    x = RNG.normal(size=(3, 4))
    with pytest.raises(ConcretizationError, match="boolean mask"):
        unijax.jit(lambda a: a[a > 0])(x)
    # A constant mask is fine under jit, and so is setting through a traced one.
    keep = x[0] > 0
    np.testing.assert_array_equal(unijax.jit(lambda a: a[:, keep] * 2)(x), x[:, keep] * 2)

    def put(a: Any) -> Any:
        b = TRACED.asarray(a, copy=True)
        b[b > 0] = 0.0
        return b

    np.testing.assert_array_equal(unijax.jit(put)(x), np.where(x > 0, 0.0, x))


def test_boolean_mask_eagerly_and_under_grad() -> None:
    x = RNG.normal(size=(3, 4))
    (g,) = grad_of(lambda a: TRACED.sum(a[a > 0] ** 2), x)
    np.testing.assert_allclose(g, np.where(x > 0, 2 * x, 0.0))


@pytest.mark.parametrize(
    ("key", "error"),
    [(3, IndexError), (-4, IndexError), ((0, 0, 0), IndexError), (1.5, IndexError),
     ((Ellipsis, Ellipsis), IndexError), (True, IndexError),
     (np.array([True, False]), IndexError), (np.array([0.5]), IndexError),
     (slice(None, None, 0), ValueError)],
)
def test_invalid_keys_raise(key: Any, error: type[Exception]) -> None:
    x = np.zeros((3, 2))
    with pytest.raises(error):
        vjp_flat(lambda ys: [ys[0][key]], [x])


def test_setitem_value_that_does_not_broadcast_raises() -> None:
    def f(ys: Any) -> Any:
        y = ys[0]
        y[0] = TRACED.ones((3,))
        return [y]

    with pytest.raises(ValueError, match="broadcast"):
        vjp_flat(f, [np.zeros((3, 2))])


def test_integer_index_inputs_get_zero_cotangents() -> None:
    x = np.array([1.0, 2.0, 3.0])
    i = np.array([2, 2])
    _, backward = vjp_flat(lambda ys: [TRACED.sum(ys[0][ys[1]])], [x, i])
    g, gi = backward([np.asarray(1.0)])
    np.testing.assert_array_equal(g, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(gi, [0, 0])


def test_identity_keys_return_the_same_tracer() -> None:
    seen = []
    vjp_flat(lambda ys: [seen.append((ys[0][...] is ys[0], ys[0][:] is ys[0])) or ys[0]],
             [np.zeros((2, 2))])
    assert seen == [(True, True)]


def test_list_keys_and_integer_targets() -> None:
    x = np.arange(6.0).reshape(3, 2)

    def f(a: Any) -> Any:
        i = TRACED.astype(TRACED.sum(TRACED.astype(a > 2, TRACED.int64)), TRACED.int64)
        return TRACED.sum(a[[0, i - 2]] * 3.0)  # a list holding a traced index

    (g,) = grad_of(f, x)
    np.testing.assert_allclose(g, [[3.0, 3.0], [3.0, 3.0], [0.0, 0.0]])
    n = np.arange(4)

    def put(ys: Any) -> Any:
        y = TRACED.asarray(ys[0], copy=True)
        y[y > 1] = 0.5  # a float into an integer array truncates, as in NumPy
        return [y]

    (out,), _ = vjp_flat(put, [n])
    assert out.dtype == n.dtype
    np.testing.assert_array_equal(out, [0, 1, 0, 0])
