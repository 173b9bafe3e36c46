"""unijax backend plugin for PyTorch.

Tensors are recognised by their type's module (``torch``), so nothing imports torch until
the backend is used. The namespace is ``array_api_compat.torch``.

* **Derivatives and vmap** are ``torch.func``'s (``unijax_torch.transforms``): ``grad``,
  ``value_and_grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``hessian`` and ``vmap``,
  behind JAX's signatures. Custom rules are ``torch.autograd.Function`` subclasses that
  compose with ``torch.func`` (``unijax_torch.custom``); ``stop_gradient`` is ``detach``.
* **jit** is the engine's: one staged program per signature, lowered to Python over
  torch and compiled by ``torch.compile`` once hot, where inductor works here
  (``unijax_torch.compiler``).
* **Dtypes**: the plugin never changes torch's global state. unijax's conversions pass
  the configured default float dtype explicitly; while unijax's transforms run the
  user's function (and inside the ``scope`` extra), a per-thread ``TorchFunctionMode``
  gives torch's creation functions called without a dtype the policy's float dtype and
  refuses Python numbers from differentiated tensors (``unijax_torch.guard``).
* **Complex values**: cotangents follow JAX's convention, the conjugate of torch's.
* **Control flow**: ``unijax.lax`` runs as Python loops on tensors, which ``torch.func``
  differentiates; under ``vmap`` a batched predicate or index selects per example with
  ``torch.where``, as ``jax.lax`` does (``unijax_torch.control_flow``).
* **Errors**: ``torch.func``'s errors for a misuse (data-dependent control flow or
  shapes under ``vmap``, ``.item()``) become unijax's (``unijax_torch.translate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, NativeTransforms, hookimpl
from unijax_torch.compiler import compile_program, status
from unijax_torch.translate import translate_error

_NATIVE = frozenset({"grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian",
                     "vmap", "custom_vjp", "custom_jvp", "stop_gradient", "lax"})

def _load_namespace() -> Any:
    import array_api_compat.torch

    return array_api_compat.torch


def _load_native() -> NativeTransforms:
    from unijax_torch.control_flow import TorchLoops
    from unijax_torch.custom import custom_jvp, custom_vjp, stop_gradient
    from unijax_torch.transforms import (
        grad,
        hessian,
        jacfwd,
        jacrev,
        jvp,
        value_and_grad,
        vjp,
        vmap,
    )

    return NativeTransforms(
        grad=grad, value_and_grad=value_and_grad, jvp=jvp, vjp=vjp, jacfwd=jacfwd,
        jacrev=jacrev, hessian=hessian, vmap=vmap, custom_vjp=custom_vjp,
        custom_jvp=custom_jvp, stop_gradient=stop_gradient, lax=TorchLoops)


def _scope() -> AbstractContextManager[Any]:
    # The context unijax computes with tensors in (the backend's "scope" extra): unijax's
    # dtype policy for torch's creation functions, per thread (unijax_torch.guard).
    from unijax_torch.guard import watching

    return watching()


def _devices() -> Sequence[Any]:
    import torch

    found: list[Any] = [torch.device("cpu")]
    if torch.cuda.is_available():
        found += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(torch.device("mps"))
    return tuple(found)


def _device_kind(x: Any) -> str:
    return str(x.device.type)


def _default_device_kind() -> str:
    import torch

    return str(torch.get_default_device().type)


def _parse_device(device: Any) -> Any:
    # unijax's spellings ("cpu", "gpu:1") and torch's ("cuda:1", "mps").
    import torch

    if isinstance(device, str):
        device = device.replace("gpu", "cuda", 1) if device.startswith("gpu") else device
        return torch.device(device)
    return device


def _to_host(x: Any) -> Any:
    # Views with the conjugate or negative bit set (xp.imag of a conjugate view) are
    # refused by Tensor.numpy() and exported without the sign by DLPack: materialise them.
    return x.detach().cpu().resolve_conj().resolve_neg()


def _is_tracer(x: Any) -> bool:
    # torch.func's wrappers (GradTrackingTensor, BatchedTensor) have type torch.Tensor.
    import torch

    return isinstance(x, torch.Tensor) and bool(
        torch._C._functorch.is_functorch_wrapped_tensor(x))


@hookimpl
def unijax_backend() -> Backend:
    """PyTorch tensors; derivatives and vmap by ``torch.func``, jit by the engine and
    ``torch.compile``.

    Example:
        >>> unijax_backend().name
        'torch'
    """
    return Backend(
        name="torch",
        array_modules=("torch",),
        requires=("torch", "array_api_compat"),
        install_hint="pip install torch",
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=_NATIVE, mutable_arrays=True, compiler=True),
        load_native=_load_native,
        devices=_devices,
        compiler=compile_program,
        version=lambda: metadata.version("torch"),
        extras={
            "device_kind": _device_kind,
            "default_device_kind": _default_device_kind,
            "parse_device": _parse_device,
            "to_host": _to_host,
            "translate_error": translate_error,
            "is_tracer": _is_tracer,
            "info": status,
            "scope": _scope,
        },
    )
