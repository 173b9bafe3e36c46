"""A complete unijax backend plugin: NumPy's Array API namespace under the name
``example_numpy``.

Install the package (``pip install .``) and the backend is selectable by name::

    import unijax
    with unijax.use_backend("example_numpy"):
        unijax.grad(loss)(w)

and its conformance is checked with one command::

    pytest --pyargs unijax_conformance --unijax-backend example_numpy

The module imports no array library at import time: unijax loads plugin modules to
recognise array types, and ``import unijax`` must stay cheap. NumPy is imported in
``_load_namespace``, which unijax calls the first time the backend computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.numpy

    return array_api_compat.numpy


def _devices() -> Sequence[str]:
    return ("cpu",)


@hookimpl
def unijax_backend() -> Backend:
    """NumPy arrays computed eagerly; every transform comes from the unijax engine."""
    return Backend(
        name="example_numpy",  # must equal the entry point's name
        # NumPy arrays belong to the built-in "numpy" backend when unijax chooses by input
        # type; this backend is chosen by name (backend=, use_backend, UNIJAX_BACKEND).
        array_modules=("numpy",),
        requires=("numpy", "array_api_compat"),
        install_hint="pip install unijax-example-backend",
        load_namespace=_load_namespace,
        # No native transforms: grad, vmap, jit, ... all come from the engine. The suite
        # checks each of these declarations against what it observes.
        capabilities=Capabilities(native=frozenset(), x64=True, mutable_arrays=True),
        devices=_devices,
        version=lambda: metadata.version("numpy"),
    )
