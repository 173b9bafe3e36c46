"""Dispatch: options and their sources, plugins, backends and the choice among them.

It knows nothing of the engine's internals: a value is recognised as a unijax tracer by
the ``__unijax_tracer__`` marker of its type, and a backend's arrays by their type's
module, without importing the array library.
"""
