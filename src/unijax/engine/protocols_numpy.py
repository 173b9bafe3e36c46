"""NumPy's ``__array_ufunc__`` and ``__array_function__`` on tracers (see ``protocols``).

Each handler takes the traced namespace and the call's arguments bound by name to the
NumPy function's signature (only those the caller gave). An argument a handler does not
name must be left at its default, or the call is refused: NumPy's ``out``, ``where``,
``order`` and friends never pass silently.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from unijax.engine.core import API_FUNCTIONS, SCALAR_TYPES, TRACER_METHODS, Tracer
from unijax.engine.protocols import (
    namespace_of,
    refuse,
    refuse_argument,
    refuse_out,
)
from unijax.errors import ConcretizationError

__all__ = ["FUNCTIONS", "UFUNCS", "array_function", "array_ufunc"]

# --- ufuncs -------------------------------------------------------------------------------

#: NumPy ufunc name -> the standard's function (every ufunc with a counterpart).
UFUNCS: dict[str, str] = {
    name: name for name in (
        "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "negative",
        "positive", "sign", "signbit", "sqrt", "square", "reciprocal", "exp", "expm1",
        "log", "log1p", "log2", "log10", "logaddexp", "sin", "cos", "tan", "sinh", "cosh",
        "tanh", "hypot", "copysign", "nextafter", "maximum", "minimum", "floor", "ceil",
        "trunc", "isfinite", "isinf", "isnan", "equal", "not_equal", "less", "less_equal",
        "greater", "greater_equal", "logical_and", "logical_or", "logical_xor",
        "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "matmul", "vecdot",
    )
} | {
    "absolute": "abs", "fabs": "abs", "arccos": "acos", "arcsin": "asin", "arctan": "atan",
    "arccosh": "acosh", "arcsinh": "asinh", "arctanh": "atanh", "arctan2": "atan2",
    "power": "pow", "conjugate": "conj", "invert": "bitwise_invert", "rint": "round",
    "left_shift": "bitwise_left_shift", "right_shift": "bitwise_right_shift",
    "true_divide": "divide", "mod": "remainder",
}
#: ``ufunc.reduce`` and ``ufunc.accumulate`` with a counterpart.
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
           "logical_and": "all", "logical_or": "any"}
_ACCUMULATE = {"add": "cumulative_sum", "multiply": "cumulative_prod"}
#: Ufunc keywords and the values that mean "as the standard does".
_UFUNC_DEFAULTS: dict[str, Any] = {"where": True, "casting": "same_kind", "order": "K",
                                   "subok": True, "dtype": None, "signature": None}
_UFUNC_HINTS = {
    "cbrt": "Use xp.sign(x) * xp.abs(x) ** (1 / 3).",
    "exp2": "Use 2.0 ** x.",
    "fmod": "Use x - xp.trunc(x / y) * y.",
    "deg2rad": "Use x * (xp.pi / 180).", "radians": "Use x * (xp.pi / 180).",
    "rad2deg": "Use x * (180 / xp.pi).", "degrees": "Use x * (180 / xp.pi).",
    "fmax": "Use xp.where(xp.isnan(y), x, xp.maximum(x, y)).",
    "fmin": "Use xp.where(xp.isnan(y), x, xp.minimum(x, y)).",
}


def _operand(ns: Any, x: Any) -> Any:
    # Lists and tuples are array-likes to NumPy; the standard's functions want arrays.
    return ns.asarray(x) if type(x) in (list, tuple) else x


def array_ufunc(ufunc: Any, method: str, inputs: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
    """``ufunc.method(*inputs, **kwargs)`` with a tracer among the inputs."""
    uname = ufunc.__name__
    name = UFUNCS.get(uname)
    api = f"numpy.{uname}" + ("" if method == "__call__" else f".{method}")
    if method == "__call__" and not kwargs and name is not None \
            and type(inputs[0]) not in (list, tuple) and type(inputs[-1]) not in (list, tuple):
        fn = API_FUNCTIONS.get(name)  # the operators' path: arrays and scalars as they are
        if fn is not None:
            return fn(*inputs)
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in (out if type(out) is tuple else (out,))):
        raise refuse_out(api)
    ns = namespace_of(inputs)
    inputs = tuple(_operand(ns, x) for x in inputs)
    if method == "__call__":
        _check_defaults(api, kwargs, _UFUNC_DEFAULTS)
        if uname == "divmod":
            return ns.floor_divide(*inputs), ns.remainder(*inputs)
        if name is None:
            return _on_constants(api, _UFUNC_HINTS.get(uname),
                                 lambda: getattr(ufunc, method)(*_concrete(inputs)))
        return getattr(ns, name)(*inputs)
    if method in ("reduce", "accumulate"):
        table = _REDUCE if method == "reduce" else _ACCUMULATE
        if uname not in table:
            return _on_constants(api, None, lambda: getattr(ufunc, method)(
                *_concrete(inputs), **kwargs))
        (x,) = inputs
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        _check_defaults(api, kwargs, {"dtype": None, "where": True})
        if method == "accumulate":
            return getattr(ns, table[uname])(x, axis=axis)
        return getattr(ns, table[uname])(x, axis=axis, keepdims=keepdims)
    if method == "outer" and name is not None:
        _check_defaults(api, kwargs, _UFUNC_DEFAULTS)
        a, b = (x if isinstance(x, Tracer) or type(x) not in SCALAR_TYPES else ns.asarray(x)
                for x in inputs)
        a = ns.reshape(a, (*a.shape, *(1,) * len(b.shape)))
        return getattr(ns, name)(a, b)
    # ``at`` updates in place and ``reduceat`` has no counterpart.
    return _on_constants(api, "Use x[index] = value inside the transform (a functional "
                              "update) for ufunc.at." if method == "at" else None,
                         lambda: getattr(ufunc, method)(*_concrete(inputs), **kwargs))


def _check_defaults(api: str, given: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in given.items():
        default = defaults.get(key, _MISSING)
        # Compared by identity or as a plain value: ``where=`` may be an array.
        if not (value is default or (type(value) in (bool, int, str) and value == default)):
            raise refuse_argument(api, key, value)


class _Missing:
    def __repr__(self) -> str:  # how generated signatures spell it
        return "_MISSING"


_MISSING = _Missing()


def _concrete(values: Any) -> Any:
    """``values`` with each tracer converted to NumPy (raises unless it is a constant)."""
    import numpy as np  # NumPy called the protocol: it is loaded

    out = []
    for v in values:
        if type(v) in (list, tuple):
            v = type(v)(_concrete(v))
        elif isinstance(v, Tracer):
            v = np.asarray(v)
        out.append(v)
    return tuple(out)


def _on_constants(api: str, fix: str | None, compute: Callable[[], Any]) -> Any:
    """NumPy's own result for a call with no counterpart, if every tracer in it is a known
    constant (as ``np.asarray`` allows); otherwise the error naming ``api``."""
    try:
        return compute()
    except ConcretizationError:
        raise refuse(api, fix) from None


# --- functions ----------------------------------------------------------------------------

#: ``"numpy.linalg.solve"`` -> (handler(ns, params), parameter names it honours).
FUNCTIONS: dict[str, tuple[Callable[..., Any], frozenset[str]]] = {}
#: What to use instead of NumPy functions that have no counterpart.
_HINTS = {
    "numpy.einsum": "Use xp.matmul, xp.tensordot or xp.vecdot.",
    "numpy.linalg.eig": "For a symmetric or Hermitian matrix use xp.linalg.eigh; the "
                        "standard has no general eigendecomposition.",
    "numpy.linalg.eigvals": "For a symmetric or Hermitian matrix use xp.linalg.eigvalsh.",
    "numpy.linalg.lstsq": "Use xp.linalg.pinv(a) @ b, or xp.linalg.solve(a.mT @ a, a.mT @ b).",
    "numpy.nansum": "Use xp.sum(xp.where(xp.isnan(x), 0, x)).",
    "numpy.nanmean": "Use xp.where and xp.sum over the values that are not NaN.",
    "numpy.pad": "Use xp.concat with blocks made by xp.zeros or xp.full.",
    "numpy.split": "Use slicing (x[a:b]) or xp.unstack.",
    "numpy.unique": "Use xp.unique_values (outside jit and vmap).",
}


def _fn(*names: str, uses: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        for n in names:
            FUNCTIONS["numpy." + n] = (handler, frozenset(uses.split()))
        return handler

    return register


#: Per NumPy function: (a function with its signature that returns the arguments given,
#: by name, the signature's defaults). Generated once: ``Signature.bind`` costs more than
#: the traced call itself.
_BINDERS: dict[Any, tuple[Callable[..., dict[str, Any]], dict[str, Any]]] = {}


def _binder(func: Any) -> tuple[Callable[..., dict[str, Any]], dict[str, Any]]:
    entry = _BINDERS.get(func)
    if entry is None:
        sig = inspect.signature(func)
        params = [p.replace(annotation=p.empty,
                            default=_MISSING if p.default is not p.empty else p.empty)
                  for p in sig.parameters.values()]
        names = [p.name for p in params]
        source = (f"def bind{sig.replace(parameters=params, return_annotation=sig.empty)}:\n"
                  f"    return {{k: v for k, v in zip({names!r}, ({', '.join(names)},))"
                  " if v is not _MISSING}\n")
        scope: dict[str, Any] = {"_MISSING": _MISSING}
        exec(source, scope)  # the source is made from NumPy's own signature
        defaults = {p.name: p.default for p in sig.parameters.values()}
        entry = _BINDERS[func] = (scope["bind"], defaults)
    return entry


#: Per NumPy function: its name for messages, and its handler, the parameters that the
#: handler honours, its binder and its defaults (``None`` without a handler).
_RESOLVED: dict[Any, tuple[str, Any, frozenset[str], Any, dict[str, Any]]] = {}
_NUMPY: list[Any] = []  # (ndarray, np._NoValue), filled on first use


def _resolve(func: Any) -> tuple[str, Any, frozenset[str], Any, dict[str, Any]]:
    api = f"{func.__module__}.{func.__name__}"
    entry = FUNCTIONS.get(api)
    if entry is None:
        return api, None, frozenset(), None, {}
    bind, defaults = _binder(func)
    return api, entry[0], entry[1], bind, defaults


def array_function(func: Callable[..., Any], types: Any, args: Any,
                   kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)`` for a NumPy function given a tracer."""
    if not _NUMPY:
        import numpy as np  # NumPy called the protocol: it is loaded

        _NUMPY.extend((np.ndarray, np._NoValue))
    ndarray, no_value = _NUMPY
    for t in types:
        if not (issubclass(t, Tracer) or issubclass(t, ndarray)):
            return NotImplemented  # another library's arrays: NumPy asks them next
    resolved = _RESOLVED.get(func)
    if resolved is None:
        resolved = _RESOLVED[func] = _resolve(func)
    api, handler, uses, bind, defaults = resolved
    if handler is None:
        implementation = getattr(func, "_implementation", None)  # NumPy's, undispatched
        if implementation is None:
            raise refuse(api, _HINTS.get(api))
        return _on_constants(api, _HINTS.get(api), lambda: implementation(
            *_concrete(args), **dict(zip(kwargs, _concrete(kwargs.values()), strict=True))))
    params = {}
    for key, value in bind(*args, **kwargs).items():
        if key in uses:
            params[key] = value
            continue
        if key == "kwargs" and type(value) is dict:  # NumPy's **kwargs: none is honoured
            for name, item in value.items():
                raise refuse_argument(api, name, item)
            continue
        default = defaults[key]
        if key == "out" and value is not None:
            raise refuse_out(api)
        if not (value is default or value is None or value is no_value
                or (type(value) in (bool, int, str) and value == default)):
            raise refuse_argument(api, key, value)
    return handler(namespace_of((*args, *kwargs.values())), **params)


# Handlers take (ns, **params) with NumPy's parameter names, and give the standard's.

@_fn("concatenate", uses="arrays axis")
def _concatenate(ns: Any, arrays: Any, axis: Any = 0) -> Any:
    return ns.concat([_arr(ns, a) for a in arrays], axis=axis)


@_fn("stack", uses="arrays axis")
def _stack(ns: Any, arrays: Any, axis: int = 0) -> Any:
    return ns.stack([_arr(ns, a) for a in arrays], axis=axis)


@_fn("hstack", uses="tup")
def _hstack(ns: Any, tup: Any) -> Any:
    arrays = [_atleast(ns, _arr(ns, a), 1) for a in tup]
    return ns.concat(arrays, axis=0 if all(a.ndim == 1 for a in arrays) else 1)


@_fn("vstack", uses="tup")
def _vstack(ns: Any, tup: Any) -> Any:
    return ns.concat([_atleast(ns, _arr(ns, a), 2) for a in tup], axis=0)


@_fn("unstack", uses="x axis")
def _unstack(ns: Any, x: Any, axis: int = 0) -> Any:
    return ns.unstack(x, axis=axis)


@_fn("reshape", uses="a shape")
def _reshape(ns: Any, a: Any, shape: Any) -> Any:
    return ns.reshape(a, tuple(shape) if type(shape) in (list, tuple) else (shape,))


@_fn("ravel", uses="a")
def _ravel(ns: Any, a: Any) -> Any:
    return ns.reshape(a, (-1,))


@_fn("transpose", uses="a axes")
def _transpose(ns: Any, a: Any, axes: Any = None) -> Any:
    return ns.permute_dims(a, tuple(range(a.ndim))[::-1] if axes is None else tuple(axes))


@_fn("swapaxes", uses="a axis1 axis2")
def _swapaxes(ns: Any, a: Any, axis1: int, axis2: int) -> Any:
    order = list(range(a.ndim))
    order[axis1], order[axis2] = order[axis2], order[axis1]
    return ns.permute_dims(a, tuple(order))


@_fn("moveaxis", uses="a source destination")
def _moveaxis(ns: Any, a: Any, source: Any, destination: Any) -> Any:
    return ns.moveaxis(a, source, destination)


@_fn("matrix_transpose", "linalg.matrix_transpose", uses="x")
def _matrix_transpose(ns: Any, x: Any) -> Any:
    return ns.matrix_transpose(x)


@_fn("expand_dims", uses="a axis")
def _expand_dims(ns: Any, a: Any, axis: Any) -> Any:
    axes = (axis,) if type(axis) is int else tuple(axis)
    ndim = a.ndim + len(axes)
    for ax in sorted(ax % ndim for ax in axes):
        a = ns.expand_dims(a, axis=ax)
    return a


@_fn("squeeze", uses="a axis")
def _squeeze(ns: Any, a: Any, axis: Any = None) -> Any:
    if axis is None:
        axis = tuple(i for i, d in enumerate(a.shape) if d == 1)
    return ns.squeeze(a, axis=axis)


@_fn("flip", uses="m axis")
def _flip(ns: Any, m: Any, axis: Any = None) -> Any:
    return ns.flip(m, axis=axis)


@_fn("roll", uses="a shift axis")
def _roll(ns: Any, a: Any, shift: Any, axis: Any = None) -> Any:
    return ns.roll(a, shift, axis=axis)


@_fn("tile", uses="A reps")
def _tile(ns: Any, A: Any, reps: Any) -> Any:
    return ns.tile(A, tuple(reps) if type(reps) in (list, tuple) else (reps,))


@_fn("repeat", uses="a repeats axis")
def _repeat(ns: Any, a: Any, repeats: Any, axis: Any = None) -> Any:
    return ns.repeat(a, repeats, axis=axis)


@_fn("broadcast_to", uses="array shape")
def _broadcast_to(ns: Any, array: Any, shape: Any) -> Any:
    return ns.broadcast_to(array, tuple(shape) if type(shape) in (list, tuple) else (shape,))


@_fn("broadcast_arrays", uses="args")
def _broadcast_arrays(ns: Any, args: Any) -> Any:
    return tuple(ns.broadcast_arrays(*(_arr(ns, a) for a in args)))


def _atleast(ns: Any, a: Any, n: int) -> Any:
    if a.ndim >= n:
        return a
    if n == 3 and a.ndim == 1:
        return ns.reshape(a, (1, a.shape[0], 1))
    if n == 3 and a.ndim == 2:
        return ns.expand_dims(a, axis=-1)
    return ns.reshape(a, (1,) * (n - a.ndim) + tuple(a.shape))


def _atleast_nd(n: int) -> Callable[..., Any]:
    def handler(ns: Any, arys: Any) -> Any:
        out = [_atleast(ns, _arr(ns, a), n) for a in arys]
        return out[0] if len(out) == 1 else tuple(out)

    return handler


for _n in (1, 2, 3):
    _fn(f"atleast_{_n}d", uses="arys")(_atleast_nd(_n))


@_fn("where", uses="condition x y")
def _where(ns: Any, condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return ns.nonzero(condition)
    return ns.where(_arr(ns, condition), x, y)


@_fn("nonzero", uses="a")
def _nonzero(ns: Any, a: Any) -> Any:
    return ns.nonzero(a)


@_fn("clip", uses="a a_min a_max min max")
def _clip(ns: Any, a: Any, a_min: Any = None, a_max: Any = None, min: Any = None,
          max: Any = None) -> Any:
    return ns.clip(a, a_min if min is None else min, a_max if max is None else max)


@_fn("take", uses="a indices axis")
def _take(ns: Any, a: Any, indices: Any, axis: Any = None) -> Any:
    if axis is None:
        a, axis = ns.reshape(a, (-1,)), 0
    idx = _arr(ns, indices)
    axis %= a.ndim
    out = ns.take(a, ns.reshape(idx, (-1,)), axis=axis)
    return ns.reshape(out, (*a.shape[:axis], *idx.shape, *a.shape[axis + 1:]))


@_fn("take_along_axis", uses="arr indices axis")
def _take_along_axis(ns: Any, arr: Any, indices: Any, axis: Any = -1) -> Any:
    if axis is None:
        arr, axis = ns.reshape(arr, (-1,)), 0
    return ns.take_along_axis(arr, indices, axis=axis)


@_fn("diff", uses="a n axis prepend append")
def _diff(ns: Any, a: Any, n: int = 1, axis: int = -1, prepend: Any = None,
          append: Any = None) -> Any:
    extra = {k: v for k, v in (("prepend", prepend), ("append", append)) if v is not None}
    return ns.diff(a, axis=axis, n=n, **extra)


@_fn("tril", uses="m k")
def _tril(ns: Any, m: Any, k: int = 0) -> Any:
    return ns.tril(m, k=k)


@_fn("triu", uses="m k")
def _triu(ns: Any, m: Any, k: int = 0) -> Any:
    return ns.triu(m, k=k)


@_fn("meshgrid", uses="xi indexing")
def _meshgrid(ns: Any, xi: Any, indexing: str = "xy") -> Any:
    return tuple(ns.meshgrid(*(_arr(ns, a) for a in xi), indexing=indexing))


@_fn("copy", uses="a")
def _copy(ns: Any, a: Any) -> Any:
    # A new object: writing to the copy (a functional update) must not re-point ``a``.
    return ns.asarray(a, copy=True)


@_fn("astype", uses="x dtype")
def _astype(ns: Any, x: Any, dtype: Any) -> Any:
    return ns.astype(x, dtype)


def _like(name: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any, dtype: Any = None, **fill: Any) -> Any:
        return getattr(ns, name)(a, *fill.values(), dtype=dtype)

    return handler


_fn("zeros_like", uses="a dtype")(_like("zeros_like"))
_fn("ones_like", uses="a dtype")(_like("ones_like"))
_fn("empty_like", uses="a dtype")(_like("empty_like"))
_fn("full_like", uses="a fill_value dtype")(_like("full_like"))


@_fn("shape", uses="a")
def _shape(ns: Any, a: Any) -> Any:
    return tuple(a.shape)


@_fn("ndim", uses="a")
def _ndim(ns: Any, a: Any) -> Any:
    return a.ndim


@_fn("size", uses="a axis")
def _size(ns: Any, a: Any, axis: Any = None) -> Any:
    return math.prod(a.shape) if axis is None else a.shape[axis]


@_fn("result_type", uses="arrays_and_dtypes")
def _result_type(ns: Any, arrays_and_dtypes: Any) -> Any:
    return ns.result_type(*arrays_and_dtypes)


@_fn("iscomplexobj", uses="x")
def _iscomplexobj(ns: Any, x: Any) -> Any:
    return ns.isdtype(x.dtype, "complex floating")


@_fn("isrealobj", uses="x")
def _isrealobj(ns: Any, x: Any) -> Any:
    return not ns.isdtype(x.dtype, "complex floating")


@_fn("real", uses="val")
def _real(ns: Any, val: Any) -> Any:
    return ns.real(val) if ns.isdtype(val.dtype, "complex floating") else val


@_fn("imag", uses="val")
def _imag(ns: Any, val: Any) -> Any:
    return ns.imag(val) if ns.isdtype(val.dtype, "complex floating") else ns.zeros_like(val)


@_fn("round", "around", uses="a")
def _round(ns: Any, a: Any) -> Any:
    return ns.round(a)


@_fn("sort", uses="a axis stable")
def _sort(ns: Any, a: Any, axis: Any = -1, stable: Any = None) -> Any:
    if axis is None:
        a, axis = ns.reshape(a, (-1,)), 0
    return ns.sort(a, axis=axis, stable=True if stable is None else stable)


@_fn("argsort", uses="a axis stable")
def _argsort(ns: Any, a: Any, axis: Any = -1, stable: Any = None) -> Any:
    if axis is None:
        a, axis = ns.reshape(a, (-1,)), 0
    return ns.argsort(a, axis=axis, stable=True if stable is None else stable)


@_fn("searchsorted", uses="a v side sorter")
def _searchsorted(ns: Any, a: Any, v: Any, side: str = "left", sorter: Any = None) -> Any:
    return ns.searchsorted(a, _arr(ns, v), side=side, sorter=sorter)


# -- reductions --

def _reduction(name: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any, axis: Any = None, keepdims: Any = False, **extra: Any) -> Any:
        if keepdims is None:
            keepdims = False
        return getattr(ns, name)(_arr(ns, a), axis=_axis(axis), keepdims=bool(keepdims),
                                 **{k: v for k, v in extra.items() if v is not None})

    return handler


def _axis(axis: Any) -> Any:
    return tuple(axis) if type(axis) is list else axis


for _names, _std, _uses in (
        (("sum",), "sum", "a axis dtype keepdims"),
        (("prod",), "prod", "a axis dtype keepdims"),
        (("mean",), "mean", "a axis keepdims"),
        (("max", "amax"), "max", "a axis keepdims"),
        (("min", "amin"), "min", "a axis keepdims"),
        (("all",), "all", "a axis keepdims"),
        (("any",), "any", "a axis keepdims"),
        (("count_nonzero",), "count_nonzero", "a axis keepdims")):
    _fn(*_names, uses=_uses)(_reduction(_std))


def _spread(name: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any, axis: Any = None, keepdims: Any = False, ddof: Any = 0,
                correction: Any = None) -> Any:
        return getattr(ns, name)(a, axis=_axis(axis), keepdims=bool(keepdims),
                                 correction=ddof if correction is None else correction)

    return handler


_fn("std", uses="a axis keepdims ddof correction")(_spread("std"))
_fn("var", uses="a axis keepdims ddof correction")(_spread("var"))


def _arg_reduction(name: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any, axis: Any = None, keepdims: Any = False) -> Any:
        return getattr(ns, name)(a, axis=axis, keepdims=bool(keepdims))

    return handler


_fn("argmax", uses="a axis keepdims")(_arg_reduction("argmax"))
_fn("argmin", uses="a axis keepdims")(_arg_reduction("argmin"))


def _cumulative(name: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any = None, axis: Any = None, dtype: Any = None,
                include_initial: bool = False, x: Any = None) -> Any:
        a = x if a is None else a
        if axis is None:
            if a.ndim != 1:
                a = ns.reshape(a, (-1,))
            axis = 0
        return getattr(ns, name)(a, axis=axis, dtype=dtype, include_initial=include_initial)

    return handler


_fn("cumsum", uses="a axis dtype")(_cumulative("cumulative_sum"))
_fn("cumprod", uses="a axis dtype")(_cumulative("cumulative_prod"))
_fn("cumulative_sum", uses="x axis dtype include_initial")(_cumulative("cumulative_sum"))
_fn("cumulative_prod", uses="x axis dtype include_initial")(_cumulative("cumulative_prod"))


@_fn("isclose", uses="a b rtol atol equal_nan")
def _isclose(ns: Any, a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> Any:
    # NumPy's own formula: finite values within tolerance, or exactly equal (infinities).
    a, b = _arr(ns, a), _arr(ns, b)
    close = ns.logical_and(ns.abs(a - b) <= atol + rtol * ns.abs(b), ns.isfinite(b))
    close = ns.logical_or(close, a == b)
    if equal_nan:
        close = ns.logical_or(close, ns.logical_and(ns.isnan(a), ns.isnan(b)))
    return close


@_fn("allclose", uses="a b rtol atol equal_nan")
def _allclose(ns: Any, a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
              equal_nan: bool = False) -> Any:
    return ns.all(_isclose(ns, a, b, rtol, atol, equal_nan))


# -- products and linear algebra --

@_fn("dot", uses="a b")
def _dot(ns: Any, a: Any, b: Any) -> Any:
    a, b = _arr(ns, a), _arr(ns, b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2 and a.ndim <= 2:
        return ns.matmul(a, b)
    return ns.tensordot(a, b, axes=([a.ndim - 1], [max(b.ndim - 2, 0)]))


@_fn("inner", uses="a b")
def _inner(ns: Any, a: Any, b: Any) -> Any:
    a, b = _arr(ns, a), _arr(ns, b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return ns.tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


@_fn("vdot", uses="a b")
def _vdot(ns: Any, a: Any, b: Any) -> Any:
    return ns.vecdot(ns.reshape(_arr(ns, a), (-1,)), ns.reshape(_arr(ns, b), (-1,)))


@_fn("outer", uses="a b")
def _outer(ns: Any, a: Any, b: Any) -> Any:
    return ns.linalg.outer(ns.reshape(_arr(ns, a), (-1,)), ns.reshape(_arr(ns, b), (-1,)))


@_fn("tensordot", "linalg.tensordot", uses="a b axes x1 x2")
def _tensordot(ns: Any, a: Any = None, b: Any = None, axes: Any = 2, x1: Any = None,
               x2: Any = None) -> Any:
    a, b = (x1, x2) if a is None else (a, b)
    if type(axes) in (list, tuple):
        axes = tuple(tuple(ax) if type(ax) in (list, tuple) else (ax,) for ax in axes)
    return ns.tensordot(a, b, axes=axes)


def _last_two(ns: Any, a: Any, axis1: int, axis2: int) -> Any:
    axis1, axis2 = axis1 % a.ndim, axis2 % a.ndim
    rest = [i for i in range(a.ndim) if i not in (axis1, axis2)]
    return ns.permute_dims(a, (*rest, axis1, axis2))


@_fn("trace", uses="a offset axis1 axis2 dtype")
def _trace(ns: Any, a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1,
           dtype: Any = None) -> Any:
    return ns.linalg.trace(_last_two(ns, a, axis1, axis2), offset=offset, dtype=dtype)


@_fn("diagonal", uses="a offset axis1 axis2")
def _diagonal(ns: Any, a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    return ns.linalg.diagonal(_last_two(ns, a, axis1, axis2), offset=offset)


@_fn("cross", uses="a b axis")
def _cross(ns: Any, a: Any, b: Any, axis: Any = None) -> Any:
    return ns.linalg.cross(a, b, axis=-1 if axis is None else axis)


def _linalg(name: str, *positional: str) -> Callable[..., Any]:
    def handler(ns: Any, **params: Any) -> Any:
        args = [params.pop(p) for p in positional]
        return getattr(ns.linalg, name)(*args, **params)

    return handler


for _name, _uses, _pos in (
        ("solve", "a b", ("a", "b")), ("inv", "a", ("a",)), ("det", "a", ("a",)),
        ("slogdet", "a", ("a",)), ("cholesky", "a upper", ("a",)),
        ("eigvalsh", "a", ("a",)), ("eigh", "a", ("a",)),
        ("matrix_power", "a n", ("a", "n")), ("svdvals", "x", ("x",)),
        ("matmul", "x1 x2", ("x1", "x2")), ("vecdot", "x1 x2 axis", ("x1", "x2")),
        ("outer", "x1 x2", ("x1", "x2")), ("diagonal", "x offset", ("x",)),
        ("trace", "x offset dtype", ("x",)), ("cross", "a b axis", ("a", "b")),
        ("vector_norm", "x axis keepdims ord", ("x",)),
        ("matrix_norm", "x keepdims ord", ("x",))):
    _fn("linalg." + _name, uses=_uses)(_linalg(_name, *_pos))


@_fn("linalg.qr", uses="a mode")
def _qr(ns: Any, a: Any, mode: str = "reduced") -> Any:
    if mode not in ("reduced", "complete"):
        raise refuse_argument("numpy.linalg.qr", "mode", mode)
    return ns.linalg.qr(a, mode=mode)


@_fn("linalg.svd", uses="a full_matrices compute_uv")
def _svd(ns: Any, a: Any, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    if not compute_uv:
        return ns.linalg.svdvals(a)
    return ns.linalg.svd(a, full_matrices=full_matrices)


@_fn("linalg.pinv", uses="a rcond rtol")
def _pinv(ns: Any, a: Any, rcond: Any = None, rtol: Any = None) -> Any:
    # NumPy's default cutoff is 1e-15 of the largest singular value, not the standard's.
    cutoff = rtol if rtol is not None else rcond if rcond is not None else 1e-15
    return ns.linalg.pinv(a, rtol=cutoff)


@_fn("linalg.matrix_rank", uses="A rtol")
def _matrix_rank(ns: Any, A: Any, rtol: Any = None) -> Any:
    return ns.linalg.matrix_rank(A, rtol=rtol)


@_fn("linalg.multi_dot", uses="arrays")
def _multi_dot(ns: Any, arrays: Any) -> Any:
    out = arrays[0]
    for a in arrays[1:]:
        out = ns.matmul(out, a)
    return out


@_fn("linalg.norm", uses="x ord axis keepdims")
def _norm(ns: Any, x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    if type(axis) in (list, tuple) and len(axis) == 1:
        axis = axis[0]
    if axis is None and (ord is None or x.ndim == 1):
        # Frobenius norm of the flattened array, or a vector's norm.
        out = ns.linalg.vector_norm(x, ord=2 if ord is None else ord)
        return ns.reshape(out, (1,) * x.ndim) if keepdims else out
    if axis is None and x.ndim == 2:
        axis = (0, 1)
    if type(axis) is int:
        return ns.linalg.vector_norm(x, axis=axis, keepdims=keepdims,
                                     ord=2 if ord is None else ord)
    if type(axis) in (list, tuple) and len(axis) == 2:
        a0, a1 = (ax % x.ndim for ax in axis)
        out = ns.linalg.matrix_norm(_last_two(ns, x, a0, a1), ord="fro" if ord is None else ord)
        if keepdims:
            out = ns.expand_dims(ns.expand_dims(out, axis=min(a0, a1)), axis=max(a0, a1))
        return out
    raise refuse_argument("numpy.linalg.norm", "axis", axis)


def _fft(name: str, *sizes: str) -> Callable[..., Any]:
    def handler(ns: Any, a: Any, norm: Any = None, **params: Any) -> Any:
        params = {k: (tuple(v) if type(v) is list else v) for k, v in params.items()
                  if v is not None}
        return getattr(ns.fft, name)(a, norm="backward" if norm is None else norm, **params)

    return handler


for _name in ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft"):
    _fn("fft." + _name, uses="a n axis norm")(_fft(_name))
for _name in ("fftn", "ifftn", "rfftn", "irfftn"):
    _fn("fft." + _name, uses="a s axes norm")(_fft(_name))


def _shift(name: str) -> Callable[..., Any]:
    def handler(ns: Any, x: Any, axes: Any = None) -> Any:
        return getattr(ns.fft, name)(x, axes=tuple(axes) if type(axes) is list else axes)

    return handler


_fn("fft.fftshift", uses="x axes")(_shift("fftshift"))
_fn("fft.ifftshift", uses="x axes")(_shift("ifftshift"))


def _arr(ns: Any, x: Any) -> Any:
    """``x`` as an array of the namespace (NumPy functions take lists and scalars)."""
    if isinstance(x, Tracer) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return x
    return ns.asarray(x)


del _names, _std, _uses, _name, _pos, _n


def _array_ufunc(self: Tracer, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    return array_ufunc(ufunc, method, inputs, kwargs)


def _array_function(self: Tracer, func: Callable[..., Any], types: Any, args: Any,
                    kwargs: Any) -> Any:
    return array_function(func, types, args, kwargs)


TRACER_METHODS["array_ufunc"] = _array_ufunc
TRACER_METHODS["array_function"] = _array_function
