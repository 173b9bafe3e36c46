"""Rules of the manipulation and data type families, driven by the ``OpSpec`` rows of
``unijax_conformance.specs.manipulation`` (see ``rules_checks``); then targeted cases:
negative and tuple axes, dtype preservation, integer inputs, unbatched operands, errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unijax.engine.core as core
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.registry import (
    API_FUNCTIONS,
    CREATION_FUNCTIONS,
    batch_rules,
    jvp_rules,
    nondifferentiable,
    vjp_rules,
)
from unijax.engine.rules.manipulation import AxisError
from unijax.errors import ConcretizationError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules_checks as rc
from rules_checks import TRACED, engine_grad
from unijax_conformance.specs.manipulation import SPECS

IDS = [s.name for s in SPECS]
STANDARD = """
broadcast_arrays broadcast_to concat expand_dims flip moveaxis permute_dims repeat reshape
roll squeeze stack tile unstack astype
""".split()
DTYPE_QUERIES = ["can_cast", "finfo", "iinfo", "isdtype", "result_type"]


def test_every_manipulation_function_is_registered_with_rules() -> None:
    for name in STANDARD:
        assert name in API_FUNCTIONS, name
        prim = core.PRIMITIVES.get(name)
        if prim is None:  # a composition of other primitives (broadcast_arrays)
            continue
        assert prim in batch_rules, name
        assert prim in nondifferentiable or (prim in jvp_rules and prim in vjp_rules), name
    for name in DTYPE_QUERIES:
        assert name in CREATION_FUNCTIONS, name


def test_every_function_has_a_spec_row() -> None:
    assert set(STANDARD + DTYPE_QUERIES) <= {s.function for s in SPECS}
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

X = np.arange(24.0).reshape(2, 3, 4) / 7


def grad_of(f: Any, *args: Any) -> list[Any]:
    return engine_grad(f, [np.asarray(a) for a in args])


def jax_grad_of(f: Any, *args: Any) -> list[Any]:
    return list(rc.jax.grad(f, argnums=tuple(range(len(args))))(
        *[rc.jnp.asarray(a) for a in args]))


def weighted(xp: Any, out: Any) -> Any:
    w = np.cos(np.arange(np.prod(out.shape))).reshape(out.shape)
    return xp.sum(out * w)


@pytest.mark.parametrize(
    "call",
    [
        lambda xp, x: xp.expand_dims(x, axis=-4),
        lambda xp, x: xp.expand_dims(x, axis=(0, -1)),
        lambda xp, x: xp.expand_dims(x, axis=(-1, 1, 3)),
        lambda xp, x: xp.squeeze(xp.expand_dims(x, axis=2), axis=-2),
        lambda xp, x: xp.moveaxis(x, (-1, 0), (0, -1)),
        lambda xp, x: xp.flip(x, axis=(-1, -3)),
        lambda xp, x: xp.roll(x, (1, 2, -7), axis=(0, -1, 0)),
        lambda xp, x: xp.roll(x, -5),
        lambda xp, x: xp.repeat(x, 2, axis=-2),
        lambda xp, x: xp.repeat(x, xp.asarray([2]), axis=1),
        lambda xp, x: xp.tile(x, (2,)),
        lambda xp, x: xp.concat([x, x[:, :1]], axis=-2),
        lambda xp, x: xp.stack([x, 2 * x], axis=-2),
        lambda xp, x: xp.unstack(x, axis=-2)[1],
        lambda xp, x: xp.reshape(x, (4, -1, 3)),
        lambda xp, x: xp.broadcast_to(x[:, None], (2, 5, 3, 4)),
    ],
    ids=[f"case{i}" for i in range(16)],
)
def test_axis_forms_match_jax(call: Any) -> None:
    np.testing.assert_allclose(call(TRACED, X), call(rc.anp, X), rtol=1e-15)
    rc.assert_close(grad_of(lambda a: weighted(TRACED, call(TRACED, a)), X),
                    jax_grad_of(lambda a: weighted(rc.jnp, call(rc.jnp, a)), X))
    results = vmap_flat(lambda ys: [call(TRACED, ys[0])], [np.stack([X, -X], axis=1)], [1], 2)
    (value, bdim), = results
    want = np.stack([call(rc.anp, X), call(rc.anp, -X)])
    np.testing.assert_allclose(np.moveaxis(np.asarray(value), bdim, 0), want, rtol=1e-15)


def test_params_are_canonical() -> None:
    """Negative axes and equivalent arguments record the same primitive params."""
    from unijax.engine.rules import joining, manipulation

    seen: list[Any] = []

    class Spy:
        def __init__(self, prim: Any) -> None:
            self.prim = prim

    for prim in (manipulation.roll_p, manipulation.flip_p, joining.concat_p,
                 manipulation.reshape_p):
        original = prim.impl_for(rc.anp)

        def spy(*args: Any, _original: Any = original, **params: Any) -> Any:
            seen.append(params)
            return _original(*args, **params)

        prim._impls[id(rc.anp)] = spy
        prim._impl_by_type.clear()  # bind would otherwise find the cached implementation
    try:
        TRACED.roll(X, 5, axis=-1)
        TRACED.roll(X, 1, axis=2)
        TRACED.flip(X, axis=(-1, 0))
        TRACED.concat([X, X], axis=-1)
        TRACED.reshape(X, (-1, 4))
    finally:
        for prim in (manipulation.roll_p, manipulation.flip_p, joining.concat_p,
                     manipulation.reshape_p):
            prim._impls.clear()
            prim._impl_by_type.clear()
    assert seen == [{"shift": (1,), "axis": (2,)}, {"shift": (1,), "axis": (2,)},
                    {"axis": (0, 2)}, {"axis": 2}, {"shape": (6, 4)}]


def test_dtypes_are_preserved_and_promoted() -> None:
    x32 = X.astype(np.float32)
    for f in (lambda a: TRACED.flip(a), lambda a: TRACED.tile(a, (2, 1)),
              lambda a: TRACED.repeat(a, 2), lambda a: TRACED.stack([a, a]),
              lambda a: TRACED.roll(a, 1, axis=0), lambda a: TRACED.unstack(a)[0]):
        (out,), backward = vjp_flat(lambda xs, f=f: [f(xs[0])], [x32])
        assert out.dtype == np.float32
        (g,) = backward([np.ones(out.shape, np.float32)])
        assert g.dtype == np.float32
    # Mixed float32/float64 concat promotes; each cotangent keeps its input's dtype.
    (out,), backward = vjp_flat(lambda xs: [TRACED.concat(xs, axis=0)], [x32, X])
    assert out.dtype == np.float64
    g32, g64 = backward([np.ones(out.shape)])
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    _, (t,) = jvp_flat(lambda xs: [TRACED.concat(xs, axis=0)], [x32, X],
                       [np.ones_like(x32), None])
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t, np.concatenate([np.ones_like(X), np.zeros_like(X)]))


def test_integer_operands_get_no_gradient() -> None:
    n = np.arange(24).reshape(2, 3, 4)
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.concat([a, TRACED.astype(n, a.dtype)]) ** 2), X)
    np.testing.assert_allclose(g, 2 * X)
    (g,) = grad_of(lambda a: TRACED.sum(a * TRACED.astype(TRACED.astype(a, TRACED.int64),
                                                          a.dtype)), X)
    np.testing.assert_allclose(g, np.trunc(X))
    _, backward = vjp_flat(lambda xs: [TRACED.stack([xs[0], xs[1]])], [X, n])
    g, gn = backward([np.ones((2, *X.shape))])
    np.testing.assert_array_equal(g, np.ones_like(X))
    np.testing.assert_array_equal(gn, np.zeros_like(n))


def test_astype_complex_to_real_follows_jax() -> None:
    z = (X + 1j * X[::-1]).astype(np.complex128)

    def f(xp: Any) -> Any:
        return lambda a: xp.sum(xp.real(xp.astype(xp.astype(a, xp.complex128) * (1 + 2j),
                                                  xp.complex128) * a))

    (g,) = grad_of(f(TRACED), X)
    rc.assert_close([g], jax_grad_of(f(rc.jnp), X))
    _, backward = vjp_flat(lambda xs: [TRACED.astype(xs[0], TRACED.complex64)], [z])
    (gz,) = backward([np.ones(z.shape, np.complex64)])
    assert gz.dtype == np.complex128


def test_unstack_with_unused_parts() -> None:
    (g,) = grad_of(lambda a: TRACED.sum(TRACED.unstack(a, axis=1)[2] * 3.0), X)
    want = np.zeros_like(X)
    want[:, 2] = 3.0
    np.testing.assert_array_equal(g, want)


def test_repeat_with_traced_counts_under_vmap_is_a_clear_error() -> None:
    counts = np.array([[1, 2], [0, 3]])
    with pytest.raises(ConcretizationError, match="repeats"):
        vmap_flat(lambda ys: [TRACED.repeat(ys[0], ys[1])], [np.ones((2, 2)), counts], [0, 0],
                  2)
    # Concrete counts work under vmap, batched over x.
    results = vmap_flat(lambda ys: [TRACED.repeat(ys[0], counts[1], axis=0)],
                        [np.arange(4.0).reshape(2, 2)], [0], 2)
    np.testing.assert_array_equal(results[0][0], [[1, 1, 1], [3, 3, 3]])


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda x: TRACED.expand_dims(x, axis=4), IndexError),
        (lambda x: TRACED.expand_dims(x, axis=(0, 0)), AxisError),
        (lambda x: TRACED.squeeze(x, axis=0), ValueError),
        (lambda x: TRACED.flip(x, axis=3), AxisError),
        (lambda x: TRACED.permute_dims(x, (0, 1)), AxisError),
        (lambda x: TRACED.permute_dims(x, (0, 0, 1)), AxisError),
        (lambda x: TRACED.moveaxis(x, (0, 1), 2), ValueError),
        (lambda x: TRACED.reshape(x, (5, -1)), ValueError),
        (lambda x: TRACED.reshape(x, (-1, -1)), ValueError),
        (lambda x: TRACED.broadcast_to(x, (3, 4)), ValueError),
        (lambda x: TRACED.concat([x, x[0]]), ValueError),
        (lambda x: TRACED.concat([]), TypeError),
        (lambda x: TRACED.stack([x, x[0]]), ValueError),
        (lambda x: TRACED.roll(x, (1, 2), axis=0), ValueError),
        (lambda x: TRACED.repeat(x, -1), ValueError),
        (lambda x: TRACED.tile(x, (-1,)), ValueError),
    ],
)
def test_invalid_arguments_raise(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        vjp_flat(lambda xs: [call(xs[0])], [X])


def test_dtype_queries_accept_traced_arrays() -> None:
    seen: list[Any] = []

    def f(xs: Any) -> Any:
        a, b = xs
        seen.append((TRACED.result_type(a, b), TRACED.result_type(a, 1.0),
                     TRACED.can_cast(a, TRACED.float64), TRACED.finfo(a).bits,
                     TRACED.iinfo(TRACED.astype(b, TRACED.int16)).bits,
                     TRACED.isdtype(a.dtype, "real floating")))
        return [a]

    vjp_flat(f, [X.astype(np.float32), X.astype(np.float64)])
    vmap_flat(f, [X.astype(np.float32), X.astype(np.float64)], [0, None], 2)
    for got in seen:
        assert got == (np.float64, np.float32, True, 32, 16, True)
