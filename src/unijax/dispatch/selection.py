"""Which backend runs a call, and moving arrays between backends.

Precedence, first match wins: the ``backend=`` argument > ``use_backend(...)`` >
``set_backend(...)`` > ``UNIJAX_BACKEND`` > the config file > the type of the input arrays
> ``"numpy"``. :func:`explain_backend` says which rule decided and why.

:func:`prepare_call` runs on every call of a transformed function, so its common case (all
arguments are scalars or the chosen backend's own arrays) is a context-variable get, a
few dictionary look-ups and a loop over the top-level arguments: no tree flattening.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins
from unijax.dispatch.backend import LOADING as _LOADING
from unijax.dispatch.backend import Backend, load_for_call, wait_for_loads
from unijax.errors import DeviceTransferError, MixedBackendError, message
from unijax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = [
    "BackendExplanation",
    "asarray",
    "backend_scope",
    "block_until_ready",
    "current_backend",
    "explain_backend",
    "leaves_taken",
    "namespace",
    "prepare_call",
    "resolve_backend",
    "to_backend",
]

_SCALARS: frozenset[type] = frozenset({bool, int, float, complex, type(None)})
_DEFAULT = "numpy"

# name -> (backend, types it takes as they are); owning type -> backend. Cleared whenever
# plugins change, so a stale backend is never returned. A lookup that ran beside a change
# (a config reload drops every backend loaded from an entry point) may come back with a
# backend that is no longer registered: it answers that one call but is never cached, or
# it would stay in the cache for good. The check and the store hold _lock, which _clear
# needs too, so a change after the check is cleared after the store.
_by_name: dict[str, tuple[Backend, set[type]]] = {}
_owner: dict[type, Backend] = {}
_lock = threading.Lock()


def _clear() -> None:
    with _lock:
        _by_name.clear()
        _owner.clear()


_plugins._on_change(_clear)


def _entry(name: str, source: str | None = None) -> tuple[Backend, set[type]]:
    entry = _by_name.get(name)
    if entry is None:
        backend = _plugins.get_backend(name, source=source)
        with _lock:
            if not _plugins.is_registered(backend):
                return backend, set(_SCALARS)
            entry = _by_name.setdefault(name, (backend, set(_SCALARS)))
    return entry


def _owner_of(tp: type) -> Backend | None:
    backend = _owner.get(tp)
    if backend is None:
        backend = _plugins.backend_for_type(tp)
        if backend is not None:
            with _lock:
                if _plugins.is_registered(backend):
                    _owner[tp] = backend
    return backend


def _from_leaves(leaves: Iterable[Any]) -> Backend | None:
    """The input-arrays rule: the first non-NumPy array decides (NumPy data goes anywhere)."""
    found = None
    for leaf in leaves:
        tp = type(leaf)
        if tp in _SCALARS:
            continue
        backend = _owner_of(tp)
        if backend is not None:
            if backend.name != _DEFAULT:
                return backend
            found = backend
    return found


def resolve_backend(explicit: str | None = None, leaves: Iterable[Any] = ()) -> Backend:
    """The backend for one call, by the precedence rules (cached).

    Args:
        explicit: The ``backend=`` argument of the call, if any.
        leaves: The call's pytree leaves, for the input-arrays rule.

    Raises:
        UnknownBackendError: The chosen name is not installed (the message names the rule).
        BackendUnavailableError: The chosen backend's library is missing.

    Example:
        >>> import numpy as np
        >>> resolve_backend(leaves=[np.ones(2)]).name
        'numpy'
    """
    if explicit is not None:
        return _entry(explicit, f"backend={_config.shown(explicit)}")[0]
    name = _config.context_backend()
    if name is not None:
        return _entry(name, f"use_backend({_config.shown(name)})")[0]
    configured = _config.configured_backend()
    if configured is not None:
        return _entry(configured[0], configured[2])[0]
    return _from_leaves(leaves) or _entry(_DEFAULT)[0]


def _is_tracer(leaf: Any) -> bool:
    # The engine's tracers carry this marker on their type, so selection recognises them
    # without importing the engine (it sits beside dispatch, not below it).
    return getattr(type(leaf), "__unijax_tracer__", False) is True


def leaves_taken(items: Iterable[Any], types: set[type]) -> bool:
    """Whether every leaf of ``items``, through dicts, lists and tuples, is of ``types``.

    A dict of parameters is the common argument of a transformed function; walking the
    builtin containers here costs a fraction of a general pytree flatten. Any other node
    type answers False, and the caller takes the general path.

    Example:
        >>> leaves_taken([{"w": 1.0, "b": [2, 3]}], {float, int})
        True
    """
    for a in items:
        tp = type(a)
        if tp in types:
            continue
        if tp is dict:
            if not leaves_taken(a.values(), types):
                return False
        elif tp is list or tp is tuple:
            if not leaves_taken(a, types):
                return False
        else:
            return False
    return True


#: What :func:`_leaves_owner` answers when a leaf's owner is unknown or not the same.
_UNDECIDED: Any = object()


def _leaves_owner(items: Iterable[Any], backend: Backend | None) -> Any:
    """The one backend owning every array leaf of ``items`` (through dicts, lists and
    tuples), ``backend`` if there are none, or ``_UNDECIDED``."""
    for a in items:
        tp = type(a)
        if tp in _SCALARS:
            continue
        if tp is dict or tp is list or tp is tuple:
            backend = _leaves_owner(a.values() if tp is dict else a, backend)
            if backend is _UNDECIDED:
                return _UNDECIDED
            continue
        owner = _owner.get(tp)
        if owner is None or (backend is not None and owner is not backend):
            return _UNDECIDED
        backend = owner
    return backend


def prepare_call(args: tuple[Any, ...], explicit: str | None = None,
                 api: str = "unijax") -> tuple[Backend, bool, tuple[Any, ...]]:
    """Choose the backend for a call and bring its array arguments to it.

    Args:
        args: The positional arguments of the call (pytrees).
        explicit: The ``backend=`` argument, if any.
        api: The API being called, for messages (``"grad(loss)"``).

    Returns:
        ``(backend, use_engine, args)``. ``use_engine`` is True when an argument holds a
        unijax tracer (then ``args`` is returned unchanged); otherwise arrays of other
        backends are converted to ``backend`` (losslessly, on the same device).

    Raises:
        MixedBackendError: Arrays that cannot be converted losslessly to the backend.
        DeviceTransferError: Conversion would copy between devices implicitly.

    Example:
        >>> import numpy as np
        >>> backend, use_engine, args = prepare_call((np.ones(2), 3.0), None, "f")
        >>> backend.name, use_engine, args[1]
        ('numpy', False, 3.0)
    """
    if _LOADING:
        # Another thread is importing an array library: the slow path loads this call's
        # backend too, then waits for every load, so that user code never meets a
        # library halfway through its import (see unijax.dispatch.backend).
        return _prepare_slow(args, explicit, api)
    name = explicit
    if name is None:
        name = _config._backend_ctx.get()
        if name is None:
            name = (_config._resolved.get("backend") or _config._lookup("backend"))[0]
        elif name.__class__ is not str:  # a choice made in a generator (GeneratorChoice)
            return _prepare_slow(args, explicit, api)
    if name is not None:
        cached = _by_name.get(name)
        if cached is not None and leaves_taken(args, cached[1]):
            return cached[0], False, args
    else:
        # Every array leaf owned by one backend: the input-arrays rule picks it.
        backend = _leaves_owner(args, None)
        if backend is not _UNDECIDED:
            if backend is not None:
                return backend, False, args
            cached = _by_name.get(_DEFAULT)
            if cached is not None:
                return cached[0], False, args
    return _prepare_slow(args, explicit, api)


def _prepare_slow(args: tuple[Any, ...], explicit: str | None,
                  api: str) -> tuple[Backend, bool, tuple[Any, ...]]:
    leaves = tree_leaves(args)
    if any(_is_tracer(leaf) for leaf in leaves):
        plain = [leaf for leaf in leaves if not _is_tracer(leaf)]
        wait_for_loads()  # a call nested in user code: see prepare_call
        return resolve_backend(explicit, plain), True, args
    backend = resolve_backend(explicit, leaves)
    same = _entry(backend.name)[1]
    if any(type(leaf) not in same for leaf in leaves):
        args = tree_map(lambda leaf: _implicit(leaf, backend, api), args)
    # After the argument checks, so that a misuse is reported before a library loads.
    load_for_call(backend)
    for a in leaves:  # learn the types this backend takes as they are
        tp = type(a)
        if tp not in same and (backend.owns_type(tp) or _accepts(backend, tp)):
            with _lock:
                same.add(tp)
    return backend, False, args


def _accepts(backend: Backend, tp: type) -> bool:
    # e.g. autograd computes on NumPy arrays as they are (extras["accepts"] = ("numpy",))
    return tp.__module__.partition(".")[0] in backend.extras.get("accepts", ())


def _implicit(leaf: Any, backend: Backend, api: str) -> Any:
    tp = type(leaf)
    if tp in _SCALARS or backend.owns_type(tp) or _accepts(backend, tp):
        return leaf
    source = _owner_of(tp)
    if source is None:
        if hasattr(leaf, "__array_namespace__"):
            raise MixedBackendError(message(
                f"{api}: no installed unijax backend handles arrays of type "
                f"{tp.__module__}.{tp.__qualname__}, and backend {backend.name!r} was chosen",
                fix=f"Convert it first (unijax.asarray(x, backend={backend.name!r})), or "
                    "install the plugin for its library."))
        return leaf  # not an array: strings, callables, ... pass through
    return _convert(leaf, source, backend, api, explicit=False)


def _dtype_name(x: Any) -> str:
    return str(getattr(x, "dtype", type(x).__name__)).rsplit(".", 1)[-1]


def _convert(x: Any, source: Backend, target: Backend, api: str, *, explicit: bool,
             device: Any = None) -> Any:
    if not explicit and source.extras.get("lazy_arrays"):
        # Converting would compute the array's whole graph behind the caller's back.
        raise MixedBackendError(message(
            f"{api}: an input is a lazy {source.name} array, but backend {target.name!r} "
            "was chosen; unijax does not compute it implicitly",
            fix=f"Make every input a {source.name} array (unijax.asarray(a, "
                f"backend={source.name!r})), or convert it explicitly: "
                f"unijax.to_backend(x, {target.name!r})."))
    src_kind = source.extras.get("device_kind", lambda _: "cpu")(x)
    dst_kind = target.extras.get("default_device_kind", lambda: "cpu")()
    if src_kind != dst_kind and not explicit:
        raise DeviceTransferError(message(
            f"{api}: an input is a {source.name} array on {src_kind}, but backend "
            f"{target.name!r} computes on {dst_kind}; unijax does not copy between devices "
            "implicitly",
            fix=f"Move it explicitly: unijax.to_backend(x, {target.name!r}), or choose "
                f"backend={source.name!r}."))
    xp = target.namespace
    try:
        with backend_scope(target):
            if src_kind != dst_kind or device is not None:
                host = source.extras.get("to_host", _to_numpy)(x)
                kwargs = {} if device is None else {"device": _device(target, device)}
                out = xp.asarray(host, **kwargs)
            else:
                out = _same_device(x, source, target, xp)
    except Exception as err:
        raise MixedBackendError(message(
            f"{api}: cannot convert a {source.name} array to backend {target.name!r}",
            got=f"{type(err).__name__}: {err}",
            fix=f"Pass backend={source.name!r}, or convert the inputs yourself.")) from err
    if _dtype_name(out) != _dtype_name(x):
        raise MixedBackendError(message(
            f"{api}: converting a {source.name} array of dtype {_dtype_name(x)} to backend "
            f"{target.name!r} would change it to {_dtype_name(out)}",
            fix=f"Pass backend={source.name!r}, or cast it yourself first."))
    return out


def backend_scope(backend: Backend) -> contextlib.AbstractContextManager[Any]:
    """The context unijax computes with ``backend``'s arrays in: its ``scope`` extra.

    JAX's float64 needs its x64 mode, entered per call and per thread rather than
    switched on globally; most backends have no scope.
    """
    scope = backend.extras.get("scope")
    return scope() if scope is not None else contextlib.nullcontext()


def _same_device(x: Any, source: Backend, target: Backend, xp: Any) -> Any:
    if source.name == _DEFAULT or not hasattr(x, "__dlpack__"):
        return xp.asarray(x)
    if source.capabilities.mutable_arrays and not target.capabilities.mutable_arrays:
        # The target treats arrays as immutable, so it must not see later writes to x: it
        # gets a private copy, made by the source library (JAX on GPU cannot import one
        # with from_dlpack(copy=True)).
        x = source.namespace.asarray(x, copy=True)
    return xp.from_dlpack(x)


def _to_numpy(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except BufferError:  # not on the host: let the library copy it there
            pass
    return np.asarray(x)


def _device(backend: Backend, device: Any) -> Any:
    parse = backend.extras.get("parse_device")
    return parse(device) if parse is not None else device


# --- public helpers ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BackendExplanation:
    """Which backend a call would use, and the rule that decided.

    Attributes:
        backend: The backend's name.
        rule: ``"argument"``, ``"context"``, ``"set_backend"``, ``"env"``,
            ``"config_file"``, ``"input_arrays"`` or ``"default"``.
        reason: A sentence saying why, e.g. ``"UNIJAX_BACKEND=jax in the environment"``.

    Example:
        >>> explain_backend(1.0).rule
        'default'
    """

    backend: str
    rule: str
    reason: str

    def __str__(self) -> str:
        return f"backend {self.backend!r}, chosen by rule {self.rule!r}: {self.reason}"


def explain_backend(*args: Any, backend: str | None = None) -> BackendExplanation:
    """Say which backend a call with ``args`` would use, and why.

    Args:
        *args: The call's arguments (pytrees); they matter only for the input-arrays rule.
        backend: The call's ``backend=`` argument, if any.

    Raises:
        UnknownBackendError: The deciding rule names a backend that is not installed.

    Example:
        >>> import numpy as np
        >>> print(explain_backend(np.ones(3), backend="numpy"))
        backend 'numpy', chosen by rule 'argument': backend='numpy' was passed
    """
    ctx = _config.context_backend()
    configured = _config.configured_backend()
    if backend is not None:
        name, rule, reason = backend, "argument", f"backend={_config.shown(backend)} was passed"
    elif ctx is not None:
        name, rule, reason = ctx, "context", f"inside unijax.use_backend({ctx!r})"
    elif configured is not None:
        name, rule, reason = configured
    else:
        leaves = tree_leaves(args)
        found = _from_leaves(leaves)
        if found is not None:
            types = sorted({f"{type(v).__module__}.{type(v).__qualname__}" for v in leaves
                            if _owner.get(type(v)) is found})
            name, rule = found.name, "input_arrays"
            reason = f"the inputs include {found.name} arrays ({', '.join(types)})"
        else:
            name, rule = _DEFAULT, "default"
            reason = ("no argument, context, set_backend, UNIJAX_BACKEND or config file "
                      f"chose a backend and the inputs hold no arrays; {_DEFAULT!r} is "
                      "the default")
    _plugins.get_backend(name, require_available=False, source=reason)
    return BackendExplanation(name, rule, reason)


def current_backend() -> str:
    """The name of the backend a call without array arguments would use here.

    Example:
        >>> current_backend()
        'numpy'
    """
    return resolve_backend().name


def namespace(backend: str | None = None) -> Any:
    """The Array-API namespace of ``backend`` (default: the active backend).

    Example:
        >>> xp = namespace("numpy")
        >>> int(xp.sum(xp.arange(4)))
        6
    """
    return resolve_backend(backend).namespace


def asarray(obj: Any, dtype: Any = None, device: Any = None,
            backend: str | None = None) -> Any:
    """Make an array of the active backend, applying the default float dtype policy.

    Python floats and sequences of them become :func:`unijax.default_float_dtype`
    (complex numbers its complex counterpart); arrays keep their dtype.

    Args:
        obj: An array, a Python scalar or a nested sequence.
        dtype: The dtype (a dtype of the backend, or a name such as ``"float32"``).
        device: The device, as the backend names it.
        backend: The backend; default by the precedence rules, including ``obj``'s type.

    Example:
        >>> x = asarray([1.0, 2.0], backend="numpy")
        >>> str(x.dtype)
        'float64'
    """
    chosen = resolve_backend(backend, tree_leaves(obj))
    xp = chosen.namespace
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    kwargs = {} if device is None else {"device": _device(chosen, device)}
    source = _owner_of(type(obj))
    if source is not None and source is not chosen and not _accepts(chosen, type(obj)):
        obj = _convert(obj, source, chosen, "unijax.asarray", explicit=device is not None,
                       device=device)
    with backend_scope(chosen):
        out = xp.asarray(obj, dtype=dtype, **kwargs)
        if dtype is None and not hasattr(obj, "dtype"):
            policy = _config.default_float_dtype()
            if xp.isdtype(out.dtype, "real floating") and _dtype_name(out) != policy:
                out = xp.astype(out, getattr(xp, policy))
            elif xp.isdtype(out.dtype, "complex floating"):
                want = "complex128" if policy == "float64" else "complex64"
                if _dtype_name(out) != want:
                    out = xp.astype(out, getattr(xp, want))
    return out


def to_backend(x: Any, name: str, device: Any = None) -> Any:
    """Convert every array in the pytree ``x`` to backend ``name`` (explicitly).

    Uses DLPack where possible. Unlike the implicit conversion of arguments, this may
    copy between host and device.

    Args:
        x: A pytree; leaves that are not arrays are returned unchanged.
        name: The target backend.
        device: The target device (as the backend names it), or None for its default.

    Raises:
        MixedBackendError: An array cannot be converted without changing its dtype.

    Example:
        >>> import numpy as np
        >>> out = to_backend({"w": np.ones(2), "n": 3}, "numpy")
        >>> out["n"], out["w"].shape
        (3, (2,))
    """
    target = _entry(name, f"to_backend(x, {_config.shown(name)})")[0]
    api = f"unijax.to_backend(x, {name!r})"

    def convert(leaf: Any) -> Any:
        tp = type(leaf)
        if tp in _SCALARS:
            return leaf
        source = _owner_of(tp)
        if source is None or source is target or _accepts(target, tp):
            if device is not None and source is not None:
                from array_api_compat import to_device

                return to_device(leaf, _device(target, device))
            return leaf
        return _convert(leaf, source, target, api, explicit=True, device=device)

    return tree_map(convert, x)


def block_until_ready(x: Any) -> Any:
    """Wait until every array in the pytree ``x`` is computed, and return the tree.

    What "computed" means is the backend's: JAX waits for its asynchronous dispatch
    (``jax.block_until_ready``); Dask computes the chunks and keeps them in memory
    (``dask.persist``), so a training loop's next step starts from data instead of
    from the whole history of the previous steps; eager libraries (NumPy, Autograd,
    array-api-strict, PyTorch on the CPU) return their arrays as they are. A backend
    provides this as ``extras["block_until_ready"]``: a function from a list of its own
    arrays to the list of them ready.

    Use the returned tree: on Dask its arrays are new objects that hold the results.

    Args:
        x: A pytree; leaves that are not arrays are returned unchanged.

    Returns:
        ``x``, with each array ready (the same objects where nothing had to be done).

    Example:
        >>> import numpy as np
        >>> params = {"w": np.ones(2), "step": 3}
        >>> block_until_ready(params) is params  # NumPy is eager: nothing to wait for
        True
    """
    leaves, treedef = tree_flatten(x)
    groups: dict[int, tuple[Any, list[int]]] = {}
    for i, leaf in enumerate(leaves):
        tp = type(leaf)
        if tp in _SCALARS:
            continue
        backend = _owner_of(tp)
        ready = None if backend is None else backend.extras.get("block_until_ready")
        if ready is not None:
            groups.setdefault(id(ready), (ready, []))[1].append(i)
    if not groups:
        return x
    out = list(leaves)
    for ready, where in groups.values():
        # One call per backend, so Dask computes every array's graph at once, sharing
        # what the arrays have in common.
        for i, value in zip(where, ready([leaves[i] for i in where]), strict=True):
            out[i] = value
    return tree_unflatten(treedef, out)
