"""User-defined derivative rules inside the engine (``custom_vjp``, ``custom_jvp``).

A call becomes a *custom call* object that every interpreter knows how to apply
(see ``process_custom_vjp``/``process_custom_jvp`` on each trace): reverse mode uses the
user's ``fwd``/``bwd``, forward mode the user's JVP rule, ``vmap`` batches the rule as a
whole, and ``jit`` records the primal computation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._validate import fun_name
from unijax.engine.batching import move_bdim, vmap_flat
from unijax.engine.core import Tracer, example_value, outside_traces, top_trace, tracing
from unijax.engine.namespace import array_functions
from unijax.errors import CustomRuleError, message

__all__ = ["JVPCall", "VJPCall", "custom_jvp_call", "custom_vjp_call"]


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
                in_cts.append(array_functions.sum(ct, axis=0) if bdim is None
                              else array_functions.moveaxis(ct, 0, bdim))
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


def _is_none(x: Any) -> bool:
    return x is None


def _on_concrete(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, run outside the transforms now open when it is called on concrete values.

    The interpreters apply a custom rule's functions to the values one level down, which
    inside an eager ``grad`` are plain arrays. For that code the values are concrete, as
    outside every transform: a ``unijax.lax`` construct in it runs as a Python loop over
    them (as it does eagerly) instead of staging its body, which code that took its
    namespace from a plain array (``xp = array_namespace(x)``) could not compute on.
    """

    def run(*args: Any) -> Any:
        if not tracing() or any(isinstance(x, Tracer) for x in tree_util.tree_leaves(args)):
            return fn(*args)
        with outside_traces():
            return fn(*args)

    return run


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


def custom_vjp_call(fun: Callable[..., Any], fwd_user: Callable[..., Any],
                    bwd_user: Callable[..., Any], nondiff_argnums: tuple[int, ...],
                    args: tuple[Any, ...]) -> Any:
    """Apply ``fun`` to the pytree ``args`` with the reverse-mode rule ``fwd_user``/``bwd_user``.

    ``bwd_user(*statics, residuals, ct)`` returns one cotangent per differentiable argument
    (``None`` for zero); the arguments at ``nondiff_argnums`` are passed first, as in JAX.
    """
    statics, leaves, _, rebuild = _static_split(args, nondiff_argnums)
    trees: dict[str, Any] = {}

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
        dynamic_args = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
        if not isinstance(in_cts, tuple) or len(in_cts) != len(dynamic_args):
            raise CustomRuleError(
                message(f"custom_vjp bwd of {fun_name(fun)} must return a tuple with one "
                        "cotangent per differentiable argument",
                        expected=f"a tuple of length {len(dynamic_args)}",
                        got=repr(type(in_cts).__name__),
                        fix="Return (ct_x,) even for a single argument; None means zero.")
            )
        leaves: list[Any] = []
        for ct, arg in zip(in_cts, dynamic_args, strict=True):
            arg_leaves = tree_util.tree_leaves(arg)
            # None stands for the zero cotangent of an argument or of any subtree of one.
            matched = [None] * len(arg_leaves) if ct is None else \
                tree_util.broadcast_prefix(ct, arg, is_leaf=_is_none)
            # A zero of the argument's shape and dtype as the rule sees it, made from a
            # concrete example: the argument itself may be a tracer of a trace that has
            # finished by the time the backward pass runs.
            leaves += [array_functions.zeros_like(example_value(a)) if c is None else c
                       for c, a in zip(matched, arg_leaves, strict=True)]
        return leaves

    call = VJPCall(fun_name(fun), _on_concrete(flat_fun), _on_concrete(flat_fwd),
                   _on_concrete(flat_bwd))
    outs = call.bind_fun(leaves)
    return tree_util.tree_unflatten(trees["out"], list(outs))


def custom_jvp_call(fun: Callable[..., Any], rule: Callable[..., Any],
                    nondiff_argnums: tuple[int, ...], args: tuple[Any, ...]) -> Any:
    """Apply ``fun`` to the pytree ``args`` with the forward-mode rule ``rule``.

    ``rule(primals, tangents)`` (after the arguments at ``nondiff_argnums``, if any)
    returns ``(out, tangent_out)``.
    """
    statics, leaves, in_def, rebuild = _static_split(args, nondiff_argnums)
    trees: dict[str, Any] = {}
    nondiff = nondiff_argnums

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

    call = JVPCall(fun_name(fun), _on_concrete(flat_fun), _on_concrete(flat_jvp))
    outs = call.bind_fun(leaves)
    return tree_util.tree_unflatten(trees["out"], list(outs))
