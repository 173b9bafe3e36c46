"""unijax backend plugin for NumPy (through ``array_api_compat.numpy``).

NumPy has no transforms of its own: the unijax engine supplies grad, vmap and jit, and
``jit`` lowers staged programs to generated straight-line Python calling NumPy directly.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.numpy

    return array_api_compat.numpy


def _compile(program: Any, xp: Any) -> Any:
    from unijax._lower import compile_python

    return compile_python(program, xp)


@hookimpl
def unijax_backend() -> Backend:
    """NumPy arrays, evaluated eagerly; every transform comes from the engine.

    Example:
        >>> unijax_backend().name
        'numpy'
    """
    return Backend(
        name="numpy",
        array_modules=("numpy",),
        requires=("numpy", "array_api_compat"),
        install_hint='pip install "unijax"',
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True, compiler=True),
        compiler=_compile,
        devices=lambda: ("cpu",),
        version=lambda: metadata.version("numpy"),
    )
