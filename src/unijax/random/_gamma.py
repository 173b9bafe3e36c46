"""Gamma draws (Marsaglia and Tsang's rejection method, as JAX runs it) and what is built
on them: beta and Dirichlet.

Each element gets its own key (``split(key, size)``) and runs JAX's scalar loop; the
elements are mapped with :func:`unijax.vmap` over a :func:`unijax.lax.while_loop`, which
keeps each element's state once its own loop has finished, so every element takes the
same draws as in JAX.
"""

from __future__ import annotations

import math
from typing import Any

from unijax.lax import while_loop
from unijax.random import _threefry as tf
from unijax.random._common import float_dtype, on_jax
from unijax.random._samplers import _array, _broadcast_shapes, _check_broadcast, _normal, _uniform
from unijax.transforms import vmap


def _gamma_one(key: Any, alpha: Any, *, dtype: str, log_space: bool) -> Any:
    """One gamma draw with shape ``alpha`` (a 0-d array), JAX's ``_gamma_one``."""
    xp = tf.namespace_of(alpha)
    zero, one = alpha * 0, alpha * 0 + 1
    boost_mask = alpha >= 1
    alpha_orig = alpha
    alpha = xp.where(boost_mask, alpha, alpha + 1)
    d = alpha - 1.0 / 3.0
    c = (1.0 / 3.0) / xp.sqrt(d)

    def split(k: Any, n: int) -> list[Any]:
        keys = tf.split_keys(xp, k, (n,))
        return [keys[i, ...] for i in range(n)]

    def cond(state: Any) -> Any:
        _, x, v, u = state
        return (u >= 1 - 0.0331 * (x * x)) & (xp.log(u) >= x * 0.5 + d * (1 - v + xp.log(v)))

    def next_x(state: Any) -> Any:
        k, _, _ = state
        k, sub = split(k, 2)
        x = _normal(xp, sub, (), dtype)
        return k, x, 1 + x * c

    def body(state: Any) -> Any:
        k, x_key, u_key = split(state[0], 3)
        _, x, v = while_loop(lambda s: s[2] <= 0, next_x, (x_key, zero, -one))
        return k, x * x, v * v * v, _uniform(xp, u_key, (), dtype, 0.0, 1.0)

    key, sub = split(key, 2)
    _, _, v, _ = while_loop(cond, body, (key, zero, one, one + 1))
    if log_space:
        log_samples = xp.log1p(-_uniform(xp, sub, (), dtype, 0.0, 1.0))
        log_boost = xp.where(boost_mask | (log_samples == 0), zero,
                             log_samples * (1 / alpha_orig))
        return xp.log(d) + xp.log(v) + log_boost
    samples = 1 - _uniform(xp, sub, (), dtype, 0.0, 1.0)
    boost = xp.where(boost_mask, one, samples ** (1 / alpha_orig))
    return d * v * boost


def _gamma(xp: Any, key: Any, a: Any, shape: tuple[int, ...], dtype: str,
           log_space: bool) -> Any:
    a = xp.broadcast_to(_array(xp, a, dtype, key), shape)
    size = math.prod(shape)
    if size == 0:
        return a
    keys = tf.split_keys(xp, key, (size,))
    one = vmap(lambda k, al: _gamma_one(k, al, dtype=dtype, log_space=log_space))
    return xp.reshape(one(keys, xp.reshape(a, (size,))), shape)


def _shape(api: str, shape: Any, *params: Any) -> tuple[int, ...]:
    pshapes = [tuple(getattr(p, "shape", ())) for p in params]
    out = _broadcast_shapes(*pshapes) if shape is None else tf.check_shape(api, shape)
    _check_broadcast(api, out, *pshapes)
    return out


def gamma(key: Any, a: Any, shape: Any = None, dtype: Any = None) -> Any:
    """Gamma floats with shape ``a`` and scale 1 (``jax.random.gamma``).

    Example:
        >>> import unijax
        >>> bool((unijax.random.gamma(unijax.random.key(0), 2.0, (3,)) > 0).all())
        True
    """
    xp = tf.check_key("gamma", key, a)
    name = float_dtype("gamma", dtype)
    shape = _shape("gamma", shape, a)
    if xp is None:
        return on_jax("gamma", key, a, shape, dtype=name, wide=name == "float64")
    return _gamma(xp, key, a, shape, name, log_space=False)


def beta(key: Any, a: Any, b: Any, shape: Any = None, dtype: Any = None) -> Any:
    """Beta floats (``jax.random.beta``), from two gamma draws in log space.

    Example:
        >>> import unijax
        >>> x = unijax.random.beta(unijax.random.key(0), 2.0, 3.0, (3,))
        >>> bool(((x > 0) & (x < 1)).all())
        True
    """
    xp = tf.check_key("beta", key, a, b)
    name = float_dtype("beta", dtype)
    shape = _shape("beta", shape, a, b)
    if xp is None:
        return on_jax("beta", key, a, b, shape, dtype=name, wide=name == "float64")
    keys = tf.split_keys(xp, key, (2,))
    log_a = _gamma(xp, keys[0, ...], a, shape, name, log_space=True)
    log_b = _gamma(xp, keys[1, ...], b, shape, name, log_space=True)
    log_max = xp.maximum(log_a, log_b)
    ga, gb = xp.exp(log_a - log_max), xp.exp(log_b - log_max)
    return ga / (ga + gb)


def dirichlet(key: Any, alpha: Any, shape: Any = None, dtype: Any = None) -> Any:
    """Dirichlet floats over the last axis of ``alpha`` (``jax.random.dirichlet``).

    Example:
        >>> import numpy as np, unijax
        >>> x = unijax.random.dirichlet(unijax.random.key(0), np.ones(3), (2,))
        >>> x.shape
        (2, 3)
    """
    xp = tf.check_key("dirichlet", key, alpha)
    name = float_dtype("dirichlet", dtype)
    batch = tuple(alpha.shape[:-1])
    shape = batch if shape is None else tf.check_shape("dirichlet", shape)
    _check_broadcast("dirichlet", shape, batch)
    if xp is None:
        return on_jax("dirichlet", key, alpha, shape, dtype=name, wide=name == "float64")
    logs = _gamma(xp, key, alpha, (*shape, alpha.shape[-1]), name, log_space=True)
    logs = logs - xp.max(logs, axis=-1, keepdims=True)
    e = xp.exp(logs)
    return e / xp.sum(e, axis=-1, keepdims=True)
