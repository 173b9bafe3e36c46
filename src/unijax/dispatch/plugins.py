"""Backend plugins: discovered from entry points, loaded on first use, validated by pluggy.

Entry points of the group ``unijax.backends`` are read from package metadata (the entry
point's name is the backend's name); a plugin module is imported only when its backend is
first asked for, or when unijax first has to recognise an array type that no loaded
backend is named after (then all allowed plugins load: they are tiny and import no array
library). Each plugin module is imported under a lock of its own, so a call on a loaded
backend never waits for another plugin's import. A plugin that fails to load leaves
nothing behind: it is unregistered from pluggy and no backend is recorded.

A backend name declared by several installed distributions is reported (a
``RuntimeWarning`` naming them): the built-in one is kept unless the ``plugins`` option
picks another as ``name=distribution`` (see :func:`_pick`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy

from unijax.dispatch import hookspecs as _hookspecs
from unijax.dispatch import options
from unijax.dispatch.backend import Backend
from unijax.errors import (
    BackendUnavailableError,
    ConfigError,
    PluginError,
    PluginValidationError,
    UnijaxError,
    UnknownBackendError,
    message,
)

__all__ = [
    "GROUP",
    "PluginInfo",
    "backend_for_type",
    "get_backend",
    "is_registered",
    "list_backends",
    "namespace_for_type",
    "register_plugin",
]

GROUP = "unijax.backends"


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What ``unijax info`` shows about one discovered plugin.

    Attributes:
        name: The backend's name.
        plugin: Where it comes from (``"unijax_jax"`` for an entry point's module).
        distribution: The installed distribution that declares it (``"unijax 0.1.0"``).
        allowed: Whether the ``plugins``/``disable_plugin_autoload`` options allow it.
        backend: The loaded backend, or None when it could not be loaded.
        error: Why it could not be loaded, or None.

    Example:
        >>> info = next(i for i in list_backends() if i.name == "numpy")
        >>> info.allowed, info.available, info.error
        (True, True, None)
    """

    name: str
    plugin: str
    distribution: str | None
    allowed: bool
    backend: Backend | None = None
    error: str | None = None

    @property
    def available(self) -> bool:
        """Whether the backend loaded and its array library is installed."""
        return self.backend is not None and self.backend.available


class PluginManager:
    """Discovery, lazy loading and validation of backend plugins (one per process)."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(_hookspecs)
        # _lock guards the registry and is held briefly; importing a plugin module (which
        # may be slow) holds only that backend's own lock, so a call on a loaded backend
        # never waits for another plugin to import.
        self._lock = threading.RLock()
        self._name_locks: dict[str, threading.RLock] = {}
        self._generation = 0  # bumped when a reload drops the entry-point backends
        self._eps: dict[str, metadata.EntryPoint] | None = None
        self._excluded: dict[str, metadata.EntryPoint] = {}
        self._backends: dict[str, Backend] = {}
        self._manual: set[str] = set()
        self._failures: dict[str, str] = {}
        self._types: dict[type, Backend | None] = {}
        self._all_loaded = False

    # -- discovery --

    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The allowed entry points by backend name (read from metadata once)."""
        if self._eps is not None:
            return self._eps
        with self._lock:
            if self._eps is None:
                allow = options.read("plugins")
                no_autoload = options.read("disable_plugin_autoload")
                names = None if allow is None else {a.partition("=")[0] for a in allow}
                chosen = dict(a.split("=", 1) for a in allow or () if "=" in a)
                eps: dict[str, metadata.EntryPoint] = {}
                excluded: dict[str, metadata.EntryPoint] = {}
                for name, candidates in _by_name(metadata.entry_points(group=GROUP)).items():
                    ep = _pick(name, candidates, chosen.get(name))
                    allowed = name in names if names is not None else not no_autoload
                    (eps if allowed else excluded)[name] = ep
                self._excluded = excluded
                self._eps = eps
            return self._eps

    def installed(self) -> list[str]:
        """Names of every backend that could be loaded (allowed entry points, manual)."""
        with self._lock:
            return sorted(set(self.entry_points()) | set(self._backends))

    # -- loading --

    def get_backend(self, name: str, *, require_available: bool = True,
                    source: str | None = None) -> Backend:
        """The backend called ``name``, loading its plugin if needed.

        Raises:
            UnknownBackendError: No allowed plugin provides ``name``.
            BackendUnavailableError: Its library is missing (if ``require_available``).
            PluginError: The plugin failed to import or its hook raised.
            PluginValidationError: The plugin's hooks are malformed.
        """
        backend = self._backends.get(name)
        if backend is None:
            backend = self._load_named(name, source)
        if require_available and not backend.available:
            missing = [m for m in backend.requires if importlib.util.find_spec(m) is None]
            if missing:
                err = BackendUnavailableError(message(
                    f"unijax backend {name!r} needs {', '.join(missing)}, which is not "
                    "installed", fix=f"Install it with: {backend.install_hint}"))
            else:  # installed, but it cannot compute here (e.g. no GPU)
                err = BackendUnavailableError(message(
                    f"unijax backend {name!r} is installed but cannot compute here: "
                    f"{backend.unusable}",
                    fix="Run it where it can (see `unijax info`), or choose another "
                        "backend"))
            err.install_hint = backend.install_hint  # type: ignore[attr-defined]
            raise err
        return backend

    def _unknown(self, name: str, source: str | None) -> UnknownBackendError:
        # ``name`` and ``source`` echo the user's input: shown cut to a readable length.
        where = f" (from {options.shown(source, 2 * options.ECHO_LIMIT, quoted=False)})" \
            if source else ""
        if name in self._excluded:
            return UnknownBackendError(message(
                f"unijax backend {name!r}{where} is installed but not allowed",
                got=f"plugins={options.shown(options.read('plugins'))}, "
                    f"disable_plugin_autoload={options.read('disable_plugin_autoload')!r}",
                fix=f"Add {name!r} to UNIJAX_PLUGINS (or the 'plugins' option)."))
        installed = self.installed()
        close = difflib.get_close_matches(name[:100], installed, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        return UnknownBackendError(message(
            f"unijax has no backend named {options.shown(name)}{where}",
            expected=f"one of the installed backends: {', '.join(installed) or 'none'}",
            fix=f"{hint}Install a plugin that provides it, or fix the name."))

    def _load_named(self, name: str, source: str | None) -> Backend:
        """Load the entry point ``name`` under its own lock (one import per name)."""
        with self._lock:
            lock = self._name_locks.setdefault(name, threading.RLock())
        with lock:
            while True:
                backend = self._backends.get(name)
                if backend is not None:
                    return backend
                generation = self._generation
                ep = self.entry_points().get(name)
                if ep is None:
                    raise self._unknown(name, source)
                plugin = self._import_entry_point(name, ep)
                with self._lock:
                    # A reload while the module imported may have changed the allow-list:
                    # look the name up again rather than register what is now excluded.
                    if generation == self._generation:
                        return self.register(plugin, name, expected=name, origin=ep.value)

    def _import_entry_point(self, name: str, ep: metadata.EntryPoint) -> Any:
        origin = f"entry point {name} = {ep.value}"
        try:
            return ep.load()
        except (Exception, SystemExit) as err:
            # SystemExit too: a plugin that calls sys.exit() while it is imported is a
            # broken plugin, and must not end the program that merely asked for a backend.
            raise PluginError(message(
                f"unijax plugin {name!r} ({origin}) failed to import",
                got=f"{type(err).__name__}: {err}",
                fix="Fix or uninstall the plugin, or leave it out with UNIJAX_PLUGINS.")
            ) from err

    def register(self, plugin: Any, plugin_name: str, *, expected: str | None = None,
                 origin: str | None = None) -> Backend:
        """Register ``plugin``, call its hooks and record its backend, all or nothing."""
        origin = origin or plugin_name
        with self._lock:
            if self._pm.is_registered(plugin) or self._pm.get_plugin(plugin_name) is not None:
                raise PluginError(message(
                    f"unijax plugin {plugin_name!r} ({origin}) is already registered",
                    fix="Register each plugin once, under a name of its own."))
            hooks_before = set(vars(self._pm.hook))
            try:
                backend = self._register(plugin, plugin_name, expected, origin)
            except BaseException:
                self._rollback(plugin, plugin_name, hooks_before)
                raise
            self._backends[backend.name] = backend
            if expected is None:
                self._manual.add(backend.name)
            self._failures.pop(backend.name, None)
            self._types.clear()
        _notify()
        return backend

    def _register(self, plugin: Any, plugin_name: str, expected: str | None,
                  origin: str) -> Backend:
        who = f"unijax plugin {plugin_name!r} ({origin})"
        try:
            self._pm.register(plugin, name=plugin_name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as err:
            hook = self._bad_hook(plugin, str(err))
            raise PluginValidationError(message(
                f"{who} has a malformed hook implementation {hook}", got=str(err),
                fix="Match the names and parameters of unijax.dispatch.hookspecs.")) from err
        impls = [i for i in self._pm.hook.unijax_backend.get_hookimpls() if i.plugin is plugin]
        if not impls:
            raise PluginValidationError(message(
                f"{who} does not implement the hook unijax_backend",
                fix="Define `@hookimpl def unijax_backend() -> Backend`."))
        backend = self._call(who, "unijax_backend", impls[0].function)
        if not isinstance(backend, Backend):
            raise PluginValidationError(message(
                f"{who}: hook unijax_backend returned a {type(backend).__name__}",
                expected="a unijax.extend.Backend", fix="Return a Backend(...)."))
        if expected is not None and backend.name != expected:
            raise PluginValidationError(message(
                f"{who}: hook unijax_backend returned a backend named {backend.name!r}",
                expected=f"the entry point's name {expected!r}",
                fix="Make the entry point name and Backend.name agree."))
        if backend.name in self._backends:
            raise PluginError(message(
                f"{who} provides backend {backend.name!r}, which is already registered "
                f"by {self._backends[backend.name].plugin!r}",
                fix="Give the backend another name."))
        backend = dataclasses.replace(backend, plugin=origin)
        for impl in self._pm.hook.unijax_configure.get_hookimpls():
            if impl.plugin is plugin:
                self._call(who, "unijax_configure", impl.function, options)
        return backend

    @staticmethod
    def _call(who: str, hook: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except UnijaxError:
            raise
        except (Exception, SystemExit) as err:  # see _import_entry_point for SystemExit
            raise PluginError(message(f"{who}: hook {hook} raised",
                                      got=f"{type(err).__name__}: {err}",
                                      fix="Fix the plugin or leave it out with "
                                          "UNIJAX_PLUGINS.")) from err

    def _bad_hook(self, plugin: Any, text: str) -> str:
        for name, caller in vars(self._pm.hook).items():
            if any(i.plugin is plugin for i in caller.get_hookimpls()) and (
                not caller.has_spec() or repr(name) in text):
                return repr(name)
        for name in dir(plugin):
            if f"'{name}'" in text:
                return repr(name)
        return ""

    def _rollback(self, plugin: Any, plugin_name: str, hooks_before: set[str]) -> None:
        # pluggy records a plugin before validating its hooks; undo all of it.
        if self._pm.is_registered(plugin):
            self._pm.unregister(plugin=plugin)
        for name in set(vars(self._pm.hook)) - hooks_before:
            delattr(self._pm.hook, name)

    def load_all(self) -> None:
        """Load every allowed plugin; failures are remembered for ``list_backends``."""
        if self._all_loaded:
            return
        generation = self._generation
        for name in list(self.entry_points()):
            if name not in self._backends and name not in self._failures:
                try:
                    self._load_named(name, None)
                except UnijaxError as err:
                    with self._lock:
                        if generation == self._generation:
                            self._failures[name] = f"{type(err).__name__}: {err}"
        with self._lock:
            if generation == self._generation:
                self._all_loaded = True

    def backend_for_type(self, tp: type) -> Backend | None:
        """The backend whose ``array_modules`` holds ``tp``'s top-level module."""
        try:
            return self._types[tp]
        except KeyError:
            pass
        root = (getattr(tp, "__module__", None) or "").partition(".")[0]
        for _ in range(8):
            # A loaded backend named like the module that claims it is the owner whatever
            # else is installed (see _owner): no other plugin needs to load.
            named = self._backends.get(root)
            if named is None or root not in named.array_modules:
                named = None
                self.load_all()
            with self._lock:
                # The answer is cached only if no reload (which drops the backends loaded
                # from entry points) came between loading and now; else look again.
                if (self._all_loaded if named is None else self._backends.get(root) is named):
                    found = self._owner(root)
                    self._types[tp] = found
                    return found
        return self._owner(root)  # reloads without end: answer, but cache nothing

    def _owner(self, root: str) -> Backend | None:
        owners = [b for b in self._backends.values() if root in b.array_modules]
        # Where plugins overlap, the backend named like the module is the natural owner.
        owners.sort(key=lambda b: b.name != root)
        return owners[0] if owners else None

    def forget_entry_points(self) -> None:
        """Re-read the allow-list: drop every backend that came from an entry point."""
        with self._lock:
            for name in [n for n in self._backends if n not in self._manual]:
                backend = self._backends.pop(name)
                plugin = self._pm.get_plugin(name)
                if plugin is not None:
                    self._pm.unregister(plugin=plugin, name=name)
                del backend
            self._eps = None
            self._failures.clear()
            self._types.clear()
            self._all_loaded = False
            self._generation += 1
        _notify()

    def list_backends(self) -> list[PluginInfo]:
        """Every discovered plugin, loaded where allowed, with the reason when it fails."""
        infos = []
        eps = dict(self.entry_points())
        for name, ep in sorted({**self._excluded, **eps}.items()):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else None
            if name not in eps:
                infos.append(PluginInfo(name, ep.value, dist, allowed=False,
                                        error="not allowed by the 'plugins' option"))
                continue
            try:
                backend = self.get_backend(name, require_available=False)
                infos.append(PluginInfo(name, ep.value, dist, True, backend))
            except UnijaxError as err:
                infos.append(PluginInfo(name, ep.value, dist, True,
                                        error=f"{type(err).__name__}: {err}"))
        for name in sorted(self._manual):
            backend = self._backends[name]
            infos.append(PluginInfo(name, backend.plugin, None, True, backend))
        return infos


# --- entry points of one name from several distributions -------------------------------------

#: The distribution that ships the built-in backends.
BUILTIN_DISTRIBUTION = "unijax"


def _dist(ep: metadata.EntryPoint) -> str:
    """The normalised name of the distribution declaring ``ep`` (PEP 503)."""
    name = ep.dist.name if ep.dist is not None else ""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_label(ep: metadata.EntryPoint) -> str:
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else f"{ep.value!r}"


def _by_name(found: Iterable[metadata.EntryPoint]) -> dict[str, list[metadata.EntryPoint]]:
    """Entry points by name, one per distribution (a distribution found twice on
    ``sys.path``, say installed and in a build folder, is one)."""
    out: dict[str, list[metadata.EntryPoint]] = {}
    for ep in found:
        same = out.setdefault(ep.name, [])
        if all(_dist(other) != _dist(ep) for other in same):
            same.append(ep)
    return out


def _pick(name: str, candidates: list[metadata.EntryPoint],
          chosen: str | None) -> metadata.EntryPoint:
    """The entry point that provides backend ``name``.

    Several distributions may declare one name. The user decides with the ``plugins``
    option (``"name=distribution"``); otherwise a built-in backend stays built in, and
    between third parties the first on ``sys.path`` wins, as imports do. Either way the
    ones left out are reported, since installing a package must not swap a backend
    silently.

    Raises:
        ConfigError: ``chosen`` names a distribution that declares no backend ``name``.
    """
    if chosen is not None:
        for ep in candidates:
            if _dist(ep) == re.sub(r"[-_.]+", "-", chosen).lower():
                return ep
        raise ConfigError(message(
            f"the unijax option 'plugins' picks backend {name!r} from distribution "
            f"{options.shown(chosen)}, which declares no such backend",
            expected=f"one of: {', '.join(_dist_label(ep) for ep in candidates)}",
            got=f"{name}={options.shown(chosen, quoted=False)}",
            fix=f"Name an installed distribution that provides {name!r}, or write just "
                f"{name!r}."))
    builtin = [ep for ep in candidates if _dist(ep) == BUILTIN_DISTRIBUTION]
    used = builtin[0] if builtin else candidates[0]
    others = [ep for ep in candidates if ep is not used]
    if others:
        kind = "the built-in one" if builtin else "the first on sys.path"
        warnings.warn(
            f"unijax backend {name!r} is provided by {len(candidates)} installed "
            f"distributions: {_dist_label(used)} ({used.value}) is used, as {kind}; "
            f"{', '.join(f'{_dist_label(ep)} ({ep.value})' for ep in others)} is ignored. "
            f"To use another, name it in the 'plugins' option, e.g. UNIJAX_PLUGINS="
            f"'{name}={others[0].dist.name if others[0].dist else ''}' (with every other "
            "backend you use), or uninstall the one you do not want.",
            RuntimeWarning, stacklevel=2)
    return used


# --- the process-wide manager ---------------------------------------------------------------

_manager: PluginManager | None = None
_manager_lock = threading.Lock()
_listeners: list[Callable[[], None]] = []


def _get() -> PluginManager:
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
    return _manager


def _notify() -> None:
    for listener in list(_listeners):
        listener()


def _on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever the set of loaded backends changes (for caches)."""
    if listener not in _listeners:
        _listeners.append(listener)


def _config_changed(name: str, value: Any) -> None:
    if name in ("plugins", "disable_plugin_autoload", "*") and _manager is not None:
        _manager.forget_entry_points()


options.subscribe(_config_changed)


def _reset() -> None:
    """Forget every plugin, manual registrations included (tests only)."""
    global _manager
    with _manager_lock:
        _manager = None
    _notify()


def get_backend(name: str, *, require_available: bool = True,
                source: str | None = None) -> Backend:
    """The backend called ``name`` (see :meth:`PluginManager.get_backend`).

    Example:
        >>> get_backend("numpy").name
        'numpy'
    """
    manager = _manager or _get()
    backend = manager._backends.get(name)
    if backend is not None and backend._lazy.get("available"):
        return backend
    return manager.get_backend(name, require_available=require_available, source=source)


def backend_for_type(tp: type) -> Backend | None:
    """The backend owning arrays of type ``tp``, or None (cached per type).

    Example:
        >>> import numpy as np
        >>> backend_for_type(np.ndarray).name
        'numpy'
        >>> backend_for_type(float) is None
        True
    """
    manager = _manager or _get()
    try:
        return manager._types[tp]
    except KeyError:
        return manager.backend_for_type(tp)


def namespace_for_type(tp: type) -> Any:
    """The Array-API namespace for arrays of type ``tp``, or None if no backend owns it.

    Example:
        >>> import numpy as np
        >>> namespace_for_type(np.ndarray).__name__
        'array_api_compat.numpy'
    """
    backend = backend_for_type(tp)
    return None if backend is None else backend.namespace


def is_registered(backend: Backend) -> bool:
    """Whether ``backend`` is the one registered under its name now (for caches).

    Example:
        >>> is_registered(get_backend("numpy"))
        True
    """
    manager = _manager
    return manager is not None and manager._backends.get(backend.name) is backend


def list_backends() -> list[PluginInfo]:
    """Every discovered backend plugin, including those that fail to load (for the CLI).

    Example:
        >>> "numpy" in [info.name for info in list_backends()]
        True
    """
    return _get().list_backends()


def register_plugin(plugin: Any, name: str | None = None) -> Backend:
    """Register a plugin object by hand (for tests, or plugins shipped without packaging).

    Args:
        plugin: A module or object with a ``@hookimpl def unijax_backend()``.
        name: The plugin's name in error messages (default: the module's ``__name__``).

    Returns:
        The plugin's backend, now selectable by its name.

    Raises:
        PluginValidationError: Malformed hooks, or the hook returned no Backend.
        PluginError: The hook raised, or a backend of that name is already loaded.

    Example:
        >>> import types
        >>> from unijax.extend import Backend, hookimpl
        >>> mod = types.ModuleType("my_plugin")
        >>> mod.unijax_backend = hookimpl(lambda: Backend(
        ...     "doc_example", ("doc_example",), (), "", lambda: None))
        >>> register_plugin(mod).name
        'doc_example'
    """
    plugin_name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}"
    return _get().register(plugin, plugin_name)
