"""Data type functions: ``astype`` (a primitive) and the dtype queries.

``can_cast``, ``finfo``, ``iinfo``, ``isdtype`` and ``result_type`` compute nothing on
array values, so they are not traced: the traced namespace answers them with the
concrete backend namespace, after replacing each traced array by its dtype (the standard
lets them take arrays wherever it takes dtypes).
"""

from __future__ import annotations

from typing import Any

from unijax._dtypes import is_complex, is_inexact
from unijax.engine.core import Primitive, Tracer
from unijax.engine.registry import def_api, def_batch, def_creation, def_jvp, def_vjp
from unijax.engine.rules._helpers import ops, unbroadcast

__all__ = ["MachineLimits", "astype_p"]

# --- astype -------------------------------------------------------------------------------

astype_p = Primitive("astype")
astype_p.def_impl(lambda xp, x, *, dtype: xp.astype(x, dtype))


@def_api("astype")
def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    """``x`` converted to ``dtype``.

    ``copy=False`` returns ``x`` itself when it already has ``dtype``. A traced array is
    never updated in place, but ``x[i] = v`` re-points the Python object, so a copy keeps
    two names apart.
    """
    if not copy and getattr(x, "dtype", None) == dtype:
        return x
    return astype_p.bind(x, dtype=dtype)


def _differentiable(src: Any, dst: Any) -> bool:
    return is_inexact(src) and is_inexact(dst)


@def_jvp(astype_p)
def _astype_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, dtype: Any) -> Any:
    out = astype_p.bind(primals[0], dtype=dtype)
    t = tangents[0]
    if t is None or not _differentiable(primals[0].dtype, dtype):
        return out, None
    if is_complex(t.dtype) and not is_complex(dtype):
        t = ops.real(t)  # a complex -> real cast keeps the real part
    return out, t if t.dtype == dtype else astype_p.bind(t, dtype=dtype)


@def_vjp(astype_p)
def _astype_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, dtype: Any) -> Any:
    x = primals[0]
    if not _differentiable(x.dtype, dtype):
        return (None,)
    return (unbroadcast(ct, x),)  # a real x gets the real part of a complex cotangent


@def_batch(astype_p)
def _astype_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, dtype: Any) -> Any:
    return astype_p.bind(args[0], dtype=dtype), bdims[0]


# --- dtype queries --------------------------------------------------------------------------


def _dtype_of(value: Any) -> Any:
    return value.dtype if isinstance(value, Tracer) else value


@def_creation("result_type")
def result_type(xp: Any, /, *arrays_and_dtypes: Any) -> Any:
    """The dtype the standard's promotion rules give ``arrays_and_dtypes``."""
    return xp.result_type(*(_dtype_of(a) for a in arrays_and_dtypes))


@def_creation("can_cast")
def can_cast(xp: Any, from_: Any, to: Any, /) -> bool:
    """Whether ``from_`` (a dtype or array) can be cast to ``to`` by the promotion rules."""
    return bool(xp.can_cast(_dtype_of(from_), to))


class MachineLimits:
    """The standard's ``finfo``/``iinfo`` object: its fields are Python numbers.

    NumPy's are NumPy scalars of the dtype; other attributes (``tiny``, ``resolution``)
    are the backend's own.
    """

    def __init__(self, base: Any, **fields: Any) -> None:
        self._base = base
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # (also while unpickling, before _base is set)
            raise AttributeError(name)
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return repr(self._base)


@def_creation("finfo")
def finfo(xp: Any, type: Any, /) -> Any:
    """Machine limits of a floating dtype (or of an array's dtype), as Python numbers."""
    info = xp.finfo(_dtype_of(type))
    return MachineLimits(info, bits=int(info.bits), eps=float(info.eps), max=float(info.max),
                         min=float(info.min), smallest_normal=float(info.smallest_normal),
                         dtype=info.dtype)


@def_creation("iinfo")
def iinfo(xp: Any, type: Any, /) -> Any:
    """Machine limits of an integer dtype (or of an array's dtype), as Python ints."""
    info = xp.iinfo(_dtype_of(type))
    return MachineLimits(info, bits=int(info.bits), max=int(info.max), min=int(info.min),
                         dtype=info.dtype)


@def_creation("isdtype")
def isdtype(xp: Any, /, dtype: Any, kind: Any) -> bool:
    """Whether ``dtype`` is of ``kind`` (a name such as ``"real floating"``, or dtypes)."""
    return bool(xp.isdtype(_dtype_of(dtype), kind))
