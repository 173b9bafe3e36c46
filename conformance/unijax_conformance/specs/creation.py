"""OpSpec rows for the creation functions of the Array API standard.

Functions that take arrays (``asarray``, ``*_like``, ``tril``, ``triu``, ``meshgrid``,
``from_dlpack``) are called on the inputs; ``asarray`` also on lists that hold traced
arrays, which must stay differentiable. Functions that take only Python data (``zeros``,
``ones``, ``empty``, ``full``, ``arange``, ``eye``, ``linspace``) make constants; their
rows combine them with the input so that the traced namespace's forwarding to the
backend is exercised inside every transform. ``empty`` and ``empty_like`` have undefined
values, so their rows use only their shapes and dtypes.
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


def vectors(count: int) -> Callable[[Any], Any]:
    """``count`` float64 vectors of independent lengths."""

    def strategy(xps: Any) -> Any:
        return st.tuples(*(st.integers(1, 4).flatmap(
            lambda n: xps.arrays("float64", (n,), elements=ANY)) for _ in range(count)))

    return strategy


def row(name: str, fn: Callable[..., Any], strategy: Callable[[Any], Any],
        **options: Any) -> OpSpec:
    return OpSpec(name, fn, strategy, **options)


def _shape_only(xp: Any, e: Any) -> Any:
    return xp.zeros_like(e, dtype=e.dtype)


SPECS: list[OpSpec] = [
    # --- functions of arrays ---
    row("asarray", lambda xp, x: xp.asarray(x) * 2.0, arrays()),
    row("asarray#list",
        lambda xp, x: xp.asarray([x[0, ...], x[-1, ...] * x[0, ...], x[0, ...] ** 2]), arrays()),
    row("asarray#scalars",
        lambda xp, x: xp.asarray([xp.sum(x), 1.5, xp.sum(x * x)]) * 2.0, arrays()),
    row("asarray#dtype", lambda xp, x: xp.asarray(x, dtype=xp.complex128) * (1 + 0j),
        arrays(), grad=False, reason="complex output"),
    row("zeros_like", lambda xp, x: xp.zeros_like(x) + x, arrays()),
    row("ones_like", lambda xp, x: xp.ones_like(x) * x, arrays()),
    row("full_like", lambda xp, x: xp.full_like(x, 2.5) * x, arrays()),
    row("full_like#dtype", lambda xp, x: xp.full_like(x, 2, dtype=xp.int32), arrays(),
        grad=False, reason="integer output"),
    row("empty_like", lambda xp, x: _shape_only(xp, xp.empty_like(x)) + x, arrays()),
    row("tril", lambda xp, x: xp.tril(x), arrays(min_dims=2)),
    row("tril#k", lambda xp, x: xp.tril(x, k=1), arrays(min_dims=2)),
    row("triu", lambda xp, x: xp.triu(x), arrays(min_dims=2)),
    row("triu#k", lambda xp, x: xp.triu(x, k=-1), arrays(min_dims=2)),
    row("meshgrid", lambda xp, a, b: tuple(xp.meshgrid(a, b)), vectors(2)),
    row("meshgrid#ij", lambda xp, a, b, c: tuple(xp.meshgrid(a, b, c, indexing="ij")),
        vectors(3)),
    row("from_dlpack", lambda xp, x: xp.from_dlpack(x) * 3.0, arrays(), grad=False,
        reason="the JAX reference refuses traced arrays in from_dlpack"),
    # --- functions of Python data: constants inside every transform ---
    row("zeros", lambda xp, x: x + xp.zeros(x.shape, dtype=x.dtype), arrays()),
    row("ones", lambda xp, x: x * xp.ones(x.shape[-1:]), arrays()),
    row("empty", lambda xp, x: x + _shape_only(xp, xp.empty(x.shape)), arrays()),
    row("full", lambda xp, x: x * xp.full(x.shape, 1.5), arrays()),
    row("arange", lambda xp, x: x * xp.arange(x.shape[-1], dtype=x.dtype), arrays()),
    row("eye", lambda xp, x: x * xp.eye(x.shape[-1], k=1)[0, ...], arrays()),
    row("linspace", lambda xp, x: x * xp.linspace(-1.0, 2.0, x.shape[-1]), arrays()),
]
