"""Dtype questions answered for any backend without importing it.

Dtype objects differ per library (``numpy.dtype``, JAX's scalar types,
array-api-strict's ``DType``), but all of them spell the standard's names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dtype_name", "is_complex", "is_inexact", "is_integer_or_bool"]


def dtype_name(dtype: Any) -> str:
    """The standard name of ``dtype`` (``"float64"``, ``"int32"``, ``"bool"``).

    Example:
        >>> import numpy as np
        >>> dtype_name(np.dtype("float32"))
        'float32'
    """
    try:
        return _NAMES[type(dtype), dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable dtype object
        pass
    name = getattr(dtype, "name", None)  # numpy.dtype.name is a Python-level property
    if not isinstance(name, str):
        name = dtype.__name__ if isinstance(dtype, type) else str(dtype).rsplit(".", 1)[-1]
    try:
        _NAMES[type(dtype), dtype] = name
    except TypeError:
        pass
    return name


# Keyed by type too: comparing dtypes of two libraries can warn or be ambiguous.
_NAMES: dict[tuple[type, Any], str] = {}


def is_inexact(dtype: Any) -> bool:
    """Whether ``dtype`` is a real or complex floating dtype (differentiable)."""
    return dtype_name(dtype).startswith(("float", "complex", "bfloat"))


def is_complex(dtype: Any) -> bool:
    """Whether ``dtype`` is a complex floating dtype."""
    return dtype_name(dtype).startswith("complex")


def is_integer_or_bool(dtype: Any) -> bool:
    """Whether ``dtype`` is an integer or boolean dtype (not differentiable)."""
    return not is_inexact(dtype)
