"""Products of arrays: ``matmul``, ``matrix_transpose``, ``tensordot``, ``vecdot``.

These live in the main namespace and are repeated in ``linalg`` (the same primitives).
Their derivatives are products again; their batching rules fold the ``vmap`` axis into
the product itself (into the rows of one large matrix product where the layout allows
it, else into the product's own broadcast batch dimensions), never into a Python loop.
"""

from __future__ import annotations

import math
from typing import Any

from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp, def_vjp_metadata
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules._linalg_helpers import add as _add
from unijax.engine.rules._linalg_helpers import conj as _conj
from unijax.engine.rules._linalg_helpers import eye_like, matrix_batch, mul
from unijax.engine.rules._linalg_helpers import pad_front as _pad_front
from unijax.errors import message

__all__ = [
    "cross",
    "diagonal",
    "matmul",
    "matrix_transpose",
    "outer",
    "tensordot",
    "trace",
    "vecdot",
]


# --- matmul -------------------------------------------------------------------------------

matmul_p = Primitive("matmul")


@def_api("matmul")
def matmul(x1: Any, x2: Any, /) -> Any:
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch dimensions.

    Args:
        x1: First operand, at least 1-D.
        x2: Second operand, at least 1-D.

    Returns:
        The product; a 1-D operand contributes no axis to the result.
    """
    return matmul_p.bind(x1, x2)


def_api("matmul", "linalg")(matmul)


@def_jvp(matmul_p)
def _matmul_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    out = matmul_p.bind(x, y)
    t = None if x_dot is None else matmul_p.bind(x_dot, y)
    return out, _add(t, None if y_dot is None else matmul_p.bind(x, y_dot))


def_vjp_metadata(matmul_p, "out")  # the product itself is not needed backwards


def _product(a: Any, b: Any) -> Any:
    """``a @ b`` for operands of rank >= 2, as a broadcast multiply when it is an outer product.

    A contracted axis of length 1 (a VJP with a 1-D operand) sums nothing: a broadcast
    ``multiply`` gives the same values without a matrix-product kernel, and NumPy's
    batched ``matmul`` with an inner length of 1 is markedly slower than the multiply.
    """
    if shape_of(a)[-1] == 1:
        return ops.multiply(a, b)
    return matmul_p.bind(a, b)


@def_vjp(matmul_p)
def _matmul_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    x, y = primals
    xs, ys = shape_of(x), shape_of(y)
    if len(xs) == 1 and len(ys) == 1:  # dot product: the cotangent is a scalar
        return (unbroadcast(mul(ct, y), x) if needs[0] else None,
                unbroadcast(mul(ct, x), y) if needs[1] else None)
    if len(xs) + len(ys) == 3:
        # A matrix and a vector: one product and one outer product, with no reshapes of
        # the (small, often per-iteration) vector cotangent.
        if len(ys) == 1:  # (m, k) @ (k,)
            return (ops.multiply(ops.reshape(ct, (xs[0], 1)), ops.reshape(y, (1, ys[0])))
                    if needs[0] else None,
                    matmul_p.bind(matrix_transpose(x), ct) if needs[1] else None)
        return (matmul_p.bind(y, ct) if needs[0] else None,  # (k,) @ (k, n)
                ops.multiply(ops.reshape(x, (xs[0], 1)), ops.reshape(ct, (1, ys[1])))
                if needs[1] else None)
    # Treat 1-D operands as a row (x) or a column (y) so one formula covers every case.
    x2 = ops.reshape(x, (1, xs[0])) if len(xs) == 1 else x
    y2 = ops.reshape(y, (ys[0], 1)) if len(ys) == 1 else y
    if len(xs) == 1 or len(ys) == 1:
        cs = shape_of(ct)
        ct = ops.reshape(ct, (*cs, 1) if len(ys) == 1 else (*cs[:-1], 1, cs[-1]))
    ct_x = ct_y = None
    if needs[0]:
        if len(shape_of(y2)) > 2 and len(shape_of(x2)) == 2:
            # Sum over y's batch inside one contraction instead of a batch of products.
            lead = tuple(range(ndim_of(ct) - 2))
            ct_x = tensordot(ct, y2, axes=((*lead, ndim_of(ct) - 1), (*lead, ndim_of(y2) - 1)))
        else:
            ct_x = unbroadcast(_product(ct, matrix_transpose(y2)), x2)
        ct_x = unbroadcast(ops.reshape(ct_x, xs) if len(xs) == 1 else ct_x, x)
    if needs[1]:
        if len(shape_of(x2)) > 2 and len(shape_of(y2)) == 2:
            # x's batch and rows fold into one long contraction: a single GEMM.
            k, m = shape_of(x2)[-1], shape_of(ct)[-1]
            rows = math.prod(shape_of(x2)[:-1])
            ct_y = matmul_p.bind(matrix_transpose(ops.reshape(x2, (rows, k))),
                                 ops.reshape(ct, (rows, m)))
        else:
            ct_y = unbroadcast(_product(matrix_transpose(x2), ct), y2)
        ct_y = unbroadcast(ops.reshape(ct_y, ys) if len(ys) == 1 else ct_y, y)
    return ct_x, ct_y


@def_batch(matmul_p)
def _matmul_batch(args: tuple[Any, ...], bdims: tuple[Any, ...]) -> Any:
    x, y = args
    bx, by = bdims
    rx = ndim_of(x) - (bx is not None)  # the ranks of one example's operands
    ry = ndim_of(y) - (by is not None)
    if not rx or not ry:
        # The layouts below would treat the batch axis as the missing one and compute a
        # product that eager evaluation refuses.
        raise ValueError(message("matmul needs operands with at least one dimension",
                                 got=f"per-example operands of {rx} and {ry} dimensions",
                                 fix="Use multiply for a scalar factor."))
    if by is None and ndim_of(y) <= 2 and bx != ndim_of(x) - 1:
        # Every axis of x but the contracted one indexes rows: one GEMM over all of them.
        xs = shape_of(x)
        flat = ops.reshape(x, (math.prod(xs[:-1]), xs[-1]))
        out = matmul_p.bind(flat, y)
        return ops.reshape(out, xs[:-1] + tuple(shape_of(y)[1:])), bx
    if bx is None and ndim_of(x) <= 2:
        ys = shape_of(y)
        if len(ys) == 2:  # a batch of vectors is a matrix with the batch as columns
            cols = y if by == 1 else matrix_transpose(y)
            out = matmul_p.bind(x, cols)
            return out, ndim_of(out) - 1
        if len(ys) == 3 and by != 0:  # the contracted axis leads: batch folds into columns
            out = matmul_p.bind(x, ops.reshape(y, (ys[0], ys[1] * ys[2])))
            lead = tuple(shape_of(x)[:-1])
            return ops.reshape(out, lead + ys[1:]), len(lead) + by - 1
    # General case: batch axis first, 1-D operands promoted, batch ranks aligned.
    x, y = bdim_to_front(x, bx), bdim_to_front(y, by)
    if rx == 1:
        xs = shape_of(x)
        x = ops.reshape(x, (*xs[:-1], 1, xs[-1]))
    if ry == 1:
        y = ops.reshape(y, (*shape_of(y), 1))
    rank = max(rx, ry, 2) + 1
    if bx is not None:
        x = _pad_front(x, rank)
    if by is not None:
        y = _pad_front(y, rank)
    out = matmul_p.bind(x, y)
    squeeze = (() if rx > 1 else (-2,)) + (() if ry > 1 else (-1,))
    if squeeze:
        out = ops.squeeze(out, axis=squeeze)
    return out, 0


# --- matrix_transpose ---------------------------------------------------------------------

matrix_transpose_p = Primitive("matrix_transpose")


@def_api("matrix_transpose")
def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes of ``x`` (at least 2-D)."""
    return matrix_transpose_p.bind(x)


def_api("matrix_transpose", "linalg")(matrix_transpose)


@def_jvp(matrix_transpose_p)
def _matrix_transpose_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    return matrix_transpose_p.bind(primals[0]), matrix_transpose_p.bind(tangents[0])


@def_vjp(matrix_transpose_p)
def _matrix_transpose_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    return (matrix_transpose_p.bind(ct),)


def_batch(matrix_transpose_p, matrix_batch(matrix_transpose_p))


# --- tensordot ----------------------------------------------------------------------------

tensordot_p = Primitive("tensordot")


def _normalize_axes(axes: Any, n1: int, n2: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(axes, int):
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative, got {axes}")
        return tuple(range(n1 - axes, n1)), tuple(range(axes))
    a1, a2 = axes
    a1 = (a1,) if isinstance(a1, int) else tuple(a1)
    a2 = (a2,) if isinstance(a2, int) else tuple(a2)
    if len(a1) != len(a2):
        raise ValueError(
            f"tensordot: both operands need as many contracted axes, got {a1} and {a2}")
    return tuple(a + n1 if a < 0 else a for a in a1), tuple(a + n2 if a < 0 else a for a in a2)


@def_api("tensordot")
def tensordot(x1: Any, x2: Any, /, *, axes: int | tuple[Any, Any] = 2) -> Any:
    """Contract ``x1`` and ``x2`` over ``axes`` (an int N: last N of x1, first N of x2).

    Args:
        x1: First operand.
        x2: Second operand.
        axes: Number of axes, or a pair of sequences of axes to contract.

    Returns:
        The free axes of ``x1`` followed by the free axes of ``x2``.
    """
    return tensordot_p.bind(x1, x2, axes=_normalize_axes(axes, ndim_of(x1), ndim_of(x2)))


def_api("tensordot", "linalg")(tensordot)


@def_jvp(tensordot_p)
def _tensordot_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axes: Any) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    out = tensordot_p.bind(x, y, axes=axes)
    t = None if x_dot is None else tensordot_p.bind(x_dot, y, axes=axes)
    return out, _add(t, None if y_dot is None else tensordot_p.bind(x, y_dot, axes=axes))


def _free(n: int, contracted: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i in range(n) if i not in contracted)


def _arrange(result: Any, labels: list[int]) -> Any:
    """Permute ``result``, whose axis ``i`` is operand axis ``labels[i]``, to operand order."""
    perm = tuple(labels.index(i) for i in range(len(labels)))
    return result if perm == tuple(range(len(perm))) else ops.permute_dims(result, perm)


@def_vjp(tensordot_p)
def _tensordot_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...], *,
                   axes: Any) -> Any:
    x, y = primals
    a1, a2 = axes
    f1, f2 = _free(ndim_of(x), a1), _free(ndim_of(y), a2)
    nf1 = len(f1)
    ct_x = ct_y = None
    if needs[0]:
        r = tensordot_p.bind(ct, y, axes=(tuple(range(nf1, nf1 + len(f2))), f2))
        labels = list(f1) + [a1[a2.index(s)] for s in sorted(a2)]
        ct_x = unbroadcast(_arrange(r, labels), x)
    if needs[1]:
        r = tensordot_p.bind(x, ct, axes=(f1, tuple(range(nf1))))
        labels = [a2[a1.index(s)] for s in sorted(a1)] + list(f2)
        ct_y = unbroadcast(_arrange(r, labels), y)
    return ct_x, ct_y


@def_batch(tensordot_p)
def _tensordot_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axes: Any) -> Any:
    x, y = args
    bx, by = bdims
    a1, a2 = axes
    x, y = bdim_to_front(x, bx), bdim_to_front(y, by)
    if by is None:
        return tensordot_p.bind(x, y, axes=(tuple(a + 1 for a in a1), a2)), 0
    if bx is None:
        out = tensordot_p.bind(x, y, axes=(a1, tuple(a + 1 for a in a2)))
        return out, ndim_of(x) - len(a1)
    # Both mapped: a batched matrix product of (batch, free1, contracted) by
    # (batch, contracted, free2).
    xs, ys = shape_of(x), shape_of(y)
    f1, f2 = _free(len(xs) - 1, a1), _free(len(ys) - 1, a2)
    k = math.prod(xs[1 + a] for a in a1)
    m1 = ops.permute_dims(x, (0, *(1 + a for a in f1), *(1 + a for a in a1)))
    m2 = ops.permute_dims(y, (0, *(1 + a for a in a2), *(1 + a for a in f2)))
    free1 = tuple(xs[1 + a] for a in f1)
    free2 = tuple(ys[1 + a] for a in f2)
    prod = matmul_p.bind(ops.reshape(m1, (xs[0], math.prod(free1), k)),
                         ops.reshape(m2, (xs[0], k, math.prod(free2))))
    return ops.reshape(prod, (xs[0], *free1, *free2)), 0


# --- vecdot -------------------------------------------------------------------------------

vecdot_p = Primitive("vecdot")


@def_api("vecdot")
def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """Dot product ``sum(conj(x1) * x2)`` over ``axis``, broadcasting the other axes.

    Args:
        x1: First operand (conjugated when complex).
        x2: Second operand, broadcast-compatible with ``x1``.
        axis: The contracted axis, counted from the end (negative) or, when both
            operands have the same rank, from the start.

    Returns:
        The broadcast shape without ``axis``.
    """
    rank = max(ndim_of(x1), ndim_of(x2))
    return vecdot_p.bind(x1, x2, axis=axis - rank if axis >= 0 else axis)


def_api("vecdot", "linalg")(vecdot)


@def_jvp(vecdot_p)
def _vecdot_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    out = vecdot_p.bind(x, y, axis=axis)
    t = None if x_dot is None else vecdot_p.bind(x_dot, y, axis=axis)
    return out, _add(t, None if y_dot is None else vecdot_p.bind(x, y_dot, axis=axis))


@def_vjp(vecdot_p)
def _vecdot_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...], *,
                axis: int) -> Any:
    x, y = primals
    ct = ops.expand_dims(ct, axis=axis)
    ct_x = unbroadcast(_conj(mul(ct, y)), x) if needs[0] else None
    ct_y = unbroadcast(mul(_conj(x), ct), y) if needs[1] else None
    return ct_x, ct_y


@def_batch(vecdot_p)
def _vecdot_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: int) -> Any:
    rank = max(ndim_of(a) - (b is not None) for a, b in zip(args, bdims, strict=True)) + 1
    x, y = (a if b is None else _pad_front(bdim_to_front(a, b), rank)
            for a, b in zip(args, bdims, strict=True))
    return vecdot_p.bind(x, y, axis=axis), 0


# --- outer --------------------------------------------------------------------------------

outer_p = Primitive("outer", namespace="linalg")


@def_api("outer", "linalg")
def outer(x1: Any, x2: Any, /) -> Any:
    """Outer product of two 1-D arrays: ``out[i, j] = x1[i] * x2[j]``."""
    return outer_p.bind(x1, x2)


@def_jvp(outer_p)
def _outer_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    t = None if x_dot is None else outer_p.bind(x_dot, y)
    return outer_p.bind(x, y), _add(t, None if y_dot is None else outer_p.bind(x, y_dot))


@def_vjp(outer_p)
def _outer_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    x, y = primals
    return (unbroadcast(matmul_p.bind(ct, y), x) if needs[0] else None,
            unbroadcast(matmul_p.bind(x, ct), y) if needs[1] else None)


@def_batch(outer_p)
def _outer_batch(args: tuple[Any, ...], bdims: tuple[Any, ...]) -> Any:
    # A batch of outer products is a broadcast product: (B, n, 1) * (B, 1, m).
    x, y = (bdim_to_front(a, b) for a, b in zip(args, bdims, strict=True))
    return ops.multiply(ops.expand_dims(x, axis=-1), ops.expand_dims(y, axis=-2)), 0


# --- cross --------------------------------------------------------------------------------

cross_p = Primitive("cross", namespace="linalg")


@def_api("cross", "linalg")
def cross(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """Cross product of 3-element vectors along ``axis``, broadcasting the other axes."""
    rank = max(ndim_of(x1), ndim_of(x2))
    return cross_p.bind(x1, x2, axis=axis - rank if axis >= 0 else axis)


@def_jvp(cross_p)
def _cross_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int) -> Any:
    x, y = primals
    x_dot, y_dot = tangents
    t = None if x_dot is None else cross_p.bind(x_dot, y, axis=axis)
    out = cross_p.bind(x, y, axis=axis)
    return out, _add(t, None if y_dot is None else cross_p.bind(x, y_dot, axis=axis))


@def_vjp(cross_p)
def _cross_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...], *,
               axis: int) -> Any:
    # <ct, a x b> = <b x ct, a> = <ct x a, b>  (the scalar triple product).
    x, y = primals
    return (unbroadcast(cross_p.bind(y, ct, axis=axis), x) if needs[0] else None,
            unbroadcast(cross_p.bind(ct, x, axis=axis), y) if needs[1] else None)


@def_batch(cross_p)
def _cross_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: int) -> Any:
    rank = max(ndim_of(a) - (b is not None) for a, b in zip(args, bdims, strict=True)) + 1
    x, y = (a if b is None else _pad_front(bdim_to_front(a, b), rank)
            for a, b in zip(args, bdims, strict=True))
    return cross_p.bind(x, y, axis=axis), 0


# --- diagonal and trace -----------------------------------------------------------------------

diagonal_p = Primitive("diagonal", namespace="linalg")


@def_api("diagonal", "linalg")
def diagonal(x: Any, /, *, offset: int = 0) -> Any:
    """The ``offset`` diagonal of each matrix in ``x`` (last two axes)."""
    return diagonal_p.bind(x, offset=offset)


@def_jvp(diagonal_p)
def _diagonal_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, offset: int) -> Any:
    return diagonal_p.bind(primals[0], offset=offset), diagonal_p.bind(tangents[0], offset=offset)


@def_vjp(diagonal_p)
def _diagonal_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                  offset: int) -> Any:
    x = primals[0]
    m, n = shape_of(x)[-2:]
    ct = ct if ct.dtype == x.dtype else ops.astype(ct, x.dtype)
    # Spread ct over the columns it occupies (a 0/1 selection matrix), then keep the
    # diagonal: ct_x[i, j] = [j - i == offset] * ct[j - max(offset, 0)].
    spread = matmul_p.bind(ct, eye_like(ct, shape_of(ct)[-1], n, k=max(offset, 0)))
    return (ops.multiply(ops.expand_dims(spread, axis=-2), eye_like(ct, m, n, k=offset)),)


def_batch(diagonal_p, matrix_batch(diagonal_p))


trace_p = Primitive("trace", namespace="linalg")


@def_api("trace", "linalg")
def trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    """Sum of the ``offset`` diagonal of each matrix in ``x`` (last two axes)."""
    return trace_p.bind(x, offset=offset, dtype=dtype)


@def_jvp(trace_p)
def _trace_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    return trace_p.bind(primals[0], **params), trace_p.bind(tangents[0], **params)


@def_vjp(trace_p)
def _trace_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, offset: int,
               dtype: Any) -> Any:
    x = primals[0]
    m, n = shape_of(x)[-2:]
    ct = ops.expand_dims(ops.expand_dims(ct, axis=-1), axis=-1)
    return (unbroadcast(ops.multiply(ct, eye_like(x, m, n, k=offset)), x),)


def_batch(trace_p, matrix_batch(trace_p))
