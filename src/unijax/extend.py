"""The public extension API: what plugin authors and rule authors import.

A backend plugin needs only :data:`hookimpl`, :class:`Backend` and, optionally,
:class:`Capabilities` and :class:`NativeTransforms`; see :mod:`unijax.dispatch.hookspecs` for the
hook contract. :func:`register_plugin` registers a plugin object without packaging. A
backend's ``compiler`` may reuse :func:`compile_python`, the generator of straight-line
Python that NumPy's plugin uses; a backend with mutable arrays passes it a
:class:`BufferSupport` (its functions that write into ``out=``, as :class:`OutForm`) so
that large intermediates reuse memory. A namespace without special functions of its own
can hand out the engine's as its ``special`` extension: :func:`special_functions`.

A compiler author (a backend's ``compiler`` hook that emits its own kernels, as CuPy's
does) reads the staged :class:`Program` (:class:`Equation`, :class:`Var`,
:class:`Literal`), groups elementwise chains with :func:`plan_fusion`, and falls back to
:func:`interpret` or to :func:`function_text` for the equations it does not fuse.
:func:`compile_numba` lowers a program to Numba machine code (NumPy's ``jit_compiler``),
falling back to another lowering for what Numba cannot compile; :func:`numba_available`
says whether Numba is installed without importing it. An executable a compiler returns
may say which lowering runs it with the attributes ``lowering``, ``lowering_reason`` and
``compile_seconds``, which ``jit(f).lowering(*args)`` reports as a :class:`Lowering`.

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

from unijax._python_loops import PythonLoops
from unijax.dispatch.backend import PYTHON_LOOPS, Backend, Capabilities, NativeTransforms
from unijax.dispatch.hookspecs import hookimpl
from unijax.dispatch.plugins import register_plugin
from unijax.engine.buffers import BufferSupport, OutForm
from unijax.engine.core import Primitive
from unijax.engine.fusion import Fused, plan_fusion
from unijax.engine.fusion import broadcast_shapes as fusion_broadcast_shapes
from unijax.engine.ir import Atom, Equation, Literal, Program, Var, dtype_name, var_names
from unijax.engine.jit import Lowering
from unijax.engine.lower import (
    RESERVED_NAMES,
    SourceGlobals,
    compile_python,
    function_text,
    interpret,
    param_operands,
)
from unijax.engine.lower_numba import compile_numba, numba_available
from unijax.engine.optimize import ScalarConstants
from unijax.engine.registry import (
    def_batch,
    def_jvp,
    def_nondifferentiable,
    def_vjp,
    def_vjp_metadata,
)
from unijax.engine.rules.special import special_functions

__all__ = [
    "PYTHON_LOOPS",
    "RESERVED_NAMES",
    "Atom",
    "Backend",
    "BufferSupport",
    "Capabilities",
    "Equation",
    "Fused",
    "Literal",
    "Lowering",
    "NativeTransforms",
    "OutForm",
    "Primitive",
    "Program",
    "PythonLoops",
    "ScalarConstants",
    "SourceGlobals",
    "Var",
    "compile_numba",
    "compile_python",
    "def_batch",
    "def_jvp",
    "def_nondifferentiable",
    "def_vjp",
    "def_vjp_metadata",
    "dtype_name",
    "function_text",
    "fusion_broadcast_shapes",
    "hookimpl",
    "interpret",
    "numba_available",
    "param_operands",
    "plan_fusion",
    "register_plugin",
    "special_functions",
    "var_names",
]
