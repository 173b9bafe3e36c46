"""Searching, sorting and set functions, with their derivatives and batching rules.

Covered: ``argmax``, ``argmin``, ``count_nonzero``, ``nonzero``, ``searchsorted``,
``where``, ``argsort``, ``sort``, ``unique_all``, ``unique_counts``, ``unique_inverse``
and ``unique_values``.

Only ``where`` (in ``x1``/``x2``) and ``sort`` carry derivatives: a sort moves its input
by a permutation, so its tangent is the tangent gathered by the same permutation and its
cotangent is scattered back by the inverse permutation (as in JAX, ties take the order of
a stable ascending sort, reversed for ``descending=True``).

``nonzero`` and the ``unique_*`` functions return arrays whose shapes depend on the
values of their input. They run eagerly (also under ``grad``), but raise
:class:`~unijax.errors.ConcretizationError` under ``vmap`` and ``jit``, where one shape
must serve every example or every call, unless the input is a constant there (unbatched;
under ``jit`` computed only from constants), whose result has one shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from unijax._dtypes import is_inexact
from unijax.engine.batching import BatchTracer, bdim_to_front, move_bdim
from unijax.engine.core import Primitive, Tracer, builtin_scalar
from unijax.engine.registry import def_api, def_batch, def_jvp, def_nondifferentiable, def_vjp
from unijax.engine.rules._helpers import (
    elementwise_batch,
    fit,
    ndim_of,
    ops,
    shape_of,
    unbroadcast,
)
from unijax.engine.rules.reductions import axis_batch, normalize_axis, reduced_axes, reduction_batch
from unijax.engine.staging import StagingTracer
from unijax.errors import ConcretizationError, message

__all__ = [
    "DATA_DEPENDENT_SHAPES",
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
]


# --- argmax / argmin ----------------------------------------------------------------------


def _arg_chooser(name: str) -> Primitive:
    prim = Primitive(name)

    def api(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Any:
        if axis is not None:
            axis = normalize_axis(axis, ndim_of(x), name)
        return prim.bind(x, axis=axis, keepdims=keepdims)

    api.__name__ = api.__qualname__ = name
    api.__doc__ = f"The index of the first {name[3:]}imum of ``x`` along ``axis`` (no derivative)."
    def_api(name)(api)
    def_nondifferentiable(prim)

    @def_batch(prim)
    def batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *, axis: int | None,
              keepdims: bool) -> Any:
        x = bdim_to_front(args[0], bdims[0])
        if axis is not None:
            return prim.bind(x, axis=axis + 1, keepdims=keepdims), 0
        # Flattened search per example: flatten everything but the batch axis.
        shape = shape_of(x)
        out = prim.bind(ops.reshape(x, (shape[0], -1)), axis=1, keepdims=False)
        if keepdims:
            out = ops.reshape(out, (shape[0],) + (1,) * (len(shape) - 1))
        return out, 0

    return prim


argmax_p = _arg_chooser("argmax")
argmin_p = _arg_chooser("argmin")


# --- count_nonzero ------------------------------------------------------------------------

count_nonzero_p = Primitive("count_nonzero")


@def_api("count_nonzero")
def count_nonzero(x: Any, /, *, axis: int | tuple[int, ...] | None = None,
                  keepdims: bool = False) -> Any:
    """How many elements of ``x`` are non-zero over ``axis`` (no derivative)."""
    axes = reduced_axes(axis, ndim_of(x), "count_nonzero")
    return count_nonzero_p.bind(x, axis=axes, keepdims=keepdims)


def_nondifferentiable(count_nonzero_p)
def_batch(count_nonzero_p, reduction_batch(count_nonzero_p))


# --- where --------------------------------------------------------------------------------

where_p = Primitive("where")


@def_api("where")
def where(condition: Any, x1: Any, x2: Any, /) -> Any:
    """``x1`` where ``condition`` is true, else ``x2``; either may be a Python scalar.

    Differentiable in ``x1`` and ``x2`` (each gets the cotangent where it was chosen),
    not in ``condition``.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def relu_sum(x):
        ...     xp = array_namespace(x)
        ...     return xp.sum(xp.where(x > 0, x, 0.0))
        >>> unijax.grad(relu_sum)(np.asarray([-1.0, 2.0]))
        array([0., 1.])
    """
    return where_p.bind(builtin_scalar(condition), builtin_scalar(x1), builtin_scalar(x2))


def_batch(where_p, elementwise_batch(where_p))


def _differentiable(x: Any) -> bool:
    return hasattr(x, "dtype") and is_inexact(x.dtype)


@def_jvp(where_p)
def _where_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
    condition, x1, x2 = primals
    _, t1, t2 = tangents
    out = where_p.bind(condition, x1, x2)
    t1 = t1 if _differentiable(x1) else None
    t2 = t2 if _differentiable(x2) else None
    if (t1 is None and t2 is None) or not is_inexact(out.dtype):
        return out, None
    t = where_p.bind(condition, 0.0 if t1 is None else t1, 0.0 if t2 is None else t2)
    return out, fit(t, out)


@def_vjp(where_p)
def _where_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
    condition, x1, x2 = primals
    ct1 = ct2 = None
    if needs[1] and _differentiable(x1):
        ct1 = unbroadcast(where_p.bind(condition, ct, 0.0), x1)
    if needs[2] and _differentiable(x2):
        ct2 = unbroadcast(where_p.bind(condition, 0.0, ct), x2)
    return None, ct1, ct2


# --- searchsorted -------------------------------------------------------------------------

searchsorted_p = Primitive("searchsorted")


@searchsorted_p.def_impl
def _searchsorted_impl(xp: Any, x1: Any, x2: Any, sorter: Any = None, *, side: str) -> Any:
    return xp.searchsorted(x1, x2, side=side, sorter=sorter)


@def_api("searchsorted")
def searchsorted(x1: Any, x2: Any, /, *, side: str = "left", sorter: Any = None) -> Any:
    """Where to insert ``x2`` into the sorted vector ``x1`` (no derivative).

    Under ``vmap`` each example may have its own ``x1``.

    Raises:
        ValueError: ``side`` is not ``"left"`` or ``"right"``.
    """
    if side not in ("left", "right"):
        raise ValueError(message("searchsorted(side=...) must be 'left' or 'right'",
                                 got=repr(side)))
    if sorter is None:
        return searchsorted_p.bind(x1, x2, side=side)
    return searchsorted_p.bind(x1, x2, sorter, side=side)


def_nondifferentiable(searchsorted_p)


@def_batch(searchsorted_p)
def _searchsorted_batch(args: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                        side: str) -> Any:
    x1, x2 = args[0], args[1]
    if all(b is None for b in (bdims[0], *bdims[2:])):
        # One sorted array for every example: search for the whole batch of x2 at once.
        return searchsorted_p.bind(*args, side=side), bdims[1]
    # Each example has its own sorted array, which the standard's 1-D searchsorted cannot
    # take; count the elements that sort before each query instead. The count does not
    # depend on the order of x1, so ``sorter`` is not needed. NaN sorts last, as in NumPy.
    size = next(shape_of(a)[b] for a, b in zip(args, bdims, strict=True) if b is not None)
    x1 = move_bdim(x1, bdims[0], 0, size)
    x2 = move_bdim(x2, bdims[1], 0, size)
    rest = ndim_of(x2) - 1
    x1 = ops.reshape(x1, (size,) + (1,) * rest + (shape_of(x1)[1],))
    x2 = ops.expand_dims(x2, axis=-1)
    query_nan = ops.not_equal(x2, x2)
    if side == "left":
        before = ops.where(query_nan, ops.equal(x1, x1), ops.less(x1, x2))
    else:
        before = ops.where(query_nan, query_nan, ops.less_equal(x1, x2))
    return ops.count_nonzero(before, axis=-1), 0


# --- sort / argsort -----------------------------------------------------------------------

argsort_p = Primitive("argsort")
sort_p = Primitive("sort")


@def_api("argsort")
def argsort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Any:
    """The indices that sort ``x`` along ``axis`` (no derivative)."""
    return argsort_p.bind(x, axis=normalize_axis(axis, ndim_of(x), "argsort"),
                          descending=descending,
                          stable=stable)


@def_api("sort")
def sort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Any:
    """``x`` sorted along ``axis``; the derivative follows the sorting permutation.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> def top(x):
        ...     return array_namespace(x).sort(x, descending=True)[0]
        >>> unijax.grad(top)(np.asarray([1.0, 3.0, 2.0]))
        array([0., 1., 0.])
    """
    return sort_p.bind(x, axis=normalize_axis(axis, ndim_of(x), "sort"), descending=descending,
                       stable=stable)


def_nondifferentiable(argsort_p)
def_batch(argsort_p, axis_batch(argsort_p))
def_batch(sort_p, axis_batch(sort_p))


def _permutation(x: Any, axis: int, descending: bool) -> Any:
    """The indices that sort ``x``, with ties ordered as JAX orders them."""
    perm = argsort_p.bind(x, axis=axis, descending=False, stable=True)
    return ops.flip(perm, axis=axis) if descending else perm


@def_jvp(sort_p)
def _sort_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, axis: int,
              descending: bool, stable: bool) -> Any:
    (x,), (x_dot,) = primals, tangents
    out = sort_p.bind(x, axis=axis, descending=descending, stable=stable)
    if not _differentiable(x):
        return out, None
    perm = _permutation(x, axis, descending)
    return out, ops.take_along_axis(x_dot, perm, axis=axis)


@def_vjp(sort_p)
def _sort_vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: Any, *, axis: int,
              descending: bool, stable: bool) -> Any:
    # The inverse of a permutation is a permutation: a gather, not a scatter-add.
    x = primals[0]
    if not _differentiable(x):
        return (None,)
    inverse = argsort_p.bind(_permutation(x, axis, descending), axis=axis, descending=False,
                             stable=False)
    return (unbroadcast(ops.take_along_axis(ct, inverse, axis=axis), x),)


# --- functions whose result shapes depend on the data ---------------------------------------


def _require_eager(name: str, *args: Any) -> None:
    """Refuse ``name`` under ``vmap`` or ``jit``, where its result shape is not defined.

    A constant of those transforms (an unbatched value; under ``jit`` one computed only
    from constants, such as ``xp.arange(n) < k``) has one value for every input, so its
    result has one shape: it is computed.
    """
    for a in args:
        while isinstance(a, Tracer):
            if a._is_constant():
                pass
            elif isinstance(a, StagingTracer):
                raise ConcretizationError(
                    message(
                        f"{name}() was called on a traced array inside a jit-compiled "
                        "function, but the shape of its result depends on the values of "
                        "its input, which a compiled program cannot know in advance",
                        fix=f"Call {name}() outside the jit-compiled function, or use a "
                        "fixed-shape formulation (masks with xp.where, xp.sum, xp.sort).",
                    )
                )
            elif isinstance(a, BatchTracer):
                raise _vmap_error(name)
            a = a._primal()


def _vmap_error(name: str) -> ConcretizationError:
    return ConcretizationError(
        message(
            f"{name}() cannot be vectorised with vmap: the shape of its result depends on "
            "the values of its input, so each example would give a different shape",
            fix=f"Call {name}() outside vmap (e.g. in a Python loop), or use a fixed-shape "
            "formulation (masks with xp.where, xp.sum, xp.sort).",
        )
    )


def _data_dependent(prim: Primitive) -> None:
    def refuse(args: tuple[Any, ...], bdims: tuple[int | None, ...], **params: Any) -> Any:
        raise _vmap_error(prim.name)

    def_nondifferentiable(prim)
    def_batch(prim, refuse)


nonzero_p = Primitive("nonzero", multiple_results=True)
unique_all_p = Primitive("unique_all", multiple_results=True)
unique_counts_p = Primitive("unique_counts", multiple_results=True)
unique_inverse_p = Primitive("unique_inverse", multiple_results=True)
unique_values_p = Primitive("unique_values")

#: Primitives whose result shapes depend on input values (no ``vmap``, no ``jit``).
DATA_DEPENDENT_SHAPES: frozenset[Primitive] = frozenset(
    {nonzero_p, unique_all_p, unique_counts_p, unique_inverse_p, unique_values_p}
)
for _prim in DATA_DEPENDENT_SHAPES:
    _data_dependent(_prim)


class UniqueAllResult(NamedTuple):
    """The result of ``unique_all``: unique values, first indices, inverse, counts."""

    values: Any
    indices: Any
    inverse_indices: Any
    counts: Any


class UniqueCountsResult(NamedTuple):
    """The result of ``unique_counts``: unique values and how often each occurs."""

    values: Any
    counts: Any


class UniqueInverseResult(NamedTuple):
    """The result of ``unique_inverse``: unique values and, per element, its value's index."""

    values: Any
    inverse_indices: Any


@def_api("nonzero")
def nonzero(x: Any, /) -> tuple[Any, ...]:
    """The indices of the non-zero elements of ``x``, one array per axis.

    Raises:
        ConcretizationError: under ``vmap`` or ``jit``, for an ``x`` that depends on their
            inputs (the result's shape depends on the values of ``x``).
    """
    _require_eager("nonzero", x)
    return tuple(nonzero_p.bind(x))


@def_api("unique_all")
def unique_all(x: Any, /) -> UniqueAllResult:
    """The unique values of ``x``, their first indices, the inverse and the counts.

    Raises:
        ConcretizationError: under ``vmap`` or ``jit``, for an ``x`` that depends on their
            inputs (the result's shape depends on the values of ``x``).

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> ops.unique_all(np.asarray([2.0, 1.0, 2.0])).counts
        array([1, 2])
    """
    _require_eager("unique_all", x)
    return UniqueAllResult(*unique_all_p.bind(x))


@def_api("unique_counts")
def unique_counts(x: Any, /) -> UniqueCountsResult:
    """The unique values of ``x`` and how often each occurs (eager only, like ``nonzero``)."""
    _require_eager("unique_counts", x)
    return UniqueCountsResult(*unique_counts_p.bind(x))


@def_api("unique_inverse")
def unique_inverse(x: Any, /) -> UniqueInverseResult:
    """The unique values of ``x`` and each element's index among them (eager only)."""
    _require_eager("unique_inverse", x)
    return UniqueInverseResult(*unique_inverse_p.bind(x))


@def_api("unique_values")
def unique_values(x: Any, /) -> Any:
    """The unique values of ``x``, sorted (eager only, like ``nonzero``)."""
    _require_eager("unique_values", x)
    return unique_values_p.bind(x)
