"""The traced namespace: what ``array_namespace(tracer)`` returns.

It is a complete Array API namespace whose array functions ``bind`` primitives, so code
written as ``xp = array_namespace(x); xp.sin(x)`` is traced unchanged. Dtypes, constants
and the results of functions that make arrays from Python data come from the concrete
backend namespace underneath the tracers, so dtype semantics are exactly the backend's.

A traced namespace belongs to one trace. Arrays it makes from Python data (``zeros``,
``arange``, ``asarray`` of a list) are constants *of that trace*, not bare backend arrays:
``array_namespace(tracer, made)`` then sees one namespace, ``made[i] = tracer`` and
``made / tracer`` work, and a library whose operators refuse foreign operands
(array-api-strict) never meets a tracer on its right. Namespaces of different traces over
one backend compare equal and share ``__name__``, which is how ``array_namespace`` tells
namespaces apart, so mixing values of nested transforms stays legal.

Keeping this cheap matters on the eager path: each backend gets its own subclass, and a
function looked up once is stored on that class, so a namespace made for a new trace
finds every function already there. Only the creation functions are bound per instance.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from unijax.engine.core import (
    API_FUNCTIONS,
    CREATION_FUNCTIONS,
    TRACER_METHODS,
    Trace,
    Tracer,
    base_value,
    escaped_tracer_error,
    is_array,
    namespace_for_args,
)

__all__ = ["TracedNamespace", "array_functions", "traced_namespace"]

#: Functions of the standard that make arrays from Python data and that unijax runs on
#: the backend's own namespace as they are (their results become constants of the trace).
_BASE_CREATION = frozenset({"arange", "empty", "eye", "full", "linspace", "ones", "zeros"})
#: Names the standard defines that are not functions of arrays: the backend's own.
_BASE_NAMES = frozenset({
    "e", "inf", "nan", "pi", "newaxis", "broadcast_shapes",
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
})
_EXTENSIONS = ("linalg", "fft", "special")
#: Capabilities that no transform with static shapes (vmap, jit) can honour.
_DATA_DEPENDENT = ("boolean indexing", "data-dependent shapes")


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


class _Info:
    """``__array_namespace_info__()`` of a traced namespace: the backend's, made truthful
    about what its trace allows, with the standard's return types."""

    def __init__(self, base_info: Any, static_shapes: bool) -> None:
        self._base = base_info
        self._static_shapes = static_shapes

    def capabilities(self) -> dict[str, Any]:
        caps = dict(self._base.capabilities())
        if self._static_shapes:
            caps.update(dict.fromkeys(_DATA_DEPENDENT, False))
        return caps

    def devices(self) -> list[Any]:
        return list(self._base.devices())

    def default_device(self) -> Any:
        return self._base.default_device()

    def default_dtypes(self, *, device: Any = None) -> dict[str, Any]:
        return self._base.default_dtypes(device=device)

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, Any]:
        return self._base.dtypes(device=device, kind=kind)


class _Extension:
    """The ``linalg``, ``fft`` or ``special`` extension of a traced namespace."""

    def __init__(self, base: Any, trace: Trace | None, prefix: str) -> None:
        # Not the namespace itself: a namespace <-> extension cycle would keep the trace,
        # and so its whole tape, alive until the cyclic garbage collector runs.
        self._base = base
        self._trace = trace
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        fn = _lookup(self._base, self._trace, f"{self._prefix}.{name}")
        if fn is None:
            raise AttributeError(
                f"the traced namespace's {self._prefix} extension has no function {name!r}")
        setattr(self, name, fn)
        return fn

    def __dir__(self) -> list[str]:
        prefix = self._prefix + "."
        return sorted(k[len(prefix):] for k in (*API_FUNCTIONS, *CREATION_FUNCTIONS)
                      if k.startswith(prefix))


class TracedNamespace:
    """An Array API namespace over tracers of ``trace``, backed by a concrete ``base``.

    Args:
        base: The backend's Array-API namespace.
        trace: The trace whose tracers it serves; ``None`` for the namespace that runs the
            engine's functions on concrete arrays (its creation functions return them).
        static_shapes: Whether its trace (or one it is nested in) needs every result shape
            to follow from input shapes alone (``vmap``, ``jit``).

    Example:
        A weight vector made inside the function is a constant of the trace:

        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def weighted(x):
        ...     xp = array_namespace(x)
        ...     weights = xp.asarray([1.0, 2.0])
        ...     return xp.sum(weights * xp.sin(x))
        >>> unijax.grad(weighted)(np.zeros(2))
        array([1., 2.])
    """

    __array_api_version__ = "2024.12"
    _base: Any

    def __new__(cls, base: Any, trace: Trace | None = None,
                static_shapes: bool = False) -> TracedNamespace:
        return object.__new__(_class_for(base))

    def __init__(self, base: Any, trace: Trace | None = None,
                 static_shapes: bool = False) -> None:
        self._trace = trace
        self._static_shapes = static_shapes

    # -- lookup --

    def __getattr__(self, name: str) -> Any:
        if name in _EXTENSIONS:
            ext = _Extension(self._base, self._trace, name)
            setattr(self, name, ext)
            return ext
        if name == "__array_namespace_info__":
            info = _Info(self._base.__array_namespace_info__(), self._static_shapes)
            return lambda: info
        if name.startswith("__"):
            raise AttributeError(name)
        fn = _lookup(self._base, self._trace, name)
        if fn is not None:
            if name in API_FUNCTIONS:
                # The same for every trace: kept on the backend's class, found directly
                # by every later namespace of that backend.
                setattr(type(self), name, staticmethod(fn))
            else:
                setattr(self, name, fn)
            return fn
        if name in _BASE_NAMES:
            value = getattr(self._base, name)
            setattr(type(self), name, value)
            return value
        # Anything else the backend has is not part of the standard, or has no traced
        # version yet: absent, so that feature detection (hasattr) takes its fallback.
        raise AttributeError(f"the traced namespace has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        names = {k for k in (*API_FUNCTIONS, *CREATION_FUNCTIONS) if "." not in k}
        return sorted(names | _BASE_CREATION | _BASE_NAMES | set(_EXTENSIONS)
                      | {"__array_api_version__", "__array_namespace_info__"})

    # -- identity: one namespace per backend, whatever the trace --

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TracedNamespace) and other._base is self._base

    def __hash__(self) -> int:
        return hash(id(self._base))

    def __repr__(self) -> str:
        return f"<unijax traced namespace over {getattr(self._base, '__name__', self._base)}>"


def _lookup(base: Any, trace: Trace | None, qualname: str) -> Any:
    """The function ``qualname`` of the traced namespace over ``base`` for ``trace``."""
    fn = API_FUNCTIONS.get(qualname)
    if fn is not None:
        return fn
    creation = CREATION_FUNCTIONS.get(qualname)
    if creation is not None:
        make = functools.partial(creation, base)
        return _creator(make, creation, True, trace, qualname)
    if qualname in _BASE_CREATION:
        base_fn = getattr(base, qualname)
        return _creator(base_fn, base_fn, False, trace, qualname)
    return None


#: Signatures shown by creation functions, by the function they show (computed once).
_SIGNATURES: dict[Any, Any] = {}


def _signature_of(shown: Any, drop_first: bool) -> Any:
    key = (shown, drop_first)
    if key not in _SIGNATURES:
        try:
            signature = inspect.signature(shown)
        except (TypeError, ValueError):  # some builtins have none
            signature = None
        if signature is not None and drop_first:
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        _SIGNATURES[key] = signature
    return _SIGNATURES[key]


def _creator(make: Any, shown: Any, drop_first: bool, trace: Trace | None,
             qualname: str) -> Any:
    """``make`` with the arrays it returns made constants of ``trace``, showing ``shown``'s
    signature (without the namespace parameter of a creation rule)."""
    if trace is None:
        return make

    def create(*args: Any, **kwargs: Any) -> Any:
        out = make(*args, **kwargs)
        # Only arrays become constants: finfo, dtypes and flags are returned as is.
        if not is_array(out) or (isinstance(out, Tracer) and out._trace.level >= trace.level):
            return out
        if trace.finished:
            raise escaped_tracer_error(trace)
        return trace.pure(out)

    create.__name__ = create.__qualname__ = qualname.rpartition(".")[2]
    create.__doc__ = getattr(shown, "__doc__", None)
    signature = _signature_of(shown, drop_first)
    if signature is not None:
        create.__signature__ = signature  # type: ignore[attr-defined]
    return create


_CLASSES: dict[int, type[TracedNamespace]] = {}


def _class_for(base: Any) -> type[TracedNamespace]:
    cls = _CLASSES.get(id(base))
    if cls is None:
        base_name = getattr(base, "__name__", type(base).__name__)
        cls = _CLASSES[id(base)] = type(TracedNamespace.__name__, (TracedNamespace,), {
            "_base": base,
            # array_api_compat tells namespaces apart by __name__.
            "__name__": f"unijax.traced({base_name})",
            "__module__": __name__,
        })
    return cls


def _static_shapes(tracer: Any) -> bool:
    value = tracer
    while isinstance(value, Tracer):
        if not value._trace.data_dependent_shapes:
            return True
        value = value._primal()
    return False


def traced_namespace(tracer: Any) -> TracedNamespace:
    """The traced namespace of ``tracer``'s trace over the backend of its concrete value."""
    trace = tracer._trace
    base = namespace_for_args((base_value(tracer),))
    spaces = trace.namespaces
    if spaces is None:
        spaces = trace.namespaces = {}
    ns = spaces.get(id(base))
    if ns is None:
        ns = spaces[id(base)] = TracedNamespace(base, trace, _static_shapes(tracer))
    return ns


TRACER_METHODS["namespace"] = traced_namespace
