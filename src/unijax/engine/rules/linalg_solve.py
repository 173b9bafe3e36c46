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
from unijax.engine.core import Primitive, Tracer, base_value, device_of, namespace_for_value
from unijax.engine.registry import (
    API_FUNCTIONS,
    def_api,
    def_batch,
    def_jvp,
    def_nondifferentiable,
    def_vjp,
)
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
from unijax.engine.rules.control import stop_gradient_p
from unijax.engine.rules.linalg import matmul, matrix_transpose, trace
from unijax.engine.staging import StagingTracer

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


# --- triangular solves (for derivative rules) ---------------------------------------------

#: ``a @ out = b`` for triangular ``a`` (``lower`` or upper), reading only that triangle.
#: Not a function of the standard: derivative rules (QR's) solve with factors that may be
#: singular, where a general solve raises (NumPy's LinAlgError) and JAX's triangular solve
#: gives IEEE infinities and NaNs. This one gives those too.
triangular_solve_p = Primitive("triangular_solve", namespace="linalg")


def _triangular_solve_impl(xp: Any, a: Any, b: Any, *, lower: bool) -> Any:
    n = a.shape[-1]
    on_diagonal = xp.eye(n, dtype=xp.bool, device=device_of(a))
    if not bool(xp.any(xp.logical_and(on_diagonal, a == 0))):
        return _solve_impl(xp, a, b)  # regular: LU (or SciPy's substitution) is fine
    return _substitute(xp, a, b, lower)


def _substitute(xp: Any, a: Any, b: Any, lower: bool) -> Any:
    """Forward (``lower``) or back substitution, one row at a time.

    A zero on the diagonal divides by zero instead of raising, so the rows from there on
    are infinite or NaN, as a BLAS triangular solve leaves them.
    """
    n = a.shape[-1]
    solved = None  # the rows found so far, in their order in the result
    for i in range(n) if lower else range(n - 1, -1, -1):
        rhs = b[..., i : i + 1, :]
        if solved is not None:
            coef = a[..., i : i + 1, :i] if lower else a[..., i : i + 1, i + 1 :]
            rhs = rhs - xp.matmul(coef, solved)
        row = rhs / a[..., i : i + 1, i : i + 1]
        if solved is None:
            solved = row
        else:
            solved = xp.concat([solved, row] if lower else [row, solved], axis=-2)
    return b if solved is None else solved


triangular_solve_p.def_impl(_triangular_solve_impl)


def _triangle(x: Any, lower: bool) -> Any:
    return ops.tril(x) if lower else ops.triu(x)


@def_jvp(triangular_solve_p)
def _triangular_solve_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
                          lower: bool) -> Any:
    a, b = primals
    a_dot, b_dot = tangents
    out = triangular_solve_p.bind(a, b, lower=lower)
    # out' = a^-1 (b' - a' out), with a' read in a's triangle only.
    rhs = b_dot
    if a_dot is not None:
        rhs = add(rhs, ops.negative(matmul(_triangle(a_dot, lower), out)))
    if rhs is None:
        return out, None
    return out, triangular_solve_p.bind(a, rhs, lower=lower)


@def_vjp(triangular_solve_p)
def _triangular_solve_vjp(ct: Any, primals: tuple[Any, ...], out: Any,
                          needs: tuple[bool, ...], *, lower: bool) -> Any:
    a, b = primals
    ct_b = triangular_solve_p.bind(mT(a), ct, lower=not lower)
    ct_a = None
    if needs[0]:
        ct_a = unbroadcast(_triangle(ops.negative(matmul(ct_b, mT(out))), lower), a)
    return ct_a, unbroadcast(ct_b, b) if needs[1] else None


@def_batch(triangular_solve_p)
def _triangular_solve_batch(args: tuple[Any, ...], bdims: tuple[Any, ...], *,
                            lower: bool) -> Any:
    (a, b), (ba, bb) = args, bdims
    # Batch first, and the batched operands padded so that batch axes broadcast.
    rank = max(ndim_of(a) - (ba is not None), ndim_of(b) - (bb is not None)) + 1
    if ba is not None:
        a = pad_front(bdim_to_front(a, ba), rank)
    if bb is not None:
        b = pad_front(bdim_to_front(b, bb), rank)
    return triangular_solve_p.bind(a, b, lower=lower), 0


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
#
# d det(x) = tr(adj(x) dx). Where x is invertible, adj(x) = det(x) inv(x) and the derivative
# of log|det(x)| is inv(x)^T; at a singular matrix the inverse does not exist (NumPy raises)
# but the adjugate does, and JAX's derivative of det is exactly it. The cofactor matrix
# adj(x)^T is therefore written out for matrices up to 3 x 3 (polynomials, exact to every
# order, as JAX's own formulas for those sizes), and for larger ones taken from the SVD
# for the singular matrices and from the inverse for the others.

det_p = Primitive("det", namespace="linalg")


@def_api("det", "linalg")
def det(x: Any, /) -> Any:
    """Determinant of each square matrix in ``x`` (last two axes)."""
    return det_p.bind(x)


def _known(x: Any) -> Any:
    """The concrete value underneath ``x``, or ``None`` while ``jit`` is staging it."""
    while isinstance(x, Tracer):
        if isinstance(x, StagingTracer):
            return None
        x = x._primal()
    return x


def _svd_cofactor(x: Any) -> Any:
    """The cofactor matrix ``adj(x)^T`` of each matrix in ``x``, finite when ``x`` is singular.

    With ``x = U diag(s) Vh``, ``adj(x) = det(U) det(Vh) Vh^H diag(p) U^H`` where ``p[i]``
    is the product of the singular values other than ``s[i]``: no division, so rank
    ``n - 1`` matrices get their rank-one adjugate and lower ranks get zero.
    """
    # linalg_decompositions imports this module (its QR rules solve with
    # triangular_solve_p), so svd is found through the traced namespace's table.
    u, s, vh = API_FUNCTIONS["linalg.svd"](x)
    n = shape_of(s)[-1]
    # Singular values at rounding level count as zeros, so a matrix of rank n - 2 or less
    # gets exactly the zero adjugate (products of rounding errors would not be zero).
    # Their value is removed as a constant: the derivatives of s stay those of the SVD.
    eps = float(namespace_for_value(base_value(s)).finfo(s.dtype).eps)
    small = ops.less_equal(s, mul(ops.max(s, axis=-1, keepdims=True), n * eps))
    s = sub(s, stop_gradient_p.bind(ops.where(small, s, 0.0)))
    on_diagonal = ops.equal(eye_like(s, n), 1)
    others = ops.prod(ops.where(on_diagonal, 1.0, ops.expand_dims(s, axis=-2)), axis=-1)
    if others.dtype != u.dtype:
        others = ops.astype(others, u.dtype)
    phase = mul(det_p.bind(u), det_p.bind(vh))
    return mul(_expand2(phase), mm(conj(mul(u, ops.expand_dims(others, axis=-2))), conj(vh)))


def _cross(a: Any, b: Any) -> Any:
    """The cross product of vectors on the last axis (length 3), without conjugation."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return ops.stack([sub(mul(a1, b2), mul(a2, b1)), sub(mul(a2, b0), mul(a0, b2)),
                      sub(mul(a0, b1), mul(a1, b0))], axis=-1)


def _small_cofactor(x: Any) -> Any:
    """The cofactor matrix of each ``n x n`` matrix in ``x`` for ``n <= 3``, by its formula."""
    n = shape_of(x)[-1]
    if n == 1:
        return ops.ones_like(x)
    if n == 2:
        row0 = ops.stack([x[..., 1, 1], ops.negative(x[..., 1, 0])], axis=-1)
        row1 = ops.stack([ops.negative(x[..., 0, 1]), x[..., 0, 0]], axis=-1)
        return ops.stack([row0, row1], axis=-2)
    rows = [x[..., i, :] for i in range(3)]
    return ops.stack([_cross(rows[1], rows[2]), _cross(rows[2], rows[0]),
                      _cross(rows[0], rows[1])], axis=-2)


def _singular_cofactor(x: Any) -> Any:
    """The cofactor matrix of each matrix in ``x``, by a formula valid where it is singular."""
    return _small_cofactor(x) if shape_of(x)[-1] <= 3 else _svd_cofactor(x)


def _distinct_diagonal(like: Any, n: int) -> Any:
    """``diag(1, ..., n)``: invertible, with distinct singular values (a safe SVD input)."""
    return cached_constant(like, ("distinct-diagonal", n),
                           lambda xp: xp.eye(n) * xp.arange(1.0, n + 1.0))


def _by_singularity(x: Any, singular: Any, regular: Any, special: Any) -> Any:
    """``regular(x)`` for the invertible matrices of ``x``, ``special(x)`` for the singular.

    ``singular`` holds one boolean per matrix. When its values are known (eagerly, under
    ``grad`` and ``vmap``) and all alike, only one of the two is computed. Otherwise (and
    always under ``jit``) both are, ``regular`` with the identity in place of each
    singular matrix and ``special`` with an invertible matrix in place of each regular
    one, so that neither raises nor makes NaNs that a derivative would carry through
    the selection.
    """
    known = _known(singular)
    if known is not None:
        if not bool(ops.any(known)):
            return regular(x)
        if bool(ops.all(known)):
            return special(x)
    n = shape_of(x)[-1]
    mask = _expand2(singular)
    chosen_regular = regular(ops.where(mask, eye_like(x, n), x))
    chosen_special = special(ops.where(mask, x, _distinct_diagonal(x, n)))
    extra = ndim_of(chosen_regular) - ndim_of(singular)
    select = ops.reshape(singular, shape_of(singular) + (1,) * extra) if extra else singular
    return ops.where(select, chosen_special, chosen_regular)


@def_jvp(det_p)
def _det_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, x_dot = primals[0], tangents[0]
    out = det_p.bind(x)
    if shape_of(x)[-1] <= 3:
        return out, ops.sum(mul(_small_cofactor(x), x_dot), axis=(-2, -1))
    t = _by_singularity(
        x, ops.equal(out, 0),
        lambda m: mul(out, trace(solve_p.bind(m, x_dot))),
        lambda m: ops.sum(mul(_svd_cofactor(m), x_dot), axis=(-2, -1)))
    return out, t


@def_vjp(det_p)
def _det_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any) -> Any:
    x = primals[0]
    if shape_of(x)[-1] <= 3:
        cofactor = _small_cofactor(x)
    else:
        cofactor = _by_singularity(x, ops.equal(out, 0),
                                   lambda m: mul(_expand2(out), mT(inv_p.bind(m))),
                                   _svd_cofactor)
    return (unbroadcast(mul(_expand2(ct), cofactor), x),)


def_batch(det_p, matrix_batch(det_p))

slogdet_p = Primitive("slogdet", namespace="linalg", multiple_results=True)


@def_api("slogdet", "linalg")
def slogdet(x: Any, /) -> SlogdetResult:
    """Sign and natural log of the absolute determinant of each matrix in ``x``.

    At a singular matrix (sign 0) the derivative of ``logabsdet`` is ``adj(x)^T / 0``:
    infinite where the cofactor is not zero and NaN where it is, as JAX's formula gives.

    Returns:
        A namedtuple ``(sign, logabsdet)``.
    """
    return SlogdetResult(*slogdet_p.bind(x))


@def_jvp(slogdet_p)
def _slogdet_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    x, x_dot = primals[0], tangents[0]
    sign, logabsdet = slogdet_p.bind(x)
    tr = _by_singularity(
        x, ops.equal(sign, 0),
        lambda m: trace(solve_p.bind(m, x_dot)),
        lambda m: ops.divide(ops.sum(mul(_singular_cofactor(m), x_dot), axis=(-2, -1)), 0.0))
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
    inverse_t = _by_singularity(x, ops.equal(out[0], 0),
                                lambda m: mT(inv_p.bind(m)),
                                lambda m: ops.divide(_singular_cofactor(m), 0.0))
    return (unbroadcast(mul(_expand2(ct_tr), inverse_t), x),)


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
