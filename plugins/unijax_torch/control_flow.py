"""``unijax.lax`` on torch: Python loops that select per example under ``torch.func.vmap``.

Outside ``torch.func`` and under its derivatives, the constructs run as the Python loops of
:class:`unijax.extend.PythonLoops`, which ``torch.func.grad`` and ``jvp`` differentiate like
any other code. Under ``torch.func.vmap`` (and ``jacfwd``, which is ``vmap`` over ``jvp``)
a predicate or index that differs across the batch is a ``BatchedTensor``, on which Python
cannot branch. There the constructs follow ``jax.lax``'s batching rules:

* ``cond`` and ``switch`` run every branch and select each example's result with
  ``torch.where``;
* ``while_loop`` runs while any example's predicate holds, and an example whose predicate
  is false keeps its carry (``torch.where`` again), so each example ends with the carry
  its own loop would have.

Reverse mode through ``while_loop`` is refused, as in JAX: a carry that
``torch.func.grad`` (or ``vjp``, ``jacrev``) differentiates is a grad-tracking tensor that
requires grad. ``jvp``'s dual tensors and ``vmap``'s batched tensors are ``torch.func``
wrappers too, but do not require grad, so forward mode and ``vmap`` pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

import unijax
from unijax import tree_util
from unijax.extend import PythonLoops

__all__ = ["TorchLoops"]

_functorch = torch._C._functorch
_is_wrapped = _functorch.is_functorch_wrapped_tensor
_is_batched = _functorch.is_batchedtensor
_is_grad_tracking = _functorch.is_gradtrackingtensor
_unwrapped = _functorch.get_unwrapped


class _Staged(Exception):
    """The predicate is a tracer of a unijax ``jit`` being staged."""

    def __init__(self, pred: Any) -> None:
        super().__init__()
        self.pred = pred


def _layers(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """``x``, then each tensor it wraps, down to the plain tensor under every ``torch.func``
    level."""
    while True:
        yield x
        if not _is_wrapped(x):
            return
        x = _unwrapped(x)


def _batched(x: Any) -> bool:
    """Whether ``x`` is batched by an enclosing ``torch.func.vmap`` (at any level)."""
    return isinstance(x, torch.Tensor) and any(_is_batched(t) for t in _layers(x))


def _differentiated_in_reverse(x: Any) -> bool:
    """Whether ``torch.func.grad`` (``vjp``, ``jacrev``) differentiates ``x``."""
    return isinstance(x, torch.Tensor) and any(
        _is_grad_tracking(t) and t.requires_grad for t in _layers(x))


def _mask(pred: torch.Tensor) -> torch.Tensor:
    return pred if pred.dtype == torch.bool else pred != 0


def _any_example(mask: torch.Tensor) -> bool:
    """Whether ``mask`` holds for any example of every enclosing ``vmap``."""
    *_, physical = _layers(mask)
    return bool(physical.any())


def _same_types(a: Any, b: Any) -> bool:
    """Whether two pytrees of tensors agree in structure, shapes and dtypes (so that a
    per-example selection between them changes neither)."""
    a_leaves, a_def = tree_util.tree_flatten(a)
    b_leaves, b_def = tree_util.tree_flatten(b)
    return a_def == b_def and all(
        isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        and x.shape == y.shape and x.dtype == y.dtype
        for x, y in zip(a_leaves, b_leaves, strict=True))


def _weak_kind_fits(scalar: Any, dtype: torch.dtype) -> bool:
    if isinstance(scalar, bool):
        return dtype == torch.bool
    if isinstance(scalar, int):
        return dtype != torch.bool
    if isinstance(scalar, float):
        return dtype.is_floating_point or dtype.is_complex
    return dtype.is_complex


class TorchLoops(PythonLoops):
    """:class:`~unijax.extend.PythonLoops` with ``jax.lax``'s batching rules under
    ``torch.func.vmap``.

    ``is_tracer`` is replaced by the test for tensors differentiated in reverse mode: the
    backend's ``is_tracer`` recognises every ``torch.func`` wrapper, batched and dual
    tensors included.

    Example:
        >>> import torch
        >>> import array_api_compat.torch as xp
        >>> loops = TorchLoops(xp, None)
        >>> def first_power_above(limit):
        ...     return loops.while_loop(lambda x: x < limit, lambda x: x * 2, torch.tensor(1))
        >>> torch.func.vmap(first_power_above)(torch.tensor([3, 20, 1])).tolist()
        [4, 32, 1]
    """

    def __init__(self, xp: Any, is_tracer: Callable[[Any], bool] | None) -> None:
        super().__init__(xp, _differentiated_in_reverse)

    def scan(self, f: Callable[..., Any], init: Any, xs: Any, length: int,
             reverse: bool) -> tuple[Any, Any]:
        if length:
            return super().scan(f, init, xs, length, reverse)
        # No iterations: the body runs once, on a row of zeros, for the shapes and dtypes
        # of what it stacks (JAX traces it once for the same reason); nothing is kept of it.
        row = tree_util.tree_map(lambda leaf: leaf.new_zeros((1, *leaf.shape[1:])), xs)
        _, ys = super().scan(f, init, row, 1, reverse)
        return tree_util.tree_map(self._as_array, init), tree_util.tree_map(
            lambda y: y[:0], ys)

    def while_loop(self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   init_val: Any) -> Any:
        # The parent's loop, with the predicate and the body wrapped: a batched predicate
        # becomes "is any example still going", and the body's new carry is kept only for
        # the examples whose predicate held.
        going_now: list[torch.Tensor | None] = [None]

        def going(carry: Any) -> Any:
            pred = cond_fun(carry)
            if getattr(type(pred), "__unijax_tracer__", False):
                raise _Staged(pred)
            if not _batched(pred):
                going_now[0] = None
                return pred
            mask = going_now[0] = _mask(pred)
            return _any_example(mask)

        def advance(carry: Any) -> Any:
            new = body_fun(carry)
            mask = going_now[0]
            if mask is None:
                return new
            if tree_util.tree_structure(new) != tree_util.tree_structure(carry):
                return new  # the parent's check names the mismatch
            arrays = tree_util.tree_map(self._like, new, carry)
            if not _same_types(carry, arrays):
                return new
            return tree_util.tree_map(lambda n, c: torch.where(mask, n, c), arrays, carry)

        try:
            return super().while_loop(going, advance, init_val)
        except _Staged as staged:
            # Under unijax.jit, with a concrete initial carry and a predicate that reads a
            # traced value: the loop becomes the engine's, from a carry of that trace.
            xp = staged.pred.__array_namespace__()
            init = tree_util.tree_map(xp.asarray, init_val)
            return unijax.lax.while_loop(cond_fun, body_fun, init)

    def _like(self, value: Any, carry_leaf: Any) -> Any:
        # A Python scalar is weakly typed: it takes the dtype of a 0-d carry of its kind.
        if isinstance(value, bool | int | float | complex) and isinstance(
                carry_leaf, torch.Tensor) and carry_leaf.ndim == 0 and _weak_kind_fits(
                value, carry_leaf.dtype):
            return torch.as_tensor(value, dtype=carry_leaf.dtype, device=carry_leaf.device)
        return self._as_array(value)

    def switch(self, index: Any, branches: Sequence[Callable[..., Any]],
               operands: tuple[Any, ...], api: str) -> Any:
        if not _batched(index):
            return super().switch(index, branches, operands, api)
        # Every branch runs on the operands, and their outputs must agree.
        outs = [branch(*operands) for branch in branches]
        self.check_branches(api, outs)
        last = len(branches) - 1
        chosen = torch.clamp(index.to(torch.int64), 0, last)
        result = tree_util.tree_map(self._as_array, outs[last])
        for k in range(last - 1, -1, -1):
            mask = chosen == k
            result = tree_util.tree_map(
                lambda out, rest, mask=mask: torch.where(mask, self._as_array(out), rest),
                outs[k], result)
        return result
