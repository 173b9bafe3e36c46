"""Samplers built on the bits: JAX's algorithms, step for step, in Array API operations."""

from __future__ import annotations

import math
from typing import Any

from unijax.engine.rules.special import special_functions
from unijax.errors import ShapeError, TransformArgumentError, message
from unijax.random import _numba
from unijax.random import _threefry as tf
from unijax.random._common import (
    NMANT,
    TINY,
    default_int_dtype,
    dtype_name,
    float_dtype,
    on_jax,
)
from unijax.random._erfinv import erfinv

_INT_RANGE = {name: (-(1 << (b - 1)), (1 << (b - 1)) - 1) for name, b in
              (("int8", 8), ("int16", 16), ("int32", 32))} | \
             {name: (0, (1 << b) - 1) for name, b in (("uint8", 8), ("uint16", 16),
                                                      ("uint32", 32))}


def _array(xp: Any, value: Any, dtype: str, like: Any) -> Any:
    """``value`` (a Python number or an array) as an array of ``dtype``."""
    if hasattr(value, "shape"):
        return xp.astype(value, getattr(xp, dtype))
    return xp.asarray(value, dtype=getattr(xp, dtype), device=getattr(like, "device", None))


def _check_broadcast(api: str, shape: tuple[int, ...], *param_shapes: Any) -> None:
    """JAX's rule: the parameters broadcast to ``shape`` and no further."""
    try:
        out = _broadcast_shapes(shape, *param_shapes)
    except ValueError:
        out = None
    if out != shape:
        raise ShapeError(message(
            f"unijax.random.{api}: the parameter shapes {[tuple(s) for s in param_shapes]} "
            f"do not broadcast to argument shape {shape}",
            expected="parameters whose shapes broadcast to shape", got=f"shape {shape}",
            fix="Leave shape out to take the parameters' broadcast shape, or pass one "
                "they broadcast to."))


def _broadcast_shapes(*shapes: Any) -> tuple[int, ...]:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(shapes)
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def unit_floats(xp: Any, key: Any, shape: tuple[int, ...], dtype: str) -> Any:
    """JAX's ``[0, 1)`` floats: the top ``nmant`` random bits as the significand.

    JAX bit-casts them into ``[1, 2)`` and subtracts one; scaling the integer by
    ``2**-nmant`` gives the same floats exactly, without a bit cast.
    """
    if dtype == "float64":
        y0, y1 = tf.draw_words(xp, key, shape)
        hi = xp.astype(y0, xp.float64)
        hi = xp.where(hi < 0, hi + 2.0**32, hi)
        return (hi * 2.0**20 + xp.astype((y1 >> 12) & 0xFFFFF, xp.float64)) * 2.0**-52
    words = tf.draw_bits32(xp, key, shape)
    if dtype == "float16":
        if not hasattr(xp, "float16"):
            raise TransformArgumentError(message(
                "unijax.random: argument dtype is float16, but this backend's namespace has "
                "no float16", fix="Draw float32 values."))
        return xp.astype(xp.astype((words & 0xFFFF) >> 6, xp.float32) * 2.0**-10, xp.float16)
    return xp.astype((words >> 9) & 0x7FFFFF, xp.float32) * 2.0**-23


def _uniform(xp: Any, key: Any, shape: tuple[int, ...], dtype: str, minval: Any,
             maxval: Any) -> Any:
    floats = unit_floats(xp, key, shape, dtype)
    if not hasattr(minval, "shape") and not hasattr(maxval, "shape") and \
            (minval, maxval) == (0.0, 1.0):
        return floats
    lo, hi = _array(xp, minval, dtype, key), _array(xp, maxval, dtype, key)
    if dtype == "float16":  # XLA rounds each float16 step
        return xp.maximum(lo, floats * (hi - lo) + lo)
    return xp.maximum(lo, _fma(xp, floats, hi - lo, lo, dtype))


def _fma(xp: Any, a: Any, b: Any, c: Any, dtype: str) -> Any:
    """``a * b + c`` rounded once, as XLA computes JAX's ``floats * span + minval``.

    A ``float32`` product is exact in ``float64``; a ``float64`` product
    is split exactly into two (Dekker's product, then Knuth's sum of its head and ``c``).
    """
    if dtype == "float32":
        wide = xp.astype(a, xp.float64) * xp.astype(b, xp.float64) + xp.astype(c, xp.float64)
        return xp.astype(wide, xp.float32)
    p = a * b
    a_hi, a_lo = _veltkamp(a)
    b_hi, b_lo = _veltkamp(b)
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    s = p + c
    v = s - p
    t = (p - (s - v)) + (c - v)
    return s + (t + e)


def _veltkamp(x: Any) -> tuple[Any, Any]:
    """``x`` as the exact sum of two halves of 26 significant bits each."""
    t = 134217729.0 * x
    hi = t - (t - x)
    return hi, x - hi


def uniform(key: Any, shape: Any = (), dtype: Any = None, minval: Any = 0.0,
            maxval: Any = 1.0) -> Any:
    """Uniform floats in ``[minval, maxval)`` (``jax.random.uniform``); differentiable in
    ``minval`` and ``maxval``.

    Args:
        key: A key.
        shape: The shape of the result; ``minval`` and ``maxval`` broadcast to it.
        dtype: A float dtype; default unijax's default float dtype.
        minval: The lower bound.
        maxval: The upper bound.

    Returns:
        The floats, bit for bit JAX's with the same key.

    Example:
        >>> import unijax
        >>> u = unijax.random.uniform(unijax.random.key(0), (3,))
        >>> bool(((u >= 0) & (u < 1)).all())
        True
    """
    xp = tf.check_key("uniform", key, minval, maxval)
    shape = tf.check_shape("uniform", shape)
    name = float_dtype("uniform", dtype)
    _check_broadcast("uniform", shape, *(tuple(getattr(v, "shape", ())) for v in (minval,
                                                                                   maxval)))
    if xp is None:
        return on_jax("uniform", key, shape, dtype=name, minval=minval, maxval=maxval,
                      wide=name == "float64")
    return _uniform(xp, key, shape, name, minval, maxval)


def _normal(xp: Any, key: Any, shape: tuple[int, ...], dtype: str) -> Any:
    if dtype != "float16" and _numba.usable(key, math.prod(shape)):
        return _numba.normal(key, shape, dtype)
    u = _uniform(xp, key, shape, dtype, -1.0 + 2.0 ** -(NMANT[dtype] + 1), 1.0)
    return _array(xp, math.sqrt(2.0), dtype, key) * erfinv(xp, u, dtype)


def normal(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Standard normal floats (``jax.random.normal``): ``sqrt(2) erfinv(u)`` of a uniform
    ``u`` in ``(-1, 1)``.

    Args:
        key: A key.
        shape: The shape of the result.
        dtype: A float dtype; default unijax's default float dtype.

    Returns:
        The draws, within a few ulp of JAX's with the same key.

    Example:
        >>> import unijax
        >>> unijax.random.normal(unijax.random.key(0), (2, 3)).shape
        (2, 3)
    """
    xp = tf.check_key("normal", key)
    shape = tf.check_shape("normal", shape)
    name = float_dtype("normal", dtype)
    if xp is None:
        return on_jax("normal", key, shape, dtype=name, wide=name == "float64")
    return _normal(xp, key, shape, name)


def truncated_normal(key: Any, lower: Any, upper: Any, shape: Any = None,
                     dtype: Any = None) -> Any:
    """Standard normal floats truncated to ``(lower, upper)`` (``jax.random.truncated_normal``).

    Example:
        >>> import unijax
        >>> x = unijax.random.truncated_normal(unijax.random.key(0), -1.0, 1.0, (4,))
        >>> bool(((x > -1) & (x < 1)).all())
        True
    """
    xp = tf.check_key("truncated_normal", key, lower, upper)
    name = float_dtype("truncated_normal", dtype)
    pshapes = [tuple(getattr(v, "shape", ())) for v in (lower, upper)]
    shape = _broadcast_shapes(*pshapes) if shape is None else \
        tf.check_shape("truncated_normal", shape)
    _check_broadcast("truncated_normal", shape, *pshapes)
    if xp is None:
        return on_jax("truncated_normal", key, lower, upper, shape, dtype=name,
                      wide=name == "float64")
    erf = special_functions()["erf"]
    sqrt2 = _array(xp, math.sqrt(2.0), name, key)
    lo, hi = _array(xp, lower, name, key), _array(xp, upper, name, key)
    u = _uniform(xp, key, shape, name, erf(lo / sqrt2), erf(hi / sqrt2))
    out = sqrt2 * erfinv(xp, u, name)
    inf = _array(xp, math.inf, name, key)
    return xp.clip(out, xp.nextafter(lo, inf), xp.nextafter(hi, -inf))


def bernoulli(key: Any, p: Any = 0.5, shape: Any = None) -> Any:
    """Booleans that are true with probability ``p`` (``jax.random.bernoulli``).

    Example:
        >>> import unijax
        >>> unijax.random.bernoulli(unijax.random.key(0), 0.5, (3,)).dtype
        dtype('bool')
    """
    xp = tf.check_key("bernoulli", key, p)
    pshape = tuple(getattr(p, "shape", ()))
    shape = pshape if shape is None else tf.check_shape("bernoulli", shape)
    _check_broadcast("bernoulli", shape, pshape)
    name = float_dtype("bernoulli", getattr(p, "dtype", None))
    if xp is None:
        return on_jax("bernoulli", key, p, shape, wide=name == "float64")
    return _uniform(xp, key, shape, name, 0.0, 1.0) < _array(xp, p, name, key)


def _transformed(api: str, key: Any, shape: Any, dtype: Any) -> tuple[Any, tuple, str]:
    xp = tf.check_key(api, key)
    return xp, tf.check_shape(api, shape), float_dtype(api, dtype)


def exponential(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Exponential floats with rate 1: ``-log1p(-u)`` (``jax.random.exponential``).

    Example:
        >>> import unijax
        >>> bool((unijax.random.exponential(unijax.random.key(0), (5,)) >= 0).all())
        True
    """
    xp, shape, name = _transformed("exponential", key, shape, dtype)
    if xp is None:
        return on_jax("exponential", key, shape, dtype=name, wide=name == "float64")
    return -xp.log1p(-_uniform(xp, key, shape, name, 0.0, 1.0))


def laplace(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Laplace floats with scale 1 (``jax.random.laplace``).

    Example:
        >>> import unijax
        >>> unijax.random.laplace(unijax.random.key(0), (2,)).shape
        (2,)
    """
    xp, shape, name = _transformed("laplace", key, shape, dtype)
    if xp is None:
        return on_jax("laplace", key, shape, dtype=name, wide=name == "float64")
    u = _uniform(xp, key, shape, name, -1.0 + 2.0 ** -(NMANT[name] + 1), 1.0)
    return xp.sign(u) * xp.log1p(-xp.abs(u))


def logistic(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Logistic floats (``jax.random.logistic``): ``log(u) - log1p(-u)``.

    Example:
        >>> import unijax
        >>> unijax.random.logistic(unijax.random.key(0), (2,)).shape
        (2,)
    """
    xp, shape, name = _transformed("logistic", key, shape, dtype)
    if xp is None:
        return on_jax("logistic", key, shape, dtype=name, wide=name == "float64")
    x = _uniform(xp, key, shape, name, TINY[name], 1.0)
    return xp.log(x) - xp.log1p(-x)


def gumbel(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Gumbel floats (``jax.random.gumbel`` with ``mode="low"``): ``-log(-log(u))``.

    Example:
        >>> import unijax
        >>> unijax.random.gumbel(unijax.random.key(0), (2,)).shape
        (2,)
    """
    xp, shape, name = _transformed("gumbel", key, shape, dtype)
    if xp is None:
        return on_jax("gumbel", key, shape, dtype=name, wide=name == "float64")
    return _gumbel(xp, key, shape, name)


def _gumbel(xp: Any, key: Any, shape: tuple[int, ...], dtype: str) -> Any:
    return -xp.log(-xp.log(_uniform(xp, key, shape, dtype, TINY[dtype], 1.0)))


def categorical(key: Any, logits: Any, axis: int = -1, shape: Any = None) -> Any:
    """Category indices drawn with probabilities ``softmax(logits)`` along ``axis``
    (``jax.random.categorical``, the Gumbel-max trick).

    Example:
        >>> import numpy as np, unijax
        >>> logits = np.log(np.asarray([0.2, 0.3, 0.5]))
        >>> unijax.random.categorical(unijax.random.key(0), logits, shape=(4,)).shape
        (4,)
    """
    xp = tf.check_key("categorical", key, logits)
    ndim = len(logits.shape)
    axis = axis % ndim if -ndim <= axis < ndim else _bad_axis("categorical", axis, ndim)
    batch = tuple(d for i, d in enumerate(logits.shape) if i != axis)
    shape = batch if shape is None else tf.check_shape("categorical", shape)
    _check_broadcast("categorical", shape, batch)
    name = float_dtype("categorical", logits.dtype)
    if xp is None:
        return on_jax("categorical", key, logits, axis, shape,
                      wide=name == "float64" or default_int_dtype() == "int64")
    prefix = shape[:len(shape) - len(batch)]
    draw = list(shape[len(shape) - len(batch):])
    draw.insert(axis, logits.shape[axis])
    noise = _gumbel(xp, key, (*prefix, *draw), name)
    lifted = xp.reshape(logits, (1,) * len(prefix) + tuple(logits.shape))
    return xp.argmax(noise + lifted, axis=axis - ndim)


def _bad_axis(api: str, axis: int, ndim: int) -> int:
    raise ShapeError(message(f"unijax.random.{api}: argument axis={axis} is out of range",
                             expected=f"an axis in [-{ndim}, {ndim})", got=str(axis)))


def randint(key: Any, shape: Any, minval: Any, maxval: Any, dtype: Any = None) -> Any:
    """Integers in ``[minval, maxval)`` (``jax.random.randint``), bit for bit JAX's.

    JAX reduces two draws of the dtype's width modulo the span; that is done here in
    ``int64`` with the wrap-around of JAX's unsigned arithmetic. ``dtype`` defaults to
    ``int64`` when unijax's default float dtype is ``float64`` (as JAX's default integer
    is with ``jax_enable_x64``), else ``int32``; ``int64`` draws need Python int bounds
    less than 2**31 apart.

    Example:
        >>> import unijax
        >>> r = unijax.random.randint(unijax.random.key(0), (5,), 0, 10)
        >>> bool(((r >= 0) & (r < 10)).all())
        True
    """
    xp = tf.check_key("randint", key, minval, maxval)
    shape = tf.check_shape("randint", shape)
    name = default_int_dtype() if dtype is None else dtype_name(dtype)
    if name not in _INT_RANGE and name != "int64":
        raise TransformArgumentError(message(
            f"unijax.random.randint: argument dtype is {dtype!r}",
            expected="an integer dtype of 8, 16, 32 or 64 bits", got=name,
            fix="Pass dtype=xp.int32 or xp.int64."))
    _check_broadcast("randint", shape, *(tuple(getattr(v, "shape", ())) for v in (minval,
                                                                                   maxval)))
    if xp is None:
        return on_jax("randint", key, shape, minval, maxval, dtype=name,
                      wide=name == "int64")
    return _randint_any(xp, key, shape, minval, maxval, name)


def _randint_any(xp: Any, key: Any, shape: tuple[int, ...], minval: Any, maxval: Any,
                 name: str) -> Any:
    if name == "int64":
        return _randint64(xp, key, shape, minval, maxval)
    if name in ("int32", "uint32"):
        return _randint(xp, key, shape, minval, maxval, name)
    # JAX draws narrower types as int32 in the clipped range, then converts.
    low, high = _INT_RANGE[name]
    mn = xp.clip(_as_int64(xp, minval, key), low, high)
    mx = xp.clip(_as_int64(xp, maxval, key), low, high + 1)
    return xp.astype(_randint(xp, key, shape, mn, mx, "int32"), getattr(xp, name))


def _randint64(xp: Any, key: Any, shape: tuple[int, ...], minval: Any, maxval: Any) -> Any:
    """JAX's 64-bit ``randint``, exact for spans below 2**31 (the remainders of the
    64-bit draws are taken word by word, which stays within ``int64``)."""
    if not (isinstance(minval, int) and isinstance(maxval, int)) or \
            not (-(1 << 63) <= minval and maxval <= (1 << 63) - 1) or maxval - minval >= 1 << 31:
        raise TransformArgumentError(message(
            "unijax.random.randint: int64 draws need Python int bounds less than 2**31 apart "
            "within the int64 range", got=f"minval={minval!r}, maxval={maxval!r}",
            fix="Pass int bounds, or draw dtype=int32 values and convert them."))
    span = max(maxval - minval, 1)
    word = (1 << 32) % span
    multiplier = (word * word) % span

    def rem(k: Any) -> Any:
        y0, y1 = tf.draw_words(xp, k, shape)
        hi, lo = (xp.astype(y, xp.int64) & 0xFFFFFFFF for y in (y0, y1))
        return ((hi % span) * word + lo % span) % span

    k = tf.split_keys(xp, key, (2,))
    offset = (rem(k[0, ...]) * multiplier + rem(k[1, ...])) % span
    return minval + offset


def _randint(xp: Any, key: Any, shape: tuple[int, ...], minval: Any, maxval: Any,
             name: str) -> Any:
    low, high = _INT_RANGE[name]
    nbits = int(name.lstrip("uint"))
    mask = (1 << nbits) - 1
    mn, mx = (_as_int64(xp, v, key) for v in (minval, maxval))
    out_of_range = mx > high
    mn, mx = xp.clip(mn, low, high), xp.clip(mx, low, high)
    k = tf.split_keys(xp, key, (2,))
    higher, lower = (xp.astype(tf.draw_bits32(xp, k[i, ...], shape), xp.int64)
                     & mask for i in (0, 1))
    span = xp.where(mx <= mn, 1, (mx - mn) & mask)
    span = xp.where(out_of_range & (mx > mn), (span + 1) & mask, span)
    # An unsigned remainder by a span that wrapped to 0 leaves its operand unchanged.
    safe = xp.where(span == 0, 1 << nbits, span)
    multiplier = ((1 << (nbits // 2)) % safe)
    multiplier = ((multiplier * multiplier) & mask) % safe
    offset = (((higher % safe) * multiplier) & mask) + (lower % safe)
    offset = (offset & mask) % safe
    return xp.astype(mn + offset, getattr(xp, name))


def _as_int64(xp: Any, v: Any, like: Any) -> Any:
    if not hasattr(v, "shape"):
        return _array(xp, int(v), "int64", like)
    if "int" not in dtype_name(v.dtype):  # JAX truncates float bounds toward zero
        return xp.astype(xp.trunc(v), xp.int64)
    return xp.astype(v, xp.int64)


def _shuffle(xp: Any, key: Any, x: Any, axis: int) -> Any:
    """JAX's shuffle: stable sorts by fresh 32-bit keys, rounds enough for few ties."""
    n = math.prod(x.shape)
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(2**32 - 1))
    for _ in range(rounds):
        pair = tf.split_keys(xp, key, (2,))
        key, sub = pair[0, ...], pair[1, ...]
        order = xp.argsort(tf.unsigned_order(tf.draw_bits32(xp, sub, tuple(x.shape))),
                           axis=axis, stable=True)
        x = xp.take(x, order, axis=axis) if x.ndim == 1 else \
            _take_along_axis(xp, x, order, axis)
    return x


def _take_along_axis(xp: Any, x: Any, order: Any, axis: int) -> Any:
    """``take_along_axis``, written with ``take`` where a namespace lacks it (Dask)."""
    if hasattr(xp, "take_along_axis"):
        return xp.take_along_axis(x, order, axis=axis)
    moved = xp.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    rows = math.prod(moved.shape[:-1])
    flat = xp.reshape(xp.moveaxis(order, axis, -1), (rows, n)) + \
        xp.reshape(xp.arange(rows, dtype=order.dtype) * n, (rows, 1))
    taken = xp.take(xp.reshape(moved, (-1,)), xp.reshape(flat, (-1,)))
    return xp.moveaxis(xp.reshape(taken, moved.shape), -1, axis)


def permutation(key: Any, x: Any, axis: int = 0, independent: bool = False) -> Any:
    """A random permutation of ``range(x)`` or of ``x`` along ``axis``
    (``jax.random.permutation``), bit for bit JAX's.

    Example:
        >>> import unijax
        >>> sorted(unijax.random.permutation(unijax.random.key(0), 5).tolist())
        [0, 1, 2, 3, 4]
    """
    xp = tf.check_key("permutation", key, x)
    if xp is None:
        return on_jax("permutation", key, x, axis, independent,
                      wide=default_int_dtype() == "int64")
    if isinstance(x, int):
        return _shuffle(xp, key, xp.arange(x, device=getattr(key, "device", None)), 0)
    axis = axis % x.ndim if -x.ndim <= axis < x.ndim else _bad_axis("permutation", axis,
                                                                    x.ndim)
    if independent or x.ndim == 1:
        return _shuffle(xp, key, x, axis)
    order = _shuffle(xp, key, xp.arange(x.shape[axis], device=getattr(x, "device", None)),
                     0)
    return xp.take(x, order, axis=axis)


def choice(key: Any, a: Any, shape: Any = (), replace: bool = True, p: Any = None,
           axis: int = 0) -> Any:
    """Draws from ``range(a)`` or from ``a`` along ``axis`` (``jax.random.choice``).

    Example:
        >>> import unijax
        >>> unijax.random.choice(unijax.random.key(0), 10, (3,), replace=False).shape
        (3,)
    """
    xp = tf.check_key("choice", key, a, p)
    shape = tf.check_shape("choice", shape)
    if xp is None:
        return on_jax("choice", key, a, shape, replace, p, axis,
                      wide=default_int_dtype() == "int64")
    scalar = isinstance(a, int)
    n = a if scalar else a.shape[axis]
    draws = math.prod(shape)
    if not replace and draws > n:
        raise ShapeError(message(
            f"unijax.random.choice: cannot take {draws} samples without replacement "
            f"from a population of {n}", fix="Pass replace=True or a smaller shape."))
    if p is None:
        if replace:
            ind = _randint_any(xp, key, shape, 0, n, default_int_dtype())
        else:
            perm = permutation(key, n if scalar else a, axis)
            if scalar:
                return xp.reshape(perm[:draws], shape)
            perm = xp.take(perm, xp.arange(draws, device=getattr(a, "device", None)),
                           axis=axis)
            return xp.reshape(perm, (*a.shape[:axis], *shape, *a.shape[axis + 1:]))
    else:
        name = float_dtype("choice", p.dtype)
        if replace:
            cum = xp.cumulative_sum(p)
            r = cum[-1] * (1 - _uniform(xp, key, shape, name, 0.0, 1.0))
            ind = xp.searchsorted(cum, xp.reshape(r, (-1,)))
        else:
            g = _gumbel(xp, key, (n,), name) + xp.log(p)
            ind = xp.argsort(g, descending=True, stable=True)[:draws]
    ind = xp.reshape(ind, shape)
    if scalar:
        return ind
    taken = xp.take(a, xp.reshape(ind, (-1,)), axis=axis)
    return xp.reshape(taken, (*a.shape[:axis], *shape, *a.shape[axis + 1:]))


def multivariate_normal(key: Any, mean: Any, cov: Any, shape: Any = None, dtype: Any = None,
                        method: str = "cholesky") -> Any:
    """Multivariate normal draws ``mean + factor @ z`` (``jax.random.multivariate_normal``),
    ``factor`` from ``method``: ``"cholesky"``, ``"svd"`` or ``"eigh"``.

    Example:
        >>> import numpy as np, unijax
        >>> x = unijax.random.multivariate_normal(unijax.random.key(0), np.zeros(2),
        ...                                       np.eye(2), (5,))
        >>> x.shape
        (5, 2)
    """
    xp = tf.check_key("multivariate_normal", key, mean, cov)
    name = float_dtype("multivariate_normal", dtype if dtype is not None else mean.dtype)
    if len(mean.shape) < 1 or len(cov.shape) < 2 or \
            tuple(cov.shape[-2:]) != (mean.shape[-1],) * 2:
        raise ShapeError(message(
            "unijax.random.multivariate_normal: arguments mean and cov do not match",
            expected="mean of shape (..., n) and cov of shape (..., n, n)",
            got=f"mean {tuple(mean.shape)}, cov {tuple(cov.shape)}"))
    batch = _broadcast_shapes(tuple(mean.shape[:-1]), tuple(cov.shape[:-2]))
    shape = batch if shape is None else tf.check_shape("multivariate_normal", shape)
    _check_broadcast("multivariate_normal", shape, tuple(mean.shape[:-1]),
                     tuple(cov.shape[:-2]))
    if xp is None:
        return on_jax("multivariate_normal", key, mean, cov, shape, dtype=name,
                      method=method, wide=name == "float64")
    if method == "svd":
        u, s, _ = xp.linalg.svd(cov, full_matrices=False)
        factor = u * xp.sqrt(s[..., None, :])
    elif method == "eigh":
        w, v = xp.linalg.eigh(cov)
        factor = v * xp.sqrt(w[..., None, :])
    elif method == "cholesky":
        factor = xp.linalg.cholesky(cov)
    else:
        raise TransformArgumentError(message(
            f"unijax.random.multivariate_normal: argument method={method!r} is unknown",
            expected="'cholesky', 'svd' or 'eigh'", got=repr(method)))
    z = _normal(xp, key, (*shape, mean.shape[-1]), name)
    return mean + (factor @ z[..., None])[..., 0]
