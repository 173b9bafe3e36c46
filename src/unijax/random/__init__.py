"""Counter-based random numbers: JAX's ``jax.random`` on every backend, bit for bit.

A key is a ``uint32`` array of shape ``(2,)`` of the current backend (JAX's raw
``threefry2x32`` key); :func:`split` and :func:`fold_in` are pure functions of it, so
random code works under ``jit``, ``vmap`` and ``grad`` like any other array code. The bits
come from Threefry-2x32 written against the Array API, with JAX's counters
(``jax_threefry_partitionable=True``), so the same key gives the same bits on NumPy,
PyTorch, Dask, array-api-strict, Autograd and JAX; on JAX the calls go to ``jax.random``.

Example:
    >>> import unijax
    >>> key = unijax.random.key(0)
    >>> k1, k2 = unijax.random.split(key)
    >>> unijax.random.normal(k1, (2, 3)).shape
    (2, 3)
"""

from unijax.random._gamma import beta, dirichlet, gamma
from unijax.random._keys import PRNGKey, bits, fold_in, key, key_data, split, wrap_key_data
from unijax.random._samplers import (
    bernoulli,
    categorical,
    choice,
    exponential,
    gumbel,
    laplace,
    logistic,
    multivariate_normal,
    normal,
    permutation,
    randint,
    truncated_normal,
    uniform,
)

__all__ = [
    "PRNGKey",
    "bernoulli",
    "beta",
    "bits",
    "categorical",
    "choice",
    "dirichlet",
    "exponential",
    "fold_in",
    "gamma",
    "gumbel",
    "key",
    "key_data",
    "laplace",
    "logistic",
    "multivariate_normal",
    "normal",
    "permutation",
    "randint",
    "split",
    "truncated_normal",
    "uniform",
    "wrap_key_data",
]
