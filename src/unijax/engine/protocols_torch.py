"""torch's ``__torch_function__`` on tracers (see ``protocols``).

Under an engine transform over torch tensors (``jit``, or ``grad`` inside a function that
``torch.func`` does not see), code that calls ``torch.sin(x)`` hands torch a tracer; torch
asks the tracer's ``__torch_function__``, which calls the traced namespace's function of
the standard's name, with torch's ``dim``/``keepdim`` as the standard's ``axis``/
``keepdims``. torch functions with no counterpart raise
:class:`~unijax.errors.ConcretizationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unijax.engine.core import API_FUNCTIONS, TRACER_METHODS, Tracer
from unijax.engine.protocols import (
    constant_values,
    namespace_of,
    refuse,
    refuse_argument,
    refuse_out,
)

__all__ = ["SAME_NAMES", "torch_function"]

#: torch names that are the standard's (after ``linalg_``/``special_`` become ``linalg.``).
SAME_NAMES = frozenset({
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "conj",
    "copysign", "cos", "cosh", "exp", "expm1", "floor", "floor_divide", "hypot", "imag",
    "isfinite", "isinf", "isnan", "log", "log10", "log1p", "log2", "logaddexp",
    "logical_and", "logical_not", "logical_or", "logical_xor", "maximum", "minimum",
    "multiply", "negative", "nextafter", "positive", "pow", "real", "reciprocal",
    "remainder", "sign", "signbit", "sin", "sinh", "sqrt", "square", "subtract", "tan",
    "tanh", "trunc", "matmul", "bitwise_and", "bitwise_or", "bitwise_xor", "equal",
    "not_equal", "less", "less_equal", "greater", "greater_equal", "where", "divide",
    "add", "linalg.solve", "linalg.inv", "linalg.det", "linalg.slogdet", "linalg.eigvalsh",
    "linalg.svdvals", "linalg.matrix_power", "linalg.matrix_transpose",
})
#: torch aliases of the standard's functions.
ALIASES = {
    "absolute": "abs", "arccos": "acos", "arccosh": "acosh", "arcsin": "asin",
    "arcsinh": "asinh", "arctan": "atan", "arctan2": "atan2", "arctanh": "atanh",
    "neg": "negative", "mul": "multiply", "sub": "subtract", "true_divide": "divide",
    "div": "divide", "eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
    "gt": "greater", "ge": "greater_equal", "mm": "matmul", "bmm": "matmul",
    "clamp": "clip", "clip": "clip", "conj_physical": "conj", "bitwise_not": "bitwise_invert",
    "max": "max", "min": "min", "amax": "max", "amin": "min", "sum": "sum", "mean": "mean",
    "prod": "prod",
    "all": "all", "any": "any", "argmax": "argmax", "argmin": "argmin",
    "cumsum": "cumulative_sum", "cumprod": "cumulative_prod", "flip": "flip",
    "roll": "roll", "cat": "concat", "concat": "concat", "concatenate": "concat",
    "stack": "stack", "reshape": "reshape", "view": "reshape", "permute": "permute_dims",
    "unsqueeze": "expand_dims", "squeeze": "squeeze", "round": "round",
    "broadcast_to": "broadcast_to", "tril": "tril", "triu": "triu", "argsort": "argsort",
    "linalg.cholesky": "linalg.cholesky", "linalg.eigh": "linalg.eigh",
    "linalg.qr": "linalg.qr", "linalg.vector_norm": "linalg.vector_norm",
    "linalg.matrix_norm": "linalg.matrix_norm", "linalg.cross": "linalg.cross",
    "inverse": "linalg.inv", "det": "linalg.det", "special.expit": "special.expit",
    "sigmoid": "special.expit", "std": "std", "var": "var", "transpose": "permute_dims",
    "swapaxes": "permute_dims", "dot": "matmul", "inner": "matmul", "outer": "linalg.outer",
    "ger": "linalg.outer",
}
#: torch keyword -> the standard's.
_RENAMED = {"dim": "axis", "dims": "axis", "keepdim": "keepdims", "shifts": "shift",
            "min": "min", "max": "max", "dtype": "dtype", "correction": "correction",
            "ord": "ord", "mode": "mode", "upper": "upper", "n": "n", "stable": "stable",
            "descending": "descending", "diagonal": "k"}
#: torch's parameters after the arrays, for functions whose standard ones are keywords.
_POSITIONAL: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("sum", "prod"), ("dim", "keepdim", "dtype")),
    **dict.fromkeys(("mean", "all", "any", "argmax", "argmin"), ("dim", "keepdim")),
    **dict.fromkeys(("cumulative_sum", "cumulative_prod"), ("dim", "dtype")),
    **dict.fromkeys(("flip", "expand_dims", "linalg.cross"), ("dim",)),
    "argsort": ("dim", "descending"), "roll": ("shifts", "dims"),
    "tril": ("diagonal",), "triu": ("diagonal",),
    "linalg.vector_norm": ("ord", "dim", "keepdim"), "linalg.matrix_norm": ("ord",),
}
#: Python's operators as torch hands them over (``Tensor.__radd__``): name, reflected.
_OPERATORS = {
    "add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
    "floordiv": "floor_divide", "mod": "remainder", "pow": "pow", "matmul": "matmul",
    "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor", "lt": "less",
    "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
    "ne": "not_equal", "neg": "negative", "pos": "positive", "abs": "abs",
    "invert": "bitwise_invert",
}


def _standard_name(func: Any) -> tuple[str, str, bool]:
    """(torch's name for messages, the standard's name or "", whether reflected)."""
    name = getattr(func, "__name__", repr(func))
    if name.startswith("__") and name.endswith("__"):
        op = name[2:-2]
        reflected = op.startswith("r") and op[1:] in _OPERATORS
        op = op[1:] if reflected else op
        return f"torch.Tensor.{name}", _OPERATORS.get(op, ""), reflected
    for prefix in ("linalg", "special", "fft"):
        if name.startswith(prefix + "_"):
            name = prefix + "." + name[len(prefix) + 1:]
    std = name if name in SAME_NAMES else ALIASES.get(name, "")
    return f"torch.{name}", std, False


#: torch function -> what ``_standard_name`` says of it (torch hands over the same objects).
_RESOLVED: dict[Any, tuple[str, str, bool]] = {}


def torch_function(func: Callable[..., Any], types: Any, args: Any,
                   kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)`` for a torch function given a tracer."""
    if not all(issubclass(t, Tracer) or getattr(t, "__module__", "").startswith("torch")
               for t in types):
        return NotImplemented
    resolved = _RESOLVED.get(func)
    if resolved is None:
        resolved = _RESOLVED[func] = _standard_name(func)
    api, std, reflected = resolved
    if not kwargs and not reflected:  # the common case: the standard's function as it is
        fn = API_FUNCTIONS.get(std)
        if fn is not None and std not in _SPECIAL and std not in _POSITIONAL:
            return fn(*args)
    if not std:
        # A known constant of every transform may be handed over, as NumPy may convert it.
        values = constant_values((args, tuple(kwargs.values())))
        if values is None:
            raise refuse(api, "Use the Array API function of the namespace instead of this "
                              "torch function.")
        return func(*values[0], **dict(zip(kwargs, values[1], strict=True)))
    args = list(args)
    if reflected:
        args = args[::-1]
    kwargs = dict(kwargs)
    if kwargs.pop("out", None) is not None:
        raise refuse_out(api)
    if "input" in kwargs:
        args.insert(0, kwargs.pop("input"))
    if "other" in kwargs:
        args.insert(1, kwargs.pop("other"))
    ns = namespace_of((*args, *kwargs.values()))
    special = _SPECIAL.get(std)
    if special is not None:
        return special(ns, api, std, args, kwargs)
    names = _POSITIONAL.get(std)
    if names is not None:
        arrays = 2 if std == "linalg.cross" else 1
        for key, value in zip(names, args[arrays:], strict=False):
            kwargs[key] = value
        args = args[:arrays]
    params = {}
    for key, value in kwargs.items():
        if key not in _RENAMED:
            raise refuse_argument(api, key, value)
        params[_RENAMED[key]] = value
    if "axis" in params and type(params["axis"]) is list:
        params["axis"] = tuple(params["axis"])
    return _call(ns, std)(*args, **params)


def _call(ns: Any, std: str) -> Any:
    home, _, name = std.rpartition(".")
    return getattr(getattr(ns, home) if home else ns, name)


def _alpha(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    alpha = kwargs.pop("alpha", 1)
    rounding = kwargs.pop("rounding_mode", None)
    if kwargs:
        key = next(iter(kwargs))
        raise refuse_argument(api, key, kwargs[key])
    a, b = args
    if alpha != 1:
        b = b * alpha
    if std == "divide" and rounding == "floor":
        return ns.floor_divide(a, b)
    out = _call(ns, std)(a, b)
    return ns.trunc(out) if rounding == "trunc" else out


def _permute(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    x, *rest = args
    if api.endswith(("transpose", "swapaxes")):
        dims: list[Any] = [*rest, *kwargs.values()]
        d0, d1 = dims
        order = list(range(x.ndim))
        order[d0], order[d1] = order[d1], order[d0]
        return ns.permute_dims(x, tuple(order))
    order = rest[0] if len(rest) == 1 and type(rest[0]) in (list, tuple) else rest
    return ns.permute_dims(x, tuple(kwargs.get("dims", order)))


def _reshape(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    x, *rest = args
    shape = rest[0] if len(rest) == 1 and type(rest[0]) in (list, tuple) else rest
    return ns.reshape(x, tuple(kwargs.get("shape", shape)))


def _squeeze(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    x, *rest = args
    dim = kwargs.get("dim", rest[0] if rest else None)
    dims = range(x.ndim) if dim is None else (dim,) if type(dim) is int else dim
    # torch leaves the dimensions of another size than 1 alone; the standard raises.
    return ns.squeeze(x, axis=tuple(d for d in dims if x.shape[d] == 1))


def _extreme(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    # torch.max(x) is a reduction, torch.max(x, y) elementwise, torch.max(x, dim) a pair.
    if len(args) == 2 and (isinstance(args[1], Tracer) or hasattr(args[1], "shape")):
        return (ns.maximum if std == "max" else ns.minimum)(*args)
    if (len(args) > 1 or "dim" in kwargs) and not api.endswith(("amax", "amin")):
        raise refuse(api, f"torch.{std}(x, dim) returns values and indices: use "
                          f"xp.{std}(x, axis=dim) and xp.arg{std}(x, axis=dim).")
    x, *rest = args
    axis = kwargs.get("dim", rest[0] if rest else None)
    keepdims = kwargs.get("keepdim", rest[1] if len(rest) > 1 else False)
    return getattr(ns, std)(x, axis=tuple(axis) if type(axis) is list else axis,
                            keepdims=keepdims)


def _spread(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    # torch.std(x, unbiased), torch.std(x, dim, unbiased, keepdim), torch.std(x, dim, *, ...)
    x, *rest = args
    if rest and type(rest[0]) is bool:
        rest = [None, *rest]
    positional = dict(zip(("dim", "unbiased", "keepdim"), rest, strict=False))
    kwargs = {**positional, **kwargs}
    unbiased = kwargs.pop("unbiased", True)
    correction = kwargs.pop("correction", 1 if unbiased else 0)
    axis = kwargs.pop("dim", None)
    keepdims = kwargs.pop("keepdim", False)
    if kwargs:
        key = next(iter(kwargs))
        raise refuse_argument(api, key, kwargs[key])
    return getattr(ns, std)(x, axis=tuple(axis) if type(axis) is list else axis,
                            keepdims=keepdims, correction=correction)


def _sequence(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    tensors, *rest = args
    axis = kwargs.get("dim", rest[0] if rest else 0)
    return getattr(ns, std)(list(tensors), axis=axis)


def _product(ns: Any, api: str, std: str, args: Any, kwargs: Any) -> Any:
    a, b = args
    if api.endswith("inner") and (a.ndim > 1 or b.ndim > 1):
        return ns.tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))
    return _call(ns, std)(a, b)


_SPECIAL: dict[str, Callable[..., Any]] = {
    "add": _alpha, "subtract": _alpha, "divide": _alpha, "permute_dims": _permute,
    "reshape": _reshape, "squeeze": _squeeze, "max": _extreme, "min": _extreme,
    "std": _spread, "var": _spread, "concat": _sequence, "stack": _sequence,
    "matmul": _product,
}


def _torch_function(func: Callable[..., Any], types: Any, args: Any, kwargs: Any) -> Any:
    return torch_function(func, types, args, kwargs or {})


TRACER_METHODS["torch_function"] = _torch_function
