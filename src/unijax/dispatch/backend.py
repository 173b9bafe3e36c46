"""The Backend object: the one thing a plugin gives unijax.

A plugin's ``unijax_backend`` hook returns a :class:`Backend`. It describes an array
library without importing it: the library is imported only when unijax first needs its
namespace (``Backend.namespace``), so ``import unijax`` and plugin discovery stay cheap.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backend", "Capabilities", "NativeTransforms"]


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
            ``"translate_error"``, ...; see the backend authors' guide).
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        """The backend's Array-API namespace, imported on first access."""
        try:
            return self._lazy["namespace"]
        except KeyError:
            return self._load("namespace", self.load_namespace)

    @property
    def native_transforms(self) -> NativeTransforms:
        """The backend's native transforms (empty when it has none)."""
        try:
            return self._lazy["native"]
        except KeyError:
            loader = self.load_native or NativeTransforms
            return self._load("native", loader)

    def _load(self, key: str, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._lazy:
                self._lazy[key] = loader()
            return self._lazy[key]

    def owns_type(self, tp: type) -> bool:
        """Whether arrays of type ``tp`` belong to this backend (by module name only)."""
        root = tp.__module__.partition(".")[0]
        return root in self.array_modules

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, plugin={self.plugin!r})"
