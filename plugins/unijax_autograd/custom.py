"""``custom_vjp``, ``custom_jvp`` and ``stop_gradient`` for the Autograd backend.

A custom rule becomes an autograd primitive over the flat leaves of the differentiable
arguments, returning the tuple of output leaves. Its VJP is the user's ``bwd`` (for
``custom_vjp``) or the transpose of the user's JVP rule (for ``custom_jvp``, computed by
autograd's reverse pass over the rule, which is linear in the tangents). Autograd keeps
no residuals between the forward call and the VJP, so ``fwd`` runs again when the
cotangent arrives: one extra forward evaluation per backward pass. Pullbacks are built
lazily because autograd builds a node's VJP while recording the forward pass, and a rule
that calls its own function would otherwise recurse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import autograd.numpy as anp
from autograd.builtins import tuple as atuple
from autograd.core import defvjp_argnums
from autograd.tracer import getval, primitive

from unijax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten
from unijax_autograd.transforms import _call_with_constants, _make_vjp

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient"]


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` with every autograd box removed: a constant for all levels.

    Example:
        >>> import autograd
        >>> float(autograd.grad(lambda x: x * stop_gradient(x))(3.0))
        3.0
    """
    return getval(x)


class _Custom:
    """The shared mechanics: split static arguments, flatten, call a fresh primitive."""

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        self.fun = fun
        self.nondiff = tuple(nondiff_argnums)

    def __call__(self, *args: Any) -> Any:
        statics = tuple(args[i] for i in self.nondiff)
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.nondiff)
        leaves, in_tree = tree_flatten(dynamic)
        trees: dict[str, Any] = {}

        def rebuild(xs: Sequence[Any]) -> tuple[Any, ...]:
            dyn = iter(tree_unflatten(in_tree, list(xs)))
            return tuple(args[i] if i in self.nondiff else next(dyn) for i in range(len(args)))

        def flat_fun(*xs: Any) -> tuple[Any, ...]:
            out_leaves, trees["out"] = tree_flatten(self.fun(*rebuild(xs)))
            return tuple(out_leaves)

        call = primitive(flat_fun)

        def vjpmaker(argnums: Sequence[int], ans: Any, xs: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Callable[[Any], Any]:
            pullback = self._pullback(statics, rebuild, in_tree, xs, trees["out"])
            def vjp(g: Any) -> list[Any]:
                cts = pullback(g)
                return [cts[k] for k in argnums]

            return vjp

        defvjp_argnums(call, vjpmaker)
        if not leaves:
            return self.fun(*args)
        out_leaves = list(call(*leaves))
        return tree_unflatten(trees["out"], out_leaves)

    def _pullback(self, statics: tuple[Any, ...], rebuild: Callable[..., tuple[Any, ...]],
                  in_tree: Any, xs: tuple[Any, ...], out_tree: Any) -> Callable[[Any], Any]:
        raise NotImplementedError


def _zeros_like_tree(tree: Any) -> Any:
    return tree_map(anp.zeros_like, tree)


class custom_vjp(_Custom):  # JAX's spelling
    """``jax.custom_vjp`` on Autograd: the user's ``bwd`` is the primitive's VJP.

    Example:
        >>> import autograd
        >>> f = custom_vjp(lambda x: x)
        >>> f.defvjp(lambda x: (x, None), lambda res, g: (2.0 * g,))
        >>> float(autograd.grad(lambda x: 3.0 * f(x))(1.0))
        6.0
    """

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> arg cts``."""
        self.fwd, self.bwd = fwd, bwd

    def _pullback(self, statics: tuple[Any, ...], rebuild: Callable[..., tuple[Any, ...]],
                  in_tree: Any, xs: tuple[Any, ...], out_tree: Any) -> Callable[[Any], Any]:
        def pullback(g: Any) -> list[Any]:
            _, residuals = self.fwd(*rebuild(xs))
            in_cts = self.bwd(*statics, residuals, tree_unflatten(out_tree, list(g)))
            # None is the zero cotangent of a whole argument (JAX's convention).
            return [leaf for ct, a in zip(in_cts, tree_unflatten(in_tree, list(xs)), strict=True)
                    for leaf in tree_leaves(_zeros_like_tree(a) if ct is None else ct)]

        return pullback


class custom_jvp(_Custom):  # JAX's spelling
    """``jax.custom_jvp`` on Autograd: the VJP is the transpose of the user's JVP rule.

    Example:
        >>> import autograd
        >>> f = custom_jvp(lambda x: x ** 2)
        >>> _ = f.defjvp(lambda p, t: (p[0] ** 2, 10.0 * t[0]))
        >>> float(autograd.grad(f)(1.0))
        10.0
    """

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set ``jvp(primals, tangents) -> (out, tangent_out)``."""
        self.rule = jvp
        return jvp

    def _pullback(self, statics: tuple[Any, ...], rebuild: Callable[..., tuple[Any, ...]],
                  in_tree: Any, xs: tuple[Any, ...], out_tree: Any) -> Callable[[Any], Any]:

        primals = tuple(a for i, a in enumerate(rebuild(xs)) if i not in self.nondiff)
        rule = self.rule

        def tangent_out(ts: Any) -> Any:
            tangents = tuple(tree_unflatten(in_tree, list(ts)))

            def apply(p: tuple[Any, ...], t: tuple[Any, ...]) -> tuple[Any, ...]:
                _, t_out = rule(*statics, p, t) if statics else rule(p, t)
                return tuple(tree_leaves(t_out))

            # The primals enter as constants on the tangents' tape: one namespace.
            return atuple(_call_with_constants(apply, (primals, None), {}, (1,), (tangents,)))

        def pullback(g: Any) -> list[Any]:
            transpose, _ = _make_vjp(tangent_out, [anp.zeros_like(x) for x in xs])
            return list(transpose(tuple(g)))

        return pullback
