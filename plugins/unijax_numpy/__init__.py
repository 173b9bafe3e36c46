"""unijax backend plugin for NumPy (through ``array_api_compat.numpy``).

NumPy has no transforms of its own: the unijax engine supplies grad, vmap and jit, and
``jit`` lowers staged programs to generated straight-line Python calling NumPy directly.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from unijax.extend import Backend, BufferSupport, Capabilities, OutForm, compile_python, hookimpl


def _load_namespace() -> Any:
    import array_api_compat.numpy

    return array_api_compat.numpy


#: Functions whose NumPy implementation always returns a new array (never a view).
_RETURNS_NEW = frozenset({
    "all", "any", "argmax", "argmin", "concat", "count_nonzero", "cumulative_prod",
    "cumulative_sum", "max", "mean", "min", "prod", "stack", "std", "sum", "tensordot",
    "var", "vecdot", "where",
})


def out_form(primitive: Any) -> Any:
    """NumPy's functions that write into ``out=``: the elementwise ufuncs and ``matmul``."""
    import numpy as np

    if primitive.namespace:
        return None
    if primitive.name == "matmul":  # array_api_compat's matmul is np.matmul
        return OutForm(np.matmul, elementwise=False)
    function = getattr(_load_namespace(), primitive.name, None)
    if isinstance(function, np.ufunc) and function.signature is None and function.nout == 1:
        return OutForm(function, elementwise=True)
    return None


def returns_new(primitive: Any) -> bool:
    """Whether NumPy's implementation of ``primitive`` always returns a new array."""
    return not primitive.namespace and primitive.name in _RETURNS_NEW


#: How generated code writes into NumPy arrays (see ``unijax.engine.buffers``).
BUFFERS = BufferSupport(out_form, returns_new)


def _compile(program: Any, xp: Any) -> Any:
    return compile_python(program, xp, buffers=BUFFERS)


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
