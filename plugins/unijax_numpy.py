"""unijax backend plugin for NumPy (through ``array_api_compat.numpy``).

NumPy has no transforms of its own: the unijax engine supplies grad, vmap and jit.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.numpy

    return array_api_compat.numpy


@hookimpl
def unijax_backend() -> Backend:
    """NumPy arrays, evaluated eagerly; every transform comes from the engine."""
    return Backend(
        name="numpy",
        array_modules=("numpy",),
        requires=("numpy", "array_api_compat"),
        install_hint='pip install "unijax"',
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True),
        devices=lambda: ("cpu",),
        version=lambda: metadata.version("numpy"),
    )
