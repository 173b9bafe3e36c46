"""OpSpec rows for the manipulation and data type functions of the Array API standard.

Manipulation: ``broadcast_arrays``, ``broadcast_to``, ``concat``, ``expand_dims``,
``flip``, ``moveaxis``, ``permute_dims``, ``repeat``, ``reshape``, ``roll``, ``squeeze``,
``stack``, ``tile`` and ``unstack``, each with the argument patterns that change its rules
(negative axes, tuples of axes, ``axis=None``, array ``repeats``). Data types:
``astype``, ``can_cast``, ``finfo``, ``iinfo``, ``isdtype`` and ``result_type`` (the
queries are exercised on traced arrays, whose dtypes they must use).

Every function here is linear, so any finite input is in its domain; a row that casts to
``float32`` checks values and batching only, because float32 rounding defeats float64
finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from unijax_conformance.specs import OpSpec

__all__ = ["SPECS"]

ANY: dict[str, Any] = {"min_value": -3.0, "max_value": 3.0, "allow_nan": False,
                       "allow_infinity": False}


def arrays(*, min_dims: int = 1, max_dims: int = 3, min_side: int = 1,
           count: int = 1) -> Callable[[Any], Any]:
    """``count`` float64 arrays of one random shape."""

    def strategy(xps: Any) -> Any:
        shapes = xps.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=4)
        return shapes.flatmap(lambda s: st.tuples(
            *(xps.arrays("float64", s, elements=ANY) for _ in range(count))))

    return strategy


def shaped(*shapes: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Arrays whose shapes come from ``shape(draw_int)`` builders sharing random sides."""

    def strategy(xps: Any) -> Any:
        sides = st.tuples(*(st.integers(1, 4) for _ in range(4)))
        return sides.flatmap(lambda n: st.tuples(
            *(xps.arrays("float64", make(n), elements=ANY) for make in shapes)))

    return strategy


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    return OpSpec(name, fn, strategy, **options)


def _repeat_counts(xp: Any, n: int) -> Any:
    return xp.asarray([(3 * i + 1) % 4 for i in range(n)])  # includes zeros past n=1


def _complex_square(xp: Any, x: Any) -> Any:
    z = xp.astype(x, xp.complex128)
    return xp.real(z * z)


SPECS: list[OpSpec] = [
    # --- reshape / broadcast ---
    row("reshape", lambda xp, x: xp.reshape(x, (-1,)), arrays()),
    row("reshape#2d", lambda xp, x: xp.reshape(x, (x.shape[-1], -1)), arrays()),
    row("reshape#scalar", lambda xp, x: xp.reshape(x, ()), shaped(lambda n: (1, 1))),
    row("broadcast_to", lambda xp, x: xp.broadcast_to(x, (2, *x.shape)), arrays()),
    row("broadcast_to#ones",
        lambda xp, x: xp.broadcast_to(x, tuple(3 if d == 1 else d for d in x.shape)),
        shaped(lambda n: (n[0], 1, n[1]))),
    row("broadcast_arrays", lambda xp, a, b: tuple(xp.broadcast_arrays(a, b)),
        shaped(lambda n: (n[0],), lambda n: (n[1], 1))),
    # --- axes ---
    row("permute_dims",
        lambda xp, x: xp.permute_dims(x, tuple(range(x.ndim))[::-1]), arrays()),
    row("permute_dims#3d", lambda xp, x: xp.permute_dims(x, (2, 0, 1)),
        arrays(min_dims=3)),
    row("moveaxis", lambda xp, x: xp.moveaxis(x, 0, -1), arrays()),
    row("moveaxis#tuple", lambda xp, x: xp.moveaxis(x, (0, 1), (-1, 0)), arrays(min_dims=3)),
    row("expand_dims", lambda xp, x: xp.expand_dims(x, axis=0), arrays()),
    row("expand_dims#negative", lambda xp, x: xp.expand_dims(x, axis=-1), arrays()),
    row("expand_dims#middle", lambda xp, x: xp.expand_dims(x, axis=1), arrays()),
    row("squeeze", lambda xp, x: xp.squeeze(x, axis=1), shaped(lambda n: (n[0], 1, n[1]))),
    row("squeeze#tuple", lambda xp, x: xp.squeeze(x, axis=(0, -1)),
        shaped(lambda n: (1, n[0], 1))),
    row("flip", lambda xp, x: xp.flip(x), arrays()),
    row("flip#axis", lambda xp, x: xp.flip(x, axis=-1), arrays()),
    row("flip#tuple", lambda xp, x: xp.flip(x, axis=(0, -1)), arrays(min_dims=2)),
    row("roll", lambda xp, x: xp.roll(x, 1), arrays()),
    row("roll#axis", lambda xp, x: xp.roll(x, -2, axis=0), arrays()),
    row("roll#tuple", lambda xp, x: xp.roll(x, (1, 3), axis=(0, -1)), arrays(min_dims=2)),
    # --- joining and splitting ---
    row("concat", lambda xp, a, b: xp.concat([a, b]), arrays(count=2)),
    row("concat#axis", lambda xp, a, b, c: xp.concat((a, b, c), axis=-1), arrays(count=3)),
    row("concat#shapes", lambda xp, a, b: xp.concat([a, b], axis=1),
        shaped(lambda n: (n[0], n[1]), lambda n: (n[0], n[2]))),
    row("concat#none", lambda xp, a, b: xp.concat([a, b], axis=None),
        shaped(lambda n: (n[0], n[1]), lambda n: (n[2],))),
    row("stack", lambda xp, a, b: xp.stack([a, b]), arrays(count=2)),
    row("stack#axis", lambda xp, a, b, c: xp.stack((a, b, c), axis=-1), arrays(count=3)),
    row("unstack", lambda xp, x: tuple(xp.unstack(x)), arrays()),
    row("unstack#axis", lambda xp, x: tuple(xp.unstack(x, axis=-1)), arrays()),
    # --- replication ---
    row("repeat", lambda xp, x: xp.repeat(x, 2), arrays()),
    row("repeat#axis", lambda xp, x: xp.repeat(x, 3, axis=-1), arrays()),
    row("repeat#array",
        lambda xp, x: xp.repeat(x, _repeat_counts(xp, x.shape[0]), axis=0), arrays()),
    row("tile", lambda xp, x: xp.tile(x, (2, 1)), arrays(max_dims=2)),
    row("tile#rank", lambda xp, x: xp.tile(x, (2, 1, 3)), arrays(max_dims=2)),
    # --- data types ---
    row("astype", _complex_square, arrays()),
    row("astype#float32", lambda xp, x: xp.astype(x, xp.float32), arrays(), grad=False,
        reason="float32 rounding defeats float64 finite differences", rtol=1e-6),
    row("astype#int", lambda xp, x: xp.astype(x, xp.int64), arrays(), grad=False,
        reason="integer outputs carry no derivative"),
    row("result_type",
        lambda xp, x: xp.astype(x, xp.result_type(x, xp.float32, 1.0)) * 2.0, arrays()),
    row("can_cast",
        lambda xp, x: x * (float(xp.can_cast(x.dtype, xp.float32)) + 2.0
                           * float(xp.can_cast(xp.float32, x.dtype))), arrays()),
    row("finfo", lambda xp, x: x * (1.0 + 1e12 * xp.finfo(x).eps), arrays()),
    row("iinfo", lambda xp, x: x * float(xp.iinfo(xp.int8).max), arrays()),
    row("isdtype",
        lambda xp, x: x * (float(xp.isdtype(x.dtype, "real floating"))
                           + 2.0 * float(xp.isdtype(x.dtype, "integral"))), arrays()),
]
