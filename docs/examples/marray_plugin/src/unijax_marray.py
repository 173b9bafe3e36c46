"""A unijax backend plugin for ``marray``: masked arrays over NumPy, as the backend ``marray``.

``marray`` wraps another Array API library: ``marray.masked_namespace(xp)`` is a namespace
whose arrays (``MArray``) hold a ``data`` array of ``xp`` and a boolean ``mask``. The
arrays are a class of their own, made inside that function, so the plugin tells unijax how
to recognise them (``array_modules``) and how to copy one to NumPy (``to_host``).

Install the package (``pip install -e .`` in this directory) and the backend is selectable
by name::

    import unijax
    with unijax.use_backend("marray"):
        unijax.grad(loss)(w)

and checked with one command (``unijax check marray``), which reads the expected failures
this plugin ships (``xfail_file``).

The module imports no array library at import time: unijax may load plugin modules to
recognise array types, and ``import unijax`` must stay cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.numpy
    import marray

    # Over array_api_compat's NumPy namespace, which follows the standard more closely
    # than NumPy itself (e.g. copy= in asarray).
    return marray.masked_namespace(array_api_compat.numpy)


def _to_host(x: Any) -> Any:
    # The masked array's data, as NumPy: the suite compares unmasked values. A masked
    # element has no defined value, so a library with masks fills them first.
    import numpy as np

    return np.asarray(x.data)


def _devices() -> Sequence[str]:
    return ("cpu",)


@hookimpl
def unijax_backend() -> Backend:
    """marray's masked arrays over NumPy; every transform comes from the unijax engine."""
    return Backend(
        name="marray",  # must equal the entry point's name
        # MArray is defined in the module "marray" (type(x).__module__), whatever it wraps.
        array_modules=("marray",),
        requires=("marray", "array_api_compat", "numpy"),
        install_hint="pip install marray",
        load_namespace=_load_namespace,
        # No native transforms: grad, vmap, jit, ... all come from the engine. marray's
        # arrays support x[key] = v.
        capabilities=Capabilities(native=frozenset(), x64=True, mutable_arrays=True),
        devices=_devices,
        version=lambda: metadata.version("marray"),
        extras={"to_host": _to_host},
        # The expected failures shipped with the plugin: `unijax check marray` reads them.
        xfail_file=Path(__file__).with_name("unijax_marray_xfail.toml"),
    )
