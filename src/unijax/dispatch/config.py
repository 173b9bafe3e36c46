"""The public face of unijax's options: ``unijax.config`` and the backend setters.

The option table and its sources live in :mod:`unijax.dispatch.options`; this module
adds what needs the plugins as well: a backend name is checked against the installed
backends before it is stored, so a typo fails where it is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

from unijax.dispatch import options
from unijax.dispatch.options import default_float_dtype, reload
from unijax.dispatch.plugins import get_backend

__all__ = [
    "Config",
    "config",
    "default_float_dtype",
    "reload",
    "set_backend",
    "set_default_float_dtype",
    "use_backend",
    "use_default_float_dtype",
]

# --- the public object ------------------------------------------------------------------


class Config:
    """unijax's options. Use the module-level :data:`config` instance.

    Example:
        >>> import unijax
        >>> unijax.config.read("jit_cache_size") >= 0
        True
        >>> [opt.name for opt in unijax.config.options()][:2]
        ['backend', 'default_float_dtype']
    """

    def read(self, name: str) -> Any:
        """The value of option ``name`` in effect here (context overrides included).

        Raises:
            ConfigError: ``name`` is not an option, or its source holds an invalid value.

        Example:
            >>> import unijax
            >>> with unijax.use_default_float_dtype("float32"):
            ...     unijax.config.read("default_float_dtype")
            'float32'
        """
        return options.read(name)

    def source(self, name: str) -> str:
        """A sentence saying where the process-wide value of ``name`` comes from.

        Example:
            >>> import unijax
            >>> unijax.config.update("jit_cache_size", 64)
            >>> unijax.config.source("jit_cache_size")
            "unijax.config.update('jit_cache_size', 64) was called"
            >>> unijax.config.update("jit_cache_size", None)
        """
        return options._lookup(name)[2]

    def update(self, name: str, value: Any) -> None:
        """Set option ``name`` for the whole process, validated now.

        ``update("backend", name)`` is :func:`set_backend`. ``None`` restores the
        environment/file/default value.

        Raises:
            ConfigError: Unknown option or invalid value (nothing is changed).
            UnknownBackendError: ``backend`` names no installed backend.

        Example:
            >>> import unijax
            >>> unijax.config.update("jit_cache_size", 16)
            >>> unijax.config.read("jit_cache_size")
            16
            >>> unijax.config.update("jit_cache_size", None)
        """
        opt = options._option(name)
        if value is None:
            options.clear_runtime(name)
            return
        value = options._validated(opt, value, f"unijax.config.update({name!r}, ...)",
                           "Pass a valid value.")
        if name == "backend":
            get_backend(value)  # unknown or unavailable backends raise, nothing changes
            how = f"unijax.set_backend({value!r}) was called"
        else:
            how = f"unijax.config.update({name!r}, {options.shown(value)}) was called"
        options.set_runtime(name, value, how)

    def options(self) -> tuple[options.Option, ...]:
        """Every option with its default, environment variable and help (for docs).

        Example:
            >>> import unijax
            >>> "UNIJAX_BACKEND" in [o.env for o in unijax.config.options()]
            True
        """
        return options.options()

    def subscribe(self, callback: Callable[[str, Any], None]) -> None:
        """Call ``callback(name, value)`` after an option changes (``name`` "*" on reload).

        Context managers notify on entry too, so a plugin can prepare for a value (the
        JAX plugin enables x64 for ``default_float_dtype="float64"``). Callbacks must be
        cheap and must not raise.

        Example:
            >>> import unijax
            >>> def show(name, value):
            ...     print(name, value)
            >>> unijax.config.subscribe(show)
            >>> unijax.config.update("jit_cache_size", 8)
            jit_cache_size 8
            >>> unijax.config.unsubscribe(show)
            >>> unijax.config.update("jit_cache_size", None)
        """
        options.subscribe(callback)

    def unsubscribe(self, callback: Callable[[str, Any], None]) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        options.unsubscribe(callback)

    def reload(self) -> None:
        """Read the environment and the config file again; see :func:`reload`.

        Example:
            >>> import unijax
            >>> unijax.config.reload()
        """
        options.reload()

    def __repr__(self) -> str:
        return "unijax.config(" + ", ".join(
            f"{n}={self.read(n)!r}" for n in options._OPTIONS) + ")"


#: unijax's options.
config = Config()

# --- backend ----------------------------------------------------------------------------


def set_backend(name: str | None) -> None:
    """Set the process-wide default backend.

    Args:
        name: A backend name (see ``unijax info``), or None to fall back to
            ``UNIJAX_BACKEND``, the config file and the input arrays.

    Raises:
        UnknownBackendError: No installed plugin provides ``name``; nothing changes.
        BackendUnavailableError: The backend's array library is not installed.

    Example:
        >>> import unijax
        >>> unijax.set_backend("numpy")
        >>> unijax.explain_backend().rule
        'set_backend'
        >>> unijax.set_backend(None)
    """
    config.update("backend", name)


class _UseBackend(contextlib.ContextDecorator):
    """What :func:`use_backend` returns (also usable as a decorator)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._tokens: list[contextvars.Token[Any]] = []

    def _recreate_cm(self) -> _UseBackend:
        return _UseBackend(self.name)  # each decorated call enters its own

    def __enter__(self) -> None:
        name = self.name
        if name is not None:
            name = options._validated(options._OPTIONS["backend"], name, "use_backend()",
                                      "Pass a backend name.")
            get_backend(name)
        value: Any = name
        owner = sys._getframe(1)
        if name is not None and owner.f_code.co_flags & _GENERATOR_FLAGS and not (
                owner.f_back is not None and str(owner.f_back.f_globals.get(
                    "__name__", "")).startswith(_CONTEXT_MANAGER_DRIVERS)):
            # A generator that yields inside the block must not hand its choice to the
            # code it yields to (see GeneratorChoice), unless it is the body of a context
            # manager (@contextlib.contextmanager, a pytest fixture): there, handing the
            # choice to the caller's with-block is the point.
            value = options.GeneratorChoice(name, owner, options._backend_ctx.get())
        self._tokens.append(options._backend_ctx.set(value))

    def __exit__(self, *exc: object) -> None:
        options._backend_ctx.reset(self._tokens.pop())


_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
#: Modules whose frames drive a generator as a context manager's body (pluggy: hook
#: wrappers, which run the wrapped hooks at their yield).
_CONTEXT_MANAGER_DRIVERS = ("contextlib", "_pytest.", "pytest_asyncio", "pluggy.")


def use_backend(name: str | None) -> contextlib.AbstractContextManager[None]:
    """Use backend ``name`` inside a ``with`` block (this thread or task only).

    Leaving the block restores exactly the previous choice, also on an exception. Inside
    a generator, the choice holds for the generator's own code: the code it yields to
    keeps its own backend (a generator that is a context manager's body, under
    ``@contextlib.contextmanager`` or as a pytest fixture, hands it to the ``with``
    block, as intended). It also works as a decorator.

    Args:
        name: A backend name, or None to fall back to the process-wide rules.

    Raises:
        UnknownBackendError: No installed plugin provides ``name`` (raised on entry).

    Example:
        >>> import unijax
        >>> with unijax.use_backend("numpy"):
        ...     unijax.current_backend()
        'numpy'
    """
    return _UseBackend(name)


# --- default float dtype ----------------------------------------------------------------


def set_default_float_dtype(dtype: Any) -> None:
    """Set the process-wide default float dtype.

    Args:
        dtype: ``"float64"``, ``"float32"`` or a dtype object with that name; None
            restores the environment/file/default value.

    Raises:
        ConfigError: Any other value (nothing changes).

    Example:
        >>> import unijax
        >>> unijax.set_default_float_dtype("float64")
        >>> unijax.default_float_dtype()
        'float64'
    """
    config.update("default_float_dtype", dtype)


@contextlib.contextmanager
def use_default_float_dtype(dtype: Any) -> Iterator[None]:
    """Use ``dtype`` as the default float dtype inside a ``with`` block (context-local).

    Example:
        >>> import unijax
        >>> with unijax.use_default_float_dtype("float32"):
        ...     unijax.default_float_dtype()
        'float32'
    """
    value = options._validated(options._OPTIONS["default_float_dtype"], dtype,
                               "use_default_float_dtype()", "Pass 'float64' or 'float32'.")
    token = options._float_ctx.set(value)
    try:
        options._notify("default_float_dtype", value)
        yield
    finally:
        options._float_ctx.reset(token)
