"""array_api_strict's functions refuse traced values with unijax's error.

A helper that takes its namespace from a plain array and is then differentiated,

    xp = array_namespace(q)                          # array_api_strict itself
    force = unijax.grad(lambda q: xp.sum(q * q))(q)  # xp.sum sees a traced value

hands the engine's traced value to a function of array-api-strict. NumPy and dask route
such a call to the traced value's namespace (through NumPy's dispatch protocols, and the
dask plugin's wrappers). array-api-strict does not, on purpose: it accepts only its own
arrays so that code relying on anything beyond the standard fails on it, and a captured
namespace applied to another library's values is such code (CuPy, for one, cannot run
it). Its own errors (``TypeError: Only Array objects are allowed``, ``AttributeError:
_array``) do not say so; once the backend is loaded, every function of the module (and of
its ``linalg`` and ``fft``) given a traced value raises
:class:`unijax.errors.ConcretizationError` instead, naming the function and the fix. A
call without traced values pays one loop over its arguments.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from unijax.errors import ConcretizationError, message

__all__ = ["refuse_tracers"]

#: Set on the wrappers installed here, so that installing twice wraps nothing twice.
_MARK = "__unijax_refuses_tracers__"


def _has_tracer(values: Any) -> bool:
    for a in values:
        tp = type(a)
        if tp is list or tp is tuple:
            if _has_tracer(a):
                return True
        elif getattr(tp, "__unijax_tracer__", False) is True:
            return True
    return False


def _refusing(fn: Callable[..., Any], api: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def refusing(*args: Any, **kwargs: Any) -> Any:
        if _has_tracer(args) or (kwargs and _has_tracer(kwargs.values())):
            raise ConcretizationError(message(
                f"{api}() was given a traced array: array-api-strict accepts only its own "
                "arrays, by design, so a namespace taken from a plain array outside a "
                "transform (and captured by a function that a transform then traces) cannot "
                "compute on that transform's values",
                fix="Take the namespace from the arguments of the function being "
                    "transformed, xp = array_namespace(x) inside it (rule 1 of the guide "
                    "for library authors)."))
        return fn(*args, **kwargs)

    setattr(refusing, _MARK, True)
    return refusing


def _wrap_module(module: types.ModuleType) -> None:
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name, None)
        if isinstance(value, types.FunctionType) and not getattr(value, _MARK, False):
            setattr(module, name, _refusing(value, f"{module.__name__}.{name}"))


def refuse_tracers(namespace: types.ModuleType) -> None:
    """Install the wrappers described in the module docstring (idempotent).

    Args:
        namespace: The ``array_api_strict`` module, changed in place.
    """
    _wrap_module(namespace)
    for ext in ("linalg", "fft"):
        sub = getattr(namespace, ext, None)
        if isinstance(sub, types.ModuleType):
            _wrap_module(sub)
