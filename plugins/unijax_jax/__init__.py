"""unijax backend plugin for JAX.

JAX has every transform natively, so unijax delegates grad, vmap, jit, ... to it (the
conformance suite checks that they agree with the engine). Loading the namespace enables
x64 when the default float dtype is float64, and replays unijax's pytree registrations
into ``jax.tree_util`` so the same classes work under JAX's own transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax import tree_util
from unijax.errors import (
    ConcretizationError,
    ControlFlowError,
    UnsupportedTransformError,
    message,
)
from unijax.extend import Backend, Capabilities, NativeTransforms, asks_float64, hookimpl

_NATIVE = frozenset(NativeTransforms.__dataclass_fields__)


_loaded: list[bool] = []  # non-empty once unijax uses JAX; until then JAX is the user's


def _enable_x64_if_asked(name: str, value: Any) -> None:
    # JAX silently computes float32 without x64; never do that when float64 was asked.
    # x64 is only ever switched on: other threads may still want float64.
    if _loaded and asks_float64(name, value):
        import jax

        if not jax.config.read("jax_enable_x64"):
            jax.config.update("jax_enable_x64", True)


def _load_namespace() -> Any:
    import jax.numpy as jnp

    if not _loaded:
        _loaded.append(True)
    _enable_x64_if_asked("*", None)
    tree_util._replay_into_jax()
    return jnp


def _load_native() -> NativeTransforms:
    import jax

    return NativeTransforms(
        grad=jax.grad, value_and_grad=jax.value_and_grad, jvp=jax.jvp, vjp=jax.vjp,
        jacfwd=jax.jacfwd, jacrev=jax.jacrev, hessian=jax.hessian, vmap=jax.vmap,
        jit=jax.jit, custom_vjp=jax.custom_vjp, custom_jvp=jax.custom_jvp,
        stop_gradient=jax.lax.stop_gradient, lax=jax.lax, checkpoint=jax.checkpoint,
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


def _parse_device(device: Any) -> Any:
    # Accept the "platform:id" spelling unijax shows (e.g. "cpu:0", "gpu:1").
    if isinstance(device, str):
        for d in _devices():
            if device in (f"{d.platform}:{d.id}", str(d)):
                return d
    return device


# JAX's errors for a misuse that needs a traced value's concrete value, by class name
# (looked up in jax.errors, whose classes exist only once JAX is imported), with what
# unijax says about it: the same words as the engine's ConcretizationError for it.
_CONCRETE_VALUE = (
    "Python needed the concrete value of an array traced by JAX (bool(), int(), float(), "
    "an `if` or a loop bound on it) inside a transform; under jit and vmap the value is "
    "abstract",
    "Mark the argument static with jit(f, static_argnums=...) or static_argnames=..., or "
    "write the branch as array code: xp.where(cond, a, b) instead of `a if cond else b`.",
)
_CONCRETIZATION_ERRORS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("ConcretizationTypeError", _CONCRETE_VALUE),  # and TracerBoolConversionError
    ("TracerIntegerConversionError", _CONCRETE_VALUE),  # range(x), a list index
    ("TracerArrayConversionError", (
        "A traced array was converted to a NumPy array (np.asarray or similar) inside a "
        "unijax transform",
        "Use the namespace of the input, xp = array_namespace(x), instead of numpy "
        "functions inside transformed code.",
    )),
    ("NonConcreteBooleanIndexError", (
        "x[mask] with a traced boolean mask makes an array whose shape depends on the "
        "mask's values, which vmap and jit cannot know",
        "Keep the shape static: use xp.where(mask, x, 0) (and reduce it) instead of "
        "x[mask]; x[mask] = value with a scalar value works everywhere.",
    )),
)


# jax.lax's messages for branches or a carry whose types differ, and for reverse mode
# through a while loop; unijax raises its own errors for them on every backend.
_MISMATCH_MESSAGES = (
    "outputs must have the same pytree structure", "must have equal output types",
    "carry input and carry output must have",
)
_MISMATCH_FIX = ("Make every branch return the same structure, shapes and dtypes, and a loop "
                 "body return a carry of the same structure, shapes and dtypes as the "
                 "initial one.")
_WHILE_REVERSE = "Reverse-mode differentiation does not work for lax.while_loop"
_JVP_OF_CUSTOM_VJP = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


def _translate_error(err: Exception) -> Exception | None:
    """unijax's error for JAX's: a traced value used where a concrete one is needed, and
    control flow misuse."""
    import jax

    lines = str(err).strip().splitlines()
    first_line = (lines[0] if lines else type(err).__name__).rstrip(".:")
    for name, (what, fix) in _CONCRETIZATION_ERRORS:
        jax_error = getattr(jax.errors, name, None)
        if jax_error is not None and isinstance(err, jax_error):
            return ConcretizationError(message(what, got=first_line, fix=fix))
    if isinstance(err, TypeError) and any(m in first_line for m in _MISMATCH_MESSAGES):
        return ControlFlowError(message(
            "a control-flow construct got branches or a loop carry whose types do not match",
            got=first_line, fix=_MISMATCH_FIX))
    if isinstance(err, TypeError) and first_line.startswith(_JVP_OF_CUSTOM_VJP):
        return UnsupportedTransformError(message(
            "forward-mode differentiation (jvp, jacfwd, hessian) of a custom_vjp function "
            "is not defined: a custom VJP gives only reverse-mode rules",
            fix="Use reverse mode (grad, vjp, jacrev), or define the function with "
                "unijax.custom_jvp instead."))
    if isinstance(err, ValueError) and first_line.startswith(_WHILE_REVERSE):
        return UnsupportedTransformError(message(
            "reverse-mode differentiation (grad, vjp, jacrev) through while_loop is not "
            "defined: its number of iterations is only known by running it, so there is no "
            "fixed sequence of steps to run backwards (as in JAX)",
            fix="Use unijax.lax.fori_loop with Python int bounds (it becomes a scan) or "
                "unijax.lax.scan with a fixed length; forward mode (jvp, jacfwd) works "
                "through while_loop."))
    return None


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
        install_hint='pip install "unijax[jax]"',
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
            "translate_error": _translate_error,
        },
    )


@hookimpl
def unijax_configure(config: Any) -> None:
    """Follow later changes of the default float dtype (see ``_enable_x64_if_asked``)."""
    config.subscribe(_enable_x64_if_asked)
