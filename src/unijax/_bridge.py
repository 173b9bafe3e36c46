"""Connects the engine to the dispatcher; imported once, by :mod:`unijax.transforms`.

The engine and the dispatcher are siblings that never import each other. The engine
computes on whatever namespace a value's type maps to, and reads the default float dtype
through a function; this module installs the dispatcher's answers to both (the backend
plugin that owns a type decides its namespace, and unijax's configuration decides the
dtype), and empties the engine's per-type cache whenever the loaded backends change.
"""

from __future__ import annotations

from unijax.dispatch import plugins
from unijax.dispatch.options import default_float_dtype
from unijax.dispatch.selection import namespace
from unijax.engine import core, frontend

__all__: list[str] = []

core.set_namespace_source(plugins.namespace_for_type, namespace)
frontend.set_float_dtype_source(default_float_dtype)
plugins._on_change(core.clear_namespace_cache)
