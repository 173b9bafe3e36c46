"""Keys: making, splitting and folding them, and the raw bits they stand for."""

from __future__ import annotations

import numbers
import operator
from typing import Any

from unijax.dispatch.selection import namespace as _backend_namespace
from unijax.errors import TransformArgumentError, message
from unijax.random import _threefry as tf
from unijax.random._common import default_int_dtype, dtype_name, on_jax

_UINT_BITS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


def key(seed: Any, *, backend: str | None = None) -> Any:
    """A key for the random functions: JAX's raw Threefry key of ``seed``.

    The key is a ``uint32`` array of shape ``(2,)`` of the current backend (or of
    ``backend``); ``seed`` is a Python int (taken as a 64-bit integer, as JAX does with
    ``jax_enable_x64``) or an integer array, which may be traced.

    Args:
        seed: An integer.
        backend: The backend whose array the key is; default the active one.

    Returns:
        The key ``[seed >> 32, seed & 0xFFFFFFFF]``.

    Raises:
        TransformArgumentError: ``seed`` is not an integer.

    Example:
        >>> import unijax
        >>> unijax.random.key(42).tolist()
        [0, 42]
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        seed = int(seed)  # NumPy integer scalars too: they seed the current backend
    if isinstance(seed, bool) or not (isinstance(seed, int) or hasattr(seed, "dtype")):
        try:
            seed = operator.index(seed)
        except TypeError:
            raise TransformArgumentError(message(
                "unijax.random.key: argument seed is not an integer",
                expected="a Python int or an integer array", got=repr(seed),
                fix="Pass an int such as unijax.random.key(0).")) from None
    if isinstance(seed, int):
        xp = _backend_namespace(backend)
        return tf.seed_key(xp, seed)
    name = dtype_name(seed.dtype)
    if "int" not in name:
        raise TransformArgumentError(message(
            "unijax.random.key: argument seed is not an integer",
            expected="an integer array", got=f"dtype {name}",
            fix="Convert it with xp.astype(seed, xp.int64)."))
    if tf.is_jax(seed):
        return on_jax("PRNGKey", seed, wide=name.endswith("64"))
    xp = tf.namespace_of(seed)
    wide = xp.astype(seed, xp.int64)
    lo = xp.astype(wide & 0xFFFFFFFF, xp.uint32)
    # JAX's logical shift of a 32-bit seed by 32 is 0; of a 64-bit one, its high word.
    hi = xp.astype((wide >> 32) & 0xFFFFFFFF, xp.uint32) if name.endswith("64") \
        else xp.zeros_like(lo)
    return xp.stack([hi, lo])


def PRNGKey(seed: Any, *, backend: str | None = None) -> Any:
    """The same as :func:`key` (JAX's older name for raw keys).

    Example:
        >>> import unijax
        >>> unijax.random.PRNGKey(0).tolist()
        [0, 0]
    """
    return key(seed, backend=backend)


def split(key: Any, num: int | tuple[int, ...] = 2) -> Any:
    """Split a key into ``num`` new keys (``num`` an int or a shape).

    Args:
        key: A key of shape ``(2,)``.
        num: How many keys, or the shape of the batch of keys.

    Returns:
        Keys of shape ``(num, 2)`` (or ``(*num, 2)``), equal to ``jax.random.split``'s.

    Example:
        >>> import unijax
        >>> unijax.random.split(unijax.random.key(0)).shape
        (2, 2)
    """
    xp = tf.check_key("split", key)
    shape = tf.check_shape("split", num, "num")
    if xp is None:
        return on_jax("split", key, shape)
    return tf.split_keys(xp, key, shape)


def fold_in(key: Any, data: Any) -> Any:
    """A new key made from ``key`` and the integer ``data`` (``jax.random.fold_in``).

    Example:
        >>> import unijax
        >>> unijax.random.fold_in(unijax.random.key(0), 7).shape
        (2,)
    """
    xp = tf.check_key("fold_in", key)
    if xp is None:
        return on_jax("fold_in", key, data)
    if not isinstance(data, int):
        if "int" not in dtype_name(getattr(data, "dtype", "")) or tuple(data.shape) != ():
            raise TransformArgumentError(message(
                "unijax.random.fold_in: argument data is not an integer scalar",
                expected="a Python int or a 0-d integer array", got=repr(data),
                fix="Pass an int (a step number, a device index)."))
    return tf.fold_words(xp, key, data)


def key_data(keys: Any) -> Any:
    """The ``uint32`` data of keys: keys are raw, so this is ``keys`` itself.

    Example:
        >>> import unijax
        >>> unijax.random.key_data(unijax.random.key(3)).tolist()
        [0, 3]
    """
    tf.check_key("key_data", keys, batched=True)
    return keys


def wrap_key_data(key_bits_array: Any) -> Any:
    """Keys from ``uint32`` data of shape ``(..., 2)`` (checked, returned as they are).

    Example:
        >>> import numpy as np, unijax
        >>> unijax.random.wrap_key_data(np.asarray([0, 3], dtype=np.uint32)).tolist()
        [0, 3]
    """
    tf.check_key("wrap_key_data", key_bits_array, batched=True)
    return key_bits_array


def bits(key: Any, shape: Any = (), dtype: Any = None) -> Any:
    """Uniformly random bits as unsigned integers (``jax.random.bits``).

    Args:
        key: A key.
        shape: The shape of the result.
        dtype: ``uint8``, ``uint16``, ``uint32`` or ``uint64``; default ``uint64`` when
            unijax's default float dtype is ``float64`` (JAX's with x64), else ``uint32``.

    Returns:
        The bits, equal to JAX's.

    Example:
        >>> import unijax
        >>> unijax.random.bits(unijax.random.key(0), (3,), dtype="uint32").dtype
        dtype('uint32')
    """
    xp = tf.check_key("bits", key)
    shape = tf.check_shape("bits", shape)
    # JAX's default is its default unsigned integer: 64 bits with x64, as unijax's
    # default is with float64.
    name = ("uint64" if default_int_dtype() == "int64" else "uint32") if dtype is None \
        else dtype_name(dtype)
    if name not in _UINT_BITS:
        raise TransformArgumentError(message(
            f"unijax.random.bits: argument dtype is {dtype!r}",
            expected="an unsigned integer dtype (uint8, uint16, uint32, uint64)", got=name,
            fix="Pass dtype=xp.uint32, or draw integers in a range with randint."))
    if xp is None:
        return on_jax("bits", key, shape, dtype=name, wide=name == "uint64")
    if name == "uint64":
        y0, y1 = tf.draw_words(xp, key, shape)
        # Shifted in int64 (PyTorch has no uint64 shifts), wrapping into the sign bit.
        hi = xp.astype(y0, xp.int64) << 32
        lo = xp.astype(y1, xp.int64) & 0xFFFFFFFF
        return xp.astype(hi | lo, xp.uint64)
    words = tf.draw_bits32(xp, key, shape)
    if name != "uint32":
        words = words & ((1 << _UINT_BITS[name]) - 1)
    return xp.astype(words, getattr(xp, name))
