"""Traced values never enter a dask graph as data.

A helper that takes its namespace from a plain dask array and is then differentiated,

    xp = array_namespace(q)                          # array_api_compat.dask.array
    force = unijax.grad(lambda q: xp.sum(q * q))(q)  # xp.sum sees a traced value

hands the engine's traced value to a dask function. Dask accepts any object with a shape
and a dtype as an array: it would wrap the traced value as a constant chunk of a new
graph, and the derivative through it would silently be zero. So, once the dask backend
is loaded (any unijax call on dask arrays loads it, before user code runs):

* every function of ``array_api_compat.dask.array`` (and of its ``linalg`` and ``fft``)
  that is given a traced value calls the same function of the traced value's own
  namespace (``array_namespace(traced)``), which records it: the helper above is
  differentiated correctly. A dask-only function (``map_blocks``) has none, and raises
  :class:`unijax.errors.ConcretizationError`;
* ``dask.array.from_array`` (through which ``da.asarray``, ``da.sum`` and the rest of
  ``dask.array`` turn an argument into a dask array) refuses a traced value with the
  same error.

Both are wrappers installed once, in place; a call without traced values pays one loop
over its arguments.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from unijax.errors import ConcretizationError, message

__all__ = ["is_tracer", "is_tracer_routing", "route_tracers"]

#: Set on the wrappers installed here, so that installing twice wraps nothing twice.
_MARK = "__unijax_routes_tracers__"


def is_tracer(a: Any) -> bool:
    """Whether ``a`` is one of unijax's traced values (recognised by its type's marker)."""
    return getattr(type(a), "__unijax_tracer__", False) is True


def is_tracer_routing(fn: Any) -> bool:
    """Whether ``fn`` is a wrapper installed by :func:`route_tracers`."""
    return getattr(fn, _MARK, False) is True


def _first_tracer(args: Any, kwargs: dict[str, Any]) -> Any:
    for a in (*args, *kwargs.values()):
        tp = type(a)
        if tp is list or tp is tuple:
            for item in a:
                if is_tracer(item):
                    return item
        elif is_tracer(a):
            return a
    return None


def _refuse(api: str) -> ConcretizationError:
    return ConcretizationError(message(
        f"{api} was given a traced array: it would enter a dask task graph as a constant "
        "chunk, and the derivative (or batch axis) through it would be silently lost",
        fix="Take the namespace from the traced value inside the transformed function "
            "(xp = array_namespace(x) there), and use the Array API functions of that "
            "namespace rather than dask-only ones."))


def _routing(fn: Callable[..., Any], path: tuple[str, ...], api: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def routed(*args: Any, **kwargs: Any) -> Any:
        tracer = _first_tracer(args, kwargs)
        if tracer is None:
            return fn(*args, **kwargs)
        target: Any = tracer.__array_namespace__()
        try:
            for name in path:
                target = getattr(target, name)
        except AttributeError:
            raise _refuse(api) from None
        return target(*args, **kwargs)

    setattr(routed, _MARK, True)
    return routed


def _route_module(module: types.ModuleType, prefix: tuple[str, ...]) -> None:
    for name, value in list(vars(module).items()):
        if name.startswith("__") or isinstance(value, type | types.ModuleType) \
                or not callable(value) or getattr(value, _MARK, False):
            continue
        setattr(module, name, _routing(value, (*prefix, name),
                                       f"{module.__name__}.{name}"))


def _refusing(fn: Callable[..., Any], api: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def refusing(x: Any, *args: Any, **kwargs: Any) -> Any:
        if is_tracer(x):
            raise _refuse(api)
        return fn(x, *args, **kwargs)

    setattr(refusing, _MARK, True)
    return refusing


def route_tracers(namespace: types.ModuleType, extensions: tuple[str, ...]) -> None:
    """Install the wrappers described in the module docstring (idempotent).

    Args:
        namespace: ``array_api_compat.dask.array``, changed in place.
        extensions: The names of its extension submodules to change too.
    """
    import dask.array as da
    import dask.array.core as core

    _route_module(namespace, ())
    for ext in extensions:
        _route_module(getattr(namespace, ext), (ext,))
    if not getattr(core.from_array, _MARK, False):
        # dask.array.core's own callers (asarray, asanyarray) look the name up there.
        core.from_array = da.from_array = _refusing(core.from_array,
                                                    "dask.array.from_array")
