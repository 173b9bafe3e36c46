"""The public extension API: what plugin authors and rule authors import.

A backend plugin needs only :data:`hookimpl`, :class:`Backend` and, optionally,
:class:`Capabilities` and :class:`NativeTransforms`; see :mod:`unijax._hookspecs` for the
hook contract. :func:`register_plugin` registers a plugin object without packaging. A
backend's ``compiler`` may reuse :func:`compile_python`, the generator of straight-line
Python that NumPy's plugin uses; a backend with mutable arrays passes it a
:class:`BufferSupport` (its functions that write into ``out=``, as :class:`OutForm`) so
that large intermediates reuse memory.

A rule author adds an operation to the engine as a :class:`Primitive` with rules for the
transforms: :func:`def_jvp`, :func:`def_vjp` (with :func:`def_vjp_metadata` when the VJP
reads only shapes and dtypes), :func:`def_batch`, or :func:`def_nondifferentiable`. A
transform that meets a primitive without the rule it needs names the registrar to call.

Examples:
    A primitive with a reverse-mode rule:

    >>> import numpy as np
    >>> import unijax
    >>> cube_p = Primitive("docs_cube", impl=lambda xp, x: x * x * x)
    >>> @def_vjp(cube_p)
    ... def _cube_vjp(ct, primals, out, needs):
    ...     (x,) = primals
    ...     return (3.0 * x * x * ct,)
    >>> float(unijax.grad(lambda x: cube_p.bind(x))(np.asarray(2.0)))
    12.0

    A backend plugin:

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
from unijax._buffers import BufferSupport, OutForm
from unijax._core import Primitive
from unijax._hookspecs import hookimpl
from unijax._lower import compile_python
from unijax._plugins import register_plugin
from unijax._registry import (
    def_batch,
    def_jvp,
    def_nondifferentiable,
    def_vjp,
    def_vjp_metadata,
)

__all__ = [
    "Backend",
    "BufferSupport",
    "Capabilities",
    "NativeTransforms",
    "OutForm",
    "Primitive",
    "compile_python",
    "def_batch",
    "def_jvp",
    "def_nondifferentiable",
    "def_vjp",
    "def_vjp_metadata",
    "hookimpl",
    "register_plugin",
]
