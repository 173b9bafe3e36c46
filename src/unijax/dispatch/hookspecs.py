"""The hook contract between unijax and its backend plugins.

A backend plugin is a module (or any object) with functions marked by :data:`hookimpl`
whose names and parameters match the specifications below. It is found through an entry
point of the group ``unijax.backends`` whose *name* is the backend's name::

    [project.entry-points."unijax.backends"]
    mylib = "unijax_mylib"

unijax reads entry points from package metadata only, and imports a plugin module the
first time its backend is needed. pluggy checks every hook implementation against these
specifications when the plugin is registered: a misspelt hook name or a parameter the
specification does not have is reported as :class:`unijax.errors.PluginValidationError`
naming the plugin and the hook, and the plugin is not registered.

Example:
    A complete plugin module (the library itself is imported only in ``_load``):

    >>> from unijax.extend import Backend, hookimpl
    >>> def _load():
    ...     import array_api_compat.numpy
    ...     return array_api_compat.numpy
    >>> @hookimpl
    ... def unijax_backend():
    ...     return Backend(name="mynumpy", array_modules=("numpy",), requires=("numpy",),
    ...                    install_hint="pip install numpy", load_namespace=_load)
    >>> unijax_backend().name
    'mynumpy'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from unijax.dispatch.backend import Backend

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "unijax_backend", "unijax_configure"]

#: The pluggy project name; hook functions are prefixed ``unijax_``.
PROJECT_NAME = "unijax"

#: Marks the specifications below (used by unijax only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's hook implementations: ``@hookimpl def unijax_backend(): ...``."""


@hookspec(firstresult=True)
def unijax_backend() -> Backend:
    """Describe the backend this plugin provides.

    Called exactly once, when the plugin is loaded: the first time the backend is asked
    for by name, or when unijax first needs to recognise an array type. The result is
    cached for the life of the process.

    Returns:
        A :class:`unijax.extend.Backend`. Its ``name`` must equal the entry point's name,
        and ``array_modules`` must list the top-level modules whose array types belong
        to the backend (``type(x).__module__`` is compared, so nothing is imported).

    This hook must not:
        * import the array library, directly or indirectly: plugin modules are loaded
          together to recognise array types, and ``import unijax`` must stay cheap. Put
          imports inside ``load_namespace``, ``load_native``, ``devices`` and ``version``;
        * change global state (configure the array library, register pytrees): do that
          inside ``load_namespace``, which runs only when the backend is really used;
        * return anything but a ``Backend`` (that is a
          :class:`~unijax.errors.PluginValidationError`).

    An exception raised here (``SystemExit`` included, as when the plugin module is
    imported) is reported as :class:`~unijax.errors.PluginError` naming the plugin, and
    the plugin is left unregistered.

    The backend's ``load_namespace`` and ``load_native`` run one at a time across all
    backends, under a process-wide lock, and calls in other threads wait for them, so an
    import inside them is never seen half done. An exception they raise is reported as
    :class:`~unijax.errors.PluginError` naming the plugin and the loader, and the next use
    of the backend tries again.
    """
    raise NotImplementedError  # pragma: no cover - a specification only


@hookspec
def unijax_configure(config: Any) -> None:
    """React to unijax's configuration (optional).

    Called once, right after :func:`unijax_backend` succeeded for this plugin, with the
    :data:`unijax.config` object. Typical use is ``config.subscribe(callback)`` to follow
    later changes of an option (the JAX plugin enables x64 when the default float dtype
    becomes ``"float64"``).

    Args:
        config: The :data:`unijax.config` object (``read``, ``update``, ``subscribe``).

    This hook must not:
        * import the array library (the backend may never be used in this process);
        * call ``config.update``: options belong to the user, not to plugins.

    An exception raised here is reported as :class:`~unijax.errors.PluginError` and the
    plugin is unregistered again, as if it had never loaded.
    """
