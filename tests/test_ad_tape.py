"""The reverse-mode tape keeps only what VJP rules read (``def_vjp_metadata``)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pytest

from unijax._ad import ShapeDtype, vjp_flat
from unijax._core import Primitive
from unijax._namespace import array_functions as ops
from unijax.extend import def_vjp_metadata


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
