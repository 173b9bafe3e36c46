"""The Backend object: the one thing a plugin gives unijax.

A plugin's ``unijax_backend`` hook returns a :class:`Backend`. It describes an array
library without importing it: the library is imported only when unijax first needs its
namespace (``Backend.namespace``), so ``import unijax`` and plugin discovery stay cheap.

Every backend's loaders (``load_namespace``, ``load_native``) run one at a time, and never
beside user code that a transform runs in another thread (see :mod:`.loading`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unijax.dispatch.loading import LOADING, run_loader, wait_for_loads
from unijax.errors import PluginError, UnijaxError, message

__all__ = [
    "LOADING",
    "Backend",
    "Capabilities",
    "NativeTransforms",
    "load_for_call",
    "wait_for_loads",
]


def load_for_call(backend: Backend) -> None:
    """Load ``backend``'s namespace and native transforms if needed, then wait for the
    loads of other threads: what a call does before it runs user code.

    Both load under one hold of the loading lock, so threads waiting for loads are not
    released in between, to run user code while this thread starts its second import.

    Raises:
        PluginError: A loader of ``backend`` raised.
    """
    lazy = backend._lazy
    if "namespace" not in lazy or "native" not in lazy:
        run_loader(lambda: (backend.native_transforms, backend.namespace),
                   f"backend {backend.name!r}")
    if LOADING:
        wait_for_loads()


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


PYTHON_LOOPS = "python loops"
"""``NativeTransforms.lax`` for backends whose native transforms trace eagerly: the
constructs of ``unijax.lax`` run as Python loops on the backend's own values."""


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
            implicitly), ``"jit_key"`` (more of the engine's ``jit`` cache key), ``"unusable"`` (why
            the installed library cannot compute here, or None), ``"offline_check"`` (what
            ``unijax check`` runs instead then), ...;
            see the backend authors' guide).
        xfail_file: Optional path of the plugin's own list of expected conformance
            failures (the TOML format of ``unijax_conformance/xfail/``), read by the
            conformance suite and ``unijax check`` whenever this backend is checked.
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
    xfail_file: str | os.PathLike[str] | None = None
    _lazy: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def available(self) -> bool:
        """Whether the backend can compute here: every library in ``requires`` is installed
        (checked without importing) and the ``"unusable"`` extra, if any, finds no reason
        against it (CuPy installed on a machine without a CUDA device is not available)."""
        if "available" not in self._lazy:
            self._lazy["available"] = all(
                importlib.util.find_spec(mod) is not None for mod in self.requires
            ) and self.unusable is None
        return bool(self._lazy["available"])

    @property
    def unusable(self) -> str | None:
        """Why the installed library cannot compute here (e.g. ``"no CUDA device"``), from
        the plugin's ``"unusable"`` extra (``() -> str | None``); None if it can."""
        if "unusable" not in self._lazy:
            probe = self.extras.get("unusable")
            self._lazy["unusable"] = probe() if probe is not None else None
        reason = self._lazy["unusable"]
        return None if reason is None else str(reason)

    @property
    def namespace(self) -> Any:
        """The backend's Array-API namespace, imported on first access.

        The first access waits for the calls that other threads are running, and imports
        the library when none runs (see :mod:`unijax.dispatch.loading`); later accesses
        never wait: the namespace is whole by then.

        Raises:
            PluginError: ``load_namespace`` raised; the message names the plugin.
        """
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
        try:
            return self._lazy["native"]
        except KeyError:
            return self._load("native", "load_native", self.load_native or NativeTransforms)

    def _load(self, key: str, hook: str, loader: Callable[[], Any]) -> Any:
        def load() -> Any:
            if key not in self._lazy:  # another thread may have loaded it meanwhile
                self._lazy[key] = self._call_loader(hook, loader)
            return self._lazy[key]

        return run_loader(load, f"backend {self.name!r}")

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
