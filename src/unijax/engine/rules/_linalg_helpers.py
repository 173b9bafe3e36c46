"""Helpers shared by the linear-algebra and FFT rule modules.

Besides small array helpers (conjugation that skips real arrays, constant identity and
mask matrices made on the concrete backend), two rule builders live here:

* :func:`composite_rules` gives a primitive the derivatives of a definition written with
  other primitives (norms, ``matrix_power``), so the backend's own routine computes the
  value while the derivative is exactly that of the textbook formula.
* :func:`transpose_of_jvp` gives the VJP of a primitive whose JVP is a known linear map of
  the tangents (SVD, QR, pseudo-inverse) by transposing that map, as JAX does. The map is
  recorded on a small tape and run backwards, so no hand-derived transpose can drift from
  the JVP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax._dtypes import is_complex
from unijax.engine.ad import jvp_flat, vjp_flat
from unijax.engine.batching import bdim_to_front
from unijax.engine.core import Primitive, base_value, namespace_for_value
from unijax.engine.rules._helpers import ndim_of, ops, shape_of

__all__ = [
    "add",
    "cached_constant",
    "composite_rules",
    "conj",
    "constant",
    "eye_like",
    "hermitian",
    "matrix_batch",
    "mm",
    "mul",
    "pad_front",
    "sub",
    "transpose_of_jvp",
]


def add(a: Any, b: Any) -> Any:
    """Sum of two optional (``None`` = symbolic zero) terms."""
    if a is None:
        return b
    return a if b is None else ops.add(a, b)


# Rules combine concrete arrays with tracers in either order. Python operators would ask
# the left operand first, and strict backends (array-api-strict) raise instead of
# deferring to a tracer on the right, so rules spell arithmetic out with these.


def mul(a: Any, b: Any) -> Any:
    """``a * b`` (broadcasting)."""
    return ops.multiply(a, b)


def sub(a: Any, b: Any) -> Any:
    """``a - b`` (broadcasting)."""
    return ops.subtract(a, b)


def mm(*xs: Any) -> Any:
    """Matrix product of the operands, left to right."""
    out = xs[0]
    for x in xs[1:]:
        out = ops.matmul(out, x)
    return out


def conj(x: Any) -> Any:
    """Complex conjugate; real arrays are returned unchanged (no op recorded)."""
    return ops.conj(x) if is_complex(x.dtype) else x


def hermitian(x: Any) -> Any:
    """Conjugate transpose of the last two axes."""
    return conj(ops.matrix_transpose(x))


def pad_front(x: Any, rank: int) -> Any:
    """Reshape a batch-first ``x`` to ``rank`` axes by inserting ones after the batch axis."""
    shape = shape_of(x)
    missing = rank - len(shape)
    if missing <= 0:
        return x
    return ops.reshape(x, (shape[0],) + (1,) * missing + shape[1:])


def _concrete(like: Any) -> tuple[Any, Any]:
    base = base_value(like)
    from array_api_compat import device

    return namespace_for_value(base), device(base)


def constant(like: Any, make: Callable[[Any], Any]) -> Any:
    """A constant array ``make(xp)`` on ``like``'s backend and device, in ``like``'s dtype.

    Constants are made with the concrete namespace, so no transform records them.
    """
    xp, dev = _concrete(like)
    value = xp.asarray(make(xp), device=dev)
    return xp.astype(value, like.dtype) if value.dtype != like.dtype else value


_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_SIZE = 16


def cached_constant(like: Any, key: tuple[Any, ...], make: Callable[[Any], Any]) -> Any:
    """:func:`constant`, remembered per backend, dtype, device and ``key``.

    For constants that cost O(n^2) to build on every derivative call (triangular masks);
    a few recent ones are kept. They are only ever read.
    """
    xp, dev = _concrete(like)
    full = (id(xp), str(like.dtype), repr(dev), *key)
    value = _CACHE.get(full)
    if value is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        value = _CACHE[full] = constant(like, make)
    return value


def eye_like(like: Any, n: int, m: int | None = None, k: int = 0) -> Any:
    """The identity-like ``eye(n, m, k=k)`` in ``like``'s dtype, as a constant."""
    xp, dev = _concrete(like)
    return xp.eye(n, m, k=k, dtype=like.dtype, device=dev)


def matrix_batch(prim: Primitive) -> Callable[..., Any]:
    """Batching rule of a one-operand function of the last two axes (params passed on).

    A batch axis among the leading axes is left where it is; otherwise it moves to the
    front, which costs nothing for these functions.
    """

    def rule(args: tuple[Any, ...], bdims: tuple[Any, ...], **params: Any) -> Any:
        (x,), (b,) = args, bdims
        if b >= ndim_of(x) - 2:
            x, b = bdim_to_front(x, b), 0
        out = prim.bind(x, **params)
        if prim.multiple_results:
            return out, (b,) * len(out)
        return out, b

    return rule


def composite_rules(definition: Callable[..., Any], prim: Primitive
                    ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """JVP and VJP rules for ``prim`` as the derivatives of ``definition``.

    ``definition(*arrays, **params)`` computes the same value as ``prim`` with other
    traced functions. Forward values still come from ``prim`` (the backend's routine);
    only the derivatives are traced through the definition, so they agree with JAX's
    compositional definitions, ties and kinks included.

    Returns:
        ``(jvp_rule, vjp_rule)``, to register with ``def_jvp``/``def_vjp``.
    """
    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
        out = prim.bind(*primals, **params)
        ts = [ops.zeros_like(p) if t is None else t
              for p, t in zip(primals, tangents, strict=True)]
        _, (out_dot,) = jvp_flat(lambda xs: [definition(*xs, **params)], primals, ts)
        return out, out_dot

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...],
            **params: Any) -> Any:
        _, backward = vjp_flat(lambda xs: [definition(*xs, **params)], primals)
        return tuple(c if n else None for c, n in zip(backward([ct]), needs, strict=True))

    return jvp, vjp


def transpose_of_jvp(tangent_map: Callable[[Sequence[Any]], Sequence[Any]],
                     primals: Sequence[Any], cts: Sequence[Any]) -> list[Any]:
    """Apply the transpose of the linear ``tangent_map`` (input tangents -> output tangents).

    Args:
        tangent_map: Linear in its argument, a list with one tangent per primal.
        primals: Shapes and dtypes of the tangents (values are not used).
        cts: One cotangent per output of ``tangent_map`` (``None``: zero).

    Returns:
        One cotangent per primal.
    """
    zeros = [ops.zeros_like(p) for p in primals]
    _, backward = vjp_flat(lambda ts: list(tangent_map(ts)), zeros)
    return backward(list(cts))
