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
run). Later calls run the compiled program.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from unijax import tree_util
from unijax.engine.core import SCALAR_TYPES, Tracer, builtin_scalar, namespace_for_args
from unijax.engine.ir import Program, Var
from unijax.engine.lower import interpret
from unijax.engine.optimize import optimize
from unijax.engine.staging import NeedsExactStaging, stage
from unijax.errors import TransformArgumentError, UnhashableStaticArgumentError, message

__all__ = ["CacheInfo", "JitFunction", "make_ir"]

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
        try:
            program, outs, out_def = self._stage(args, kwargs, leaves, treedef, xp,
                                                 exact=False)
            if outs is None and not program.cacheable:
                raise NeedsExactStaging("a loop in a program valid for this call only")
        except NeedsExactStaging:
            program, outs, out_def = self._stage(args, kwargs, leaves, treedef, xp)
        if program.cacheable:
            compiled = self._compiler(xp)(optimize(program), xp)
            with self._lock:
                self._cache[key] = (compiled, out_def)
                if len(self._cache) > self._maxsize:
                    self._cache.popitem(last=False)
            if outs is None:  # loops were staged without running: run the program
                outs = compiled(*leaves)
        return out_def.unflatten(outs)

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
