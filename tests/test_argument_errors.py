"""Misuse of a transform raises a unijax error, the same class on every backend, and the
options and arguments that are documented are honoured."""

from __future__ import annotations

import enum

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.errors import (
    ArgnumsError,
    ShapeError,
    TransformArgumentError,
    UnijaxError,
)

EVERY = ["numpy", "array_api_strict", "autograd", "jax"]


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Scale(float):
    pass


@pytest.mark.parametrize("make", [
    lambda: unijax.grad(3),
    lambda: unijax.vmap("f"),
    lambda: unijax.jit([1, 2]),
    lambda: unijax.hessian(None),
], ids=["grad", "vmap", "jit", "hessian"])
def test_non_callable_is_a_transform_argument_error(make):
    with pytest.raises(TransformArgumentError, match="expects a callable"):
        make()


@pytest.mark.parametrize("backend", EVERY)
def test_jvp_argument_errors(backend):
    x = unijax.asarray(np.ones(2), backend=backend)
    with pytest.raises(TransformArgumentError, match="tuples or lists"):
        unijax.jvp(lambda v: v, x, x, backend=backend)
    with pytest.raises(TransformArgumentError, match="same length"):
        unijax.jvp(lambda v: v, (x,), (), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_jit_string_leaf_is_a_transform_argument_error(backend):
    x = unijax.asarray(np.ones(2), backend=backend)
    with pytest.raises(TransformArgumentError, match="static"):
        unijax.jit(lambda v, s: v, backend=backend)(x, "abc")
    assert unijax.jit(lambda v, s: v, static_argnums=1, backend=backend)(x, "abc") is not None


def test_transpose_of_non_matrix_is_a_shape_error():
    with pytest.raises(ShapeError, match="2-D"):
        unijax.grad(lambda x: array_namespace(x).sum(x.T))(np.ones(3))
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, UnijaxError)


def test_static_argnames_must_name_a_parameter():
    with pytest.raises(ArgnumsError, match=r"\['m'\]"):
        unijax.jit(lambda x, n: x * n, static_argnames="m")
    with pytest.raises(ArgnumsError):
        unijax.make_ir(lambda x, n: x * n, static_argnames=("n", "q"))
    # **kwargs accepts any name, as in JAX.
    unijax.jit(lambda x, **kw: x, static_argnames="anything")


@pytest.mark.parametrize("size,expected", [(0, 0), (2, 2)])
def test_jit_cache_size_option_is_read(size, expected):
    unijax.config.update("jit_cache_size", size)
    try:
        f = unijax.jit(lambda x: x * 2.0)
        for n in range(1, 5):
            f(np.ones(n))
        info = f.cache_info()["numpy"]
        assert info.maxsize == expected
        assert info.size == min(expected, 4)
    finally:
        unijax.config.update("jit_cache_size", None)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "jax"])
@pytest.mark.parametrize("scalar", [Level.HIGH, Scale(3.0)], ids=["IntEnum", "float-subclass"])
def test_number_subclasses_are_numbers_under_every_transform(backend, scalar):
    x = unijax.asarray(np.asarray([1.0, 2.0]), backend=backend)

    def f(v, s):
        return array_namespace(v).sum(v * s + s)

    value = 3.0 * 3.0 + 2 * 3.0  # (array-api-strict itself refuses subclasses eagerly)
    g = unijax.grad(f, backend=backend)(x, scalar)
    np.testing.assert_allclose(np.asarray(unijax.to_backend(g, "numpy")), [3.0, 3.0])
    jitted = unijax.jit(f, backend=backend)(x, scalar)
    assert float(np.asarray(unijax.to_backend(jitted, "numpy"))) == pytest.approx(value)
    mapped = unijax.vmap(lambda v: v * scalar, backend=backend)(x)
    np.testing.assert_allclose(np.asarray(unijax.to_backend(mapped, "numpy")), [3.0, 6.0])


@pytest.mark.parametrize("backend", EVERY)
def test_vjp_and_jvp_misuse_raises_the_same_errors_on_every_backend(backend):
    x = unijax.asarray(np.ones(2), backend=backend)
    wrong = unijax.asarray(np.ones(3), backend=backend)
    with pytest.raises(TransformArgumentError, match="expects a callable"):
        unijax.vjp(3, x, backend=backend)
    with pytest.raises(TransformArgumentError, match="expects a callable"):
        unijax.jvp(3, (x,), (x,), backend=backend)
    _, pullback = unijax.vjp(lambda v: v * 2.0, x, backend=backend)
    with pytest.raises(TransformArgumentError, match="one cotangent"):
        pullback(x, x)
    with pytest.raises(ShapeError, match="wrong shape"):
        pullback(wrong)
    _, pair_pullback = unijax.vjp(lambda v: (v, v), x, backend=backend)
    with pytest.raises(TransformArgumentError, match="shaped like the output"):
        pair_pullback(x)
    with pytest.raises(ShapeError, match="tangent must match"):
        unijax.jvp(lambda v: v, (x,), (wrong,), backend=backend)
    (ct,) = pullback(x)  # and the right call still works
    np.testing.assert_allclose(np.asarray(unijax.to_backend(ct, "numpy")), [2.0, 2.0])
