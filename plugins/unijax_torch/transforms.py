"""``torch.func`` behind JAX's signatures: ``grad``, ``value_and_grad``, ``jvp``, ``vjp``,
``jacfwd``, ``jacrev``, ``hessian`` and ``vmap``.

unijax validates arguments and output shapes before these run, so each adapter only maps
JAX's conventions onto ``torch.func``'s. Two paths:

* **direct**: the differentiated (or mapped) arguments are tensors, or dicts, lists and
  tuples of tensors, which ``torch.func`` flattens itself. The adapter calls the
  ``torch.func`` transform built once, so a warm call costs one type check more than
  ``torch.func`` itself;
* **flat**: anything else (unijax-registered pytree classes, ``has_aux``, keyword
  arguments under ``vmap``, ``out_axes`` other than 0). The arguments are flattened with
  :mod:`unijax.tree_util`, ``torch.func`` sees a function of a tuple of tensors, and the
  results are rebuilt with unijax's tree definitions, so every pytree unijax knows works
  and no ``torch.func`` wrapper escapes through an auxiliary output.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.func as tf

with warnings.catch_warnings():
    # torch's forward mode loads its decompositions on first use through torch.jit.script,
    # which warns that it is deprecated: torch's notice, which would reach the user's first
    # jvp (an error where warnings are). Loading them here keeps it out of user code.
    warnings.simplefilter("ignore", FutureWarning)
    if os.environ.get("PYTORCH_JIT", "1") == "1":
        from torch._decomp import decompositions_for_jvp  # noqa: F401

from unijax.errors import BatchingError, message
from unijax.tree_util import (
    broadcast_prefix,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
)
from unijax_torch.guard import guarded

__all__ = ["grad", "hessian", "jacfwd", "jacrev", "jvp", "value_and_grad", "vjp", "vmap"]

_Tensor = torch.Tensor
_is_batched = torch._C._functorch.is_batchedtensor
_level_of = torch._C._functorch.maybe_get_level
_current_level = torch._C._functorch.maybe_current_level


def _torch_tree(a: Any) -> bool:
    """Whether ``a`` is a tensor, or dicts, lists and tuples of tensors (torch's pytrees)."""
    tp = type(a)
    if tp is _Tensor:
        return True
    if tp is dict:
        return all(_torch_tree(v) for v in a.values())
    if tp is list or tp is tuple:
        return all(_torch_tree(v) for v in a)
    return False


def _tree_kind(a: Any) -> int:
    """0: not a torch tree (see ``_torch_tree``); 1: one of real tensors; 2: with complex."""
    tp = type(a)
    if tp is _Tensor:
        return 2 if a.is_complex() else 1
    if tp is dict:
        a = a.values()
    elif tp is not list and tp is not tuple:
        return 0
    kind = 1
    for v in a:
        k = _tree_kind(v)
        if not k:
            return 0
        kind = max(kind, k)
    return kind


def _nums(argnums: int | Sequence[int]) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


# --- JAX's conventions where torch's differ ---------------------------------------------------


def _conj(x: Any) -> Any:
    """``x`` conjugated where complex (a fresh tensor, never a lazy conjugate view)."""
    return x.conj().resolve_conj() if isinstance(x, _Tensor) and x.is_complex() else x


def _conj_tree(tree: Any) -> Any:
    # torch's reverse mode gives the conjugate of JAX's cotangents for complex values
    # (the direction of steepest ascent, where JAX gives the transpose of the JVP):
    # JAX's vjp(ct) is conj(torch's vjp(conj(ct))), and so JAX's grad is conj(torch's).
    return tree_map(_conj, tree)


_IN_PLACE_ON_INPUT = "leaf Variable that requires grad is being used in an in-place operation"


def _writes_input(err: Exception) -> bool:
    """Whether ``err`` is torch refusing an in-place write into a differentiated input."""
    return isinstance(err, RuntimeError) and _IN_PLACE_ON_INPUT in str(err)


def _on_copies(fun: Callable[..., Any], nums: tuple[int, ...]) -> Callable[..., Any]:
    """``fun`` given copies of its differentiated arguments, which it may write into.

    On the engine ``x[0] = v`` inside a derivative updates the traced value and the
    derivative flows through the write; torch refuses to write into the tensors its
    reverse mode differentiates. A copy made inside the transform is an ordinary tensor
    of the computation, which takes the write and carries the derivative through it.
    """

    def copying(*args: Any, **kwargs: Any) -> Any:
        new = list(args)
        for i in nums:
            new[i] = tree_map(lambda v: v.clone() if isinstance(v, _Tensor) else v, args[i])
        return fun(*new, **kwargs)

    return copying


def _complex_inputs(leaves: Sequence[Any]) -> bool:
    return any(isinstance(v, _Tensor) and v.is_complex() for v in leaves)


# --- the flat path ---------------------------------------------------------------------------


class _Flat:
    """``fun`` as a function of the flat leaves of its differentiated arguments.

    The flat function returns the tuple of output leaves (and, with ``has_aux``, the tuple
    of auxiliary leaves, which ``torch.func`` unwraps); the tree definitions are kept here
    for rebuilding the results.
    """

    def __init__(self, fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 nums: tuple[int, ...], has_aux: bool) -> None:
        self.fun, self.args, self.kwargs, self.nums, self.has_aux = (
            fun, args, kwargs, nums, has_aux)
        self.leaves, self.in_tree = tree_flatten(tuple(args[i] for i in nums))
        self.out_tree: Any = None
        self.aux_tree: Any = None
        self.aux_leaves: list[Any] = []

    def __call__(self, *leaves: Any) -> Any:
        new = list(self.args)
        for i, v in zip(self.nums, tree_unflatten(self.in_tree, leaves), strict=True):
            new[i] = v
        out = self.fun(*new, **self.kwargs)
        if self.has_aux:
            out, aux = out
            # torch.func unwraps tensors of the auxiliary output and refuses anything else:
            # the other leaves (shapes, counts) travel beside it.
            self.aux_leaves, self.aux_tree = tree_flatten(aux)
            aux_tensors = tuple(v for v in self.aux_leaves if isinstance(v, _Tensor))
        out_leaves, self.out_tree = tree_flatten(out)
        return (tuple(out_leaves), aux_tensors) if self.has_aux else tuple(out_leaves)

    def inputs(self, per_leaf: Sequence[Any], argnums: int | Sequence[int]) -> Any:
        """One value per input leaf, shaped like the differentiated argument(s)."""
        tree = tree_unflatten(self.in_tree, per_leaf)
        return tree[0] if isinstance(argnums, int) else tree

    def outputs(self, per_leaf: Sequence[Any]) -> Any:
        return tree_unflatten(self.out_tree, per_leaf)

    def aux(self, aux_tensors: Sequence[Any]) -> Any:
        tensors = iter(aux_tensors)
        return tree_unflatten(self.aux_tree, [next(tensors) if isinstance(v, _Tensor) else v
                                              for v in self.aux_leaves])

    @property
    def argnums(self) -> tuple[int, ...]:
        return tuple(range(len(self.leaves)))


# --- reverse mode ----------------------------------------------------------------------------


def value_and_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """``jax.value_and_grad`` over ``torch.func.grad_and_value``.

    Example:
        >>> import torch
        >>> value_and_grad(lambda x: (x * x).sum())(torch.ones(2, dtype=torch.float64))
        (tensor(2., dtype=torch.float64), tensor([2., 2.], dtype=torch.float64))
    """
    nums = _nums(argnums)
    tf_argnums = argnums if isinstance(argnums, int) else nums

    def call(f: Callable[..., Any], direct: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        kinds = [_tree_kind(args[i]) for i in nums]
        if not has_aux and all(kinds):
            g, value = direct(*args, **kwargs)
            return value, _conj_tree(g) if 2 in kinds else g
        flat = _Flat(f, args, kwargs, nums, has_aux)

        def scalar(*leaves: Any) -> Any:
            out = flat(*leaves)
            return (out[0][0], out[1]) if has_aux else out[0]

        g, value = tf.grad_and_value(guarded(scalar), argnums=flat.argnums, has_aux=has_aux)(
            *flat.leaves)
        grads = _conj_tree(flat.inputs(g, argnums))
        if has_aux:
            return (value[0], flat.aux(value[1])), grads
        return value, grads

    direct = tf.grad_and_value(guarded(fun), argnums=tf_argnums)

    def value_and_grad_fun(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(fun, direct, args, kwargs)
        except RuntimeError as err:
            if not _writes_input(err):
                raise
        copying = _on_copies(fun, nums)
        return call(copying, tf.grad_and_value(guarded(copying), argnums=tf_argnums), args,
                    kwargs)

    return value_and_grad_fun


def grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """``jax.grad`` over ``torch.func.grad``.

    Example:
        >>> import torch
        >>> grad(lambda x, y: (x * y).sum(), argnums=1)(torch.ones(2), torch.ones(2))
        tensor([1., 1.])
    """
    nums = _nums(argnums)
    direct = tf.grad(guarded(fun), argnums=argnums if isinstance(argnums, int) else nums)
    general = value_and_grad(fun, argnums, has_aux)

    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        kinds = [_tree_kind(args[i]) for i in nums]
        if not has_aux and all(kinds):
            try:
                g = direct(*args, **kwargs)
                return _conj_tree(g) if 2 in kinds else g
            except RuntimeError as err:
                if not _writes_input(err):
                    raise
        value, grads = general(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    if isinstance(argnums, int) and not has_aux:

        def grad_one(*args: Any, **kwargs: Any) -> Any:
            # The common call: one tensor differentiated. One check, then torch.func.
            x = args[argnums]
            if type(x) is _Tensor:
                try:
                    g = direct(*args, **kwargs)
                except RuntimeError as err:
                    if not _writes_input(err):
                        raise
                    return general(*args, **kwargs)[1]
                return g.conj().resolve_conj() if x.is_complex() else g
            return grad_fun(*args, **kwargs)

        return grad_one
    return grad_fun


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``jax.vjp`` over ``torch.func.vjp``: ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``.

    Example:
        >>> import torch
        >>> out, pullback = vjp(lambda x: x * 3.0, torch.ones(2))
        >>> pullback(torch.ones(2))
        (tensor([3., 3.]),)
    """
    try:
        return _vjp(fun, primals, has_aux)
    except RuntimeError as err:
        if not _writes_input(err):
            raise
    return _vjp(_on_copies(fun, tuple(range(len(primals)))), primals, has_aux)


def _vjp(fun: Callable[..., Any], primals: tuple[Any, ...], has_aux: bool) -> Any:
    flat = _Flat(fun, primals, {}, tuple(range(len(primals))), has_aux)
    result: Any = tf.vjp(guarded(flat), *flat.leaves, has_aux=has_aux)
    out_leaves, raw = result[0], result[1]

    def vjp_fn(ct: Any) -> tuple[Any, ...]:
        ct_leaves, ct_tree = tree_flatten(ct)
        if ct_tree != flat.out_tree:
            raise ValueError(f"vjp_fn expected a cotangent with structure {flat.out_tree}, "
                             f"got {ct_tree}")
        cts = raw(tuple(_conj(c) for c in ct_leaves))
        return tuple(flat.inputs(_conj_tree(cts), (0,)))

    out = flat.outputs(out_leaves)
    return (out, vjp_fn, flat.aux(result[2])) if has_aux else (out, vjp_fn)


def jacrev(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
           has_aux: bool = False) -> Callable[..., Any]:
    """``jax.jacrev`` over ``torch.func.jacrev``: ``out.shape + in.shape`` per leaf pair.

    Example:
        >>> import torch
        >>> jacrev(lambda x: x ** 2)(torch.arange(2.0))
        tensor([[0., 0.],
                [0., 2.]])
    """
    return _jacobian(tf.jacrev, fun, argnums, has_aux)


def jacfwd(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
           has_aux: bool = False) -> Callable[..., Any]:
    """``jax.jacfwd`` over ``torch.func.jacfwd``.

    Example:
        >>> import torch
        >>> jacfwd(lambda x: x ** 2)(torch.arange(2.0))
        tensor([[0., 0.],
                [0., 2.]])
    """
    return _jacobian(tf.jacfwd, fun, argnums, has_aux)


def hessian(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
            has_aux: bool = False) -> Callable[..., Any]:
    """``jax.hessian``: forward over reverse, ``jacfwd(jacrev(fun))``.

    Example:
        >>> import torch
        >>> hessian(lambda x: (x ** 3).sum())(torch.ones(2))
        tensor([[6., 0.],
                [0., 6.]])
    """
    inner = jacrev(fun, argnums, has_aux)
    return jacfwd(inner, argnums, has_aux)


def _jacobian(make: Callable[..., Any], fun: Callable[..., Any],
              argnums: int | Sequence[int], has_aux: bool) -> Callable[..., Any]:
    nums = _nums(argnums)
    api = "jacfwd" if make is tf.jacfwd else "jacrev"

    def jac_fun(*args: Any, **kwargs: Any) -> Any:
        try:
            return jac_of(fun, args, kwargs)
        except RuntimeError as err:
            if not _writes_input(err):
                raise
        return jac_of(_on_copies(fun, nums), args, kwargs)

    def jac_of(f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        flat = _Flat(f, args, kwargs, nums, has_aux)
        if _complex_inputs(flat.leaves):  # torch.func's jacobians refuse complex inputs
            make_complex = _complex_jacfwd if api == "jacfwd" else _complex_jacrev
            result = make_complex(flat, has_aux)
        else:
            result = make(guarded(flat), argnums=flat.argnums, has_aux=has_aux)(*flat.leaves)
        jac, aux = result if has_aux else (result, ())
        # torch gives, per output leaf, a tuple with one block per input leaf: JAX's
        # layout is the output structure outside, the input structure inside.
        blocks = [flat.inputs(per_input, argnums) for per_input in jac]
        out = flat.outputs(blocks)
        return (out, flat.aux(aux)) if has_aux else out

    return jac_fun


def _basis(like: Any) -> Any:
    """One unit tensor per element of ``like``, stacked: shape ``(like.numel(), *like.shape)``."""
    n = like.numel()
    return torch.eye(n, dtype=like.dtype, device=like.device).reshape(n, *like.shape)


def _complex_jacrev(flat: _Flat, has_aux: bool) -> Any:
    """``jacrev`` with complex inputs, rows of JAX's VJP (``torch.func.jacrev``'s layout)."""
    result: Any = tf.vjp(guarded(flat), *flat.leaves, has_aux=has_aux)
    outs, pullback = result[0], result[1]
    jac = []
    for k, out in enumerate(outs):

        def row(ct: Any, k: int = k) -> Any:
            return pullback(tuple(ct if j == k else torch.zeros_like(o)
                                  for j, o in enumerate(outs)))

        rows = tf.vmap(row)(_basis(out))  # the unit cotangents are real: conj(ct) == ct
        jac.append(tuple(_conj(r).reshape(*out.shape, *leaf.shape)
                         for r, leaf in zip(rows, flat.leaves, strict=True)))
    return (tuple(jac), result[2]) if has_aux else tuple(jac)


def _complex_jacfwd(flat: _Flat, has_aux: bool) -> Any:
    """``jacfwd`` with complex inputs: JVPs along each input element (as the engine)."""
    run = guarded(flat)
    first = run(*flat.leaves)
    outs, aux = first if has_aux else (first, None)
    columns = []
    for i, leaf in enumerate(flat.leaves):

        def column(t: Any, i: int = i) -> Any:
            tangents = tuple(t if j == i else torch.zeros_like(v)
                             for j, v in enumerate(flat.leaves))
            return tf.jvp(lambda *xs: run(*xs)[0] if has_aux else run(*xs),
                          tuple(flat.leaves), tangents)[1]

        columns.append(tf.vmap(column)(_basis(leaf)))  # per output: (n_in, *out.shape)
    jac = tuple(
        tuple(torch.movedim(cols[k].reshape(leaf.numel(), out.numel()), 0, 1)
              .reshape(*out.shape, *leaf.shape)
              for cols, leaf in zip(columns, flat.leaves, strict=True))
        for k, out in enumerate(outs))
    return (jac, aux) if has_aux else jac


# --- forward mode ----------------------------------------------------------------------------


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any],
        has_aux: bool = False) -> Any:
    """``jax.jvp`` over ``torch.func.jvp``: ``(out, tangent_out[, aux])``.

    Example:
        >>> import torch
        >>> jvp(lambda x: x ** 2, (torch.tensor([3.0]),), (torch.tensor([1.0]),))
        (tensor([9.]), tensor([6.]))
    """
    flat = _Flat(fun, tuple(primals), {}, tuple(range(len(primals))), has_aux)
    t_leaves = tree_leaves(tuple(tangents))
    result: Any = tf.jvp(guarded(flat), tuple(flat.leaves), tuple(t_leaves), has_aux=has_aux)
    out, t_out = flat.outputs(result[0]), flat.outputs(result[1])
    return (out, t_out, flat.aux(result[2])) if has_aux else (out, t_out)


# --- vmap ------------------------------------------------------------------------------------


def vmap(fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable[..., Any]:
    """``jax.vmap`` over ``torch.func.vmap`` (unijax has checked the axes and sizes).

    Example:
        >>> import torch
        >>> vmap(lambda row, w: row @ w, in_axes=(0, None))(torch.ones(3, 2), torch.ones(2))
        tensor([2., 2., 2.])
    """
    simple_axes = in_axes is None or isinstance(in_axes, int) or (
        isinstance(in_axes, tuple) and all(a is None or isinstance(a, int) for a in in_axes))
    direct = tf.vmap(guarded(fun), in_dims=in_axes, out_dims=0) \
        if simple_axes and out_axes == 0 else None

    def vmapped(*args: Any, **kwargs: Any) -> Any:
        if direct is not None and not kwargs and all(_torch_tree(a) for a in args) \
                and _any_mapped(in_axes, args):
            return _checked_out(direct, args, fun)
        return _vmap_flat(fun, in_axes, out_axes, axis_size, args, kwargs)

    return vmapped


def _any_mapped(in_axes: Any, args: tuple[Any, ...]) -> bool:
    if isinstance(in_axes, int):
        return bool(args)
    return in_axes is not None and any(a is not None for a in in_axes)


def _checked_out(vmapped: Callable[..., Any], args: tuple[Any, ...], fun: Any) -> Any:
    try:
        return vmapped(*args)
    except ValueError as err:
        if "out_dim" in str(err) and "None" in str(err):
            raise BatchingError(message(
                f"vmap({getattr(fun, '__name__', 'fun')}): out_axes=None for an output that "
                "varies across the batch",
                fix="Map that output (out_axes=0), or make it independent of the mapped "
                    "arguments.")) from err
        raise


def _vmap_flat(fun: Callable[..., Any], in_axes: Any, out_axes: Any, axis_size: int | None,
               args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """vmap over the flat tensor leaves of ``(args, kwargs)``; other leaves stay Python."""
    arg_leaves, arg_tree = tree_flatten(args)
    kw_leaves, kw_tree = tree_flatten(kwargs)
    axes = broadcast_prefix(in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args),
                            args, is_leaf=lambda x: x is None) if args else []
    axes += [0] * len(kw_leaves)  # JAX maps keyword arguments over axis 0
    leaves = arg_leaves + kw_leaves
    mapped = [i for i, (leaf, a) in enumerate(zip(leaves, axes, strict=True))
              if a is not None and isinstance(leaf, _Tensor)]
    trees: dict[str, Any] = {}

    def call(values: Sequence[Any]) -> Any:
        return fun(*tree_unflatten(arg_tree, values[:len(arg_leaves)]),
                   **tree_unflatten(kw_tree, values[len(arg_leaves):]))

    def flat(*xs: Any) -> tuple[Any, ...]:
        values = list(leaves)
        for i, x in zip(mapped, xs, strict=True):
            values[i] = x
        out_leaves, trees["out"] = tree_flatten(call(values))
        level = _current_level()
        trees["batched"] = [isinstance(o, _Tensor) and _is_batched(o) and _level_of(o) == level
                            for o in out_leaves]
        return tuple(out_leaves)

    if not mapped:
        # Nothing varies across the batch (axis_size gives its size): every output is the
        # same for each member, computed once and broadcast along its out axis.
        outs = list(guarded(flat)())
        size = axis_size or 0
        trees["batched"] = [True] * len(outs)
        outs = [torch.broadcast_to(o, (size, *o.shape)) if isinstance(o, _Tensor) else o
                for o in outs]
    else:
        outs = list(tf.vmap(guarded(flat), in_dims=tuple(axes[i] for i in mapped), out_dims=0)(
            *(leaves[i] for i in mapped)))
    out_axes_leaves = broadcast_prefix(out_axes, tree_unflatten(trees["out"], outs),
                                       is_leaf=lambda x: x is None)
    result = []
    for k, (o, axis, batched) in enumerate(zip(outs, out_axes_leaves, trees["batched"],
                                               strict=True)):
        if axis is None:
            if batched and mapped:
                raise BatchingError(message(
                    f"vmap({getattr(fun, '__name__', 'fun')}): out_axes=None for output leaf "
                    f"{k}, which varies across the batch",
                    fix="Map that output (out_axes=0), or make it independent of the mapped "
                        "arguments."))
            result.append(o[0])
        else:
            result.append(torch.movedim(o, 0, axis) if axis != 0 else o)
    return tree_unflatten(trees["out"], result)
