"""The Backend object: the one thing a plugin gives unijax.

A plugin's ``unijax_backend`` hook returns a :class:`Backend`. It describes an array
library without importing it: the library is imported only when unijax first needs its
namespace (``Backend.namespace``), so ``import unijax`` and plugin discovery stay cheap.

Every backend's loaders (``load_namespace``, ``load_native``) run one at a time, under one
process-wide lock, and a call that arrives while one runs waits for it
(:func:`wait_for_loads`). Importing a library puts its half-initialised module into
``sys.modules``, where other threads can see it: array_api_compat's type checks read
``sys.modules`` (``array_namespace`` on any array looks up ``jax.Array`` once ``jax`` is
there), and two threads importing one library (NumPy, through JAX and through
array-api-strict) can each be handed the other's partial module.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unijax.errors import PluginError, UnijaxError, message

__all__ = [
    "LOADING",
    "Backend",
    "Capabilities",
    "NativeTransforms",
    "load_for_call",
    "wait_for_loads",
]

_load_lock = threading.RLock()  # reentrant: one backend's loader may load another's
_load_done = threading.Condition()

#: Idents of the threads running a backend loader or queued for one; empty when none.
#: Hot paths read it without a lock (``if LOADING: wait_for_loads()``): a list is mutated
#: in place, so modules that import it see every change.
LOADING: list[int] = []


def wait_for_loads() -> None:
    """Block while another thread runs (or waits to run) a backend loader.

    A thread that is itself loading never waits: its loader may use unijax.

    Example:
        >>> wait_for_loads()  # nothing is loading: returns at once
    """
    if not LOADING:
        return
    me = threading.get_ident()
    with _load_done:
        while LOADING and me not in LOADING:
            _load_done.wait()


def load_for_call(backend: Backend) -> None:
    """Load ``backend``'s namespace and native transforms if needed, then wait for the
    loads of other threads: what a call does before it runs user code.

    Both load under one hold of the lock, so threads waiting for loads are not released
    in between, to run user code while this thread starts its second import.

    Raises:
        PluginError: A loader of ``backend`` raised.
    """
    lazy = backend._lazy
    if "namespace" not in lazy or "native" not in lazy:
        _run_loader(lambda: (backend.native_transforms, backend.namespace))
    if LOADING:
        wait_for_loads()


def _run_loader(loader: Callable[[], Any]) -> Any:
    me = threading.get_ident()
    with _load_done:
        LOADING.append(me)
    try:
        with _load_lock:
            return loader()
    finally:
        with _load_done:
            LOADING.remove(me)
            _load_done.notify_all()


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as declared by its plugin and checked by the conformance suite.

    Attributes:
        forward_ad: Forward-mode AD is available (natively or through the engine).
        reverse_ad: Reverse-mode AD is available (natively or through the engine).
        native: Names of the transforms the backend runs natively (e.g. ``{"grad", "jit"}``);
            every other transform comes from the unijax engine.
        x64: The backend computes in float64 when asked to.
        mutable_arrays: Arrays support ``x[i] = v`` in place.
        compiler: ``jit`` lowers to the backend's own compiler hook (otherwise the engine's
            IR interpreter runs the staged program).
    """

    forward_ad: bool = True
    reverse_ad: bool = True
    native: frozenset[str] = frozenset()
    x64: bool = True
    mutable_arrays: bool = True
    compiler: bool = False


@dataclass(frozen=True)
class NativeTransforms:
    """Native transforms, each with exactly JAX's signature and semantics.

    unijax validates arguments before calling these, so a native transform only does the
    mechanics. Any field left ``None`` comes from the unijax engine instead.
    """

    grad: Callable[..., Any] | None = None
    value_and_grad: Callable[..., Any] | None = None
    jvp: Callable[..., Any] | None = None
    vjp: Callable[..., Any] | None = None
    jacfwd: Callable[..., Any] | None = None
    jacrev: Callable[..., Any] | None = None
    hessian: Callable[..., Any] | None = None
    vmap: Callable[..., Any] | None = None
    jit: Callable[..., Any] | None = None
    custom_vjp: Callable[..., Any] | None = None
    custom_jvp: Callable[..., Any] | None = None
    stop_gradient: Callable[..., Any] | None = None
    #: Structured control flow: a module with JAX's ``cond``, ``switch``, ``while_loop``,
    #: ``fori_loop``, ``scan`` and ``map`` (``jax.lax``), or :data:`PYTHON_LOOPS` for a
    #: library whose transforms trace eagerly (Python loops on its own values then work
    #: under them), or a subclass of ``unijax.extend.PythonLoops`` that refines those
    #: loops; ``None``: the engine's primitives.
    lax: Any = None
    #: ``jax.checkpoint``'s signature and semantics.
    checkpoint: Callable[..., Any] | None = None


#: ``NativeTransforms.lax`` for backends whose native transforms trace eagerly: the
#: constructs of ``unijax.lax`` run as Python loops on the backend's own values.
PYTHON_LOOPS = "python loops"


def _no_devices() -> Sequence[Any]:
    return ()


@dataclass(frozen=True, eq=False)
class Backend:
    """One array library as unijax sees it.

    Attributes:
        name: The name users select it by (``UNIJAX_BACKEND=name``).
        array_modules: Top-level module names whose array types belong to this backend
            (``("jax", "jaxlib")``). Arrays are recognised by ``type(x).__module__`` so the
            library is never imported just to ask.
        requires: Import names that must be installed for the backend to work.
        install_hint: The command that installs what is missing.
        load_namespace: Returns the library's Array-API namespace; called once, lazily.
        capabilities: What the backend can do.
        native: Native transforms, loaded lazily on first use.
        devices: Returns the devices the backend can place arrays on.
        compiler: Optional ``compile(program, xp) -> callable`` lowering of a staged program.
        version: Returns the library's version string.
        plugin: The plugin that provided this backend (set by unijax).
        extras: Optional backend-specific hooks (``"device_kind"``, ``"to_host"``,
            ``"translate_error"``, ``"lazy_arrays"`` (never converted to another backend
            implicitly), ``"jit_key"`` (more of the engine's ``jit`` cache key), ...;
            see the backend authors' guide).
    """

    name: str
    array_modules: tuple[str, ...]
    requires: tuple[str, ...]
    install_hint: str
    load_namespace: Callable[[], Any]
    capabilities: Capabilities = field(default_factory=Capabilities)
    load_native: Callable[[], NativeTransforms] | None = None
    devices: Callable[[], Sequence[Any]] = _no_devices
    compiler: Callable[..., Any] | None = None
    version: Callable[[], str] | None = None
    plugin: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    _lazy: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def available(self) -> bool:
        """Whether every library in ``requires`` is installed (checked without importing)."""
        if "available" not in self._lazy:
            self._lazy["available"] = all(
                importlib.util.find_spec(mod) is not None for mod in self.requires
            )
        return bool(self._lazy["available"])

    @property
    def namespace(self) -> Any:
        """The backend's Array-API namespace, imported on first access.

        Waits while another thread loads a backend (see :func:`wait_for_loads`).

        Raises:
            PluginError: ``load_namespace`` raised; the message names the plugin.
        """
        if LOADING:
            wait_for_loads()
        try:
            return self._lazy["namespace"]
        except KeyError:
            return self._load("namespace", "load_namespace", self.load_namespace)

    @property
    def native_transforms(self) -> NativeTransforms:
        """The backend's native transforms (empty when it has none).

        Raises:
            PluginError: ``load_native`` raised; the message names the plugin.
        """
        if LOADING:
            wait_for_loads()
        try:
            return self._lazy["native"]
        except KeyError:
            return self._load("native", "load_native", self.load_native or NativeTransforms)

    def _load(self, key: str, hook: str, loader: Callable[[], Any]) -> Any:
        def load() -> Any:
            if key not in self._lazy:  # another thread may have loaded it meanwhile
                self._lazy[key] = self._call_loader(hook, loader)
            return self._lazy[key]

        return _run_loader(load)

    def _call_loader(self, hook: str, loader: Callable[[], Any]) -> Any:
        try:
            return loader()
        except UnijaxError:
            raise
        except (Exception, SystemExit) as err:
            # SystemExit too: a library that exits while it is imported must not end the
            # user's program from inside a unijax call.
            raise PluginError(message(
                f"unijax backend {self.name!r} (plugin {self.plugin or 'unknown'!r}) could "
                f"not be loaded: its {hook} raised",
                got=f"{type(err).__name__}: {err}",
                fix=f"Check that the library works on its own ({self.install_hint}), fix "
                    "the plugin, or choose another backend.")) from err

    def owns_type(self, tp: type) -> bool:
        """Whether arrays of type ``tp`` belong to this backend (by module name only)."""
        root = tp.__module__.partition(".")[0]
        return root in self.array_modules

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, plugin={self.plugin!r})"
