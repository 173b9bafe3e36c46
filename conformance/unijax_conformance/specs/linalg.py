"""OpSpec rows for linear algebra: ``matmul``, ``matrix_transpose``, ``tensordot``,
``vecdot`` and every function of the ``linalg`` extension.

Domains keep finite differences meaningful: matrices that are solved, inverted or
factorised are diagonally dominant (well conditioned); ``eigh``/``svd`` inputs are a
spread-out diagonal plus a small perturbation, so eigenvalues and singular values are
distinct and far from zero; ``cholesky``/``eigh`` rows symmetrise inside ``fn`` (their
derivatives, as in JAX, are those of the symmetric part). Eigenvectors and singular
vectors have arbitrary signs, so rows return their squares. Norm rows keep entries away
from zero (the kink of ``|x|``) and make ties of the max/min impossible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["SPECS"]

UNIT: dict[str, Any] = {"min_value": -1.0, "max_value": 1.0, "allow_nan": False,
                        "allow_infinity": False}
SMALL: dict[str, Any] = {"min_value": -0.25, "max_value": 0.25, "allow_nan": False,
                         "allow_infinity": False}

Shape = Callable[[tuple[int, ...]], tuple[int, ...]]


def shaped(*shapes: Shape, elements: Any = UNIT,
           post: Callable[..., tuple[Any, ...]] | None = None) -> Callable[[Any], Any]:
    """Arrays shaped by ``shape(d)`` from shared random sides ``d``; ``post`` maps them
    into the function's domain.

    ``d[0:4]`` are sides in 1..4, ``d[4]`` a batch side in 1..3 and ``d[5]`` a batch rank
    in 0..2; :func:`batch` turns the last two into leading axes.
    """

    def strategy(xps: Any) -> Any:
        sides = st.tuples(*(st.integers(1, 4) for _ in range(4)), st.integers(1, 3),
                          st.integers(0, 2))
        drawn = sides.flatmap(lambda d: st.tuples(
            *(xps.arrays("float64", make(d), elements=elements) for make in shapes)))
        return drawn if post is None else drawn.map(lambda arrs: post(*arrs))

    return strategy


def batch(d: tuple[int, ...]) -> tuple[int, ...]:
    return (d[4],) * d[5]


def _dominant(*arrs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The first array made diagonally dominant (square, well conditioned)."""
    a, *rest = arrs
    return (a + (a.shape[-1] + 1) * np.eye(a.shape[-1]), *rest)


def _spread(a: np.ndarray) -> tuple[np.ndarray]:
    """A small perturbation of diag(5, 10, 15, ...) (rectangular): distinct singular
    values and eigenvalues, at least 3 apart and from zero."""
    m, n = a.shape[-2:]
    k = min(m, n)
    diag = np.zeros((m, n))
    diag[np.arange(k), np.arange(k)] = 5.0 * np.arange(1, k + 1)
    return (a + diag,)


def _distinct_sums(signs: np.ndarray, mags: np.ndarray) -> tuple[np.ndarray]:
    """Entries away from zero whose row sums and column sums (of |x|) never tie."""
    m, n = mags.shape[-2:]
    offsets = 2.0 * np.arange(n) + 2.0 * n * np.arange(m)[:, None]
    return (np.where(signs >= 0, 1.0, -1.0) * (0.5 + 0.5 * np.abs(mags) + offsets),)


def _away_from_zero(signs: np.ndarray, mags: np.ndarray) -> tuple[np.ndarray]:
    """Entries with distinct magnitudes in [0.5, 3] and random signs."""
    flat = np.abs(mags).reshape(-1)
    ranks = np.argsort(np.argsort(flat, kind="stable"), kind="stable").reshape(mags.shape)
    return (np.where(signs >= 0, 1.0, -1.0) * (0.5 + 2.5 * (ranks + 0.5) / max(flat.size, 1)),)


def _rank_deficient(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
    return (a @ b,)


def _sym(xp: Any, a: Any) -> Any:
    return (a + xp.matrix_transpose(a)) / 2


def _spd(xp: Any, a: Any) -> Any:
    n = a.shape[-1]
    return a @ xp.matrix_transpose(a) + n * xp.eye(n, dtype=a.dtype)


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    return OpSpec(name, fn, strategy, **options)


# Shape builders.
def mat(d: tuple[int, ...]) -> tuple[int, ...]:
    return (*batch(d), d[0], d[1])


def square(d: tuple[int, ...]) -> tuple[int, ...]:
    return (*batch(d), d[0], d[0])


def tall(d: tuple[int, ...]) -> tuple[int, ...]:
    return (*batch(d), d[0] + d[1], d[1])


def wide(d: tuple[int, ...]) -> tuple[int, ...]:
    return (*batch(d), d[1], d[0] + d[1])


SQUARE = shaped(square, post=_dominant)
SPREAD = shaped(mat, elements=SMALL, post=_spread)
SPREAD_SQUARE = shaped(square, elements=SMALL, post=_spread)
SPREAD_TALL = shaped(tall, elements=SMALL, post=_spread)
NORM_MATS = shaped(mat, mat, post=_distinct_sums)
AWAY_MATS = shaped(mat, mat, post=_away_from_zero)
NORM_ARRAYS = shaped(lambda d: (d[0], d[1], d[2]), lambda d: (d[0], d[1], d[2]),
                     post=_away_from_zero)
INF = math.inf
# Multiples of 1/4: exact products, so rank decisions do not hinge on rounding.
QUARTERS = st.integers(-4, 4).map(lambda k: k / 4)


def _eigh(xp: Any, a: Any) -> Any:
    w, v = xp.linalg.eigh(_sym(xp, a))
    return w, v * v


def _svd(full: bool) -> Callable[..., Any]:
    def fn(xp: Any, a: Any) -> Any:
        u, s, vh = xp.linalg.svd(a, full_matrices=full)
        return s, u * u, vh * vh

    return fn


def _qr(mode: str) -> Callable[..., Any]:
    def fn(xp: Any, a: Any) -> Any:
        q, r = xp.linalg.qr(a, mode=mode)
        return q * q, r * r

    return fn


def _power(n: int) -> OpSpec:
    # Positive powers of a scaled-down matrix (no blow-up); negative of a dominant one.
    if n >= 0:
        return row(f"linalg.matrix_power#{n}", lambda xp, a: xp.linalg.matrix_power(a, n),
                   shaped(square))
    return row(f"linalg.matrix_power#{n}", lambda xp, a: xp.linalg.matrix_power(a, n), SQUARE)


def _matrix_norm(ord: Any, strategy: Callable[[Any], Any], **kw: Any) -> OpSpec:
    suffix = "" if ord == "fro" and not kw else f"#{ord}" + ("-keepdims" if kw else "")
    return row(f"linalg.matrix_norm{suffix}",
               lambda xp, a: xp.linalg.matrix_norm(a, ord=ord, **kw), strategy)


def _vector_norm(suffix: str, **kw: Any) -> OpSpec:
    return row(f"linalg.vector_norm{suffix}", lambda xp, a: xp.linalg.vector_norm(a, **kw),
               NORM_ARRAYS)


SPECS: list[OpSpec] = [
    # --- main namespace ---
    row("matmul", lambda xp, a, b: xp.matmul(a, b),
        shaped(lambda d: (d[0], d[1]), lambda d: (d[1], d[2]))),
    row("matmul#vectors", lambda xp, a, b: xp.matmul(a, b),
        shaped(lambda d: (d[0],), lambda d: (d[0],))),
    row("matmul#matvec", lambda xp, a, b: xp.matmul(a, b),
        shaped(lambda d: (*batch(d), d[0], d[1]), lambda d: (d[1],))),
    row("matmul#vecmat", lambda xp, a, b: xp.matmul(a, b),
        shaped(lambda d: (d[0],), lambda d: (*batch(d), d[0], d[1]))),
    row("matmul#batched", lambda xp, a, b: xp.matmul(a, b),
        shaped(lambda d: (d[3], d[0], d[1]), lambda d: (d[1], d[2]))),
    row("matmul#broadcast", lambda xp, a, b: a @ b,
        shaped(lambda d: (d[3], 1, d[0], d[1]), lambda d: (d[4], d[1], d[2]))),
    row("matrix_transpose", lambda xp, a: xp.matrix_transpose(a), shaped(mat)),
    row("tensordot", lambda xp, a, b: xp.tensordot(a, b),
        shaped(lambda d: (d[0], d[1], d[2]), lambda d: (d[1], d[2], d[3]))),
    row("tensordot#one", lambda xp, a, b: xp.tensordot(a, b, axes=1),
        shaped(lambda d: (d[0], d[1]), lambda d: (d[1], d[2], d[3]))),
    row("tensordot#outer", lambda xp, a, b: xp.tensordot(a, b, axes=0),
        shaped(lambda d: (d[0], d[1]), lambda d: (d[2],))),
    row("tensordot#pairs", lambda xp, a, b: xp.tensordot(a, b, axes=((0, -1), (2, 0))),
        shaped(lambda d: (d[0], d[1], d[2]), lambda d: (d[2], d[3], d[0]))),
    row("vecdot", lambda xp, a, b: xp.vecdot(a, b),
        shaped(lambda d: (*batch(d), d[0], d[1]), lambda d: (d[1],))),
    row("vecdot#axis", lambda xp, a, b: xp.vecdot(a, b, axis=-2),
        shaped(lambda d: (d[2], d[0], d[1]), lambda d: (d[0], d[1]))),
    # --- linalg: products and parts ---
    row("linalg.matmul", lambda xp, a, b: xp.linalg.matmul(a, b),
        shaped(lambda d: (*batch(d), d[0], d[1]), lambda d: (d[1], d[2]))),
    row("linalg.matrix_transpose", lambda xp, a: xp.linalg.matrix_transpose(a), shaped(mat)),
    row("linalg.tensordot", lambda xp, a, b: xp.linalg.tensordot(a, b, axes=1),
        shaped(lambda d: (d[0], d[1]), lambda d: (d[1], d[2]))),
    row("linalg.vecdot", lambda xp, a, b: xp.linalg.vecdot(a, b),
        shaped(lambda d: (d[0], d[1]), lambda d: (d[2], 1, d[1]))),
    row("linalg.outer", lambda xp, a, b: xp.linalg.outer(a, b),
        shaped(lambda d: (d[0],), lambda d: (d[1],))),
    row("linalg.cross", lambda xp, a, b: xp.linalg.cross(a, b),
        shaped(lambda d: (*batch(d), 3), lambda d: (3,))),
    row("linalg.cross#axis", lambda xp, a, b: xp.linalg.cross(a, b, axis=-2),
        shaped(lambda d: (d[0], 3, d[1]), lambda d: (3, d[1]))),
    row("linalg.diagonal", lambda xp, a: xp.linalg.diagonal(a), shaped(mat)),
    row("linalg.diagonal#offset", lambda xp, a: xp.linalg.diagonal(a, offset=1), shaped(mat)),
    row("linalg.diagonal#negative", lambda xp, a: xp.linalg.diagonal(a, offset=-1),
        shaped(mat)),
    row("linalg.trace", lambda xp, a: xp.linalg.trace(a), shaped(mat)),
    row("linalg.trace#offset", lambda xp, a: xp.linalg.trace(a, offset=-1), shaped(mat)),
    # --- linalg: solves, inverses, determinants ---
    row("linalg.solve", lambda xp, a, b: xp.linalg.solve(a, b),
        shaped(square, lambda d: (d[0],), post=_dominant)),
    row("linalg.solve#matrix", lambda xp, a, b: xp.linalg.solve(a, b),
        shaped(square, lambda d: (d[0], d[1]), post=_dominant)),
    row("linalg.solve#broadcast", lambda xp, a, b: xp.linalg.solve(a, b),
        shaped(lambda d: (d[0], d[0]), lambda d: (d[3], d[0], d[1]), post=_dominant)),
    row("linalg.inv", lambda xp, a: xp.linalg.inv(a), SQUARE),
    row("linalg.det", lambda xp, a: xp.linalg.det(a), SQUARE),
    row("linalg.slogdet", lambda xp, a: tuple(xp.linalg.slogdet(a)), SQUARE),
    row("linalg.cholesky", lambda xp, a: xp.linalg.cholesky(_spd(xp, a)), shaped(square)),
    row("linalg.cholesky#upper", lambda xp, a: xp.linalg.cholesky(_spd(xp, a), upper=True),
        shaped(square)),
    _power(0), _power(1), _power(3), _power(-1), _power(-2),
    row("linalg.pinv", lambda xp, a: xp.linalg.pinv(a), SPREAD),
    row("linalg.pinv#rtol", lambda xp, a: xp.linalg.pinv(a, rtol=1e-8), SPREAD),
    row("linalg.matrix_rank", lambda xp, a: xp.linalg.matrix_rank(a), SPREAD, grad=False,
        reason="an integer count"),
    row("linalg.matrix_rank#deficient", lambda xp, a: xp.linalg.matrix_rank(a, rtol=1e-8),
        shaped(lambda d: (d[0] + 1, d[1]), lambda d: (d[1], d[2] + 1),
               elements=QUARTERS, post=_rank_deficient), grad=False, reason="an integer count"),
    # --- linalg: decompositions ---
    row("linalg.eigh", _eigh, SPREAD_SQUARE),
    row("linalg.eigvalsh", lambda xp, a: xp.linalg.eigvalsh(_sym(xp, a)), SPREAD_SQUARE),
    row("linalg.svd", _svd(True), SPREAD_SQUARE),
    row("linalg.svd#reduced", _svd(False), SPREAD),
    row("linalg.svdvals", lambda xp, a: xp.linalg.svdvals(a), SPREAD),
    row("linalg.qr", _qr("reduced"), SPREAD_TALL),
    row("linalg.qr#complete", _qr("complete"), SPREAD_SQUARE),
    # --- linalg: norms ---
    _matrix_norm("fro", AWAY_MATS),
    _matrix_norm("fro", AWAY_MATS, keepdims=True),
    _matrix_norm("nuc", SPREAD),
    _matrix_norm(2, SPREAD),
    _matrix_norm(-2, SPREAD),
    _matrix_norm(1, NORM_MATS),
    _matrix_norm(-1, NORM_MATS),
    _matrix_norm(INF, NORM_MATS),
    _matrix_norm(-INF, NORM_MATS, keepdims=True),
    _vector_norm(""),
    _vector_norm("#axis", axis=1),
    _vector_norm("#axes", axis=(0, -1), keepdims=True),
    _vector_norm("#1", ord=1, axis=-1),
    _vector_norm("#3", ord=3),
    _vector_norm("#-1", ord=-1, axis=0),
    _vector_norm("#half", ord=0.5, axis=(1, 2)),
    _vector_norm("#inf", ord=INF),
    _vector_norm("#-inf", ord=-INF, axis=-1, keepdims=True),
    _vector_norm("#0", ord=0, axis=0),
]
