"""The engine's ``jit``: stage once per signature, optimise, lower, cache.

:class:`JitFunction` is what ``unijax.jit`` builds on a backend without a native ``jit``.
A call is keyed by its *signature*: the backend namespace, the device, the pytree
structure of the dynamic arguments, each leaf's ``(type, shape, dtype)`` (or, for a Python
scalar, its type: scalars stay weakly typed and their values are inputs), and the static
arguments' values. The first call at a signature stages the function on the real inputs
(:mod:`unijax.engine.staging`), optimises the program (:mod:`unijax.engine.optimize`),
lowers it with the backend's compiler or the interpreter (:mod:`unijax.engine.lower`),
caches it and returns the values computed while staging (or, when the function has loops,
which staging records without running them, the values of the compiled program's first
run). Later calls run the compiled program. :meth:`JitFunction.lowering` says which
lowering runs the program of a signature, and why (a :class:`Lowering`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from unijax import tree_util
from unijax.engine.core import SCALAR_TYPES, Tracer, builtin_scalar, namespace_for_args
from unijax.engine.ir import Program, Var
from unijax.engine.lower import Interpreted, interpret
from unijax.engine.optimize import optimize
from unijax.engine.staging import NeedsExactStaging, stage
from unijax.errors import TransformArgumentError, UnhashableStaticArgumentError, message

__all__ = ["CacheInfo", "JitFunction", "Lowering", "make_ir"]

Compiler = Callable[[Program, Any], Callable[..., list[Any]]]


def _tree_flatten(tree: Any) -> tuple[list[Any], Any]:
    # The one place jit flattens pytrees, so every pytree rule is unijax's.
    return tree_util.tree_flatten(tree)


class CacheInfo(NamedTuple):
    """Statistics of a :class:`JitFunction`'s compilation cache.

    Attributes:
        hits: Calls that ran an already compiled program.
        misses: Calls that staged the function (a new signature, or an uncacheable call).
        size: Programs in the cache now.
        maxsize: The most programs the cache keeps (least recently used are dropped).

    Example:
        >>> CacheInfo(hits=9, misses=1, size=1, maxsize=256).hits
        9
    """

    hits: int
    misses: int
    size: int
    maxsize: int


@dataclasses.dataclass(frozen=True)
class Lowering:
    """Which lowering runs a ``jit``-compiled program, and why.

    A backend's compiler tells through the executable it returns: its attributes
    ``lowering`` (a name), ``lowering_reason`` (words) and ``compile_seconds`` are read as
    they are *now* (NumPy's ``jit_compiler="auto"`` moves a program from ``"python"`` to
    ``"numba"`` once it is hot). An executable without them reports ``"python"`` for
    generated Python (:func:`~unijax.engine.lower.compile_python`), ``"interpreter"`` for
    the engine's interpreter (a backend without a compiler) and ``"backend compiler"``
    otherwise.

    Attributes:
        backend: The backend's name (or, for a :class:`JitFunction` built without a
            backend, its namespace's module name).
        name: The lowering: ``"numba"``, ``"python"``, ``"interpreter"``, ``"backend
            compiler"``, what a backend's executable reports, ``"native"`` for a backend's
            own ``jit`` (JAX's), or ``"traced"`` when no program is compiled because an
            enclosing transform traces the function.
        reason: Why that lowering runs, in words.
        compile_seconds: Seconds its compile took (or its machine code took to load), when
            the executable reports them and has compiled; else ``None``.

    Example:
        >>> print(Lowering("numpy", "numba", "Numba: jit_compiler='numba'", 0.25))
        numba on numpy: Numba: jit_compiler='numba' (compile: 0.25 s)
    """

    backend: str
    name: str
    reason: str
    compile_seconds: float | None = None

    def __str__(self) -> str:
        seconds = "" if self.compile_seconds is None else \
            f" (compile: {self.compile_seconds:.2f} s)"
        return f"{self.name} on {self.backend}: {self.reason}{seconds}"


def _describe(executable: Any, backend: str) -> Lowering:
    """The :class:`Lowering` of a compiled program, from what its executable reports now."""
    name = getattr(executable, "lowering", None)
    if isinstance(name, str):
        reason = getattr(executable, "lowering_reason", None)
        seconds = getattr(executable, "compile_seconds", None)
        return Lowering(backend, name, str(reason) if reason else f"{backend}'s compiler chose "
                        "it", float(seconds) if seconds is not None else None)
    if isinstance(executable, Interpreted):
        return Lowering(backend, "interpreter", f"{backend} has no compiler: the engine's "
                        "interpreter runs the program, equation by equation")
    # compile_python's functions carry their buffer plan; other generated drivers do not.
    if isinstance(executable, types.FunctionType) and hasattr(executable, "buffer_plan"):
        return Lowering(backend, "python", f"{backend}'s compiler returned generated Python, "
                        "one call of its functions per operation")
    return Lowering(backend, "backend compiler", f"{backend}'s compiler lowered the program "
                    "(its executable does not say how)")


class JitFunction:
    """A function compiled by the unijax engine, one program per input signature.

    Python side effects in ``fun`` (``print``, appending to a list) happen only while a
    signature is staged, not on the calls that reuse its compiled program. Python control
    flow on a traced value (``if x > 0:``) raises
    :class:`~unijax.errors.ConcretizationError`; mark such arguments static.

    When an argument is already a unijax tracer (``jit`` inside ``grad``, ``vmap`` or
    another ``jit``), ``fun`` is simply called: the enclosing transform sees every
    operation, which gives exactly the values ``jit`` would. The same holds for the
    tracers of a backend's native transform (autograd's boxes under its ``grad``, which
    the backend recognises with ``extras["is_tracer"]``): a staged program would hide
    custom derivative rules from that transform.

    A backend whose arrays carry more than shape and dtype that a program may depend on
    (dask's chunks) adds it to the cache key with ``extras["jit_key"]``:
    ``jit_key(leaves) -> hashable``, which may also refuse arguments it cannot key.

    Args:
        fun: The function to compile.
        static_argnums: Positional arguments that are compile-time constants (validated by
            the caller; negative indices count from the end).
        static_argnames: Keyword arguments that are compile-time constants.
        backend_compiler_lookup: ``lookup(xp) -> compiler or None``: the compiler for a
            namespace (``compiler(program, xp) -> callable``); ``None`` interprets.
        backend: A :class:`~unijax.dispatch.backend.Backend`; its ``namespace`` and ``compiler``
            are used (instead of ``backend_compiler_lookup``).
        cache_size: The most compiled programs kept (least recently used are dropped).

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> f = JitFunction(lambda x, y: ops.sin(x) * y)
        >>> f(np.zeros(3), 2.0)
        array([0., 0., 0.])
        >>> f(np.ones(3), 0.5).round(3)
        array([0.421, 0.421, 0.421])
        >>> f.cache_info()
        CacheInfo(hits=1, misses=1, size=1, maxsize=256)
    """

    def __init__(self, fun: Callable[..., Any], static_argnums: Sequence[int] = (),
                 static_argnames: Sequence[str] = (),
                 backend_compiler_lookup: Callable[[Any], Compiler | None] | None = None, *,
                 backend: Any = None, cache_size: int = 256) -> None:
        self.fun = fun
        self.static_argnums = tuple(static_argnums or ())
        self.static_argnames = frozenset(static_argnames or ())
        self._lookup = backend_compiler_lookup
        self._backend = backend
        extras = getattr(backend, "extras", None) or {}
        self._is_native_tracer = extras.get("is_tracer")
        self._extra_key = extras.get("jit_key")
        self._maxsize = cache_size
        self._cache: OrderedDict[Any, tuple[Callable[..., list[Any]] | None, Any]] = (
            OrderedDict())
        self._compilers: dict[int, Compiler] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        # updated=(): fun may itself be a transform whose __dict__ must not be copied.
        functools.update_wrapper(self, fun, updated=())

    # -- cache ---------------------------------------------------------------------------

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compilation cache."""
        return CacheInfo(self._hits, self._misses, len(self._cache), self._maxsize)

    def clear_cache(self) -> None:
        """Drop every compiled program (the hit and miss counts are kept)."""
        with self._lock:
            self._cache.clear()

    # -- calling -------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves: Sequence[Any]
        if not kwargs and not self.static_argnums and _all_leaves(args):
            # The common call f(array, array, ...) skips flattening: it is a third of the
            # cost of a cache hit on small arrays.
            leaves, treedef, statics = args, _FLAT, ()
        else:
            dyn, statics = self._split(args, kwargs)
            leaves, treedef = _tree_flatten(dyn)
            leaves = [builtin_scalar(leaf) for leaf in leaves]
        signature = _signature(leaves)
        if signature is None:  # an argument is a tracer: the outer transform sees all
            return self.fun(*args, **kwargs)
        xp = self._namespace(leaves)
        key: tuple[Any, ...] = (id(xp), _device(leaves), treedef, signature, statics)
        if self._extra_key is not None:
            key += (self._extra_key(leaves),)
        entry = self._cache.get(key)
        if entry is not None:
            self._hits += 1
            try:
                self._cache.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile; still valid to run
                pass
            compiled, out_def = entry
            if compiled is None:  # the signature holds a native tracer (see above)
                return self.fun(*args, **kwargs)
            return out_def.unflatten(compiled(*leaves))
        self._misses += 1
        if self._holds_native_tracer(leaves):
            # Checked on a miss only: tracer types are part of the signature, so the
            # cache remembers the answer for every later call.
            with self._lock:
                self._cache[key] = (None, None)
            return self.fun(*args, **kwargs)
        compiled, outs, out_def = self._compile(args, kwargs, leaves, treedef, xp, key)
        if outs is None:  # loops were staged without running: run the program
            assert compiled is not None  # a program for one call only was staged exactly
            outs = compiled(*leaves)
        return out_def.unflatten(outs)

    def lowering(self, *args: Any, **kwargs: Any) -> Lowering:
        """Which lowering runs the program compiled for these arguments' signature, and why.

        The program comes from the cache, or is staged, compiled and cached as a first
        call would do it (``fun``'s Python runs while staging), so the next call with
        this signature runs it; the compiled program itself is not run here. The answer
        is the executable's state when asked: under NumPy's ``jit_compiler="auto"`` one
        program reports ``"python"`` until it is hot and ``"numba"`` after. The cache's
        hit and miss counts do not change.

        Args:
            *args: Arguments as for a call (only their signature matters, and the static
                arguments' values).
            **kwargs: Keyword arguments as for a call.

        Returns:
            A :class:`Lowering`: the backend, the lowering's name, the reason and the
            compile time where the executable reports one.

        Example:
            >>> import numpy as np
            >>> from unijax.engine.namespace import array_functions as ops
            >>> f = JitFunction(lambda x: ops.sin(x) * 2.0)
            >>> f.lowering(np.zeros(3)).name  # no backend given: the interpreter
            'interpreter'
            >>> f.cache_info()  # compiled and cached; nothing ran
            CacheInfo(hits=0, misses=0, size=1, maxsize=256)
        """
        leaves, treedef, statics = self._flatten(args, kwargs)
        signature = _signature(leaves)
        if signature is None:
            return self._traced("an argument is a tracer of an enclosing transform, which "
                                "sees every operation: no program is compiled")
        xp = self._namespace(leaves)
        key: tuple[Any, ...] = (id(xp), _device(leaves), treedef, signature, statics)
        if self._extra_key is not None:
            key += (self._extra_key(leaves),)
        entry = self._cache.get(key)
        if entry is None:
            if self._holds_native_tracer(leaves):
                return self._traced(_NATIVE_TRACER)
            compiled, _, _ = self._compile(args, kwargs, leaves, treedef, xp, key)
            if compiled is None:
                return self._traced("the function reads a value an enclosing transform "
                                    "traces: each call is staged inside that transform "
                                    "and no program is compiled")
        else:
            compiled = entry[0]
            if compiled is None:
                return self._traced(_NATIVE_TRACER)
        return _describe(compiled, self._backend_name(xp))

    def _flatten(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[Sequence[Any], Any, tuple[Any, ...]]:
        """``(leaves, treedef, statics)`` of a call, as :meth:`__call__` keys its cache."""
        # The same two cases as __call__, which keeps them inline: a call there is a
        # noticeable share of a cache hit.
        if not kwargs and not self.static_argnums and _all_leaves(args):
            return args, _FLAT, ()
        dyn, statics = self._split(args, kwargs)
        leaves, treedef = _tree_flatten(dyn)
        return [builtin_scalar(leaf) for leaf in leaves], treedef, statics

    def _traced(self, why: str) -> Lowering:
        return Lowering(self._backend_name(None), "traced", why)

    def _backend_name(self, xp: Any) -> str:
        if self._backend is not None:
            return str(self._backend.name)
        return getattr(xp, "__name__", None) or "unknown"

    def _compile(self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: Sequence[Any],
                 treedef: Any, xp: Any, key: tuple[Any, ...]
                 ) -> tuple[Callable[..., list[Any]] | None, list[Any] | None, Any]:
        """Stage, compile and cache: ``(executable, outputs, output treedef)``.

        The executable is ``None`` for a program valid for this call only (not cached);
        the outputs are ``None`` when loops were staged without running.
        """
        try:
            program, outs, out_def = self._stage(args, kwargs, leaves, treedef, xp,
                                                 exact=False)
            if outs is None and not program.cacheable:
                raise NeedsExactStaging("a loop in a program valid for this call only")
        except NeedsExactStaging:
            program, outs, out_def = self._stage(args, kwargs, leaves, treedef, xp)
        if not program.cacheable:
            return None, outs, out_def
        compiled = self._compiler(xp)(optimize(program), xp)
        with self._lock:
            self._cache[key] = (compiled, out_def)
            if len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return compiled, outs, out_def

    def _holds_native_tracer(self, leaves: Sequence[Any]) -> bool:
        is_tracer = self._is_native_tracer
        return is_tracer is not None and any(is_tracer(leaf) for leaf in leaves)

    def trace(self, *args: Any, **kwargs: Any) -> Program:
        """The optimised program for these arguments (staged afresh; nothing is cached)."""
        dyn, _ = self._split(args, kwargs)
        leaves, treedef = _tree_flatten(dyn)
        leaves = [builtin_scalar(leaf) for leaf in leaves]
        _signature(leaves)  # rejects leaves that are not arrays or scalars
        xp = self._namespace(leaves)
        try:
            program, _, _ = self._stage(args, kwargs, leaves, treedef, xp, exact=False)
        except NeedsExactStaging:
            program, _, _ = self._stage(args, kwargs, leaves, treedef, xp)
        return optimize(program) if program.cacheable else program

    def _split(self, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[tuple[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]:
        """``((dynamic args, dynamic kwargs), static key)``; checks statics are hashable."""
        if not self.static_argnums and not self.static_argnames:
            return (args, kwargs), ()
        n = len(args)
        positions = {i + n if i < 0 else i for i in self.static_argnums}
        statics: list[Any] = []
        dyn_args = []
        for i, a in enumerate(args):
            if i in positions:
                statics.append((i, _static_key(a, f"positional argument {i}")))
            else:
                dyn_args.append(a)
        dyn_kwargs = {}
        for name, v in kwargs.items():
            if name in self.static_argnames:
                statics.append((name, _static_key(v, f"keyword argument {name!r}")))
            else:
                dyn_kwargs[name] = v
        return (tuple(dyn_args), dyn_kwargs), tuple(statics)

    def _namespace(self, leaves: Sequence[Any]) -> Any:
        if self._backend is not None:
            return self._backend.namespace
        return namespace_for_args(tuple(leaves))

    def _compiler(self, xp: Any) -> Compiler:
        compiler = self._compilers.get(id(xp))
        if compiler is None:
            found = None
            if self._backend is not None:
                found = self._backend.compiler
            elif self._lookup is not None:
                found = self._lookup(xp)
            compiler = self._compilers[id(xp)] = found if found is not None else interpret
        return compiler

    def _stage(self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: Sequence[Any],
               treedef: Any, xp: Any, exact: bool = True
               ) -> tuple[Program, list[Any] | None, Any]:
        if treedef is _FLAT:
            treedef = _tree_flatten((args, kwargs))[1]
        static_pos = {i + len(args) if i < 0 else i for i in self.static_argnums}
        out_trees: list[Any] = []

        def fun_flat(tracers: list[Any]) -> list[Any]:
            dyn_args, dyn_kwargs = treedef.unflatten(tracers)
            it = iter(dyn_args)
            call_args = [a if i in static_pos else next(it) for i, a in enumerate(args)]
            call_kwargs = {k: v for k, v in kwargs.items() if k in self.static_argnames}
            call_kwargs.update(dyn_kwargs)
            out_leaves, out_def = _tree_flatten(self.fun(*call_args, **call_kwargs))
            out_trees.append(out_def)
            return out_leaves

        program, outs = stage(fun_flat, leaves, xp=xp, device=_device(leaves), exact=exact)
        if program.cacheable and outs is not None:
            # The compiled program keeps its constants; the caller gets its own copies.
            outs = [xp.asarray(o, copy=True) if isinstance(a, Var) and a in program.constants
                    and hasattr(o, "shape") else o
                    for o, a in zip(outs, program.outputs, strict=True)]
        return program, outs, out_trees[0]


def _static_key(value: Any, where: str) -> Any:
    try:
        hash(value)
    except TypeError:
        raise UnhashableStaticArgumentError(
            message(
                f"jit: static {where} must be hashable, because static values key the "
                "compilation cache",
                got=f"a value of unhashable type {type(value).__name__}",
                fix="Wrap it in a tuple or pass it as a dynamic array argument.",
            )
        ) from None
    # The type too: 1, 1.0 and True hash and compare equal but can trace differently.
    return (type(value), value)


_NATIVE_TRACER = ("an argument is a tracer of the backend's own transform, which must see "
                  "every operation: no program is compiled")
#: Stands for the structure "positional arguments, each a leaf" in cache keys.
_FLAT = object()
#: Types whose values are pytree leaves (arrays; Python scalars).
_LEAF_TYPES: set[type] = set(SCALAR_TYPES)


def _all_leaves(args: tuple[Any, ...]) -> bool:
    for a in args:
        tp = type(a)
        if tp not in _LEAF_TYPES:
            if isinstance(a, Tracer) or not (hasattr(a, "shape") and hasattr(a, "dtype")):
                return False
            if not _tree_flatten(a)[1].is_leaf():  # an array-like registered as a pytree
                return False
            _LEAF_TYPES.add(tp)
    return True


def _signature(leaves: Sequence[Any]) -> tuple[Any, ...] | None:
    """Each leaf's cache key (``None`` if any leaf is a tracer); rejects other objects."""
    sig: list[Any] = []
    for leaf in leaves:
        tp = type(leaf)
        if tp in SCALAR_TYPES:
            sig.append(tp)  # weakly typed: the value is an input, the type is the key
        elif isinstance(leaf, Tracer):
            return None
        elif hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            sig.append((tp, tuple(leaf.shape), leaf.dtype))
        else:
            raise TransformArgumentError(
                message(
                    "jit: every argument leaf must be an array or a Python scalar",
                    got=f"a value of type {tp.__module__}.{tp.__qualname__}",
                    fix="Pass it as a static argument (static_argnums/static_argnames), or "
                    "convert it to an array.",
                )
            )
    return tuple(sig)


def _device(leaves: Sequence[Any]) -> Any:
    # One array's device: a backend's arrays in one call share a device (or the backend
    # raises), and checking each leaf would tax every call.
    for leaf in leaves:
        if type(leaf) not in SCALAR_TYPES:
            device = getattr(leaf, "device", None)
            if device is None:
                return None
            try:
                hash(device)
            except TypeError:
                return repr(device)
            return device
    return None


def make_ir(fun: Callable[..., Any], static_argnums: Sequence[int] = (),
            static_argnames: Sequence[str] = ()) -> Callable[..., Program]:
    """A function that returns the optimised :class:`~unijax.engine.ir.Program` ``jit`` would run.

    Args:
        fun: The function.
        static_argnums: Positional arguments that are compile-time constants.
        static_argnames: Keyword arguments that are compile-time constants.

    Returns:
        ``program_for(*args, **kwargs) -> Program``; ``print`` the program to read it.
        Which lowering then runs that program is :meth:`JitFunction.lowering`'s answer.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> print(make_ir(lambda x, y: ops.sin(x) * y + ops.sin(x))(np.zeros(3), 2.0))
        { lambda ; a:f64[3] b:float[] . let
            c:f64[3] = sin a
            d:f64[3] = multiply c b
            e:f64[3] = add d c
          in (e,) }
    """
    jitted = JitFunction(fun, static_argnums, static_argnames)

    @functools.wraps(fun)
    def program_for(*args: Any, **kwargs: Any) -> Program:
        return jitted.trace(*args, **kwargs)

    return program_for
