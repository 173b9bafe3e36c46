"""User-defined derivative rules: ``custom_vjp`` and ``custom_jvp``.

On a backend with native custom rules (JAX, Autograd) the user's functions are handed to
it; otherwise, and whenever an argument is already a unijax tracer, the engine applies
them (:mod:`unijax.engine.custom`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from unijax._validate import fun_name, normalize_argnums
from unijax.dispatch.selection import prepare_call
from unijax.engine.custom import custom_jvp_call, custom_vjp_call
from unijax.errors import UnsupportedTransformError, message

__all__ = ["custom_jvp", "custom_vjp"]


class _CustomBase:
    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        # updated=(): fun may itself be a transform whose __dict__ must not be copied.
        functools.update_wrapper(self, fun, updated=())  # type: ignore[arg-type]
        self.fun = fun
        self.nondiff_argnums = normalize_argnums(
            tuple(nondiff_argnums), f"custom rule {fun_name(fun)}", fun, name="nondiff_argnums"
        ) if nondiff_argnums else ()
        self._native: dict[str, Any] = {}

    def _dispatch(self, args: tuple[Any, ...], kwargs: dict[str, Any], kind: str) -> Any:
        if kwargs:
            raise TypeError(
                message(f"{kind} function {fun_name(self.fun)} was called with keyword "
                        "arguments", fix="Pass every argument positionally, as with JAX.")
            )
        backend, use_engine, args = prepare_call(args, None, f"{kind}({fun_name(self.fun)})")
        native_factory = getattr(backend.native_transforms, kind) if not use_engine else None
        if native_factory is not None:
            native = self._native.get(backend.name)
            if native is None:
                native = self._native[backend.name] = self._make_native(native_factory)
            return native(*args)
        return self._engine_call(args)

    def _make_native(self, factory: Callable[..., Any]) -> Any:
        raise NotImplementedError

    def _engine_call(self, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError


class custom_vjp(_CustomBase):  # JAX's spelling
    """Give a function a custom reverse-mode derivative (JAX's ``custom_vjp``).

    Args:
        fun: The function; its outputs are a pytree of arrays.
        nondiff_argnums: Positions of arguments that are not differentiated (passed first
            to ``bwd``, like JAX).

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> @unijax.custom_vjp
        ... def clip_gradient(x):
        ...     return x
        >>> def fwd(x):
        ...     return x, None
        >>> def bwd(res, g):
        ...     return (np.clip(g, -1.0, 1.0),)
        >>> clip_gradient.defvjp(fwd, bwd)
        >>> float(unijax.grad(lambda x: 3.0 * clip_gradient(x))(np.asarray(2.0)))
        1.0
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> arg cts``."""
        self.fwd, self.bwd = fwd, bwd
        self._native.clear()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise UnsupportedTransformError(
                message(f"custom_vjp function {fun_name(self.fun)} has no rule yet",
                        fix="Call .defvjp(fwd, bwd) before using it.")
            )
        return self._dispatch(args, kwargs, "custom_vjp")

    def _make_native(self, factory: Callable[..., Any]) -> Any:
        native = factory(self.fun, nondiff_argnums=self.nondiff_argnums)
        native.defvjp(self.fwd, self.bwd)
        return native

    def _engine_call(self, args: tuple[Any, ...]) -> Any:
        assert self.fwd is not None and self.bwd is not None
        return custom_vjp_call(self.fun, self.fwd, self.bwd, self.nondiff_argnums, args)


class custom_jvp(_CustomBase):  # JAX's spelling
    """Give a function a custom forward-mode derivative (JAX's ``custom_jvp``).

    Reverse mode works too: the VJP is obtained by transposing the JVP rule.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> @unijax.custom_jvp
        ... def log1pexp(x):
        ...     return array_namespace(x).log1p(array_namespace(x).exp(x))
        >>> @log1pexp.defjvp
        ... def _(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     xp = array_namespace(x)
        ...     return log1pexp(x), t / (1 + xp.exp(-x))
        >>> float(unijax.grad(log1pexp)(np.asarray(100.0)))
        1.0
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.jvp_rule: Callable[..., Any] | None = None

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set ``jvp(primals, tangents) -> (out, tangent_out)``; usable as a decorator."""
        self.jvp_rule = jvp
        self._native.clear()
        return jvp

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.jvp_rule is None:
            raise UnsupportedTransformError(
                message(f"custom_jvp function {fun_name(self.fun)} has no rule yet",
                        fix="Call .defjvp(jvp) before using it.")
            )
        return self._dispatch(args, kwargs, "custom_jvp")

    def _make_native(self, factory: Callable[..., Any]) -> Any:
        native = factory(self.fun, nondiff_argnums=self.nondiff_argnums)
        native.defjvp(self.jvp_rule)
        return native

    def _engine_call(self, args: tuple[Any, ...]) -> Any:
        assert self.jvp_rule is not None
        return custom_jvp_call(self.fun, self.jvp_rule, self.nondiff_argnums, args)
