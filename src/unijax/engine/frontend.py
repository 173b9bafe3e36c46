"""The engine's transforms over pytrees: JAX semantics on top of the flat interpreters.

Every function here has already-validated arguments (see :mod:`unijax.transforms`). The flat
interpreters (:mod:`unijax.engine.ad`, :mod:`unijax.engine.batching`) take and return lists of
arrays; this module flattens pytrees, selects ``argnums``, handles ``has_aux`` and builds
Jacobians from batched JVPs/VJPs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._validate import check_cotangents, check_scalar_output, check_tangents, split_aux
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import move_bdim, vmap_flat
from unijax.engine.core import Tracer, base_value, namespace_for_value
from unijax.engine.namespace import array_functions
from unijax.errors import BatchingError, InAxesError, ShapeError, message

__all__ = [
    "engine_jacfwd",
    "engine_jacrev",
    "engine_jvp",
    "engine_value_and_grad",
    "engine_vjp",
    "engine_vmap",
    "plan_vmap",
]

Fun = Callable[..., Any]


# Where the engine reads the default float dtype: a function returning "float64" or
# "float32". The dispatcher installs unijax's configured policy (set_float_dtype_source).
_float_dtype_source: list[Callable[[], str]] = [lambda: "float64"]


def set_float_dtype_source(source: Callable[[], str]) -> None:
    """Read the default float dtype (a name such as ``"float64"``) from ``source()``."""
    _float_dtype_source[0] = source


def as_array(x: Any, xp: Any) -> Any:
    """Python scalars being differentiated become 0-d arrays of the default float dtype."""
    if isinstance(x, bool | int | float | complex):
        dtype = (getattr(xp, _float_dtype_source[0]())
                 if isinstance(x, bool | int | float) else None)
        return xp.asarray(x, dtype=dtype)
    return x


def _selected(args: tuple[Any, ...], kwargs: dict[str, Any], argnums: tuple[int, ...],
              xp: Any) -> tuple[list[Any], list[Any], Any,
                                Callable[[list[Any]], tuple[tuple[Any, ...], dict[str, Any]]]]:
    """Split the call's leaves into differentiated ones and the rest.

    Returns ``(diff_leaves, other_leaves, diff_treedef, rebuild)`` where
    ``rebuild(diff_leaves + other_leaves)`` gives back ``(args, kwargs)``. The other leaves
    enter the trace as constants so that every array the function sees is a tracer.
    """
    diff_leaves, diff_def = tree_util.tree_flatten(tuple(args[i] for i in argnums))
    diff_leaves = [as_array(x, xp) for x in diff_leaves]
    rest = tuple(None if i in argnums else a for i, a in enumerate(args))
    other_leaves, other_def = tree_util.tree_flatten((rest, kwargs))
    n = len(diff_leaves)

    def rebuild(xs: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        new_rest, new_kwargs = tree_util.tree_unflatten(other_def, xs[n:])
        full = list(new_rest)
        for i, value in zip(argnums, tree_util.tree_unflatten(diff_def, xs[:n]), strict=True):
            full[i] = value
        return tuple(full), new_kwargs

    return diff_leaves, other_leaves, diff_def, rebuild


def _one_or_tuple(values: tuple[Any, ...], argnums: Any) -> Any:
    return values[0] if isinstance(argnums, int) else values


def engine_value_and_grad(fun: Fun, argnums: Any, norm_argnums: tuple[int, ...],
                          has_aux: bool, args: tuple[Any, ...], kwargs: dict[str, Any],
                          xp: Any, api: str, name: str) -> Any:
    """``value_and_grad`` on the engine (reverse mode)."""
    leaves, others, treedef, rebuild = _selected(args, kwargs, norm_argnums, xp)
    aux_tree: list[Any] = []

    def flat_fun(xs: list[Any]) -> list[Any]:
        call_args, call_kwargs = rebuild(xs)
        out = fun(*call_args, **call_kwargs)
        if has_aux:
            out, aux = split_aux(out, api)
            aux_leaves, aux_def = tree_util.tree_flatten(aux)
            aux_tree.append(aux_def)
            check_scalar_output(out, api, name)
            return [out, *aux_leaves]
        check_scalar_output(out, api, name)
        return [out]

    outs, backward = vjp_flat(flat_fun, leaves, others)
    value = outs[0]
    cts = backward([array_functions.ones_like(value) if hasattr(value, "shape") else
                    xp.asarray(1.0)] + [None] * (len(outs) - 1), release=True)
    grads = tree_util.tree_unflatten(treedef, cts[: len(leaves)])
    grads = _one_or_tuple(grads, argnums)
    if has_aux:
        return (value, tree_util.tree_unflatten(aux_tree[0], outs[1:])), grads
    return value, grads


def engine_vjp(fun: Fun, primals: tuple[Any, ...], has_aux: bool, xp: Any, api: str) -> Any:
    """``vjp`` on the engine: returns ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``."""
    leaves, treedef = tree_util.tree_flatten(tuple(primals))
    leaves = [as_array(x, xp) for x in leaves]
    trees: dict[str, Any] = {}

    def flat_fun(xs: list[Any]) -> list[Any]:
        out = fun(*tree_util.tree_unflatten(treedef, xs))
        aux_leaves: list[Any] = []
        if has_aux:
            out, aux = split_aux(out, api)
            aux_leaves, trees["aux"] = tree_util.tree_flatten(aux)
        out_leaves, trees["out"] = tree_util.tree_flatten(out)
        trees["n_out"] = len(out_leaves)
        return [*out_leaves, *aux_leaves]

    outs, backward = vjp_flat(flat_fun, leaves)
    n_out = trees["n_out"]
    out = tree_util.tree_unflatten(trees["out"], outs[:n_out])

    def vjp_fn(*ct_args: Any) -> tuple[Any, ...]:
        ct = check_cotangents(ct_args, out, api)
        ct_leaves = tree_util.tree_leaves(ct)
        cts = backward([*ct_leaves, *([None] * (len(outs) - n_out))])
        return tuple(tree_util.tree_unflatten(treedef, cts))

    if has_aux:
        return out, vjp_fn, tree_util.tree_unflatten(trees["aux"], outs[n_out:])
    return out, vjp_fn


def engine_jvp(fun: Fun, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool,
               xp: Any, api: str) -> Any:
    """``jvp`` on the engine: returns ``(out, out_tangent)`` (plus ``aux``)."""
    check_tangents(primals, tangents, api)
    p_leaves, p_def = tree_util.tree_flatten(tuple(primals))
    t_leaves = tree_util.tree_leaves(tuple(tangents))
    p_leaves = [as_array(x, xp) for x in p_leaves]
    t_leaves = [as_array(t, xp) for t in t_leaves]
    for p, t in zip(p_leaves, t_leaves, strict=True):
        if p.dtype != t.dtype:
            raise ShapeError(
                message(f"{api}: each tangent must match its primal's shape and dtype",
                        expected=f"{tuple(p.shape)} {p.dtype}",
                        got=f"{tuple(t.shape)} {t.dtype}",
                        fix="Build tangents with xp.ones_like(primal) or similar.")
            )
    trees: dict[str, Any] = {}

    def flat_fun(xs: list[Any]) -> list[Any]:
        out = fun(*tree_util.tree_unflatten(p_def, xs))
        aux_leaves: list[Any] = []
        if has_aux:
            out, aux = split_aux(out, api)
            aux_leaves, trees["aux"] = tree_util.tree_flatten(aux)
        out_leaves, trees["out"] = tree_util.tree_flatten(out)
        trees["n_out"] = len(out_leaves)
        return [*out_leaves, *aux_leaves]

    outs, out_tangents = jvp_flat(flat_fun, p_leaves, t_leaves)
    n = trees["n_out"]
    out = tree_util.tree_unflatten(trees["out"], outs[:n])
    out_dot = tree_util.tree_unflatten(trees["out"], out_tangents[:n])
    if has_aux:
        return out, out_dot, tree_util.tree_unflatten(trees["aux"], outs[n:])
    return out, out_dot


def _basis(x: Any) -> Any:
    """The standard basis for ``x``: shape ``(x.size,) + x.shape``, ``x``'s dtype."""
    concrete = namespace_for_value(base_value(x))
    size = 1
    for d in x.shape:
        size *= d
    eye = concrete.eye(size, dtype=x.dtype)
    return array_functions.reshape(eye, (size, *tuple(x.shape)))


def _jac_leaf(batched: Any, bdim: int | None, out_shape: tuple[int, ...],
              in_shape: tuple[int, ...], size: int, out_first: bool) -> Any:
    """Arrange a batch of directional derivatives into a Jacobian block."""
    ops = array_functions
    stacked = move_bdim(batched, bdim, 0, size)
    if out_first:  # jacfwd: batch over inputs -> (in..., out...) -> (out..., in...)
        stacked = ops.reshape(stacked, (size, *out_shape))
        n = len(out_shape)
        if n:
            stacked = ops.permute_dims(stacked, (*range(1, n + 1), 0))
        return ops.reshape(stacked, (*out_shape, *in_shape))
    return ops.reshape(stacked, (*out_shape, *in_shape))  # jacrev: batch over outputs


def engine_jacfwd(fun: Fun, argnums: Any, norm_argnums: tuple[int, ...], has_aux: bool,
                  args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any, api: str) -> Any:
    """Forward-mode Jacobian: one batched JVP per differentiated input leaf."""
    leaves, others, treedef, rebuild = _selected(args, kwargs, norm_argnums, xp)
    trees: dict[str, Any] = {}

    def flat_fun(xs: list[Any]) -> list[Any]:
        call_args, call_kwargs = rebuild(xs)
        out = fun(*call_args, **call_kwargs)
        aux_leaves: list[Any] = []
        if has_aux:
            out, aux = split_aux(out, api)
            aux_leaves, trees["aux"] = tree_util.tree_flatten(aux)
        out_leaves, trees["out"] = tree_util.tree_flatten(out)
        trees["n_out"] = len(out_leaves)
        return [*out_leaves, *aux_leaves]

    outs = flat_fun([*leaves, *others])  # values, output structure, aux
    n_out = trees["n_out"]
    out_shapes = [tuple(getattr(o, "shape", ())) for o in outs[:n_out]]
    blocks: list[list[Any]] = [[] for _ in range(n_out)]
    for j, x in enumerate(leaves):
        size = _size(x)

        def push(ts: list[Any], j: int = j) -> list[Any]:
            tangents: list[Any] = [None] * (len(leaves) + len(others))
            tangents[j] = ts[0]
            return jvp_flat(flat_fun, [*leaves, *others], tangents)[1][:n_out]

        results = vmap_flat(push, [_basis(x)], [0], size)
        for i, (value, bdim) in enumerate(results):
            blocks[i].append(_jac_leaf(value, bdim, out_shapes[i], tuple(x.shape), size, True))
    return _assemble(blocks, treedef, trees, outs, n_out, argnums, has_aux)


def engine_jacrev(fun: Fun, argnums: Any, norm_argnums: tuple[int, ...], has_aux: bool,
                  args: tuple[Any, ...], kwargs: dict[str, Any], xp: Any, api: str) -> Any:
    """Reverse-mode Jacobian: one batched VJP per output leaf."""
    leaves, others, treedef, rebuild = _selected(args, kwargs, norm_argnums, xp)
    trees: dict[str, Any] = {}

    def flat_fun(xs: list[Any]) -> list[Any]:
        call_args, call_kwargs = rebuild(xs)
        out = fun(*call_args, **call_kwargs)
        aux_leaves: list[Any] = []
        if has_aux:
            out, aux = split_aux(out, api)
            aux_leaves, trees["aux"] = tree_util.tree_flatten(aux)
        out_leaves, trees["out"] = tree_util.tree_flatten(out)
        trees["n_out"] = len(out_leaves)
        return [*out_leaves, *aux_leaves]

    outs, backward = vjp_flat(flat_fun, leaves, others)
    n_out = trees["n_out"]
    blocks: list[list[Any]] = [[] for _ in range(n_out)]
    for i, o in enumerate(outs[:n_out]):
        o_arr = as_array(o, xp)
        size = _size(o_arr)

        def pull(cs: list[Any], i: int = i) -> list[Any]:
            cts: list[Any] = [None] * len(outs)
            cts[i] = cs[0]
            return backward(cts)[: len(leaves)]

        results = vmap_flat(pull, [_basis(o_arr)], [0], size)
        for j, (value, bdim) in enumerate(results):
            blocks[i].append(_jac_leaf(value, bdim, tuple(o_arr.shape),
                                       tuple(leaves[j].shape), size, False))
    return _assemble(blocks, treedef, trees, outs, n_out, argnums, has_aux)


def _size(x: Any) -> int:
    n = 1
    for d in x.shape:
        n *= d
    return n


def _assemble(blocks: list[list[Any]], in_def: Any, trees: dict[str, Any], outs: list[Any],
              n_out: int, argnums: Any, has_aux: bool) -> Any:
    per_out = [_one_or_tuple(tree_util.tree_unflatten(in_def, b), argnums) for b in blocks]
    jac = tree_util.tree_unflatten(trees["out"], per_out)
    if has_aux:
        return jac, tree_util.tree_unflatten(trees["aux"], outs[n_out:])
    return jac


# --- vmap -------------------------------------------------------------------------------------


def _leaf_axes(in_axes: Any, args: tuple[Any, ...], api: str) -> list[Any]:
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)  # JAX treats a list prefix like a tuple here
    if isinstance(in_axes, int) or in_axes is None:
        return [in_axes] * len(tree_util.tree_leaves(args))
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise InAxesError(
            message(f"{api}: in_axes must have one entry per positional argument",
                    expected=f"{len(args)} entries", got=f"{len(in_axes)} ({in_axes!r})",
                    fix="Give in_axes one entry per argument, or a single int for all.")
        )
    try:
        return tree_util.broadcast_prefix(in_axes, args, is_leaf=lambda x: x is None)
    except ValueError as err:
        raise InAxesError(
            message(f"{api}: in_axes is not a pytree prefix of the arguments",
                    got=f"in_axes={in_axes!r}", fix=f"Match the argument structure ({err}).")
        ) from None


def _normalize_axis(axis: int, ndim: int, api: str, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise InAxesError(
            message(f"{api}: {what} maps axis {axis}, which is out of range for an array of "
                    f"rank {ndim}", expected=f"an axis in [-{ndim}, {ndim})", got=str(axis),
                    fix="Check in_axes against the argument shapes (None leaves an argument "
                    "unmapped).")
        )
    return axis + ndim if axis < 0 else axis


def plan_vmap(in_axes: Any, axis_size: int | None, args: tuple[Any, ...],
              kwargs: dict[str, Any], api: str) -> tuple[list[Any], Any, list[Any], Any,
                                                         list[int | None], int]:
    """Check ``in_axes``/``axis_size`` against the arguments; the same on every backend.

    Returns:
        ``(leaves, treedef, kw_leaves, kw_treedef, dims, size)`` with non-negative dims.
    """
    leaves, treedef = tree_util.tree_flatten(args)
    axes = _leaf_axes(in_axes, args, api)
    kw_leaves, kw_def = tree_util.tree_flatten(kwargs)
    sizes: dict[int, str] = {}
    dims: list[int | None] = []
    for k, (x, axis) in enumerate(zip(leaves, axes, strict=True)):
        if axis is None:
            dims.append(None)
            continue
        ndim = len(getattr(x, "shape", ()))
        d = _normalize_axis(axis, ndim, api, f"argument leaf {k}")
        dims.append(d)
        sizes.setdefault(x.shape[d], f"argument leaf {k} axis {d}")
    for k, x in enumerate(kw_leaves):  # JAX maps keyword arguments over axis 0
        ndim = len(getattr(x, "shape", ()))
        _normalize_axis(0, ndim, api, f"keyword argument leaf {k}")
        sizes.setdefault(x.shape[0], f"keyword argument leaf {k}")
    if len(sizes) > 1:
        detail = ", ".join(f"{where} has size {n}" for n, where in sizes.items())
        raise BatchingError(
            message(f"{api}: mapped axes must all have the same size", got=detail,
                    fix="Make the mapped axes agree, or map fewer arguments (None).")
        )
    if not sizes:
        if axis_size is None:
            raise BatchingError(
                message(f"{api}: no argument is mapped, so the batch size is unknown",
                        fix="Pass axis_size=..., or map at least one argument.")
            )
        return leaves, treedef, kw_leaves, kw_def, dims, axis_size
    size = next(iter(sizes))
    if axis_size is not None and axis_size != size:
        raise BatchingError(
            message(f"{api}: axis_size={axis_size} disagrees with the mapped arguments",
                    got=f"size {size}", fix="Drop axis_size or make them agree.")
        )
    return leaves, treedef, kw_leaves, kw_def, dims, size


def engine_vmap(fun: Fun, in_axes: Any, out_axes: Any, axis_size: int | None,
                args: tuple[Any, ...], kwargs: dict[str, Any], api: str) -> Any:
    """``vmap`` on the engine: map ``fun`` over axes of its arguments."""
    leaves, treedef, kw_leaves, kw_def, dims, size = plan_vmap(in_axes, axis_size, args,
                                                               kwargs, api)
    n_args = len(leaves)
    trees: dict[str, Any] = {}

    def flat_fun(xs: list[Any]) -> list[Any]:
        call_args = tree_util.tree_unflatten(treedef, xs[:n_args])
        call_kwargs = tree_util.tree_unflatten(kw_def, xs[n_args:])
        out = fun(*call_args, **call_kwargs)
        out_leaves, trees["out"] = tree_util.tree_flatten(out)
        trees["value"] = out
        return out_leaves

    results = vmap_flat(flat_fun, [*leaves, *kw_leaves], [*dims, *([0] * len(kw_leaves))], size)
    out_def = trees["out"]
    if isinstance(out_axes, int | type(None)):
        o_axes = [out_axes] * len(results)
    else:
        out_tree = tree_util.tree_unflatten(out_def, [0] * len(results))
        try:
            o_axes = tree_util.broadcast_prefix(out_axes, out_tree, is_leaf=lambda x: x is None)
        except ValueError:
            raise InAxesError(
                message(f"{api}: out_axes is not a pytree prefix of the output",
                        got=f"out_axes={out_axes!r}", fix=f"Match the output structure {out_def}.")
            ) from None
    final = []
    for k, ((value, bdim), oax) in enumerate(zip(results, o_axes, strict=True)):
        if oax is None:
            if bdim is not None:
                raise BatchingError(
                    message(f"{api}: out_axes=None for output leaf {k}, but it varies across "
                            "the batch", fix="Map that output (out_axes=0), or make it "
                            "independent of the mapped arguments.")
                )
            final.append(value)
            continue
        if not isinstance(value, Tracer) and not hasattr(value, "shape"):
            value = namespace_for_value(leaves[0] if leaves else value).asarray(value)
        ndim = len(value.shape) + (bdim is None)
        dst = _normalize_axis(oax, ndim, api, f"out_axes for output leaf {k}")
        final.append(move_bdim(value, bdim, dst, size))
    return tree_util.tree_unflatten(out_def, final)
