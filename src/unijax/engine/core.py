"""The engine's core: primitives, traces, tracers and ``bind``.

A :class:`Primitive` is one function of the Array API standard (its ``name`` is the
standard's name, so a backend's implementation is ``getattr(xp, prim.name)``). Calling
``prim.bind(*args, **params)`` either evaluates it on concrete arrays or hands it to the
innermost active transform (a :class:`Trace`), found from the :class:`Tracer` arguments.

Traces are ordered by ``level``: a trace created later is nested inside every trace that
is still alive, so a global counter gives the nesting order without a stack, and threads
never share a trace because tracers only reach the trace that made them.

Array data is positional and metadata keyword-only (``params``) throughout, so rules,
the IR and generated code all see one calling convention.

The core is the bottom of the engine and imports nothing above it. What a tracer needs
from higher modules comes through tables those modules fill when they are imported:
:data:`API_FUNCTIONS` (the traced array functions behind the operators, filled by the
rule modules), :data:`TRACER_METHODS` (indexing and the traced namespace) and the
namespace source (:func:`set_namespace_source`, which the dispatcher installs so that a
backend plugin decides which namespace computes on its arrays).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from unijax._dtypes import is_inexact
from unijax.errors import (
    BatchingError,
    ConcretizationError,
    DeviceTransferError,
    NonStandardAttributeError,
    ShapeError,
    UnexpectedTracerError,
    UnsupportedTransformError,
    message,
)

__all__ = [
    "API_FUNCTIONS",
    "CREATION_FUNCTIONS",
    "PRIMITIVES",
    "TRACER_METHODS",
    "Primitive",
    "Trace",
    "Tracer",
    "bind",
    "namespace_for_value",
    "set_namespace_source",
]

SCALAR_TYPES: frozenset[type] = frozenset({bool, int, float, complex})


#: Types :func:`builtin_scalar` returns unchanged: the builtin scalars and ``None``, then
#: each array and tracer type as it is first met, so the common case is one set lookup
#: (which the traced functions write inline on their hot path).
PLAIN_TYPES: set[type] = {bool, int, float, complex, type(None)}


def builtin_scalar(value: Any) -> Any:
    """``value``, or the builtin number it stands for if it is an instance of a subclass.

    An ``IntEnum`` member or an instance of ``class MyFloat(float)`` is the number it
    holds, but the engine and some backends (array-api-strict) recognise Python scalars
    by their exact type; transforms and traced functions convert such values where they
    enter. NumPy's ``float64`` subclasses ``float`` but is an array scalar with a dtype:
    values with a ``shape`` are kept.

    Example:
        >>> import enum
        >>> class Level(enum.IntEnum):
        ...     HIGH = 3
        >>> type(builtin_scalar(Level.HIGH)).__name__
        'int'
    """
    tp = type(value)
    if tp in PLAIN_TYPES:
        return value
    if hasattr(value, "shape"):
        PLAIN_TYPES.add(tp)
        return value
    if isinstance(value, int):  # bool cannot be subclassed: its instances are exact
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, complex):
        return complex(value)
    return value


#: Every primitive by qualified name (``"sin"``, ``"linalg.solve"``), for introspection.
PRIMITIVES: dict[str, Primitive] = {}

#: Traced-namespace functions by qualified name (``"sin"``, ``"linalg.solve"``); they take
#: arrays and tracers alike. Filled by the rule modules through ``registry.def_api``.
API_FUNCTIONS: dict[str, Callable[..., Any]] = {}
#: Functions that need the concrete namespace: ``fn(xp, *args, **kwargs)`` (``zeros``).
CREATION_FUNCTIONS: dict[str, Callable[..., Any]] = {}
#: The array object's methods implemented above the core: ``"getitem"``, ``"setitem"``
#: (``engine.rules.indexing``), ``"namespace"`` (``engine.namespace``) and NumPy's and
#: torch's dispatch protocols (``engine.protocols_numpy``, ``engine.protocols_torch``).
TRACER_METHODS: dict[str, Callable[..., Any]] = {}

_level_counter = itertools.count(1)
# Per thread, the traces created and not yet finished (see ``tracing``). Weak: a trace
# nobody refers to any more (one made and dropped without running) does not count.
_open_traces = threading.local()


def _open() -> weakref.WeakSet[Trace]:
    traces = getattr(_open_traces, "traces", None)
    if traces is None:
        traces = _open_traces.traces = weakref.WeakSet()
    return traces


def tracing() -> bool:
    """Whether a transform is running in this thread (a trace exists and is unfinished).

    Control flow uses it to run plainly on concrete values outside every transform.
    Traces hidden by :func:`outside_traces` do not count.
    """
    floor = getattr(_open_traces, "floor", 0)
    return any(t.level > floor for t in _open())


@contextlib.contextmanager
def outside_traces() -> Iterator[None]:
    """Run code as if none of the traces open now were running.

    An interpreter applies a custom rule's functions to the values one level down, which
    inside an eager ``grad`` are plain arrays: for that code the values are concrete, as
    outside every transform, and control flow may run as Python loops over them.
    Transforms started inside still count.
    """
    previous = getattr(_open_traces, "floor", 0)
    # Every trace open now has a lower level than the counter's next value.
    _open_traces.floor = next(_level_counter)
    try:
        yield
    finally:
        _open_traces.floor = previous


class Primitive:
    """One operation of the Array API standard, as the engine sees it.

    Args:
        name: The function's name in the standard (``"sin"``, ``"matmul"``).
        namespace: ``""`` for the main namespace, ``"linalg"`` or ``"fft"`` for extensions.
        multiple_results: Whether the function returns a tuple of arrays.
        impl: Optional ``impl(xp, *args, **params)``; by default the backend namespace's
            function of the same name is called.

    Example:
        >>> from unijax.engine.core import Primitive
        >>> p = Primitive("my_doc_example_op")
        >>> p
        Primitive('my_doc_example_op')
    """

    __slots__ = ("_impl_by_type", "_impls", "custom_impl", "multiple_results", "name", "namespace",
                 "qualname")

    def __init__(
        self,
        name: str,
        *,
        namespace: str = "",
        multiple_results: bool = False,
        impl: Callable[..., Any] | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.qualname = f"{namespace}.{name}" if namespace else name
        self.multiple_results = multiple_results
        self.custom_impl = impl
        self._impls: dict[int, Callable[..., Any]] = {}
        # type of the first operand -> implementation, for operands whose first one is an
        # array (its type alone decides the namespace): one lookup on the eager path.
        self._impl_by_type: dict[type, Callable[..., Any]] = {}
        PRIMITIVES[self.qualname] = self

    def bind(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive under the innermost active transform (or evaluate it)."""
        return bind(self, args, params)

    def def_impl(self, impl: Callable[..., Any]) -> Callable[..., Any]:
        """Set ``impl(xp, *args, **params)``, the evaluation on concrete arrays."""
        self.custom_impl = impl
        self._impls.clear()
        self._impl_by_type.clear()
        return impl

    def impl_for(self, xp: Any) -> Callable[..., Any]:
        """The callable that evaluates this primitive with namespace ``xp`` (cached)."""
        # Keyed by id: namespaces live for the whole process, and some are unhashable.
        fn = self._impls.get(id(xp))
        if fn is None:
            if self.custom_impl is not None:
                custom = self.custom_impl

                def fn(*args: Any, **params: Any) -> Any:
                    return custom(xp, *args, **params)

            else:
                home = getattr(xp, self.namespace) if self.namespace else xp
                fn = getattr(home, self.name)
            self._impls[id(xp)] = fn
        return fn

    def __repr__(self) -> str:
        return f"Primitive({self.qualname!r})"


class Trace:
    """One active transform (an interpreter) at a nesting ``level``.

    Subclasses implement :meth:`pure` (wrap a value that does not depend on this trace)
    and :meth:`process` (apply a primitive to this trace's tracers). The transform that
    runs a trace calls :meth:`finish` when the traced function has returned; a tracer of
    a finished trace has escaped it (through a global, a closure or an exception), and
    using it raises :class:`~unijax.errors.UnexpectedTracerError`.
    """

    __slots__ = ("__weakref__", "finished", "level", "namespaces")

    #: Whether result shapes may depend on array values here (False under vmap and jit,
    #: where the program must be valid for every value of the inputs).
    data_dependent_shapes = True
    #: What the transform is called in messages (``"grad"``, ``"vmap"``, ``"jit"``).
    kind = "a transform"

    def __init__(self) -> None:
        self.level = next(_level_counter)
        self.finished = False
        _open().add(self)
        #: This trace's traced namespaces, by base namespace (see ``engine.namespace``).
        self.namespaces: dict[int, Any] | None = None

    def run(self, fun: Callable[[list[Any]], Any], inputs: list[Any]) -> Any:
        """``fun(inputs)`` traced by this trace, which is finished when it returns or raises.

        Raises:
            UnexpectedTracerError: The outputs hold a tracer of another finished trace.
        """
        try:
            outs = fun(inputs)
            check_no_escaped(outs)
            return outs
        finally:
            self.finish()

    def finish(self) -> None:
        """Mark the traced function as returned: its tracers may no longer be used."""
        _open().discard(self)
        self.finished = True
        # Its namespaces refer to the trace: dropping them here lets the trace (and a
        # reverse-mode tape) be freed as soon as nothing else needs it.
        self.namespaces = None

    def pure(self, value: Any) -> Tracer:
        """Wrap a value that is constant with respect to this trace."""
        raise NotImplementedError

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        """Apply ``prim``; ``args`` mix this trace's tracers with lower-level values."""
        raise NotImplementedError

    def process_custom_vjp(self, call: Any, args: tuple[Any, ...]) -> Any:
        """Apply a ``custom_vjp`` function (see :mod:`unijax.custom`)."""
        raise NotImplementedError

    def process_custom_jvp(self, call: Any, args: tuple[Any, ...]) -> Any:
        """Apply a ``custom_jvp`` function (see :mod:`unijax.custom`)."""
        raise NotImplementedError


def top_trace(args: tuple[Any, ...]) -> Trace | None:
    """The innermost trace among the tracers in ``args`` (``None``: all concrete)."""
    top: Trace | None = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if top is None or t.level > top.level:
                top = t
    if top is not None and top.finished:
        raise escaped_tracer_error(top)
    return top


def escaped_tracer_error(trace: Trace) -> UnexpectedTracerError:
    """The error for using a tracer of ``trace`` after its transform finished."""
    return UnexpectedTracerError(message(
        f"a traced value of a {trace.kind} transform was used after that transform had "
        "finished: it escaped the function being transformed (stored in a global or an "
        "outer variable, returned through a closure, or carried out by an exception), and "
        "its value is no longer defined",
        fix="Return the value from the transformed function instead of storing it, or "
            "compute it outside the transform."))


def check_no_escaped(values: Any) -> None:
    """Raise if any of ``values`` is a tracer of a finished trace (outputs of a transform).

    Raises:
        UnexpectedTracerError: A leaked tracer is among ``values``.
    """
    for v in values:
        if isinstance(v, Tracer) and v._trace.finished:
            raise escaped_tracer_error(v._trace)


def bind(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """Apply ``prim`` to ``args``: evaluate on concrete arrays, or defer to the top trace."""
    top: Trace | None = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if top is None or t.level > top.level:
                top = t
    if top is None:
        fn = prim._impl_by_type.get(type(args[0])) if args else None
        if fn is None:
            fn = _impl_for_args(prim, args)
        return fn(*args, **params)
    if top.finished:
        raise escaped_tracer_error(top)
    return top.process(prim, args, params)


def _impl_for_args(prim: Primitive, args: tuple[Any, ...]) -> Callable[..., Any]:
    fn = prim.impl_for(namespace_for_args(args))
    if args and type(args[0]) in _NAMESPACE_BY_TYPE:  # an array: remember by its type
        prim._impl_by_type[type(args[0])] = fn
    return fn


# --- namespaces of concrete values --------------------------------------------------------

_NAMESPACE_BY_TYPE: dict[type, Any] = {}


def _no_registered_type(tp: type) -> Any:
    return None


def _no_default_namespace() -> Any:
    raise TypeError(message(
        "the engine was asked to compute on Python scalars alone, and no default "
        "namespace is installed",
        fix="Pass at least one array, or import unijax (which installs its backends)."))


# (namespace for a type or None, namespace for scalar-only arguments); see
# set_namespace_source. A list, so the hot path reads it without a global statement.
_namespace_source: list[Callable[..., Any]] = [_no_registered_type, _no_default_namespace]


def set_namespace_source(for_type: Callable[[type], Any],
                         default: Callable[[], Any]) -> None:
    """Choose how the engine finds the namespace that computes on concrete values.

    ``for_type(tp)`` returns the namespace for arrays of type ``tp``, or None for a type
    it does not know (then the value's own ``__array_namespace__()`` is used);
    ``default()`` returns the namespace for arguments that are all Python scalars. The
    dispatcher installs the backends' answers; the per-type cache is emptied.

    Example:
        >>> import numpy as np
        >>> import unijax  # installs the backends' answers
        >>> namespace_for_value(np.ones(2)).__name__
        'array_api_compat.numpy'
    """
    _namespace_source[:] = [for_type, default]
    clear_namespace_cache()


def clear_namespace_cache() -> None:
    """Forget the namespace remembered for each type (the backends changed)."""
    _NAMESPACE_BY_TYPE.clear()
    for prim in PRIMITIVES.values():
        prim._impl_by_type.clear()


def namespace_for_value(value: Any) -> Any:
    """The Array-API namespace that evaluates primitives on ``value`` (cached per type)."""
    tp = type(value)
    xp = _NAMESPACE_BY_TYPE.get(tp)
    if xp is None:
        xp = _namespace_source[0](tp)
        if xp is None:
            # Not a registered backend's array: any Array-API object still works.
            namespace = getattr(value, "__array_namespace__", None)
            if namespace is None:
                raise TypeError(
                    message(
                        f"unijax cannot compute on a value of type {tp.__module__}."
                        f"{tp.__qualname__}",
                        expected="an array of an installed backend or a Python scalar",
                        fix="Convert it with unijax.asarray(...) first.",
                    )
                )
            xp = namespace()
        _NAMESPACE_BY_TYPE[tp] = xp
    return xp


def namespace_for_args(args: tuple[Any, ...]) -> Any:
    """The namespace for evaluating on ``args``: the first array's (scalars are skipped)."""
    for a in args:
        tp = type(a)
        xp = _NAMESPACE_BY_TYPE.get(tp)
        if xp is not None:
            return xp
        if tp in SCALAR_TYPES or a is None or type(builtin_scalar(a)) in SCALAR_TYPES:
            continue
        return namespace_for_value(a)
    return _namespace_source[1]()


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array or tracer (not a Python scalar or other object)."""
    return hasattr(x, "shape") and hasattr(x, "dtype")


def device_of(x: Any) -> Any:
    """The device of the array ``x`` (array_api_compat's answer for any library)."""
    # Imported on use: importing unijax loads no array library, array_api_compat included.
    from array_api_compat import device

    return device(x)


def base_value(x: Any) -> Any:
    """The concrete value underneath every layer of tracers."""
    while isinstance(x, Tracer):
        x = x._primal()
    return x


def example_value(x: Any) -> Any:
    """A concrete value with the shape and dtype ``x`` shows to the function it is in.

    Control-flow bodies are staged on concrete values (see ``engine.subprogram``); a
    tracer's example is the value underneath it, less any batch axis ``vmap`` hides.
    """
    return x._example() if isinstance(x, Tracer) else x


# --- tracers ------------------------------------------------------------------------------


class _OnTypeOnly:
    """A class attribute that is ``fn`` when looked up on the class and ``None`` on an
    instance (see ``Tracer.__array_ufunc__``)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        return self.fn if obj is None else None


class Tracer:
    """A value seen by a transform; implements the Array API array object.

    Subclasses store their trace in ``_trace`` and return the value one level down from
    :meth:`_primal`. Shape, dtype and device come from the concrete value underneath,
    except where a transform changes them (``vmap`` hides the mapped axis).
    """

    __slots__ = ("_trace",)
    _trace: Trace
    #: How code outside the engine (backend selection) recognises a tracer's type.
    __unijax_tracer__ = True
    __array_priority__ = 1000

    # NumPy's and torch's dispatch protocols: np.sin(tracer) and torch.sin(tracer) call the
    # traced namespace's function (engine.protocols_numpy, engine.protocols_torch).
    # NumPy looks __array_ufunc__ up on the type (NEP 13) and finds the method; libraries
    # that ask the instance whether it opts out of ufuncs (CuPy's and dask's operators)
    # see None, and so defer ``array * tracer`` to the tracer's reflected operator.
    def _array_ufunc(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return TRACER_METHODS["array_ufunc"](self, ufunc, method, *inputs, **kwargs)

    __array_ufunc__ = _OnTypeOnly(_array_ufunc)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return TRACER_METHODS["array_function"](self, func, types, args, kwargs)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        return TRACER_METHODS["torch_function"](func, types, args, kwargs)

    def _primal(self) -> Any:
        raise NotImplementedError

    def _example(self) -> Any:
        """See :func:`example_value` (overridden where the shape differs from the primal's)."""
        return example_value(self._primal())

    def _concrete(self, what: str) -> Any:
        """The concrete value for ``bool()``/``float()``/..., or a concretization error."""
        if self._trace.finished:
            raise escaped_tracer_error(self._trace)
        return _concrete_of(self._primal(), what)

    def _differentiated(self) -> bool:
        """Whether this value carries a derivative (overridden by the AD tracers)."""
        return False

    def _is_constant(self) -> bool:
        """Whether this value is a constant of its own trace: the same whatever the values
        of the inputs the trace transforms.

        For the AD tracers that is a value without a derivative (its primal may still be
        a tracer of an enclosing transform, which answers for its own level); ``vmap``
        and ``jit`` tracers override it (an unbatched value, a staged constant).
        """
        return not self._differentiated()

    def _number(self, what: str) -> Any:
        """The concrete value for ``float()`` or ``complex()``.

        They make a Python number that stands for the array's value: for a value being
        differentiated that silently cuts its derivative, so it is an error, as in JAX and
        Autograd. ``bool()`` is control flow and ``int()`` a step function, whose derivative
        is zero, so both keep working on concrete values, as in JAX.
        """
        value: Any = self
        while isinstance(value, Tracer):
            if value._differentiated() and is_inexact(value.dtype):
                raise ConcretizationError(message(
                    f"{what}() was called on a value being differentiated "
                    f"({value._trace.kind}): a Python number carries no derivative, so "
                    "the result would silently have none",
                    fix="Keep the value an array (return the 0-d array itself; use "
                        "xp.log instead of math.log), or wrap it in unijax.stop_gradient(x) "
                        "if its derivative is meant to be zero."))
            value = value._primal()
        return self._concrete(what)

    # -- metadata --
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._primal().shape)

    @property
    def dtype(self) -> Any:
        return self._primal().dtype

    @property
    def device(self) -> Any:
        return device_of(base_value(self))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def T(self) -> Any:
        if self.ndim != 2:
            raise ShapeError(
                message("x.T is defined for 2-D arrays only", got=f"ndim={self.ndim}",
                        fix="Use x.mT or xp.permute_dims for other ranks.")
            )
        return API_FUNCTIONS["permute_dims"](self, (1, 0))

    @property
    def mT(self) -> Any:
        return API_FUNCTIONS["matrix_transpose"](self)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: array methods that NumPy and JAX have but
        # the Array API standard does not (x.sum(), x.astype(...), x.reshape(...)).
        if name.startswith("_"):  # probes of private and special names stay cheap
            raise AttributeError(name)
        hint = (f"call xp.{name}(x, ...) with xp = array_namespace(x)"
                if hasattr(self.__array_namespace__(), name)
                else "write it with the namespace's functions")
        raise NonStandardAttributeError(
            message(f"a traced array has no attribute {name!r}: under unijax transforms "
                    "arrays are Array API arrays, which have only the standard's attributes "
                    "(shape, dtype, device, ndim, size, T, mT, to_device and the operators)",
                    fix=f"Instead of x.{name}, {hint}.")
        )

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        return TRACER_METHODS["namespace"](self)

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None,
                   dl_device: Any = None, copy: bool | None = None) -> Any:
        raise _ExportError(message(
            "__dlpack__() (from_dlpack, np.asarray or similar) was called on a traced array "
            "inside a unijax transform: exporting its memory would leave the transform "
            "behind",
            fix="Use the namespace of the input, xp = array_namespace(x), to compute with "
                "it, or export the result after the transformed function returns."))

    def __dlpack_device__(self) -> tuple[Any, int]:
        value = base_value(self)
        device = getattr(value, "__dlpack_device__", None)
        if device is None:
            return (1, 0)  # kDLCPU: a Python scalar underneath
        return tuple(device())

    def to_device(self, device: Any, /, *, stream: Any = None) -> Any:
        if device == self.device:
            return self
        raise DeviceTransferError(
            message("to_device() of a traced array cannot move it to another device",
                    expected=f"device {self.device!r}", got=repr(device),
                    fix="Move the inputs before calling the transformed function.")
        )

    # -- Python conversions --
    def __bool__(self) -> bool:
        return bool(self._concrete("bool"))

    def __float__(self) -> float:
        return float(self._number("float"))

    def __int__(self) -> int:
        return int(self._concrete("int"))

    def __complex__(self) -> complex:
        return complex(self._number("complex"))

    def __index__(self) -> int:
        return operator.index(self._concrete("index"))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """The value as a NumPy array, for a constant of every enclosing transform.

        A value that depends on no input of any transform it is traced by (an argument
        that is not differentiated, an array made inside the function from constants) is
        the same on every call, so NumPy may have it, as JAX gives NumPy its concrete
        values. Anything else raises: its NumPy copy would silently lose the derivative,
        the batch, or the dependence of a compiled program on its inputs. The array is
        read-only unless ``copy=True``: writing to it could change the transform's own
        value.

        Raises:
            ConcretizationError: The value depends on an input of a transform.
        """
        value: Any = self
        while isinstance(value, Tracer):
            if value._trace.finished:
                raise escaped_tracer_error(value._trace)
            if not value._is_constant():
                raise ConcretizationError(message(
                    "A traced array was converted to a NumPy array (np.asarray or "
                    "similar) inside a unijax transform, but its value "
                    f"depends on an input of {value._trace.kind}: the NumPy array would "
                    "silently drop that dependence (the derivative, the batch, or the "
                    "compiled program's input)",
                    fix="Use the namespace of the input, xp = array_namespace(x), instead "
                        "of numpy functions inside transformed code.",
                ))
            value = value._primal()
        # Imported on use: importing unijax loads no array library. NumPy asked for the
        # array, so it is loaded already.
        import numpy as np

        if copy:
            return np.array(value, dtype=dtype, copy=True)
        out = np.asarray(value, dtype=dtype).view()
        out.flags.writeable = False
        return out

    def __repr__(self) -> str:
        shape = ",".join(str(d) for d in self.shape)
        return f"{type(self).__name__}<{self.dtype}[{shape}]>"

    # -- indexing --
    def __getitem__(self, key: Any) -> Any:
        return TRACER_METHODS["getitem"](self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        # Array-API code (SciPy, scikit-learn) writes in place; a tracer is immutable, so
        # the update is functional and this Python object is re-pointed at the result.
        self._assign(TRACER_METHODS["setitem"](self, key, value))

    def _assign(self, new: Any) -> None:
        """Make this tracer stand for ``new`` (used by functional ``__setitem__``)."""
        if not isinstance(new, Tracer) or new._trace.level < self._trace.level:
            new = self._trace.pure(new)
        elif new._trace is not self._trace:
            # x was made outside a transform that the value is traced by (an array of the
            # enclosing function written to inside a vmapped or differentiated one): x
            # would need a batch axis or a derivative that the code outside never sees.
            batched = new._trace.kind == "vmap"
            raise (BatchingError if batched else UnsupportedTransformError)(message(
                "x[...] = value cannot update x in place: x was made outside the "
                f"{new._trace.kind} transform that the value is traced by, so x would "
                + ("vary across its batch outside it" if batched
                   else "hold a value of that transform after it ends"),
                expected="a value traced no deeper than x",
                got=f"a value from a transform nested inside x's ({type(new).__name__})",
                fix="Make x inside the transformed function (xp.zeros(...) there), or "
                    "return the value and write it outside: y = xp.where(mask, value, x)."))
        for slot in _all_slots(type(self)):
            setattr(self, slot, getattr(new, slot))

    # Python's arithmetic operators; bodies are generated below from this table.
    __hash__ = None  # type: ignore[assignment]


class _ExportError(ConcretizationError, BufferError):
    """A tracer cannot export its memory: BufferError, as the standard's ``__dlpack__``
    raises, so that callers which fall back to another conversion do so."""


def _all_slots(cls: type) -> list[str]:
    slots: list[str] = []
    for klass in cls.__mro__:
        slots.extend(getattr(klass, "__slots__", ()))
    return slots


def _concrete_of(value: Any, what: str) -> Any:
    if isinstance(value, Tracer):
        return value._concrete(what)
    if what == "bool" and type(value) not in SCALAR_TYPES and _is_lazy_type(value):
        raise ConcretizationError(message(
            "bool() of a traced value whose array is lazy "
            f"({type(value).__module__}.{type(value).__qualname__}): its truth would "
            "compute the whole graph behind it while the transform traces",
            fix="Select without Python control flow (xp.where, unijax.lax.cond), or compute "
                "the value explicitly outside the transform."))
    return value


_LAZY_BY_TYPE: dict[type, bool] = {}


def _is_lazy_type(value: Any) -> bool:
    """Whether ``value``'s namespace declares its arrays lazy (``__unijax_lazy__``, set by
    backends such as Dask whose ``bool()`` runs the deferred work). Cached per type.

    A traced lazy value refuses ``bool()``: that is also how array_api_compat's
    ``is_lazy_array`` probes an unknown array type, so library code takes its lazy-safe
    path (no data-dependent shapes) on such tracers, as on the arrays themselves.
    """
    tp = type(value)
    lazy = _LAZY_BY_TYPE.get(tp)
    if lazy is None:
        try:
            lazy = bool(getattr(namespace_for_value(value), "__unijax_lazy__", False))
        except TypeError:  # not an array of any namespace: nothing deferred to run
            lazy = False
        _LAZY_BY_TYPE[tp] = lazy
    return lazy


# Operators are the hot path of eager differentiation: each is one frame plus the call.
def _binary(name: str, reflected: bool) -> Callable[[Any, Any], Any]:
    if reflected:

        def method(self: Any, other: Any) -> Any:
            if type(other) not in SCALAR_TYPES and not hasattr(other, "shape"):
                other = builtin_scalar(other)
                if type(other) not in SCALAR_TYPES:
                    return NotImplemented
            return API_FUNCTIONS[name](other, self)

    else:

        def method(self: Any, other: Any) -> Any:
            if type(other) not in SCALAR_TYPES and not hasattr(other, "shape"):
                other = builtin_scalar(other)
                if type(other) not in SCALAR_TYPES:
                    return NotImplemented
            return API_FUNCTIONS[name](self, other)

    return method


def _unary(name: str) -> Callable[[Any], Any]:
    def method(self: Any) -> Any:
        return API_FUNCTIONS[name](self)

    return method


_BINARY_OPERATORS = {
    "add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
    "floordiv": "floor_divide", "mod": "remainder", "pow": "pow", "matmul": "matmul",
    "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
    "lshift": "bitwise_left_shift", "rshift": "bitwise_right_shift",
}
_COMPARISONS = {
    "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
    "eq": "equal", "ne": "not_equal",
}
_UNARY_OPERATORS = {"neg": "negative", "pos": "positive", "abs": "abs", "invert": "bitwise_invert"}

for _op, _fn in _BINARY_OPERATORS.items():
    setattr(Tracer, f"__{_op}__", _binary(_fn, False))
    setattr(Tracer, f"__r{_op}__", _binary(_fn, True))
for _op, _fn in _COMPARISONS.items():
    setattr(Tracer, f"__{_op}__", _binary(_fn, False))
for _op, _fn in _UNARY_OPERATORS.items():
    setattr(Tracer, f"__{_op}__", _unary(_fn))
del _op, _fn
