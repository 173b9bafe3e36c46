"""unijax.random: JAX's raw Threefry keys and samplers, on every backend, under transforms.

The reference is ``jax.random`` itself (default ``threefry2x32`` implementation,
``jax_threefry_partitionable=True``), run with JAX's x64 flag on inside the reference call
only, because unijax's default float dtype is float64 (its analogue of x64). ``bits``,
``split``, ``fold_in``, ``uniform``, ``randint``, ``bernoulli``, ``permutation``,
``choice`` and ``categorical`` must equal JAX's exactly; the samplers that go through
``log``/``log1p``/``erfinv`` agree within ``ULPS`` units in the last place of the result
(or of 1, near zero), the libraries' ``log1p`` differing by an ulp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

jax = pytest.importorskip("jax")
import jax.random as jr  # noqa: E402

import unijax  # noqa: E402
from unijax import random as ur  # noqa: E402
from unijax.cli.benchmarks.harness import available_libraries  # noqa: E402
from unijax.errors import (  # noqa: E402
    NonDifferentiableError,
    ShapeError,
    TransformArgumentError,
)
from unijax.testing import to_numpy  # noqa: E402

BACKENDS = ("numpy", "array_api_strict", "autograd", "torch", "dask", "jax")
USABLE = [b for b, why in available_libraries(BACKENDS).items() if why is None]
#: How many ulp the transcendental samplers may differ from JAX's on CPU: float32 within
#: 4; float64 within 256 (6e-14 relative), XLA's float64 ``log1p`` differing from the C
#: library's by up to about a hundred ulp for small arguments.
ULPS = {"float16": 1, "float32": 4, "float64": 256}


def ref(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> np.ndarray:
    """``jax.random.<fn>`` with x64 on for this call, as a NumPy array."""
    with jax.enable_x64(True):
        return np.asarray(fn(*args, **kwargs))


def jkey(seed: int) -> Any:
    with jax.enable_x64(True):
        return jr.PRNGKey(seed)


def assert_ulps(got: Any, want: np.ndarray) -> None:
    got = to_numpy(got)
    ulps = ULPS[str(want.dtype)]
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    scale = np.maximum(np.spacing(np.abs(want)), np.spacing(want.dtype.type(0)))
    err = np.abs(got.astype(np.float64) - want.astype(np.float64)) / scale
    assert float(err.max(initial=0.0)) <= ulps, f"max {err.max()} ulp"


def assert_equal(got: Any, want: np.ndarray) -> None:
    got = to_numpy(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert str(got.dtype) == str(want.dtype), (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


def on(backend: str, x: Any) -> Any:
    return unijax.asarray(np.asarray(x), backend=backend)


@pytest.fixture(params=USABLE)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 + 7, 2**63 - 1, -1, -(2**40)])
def test_key_equals_jax_prngkey(backend: str, seed: int) -> None:
    key = ur.key(seed, backend=backend)
    assert_equal(key, ref(jr.PRNGKey, seed))
    assert_equal(ur.PRNGKey(seed, backend=backend), ref(jr.PRNGKey, seed))


def test_key_from_numpy_integer_scalar_is_on_the_current_backend() -> None:
    if "torch" not in USABLE:
        pytest.skip("torch is not installed")
    with unijax.use_backend("torch"):
        key = ur.key(np.int64(9))
    assert type(key).__module__.startswith("torch")
    assert_equal(key, ref(jr.PRNGKey, 9))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_key_from_integer_array_seed(dtype: str) -> None:
    for seed in (5, -3):
        assert_equal(ur.key(np.asarray(seed, dtype=dtype)),
                     ref(jr.PRNGKey, np.asarray(seed, dtype=dtype)))


@pytest.mark.parametrize("num", [2, 5, (2, 3), ()])
def test_split_equals_jax(backend: str, num: Any) -> None:
    assert_equal(ur.split(ur.key(7, backend=backend), num), ref(jr.split, jkey(7), num))


@pytest.mark.parametrize("data", [0, 3, 2**31 + 5, 2**32 - 1])
def test_fold_in_equals_jax(backend: str, data: int) -> None:
    assert_equal(ur.fold_in(ur.key(7, backend=backend), data), ref(jr.fold_in, jkey(7), data))


def test_key_data_and_wrap_key_data_round_trip() -> None:
    keys = ur.split(ur.key(1), 3)
    assert ur.wrap_key_data(ur.key_data(keys)) is keys


def test_keys_are_pytree_leaves() -> None:
    tree = {"dropout": ur.key(0), "init": [ur.key(1)]}
    leaves = unijax.tree_util.tree_leaves(tree)
    assert len(leaves) == 2 and all(leaf.shape == (2,) for leaf in leaves)


# --- bits and the exact samplers ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (1,), (3, 4), (2, 0, 3)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_bits_equal_jax(backend: str, shape: tuple, dtype: str) -> None:
    if backend == "torch" and dtype in ("uint16", "uint64"):
        pytest.skip("torch.uint16/uint64 cannot be converted to NumPy")
    assert_equal(ur.bits(ur.key(3, backend=backend), shape, dtype),
                 ref(jr.bits, jkey(3), shape, dtype))


def test_bits_default_dtype_follows_the_default_float_dtype() -> None:
    assert str(ur.bits(ur.key(0), (2,)).dtype) == "uint64"
    with unijax.use_default_float_dtype("float32"):
        assert str(ur.bits(ur.key(0), (2,)).dtype) == "uint32"


@pytest.mark.parametrize("shape", [(), (5,), (3, 7)])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_uniform_equals_jax(backend: str, shape: tuple, dtype: str) -> None:
    key, k = ur.key(11, backend=backend), jkey(11)
    if not hasattr(array_namespace(key), dtype):
        with pytest.raises(TransformArgumentError, match="has no float16"):
            ur.uniform(key, shape, dtype)
        return
    assert_equal(ur.uniform(key, shape, dtype), ref(jr.uniform, k, shape, dtype))
    assert_equal(ur.uniform(key, shape, dtype, -2.5, 3.0),
                 ref(jr.uniform, k, shape, dtype, -2.5, 3.0))


def test_uniform_bounds_broadcast_as_arrays(backend: str) -> None:
    lo, hi = np.asarray([-1.0, 0.0, 2.0]), np.asarray([[1.0], [5.0]])
    assert_equal(ur.uniform(ur.key(2, backend=backend), (2, 3), None, on(backend, lo),
                            on(backend, hi)),
                 ref(jr.uniform, jkey(2), (2, 3), "float64", lo, hi))


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32"])
@pytest.mark.parametrize("bounds", [(0, 10), (-5, 100), (0, 256), (3, 3), (7, 2)])
def test_randint_equals_jax(backend: str, dtype: str, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if dtype.startswith("u") and lo < 0:
        return
    if backend == "torch" and dtype == "uint32":
        pytest.skip("torch.uint32 cannot be converted to NumPy")
    assert_equal(ur.randint(ur.key(5, backend=backend), (40,), lo, hi, dtype),
                 ref(jr.randint, jkey(5), (40,), lo, hi, dtype))


def test_randint_full_int32_range_and_array_bounds() -> None:
    info = np.iinfo(np.int32)
    assert_equal(ur.randint(ur.key(5), (50,), info.min, info.max, "int32"),
                 ref(jr.randint, jkey(5), (50,), info.min, info.max, "int32"))
    lo, hi = np.asarray([0, -4, 10], dtype=np.int32), np.asarray([3, 4, 1000], dtype=np.int32)
    assert_equal(ur.randint(ur.key(5), (2, 3), lo, hi, "int32"),
                 ref(jr.randint, jkey(5), (2, 3), lo, hi, "int32"))


def test_randint_int64_wide_span_raises() -> None:
    with pytest.raises(TransformArgumentError, match="2\\*\\*31"):
        ur.randint(ur.key(0), (3,), 0, 2**40, "int64")


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_bernoulli_equals_jax(backend: str, p: float) -> None:
    assert_equal(ur.bernoulli(ur.key(9, backend=backend), p, (4, 5)),
                 ref(jr.bernoulli, jkey(9), p, (4, 5)))
    probs = np.asarray([0.1, 0.5, 0.9], dtype=np.float32)
    assert_equal(ur.bernoulli(ur.key(9, backend=backend), on(backend, probs)),
                 ref(jr.bernoulli, jkey(9), probs))


@pytest.mark.parametrize("n", [1, 10, 3000])
def test_permutation_of_range_equals_jax(backend: str, n: int) -> None:
    assert_equal(ur.permutation(ur.key(4, backend=backend), n), ref(jr.permutation, jkey(4), n))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("independent", [False, True])
def test_permutation_of_array_equals_jax(backend: str, axis: int, independent: bool) -> None:
    x = np.arange(12.0).reshape(3, 4)
    assert_equal(ur.permutation(ur.key(4, backend=backend), on(backend, x), axis, independent),
                 ref(jr.permutation, jkey(4), x, axis, independent))


@pytest.mark.parametrize("replace", [True, False])
def test_choice_equals_jax(backend: str, replace: bool) -> None:
    key, k = ur.key(8, backend=backend), jkey(8)
    assert_equal(ur.choice(key, 10, (2, 3), replace), ref(jr.choice, k, 10, (2, 3), replace))
    p = np.asarray([0.1, 0.2, 0.3, 0.4])
    assert_equal(ur.choice(key, 4, (3,), replace, on(backend, p)),
                 ref(jr.choice, k, 4, (3,), replace, p))
    x = np.arange(15.0).reshape(3, 5)
    assert_equal(ur.choice(key, on(backend, x), (2,), replace, axis=1),
                 ref(jr.choice, k, x, (2,), replace, axis=1))


@pytest.mark.parametrize(("axis", "shape"), [(-1, None), (-1, (5, 2)), (0, (4, 3))])
def test_categorical_equals_jax(backend: str, axis: int, shape: Any) -> None:
    logits = np.log(np.asarray([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]))
    got = ur.categorical(ur.key(6, backend=backend), on(backend, logits), axis, shape)
    want = ref(jr.categorical, jkey(6), logits, axis, shape)
    np.testing.assert_array_equal(to_numpy(got), want)


# --- the samplers within a few ulp -------------------------------------------------------


@pytest.mark.parametrize("name", ["normal", "exponential", "laplace"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transformed_samplers_within_ulps(backend: str, name: str, dtype: str) -> None:
    got = getattr(ur, name)(ur.key(12, backend=backend), (400,), dtype)
    assert_ulps(got, ref(getattr(jr, name), jkey(12), (400,), dtype))


@pytest.mark.parametrize("name", ["gumbel", "logistic"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_difference_samplers_within_ulps_of_one(backend: str, name: str,
                                                    dtype: str) -> None:
    got = to_numpy(getattr(ur, name)(ur.key(12, backend=backend), (400,), dtype))
    want = ref(getattr(jr, name), jkey(12), (400,), dtype)
    # A difference of logarithms near its zero: bounded in ulp of 1 as well.
    tol = ULPS[dtype] * np.finfo(dtype).eps
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_normal_shapes_and_float16() -> None:
    for shape in [(), (1,), (2, 3, 4)]:
        assert_ulps(ur.normal(ur.key(1), shape, "float32"),
                    ref(jr.normal, jkey(1), shape, "float32"))
    assert_ulps(ur.normal(ur.key(1), (50,), "float16"), ref(jr.normal, jkey(1), (50,),
                                                             "float16"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_truncated_normal_within_ulps(backend: str, dtype: str) -> None:
    got = ur.truncated_normal(ur.key(13, backend=backend), -1.0, 2.0, (200,), dtype)
    assert_ulps(got, ref(jr.truncated_normal, jkey(13), -1.0, 2.0, (200,), dtype))


@pytest.mark.parametrize("method", ["cholesky", "svd", "eigh"])
def test_multivariate_normal_close_to_jax(backend: str, method: str) -> None:
    mean, cov = np.asarray([1.0, -2.0]), np.asarray([[2.0, 0.5], [0.5, 1.0]])
    got = ur.multivariate_normal(ur.key(14, backend=backend), on(backend, mean),
                                 on(backend, cov), (5,), method=method)
    want = ref(jr.multivariate_normal, jkey(14), mean, cov, (5,), method=method)
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-13, atol=1e-13)


def test_gamma_beta_dirichlet_close_to_jax(backend: str) -> None:
    a = np.asarray([0.3, 1.0, 2.5, 9.0])
    np.testing.assert_allclose(to_numpy(ur.gamma(ur.key(15, backend=backend), on(backend, a))),
                               ref(jr.gamma, jkey(15), a), rtol=1e-13)
    np.testing.assert_allclose(to_numpy(ur.beta(ur.key(15, backend=backend), 2.0, 0.5, (6,))),
                               ref(jr.beta, jkey(15), 2.0, 0.5, (6,)), rtol=1e-13)
    alpha = np.asarray([1.0, 2.0, 0.5])
    np.testing.assert_allclose(
        to_numpy(ur.dirichlet(ur.key(15, backend=backend), on(backend, alpha), (3,))),
        ref(jr.dirichlet, jkey(15), alpha, (3,)), rtol=1e-13)


def test_gamma_float32_close_to_jax() -> None:
    a = np.asarray([0.5, 3.0], dtype=np.float32)
    np.testing.assert_allclose(to_numpy(ur.gamma(ur.key(2), a, (3, 2), "float32")),
                               ref(jr.gamma, jkey(2), a, (3, 2), "float32"), rtol=1e-5)


# --- the eager NumPy loop -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eager_numpy_loop_equals_array_path(monkeypatch: pytest.MonkeyPatch,
                                            dtype: str) -> None:
    pytest.importorskip("numba")
    from unijax.random import _numba

    key, shape = ur.key(21), (3, 2**14 + 5)
    assert _numba.usable(key, 3 * (2**14 + 5))
    loop = (ur.normal(key, shape, dtype), ur.bits(key, shape, "uint32"),
            ur.uniform(key, shape, dtype, -1.0, 2.0))
    monkeypatch.setattr(_numba, "MIN_SIZE", 2**62)
    arrays = (ur.normal(key, shape, dtype), ur.bits(key, shape, "uint32"),
              ur.uniform(key, shape, dtype, -1.0, 2.0))
    for a, b in zip(loop, arrays, strict=True):
        np.testing.assert_array_equal(a, b)


def test_jit_equals_eager_numpy_loop_on_a_large_draw() -> None:
    key = ur.key(22)
    np.testing.assert_array_equal(unijax.jit(lambda k: ur.normal(k, (2**15,)))(key),
                                  ur.normal(key, (2**15,)))


def test_numba_compiled_draws_split_over_threads_match_eager_and_jax() -> None:
    """10**6 draws under jit with the Numba lowering (one fused loop, its rows split over
    threads): bits exactly JAX's, normals within the ulp bound of JAX's."""
    pytest.importorskip("numba")
    key, n = ur.key(23), 1 << 20
    unijax.config.update("jit_compiler", "numba")
    try:
        bits = unijax.jit(lambda k: ur.bits(k, (n,), "uint32"))
        normal = unijax.jit(lambda k: ur.normal(k, (n,)))
        for f in (bits, normal):
            f(key)  # staging; the compiled program runs from the second call
            assert f.lowering(key).name == "numba"
        got_bits, got_normal = bits(key), normal(key)
    finally:
        unijax.config.update("jit_compiler", None)
    np.testing.assert_array_equal(got_bits, ur.bits(key, (n,), "uint32"))
    with jax.enable_x64(True):
        np.testing.assert_array_equal(got_bits, np.asarray(jr.bits(key, (n,), "uint32")))
        assert_ulps(got_normal, np.asarray(jr.normal(key, (n,), "float64")))


# --- transforms ------------------------------------------------------------------------------


def test_vmap_over_keys_gives_per_key_draws() -> None:
    keys = ur.split(ur.key(0), 8)
    got = unijax.vmap(lambda k: ur.normal(k, (3,)))(keys)
    loop = np.stack([ur.normal(keys[i], (3,)) for i in range(8)])
    np.testing.assert_array_equal(got, loop)
    bits = unijax.vmap(lambda k: ur.bits(k, (3,), "uint32"))(keys)
    with jax.enable_x64(True):
        want = np.asarray(jax.vmap(lambda k: jr.bits(k, (3,), "uint32"))(keys))
    np.testing.assert_array_equal(bits, want)


def test_vmap_split_and_permutation_match_loop() -> None:
    keys = ur.split(ur.key(3), 4)
    np.testing.assert_array_equal(unijax.vmap(lambda k: ur.split(k, 3))(keys),
                                  np.stack([ur.split(keys[i], 3) for i in range(4)]))
    np.testing.assert_array_equal(unijax.vmap(lambda k: ur.permutation(k, 6))(keys),
                                  np.stack([ur.permutation(keys[i], 6) for i in range(4)]))


def test_jit_stages_the_generator() -> None:
    calls = []

    def draw(k: Any) -> Any:
        calls.append(1)
        return ur.normal(k, (4,))

    f = unijax.jit(draw)
    k0, k1 = ur.key(0), ur.key(1)
    a, b = f(k0), f(k1)
    assert len(calls) == 1  # traced once: the draw happens at run time, not trace time
    np.testing.assert_array_equal(a, ur.normal(k0, (4,)))
    np.testing.assert_array_equal(b, ur.normal(k1, (4,)))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", ["uniform", "randint", "permutation", "split", "fold_in",
                                  "bernoulli"])
def test_jit_equals_jax_exactly(name: str) -> None:
    calls = {
        "uniform": (lambda m, k: m.uniform(k, (5,), minval=-1.0, maxval=2.0)),
        "randint": (lambda m, k: m.randint(k, (5,), 0, 7)),
        "permutation": (lambda m, k: m.permutation(k, 9)),
        "split": (lambda m, k: m.split(k, 3)),
        "fold_in": (lambda m, k: m.fold_in(k, 3)),
        "bernoulli": (lambda m, k: m.bernoulli(k, 0.25, (6,))),
    }
    call = calls[name]
    got = unijax.jit(lambda k: call(ur, k))(ur.key(3))
    np.testing.assert_array_equal(got, ref(lambda k: call(jr, k), jkey(3)))


def test_jit_on_torch_equals_eager() -> None:
    if "torch" not in USABLE:
        pytest.skip("torch is not installed")
    key = ur.key(4, backend="torch")
    got = unijax.jit(lambda k: ur.normal(k, (6,)))(key)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(ur.normal(key, (6,))))


def test_grad_through_normal_reparameterisation() -> None:
    key = ur.key(0)
    z = ur.normal(key, (100,))

    def loss(mu: Any, sigma: Any, k: Any) -> Any:
        x = mu + sigma * ur.normal(k, (100,))
        return unijax.namespace().mean(x * x)

    g_mu, g_sigma = unijax.grad(loss, argnums=(0, 1))(np.asarray(0.5), np.asarray(2.0), key)
    np.testing.assert_allclose(g_mu, np.mean(2 * (0.5 + 2.0 * z)), rtol=1e-12)
    np.testing.assert_allclose(g_sigma, np.mean(2 * (0.5 + 2.0 * z) * z), rtol=1e-12)


def test_grad_through_uniform_bounds_matches_finite_differences() -> None:
    key = ur.key(1)

    def f(lo: Any) -> Any:
        u = ur.uniform(key, (10,), minval=lo, maxval=2.0 * lo + 3.0)
        return unijax.namespace().sum(u * u)

    x, h = 0.7, 1e-6
    fd = (float(f(np.asarray(x + h))) - float(f(np.asarray(x - h)))) / (2 * h)
    np.testing.assert_allclose(float(unijax.grad(f)(np.asarray(x))), fd, rtol=1e-6)


def test_grad_on_torch_through_normal() -> None:
    if "torch" not in USABLE:
        pytest.skip("torch is not installed")
    key = ur.key(0, backend="torch")
    g = unijax.grad(lambda s: unijax.namespace("torch").sum(s * ur.normal(key, (5,))))(
        on("torch", 1.5))
    np.testing.assert_allclose(to_numpy(g), np.sum(to_numpy(ur.normal(key, (5,)))),
                               rtol=1e-12)


def test_grad_with_respect_to_a_key_raises() -> None:
    with pytest.raises(NonDifferentiableError, match="uint32"):
        unijax.grad(lambda k: ur.normal(k, ()))(ur.key(0))


def test_jit_of_vmap_of_draws() -> None:
    keys = ur.split(ur.key(2), 3)
    got = unijax.jit(unijax.vmap(lambda k: ur.uniform(k, (2,))))(keys)
    np.testing.assert_array_equal(got, np.stack([ur.uniform(keys[i], (2,)) for i in range(3)]))


# --- errors -------------------------------------------------------------------------------


def test_float_key_raises() -> None:
    with pytest.raises(TransformArgumentError, match="key has dtype float64"):
        ur.normal(np.asarray([0.0, 1.0]), (2,))


def test_key_of_wrong_shape_raises(backend: str) -> None:
    keys = ur.split(ur.key(0, backend=backend), 3)
    with pytest.raises(ShapeError, match=r"shape \(3, 2\)"):
        ur.uniform(keys, (2,))
    with pytest.raises(ShapeError, match=r"shape \(3,\)"):
        ur.split(on(backend, np.zeros(3, dtype=np.uint32)))


@pytest.mark.parametrize("shape", [(2, -1), (2.5,), "ab", (None,)])
def test_bad_shape_raises(backend: str, shape: Any) -> None:
    with pytest.raises(ShapeError, match="argument shape is not a shape"):
        ur.normal(ur.key(0, backend=backend), shape)


def test_shape_not_matching_parameters_raises() -> None:
    with pytest.raises(ShapeError, match="do not broadcast"):
        ur.bernoulli(ur.key(0), np.full(3, 0.5), (2,))


def test_non_integer_seed_raises() -> None:
    with pytest.raises(TransformArgumentError, match="seed is not an integer"):
        ur.key(1.5)


def test_non_float_dtype_for_normal_raises() -> None:
    with pytest.raises(TransformArgumentError, match="floating dtype"):
        ur.normal(ur.key(0), (2,), "int32")
