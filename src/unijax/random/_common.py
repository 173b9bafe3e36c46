"""What every sampler shares: dtype names, float constants, and handing JAX keys to JAX."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from unijax.dispatch.options import default_float_dtype
from unijax.errors import TransformArgumentError, message

#: Bits of the significand (without the implicit one) of each float dtype.
NMANT = {"float16": 10, "float32": 23, "float64": 52}
#: The smallest normal number of each float dtype.
TINY = {"float16": 2.0**-14, "float32": 2.0**-126, "float64": 2.0**-1022}
_NAMES = ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
          "float16", "float32", "float64")


def dtype_name(dtype: Any) -> str:
    """The standard name of a dtype given as a namespace dtype or a string."""
    text = dtype if isinstance(dtype, str) else str(getattr(dtype, "name", dtype))
    for name in sorted(_NAMES, key=len, reverse=True):
        if text.endswith(name) or f"{name}'" in text or f".{name}" in text:
            return name
    return text


def float_dtype(api: str, dtype: Any) -> str:
    """The float dtype name a sampler draws in: ``dtype``, or unijax's default."""
    name = default_float_dtype() if dtype is None else dtype_name(dtype)
    if name not in NMANT:
        raise TransformArgumentError(message(
            f"unijax.random.{api}: argument dtype is {dtype!r}",
            expected="a floating dtype (float16, float32 or float64)", got=name,
            fix="Pass dtype=xp.float32 or xp.float64, or leave it out for the default."))
    return name


def default_int_dtype() -> str:
    """``int64`` when the default float dtype is ``float64`` (JAX with x64), else ``int32``."""
    return "int64" if default_float_dtype() == "float64" else "int32"


@contextlib.contextmanager
def _x64(needed: bool) -> Iterator[None]:
    import jax

    if needed and not jax.config.read("jax_enable_x64"):
        with jax.enable_x64(True):
            yield
    else:
        yield


def on_jax(api: str, *args: Any, wide: bool = False, **kwargs: Any) -> Any:
    """Call ``jax.random.<api>`` (JAX keys: the result is JAX's own, bit for bit), with
    JAX's 64-bit types switched on for the call when ``wide`` (a 64-bit dtype)."""
    import jax
    import jax.numpy as jnp

    kwargs = {k: (getattr(jnp, v) if k == "dtype" and isinstance(v, str) else v)
              for k, v in kwargs.items()}
    fn: Callable[..., Any] = getattr(jax.random, api)
    with _x64(wide):
        return fn(*args, **kwargs)
