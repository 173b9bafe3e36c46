"""unijax backend plugin for ``array_api_strict``, the standard's reference namespace.

Useful to check that code relies on nothing beyond the Array API standard.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl
from unijax_array_api_strict._tracers import refuse_tracers


def _load_namespace() -> Any:
    import array_api_strict

    refuse_tracers(array_api_strict)
    return array_api_strict


def _devices() -> Sequence[Any]:
    import array_api_strict

    return tuple(array_api_strict.__array_namespace_info__().devices())


@hookimpl
def unijax_backend() -> Backend:
    """array_api_strict arrays (mutable, CPU); every transform comes from the engine.

    Example:
        >>> unijax_backend().name
        'array_api_strict'
    """
    return Backend(
        name="array_api_strict",
        array_modules=("array_api_strict",),
        requires=("array_api_strict",),
        install_hint="pip install array-api-strict",
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True),
        devices=_devices,
        version=lambda: metadata.version("array_api_strict"),
    )
