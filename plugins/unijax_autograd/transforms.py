"""Autograd's reverse mode behind JAX's signatures: ``grad``, ``value_and_grad``,
``vjp`` and ``jacrev`` over ``autograd``'s tracer, with ``argnums`` an int or a tuple,
``has_aux`` and pytree arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.builtins import tuple as atuple
from autograd.core import VJPNode, add_outgrads, vspace
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import box_type_mappings, isbox, new_box, toposort, trace_stack

from unijax.errors import NonScalarOutputError, message
from unijax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

# Importing the namespace completes ArrayBox (device, in-place writes ...) and holds the
# node type of constants and the stack of the traces this module starts.
from unijax_autograd.namespace import _ConstantAwareVJPNode, _traces

__all__ = ["grad", "jacrev", "value_and_grad", "vjp"]


# --- adapters with JAX's signatures ---------------------------------------------------------


def _replace(args: tuple[Any, ...], argnums: tuple[int, ...], values: Any) -> list[Any]:
    new = list(args)
    for i, v in zip(argnums, values, strict=True):
        new[i] = v
    return new


def _call_with_constants(fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                         nums: tuple[int, ...], dyn: tuple[Any, ...]) -> Any:
    """Call ``fun`` with ``dyn`` at ``nums`` and every other NumPy array (or NumPy scalar)
    boxed as a constant.

    Library code calls ``array_namespace(x, params)``; a plain ndarray next to autograd's
    boxes would give two namespaces. Boxing the other arrays on the same trace, under
    root nodes marked constant, keeps one namespace and changes no derivative; on a trace
    started by :func:`_make_vjp` no cotangent is computed towards them.

    Integer and boolean arrays (indices, masks) are boxed too, although they carry no
    derivative. ``array_namespace`` maps a plain ndarray, whatever its dtype, to
    ``array_api_compat.numpy`` and merges namespaces only by ``__name__``: a plain index
    array next to a box gives "Multiple namespaces for array inputs". Making them merge
    would mean naming this plugin's namespace ``array_api_compat.numpy``; then the first
    argument decides (``array_namespace(idx, x)`` would hand library code NumPy's
    functions, which coerce boxes), and ``is_numpy_namespace`` would send SciPy and
    scikit-learn down NumPy-only paths. Boxed integers cost no VJP work (constant roots
    record nothing), and the namespace makes such boxes behave as integer arrays
    (``unijax_autograd.namespace._install``: integer scalars, ``__index__``, tuple keys,
    bitwise operators).
    """
    top = next((leaf for leaf in tree_leaves(dyn) if isbox(leaf)), None)
    if top is not None:
        trace = top._trace
        node_type = _ConstantAwareVJPNode
        ours = type(top._node) is node_type  # else a trace of autograd's own grad

        def root() -> Any:
            return node_type.new_root(constant=True) if ours else VJPNode.new_root()

        def box(v: Any) -> Any:  # one root per constant: its cotangent has its shape
            return new_box(v, trace, root()) if _is_constant_array(v) else v

        args, kwargs = tree_map(box, (tuple(None if i in nums else a
                                            for i, a in enumerate(args)), kwargs))
    return fun(*_replace(args, nums, dyn), **kwargs)


def _is_constant_array(v: Any) -> bool:
    """Whether ``v`` is a NumPy array or NumPy scalar, which array_api_compat maps to its
    NumPy wrapper: boxed as a constant next to boxes (Python scalars are not arrays)."""
    return type(v) is np.ndarray or (isinstance(v, np.generic) and type(v) in box_type_mappings)


def _make_vjp(fun: Callable[[list[Any]], Any], xs: Sequence[Any]
              ) -> tuple[Callable[[Any], tuple[Any, ...]], Any]:
    """autograd's ``make_vjp`` over a list of inputs, each boxed under a root of its own.

    ``fun`` receives the list of boxes. The returned function maps the output's cotangent
    to a tuple with one cotangent per input. Boxing the inputs one by one, rather than
    boxing a tuple of them, keeps a dict of parameters off the tape: indexing a boxed
    tuple is itself recorded, and its VJP builds zeros for every other element.
    Constants boxed by :func:`_call_with_constants` add roots that no cotangent reaches.
    """
    starts = [_ConstantAwareVJPNode.new_root() for _ in xs]
    with trace_stack.new_trace() as trace:
        _traces.append(trace)  # the namespace's creation functions box constants on it
        try:
            end = fun([new_box(x, trace, start) for x, start in zip(xs, starts, strict=True)])
        finally:
            _traces.pop()
    end_value, end_node = (end._value, end._node) if isbox(end) and end._trace == trace \
        else (end, None)

    def vjp(g: Any) -> tuple[Any, ...]:
        found: dict[int, Any] = {}
        if end_node is not None:
            outgrads = {end_node: (g, False)}
            for node in toposort(end_node):
                outgrad = outgrads.pop(node)
                if not node.parents:  # a root: an input (constants are never reached)
                    found[id(node)] = outgrad[0]
                    continue
                for parent, ingrad in zip(node.parents, node.vjp(outgrad[0]), strict=False):
                    outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
        return tuple(_cotangent_for(found[id(start)], x) if id(start) in found
                     else vspace(x).zeros() for start, x in zip(starts, xs, strict=True))

    return vjp, end_value


def _cotangent_for(g: Any, x: Any) -> Any:
    """``g`` as the cotangent of input ``x``: an array (not a NumPy scalar) of its shape.

    A few of autograd's VJPs (``where``, ``cross``) return the cotangent of a broadcast
    operand in the broadcast shape; the transpose of broadcasting sums over those axes.
    """
    if not isbox(g) and type(g) is not np.ndarray:
        g = np.asarray(g)  # autograd gives NumPy scalars for 0-d values
    shape = anp.shape(x)
    g_shape = anp.shape(g)
    if g_shape == shape:
        return g
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g_shape[lead + i] != 1)
    return anp.reshape(anp.sum(g, axis=axes, keepdims=True), shape)


def _unbox_from(trace: Any, tree: Any) -> Any:
    """``tree`` with boxes of ``trace`` replaced by their values (aux leaves JAX returns)."""
    return tree_map(lambda v: v._value if isbox(v) and v._trace == trace else v, tree)


def _flat_vjp(fun: Callable[..., Any], primals: tuple[Any, ...], has_aux: bool) -> Any:
    """``make_vjp`` over the leaves of ``primals``: (out, vjp on out-leaves, aux, treedef)."""
    leaves, treedef = tree_flatten(primals)
    found: dict[str, Any] = {}

    def flat_fun(flat: list[Any]) -> Any:
        out = fun(*tree_unflatten(treedef, flat))
        if has_aux:
            out, aux = out
            found["aux"] = _unbox_from(flat[0]._trace if flat else None, aux)
        out_leaves, found["out_tree"] = tree_flatten(out)
        return atuple(out_leaves)

    raw_vjp, out_leaves = _make_vjp(flat_fun, leaves)
    out = tree_unflatten(found["out_tree"], list(out_leaves))
    return out, raw_vjp, found.get("aux"), treedef, found["out_tree"]


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``jax.vjp`` on Autograd: ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``.

    Example:
        >>> import numpy as np
        >>> out, vjp_fn = vjp(lambda x: x * 3.0, np.ones(2))
        >>> vjp_fn(np.ones(2))
        (array([3., 3.]),)
    """
    out, raw_vjp, aux, treedef, out_tree = _flat_vjp(fun, primals, has_aux)

    def vjp_fn(ct: Any) -> tuple[Any, ...]:
        ct_leaves, ct_tree = tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(f"vjp_fn expected a cotangent with structure {out_tree}, "
                             f"got {ct_tree}")
        return tuple(tree_unflatten(treedef, list(raw_vjp(tuple(ct_leaves)))))

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def value_and_grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """``jax.value_and_grad`` on Autograd (pytree arguments, tuple ``argnums``).

    Example:
        >>> import numpy as np
        >>> value_and_grad(lambda p: (p["w"] ** 2).sum())({"w": np.ones(2)})
        (np.float64(2.0), {'w': array([2., 2.])})
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def value_and_grad_fun(*args: Any, **kwargs: Any) -> Any:
        def partial(*dyn: Any) -> Any:
            return _call_with_constants(fun, args, kwargs, nums, dyn)

        dyn = tuple(args[i] for i in nums)
        out, raw_vjp, aux, in_tree, out_tree = _flat_vjp(partial, dyn, has_aux)
        space = vspace(out) if out_tree.num_leaves == 1 else None
        if space is None or space.size != 1 or space.iscomplex:
            raise NonScalarOutputError(message(
                f"grad({getattr(fun, '__name__', 'fun')}) needs a real scalar output",
                got=f"shape {getattr(out, 'shape', ())}" if space else f"a {type(out).__name__}",
                fix="Reduce it (xp.sum) or use jacrev."))
        grads = tree_unflatten(in_tree, list(raw_vjp((space.ones(),))))
        grads = grads[0] if isinstance(argnums, int) else grads
        return ((out, aux), grads) if has_aux else (out, grads)

    return value_and_grad_fun


class _ConstantOutput(Exception):
    """The differentiated function returned a value made from constants only."""


def grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """``jax.grad`` on Autograd; plain ``autograd.grad`` when differentiating one array.

    Example:
        >>> import numpy as np
        >>> grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(np.ones(2), 2.0)
        (array([2., 2.]), array(2.))
    """
    general = value_and_grad(fun, argnums, has_aux)
    if isinstance(argnums, int) and not has_aux:

        def traced(*args: Any, **kwargs: Any) -> Any:
            # Called on autograd's new trace: the creation functions may box constants on it.
            _traces.append(trace_stack.top)
            try:
                out = fun(*args, **kwargs)
            finally:
                _traces.pop()
            # An output computed from constant boxes alone is a constant root: autograd's
            # backward pass would return the seed as the gradient, where it is zero. Such
            # a call is rare; it is run again on the general path, which knows constants.
            if isbox(out) and getattr(out._node, "constant", False):
                raise _ConstantOutput
            return out

        direct = autograd.grad(traced, argnums)
        leaf_types = frozenset({np.ndarray, ArrayBox, float, np.float64, np.float32})

        def grad_fun(*args: Any, **kwargs: Any) -> Any:
            # One array argument and no other arrays to box: autograd's own speed.
            if type(args[argnums]) in leaf_types and not kwargs and not any(
                    _is_constant_array(a) for i, a in enumerate(args) if i != argnums):
                try:
                    return direct(*args, **kwargs)
                except _ConstantOutput:
                    pass
            return general(*args, **kwargs)[1]

        return grad_fun

    def grad_aux_fun(*args: Any, **kwargs: Any) -> Any:
        value, grads = general(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return grad_aux_fun


def jacrev(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
           has_aux: bool = False) -> Callable[..., Any]:
    """``jax.jacrev`` on Autograd: one backward pass per output element.

    Example:
        >>> import numpy as np
        >>> jacrev(lambda x: x ** 2)(np.arange(2.0))
        array([[0., 0.],
               [0., 2.]])
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def jac_fun(*args: Any, **kwargs: Any) -> Any:
        def partial(*dyn: Any) -> Any:
            return _call_with_constants(fun, args, kwargs, nums, dyn)

        dyn = tuple(args[i] for i in nums)
        out, raw_vjp, aux, in_tree, out_tree = _flat_vjp(partial, dyn, has_aux)
        out_leaves = tree_leaves(out)
        in_leaves, _ = tree_flatten(dyn)
        blocks = []
        for j, o in enumerate(out_leaves):
            o_shape = tuple(anp.shape(o))
            size = int(anp.prod(o_shape)) if o_shape else 1
            basis = anp.eye(size, dtype=anp.result_type(o)).reshape((size, *o_shape))
            rows = []
            for k in range(size):
                ct = [anp.zeros(anp.shape(v), anp.result_type(v)) for v in out_leaves]
                ct[j] = basis[k]
                rows.append(tree_leaves(tuple(raw_vjp(tuple(ct)))))
            # An output with no elements has an empty Jacobian: no rows to stack.
            per_in = [
                anp.reshape(anp.stack([r[i] for r in rows]), o_shape + tuple(anp.shape(x)))
                if rows else anp.zeros(o_shape + tuple(anp.shape(x)), anp.result_type(x))
                for i, x in enumerate(in_leaves)
            ]
            in_jac = tree_unflatten(in_tree, per_in)
            blocks.append(in_jac[0] if isinstance(argnums, int) else in_jac)
        jac = tree_unflatten(out_tree, blocks)
        return (jac, aux) if has_aux else jac

    return jac_fun
