"""Argument checks shared by every transform, so each misuse fails the same way everywhere.

Checks run when a transform is built where the information is available then (an
``argnums`` that the function's signature cannot satisfy), and otherwise at the first
call, before any backend sees the arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from unijax._dtypes import dtype_name, is_complex, is_inexact
from unijax.errors import (
    ArgnumsError,
    HasAuxError,
    NonDifferentiableError,
    NonScalarOutputError,
    ShapeError,
    TransformArgumentError,
    UnhashableStaticArgumentError,
    message,
)
from unijax.tree_util import tree_flatten

__all__ = [
    "check_argnums_in_range",
    "check_callable",
    "check_cotangents",
    "check_differentiable_leaves",
    "check_hashable_statics",
    "check_scalar_output",
    "check_tangents",
    "differentiable_dtype",
    "fun_name",
    "max_positional",
    "normalize_argnums",
    "normalize_static_argnames",
    "split_aux",
]


def fun_name(fun: Callable[..., Any]) -> str:
    """A short name for ``fun`` in error messages."""
    return getattr(fun, "__name__", None) or type(fun).__name__


def max_positional(fun: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fun`` accepts (``None``: any number, or unknown)."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return None
    count = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def normalize_argnums(argnums: Any, api: str, fun: Callable[..., Any],
                      name: str = "argnums") -> tuple[int, ...]:
    """Validate ``argnums`` (an int or a sequence of ints) and return it as a tuple.

    Negative entries count from the end of the signature when it is known.

    Raises:
        ArgnumsError: a non-integer, duplicated or out-of-range entry.
    """
    items = (argnums,) if isinstance(argnums, int) else argnums
    if not isinstance(items, Sequence) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in items
    ):
        raise ArgnumsError(
            message(f"{api}: {name} must be an int or a tuple of ints",
                    got=repr(argnums), fix=f"Pass e.g. {name}=0 or {name}=(0, 1).")
        )
    if name == "argnums" and not items:
        raise ArgnumsError(
            message(f"{api}: argnums is empty", fix="Name at least one argument to differentiate.")
        )
    limit = max_positional(fun)
    normalized = []
    for a in items:
        if a < 0:
            if limit is None:
                raise ArgnumsError(
                    message(f"{api}: negative {name} {a} needs a function with a fixed "
                            "number of positional parameters",
                            fix=f"Use a non-negative index in {name}.")
                )
            a += limit
        if a < 0 or (limit is not None and a >= limit):
            raise ArgnumsError(
                message(
                    f"{api}: {name} {items!r} is out of range for {fun_name(fun)}",
                    expected=f"indices below {limit} (it takes {limit} positional arguments)",
                    got=repr(argnums),
                    fix=f"Use {name} within the function's positional parameters.",
                )
            )
        normalized.append(a)
    if len(set(normalized)) != len(normalized):
        raise ArgnumsError(
            message(f"{api}: {name} {items!r} names an argument twice",
                    fix="List each argument once.")
        )
    return tuple(normalized)


def normalize_static_argnames(argnames: Any, api: str,
                              fun: Callable[..., Any] | None = None) -> tuple[str, ...]:
    """Validate ``static_argnames`` (a str or a sequence of str), each a parameter of
    ``fun`` when its signature is known and takes no ``**kwargs``."""
    items = (argnames,) if isinstance(argnames, str) else argnames
    if not isinstance(items, Sequence) or not all(isinstance(a, str) for a in items):
        raise ArgnumsError(
            message(f"{api}: static_argnames must be a str or a tuple of str",
                    got=repr(argnames), fix="Pass e.g. static_argnames=('n',).")
        )
    params = _keyword_parameters(fun) if fun is not None else None
    if fun is not None and params is not None:
        unknown = [a for a in items if a not in params]
        if unknown:
            raise ArgnumsError(
                message(f"{api}: static_argnames names {unknown!r}, which "
                        f"{fun_name(fun)} has no parameter for",
                        expected=f"names among {sorted(params)!r}",
                        fix="Fix the spelling, or drop the name from static_argnames.")
            )
    return tuple(items)


def _keyword_parameters(fun: Callable[..., Any]) -> set[str] | None:
    """The names ``fun`` accepts by keyword (``None``: any name, or unknown)."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def check_argnums_in_range(argnums: tuple[int, ...], nargs: int, api: str) -> None:
    """At call time, when the signature was unknown: every index below ``nargs``."""
    for a in argnums:
        if a >= nargs:
            raise ArgnumsError(
                message(f"{api}: argnums {argnums!r} is out of range",
                        expected=f"indices below {nargs} (the call passed {nargs} "
                        "positional arguments)",
                        got=repr(a), fix="Pass the differentiated arguments positionally.")
            )


def check_hashable_statics(args: Sequence[Any], kwargs: dict[str, Any],
                           static_argnums: tuple[int, ...], static_argnames: tuple[str, ...],
                           api: str) -> None:
    """Every static argument must be hashable: it is part of the compilation cache key."""
    for i in static_argnums:
        if i < len(args):
            _check_hashable(args[i], f"positional argument {i}", api)
    for name in static_argnames:
        if name in kwargs:
            _check_hashable(kwargs[name], f"argument {name!r}", api)


def _check_hashable(value: Any, where: str, api: str) -> None:
    try:
        hash(value)
    except TypeError:
        raise UnhashableStaticArgumentError(
            message(
                f"{api}: static {where} must be hashable to key the compilation cache",
                got=f"an unhashable {type(value).__name__}",
                fix="Pass a tuple instead of a list (or a frozen dataclass), or make it a "
                "dynamic argument by removing it from static_argnums/static_argnames.",
            )
        ) from None


def split_aux(out: Any, api: str) -> tuple[Any, Any]:
    """Split a ``has_aux=True`` output into ``(output, aux)``."""
    if not (isinstance(out, tuple | list) and len(out) == 2):
        got = f"a {type(out).__name__}" + (f" of length {len(out)}" if
                                            isinstance(out, tuple | list) else "")
        raise HasAuxError(
            message(f"{api} with has_aux=True needs the function to return a pair "
                    "(output, aux)", got=got,
                    fix="Return (output, aux), or drop has_aux=True.")
        )
    return out[0], out[1]


def check_callable(fun: Any, kind: str) -> None:
    """A transform's function must be callable."""
    if not callable(fun):
        raise TransformArgumentError(
            message(f"{kind}() expects a callable", got=f"{type(fun).__name__}",
                    fix=f"Pass the function itself: unijax.{kind}(f).")
        )


def check_cotangents(cts: tuple[Any, ...], out: Any, api: str) -> Any:
    """The one cotangent passed to ``vjp``'s function, checked against the output ``out``.

    Raises:
        TransformArgumentError: Not exactly one cotangent, or not the output's structure.
        ShapeError: A leaf whose shape is not its output leaf's.
    """
    if len(cts) != 1:
        raise TransformArgumentError(
            message(f"The function returned by {api} takes one cotangent, shaped like the "
                    "output", got=f"{len(cts)} arguments",
                    fix="Pass a single pytree: pullback(ct), or pullback((ct1, ct2)) for a "
                    "tuple output.")
        )
    out_leaves, out_def = tree_flatten(out)
    ct_leaves, ct_def = tree_flatten(cts[0])
    if ct_def != out_def:
        raise TransformArgumentError(
            message(f"The function returned by {api} needs a cotangent shaped like the "
                    "output", expected=str(out_def), got=str(ct_def),
                    fix="Pass a pytree with the output's structure.")
        )
    for c, o in zip(ct_leaves, out_leaves, strict=True):
        if tuple(getattr(c, "shape", ())) != tuple(getattr(o, "shape", ())):
            raise ShapeError(
                message(f"The function returned by {api} got a cotangent of the wrong "
                        "shape", expected=str(tuple(getattr(o, "shape", ()))),
                        got=str(tuple(getattr(c, "shape", ()))),
                        fix="Give each cotangent leaf the shape of the output leaf.")
            )
    return cts[0]


def check_tangents(primals: Sequence[Any], tangents: Sequence[Any], api: str) -> None:
    """``jvp``'s tangents have the primals' structure, and each leaf its primal's shape.

    Raises:
        TransformArgumentError: The structures differ.
        ShapeError: A tangent leaf whose shape is not its primal's.
    """
    p_leaves, p_def = tree_flatten(tuple(primals))
    t_leaves, t_def = tree_flatten(tuple(tangents))
    if p_def != t_def:
        raise TransformArgumentError(
            message(f"{api}: primals and tangents must have the same pytree structure",
                    expected=str(p_def), got=str(t_def),
                    fix="Give one tangent per primal leaf.")
        )
    for p, t in zip(p_leaves, t_leaves, strict=True):
        if tuple(getattr(p, "shape", ())) != tuple(getattr(t, "shape", ())):
            raise ShapeError(
                message(f"{api}: each tangent must match its primal's shape and dtype",
                        expected=str(tuple(getattr(p, "shape", ()))),
                        got=str(tuple(getattr(t, "shape", ()))),
                        fix="Build tangents with xp.ones_like(primal) or similar.")
            )


def check_scalar_output(out: Any, api: str, name: str) -> None:
    """``grad`` differentiates a real scalar only."""
    if not (hasattr(out, "shape") and hasattr(out, "dtype")) and not isinstance(
            out, bool | int | float | complex):
        kind = "None" if out is None else f"a {type(out).__name__}"
        raise NonScalarOutputError(
            message(f"{api} needs a scalar output, but {name} returned {kind}",
                    expected="a 0-d real floating-point array",
                    fix="Return the scalar itself; for several outputs use has_aux=True "
                    "(return (loss, aux)), or jacrev for a pytree of outputs.")
        )
    shape = tuple(out.shape) if hasattr(out, "shape") else ()
    if shape != ():
        raise NonScalarOutputError(
            message(f"{api} needs a scalar output, but {name} returned shape {shape}",
                    fix="Reduce it (xp.sum) or use jacrev.")
        )
    if isinstance(out, bool | int) or (hasattr(out, "dtype") and not is_inexact(out.dtype)) \
            or (hasattr(out, "dtype") and is_complex(out.dtype)) or isinstance(out, complex):
        dtype = dtype_name(out.dtype) if hasattr(out, "dtype") else type(out).__name__
        raise NonDifferentiableError(
            message(f"{api} needs a real floating-point output, but {name} returned {dtype}",
                    fix="Return a float array (xp.astype(out, xp.float64)); for complex "
                    "outputs differentiate the real part or use vjp.")
        )


_INEXACT_CACHE: dict[Any, bool] = {}


def differentiable_dtype(dtype: Any) -> bool:
    """Whether arrays of ``dtype`` can be differentiated (floating point; cached)."""
    # Keyed by type too: comparing dtypes of two libraries can warn or be ambiguous.
    key = (type(dtype), dtype)
    ok = _INEXACT_CACHE.get(key)
    if ok is None:
        ok = _INEXACT_CACHE[key] = is_inexact(dtype)
    return ok


def check_differentiable_leaves(leaves: Sequence[Any], api: str) -> None:
    """Differentiated inputs must be floating point (integers have no tangent space)."""
    for leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            if isinstance(leaf, float | complex):
                continue
            kind = type(leaf).__name__
        else:
            if differentiable_dtype(dtype):
                continue
            kind = dtype_name(dtype)
        raise NonDifferentiableError(
            message(f"{api} differentiates with respect to its inputs, which must be "
                    "floating point", got=f"an input of type {kind}",
                    fix="Cast it (xp.astype(x, xp.float64)), or leave it out of argnums.")
        )
