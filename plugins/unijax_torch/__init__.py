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
* **Dtypes**: torch's default float is float32, unijax's the configured default float
  dtype. When unijax uses torch and that is float64, the plugin sets torch's default dtype
  to float64, as the JAX plugin enables x64 (only ever upwards: other threads may still
  want float64), so ``xp.asarray(1.0)`` and ``xp.zeros(n)`` follow unijax's rule.
* **Control flow**: ``unijax.lax`` runs as Python loops on tensors, which ``torch.func``
  differentiates; under ``vmap`` a batched predicate or index selects per example with
  ``torch.where``, as ``jax.lax`` does (``unijax_torch.control_flow``).
* **Errors**: ``torch.func``'s errors for a misuse (data-dependent control flow or
  shapes under ``vmap``, ``.item()``) become unijax's (``unijax_torch.translate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, NativeTransforms, asks_float64, hookimpl
from unijax_torch.compiler import compile_program, status
from unijax_torch.translate import translate_error

_NATIVE = frozenset({"grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "hessian",
                     "vmap", "custom_vjp", "custom_jvp", "stop_gradient", "lax"})

_loaded: list[bool] = []  # non-empty once unijax uses torch; until then torch is the user's


def _follow_default_float(name: str, value: Any) -> None:
    # torch computes Python floats and creation functions in its default dtype; never in
    # float32 when float64 was asked. Only ever switched up: other threads may want it.
    if _loaded and asks_float64(name, value):
        import torch

        if torch.get_default_dtype() != torch.float64:
            torch.set_default_dtype(torch.float64)


def _load_namespace() -> Any:
    import array_api_compat.torch

    if not _loaded:
        _loaded.append(True)
    _follow_default_float("*", None)
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
    return x.detach().cpu()


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
        install_hint='pip install "unijax[torch]"',
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
        },
    )


@hookimpl
def unijax_configure(config: Any) -> None:
    """Follow later changes of the default float dtype (see ``_follow_default_float``)."""
    config.subscribe(_follow_default_float)
