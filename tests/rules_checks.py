"""Table-driven checks of rule families, shared by ``test_rules_{manipulation,indexing,creation}``.

Each check takes one ``OpSpec`` row and runs the engine directly on NumPy arrays
(``vjp_flat``, ``jvp_flat``, ``vmap_flat``), so it tests the rules themselves whatever
backend plugins are installed: values against NumPy and JAX, gradients against JAX and
central finite differences, forward against reverse mode, second derivatives (forward
over reverse and reverse over reverse), ``vmap`` against a Python loop with the batch
axis first, last and absent, and ``jit`` against eager evaluation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import array_api_compat.numpy as anp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.array_api import make_strategies_namespace

import unijax.engine.core as core
from unijax._dtypes import is_complex
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import vmap_flat
from unijax.engine.namespace import TracedNamespace

try:
    import unijax_conformance  # noqa: F401
except ModuleNotFoundError:  # a source checkout without the conformance package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

# The plugin registry fills this cache; seeding it keeps these tests independent of it.
for _tp in (np.ndarray, np.float64, np.float32, np.int64, np.int32, np.bool_, np.complex128):
    core._NAMESPACE_BY_TYPE.setdefault(_tp, anp)

XPS = make_strategies_namespace(np)
TRACED = TracedNamespace(anp)
EXAMPLES = settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JAX_RTOL, JAX_ATOL = 1e-10, 1e-11
BATCH = 3


def outputs(result: Any) -> list[Any]:
    return list(result) if isinstance(result, tuple | list) else [result]


def is_float(a: Any) -> bool:
    return np.asarray(a).dtype.kind in "fc"


def weights_for(spec: Any, args: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Fixed random weights that turn the float outputs into one scalar."""
    rng = np.random.default_rng(7)
    return [rng.normal(size=np.shape(o)) if is_float(o) else None
            for o in outputs(spec.fn(anp, *args))]


def scalar_fn(spec: Any, xp: Any, weights: Sequence[Any]) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        total: Any = 0.0
        for out, w in zip(outputs(spec.fn(xp, *args)), weights, strict=True):
            if w is not None:
                total = total + xp.sum((xp.real(out) if is_complex(out.dtype) else out) * w)
        return total

    return f


def engine_grad(f: Callable[..., Any], args: Sequence[Any]) -> list[Any]:
    """The gradient of scalar ``f`` by the engine's reverse mode."""
    (_,), backward = vjp_flat(lambda xs: [f(*xs)], list(args))
    return backward([np.asarray(1.0)])


def directions(args: Sequence[np.ndarray], seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=a.shape) for a in args]


def dot(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    return float(sum(np.sum(np.asarray(x) * np.asarray(y)) for x, y in zip(xs, ys, strict=True)))


def assert_close(got: Sequence[Any], want: Sequence[Any], rtol: float = JAX_RTOL,
                 atol: float = JAX_ATOL) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def finite_difference(f: Callable[..., Any], args: Sequence[np.ndarray],
                      v: Sequence[np.ndarray], h: float = 1e-6) -> Any:
    plus = f(*[a + h * d for a, d in zip(args, v, strict=True)])
    minus = f(*[a - h * d for a, d in zip(args, v, strict=True)])
    if isinstance(plus, list):
        return [(np.asarray(p) - np.asarray(m)) / (2 * h)
                for p, m in zip(plus, minus, strict=True)]
    return (float(plus) - float(minus)) / (2 * h)


def jax_call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` under ``jax.jit`` (one compilation instead of one per primitive),
    eagerly where tracing fails (boolean masks need concrete values)."""
    try:
        return jax.jit(fn)(*args)
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError, TypeError, IndexError):
        return fn(*args)


def run(spec: Any, check: Callable[[tuple[np.ndarray, ...]], None]) -> None:
    """Run ``check`` on a few hypothesis draws of the row's inputs."""
    EXAMPLES(given(spec.arrays(XPS))(check))()


# --- the checks -----------------------------------------------------------------------------


def check_values(spec: Any) -> None:
    def check(args: tuple[np.ndarray, ...]) -> None:
        want = outputs(spec.fn(anp, *args))
        got = outputs(spec.fn(TRACED, *args))
        ref = outputs(jax_call(lambda *a: spec.fn(jnp, *a), *[jnp.asarray(a) for a in args]))
        for g, w, r in zip(got, want, ref, strict=True):
            g = np.asarray(g)
            assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=spec.rtol, atol=spec.atol)
            assert np.shape(r) == g.shape
            np.testing.assert_allclose(g, np.asarray(r), rtol=spec.rtol, atol=spec.atol)

    run(spec, check)


def check_derivatives(spec: Any) -> None:
    """First derivatives against JAX and finite differences, forward against reverse mode,
    and (for ``grad_order >= 2``) Hessian-vector products forward over reverse and reverse
    over reverse against JAX (one JAX trace gives both references)."""

    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        grads = engine_grad(f, args)
        for g, a in zip(grads, args, strict=True):
            assert g.shape == a.shape and g.dtype == a.dtype
        n = len(args)
        v = directions(args)
        jf = jax.grad(scalar_fn(spec, jnp, w), argnums=tuple(range(n)))
        ref, ref_hvp = jax_call(lambda a, d: jax.jvp(jf, a, d),
                                tuple(jnp.asarray(a) for a in args),
                                tuple(jnp.asarray(d) for d in v))
        assert_close(grads, ref)
        fd = finite_difference(scalar_fn(spec, anp, w), args, v)
        np.testing.assert_allclose(dot(grads, v), fd, rtol=spec.grad_rtol, atol=1e-6)
        (_,), (tangent,) = jvp_flat(lambda xs: [f(*xs)], list(args), v)
        np.testing.assert_allclose(float(tangent), dot(grads, v), rtol=1e-10, atol=1e-12)
        if spec.grad_order < 2:
            return
        _, hvp_fwd = jvp_flat(lambda xs: engine_grad(f, xs), list(args), v)
        assert_close(hvp_fwd, ref_hvp)
        hvp_rev = engine_grad(lambda *xs: sum(
            TRACED.sum(g * d) for g, d in zip(engine_grad(f, xs), v, strict=True)), args)
        assert_close(hvp_rev, ref_hvp)

    run(spec, check)


def batched(a: np.ndarray, bdim: int, size: int = BATCH) -> np.ndarray:
    """``size`` examples of ``a``'s shape (permutations of its elements, plus ``a``)."""
    rng = np.random.default_rng(11)
    flat = a.reshape(-1)
    stack = [a] + [rng.permutation(flat).reshape(a.shape) for _ in range(size - 1)]
    return np.moveaxis(np.stack(stack), 0, bdim)


def vmap_configs(args: Sequence[np.ndarray]) -> list[list[int | None]]:
    """Batch axes to try: all first, all last, and mixes with unbatched operands."""
    last = [a.ndim for a in args]
    configs: list[list[int | None]] = [[0] * len(args), last]
    if len(args) > 1:
        configs.append([last[0]] + [None] * (len(args) - 1))
        configs.append([None] + [min(1, a.ndim) for a in args[1:]])
    return configs


def check_vmap(spec: Any) -> None:
    def check(args: tuple[np.ndarray, ...]) -> None:
        for in_dims in vmap_configs(args):
            xs = [a if d is None else batched(a, d) for a, d in zip(args, in_dims, strict=True)]
            results = vmap_flat(lambda ys: outputs(spec.fn(TRACED, *ys)), xs, in_dims, BATCH)
            loop = [
                outputs(spec.fn(anp, *[x if d is None else np.take(x, i, axis=d)
                                       for x, d in zip(xs, in_dims, strict=True)]))
                for i in range(BATCH)
            ]
            for k, (value, bdim) in enumerate(results):
                want = np.stack([np.asarray(ex[k]) for ex in loop])
                got = (np.broadcast_to(value, want.shape) if bdim is None
                       else np.moveaxis(np.asarray(value), bdim, 0))
                assert got.dtype == want.dtype, (got.dtype, want.dtype)
                np.testing.assert_allclose(got, want, rtol=spec.rtol, atol=spec.atol)

    run(spec, check)


def check_vmap_of_grad(spec: Any) -> None:
    """``vmap(grad(f))`` equals the gradients taken one example at a time."""

    def check(args: tuple[np.ndarray, ...]) -> None:
        w = weights_for(spec, args)
        f = scalar_fn(spec, TRACED, w)
        xs = [batched(a, 0) for a in args]
        results = vmap_flat(lambda ys: engine_grad(f, ys), xs, [0] * len(xs), BATCH)
        for i in range(BATCH):
            want = engine_grad(f, [x[i] for x in xs])
            for (value, bdim), wnt in zip(results, want, strict=True):
                got = np.asarray(value) if bdim is None else np.take(value, i, axis=bdim)
                np.testing.assert_allclose(got, wnt, rtol=1e-12, atol=1e-12)

    run(spec, check)


def check_jit(spec: Any) -> None:
    import unijax

    def check(args: tuple[np.ndarray, ...]) -> None:
        fn = unijax.jit(lambda *xs: spec.fn(TRACED, *xs))
        for _ in range(2):  # the second call runs the compiled program
            got = outputs(fn(*args))
            want = outputs(spec.fn(anp, *args))
            for g, w in zip(got, want, strict=True):
                assert np.asarray(g).dtype == np.asarray(w).dtype
                np.testing.assert_allclose(np.asarray(g), w, rtol=spec.rtol, atol=spec.atol)

    run(spec, check)


def check_on_array_api_strict(spec: Any, beyond_standard: frozenset[str] = frozenset()) -> None:
    """The row on array-api-strict (the standard and nothing more) gives NumPy's values,
    gradients and batched values: the rules use only standard functions.

    Rows in ``beyond_standard`` use NumPy indexing that strict's own arrays refuse, so
    their eager values are not compared; under transforms unijax indexes them itself.
    """
    import array_api_strict as xs

    array_type = type(xs.asarray(0.0))
    core._NAMESPACE_BY_TYPE.setdefault(array_type, xs)
    strict = TracedNamespace(xs)

    def check(args: tuple[np.ndarray, ...]) -> None:
        sargs = [xs.asarray(a) for a in args]
        if spec.name not in beyond_standard:
            for g, w in zip(outputs(spec.fn(strict, *sargs)), outputs(spec.fn(anp, *args)),
                            strict=True):
                np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12, atol=1e-12)
        if spec.grad:
            w = weights_for(spec, args)
            f = scalar_fn(spec, strict, [None if v is None else xs.asarray(v) for v in w])
            (_,), backward = vjp_flat(lambda ys: [f(*ys)], sargs)
            want = engine_grad(scalar_fn(spec, TRACED, w), args)
            assert_close(backward([xs.asarray(1.0)]), want, rtol=1e-12, atol=1e-12)
        if spec.vmap:
            xb = [batched(a, 0) for a in args]
            results = vmap_flat(lambda ys: outputs(spec.fn(strict, *ys)),
                                [xs.asarray(b) for b in xb], [0] * len(xb), BATCH)
            for k, (value, bdim) in enumerate(results):
                want = np.stack([np.asarray(outputs(spec.fn(anp, *[b[i] for b in xb]))[k])
                                 for i in range(BATCH)])
                value = np.asarray(value)
                got = (np.broadcast_to(value, want.shape) if bdim is None
                       else np.moveaxis(value, bdim, 0))
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    run(spec, check)
