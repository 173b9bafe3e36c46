"""Warm calls on a native backend: the per-call path of ``jit`` and the derivatives.

Once a backend named by configuration has run a native transform, a call whose arguments
are all that backend's own arrays (for ``jit``, through dicts, lists and tuples; for the
derivatives, top-level arrays whose dtype was already checked as floating) goes straight
to the native function, skipping backend resolution and the argument checks, which would
conclude the same. Every other call takes the transform's full path
(:mod:`unijax.transforms`). A change of plugins drops every shortcut.

The entry functions are plain closures rather than ``__call__`` methods: calling an
instance costs about half a microsecond more, which is the budget of a warm call.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

from unijax._validate import fun_name
from unijax.dispatch import plugins
from unijax.dispatch.backend import LOADING, wait_for_loads
from unijax.dispatch.options import _backend_ctx, _resolved
from unijax.dispatch.selection import _SCALARS, _by_name, leaves_taken

__all__ = [
    "after_loads",
    "call_native",
    "configured_name",
    "differentiate_entry",
    "jit_entry",
    "learn_differentiate",
    "learn_jit",
    "raise_translated",
]


#: Compiled functions holding native fast paths, which a change of plugins invalidates.
_with_fast_paths: weakref.WeakSet[Any] = weakref.WeakSet()


def _drop_fast_paths() -> None:
    for jitted in list(_with_fast_paths):
        jitted._fast.clear()


plugins._on_change(_drop_fast_paths)


def configured_name() -> str | None:
    """The backend a call uses by configuration (``use_backend``, then the resolved setting).

    ``None`` when nothing names one or the setting was not resolved yet: the caller then
    takes its full path, whose ``prepare_call`` resolves it. The fast paths of ``jit`` and
    the derivatives use this so that their shortcut follows the precedence rules.
    """
    name = _backend_ctx.get()
    if name is None:
        resolved = _resolved.get("backend")
        name = None if resolved is None else resolved[0]
    elif name.__class__ is not str:  # a choice made in a generator: see GeneratorChoice
        name = name.effective()
        if name is None:
            resolved = _resolved.get("backend")
            name = None if resolved is None else resolved[0]
    return name


def call_native(backend: Any, native: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
    """``native(*args, **kwargs)``, its library's errors raised as unijax's.

    Waits first while another thread imports a library: ``native`` may be a function
    handed to the user earlier (a pullback), called again while a library loads.
    """
    if LOADING:
        wait_for_loads()
    try:
        return native(*args, **kwargs)
    except Exception as err:
        raise_translated(backend, err)
        raise


def after_loads(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, which runs user code when called later (the engine's pullback of ``vjp``),
    made to wait first while another thread imports a library (see ``call_native``)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if LOADING:
            wait_for_loads()
        return fn(*args, **kwargs)

    return call


def raise_translated(backend: Any, err: Exception) -> None:
    """Raise unijax's error for a native library's ``err``, if the backend maps it.

    A backend maps its library's errors with ``extras["translate_error"]``, so misuse
    under a native transform raises the same unijax error as on the engine. Returns
    (and the caller re-raises ``err``) when there is no mapping.
    """
    translate = backend.extras.get("translate_error")
    translated = translate(err) if translate is not None else None
    if translated is not None:
        raise translated from err


def differentiate_entry(state: Any) -> Callable[..., Any]:
    """The function users call for a derivative transform whose state is ``state``."""
    # What users call (a plain function, as for jit: calling an instance costs more).
    # A backend named by configuration whose native transform ran before, called with
    # its own arrays (the differentiated ones floating), goes straight to the native
    # transform: what _prepare would conclude, at a fraction of its cost. Everything
    # else takes _call.
    explicit, fast_paths, slow = state.explicit, state._fast, state._call
    argnums, max_argnum = state.norm_argnums, max(state.norm_argnums)

    def function(*args: Any, **kwargs: Any) -> Any:
        name = explicit if explicit is not None else configured_name()
        fast = fast_paths.get(name) if name is not None else None
        # While another thread imports an array library, calls take the full path, which
        # waits for it: user code must not meet a half-imported module.
        if fast is not None and len(args) > max_argnum and not LOADING:
            native, backend, arrays, floating = fast
            for a in args:
                if type(a) not in arrays and type(a) not in _SCALARS:
                    break
            else:
                for i in argnums:
                    a = args[i]
                    if type(a) not in arrays or a.dtype not in floating:
                        break
                else:
                    # call_native written out: one frame less on the warm path.
                    try:
                        return native(*args, **kwargs) if kwargs else native(*args)
                    except Exception as err:
                        raise_translated(backend, err)
                        raise
        return slow(name, args, kwargs)

    functools.update_wrapper(function, state.fun, updated=())
    function._transform_state = state  # type: ignore[attr-defined]
    return function


def learn_differentiate(state: Any, name: str, backend: Any, native: Any,
                        args: tuple[Any, ...]) -> None:
    """Let warm calls of derivative ``state`` on backend ``name`` go straight to ``native``."""
    # Called once _prepare has checked args: the floating dtypes seen are the ones the
    # fast path accepts without asking again.
    entry = _by_name.get(name)
    if entry is None or entry[0] is not backend:
        return
    fast = state._fast.get(name)
    floating = set() if fast is None else fast[3]
    if fast is None:
        state._fast[name] = (native, backend, frozenset(entry[1]) - _SCALARS, floating)
        _with_fast_paths.add(state)
    for i in state.norm_argnums:
        dtype = getattr(args[i], "dtype", None)
        if dtype is not None and type(args[i]) in entry[1] and len(floating) < 16:
            floating.add(dtype)


def jit_entry(state: Any) -> Callable[..., Any]:
    """The function users call for a ``jit`` whose state is ``state``."""
    # What users call, and on JAX its whole per-call cost. A plain function, because
    # calling an instance's __call__ costs about half a microsecond more. A backend
    # named by configuration whose native jit ran before, called with arrays it takes
    # as they are, goes straight to the native function; everything else takes _call.
    explicit, fast_paths, slow = state.explicit, state._fast, state._call

    def function(*args: Any, **kwargs: Any) -> Any:
        name = explicit if explicit is not None else configured_name()
        fast = fast_paths.get(name) if name is not None else None
        if fast is not None and not LOADING:  # see differentiate_entry
            native, backend, same = fast
            for a in args:
                if type(a) not in same:
                    if not leaves_taken(args, same):  # a container: its leaves decide
                        return slow(name, args, kwargs)
                    break
            # call_native written out: one frame less on the warm path.
            try:
                return native(*args, **kwargs) if kwargs else native(*args)
            except Exception as err:
                raise_translated(backend, err)
                raise
        return slow(name, args, kwargs)

    functools.update_wrapper(function, state.fun, updated=())
    function.cache_info = state.cache_info  # type: ignore[attr-defined]
    function.clear_cache = state.clear_cache  # type: ignore[attr-defined]
    function._jit_state = state  # type: ignore[attr-defined]
    function.__qualname__ = function.__name__ = f"jit({fun_name(state.fun)})"
    return function


def learn_jit(state: Any, name: str, backend: Any, native: Any) -> None:
    """Let warm calls of the ``jit`` ``state`` on backend ``name`` go straight to ``native``."""
    entry = _by_name.get(name)
    if entry is not None and entry[0] is backend and name not in state._fast:
        state._fast[name] = (native, backend, entry[1])
        _with_fast_paths.add(state)
