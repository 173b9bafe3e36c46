"""unijax backend plugin for NumPy (through ``array_api_compat.numpy``).

NumPy has no transforms of its own: the unijax engine supplies grad, vmap and jit. ``jit``
lowers staged programs to generated straight-line Python calling NumPy directly, or, with
Numba installed, to machine code (``jit_compiler``: ``"auto"`` compiles a program once it
has run a few times, sooner with loops, at once when its machine code is on disk;
``"numba"`` at its first call; ``"python"`` never).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import unijax
from unijax.errors import MissingDependencyError, message
from unijax.extend import (
    Backend,
    BufferSupport,
    Capabilities,
    OutForm,
    compile_numba,
    compile_python,
    hookimpl,
    numba_available,
)


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


def _compile_python(program: Any, xp: Any) -> Any:
    return compile_python(program, xp, buffers=BUFFERS)


#: How many programs each lowering was chosen for (``unijax info``).
_counts = {"numba": 0, "python": 0}


def _compile(program: Any, xp: Any) -> Any:
    """The ``compiler`` hook: the lowering the ``jit_compiler`` option picks."""
    choice = unijax.config.read("jit_compiler")
    if choice == "python" or (choice == "auto" and not numba_available()):
        _counts["python"] += 1
        return _compile_python(program, xp)
    if not numba_available():
        raise MissingDependencyError(message(
            "jit on NumPy: the option jit_compiler='numba' needs Numba, which is not "
            "installed",
            fix='Install the extra (pip install "unijax[numba]"), or set jit_compiler to '
                "'auto' or 'python'."))
    _counts["numba"] += 1
    return compile_numba(program, xp, fallback=_compile_python,
                         when="now" if choice == "numba" else "auto",
                         threads=unijax.config.read("jit_threads"))


def status() -> str:
    """One line for ``unijax info``: how ``jit`` lowers programs on NumPy here.

    Example:
        >>> status().startswith("jit:")
        True
    """
    choice = unijax.config.read("jit_compiler")
    if choice == "python":
        how = "generated Python calling NumPy (jit_compiler='python')"
    elif not numba_available():
        how = ("generated Python calling NumPy (Numba is not installed)" if choice == "auto"
               else "Numba asked for but not installed")
    elif choice == "numba":
        how = "Numba machine code (jit_compiler='numba'), Python where Numba cannot"
    else:
        how = ("Numba machine code for programs with loops and hot programs, generated "
               "Python otherwise (jit_compiler='auto')")
    return (f"jit: {how}; programs given to the Numba lowering {_counts['numba']} (each "
            f"falls back to Python where it must), to the Python lowering {_counts['python']}")


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
        install_hint="pip install numpy",
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=frozenset(), mutable_arrays=True, compiler=True),
        compiler=_compile,
        devices=lambda: ("cpu",),
        version=lambda: metadata.version("numpy"),
        extras={"info": status},
    )
