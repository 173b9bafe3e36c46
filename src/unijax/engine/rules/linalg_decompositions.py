"""Decompositions and norms of the ``linalg`` extension: eigh, svd, qr and the norms.

JVPs are JAX's formulas. ``eigh``/``eigvalsh``/``svdvals`` have hand-written VJPs (the
cheap ones); ``svd`` and ``qr`` get theirs by transposing the JVP's linear map
(:func:`~unijax.engine.rules._linalg_helpers.transpose_of_jvp`), which is what JAX does too.
Like JAX, derivatives of ``eigh`` treat the input as the Hermitian ``(x + x^H) / 2``, and
they assume distinct eigenvalues (distinct singular values for ``svd``): at a
degeneracy the eigenvectors are not differentiable and the result is not finite.

Norms are computed by the backend and differentiated through their textbook
definitions (:func:`~unijax.engine.rules._linalg_helpers.composite_rules`), which are JAX's.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

from unijax._dtypes import is_complex
from unijax.engine.core import Primitive, builtin_scalar
from unijax.engine.registry import def_api, def_batch, def_jvp, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of
from unijax.engine.rules._linalg_helpers import (
    add,
    composite_rules,
    conj,
    eye_like,
    hermitian,
    matrix_batch,
    mm,
    mul,
    sub,
    transpose_of_jvp,
)
from unijax.engine.rules.linalg import diagonal, matrix_transpose
from unijax.engine.rules.linalg_solve import triangular_solve_p
from unijax.errors import UnsupportedTransformError, message

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "eigh",
    "eigvalsh",
    "matrix_norm",
    "qr",
    "svd",
    "svdvals",
    "vector_norm",
]

mT = matrix_transpose

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])


def _sym(x: Any) -> Any:
    return ops.add(x, hermitian(x)) * 0.5


def _diag_embed(v: Any) -> Any:
    """Matrices with ``v`` (last axis) on their diagonals."""
    return mul(ops.expand_dims(v, axis=-2), eye_like(v, shape_of(v)[-1]))


def _as(x: Any, like: Any) -> Any:
    return x if x.dtype == like.dtype else ops.astype(x, like.dtype)


# --- eigh and eigvalsh --------------------------------------------------------------------

eigh_p = Primitive("eigh", namespace="linalg", multiple_results=True)


@def_api("eigh", "linalg")
def eigh(x: Any, /) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of each Hermitian matrix in ``x``.

    Returns:
        A namedtuple ``(eigenvalues, eigenvectors)``; column ``i`` of ``eigenvectors``
        belongs to ``eigenvalues[..., i]``.
    """
    return EighResult(*eigh_p.bind(x))


def _eig_gaps(w: Any, like: Any) -> Any:
    """``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal, 0 on it."""
    eye = eye_like(like, shape_of(w)[-1])
    w = _as(w, like)
    gaps = sub(ops.expand_dims(w, axis=-2), ops.expand_dims(w, axis=-1))
    return sub(1 / ops.add(gaps, eye), eye)


@def_jvp(eigh_p)
def _eigh_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    w, v = eigh_p.bind(primals[0])
    proj = mm(hermitian(v), _sym(tangents[0]), v)
    w_dot = _real(diagonal(proj))
    return (w, v), (w_dot, mm(v, mul(_eig_gaps(w, v), proj)))


def _real(x: Any) -> Any:
    return ops.real(x) if is_complex(x.dtype) else x


@def_vjp(eigh_p)
def _eigh_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    ct_w, ct_v = cts
    w, v = out
    inner = None if ct_v is None else mul(_eig_gaps(w, v), mm(mT(v), ct_v))
    if ct_w is not None:
        inner = add(inner, _diag_embed(_as(ct_w, v)))
    if inner is None:
        return (None,)
    return (_sym(mm(conj(v), inner, mT(v))),)


def_batch(eigh_p, matrix_batch(eigh_p))

eigvalsh_p = Primitive("eigvalsh", namespace="linalg")


@def_api("eigvalsh", "linalg")
def eigvalsh(x: Any, /) -> Any:
    """Eigenvalues (ascending) of each Hermitian matrix in ``x``."""
    return eigvalsh_p.bind(x)


@def_jvp(eigvalsh_p)
def _eigvalsh_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    w, v = eigh_p.bind(primals[0])
    # diag(v^H S v) without forming the full product.
    return w, _real(ops.sum(mul(conj(v), mm(_sym(tangents[0]), v)), axis=-2))


@def_vjp(eigvalsh_p)
def _eigvalsh_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    _, v = eigh_p.bind(primals[0])
    return (_sym(mm(mul(conj(v), ops.expand_dims(_as(ct, v), axis=-2)), mT(v))),)


def_batch(eigvalsh_p, matrix_batch(eigvalsh_p))


# --- svd and svdvals ----------------------------------------------------------------------

svd_p = Primitive("svd", namespace="linalg", multiple_results=True)


@def_api("svd", "linalg")
def svd(x: Any, /, *, full_matrices: bool = True) -> SVDResult:
    """Singular value decomposition ``x = U @ diag(S) @ Vh`` of each matrix in ``x``.

    Args:
        x: Matrices, shape ``(..., M, N)``.
        full_matrices: Square ``U``/``Vh`` (True) or reduced ones with ``K = min(M, N)``
            columns/rows. Derivatives need reduced factors unless ``M == N``.

    Returns:
        A namedtuple ``(U, S, Vh)``, singular values descending.
    """
    return SVDResult(*svd_p.bind(x, full_matrices=bool(full_matrices)))


def _check_reduced(name: str, x: Any, full: bool) -> None:
    m, n = shape_of(x)[-2:]
    if full and m != n:
        raise UnsupportedTransformError(
            message(f"The derivative of linalg.{name}(x, full_matrices=True) of a non-square "
                    "matrix is not defined: the extra singular vectors are not unique",
                    got=f"x of shape {shape_of(x)}",
                    fix=f"Use linalg.{name}(x, full_matrices=False).")
        )


def _svd_tangent(x: Any, u: Any, s: Any, vh: Any, x_dot: Any) -> tuple[Any, Any, Any]:
    """JAX's SVD JVP for reduced factors: tangents of ``(U, S, Vh)``."""
    m, n = shape_of(x)[-2:]
    v = hermitian(vh)
    s_row = _as(ops.expand_dims(s, axis=-2), x)
    s_col = mT(s_row)
    ds_mat = mm(hermitian(u), x_dot, v)
    s_dot = _real(diagonal(ds_mat))
    eye = eye_like(x, shape_of(s)[-1])
    gaps = sub(1 / ops.add(mul(ops.add(s_row, s_col), sub(s_row, s_col)), eye), eye)
    dss, sds = mul(ds_mat, s_row), mul(s_col, ds_mat)
    inner_u = mul(gaps, ops.add(dss, hermitian(dss)))
    if is_complex(x.dtype):  # the phase freedom of complex singular vectors
        zero = ops.equal(s, 0)
        s_inv = ops.where(zero, ops.zeros_like(s), 1 / ops.where(zero, ops.ones_like(s), s))
        skew = sub(ds_mat, hermitian(ds_mat)) * 0.5
        inner_u = ops.add(inner_u, mul(skew, _diag_embed(_as(s_inv, x))))
    u_dot = mm(u, inner_u)
    v_dot = mm(v, mul(gaps, ops.add(sds, hermitian(sds))))
    if m > n:
        xv = mm(x_dot, v)
        u_dot = ops.add(u_dot, ops.divide(sub(xv, mm(u, mm(hermitian(u), xv))), s_row))
    if n > m:
        xu = mm(hermitian(x_dot), u)
        v_dot = ops.add(v_dot, ops.divide(sub(xu, mm(v, mm(vh, xu))), s_row))
    return u_dot, s_dot, hermitian(v_dot)


@def_jvp(svd_p)
def _svd_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
             full_matrices: bool) -> Any:
    x = primals[0]
    _check_reduced("svd", x, full_matrices)
    u, s, vh = svd_p.bind(x, full_matrices=full_matrices)
    return (u, s, vh), _svd_tangent(x, u, s, vh, tangents[0])


@def_vjp(svd_p)
def _svd_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any, needs: Any, *,
             full_matrices: bool) -> Any:
    x = primals[0]
    _check_reduced("svd", x, full_matrices)
    u, s, vh = out
    return tuple(transpose_of_jvp(lambda ts: _svd_tangent(x, u, s, vh, ts[0]), [x], cts))


def_batch(svd_p, matrix_batch(svd_p))

svdvals_p = Primitive("svdvals", namespace="linalg")


@def_api("svdvals", "linalg")
def svdvals(x: Any, /) -> Any:
    """Singular values (descending) of each matrix in ``x``."""
    return svdvals_p.bind(x)


@def_jvp(svdvals_p)
def _svdvals_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    u, s, vh = svd_p.bind(primals[0], full_matrices=False)
    # diag(U^H x' V) without forming the full product.
    return s, _real(ops.sum(mul(conj(u), mm(tangents[0], hermitian(vh))), axis=-2))


@def_vjp(svdvals_p)
def _svdvals_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    u, _, vh = svd_p.bind(primals[0], full_matrices=False)
    return (mm(conj(mul(u, ops.expand_dims(_as(ct, u), axis=-2))), conj(vh)),)


def_batch(svdvals_p, matrix_batch(svdvals_p))


# --- qr -----------------------------------------------------------------------------------

qr_p = Primitive("qr", namespace="linalg", multiple_results=True)


@def_api("qr", "linalg")
def qr(x: Any, /, *, mode: str = "reduced") -> QRResult:
    """QR decomposition ``x = Q @ R`` of each matrix in ``x``.

    Args:
        x: Matrices, shape ``(..., M, N)``.
        mode: ``"reduced"`` (``K = min(M, N)``) or ``"complete"`` (square ``Q``).
            Derivatives need ``M >= N``, and ``M == N`` in complete mode (as in JAX).

    Returns:
        A namedtuple ``(Q, R)``.
    """
    if mode not in ("reduced", "complete"):
        raise ValueError(message("linalg.qr got an unknown mode", expected="'reduced' or "
                                 "'complete'", got=repr(mode)))
    return QRResult(*qr_p.bind(x, mode=mode))


def _qr_tangent(q: Any, r: Any, x_dot: Any) -> tuple[Any, Any]:
    n = shape_of(r)[-1]
    # x' r^-1 as a solve with r^T. A rank-deficient x has zeros on r's diagonal: the
    # triangular solve then gives infinities and NaNs where a general solve would raise,
    # as JAX's does.
    x_rinv = mT(triangular_solve_p.bind(mT(r), mT(x_dot), lower=True))
    qt = mm(hermitian(q), x_rinv)
    # tril rather than a 0/1 mask: a mask would turn infinities above the diagonal to NaN.
    lower = ops.tril(qt, k=-1)
    omega = sub(lower, hermitian(lower))
    if is_complex(qt.dtype):
        omega = ops.add(omega, mul(eye_like(qt, n), sub(qt, _as(ops.real(qt), qt))))
    return ops.add(mm(q, sub(omega, qt)), x_rinv), mm(sub(qt, omega), r)


def _check_qr(x: Any, mode: str) -> None:
    m, n = shape_of(x)[-2:]
    if m < n or (mode == "complete" and m != n):
        raise UnsupportedTransformError(
            message(f"The derivative of linalg.qr(x, mode={mode!r}) is defined for tall "
                    "matrices only (and square ones in complete mode), as in JAX",
                    got=f"x of shape {shape_of(x)}",
                    fix="Differentiate the QR of the transpose, or use mode='reduced' with "
                    "M >= N.")
        )


@def_jvp(qr_p)
def _qr_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, mode: str) -> Any:
    _check_qr(primals[0], mode)
    q, r = qr_p.bind(primals[0], mode=mode)
    return (q, r), _qr_tangent(q, r, tangents[0])


@def_vjp(qr_p)
def _qr_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any, needs: Any, *,
            mode: str) -> Any:
    _check_qr(primals[0], mode)
    q, r = out
    return tuple(transpose_of_jvp(lambda ts: _qr_tangent(q, r, ts[0]), primals, cts))


def_batch(qr_p, matrix_batch(qr_p))


# --- norms --------------------------------------------------------------------------------


def _abs2(x: Any) -> Any:
    return ops.real(mul(x, ops.conj(x))) if is_complex(x.dtype) else mul(x, x)


def _canonical_ord(ord: Any) -> Any:
    if isinstance(ord, str):
        return ord
    ord = builtin_scalar(ord)
    if isinstance(ord, float) and ord.is_integer():
        return int(ord)
    return ord


vector_norm_p = Primitive("vector_norm", namespace="linalg")


@def_api("vector_norm", "linalg")
def vector_norm(x: Any, /, *, axis: int | tuple[int, ...] | None = None,
                keepdims: bool = False, ord: int | float = 2) -> Any:
    """The ``ord``-norm of ``x`` over ``axis`` (all axes by default).

    Args:
        x: Input array.
        axis: Axis or axes to reduce; ``None`` reduces the whole array.
        keepdims: Keep the reduced axes with size one.
        ord: ``p`` of the p-norm; ``inf``/``-inf`` for max/min of ``|x|``; ``0`` counts
            non-zeros (no derivative).

    Returns:
        The norms, in the real floating dtype of ``x``.
    """
    n = ndim_of(x)
    if axis is None:
        axes = tuple(range(n))
    else:
        items = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(sorted(a + n if a < 0 else a for a in items))
    return vector_norm_p.bind(x, axis=axes, keepdims=bool(keepdims), ord=_canonical_ord(ord))


def _vector_norm_definition(x: Any, *, axis: tuple[int, ...], keepdims: bool,
                            ord: Any) -> Any:
    if ord == 2:
        return ops.sqrt(ops.sum(_abs2(x), axis=axis, keepdims=keepdims))
    if ord in (math.inf, -math.inf):
        pick = ops.max if ord > 0 else ops.min
        return pick(ops.abs(x), axis=axis, keepdims=keepdims)
    if ord == 1:
        return ops.sum(ops.abs(x), axis=axis, keepdims=keepdims)
    return ops.pow(ops.sum(ops.pow(ops.abs(x), ord), axis=axis, keepdims=keepdims), 1 / ord)


@vector_norm_p.def_impl
def _vector_norm_impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool,
                      ord: Any) -> Any:
    # Every axis is written axis=None: array_api_compat.torch fails on axis=() for 0-d.
    axis_arg = None if len(axis) == len(x.shape) else axis
    return xp.linalg.vector_norm(x, axis=axis_arg, keepdims=keepdims, ord=ord)


_vn_jvp, _vn_vjp = composite_rules(_vector_norm_definition, vector_norm_p)


@def_jvp(vector_norm_p)
def _vector_norm_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    if params["ord"] == 0:  # a count of non-zeros: piecewise constant
        return vector_norm_p.bind(*primals, **params), None
    return _vn_jvp(primals, tangents, **params)


@def_vjp(vector_norm_p)
def _vector_norm_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any,
                     **params: Any) -> Any:
    return (None,) if params["ord"] == 0 else _vn_vjp(ct, primals, out, needs, **params)


@def_batch(vector_norm_p)
def _vector_norm_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *, axis: Any,
                       **params: Any) -> Any:
    (x,), (b,) = args, bdims
    out = vector_norm_p.bind(x, axis=tuple(a + (a >= b) for a in axis), **params)
    if params["keepdims"]:
        return out, b
    return out, b - sum(1 for a in axis if a < b)


matrix_norm_p = Primitive("matrix_norm", namespace="linalg")


@def_api("matrix_norm", "linalg")
def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: int | float | str = "fro") -> Any:
    """The ``ord``-norm of each matrix in ``x`` (last two axes).

    Args:
        x: Matrices, shape ``(..., M, N)``.
        keepdims: Keep the two reduced axes with size one.
        ord: ``"fro"``, ``"nuc"``, ``1``/``-1`` (max/min column sum), ``inf``/``-inf``
            (max/min row sum), ``2``/``-2`` (largest/smallest singular value).

    Returns:
        The norms, in the real floating dtype of ``x``.
    """
    return matrix_norm_p.bind(x, keepdims=bool(keepdims), ord=_canonical_ord(ord))


def _matrix_norm_definition(x: Any, *, keepdims: bool, ord: Any) -> Any:
    if ord == "fro":
        return ops.sqrt(ops.sum(_abs2(x), axis=(-2, -1), keepdims=keepdims))
    if ord in (1, -1, math.inf, -math.inf):
        summed, picked = (-2, -1) if ord in (1, -1) else (-1, -2)
        sums = ops.sum(ops.abs(x), axis=summed, keepdims=True)
        out = (ops.max if ord > 0 else ops.min)(sums, axis=picked, keepdims=True)
    else:
        s = svdvals(x)
        pick = {2: ops.max, -2: ops.min, "nuc": ops.sum}[ord]
        out = ops.expand_dims(ops.expand_dims(pick(s, axis=-1), axis=-1), axis=-1)
    return out if keepdims else ops.squeeze(out, axis=(-2, -1))


_mn_jvp, _mn_vjp = composite_rules(_matrix_norm_definition, matrix_norm_p)
def_jvp(matrix_norm_p, _mn_jvp)
def_vjp(matrix_norm_p, _mn_vjp)


@def_batch(matrix_norm_p)
def _matrix_norm_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], **params: Any) -> Any:
    (x,), (b,) = args, bdims
    if b >= ndim_of(x) - 2:
        x, b = ops.moveaxis(x, b, 0), 0
    return matrix_norm_p.bind(x, **params), b
