"""unijax backend plugin for JAX.

JAX has every transform natively, so unijax delegates grad, vmap, jit, ... to it (the
conformance suite checks that they agree with the engine). Loading the namespace replays
unijax's pytree registrations into ``jax.tree_util`` so the same classes work under JAX's
own transforms. JAX's global x64 flag is never changed: unijax's calls run inside a
thread-local ``jax.enable_x64`` scope when its dtype policy asks for float64 (``_x64``),
and JAX's errors for misuse become unijax's (``_errors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax import tree_util
from unijax.extend import Backend, Capabilities, NativeTransforms, hookimpl

from ._errors import translate_error
from ._x64 import scope, scoped, scoped_factory, scoped_lax, scoped_result, scoped_vjp

_NATIVE = frozenset(NativeTransforms.__dataclass_fields__)


def _load_namespace() -> Any:
    import jax.numpy as jnp

    tree_util._replay_into_jax()
    return jnp


def _load_native() -> NativeTransforms:
    import jax

    # Each runs inside x64 when unijax's dtype policy asks for float64 (see _x64).
    return NativeTransforms(
        grad=scoped_factory(jax.grad), value_and_grad=scoped_factory(jax.value_and_grad),
        jvp=scoped(jax.jvp), vjp=scoped_vjp(jax.vjp), jacfwd=scoped_factory(jax.jacfwd),
        jacrev=scoped_factory(jax.jacrev), hessian=scoped_factory(jax.hessian),
        vmap=scoped_factory(jax.vmap), jit=scoped_factory(jax.jit),
        custom_vjp=scoped_result(jax.custom_vjp), custom_jvp=scoped_result(jax.custom_jvp),
        stop_gradient=scoped(jax.lax.stop_gradient), lax=scoped_lax(jax.lax),
        checkpoint=scoped_factory(jax.checkpoint),
    )


def _devices() -> Sequence[Any]:
    import jax

    return tuple(jax.devices())


def _device_kind(x: Any) -> str:
    try:
        return str(next(iter(x.devices())).platform)
    except Exception:  # a JAX tracer has no devices; it computes where JAX puts it
        return _default_device_kind()


def _default_device_kind() -> str:
    import jax

    return str(jax.devices()[0].platform)


def _to_host(x: Any) -> Any:
    import jax

    return jax.device_get(x)


def _block_until_ready(arrays: list[Any]) -> Any:
    import jax

    return jax.block_until_ready(arrays)


def _parse_device(device: Any) -> Any:
    # Accept the "platform:id" spelling unijax shows (e.g. "cpu:0", "gpu:1").
    if isinstance(device, str):
        for d in _devices():
            if device in (f"{d.platform}:{d.id}", str(d)):
                return d
    return device


@hookimpl
def unijax_backend() -> Backend:
    """JAX arrays; every transform is JAX's own.

    Example:
        >>> unijax_backend().name
        'jax'
    """
    return Backend(
        name="jax",
        array_modules=("jax", "jaxlib"),
        requires=("jax", "jaxlib"),
        install_hint="pip install jax",
        load_namespace=_load_namespace,
        capabilities=Capabilities(native=_NATIVE, mutable_arrays=False),
        load_native=_load_native,
        devices=_devices,
        version=lambda: metadata.version("jax"),
        extras={
            "device_kind": _device_kind,
            "default_device_kind": _default_device_kind,
            "parse_device": _parse_device,
            "to_host": _to_host,
            "block_until_ready": _block_until_ready,
            "translate_error": translate_error,
            "scope": scope,
        },
    )

