"""unijax: JAX-style transformations for Array API code, on every backend.

Write numerical code once against the Python Array API standard
(``xp = array_namespace(x)``); unijax gives it ``grad``, ``vmap``, ``jit`` and the rest on
NumPy, Autograd, JAX, CuPy, array-api-strict and any backend a plugin registers. The
backend is chosen by configuration (``UNIJAX_BACKEND``, ``[tool.unijax]`` in
``pyproject.toml``, :func:`set_backend`, :func:`use_backend`) or by the input arrays.

Importing unijax imports no array library: each is loaded on first use.

Example:
    >>> import numpy as np
    >>> import unijax
    >>> from array_api_compat import array_namespace
    >>> def f(x):
    ...     xp = array_namespace(x)
    ...     return xp.sum(x ** 2)
    >>> unijax.grad(f)(np.asarray([1.0, 2.0]))
    array([2., 4.])
"""

from unijax import errors, lax, random, tree_util
from unijax import tree_util as tree
from unijax.custom import custom_jvp, custom_vjp
from unijax.dispatch.config import (
    config,
    default_float_dtype,
    set_backend,
    set_default_float_dtype,
    use_backend,
    use_default_float_dtype,
)
from unijax.dispatch.plugins import list_backends, register_plugin
from unijax.dispatch.selection import (
    asarray,
    block_until_ready,
    current_backend,
    explain_backend,
    namespace,
    to_backend,
)
from unijax.lax import checkpoint, remat
from unijax.transforms import (
    grad,
    hessian,
    jacfwd,
    jacobian,
    jacrev,
    jit,
    jvp,
    make_ir,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,
)

__version__ = "0.1.0"

__all__ = [
    "asarray",
    "block_until_ready",
    "checkpoint",
    "config",
    "current_backend",
    "custom_jvp",
    "custom_vjp",
    "default_float_dtype",
    "errors",
    "explain_backend",
    "grad",
    "hessian",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jit",
    "jvp",
    "lax",
    "list_backends",
    "make_ir",
    "namespace",
    "random",
    "register_plugin",
    "remat",
    "set_backend",
    "set_default_float_dtype",
    "stop_gradient",
    "to_backend",
    "tree",
    "tree_util",
    "use_backend",
    "use_default_float_dtype",
    "value_and_grad",
    "vjp",
    "vmap",
]
