"""Solves, inverses and determinants of the ``linalg`` extension, with their derivatives.

Derivatives follow JAX's formulas and are computed with solves rather than explicit
inverses where the formula allows (``solve``, ``cholesky``). The standard has no
triangular solve, so users write ``linalg.solve`` on a Cholesky factor: its VJP costs
one solve with the transposed matrix and an outer product, reusing the forward result.

All functions act on the last two axes, so batching moves the mapped axis in front of
them (free) or, for a shared matrix and a batch of right-hand sides, folds the batch
into extra right-hand-side columns so the matrix is factorised once.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from typing import Any

from unijax._dtypes import is_complex
from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive
from unijax.engine.registry import def_api, def_batch, def_jvp, def_nondifferentiable, def_vjp
from unijax.engine.rules._helpers import ndim_of, ops, shape_of, unbroadcast
from unijax.engine.rules._linalg_helpers import (
    add,
    cached_constant,
    composite_rules,
    conj,
    eye_like,
    hermitian,
    matrix_batch,
    mm,
    mul,
    pad_front,
    sub,
)
from unijax.engine.rules.linalg import matmul, matrix_transpose, trace

__all__ = [
    "SlogdetResult",
    "cholesky",
    "det",
    "inv",
    "matrix_power",
    "matrix_rank",
    "pinv",
    "slogdet",
    "solve",
]

mT = matrix_transpose

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


def _expand2(x: Any) -> Any:
    """Append two unit axes, so a per-matrix value scales whole matrices."""
    return ops.expand_dims(ops.expand_dims(x, axis=-1), axis=-1)


# --- solve --------------------------------------------------------------------------------

solve_p = Primitive("solve", namespace="linalg")


@def_api("solve", "linalg")
def solve(x1: Any, x2: Any, /) -> Any:
    """Solve ``x1 @ out = x2`` for square ``x1``.

    Args:
        x1: Coefficient matrices, shape ``(..., M, M)``.
        x2: Right-hand sides: a vector ``(M,)`` or matrices ``(..., M, K)``; batch axes
            broadcast against ``x1``'s.

    Returns:
        The solution, shaped like the broadcast right-hand side.
    """
    return solve_p.bind(x1, x2)


_TRIANGULAR_MIN_SIZE = 16  # below this, LU is as fast as the check


def _solve_impl(xp: Any, a: Any, b: Any) -> Any:
    """``xp.linalg.solve``, with a triangular fast path for NumPy when SciPy is installed.

    The standard has no triangular solve, so code solves with Cholesky factors through
    ``linalg.solve``, and so do the Cholesky derivative rules. LU-factorising a triangular
    matrix wastes O(n^3) work; checking for a triangle costs O(n^2), so a single NumPy
    matrix that is triangular is solved by substitution (LAPACK ``trtrs``) instead.
    """
    if type(a).__module__ == "numpy" and a.ndim == 2 and b.ndim <= 2:
        n = a.shape[0]
        if n >= _TRIANGULAR_MIN_SIZE:
            solver = _triangular_solver()
            if solver is not None:
                # A corner decides quickly for general matrices; masks are cached per size.
                if a[0, n - 1] == 0 and not a[_strict_triangle(n, upper=True)].any():
                    return solver(a, b, lower=True, check_finite=False)
                if a[n - 1, 0] == 0 and not a[_strict_triangle(n, upper=False)].any():
                    return solver(a, b, lower=False, check_finite=False)
    return xp.linalg.solve(a, b)


@functools.lru_cache(maxsize=8)
def _strict_triangle(n: int, *, upper: bool) -> Any:
    import numpy as np

    mask = np.tri(n, k=-1, dtype=bool)
    return mask.T if upper else mask


_SOLVER: list[Any] = []


def _triangular_solver() -> Any:
    if not _SOLVER:
        try:
            from scipy.linalg import solve_triangular
        except ImportError:  # SciPy is optional: LU it is
            solve_triangular = None
        _SOLVER.append(solve_triangular)
    return _SOLVER[0]


solve_p.def_impl(_solve_impl)


def _solve_vec(a: Any, b: Any) -> Any:
    """Solve with ``b`` a stack of vectors (its last axis), whatever its rank."""
    if ndim_of(b) == 1:
        return solve_p.bind(a, b)
    return ops.squeeze(solve_p.bind(a, ops.expand_dims(b, axis=-1)), axis=-1)


@def_jvp(solve_p)
def _solve_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    a, b = primals
    a_dot, b_dot = tangents
    out = solve_p.bind(a, b)
    vector = ndim_of(b) == 1
    # x' = a^-1 (b' - a' x): one more solve, whichever tangents are present.
    rhs = None
    if a_dot is not None:
        if vector:
            rhs = ops.negative(ops.squeeze(matmul(a_dot, ops.expand_dims(out, axis=-1)),
                                           axis=-1))
        else:
            rhs = ops.negative(matmul(a_dot, out))
    rhs = add(rhs, b_dot)
    return out, _solve_vec(a, rhs) if vector else solve_p.bind(a, rhs)


@def_vjp(solve_p)
def _solve_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    a, b = primals
    vector = ndim_of(b) == 1
    # One solve with the transposed matrix gives b's cotangent; a's is -ct_b x^T.
    ct_b = _solve_vec(mT(a), ct) if vector else solve_p.bind(mT(a), ct)
    ct_a = None
    if needs[0]:
        if vector:
            ct_a = ops.negative(mul(ops.expand_dims(ct_b, axis=-1),
                                    ops.expand_dims(out, axis=-2)))
        else:
            ct_a = ops.negative(matmul(ct_b, mT(out)))
        ct_a = unbroadcast(ct_a, a)
    return ct_a, unbroadcast(ct_b, b) if needs[1] else None


@def_batch(solve_p)
def _solve_batch(args: tuple[Any, ...], bdims: tuple[Any, ...]) -> Any:
    a, b = args
    ba, bb = bdims
    if ba is None:
        bs = shape_of(b)
        if len(bs) == 2:  # a batch of vectors: the batch becomes right-hand-side columns
            out = solve_p.bind(a, b if bb == 1 else mT(b))
            return out, ndim_of(out) - 1
        # A batch of matrices: fold the batch into the columns, factorise a once.
        if bb != len(bs) - 1:
            b = ops.moveaxis(b, bb, -1)
        bs = shape_of(b)
        out = solve_p.bind(a, ops.reshape(b, (*bs[:-2], bs[-2] * bs[-1])))
        os = shape_of(out)
        return ops.reshape(out, (*os[:-1], bs[-2], bs[-1])), len(os)
    a = bdim_to_front(a, ba)
    rank_a = ndim_of(a) - 3  # batch rank of one example's matrices
    if bb is None:
        if ndim_of(b) == 1:
            return solve_p.bind(a, b), 0
        rank = max(rank_a, ndim_of(b) - 2) + 3
        return solve_p.bind(pad_front(a, rank), b), 0
    b = bdim_to_front(b, bb)
    if ndim_of(b) == 2:  # a batch of vectors against a batch of matrices
        col = ops.reshape(b, (shape_of(b)[0],) + (1,) * rank_a + (shape_of(b)[1], 1))
        return ops.squeeze(solve_p.bind(a, col), axis=-1), 0
    rank = max(rank_a, ndim_of(b) - 3) + 3
    return solve_p.bind(pad_front(a, rank), pad_front(b, rank)), 0


# --- inv ----------------------------------------------------------------------------------

inv_p = Primitive("inv", namespace="linalg")


@def_api("inv", "linalg")
def inv(x: Any, /) -> Any:
    """Inverse of each square matrix in ``x`` (last two axes)."""
    return inv_p.bind(x)


@def_jvp(inv_p)
def _inv_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    out = inv_p.bind(primals[0])
    return out, ops.negative(mm(out, tangents[0], out))


@def_vjp(inv_p)
def _inv_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    out_t = mT(out)
    return (ops.negative(mm(out_t, ct, out_t)),)


def_batch(inv_p, matrix_batch(inv_p))


# --- det and slogdet ----------------------------------------------------------------------

det_p = Primitive("det", namespace="linalg")


@def_api("det", "linalg")
def det(x: Any, /) -> Any:
    """Determinant of each square matrix in ``x`` (last two axes)."""
    return det_p.bind(x)


@def_jvp(det_p)
def _det_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, x_dot = primals[0], tangents[0]
    out = det_p.bind(x)
    return out, mul(out, trace(solve_p.bind(x, x_dot)))


@def_vjp(det_p)
def _det_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    x = primals[0]
    return (unbroadcast(mul(_expand2(mul(ct, out)), mT(inv_p.bind(x))), x),)


def_batch(det_p, matrix_batch(det_p))

slogdet_p = Primitive("slogdet", namespace="linalg", multiple_results=True)


@def_api("slogdet", "linalg")
def slogdet(x: Any, /) -> SlogdetResult:
    """Sign and natural log of the absolute determinant of each matrix in ``x``.

    Returns:
        A namedtuple ``(sign, logabsdet)``.
    """
    return SlogdetResult(*slogdet_p.bind(x))


@def_jvp(slogdet_p)
def _slogdet_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, x_dot = primals[0], tangents[0]
    sign, logabsdet = slogdet_p.bind(x)
    tr = trace(solve_p.bind(x, x_dot))
    if not is_complex(x.dtype):
        return (sign, logabsdet), (None, tr)
    re = ops.real(tr)
    return (sign, logabsdet), (mul(sign, sub(tr, re)), re)


@def_vjp(slogdet_p)
def _slogdet_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any,
                 needs: Any) -> Any:
    x = primals[0]
    ct_sign, ct_logabsdet = cts
    ct_tr = ct_logabsdet
    if is_complex(x.dtype):
        if ct_tr is not None:
            ct_tr = ops.astype(ct_tr, x.dtype)
        if ct_sign is not None:
            c = mul(ct_sign, out[0])
            ct_tr = add(ct_tr, sub(c, ops.real(c)))  # the transpose of t -> i * imag(t)
    if ct_tr is None:
        return (None,)
    return (unbroadcast(mul(_expand2(ct_tr), mT(inv_p.bind(x))), x),)


def_batch(slogdet_p, matrix_batch(slogdet_p))


# --- cholesky -----------------------------------------------------------------------------

cholesky_p = Primitive("cholesky", namespace="linalg")


@def_api("cholesky", "linalg")
def cholesky(x: Any, /, *, upper: bool = False) -> Any:
    """Cholesky factor of each Hermitian positive-definite matrix in ``x``.

    Args:
        x: Matrices, shape ``(..., M, M)``.
        upper: Return the upper factor ``U`` (``x = U^H U``) instead of the lower one.

    Returns:
        The triangular factors. Derivatives treat ``x`` as the Hermitian matrix
        ``(x + x^H) / 2``, as JAX does.
    """
    return cholesky_p.bind(x, upper=bool(upper))


def _phi_mask(like: Any) -> Any:
    """Lower triangle with a halved diagonal: ``Phi`` of the Cholesky derivative."""
    n = shape_of(like)[-1]
    return cached_constant(like, ("phi", n),
                           lambda xp: xp.tril(xp.ones((n, n))) - 0.5 * xp.eye(n))


@def_jvp(cholesky_p)
def _cholesky_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, upper: bool) -> Any:
    x, x_dot = primals[0], tangents[0]
    out = cholesky_p.bind(x, upper=upper)
    lower = hermitian(out) if upper else out
    sym = ops.add(x_dot, hermitian(x_dot)) * 0.5
    # L_dot = L Phi(L^-1 S L^-H)  (Murray 2016), with two solves instead of an inverse.
    inner = solve_p.bind(lower, hermitian(solve_p.bind(lower, sym)))
    l_dot = mm(lower, mul(inner, _phi_mask(out)))
    return out, hermitian(l_dot) if upper else l_dot


@def_vjp(cholesky_p)
def _cholesky_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *,
                  upper: bool) -> Any:
    lower = hermitian(out) if upper else out
    ct = hermitian(ct) if upper else ct
    # The transpose of the JVP: x_bar = L^-T Phi(L^T ct) conj(L)^-1, symmetrised.
    phi = mul(mm(mT(lower), ct), _phi_mask(out))
    left = solve_p.bind(mT(lower), phi)
    full = mT(solve_p.bind(hermitian(lower), mT(left)))
    return (ops.add(full, hermitian(full)) * 0.5,)


def_batch(cholesky_p, matrix_batch(cholesky_p))


# --- matrix_power -------------------------------------------------------------------------

matrix_power_p = Primitive("matrix_power", namespace="linalg")


@def_api("matrix_power", "linalg")
def matrix_power(x: Any, n: int, /) -> Any:
    """``x`` multiplied by itself ``n`` times (``n < 0``: powers of the inverse)."""
    return matrix_power_p.bind(x, n=int(n))


matrix_power_p.def_impl(lambda xp, x, *, n: xp.linalg.matrix_power(x, n))


def _matrix_power_definition(x: Any, *, n: int) -> Any:
    if n < 0:
        x, n = inv_p.bind(x), -n
    if n == 0:
        return ops.broadcast_to(eye_like(x, shape_of(x)[-1]), shape_of(x))
    result, base = None, x
    while True:  # binary powering: the derivative has O(log n) products, like the value
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if not n:
            return result
        base = matmul(base, base)


_power_jvp, _power_vjp = composite_rules(_matrix_power_definition, matrix_power_p)
def_jvp(matrix_power_p, _power_jvp)
def_vjp(matrix_power_p, _power_vjp)
def_batch(matrix_power_p, matrix_batch(matrix_power_p))


# --- pinv and matrix_rank -----------------------------------------------------------------

pinv_p = Primitive("pinv", namespace="linalg")


@def_api("pinv", "linalg")
def pinv(x: Any, /, *, rtol: float | Any | None = None) -> Any:
    """Moore-Penrose pseudo-inverse of each matrix in ``x`` (last two axes).

    Args:
        x: Matrices, shape ``(..., M, N)``.
        rtol: Relative cutoff for small singular values: a float, an array broadcast
            against the batch shape, or ``None`` for the backend's default.

    Returns:
        The pseudo-inverses, shape ``(..., N, M)``.
    """
    if hasattr(rtol, "shape"):
        return pinv_p.bind(x, rtol)
    return pinv_p.bind(x, rtol=rtol)


def _pinv_tangent(x: Any, p: Any, x_dot: Any) -> Any:
    m, n = shape_of(x)[-2:]
    h = hermitian(x_dot)
    p_dot = ops.negative(mm(p, x_dot, p))
    p_dot = ops.add(p_dot, mm(p, mm(hermitian(p), mm(h, sub(eye_like(p, m), mm(x, p))))))
    return ops.add(p_dot, mm(sub(eye_like(p, n), mm(p, x)), mm(h, mm(hermitian(p), p))))


@def_jvp(pinv_p)
def _pinv_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
    x = primals[0]
    p = pinv_p.bind(*primals, **params)
    return p, None if tangents[0] is None else _pinv_tangent(x, p, tangents[0])


@def_vjp(pinv_p)
def _pinv_vjp(ct: Any, primals: tuple[Any, ...], p: Any, needs: Any, **params: Any) -> Any:
    x = primals[0]
    m, n = shape_of(x)[-2:]
    ct_t = mT(ct)
    # Transposes of the three terms of the JVP: -p x' p, p p^H x'^H (I - x p) and
    # (I - p x) x'^H p^H p (the x'^H terms transpose to conjugates).
    ct_x = ops.negative(mm(mT(p), ct, mT(p)))
    ct_x = ops.add(ct_x, conj(mm(sub(eye_like(p, m), mm(x, p)), mm(ct_t, mm(p, hermitian(p))))))
    ct_x = ops.add(ct_x, conj(mm(mm(hermitian(p), p), mm(ct_t, sub(eye_like(p, n), mm(p, x))))))
    return (unbroadcast(ct_x, x),) + (None,) * (len(primals) - 1)


def _rtol_batch(prim: Primitive) -> Any:
    """Batching rule of ``f(x, [rtol])`` where an array ``rtol`` broadcasts with x's batch."""
    single = matrix_batch(prim)

    def rule(args: tuple[Any, ...], bdims: tuple[Any, ...], **params: Any) -> Any:
        if len(args) == 1:
            return single(args, bdims, **params)
        (x, rtol), (bx, br) = args, bdims
        if bx is None:  # the backend needs the matrices broadcast to rtol's batch
            size = shape_of(rtol)[br]
            x = ops.broadcast_to(ops.expand_dims(x, axis=0), (size, *shape_of(x)))
        else:
            x = bdim_to_front(x, bx)
        if br is not None:
            rtol = pad_front(bdim_to_front(rtol, br), ndim_of(x) - 2)
        return prim.bind(x, rtol, **params), 0

    return rule


def _rtol_impl(name: str) -> Any:
    """``rtol`` is keyword-only in the standard, but an array ``rtol`` travels as data."""

    def impl(xp: Any, x: Any, *rtol: Any, **params: Any) -> Any:
        fn = getattr(xp.linalg, name)
        return fn(x, rtol=rtol[0]) if rtol else fn(x, **params)

    return impl


pinv_p.def_impl(_rtol_impl("pinv"))
def_batch(pinv_p, _rtol_batch(pinv_p))

matrix_rank_p = Primitive("matrix_rank", namespace="linalg")


@def_api("matrix_rank", "linalg")
def matrix_rank(x: Any, /, *, rtol: float | Any | None = None) -> Any:
    """Number of singular values of each matrix above ``rtol`` times the largest.

    Not differentiable: an integer count.
    """
    if hasattr(rtol, "shape"):
        return matrix_rank_p.bind(x, rtol)
    return matrix_rank_p.bind(x, rtol=rtol)


matrix_rank_p.def_impl(_rtol_impl("matrix_rank"))
def_nondifferentiable(matrix_rank_p)
def_batch(matrix_rank_p, _rtol_batch(matrix_rank_p))
