"""unijax backend plugin for Autograd.

Autograd's arrays are plain NumPy arrays, and ``ArrayBox`` while differentiating. Plain
arrays belong to the numpy backend when unijax picks a backend from input types, so
``array_modules`` names only ``autograd`` (its boxes); select this backend by name.

Reverse-mode AD is native: ``grad``, ``value_and_grad``, ``vjp`` and ``jacrev`` are thin
adapters with JAX's signatures (``argnums`` int or tuple, ``has_aux``, pytree arguments)
over ``autograd.grad`` and ``make_vjp`` (``unijax_autograd.transforms``), and
``custom_vjp``/``custom_jvp`` become autograd primitives (``unijax_autograd.custom``).
The engine supplies everything else. The namespace (``unijax_autograd.namespace``)
routes the Array API through ``autograd.numpy`` and completes ``ArrayBox`` as an Array
API array: ``device``, and in-place writes (``box[key] = value``), which are functional
updates that re-point the box, as the engine does for its own tracers.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, NativeTransforms, hookimpl

_NATIVE = frozenset({"grad", "value_and_grad", "vjp", "jacrev", "custom_vjp", "custom_jvp",
                     "stop_gradient", "lax"})


def _load_namespace() -> Any:
    import unijax_autograd.namespace

    return unijax_autograd.namespace


def _load_native() -> NativeTransforms:
    from unijax_autograd.custom import custom_jvp, custom_vjp, stop_gradient
    from unijax_autograd.loops import AutogradLoops
    from unijax_autograd.transforms import grad, jacrev, value_and_grad, vjp

    # Autograd traces eagerly: unijax.lax runs as Python loops its grad differentiates
    # (a while_loop whose predicate jit or vmap traces goes on in the engine).
    return NativeTransforms(grad=grad, value_and_grad=value_and_grad, vjp=vjp, jacrev=jacrev,
                            custom_vjp=custom_vjp, custom_jvp=custom_jvp,
                            stop_gradient=stop_gradient, lax=AutogradLoops)


def _is_box(x: Any) -> bool:
    from autograd.tracer import isbox

    return bool(isbox(x))


@hookimpl
def unijax_backend() -> Backend:
    """Autograd: NumPy arrays with native reverse-mode AD.

    Example:
        >>> unijax_backend().name
        'autograd'
    """
    return Backend(
        name="autograd",
        array_modules=("autograd",),
        requires=("autograd", "numpy", "array_api_compat"),
        install_hint="pip install autograd",
        load_namespace=_load_namespace,
        # x[i] = v works on plain arrays and, as a functional update that re-points the
        # box, on autograd's boxes (unijax_autograd.namespace installs ArrayBox.__setitem__).
        capabilities=Capabilities(native=_NATIVE, mutable_arrays=True),
        load_native=_load_native,
        devices=lambda: ("cpu",),
        version=lambda: metadata.version("autograd"),
        # NumPy arrays are autograd's own arrays: unijax passes them through unconverted.
        # Boxes are autograd's tracers: the engine's jit runs eagerly on them (a staged
        # program would hide custom rules from autograd's grad).
        extras={"accepts": ("numpy",), "is_tracer": _is_box},
    )
