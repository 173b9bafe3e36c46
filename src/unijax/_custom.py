"""User-defined derivative rules: ``custom_vjp`` and ``custom_jvp``.

On a backend with native custom rules (JAX) the user's functions are handed to it. On the
engine, a call becomes a *custom call* object that every interpreter knows how to apply
(see ``process_custom_vjp``/``process_custom_jvp`` on each trace): reverse mode uses the
user's ``fwd``/``bwd``, forward mode the user's JVP rule, ``vmap`` batches the rule as a
whole, and ``jit`` records the primal computation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._core import top_trace
from unijax._validate import fun_name, normalize_argnums
from unijax.errors import UnsupportedTransformError, message

__all__ = ["custom_jvp", "custom_vjp"]


def _ops() -> Any:
    from unijax._namespace import array_functions

    return array_functions


class _FlatCall:
    """One application of a custom rule, over flat lists of arrays."""

    def __init__(self, name: str, fun: Callable[[list[Any]], list[Any]]) -> None:
        self.name = name
        self.fun = fun

    def bind_fun(self, values: Sequence[Any]) -> list[Any]:
        """Apply the custom function at the level of ``values`` (or evaluate it)."""
        values = tuple(values)
        trace = top_trace(values)
        if trace is None:
            return self.fun(list(values))
        return self._process(trace, values)

    def _process(self, trace: Any, values: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError


class VJPCall(_FlatCall):
    """A ``custom_vjp`` application: ``fwd(values) -> (outs, res)``, ``bwd(res, cts)``."""

    def __init__(self, name: str, fun: Callable[[list[Any]], list[Any]],
                 fwd: Callable[[list[Any]], tuple[list[Any], Any]],
                 bwd: Callable[[Any, list[Any]], list[Any]]) -> None:
        super().__init__(name, fun)
        self.fwd = fwd
        self.bwd = bwd

    def _process(self, trace: Any, values: tuple[Any, ...]) -> list[Any]:
        return list(trace.process_custom_vjp(self, values))

    def batched(self, bdims: Sequence[int | None], size: int) -> VJPCall:
        """The same rule for a batch: ``fun``, ``fwd`` and ``bwd`` each vmapped."""
        from unijax._batching import move_bdim, vmap_flat

        def front(results: list[tuple[Any, int | None]]) -> list[Any]:
            return [move_bdim(v, d, 0, size) for v, d in results]

        def fun(values: list[Any]) -> list[Any]:
            return front(vmap_flat(self.fun, values, list(bdims), size))

        res_tree: dict[str, Any] = {}

        def fwd(values: list[Any]) -> tuple[list[Any], Any]:
            def flat_fwd(xs: list[Any]) -> list[Any]:
                outs, res = self.fwd(xs)
                res_leaves, res_tree["def"] = tree_util.tree_flatten(res)
                res_tree["n_out"] = len(outs)
                return [*outs, *res_leaves]

            stacked = front(vmap_flat(flat_fwd, values, list(bdims), size))
            n = res_tree["n_out"]
            return stacked[:n], stacked[n:]

        def bwd(res: list[Any], cts: list[Any]) -> list[Any]:
            n_res = len(res)

            def flat_bwd(xs: list[Any]) -> list[Any]:
                residuals = tree_util.tree_unflatten(res_tree["def"], xs[:n_res])
                return list(self.bwd(residuals, xs[n_res:]))

            results = vmap_flat(flat_bwd, [*res, *cts], [0] * (n_res + len(cts)), size)
            in_cts = []
            for (ct, d), bdim in zip(results, bdims, strict=True):
                ct = move_bdim(ct, d, 0, size)
                # An input shared by the whole batch receives the sum of its cotangents.
                in_cts.append(_ops().sum(ct, axis=0) if bdim is None
                              else _ops().moveaxis(ct, 0, bdim))
            return in_cts

        return VJPCall(self.name, fun, fwd, bwd)


class JVPCall(_FlatCall):
    """A ``custom_jvp`` application: ``jvp(primals, tangents) -> (outs, out_tangents)``."""

    def __init__(self, name: str, fun: Callable[[list[Any]], list[Any]],
                 jvp: Callable[[list[Any], list[Any]], tuple[list[Any], list[Any]]]) -> None:
        super().__init__(name, fun)
        self.jvp = jvp

    def _process(self, trace: Any, values: tuple[Any, ...]) -> list[Any]:
        return list(trace.process_custom_jvp(self, values))

    def batched(self, bdims: Sequence[int | None], size: int) -> JVPCall:
        """The same rule for a batch (tangents share the primals' batch axes)."""
        from unijax._batching import move_bdim, vmap_flat

        def fun(values: list[Any]) -> list[Any]:
            return [move_bdim(v, d, 0, size) for v, d in
                    vmap_flat(self.fun, values, list(bdims), size)]

        def jvp(primals: list[Any], tangents: list[Any]) -> tuple[list[Any], list[Any]]:
            n = len(primals)
            counts: dict[str, int] = {}

            def flat(xs: list[Any]) -> list[Any]:
                outs, touts = self.jvp(xs[:n], xs[n:])
                counts["n"] = len(outs)
                return [*outs, *touts]

            # A tangent has exactly the layout of its primal, batch axis included.
            results = vmap_flat(flat, [*primals, *tangents], [*bdims, *bdims], size)
            moved = [move_bdim(v, d, 0, size) for v, d in results]
            k = counts["n"]
            return moved[:k], moved[k:]

        return JVPCall(self.name, fun, jvp)


def _static_split(
    args: tuple[Any, ...], nondiff: tuple[int, ...]
) -> tuple[tuple[Any, ...], list[Any], Any, Callable[[list[Any]], tuple[Any, ...]]]:
    statics = tuple(args[i] for i in nondiff)
    dynamic = tuple(a for i, a in enumerate(args) if i not in nondiff)
    leaves, treedef = tree_util.tree_flatten(dynamic)

    def rebuild(xs: list[Any]) -> tuple[Any, ...]:
        dyn = iter(tree_util.tree_unflatten(treedef, xs))
        return tuple(args[i] if i in nondiff else next(dyn) for i in range(len(args)))

    return statics, leaves, treedef, rebuild


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
        from unijax._select import prepare_call

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
        statics, leaves, _, rebuild = _static_split(args, self.nondiff_argnums)
        trees: dict[str, Any] = {}
        fun, fwd_user, bwd_user = self.fun, self.fwd, self.bwd

        def flat_fun(xs: list[Any]) -> list[Any]:
            out_leaves, trees["out"] = tree_util.tree_flatten(fun(*rebuild(xs)))
            return out_leaves

        def flat_fwd(xs: list[Any]) -> tuple[list[Any], Any]:
            out, res = fwd_user(*rebuild(xs))
            out_leaves, trees["out"] = tree_util.tree_flatten(out)
            return out_leaves, res

        def flat_bwd(res: Any, cts: list[Any]) -> list[Any]:
            ct_tree = tree_util.tree_unflatten(trees["out"], list(cts))
            in_cts = bwd_user(*statics, res, ct_tree)
            dynamic_args = tuple(a for i, a in enumerate(args) if i not in self.nondiff_argnums)
            if not isinstance(in_cts, tuple) or len(in_cts) != len(dynamic_args):
                raise TypeError(
                    message(f"custom_vjp bwd of {fun_name(fun)} must return a tuple with one "
                            "cotangent per differentiable argument",
                            expected=f"a tuple of length {len(dynamic_args)}",
                            got=repr(type(in_cts).__name__),
                            fix="Return (ct_x,) even for a single argument; None means zero.")
                )
            filled = tuple(
                tree_util.tree_map(lambda a: _ops().zeros_like(a), arg) if ct is None else ct
                for ct, arg in zip(in_cts, dynamic_args, strict=True)
            )
            return tree_util.tree_leaves(filled)

        call = VJPCall(fun_name(fun), flat_fun, flat_fwd, flat_bwd)
        outs = call.bind_fun(leaves)
        return tree_util.tree_unflatten(trees["out"], list(outs))


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
        statics, leaves, in_def, rebuild = _static_split(args, self.nondiff_argnums)
        trees: dict[str, Any] = {}
        fun, rule = self.fun, self.jvp_rule
        nondiff = self.nondiff_argnums

        def flat_fun(xs: list[Any]) -> list[Any]:
            out_leaves, trees["out"] = tree_util.tree_flatten(fun(*rebuild(xs)))
            return out_leaves

        def flat_jvp(primals: list[Any], tangents: list[Any]) -> tuple[list[Any], list[Any]]:
            p_args = rebuild(primals)
            t_dyn = iter(tree_util.tree_unflatten(in_def, tangents))
            dyn_p = tuple(a for i, a in enumerate(p_args) if i not in nondiff)
            dyn_t = tuple(next(t_dyn) for _ in dyn_p)
            out, t_out = rule(*statics, dyn_p, dyn_t) if nondiff else rule(dyn_p, dyn_t)
            out_leaves, trees["out"] = tree_util.tree_flatten(out)
            return out_leaves, tree_util.tree_leaves(t_out)

        call = JVPCall(fun_name(fun), flat_fun, flat_jvp)
        outs = call.bind_fun(leaves)
        return tree_util.tree_unflatten(trees["out"], list(outs))
