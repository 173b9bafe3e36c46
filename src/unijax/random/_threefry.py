"""Threefry-2x32 on 32-bit words, written against the Array API, and JAX's raw keys.

The words are ``int32`` arrays holding the bit patterns of JAX's ``uint32`` words: every
Array API library wraps ``int32`` addition and left shifts modulo 2**32, while PyTorch has
no ``uint32`` addition or shifts. A logical right shift is an arithmetic one with the sign
bits masked off. Keys themselves are ``uint32`` arrays of shape ``(2,)``, as in JAX.

The counters follow ``jax_threefry_partitionable=True`` (JAX's default since 0.5): element
``i`` of a draw of shape ``shape`` hashes the 64-bit counter ``i`` (high word, low word),
so a draw is elementwise in its counters and fuses under ``jit``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from unijax.engine.core import Tracer
from unijax.errors import ShapeError, TransformArgumentError, message
from unijax.random import _numba

#: Rotation distances of the two alternating groups of four rounds.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Threefry's key-schedule parity constant.
_PARITY = 0x1BD11BDA
#: The sign bit of an ``int32`` word, as a Python int that fits ``int32``.
_SIGN = -(1 << 31)


def namespace_of(x: Any, *others: Any) -> Any:
    """The Array API namespace of ``x`` and the arrays among ``others`` (backend arrays or
    unijax tracers: a traced parameter makes the draw traced)."""
    from array_api_compat import array_namespace  # deferred: only drawing needs it

    for value in (x, *others):
        if isinstance(value, Tracer):
            return value.__array_namespace__()
    return array_namespace(x)


def is_jax(x: Any) -> bool:
    """Whether ``x`` is a JAX array or tracer, recognised without importing JAX."""
    return type(x).__module__.split(".", 1)[0] in ("jax", "jaxlib")


def check_key(api: str, key: Any, *others: Any, batched: bool = False) -> Any:
    """Raise unless ``key`` is a raw key: an unsigned 32-bit integer array of shape
    ``(2,)`` (``(..., 2)`` when ``batched``); return its namespace."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise TransformArgumentError(message(
            f"unijax.random.{api}: argument key is not an array",
            expected="a key from unijax.random.key(seed) (uint32 array of shape (2,))",
            got=type(key).__name__, fix="Make one with unijax.random.key(seed)."))
    if "uint32" not in str(dtype):
        raise TransformArgumentError(message(
            f"unijax.random.{api}: argument key has dtype {dtype}",
            expected="uint32 key data as made by unijax.random.key(seed)",
            got=f"an array of dtype {dtype}",
            fix="Pass a key from unijax.random.key or unijax.random.split, or wrap raw "
                "uint32 data with unijax.random.wrap_key_data; a float array is not a key."))
    shape = tuple(shape)
    if (batched and (len(shape) < 1 or shape[-1] != 2)) or (not batched and shape != (2,)):
        raise ShapeError(message(
            f"unijax.random.{api}: argument key has shape {shape}",
            expected="shape (..., 2)" if batched else "a single key of shape (2,)",
            got=f"shape {shape}",
            fix="Index one key out of a batch (keys[0]) or map over the keys with "
                "unijax.vmap."))
    return None if is_jax(key) else namespace_of(key, *others)


def check_shape(api: str, shape: Any, name: str = "shape") -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints, or a :class:`ShapeError`."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        dims = None
    if dims is None or any(d < 0 for d in dims):
        raise ShapeError(message(
            f"unijax.random.{api}: argument {name} is not a shape",
            expected="a tuple of non-negative ints such as (3, 4)", got=repr(shape),
            fix="Pass the shape as a tuple of Python ints (x.shape, or (n,))."))
    return dims


def _as_words(xp: Any, key: Any) -> tuple[Any, Any]:
    """The two key words as ``int32`` arrays of shape ``(1,)`` (batched: ``(..., 1)``).

    Shape ``(1,)`` rather than ``()``: NumPy computes on 0-d arrays as scalars, which warn
    when they wrap.
    """
    words = xp.astype(key, xp.int32)
    return words[..., 0:1], words[..., 1:2]


def _srl(x: Any, r: int) -> Any:
    """Logical right shift of ``int32`` words by ``r`` (0 < r < 32)."""
    return (x >> r) & ((1 << (32 - r)) - 1)


def hash_words(k0: Any, k1: Any, x0: Any, x1: Any) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds of the counters ``(x0, x1)`` under the key ``(k0, k1)``.

    All four are ``int32`` words that broadcast together. The schedule is Salmon et al.'s
    (and XLA's): five groups of four rounds, a key injection after each.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << r) | _srl(x1, 32 - r)
            x1 = x0 ^ x1
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + (group + 1)
    return x0, x1


def _counters(xp: Any, shape: tuple[int, ...], device: Any) -> tuple[Any, Any]:
    """High and low words of the flat 64-bit index of each element of ``shape``."""
    size = math.prod(shape)
    if size < 2**31:
        lo = xp.reshape(xp.arange(size, dtype=xp.int32, device=device), shape)
        return xp.zeros(shape, dtype=xp.int32, device=device), lo
    flat = xp.reshape(xp.arange(size, dtype=xp.int64, device=device), shape)
    return xp.astype(flat >> 32, xp.int32), xp.astype(flat & 0xFFFFFFFF, xp.int32)


def draw_words(xp: Any, key: Any, shape: Sequence[int]) -> tuple[Any, Any]:
    """The two Threefry output words for each element of ``shape`` (``int32``)."""
    shape = tuple(shape)
    if _numba.usable(key, math.prod(shape)):
        return _numba.draw_words(key, shape)
    k0, k1 = _as_words(xp, key)
    c0, c1 = _counters(xp, shape, _device(xp, key))
    y0, y1 = hash_words(k0, k1, c0, c1)
    if y0.shape != shape:  # a () draw hashed against the (1,)-shaped key words
        y0, y1 = xp.reshape(y0, shape), xp.reshape(y1, shape)
    return y0, y1


def draw_bits32(xp: Any, key: Any, shape: Sequence[int]) -> Any:
    """JAX's 32-bit ``random_bits`` as ``int32`` words (the same bit patterns)."""
    y0, y1 = draw_words(xp, key, shape)
    return y0 ^ y1


def _device(xp: Any, x: Any) -> Any:
    return getattr(x, "device", None)


def split_keys(xp: Any, key: Any, shape: tuple[int, ...]) -> Any:
    """``jax.random.split(key, shape)``: keys of shape ``(*shape, 2)``, uint32."""
    y0, y1 = draw_words(xp, key, shape)
    return xp.astype(xp.stack([y0, y1], axis=len(shape)), xp.uint32)


def seed_key(xp: Any, seed: int, device: Any = None) -> Any:
    """JAX's ``threefry_seed``: the key ``[seed >> 32, seed & 0xFFFFFFFF]`` of a 64-bit
    seed (a negative seed taken in two's complement)."""
    seed &= (1 << 64) - 1
    return xp.asarray([seed >> 32, seed & 0xFFFFFFFF], dtype=xp.uint32, device=device)


def fold_words(xp: Any, key: Any, data: Any) -> Any:
    """``jax.random.fold_in``: hash the counters ``(0, data)`` under ``key``."""
    k0, k1 = _as_words(xp, key)
    if isinstance(data, int):
        d = xp.asarray([_signed(data & 0xFFFFFFFF)], dtype=xp.int32, device=_device(xp, key))
    else:
        d = xp.reshape(xp.astype(data, xp.int32), (1,))
    y0, y1 = hash_words(k0, k1, xp.zeros_like(d), d)
    return xp.astype(xp.concat([y0, y1]), xp.uint32)


def _signed(word: int) -> int:
    """A 32-bit pattern as the ``int32`` value with the same bits."""
    return word - (1 << 32) if word >= 1 << 31 else word


def unsigned_order(words: Any) -> Any:
    """``int32`` words whose signed order is the unsigned order of their bit patterns."""
    return words ^ _SIGN
