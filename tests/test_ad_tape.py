"""The reverse-mode tape keeps only what VJP rules read (``def_vjp_metadata``)."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from typing import Any

import numpy as np
import pytest

from unijax.engine.ad import ShapeDtype, vjp_flat
from unijax.engine.core import Primitive
from unijax.engine.namespace import array_functions as ops
from unijax.extend import def_vjp, def_vjp_metadata


def test_tape_frees_an_intermediate_that_only_linear_ops_consumed() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    seen: list[Any] = []

    def f(args: list[Any]) -> list[Any]:
        w, b = args[0], args[1]
        product = ops.matmul(x, w)  # read backwards by nobody: matmul's VJP needs x and w
        seen.append(weakref.ref(product.value))
        return [ops.sum(ops.tanh(ops.add(product, b)))]

    outs, backward = vjp_flat(f, [w, b])
    gc.collect()
    assert seen[0]() is None, "the tape still holds x @ w"
    ct_w, ct_b = backward([np.ones(())])
    d = 1 - np.tanh(x @ w + b) ** 2
    np.testing.assert_allclose(ct_w, x.T @ d, rtol=1e-12)
    np.testing.assert_allclose(ct_b, d.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(outs[0], np.tanh(x @ w + b).sum(), rtol=1e-12)


def test_shape_dtype_keeps_scalars_and_describes_arrays() -> None:
    meta = ShapeDtype.of(np.zeros((2, 3), dtype=np.float32))
    assert (meta.shape, meta.dtype, meta.ndim) == ((2, 3), np.float32, 2)
    assert ShapeDtype.of(2.5) == 2.5


def test_def_vjp_metadata_rejects_unknown_parts_and_multiple_outputs() -> None:
    with pytest.raises(ValueError, match="'primals' and/or 'out'"):
        def_vjp_metadata(Primitive("tape_test_single"), "values")
    with pytest.raises(ValueError, match="several outputs"):
        def_vjp_metadata(Primitive("tape_test_multi", multiple_results=True), "out")


def test_tape_frees_the_input_of_tanh_whose_derivative_reads_its_output() -> None:
    x = np.linspace(-1.0, 1.0, 5)
    seen: list[Any] = []

    def f(args: list[Any]) -> list[Any]:
        pre = ops.multiply(args[0], 2.0)
        seen.append(weakref.ref(pre.value))
        return [ops.sum(ops.tanh(pre))]  # tanh' = 1 - tanh(pre)**2: pre is not needed

    _, backward = vjp_flat(f, [x])
    gc.collect()
    assert seen[0]() is None, "the tape still holds tanh's input"
    (ct,) = backward([np.ones(())])
    np.testing.assert_allclose(ct, 2 * (1 - np.tanh(2 * x) ** 2), rtol=1e-14)


# A probe whose VJP rule records, when it runs, whether an array is still alive.
_probe_p = Primitive("tape_test_probe", impl=lambda xp, x: xp.sin(x))
def_vjp_metadata(_probe_p, "out")  # its rule reads x: the tape keeps no hold on its output
_alive_when_probed: list[bool] = []
_watched: list[Any] = []


@def_vjp(_probe_p)
def _probe_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    gc.collect()
    _alive_when_probed.append(_watched[0]() is not None)
    return (ops.multiply(ct, ops.cos(primals[0])),)


def _watching(args: list[Any]) -> list[Any]:
    t = _probe_p.bind(args[0])
    u = ops.exp(t)  # exp's rule reads its output only: the tape's only hold on t is...
    _watched[:] = [weakref.ref(t.value)]
    return [ops.sum(ops.multiply(u, t))]  # ...this multiply, run backwards before the probe


@pytest.mark.parametrize("release", [False, True])
def test_a_single_backward_pass_releases_what_each_rule_read(release: bool) -> None:
    x = np.linspace(0.0, 1.0, 4)
    _alive_when_probed.clear()
    _, backward = vjp_flat(_watching, [x])
    (ct,) = backward([np.ones(())], release=release)
    assert _alive_when_probed == [not release]
    s = np.sin(x)
    np.testing.assert_allclose(ct, (np.exp(s) * s + np.exp(s)) * np.cos(x), rtol=1e-14)


def test_grad_releases_the_tape_as_it_goes_and_stays_correct() -> None:
    import unijax

    x = np.linspace(0.0, 1.0, 4)
    _alive_when_probed.clear()
    got = unijax.grad(lambda x: _watching([x])[0], backend="numpy")(x)
    assert _alive_when_probed == [False]
    s = np.sin(x)
    np.testing.assert_allclose(got, (np.exp(s) * s + np.exp(s)) * np.cos(x), rtol=1e-14)


def _peak_arrays(fn: Any, n: int) -> float:
    """Peak memory that ``fn()`` allocates, in float64 arrays of ``n`` elements."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / (8 * n)
    finally:
        tracemalloc.stop()


def test_tanh_backward_on_numpy_computes_in_one_buffer() -> None:
    # NumPy writes an operator's result into a temporary that nothing else references
    # (for arrays of 256 KiB and more). tanh's rule is written so that its derivative and
    # the product with the cotangent all happen in one buffer: peak memory is one array.
    n = 1 << 17  # 1 MiB of float64
    a = np.linspace(-1.0, 1.0, n)
    if _peak_arrays(lambda: -(a * a - 1), n) > 1.5:
        pytest.skip("this NumPy build does not elide temporaries")  # e.g. no backtrace()
    x = np.linspace(-1.0, 1.0, n)
    _, backward = vjp_flat(lambda xs: [ops.sum(ops.tanh(xs[0]))], [x])
    got: list[Any] = []
    assert _peak_arrays(lambda: got.extend(backward([np.ones(())])), n) < 1.5
    np.testing.assert_allclose(got[0], 1 - np.tanh(x) ** 2, rtol=1e-14)
