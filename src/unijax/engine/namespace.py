"""The traced namespace: what ``array_namespace(tracer)`` returns.

It is a complete Array API namespace whose array functions ``bind`` primitives, so code
written as ``xp = array_namespace(x); xp.sin(x)`` is traced unchanged. Functions that
make new arrays from Python data (``zeros``, ``arange``, ``asarray`` of a list) need no
tracing: they run on the concrete backend namespace underneath the tracers, and dtypes,
constants and ``finfo``/``iinfo`` come from there too, so dtype semantics are exactly the
backend's.
"""

from __future__ import annotations

import functools
from typing import Any

from unijax.engine.core import API_FUNCTIONS, CREATION_FUNCTIONS, TRACER_METHODS, namespace_for_args

__all__ = ["TracedNamespace", "array_functions", "traced_namespace"]


class _ArrayFunctions:
    """Attribute access to every registered array function (used by rules and tracers)."""

    def __getattr__(self, name: str) -> Any:
        try:
            fn = API_FUNCTIONS[name]
        except KeyError:
            raise AttributeError(f"unijax has no traced array function {name!r}") from None
        setattr(self, name, fn)
        return fn


array_functions: Any = _ArrayFunctions()


class _SubNamespace:
    """The ``linalg`` or ``fft`` extension of a traced namespace."""

    def __init__(self, parent: TracedNamespace, prefix: str) -> None:
        self._parent = parent
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        fn = self._parent._lookup(f"{self._prefix}.{name}", None)
        if fn is None:
            base = getattr(self._parent._base, self._prefix)
            fn = getattr(base, name)
        setattr(self, name, fn)
        return fn

    def __dir__(self) -> list[str]:
        prefix = self._prefix + "."
        names = {k[len(prefix):] for k in (*API_FUNCTIONS, *CREATION_FUNCTIONS)
                 if k.startswith(prefix)}
        return sorted(names)


class TracedNamespace:
    """An Array API namespace over tracers, backed by a concrete namespace ``base``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def f(x):
        ...     xp = array_namespace(x)
        ...     return xp.sum(xp.sin(x) ** 2)
        >>> g = unijax.grad(f)(np.asarray([0.5, 1.0]))
        >>> bool(np.allclose(g, np.sin(2 * np.asarray([0.5, 1.0]))))
        True
    """

    __array_api_version__ = "2024.12"

    def __init__(self, base: Any) -> None:
        self._base = base
        # array_api_compat tells namespaces apart by __name__.
        self.__name__ = f"unijax.traced({getattr(base, '__name__', type(base).__name__)})"
        self.linalg = _SubNamespace(self, "linalg")
        self.fft = _SubNamespace(self, "fft")

    def _lookup(self, qualname: str, default: Any) -> Any:
        fn = API_FUNCTIONS.get(qualname)
        if fn is not None:
            return fn
        creation = CREATION_FUNCTIONS.get(qualname)
        if creation is not None:
            return functools.partial(creation, self._base)
        return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__array_namespace_info__":
            raise AttributeError(name)
        fn = self._lookup(name, None)
        if fn is None:
            # dtypes, constants, finfo/iinfo/isdtype: the backend's own.
            fn = getattr(self._base, name)
        setattr(self, name, fn)
        return fn

    def __dir__(self) -> list[str]:
        names = {k for k in (*API_FUNCTIONS, *CREATION_FUNCTIONS) if "." not in k}
        return sorted(names | {"linalg", "fft", "__array_api_version__"})

    def __repr__(self) -> str:
        return f"<unijax traced namespace over {getattr(self._base, '__name__', self._base)}>"


_BY_BASE: dict[int, TracedNamespace] = {}


def traced_namespace(value: Any) -> TracedNamespace:
    """The traced namespace for tracers whose concrete values look like ``value``."""
    base = namespace_for_args((value,))
    ns = _BY_BASE.get(id(base))
    if ns is None:
        ns = _BY_BASE[id(base)] = TracedNamespace(base)
    return ns


TRACER_METHODS["namespace"] = traced_namespace
