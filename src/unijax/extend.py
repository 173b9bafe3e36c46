"""The public extension API: what plugin authors (and, later, rule authors) import.

A backend plugin needs only :data:`hookimpl`, :class:`Backend` and, optionally,
:class:`Capabilities` and :class:`NativeTransforms`; see :mod:`unijax._hookspecs` for the
hook contract. :func:`register_plugin` registers a plugin object without packaging.

Example:
    >>> from unijax.extend import Backend, hookimpl
    >>> @hookimpl
    ... def unijax_backend():
    ...     return Backend("mylib", ("mylib",), ("mylib",), "pip install mylib",
    ...                    load_namespace=lambda: None)
    >>> unijax_backend().name
    'mylib'
"""

from __future__ import annotations

from unijax._backend import Backend, Capabilities, NativeTransforms
from unijax._hookspecs import hookimpl
from unijax._plugins import register_plugin

__all__ = [
    "Backend",
    "Capabilities",
    "NativeTransforms",
    "hookimpl",
    "register_plugin",
]

# --- plugin authors (above) --- engine extension API is appended below ---------------------
