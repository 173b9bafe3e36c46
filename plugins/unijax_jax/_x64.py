"""Float64 on JAX inside unijax's own calls, without touching JAX's global x64 flag.

JAX computes in float32 unless its ``jax_enable_x64`` flag is on, and that flag is the
user's: a library call must never change it. So when unijax's dtype policy asks for
float64 (``default_float_dtype``, ``"float64"`` unless configured otherwise) and the flag
is off, every unijax call on JAX runs inside ``jax.enable_x64(True)``, a context manager
that JAX keeps per thread and that restores the previous state on exit. Other threads,
and the user's own JAX code after the call, see the flag as the user left it.

A call whose arguments are already JAX tracers runs inside the user's own JAX transform,
which was traced with the flag as it is: that trace decides, and nothing is switched.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import unijax

__all__ = ["scope", "scoped", "scoped_factory", "scoped_lax", "scoped_result", "scoped_vjp"]


_jax: tuple[Any, Any] | None = None  # (jax, its Tracer class), once a call needs them


def _needed(args: Any = ()) -> bool:
    # The per-call cost of JAX on the warm path: one flag read when x64 is on.
    global _jax
    if _jax is None:
        import jax

        _jax = (jax, jax.core.Tracer)  # one assignment: threads racing here agree
    jax, tracer = _jax
    # The flag as this thread sees it (JAX's context managers are thread-local).
    if jax.config.read("jax_enable_x64") or unijax.default_float_dtype() != "float64":
        return False
    return not any(isinstance(leaf, tracer) for leaf in jax.tree_util.tree_leaves(args))


def scope() -> contextlib.AbstractContextManager[Any]:
    """The context unijax computes with JAX arrays in: x64 on for a float64 policy.

    Example:
        >>> import jax
        >>> with scope():
        ...     str(jax.numpy.asarray(1.0).dtype)
        'float64'
    """
    if _needed():
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def scoped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, called inside :func:`scope` when its arguments need it."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not _needed((args, kwargs)):
            return fn(*args, **kwargs)
        import jax

        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return call


def scoped_factory(transform: Callable[..., Any]) -> Callable[..., Any]:
    """A transform (``jax.grad``, ``jax.jit``, ...) whose transformed functions are
    :func:`scoped`."""

    @functools.wraps(transform)
    def build(fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        return scoped(transform(fun, *args, **kwargs))

    return build


def scoped_vjp(vjp: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.vjp``, scoped, with a scoped pullback (it runs later, outside the call)."""
    call = scoped(vjp)

    @functools.wraps(vjp)
    def scoped_call(*args: Any, **kwargs: Any) -> Any:
        out, pullback, *aux = call(*args, **kwargs)
        return (out, scoped(pullback), *aux)

    return scoped_call


class _ScopedCustom:
    """A ``jax.custom_vjp``/``custom_jvp`` function whose calls are scoped."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._call = scoped(native)

    def defvjp(self, *args: Any, **kwargs: Any) -> Any:
        return self._native.defvjp(*args, **kwargs)

    def defjvp(self, *args: Any, **kwargs: Any) -> Any:
        return self._native.defjvp(*args, **kwargs)

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)


def scoped_result(factory: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.custom_vjp``/``custom_jvp`` making functions whose calls are scoped."""

    @functools.wraps(factory)
    def build(fun: Callable[..., Any], **kwargs: Any) -> _ScopedCustom:
        return _ScopedCustom(factory(fun, **kwargs))

    return build


class _ScopedLax:
    """``jax.lax`` with its control-flow constructs scoped."""

    def __init__(self, lax: Any) -> None:
        self._lax = lax
        for name in ("cond", "switch", "while_loop", "fori_loop", "scan", "map"):
            setattr(self, name, scoped(getattr(lax, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lax, name)


def scoped_lax(lax: Any) -> Any:
    """``jax.lax`` as unijax calls it: its control-flow constructs :func:`scoped`."""
    return _ScopedLax(lax)
