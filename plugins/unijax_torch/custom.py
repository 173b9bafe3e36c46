"""``custom_vjp``, ``custom_jvp`` and ``stop_gradient`` for the torch backend.

A custom rule becomes a ``torch.autograd.Function`` over the flat tensor leaves of the
differentiable arguments, in the ``setup_context`` form with ``generate_vmap_rule``, which
is what lets ``torch.func`` (``grad``, ``jvp``, ``vmap`` and their nests) see through it:

* ``custom_vjp``: ``forward`` runs the user's ``fwd`` and returns the output leaves
  followed by the tensor residuals (marked non-differentiable and saved in
  ``setup_context``); ``backward`` runs the user's ``bwd``. Non-tensor residuals travel
  beside the tensors, in the ``Function`` built for that call.
* ``custom_jvp``: ``forward`` is the function itself and ``jvp`` the user's rule. The
  reverse rule is the rule's transpose: the rule is linear in the tangents, so its VJP
  with respect to them (``torch.func.vjp`` at zero tangents) is the cotangent of the
  inputs.

Without a differentiating caller (no tensor requires grad, no ``torch.func`` transform
is active) the function itself runs, as JAX runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.func as tf

from unijax.errors import UnsupportedTransformError, message
from unijax.tree_util import tree_flatten, tree_leaves, tree_unflatten

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient"]

_Tensor = torch.Tensor
_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def stop_gradient(x: Any) -> Any:
    """``x.detach()``: a constant for every level of ``torch.func`` and for autograd.

    Example:
        >>> import torch
        >>> torch.func.grad(lambda x: x * stop_gradient(x))(torch.tensor(3.0))
        tensor(3.)
    """
    return x.detach() if isinstance(x, _Tensor) else x


def _differentiating(leaves: Sequence[Any]) -> bool:
    return any(isinstance(v, _Tensor) and (v.requires_grad or _wrapped(v)) for v in leaves)


class _Custom:
    """The shared mechanics: split static arguments, flatten, apply a fresh Function."""

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        self.fun = fun
        self.nondiff = tuple(nondiff_argnums)
        self._inside = threading.local()

    @contextmanager
    def inside_rule(self) -> Iterator[None]:
        """While a rule runs, calls of this function compute its primal only: ``fwd``
        commonly calls the function itself, as in JAX (``return f(x), x``)."""
        depth = getattr(self._inside, "depth", 0)
        self._inside.depth = depth + 1
        try:
            yield
        finally:
            self._inside.depth = depth

    def __call__(self, *args: Any) -> Any:
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.nondiff)
        leaves, in_tree = tree_flatten(dynamic)
        if getattr(self._inside, "depth", 0) or not _differentiating(leaves):
            return self.fun(*args)
        tensor_at = [i for i, v in enumerate(leaves) if isinstance(v, _Tensor)]

        def rebuild(tensors: Sequence[Any]) -> tuple[Any, ...]:
            values = list(leaves)
            for i, t in zip(tensor_at, tensors, strict=True):
                values[i] = t
            dyn = iter(tree_unflatten(in_tree, values))
            return tuple(args[i] if i in self.nondiff else next(dyn) for i in range(len(args)))

        statics = tuple(args[i] for i in self.nondiff)
        counts = [len(tree_leaves(a)) for a in dynamic]
        function, trees = self._function(rebuild, statics, tensor_at, counts)
        outs = function.apply(*(leaves[i] for i in tensor_at))
        n_out = trees["n_out"]
        return tree_unflatten(trees["out"], list(outs[:n_out]))

    def _function(self, rebuild: Callable[..., tuple[Any, ...]], statics: tuple[Any, ...],
                  tensor_at: list[int], counts: list[int]
                  ) -> tuple[type[torch.autograd.Function], dict[str, Any]]:
        raise NotImplementedError


def _fresh(outs: tuple[Any, ...], inputs: Sequence[Any]) -> tuple[Any, ...]:
    """``outs`` with every tensor that is an input (``fwd`` returning ``x`` as a residual)
    replaced by a view of it: a Function with ``setup_context`` must not save an input it
    returns as it is."""
    ids = {id(t) for t in inputs}
    return tuple(o.view_as(o) if id(o) in ids else o for o in outs)


def _conj(x: Any) -> Any:
    return x.conj().resolve_conj() if isinstance(x, _Tensor) and x.is_complex() else x


def _input_cotangents(cts: Sequence[Any], counts: list[int],
                      tensor_at: list[int]) -> tuple[Any, ...]:
    """The user's per-argument cotangents as one per tensor input (None: zero)."""
    per_leaf: list[Any] = []
    for ct, n in zip(cts, counts, strict=True):
        per_leaf += [None] * n if ct is None else list(tree_leaves(ct, is_leaf=lambda v: v is None))
    return tuple(per_leaf[i] for i in tensor_at)


class custom_vjp(_Custom):  # JAX's spelling
    """``jax.custom_vjp`` as a ``torch.autograd.Function``.

    Example:
        >>> import torch
        >>> f = custom_vjp(lambda x: x)
        >>> f.defvjp(lambda x: (x, None), lambda res, g: (2.0 * g,))
        >>> torch.func.grad(lambda x: 3.0 * f(x))(torch.tensor(1.0))
        tensor(6.)
    """

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> arg cts``."""
        self.fwd, self.bwd = fwd, bwd

    def _function(self, rebuild: Callable[..., tuple[Any, ...]], statics: tuple[Any, ...],
                  tensor_at: list[int], counts: list[int]
                  ) -> tuple[type[torch.autograd.Function], dict[str, Any]]:
        fwd, bwd, inside = self.fwd, self.bwd, self.inside_rule
        name = getattr(self.fun, "__name__", "fun")
        trees: dict[str, Any] = {}

        class CustomVJP(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(*tensors: Any) -> Any:
                with inside():
                    out, residuals = fwd(*rebuild(tensors))
                out_leaves, trees["out"] = tree_flatten(out)
                res_leaves, trees["res"] = tree_flatten(residuals)
                trees["n_out"] = len(out_leaves)
                trees["res_at"] = [i for i, r in enumerate(res_leaves) if isinstance(r, _Tensor)]
                trees["res_other"] = res_leaves
                return _fresh((*out_leaves, *(res_leaves[i] for i in trees["res_at"])), tensors)

            @staticmethod
            def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
                saved = output[trees["n_out"]:]
                ctx.mark_non_differentiable(*saved)
                ctx.save_for_backward(*saved)

            @staticmethod
            def jvp(ctx: Any, *tangents: Any) -> Any:
                # What the engine and JAX say: a custom VJP has no forward-mode rule.
                raise UnsupportedTransformError(message(
                    f"Forward-mode differentiation (jvp, jacfwd, hessian) of custom_vjp "
                    f"function {name!r} is not defined: a custom VJP gives only "
                    "reverse-mode rules",
                    fix="Use reverse mode (grad, vjp, jacrev), or define the function with "
                        "unijax.custom_jvp instead."))

            @staticmethod
            def backward(ctx: Any, *cts: Any) -> Any:
                res_leaves = list(trees["res_other"])
                for i, r in zip(trees["res_at"], ctx.saved_tensors, strict=True):
                    res_leaves[i] = r
                residuals = tree_unflatten(trees["res"], res_leaves)
                # The rule speaks JAX's convention; torch's cotangents of complex values are
                # the conjugates of JAX's (see unijax_torch.transforms._conj_tree).
                out_cts = tree_unflatten(trees["out"],
                                         [_conj(c) for c in cts[:trees["n_out"]]])
                with inside():
                    in_cts = bwd(*statics, residuals, out_cts)
                return tuple(_conj(c) for c in
                             _input_cotangents(tuple(in_cts), counts, tensor_at))

        return CustomVJP, trees


class custom_jvp(_Custom):  # JAX's spelling
    """``jax.custom_jvp`` as a ``torch.autograd.Function``; reverse mode transposes the rule.

    Example:
        >>> import torch
        >>> f = custom_jvp(lambda x: x ** 2)
        >>> _ = f.defjvp(lambda p, t: (p[0] ** 2, 10.0 * t[0]))
        >>> torch.func.grad(f)(torch.tensor(1.0))
        tensor(10.)
    """

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set ``jvp(primals, tangents) -> (out, tangent_out)``."""
        self.rule = jvp
        return jvp

    def _function(self, rebuild: Callable[..., tuple[Any, ...]], statics: tuple[Any, ...],
                  tensor_at: list[int], counts: list[int]
                  ) -> tuple[type[torch.autograd.Function], dict[str, Any]]:
        fun, rule, nondiff, inside = self.fun, self.rule, self.nondiff, self.inside_rule
        trees: dict[str, Any] = {}

        def dynamic(tensors: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(a for i, a in enumerate(rebuild(tensors)) if i not in nondiff)

        def tangent_out(primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, ...]:
            p, t = dynamic(primals), dynamic(tangents)
            with inside():
                _, t_out = rule(*statics, p, t) if statics else rule(p, t)
            return tuple(tree_leaves(t_out))

        class CustomJVP(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(*tensors: Any) -> Any:
                out_leaves, trees["out"] = tree_flatten(fun(*rebuild(tensors)))
                trees["n_out"] = len(out_leaves)
                return _fresh(tuple(out_leaves), tensors)

            @staticmethod
            def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
                ctx.save_for_backward(*inputs)
                ctx.save_for_forward(*inputs)

            @staticmethod
            def jvp(ctx: Any, *tangents: Any) -> Any:
                return tangent_out(ctx.saved_tensors, tangents)

            @staticmethod
            def backward(ctx: Any, *cts: Any) -> Any:
                primals = ctx.saved_tensors
                zeros = tuple(torch.zeros_like(p) for p in primals)
                transpose = tf.vjp(lambda *t: tangent_out(primals, t), *zeros)[1]
                return transpose(tuple(cts))

        return CustomJVP, trees
