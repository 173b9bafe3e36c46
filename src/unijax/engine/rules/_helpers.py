"""Registrars and helpers shared by the rule families.

The registrars turn the common shapes of rule into one line per primitive:
:func:`unary` and :func:`binary` for elementwise functions given their partial
derivatives, :func:`linear_unary` for functions that are their own derivative map
(``reshape``, ``negative``), and :func:`nondiff` for functions without derivatives.
Derivatives are written with :data:`ops` (the traced array functions), so they are
themselves differentiable: second and higher derivatives come for free. Rules call
``ops.multiply(a, b)`` rather than ``a * b`` wherever ``a`` may be a concrete array: some
libraries (array-api-strict) raise instead of returning ``NotImplemented`` when the
right operand is a tracer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unijax._dtypes import is_complex
from unijax.engine.batching import bdim_to_front
from unijax.engine.core import PLAIN_TYPES, Primitive, Tracer, bind, builtin_scalar
from unijax.engine.namespace import array_functions as ops
from unijax.engine.registry import (
    def_api,
    def_batch,
    def_jvp,
    def_nondifferentiable,
    def_vjp,
    def_vjp_metadata,
)

__all__ = [
    "binary",
    "binary_primitive",
    "elementwise_batch",
    "fit",
    "linear_unary",
    "ndim_of",
    "nondiff",
    "ops",
    "shape_of",
    "unary",
    "unbroadcast",
]

Deriv = Callable[..., Any]


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, tracer or Python scalar (``()``)."""
    return tuple(x.shape) if hasattr(x, "shape") else ()


def ndim_of(x: Any) -> int:
    """The rank of an array, tracer or Python scalar (0)."""
    return len(x.shape) if hasattr(x, "shape") else 0


def unbroadcast(ct: Any, x: Any) -> Any:
    """Reduce a cotangent of a broadcast result back to the shape and dtype of ``x``."""
    shape = getattr(x, "shape", ())
    ct_shape = getattr(ct, "shape", ())
    if ct_shape != shape and tuple(ct_shape) != tuple(shape):  # one test in the common case
        shape, ct_shape = tuple(shape), tuple(ct_shape)
        lead = len(ct_shape) - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, d in enumerate(shape) if d == 1 and ct_shape[lead + i] != 1
        )
        if axes:
            ct = ops.sum(ct, axis=axes, keepdims=True)
        if lead or shape_of(ct) != shape:
            ct = ops.reshape(ct, shape)
    dtype = getattr(x, "dtype", None)
    if dtype is not None and ct.dtype != dtype:
        ct = _real_part_for(ct, dtype)
    return ct


def _real_part_for(ct: Any, dtype: Any) -> Any:
    # A real input that met complex values gets the real part of its cotangent (JAX's rule).
    if is_complex(ct.dtype) and not is_complex(dtype):
        ct = ops.real(ct)
    return ops.astype(ct, dtype) if ct.dtype != dtype else ct


def fit(t: Any, out: Any) -> Any:
    """Broadcast a tangent to the output's shape and cast it to the output's dtype."""
    if shape_of(t) != shape_of(out):
        t = ops.broadcast_to(t, shape_of(out))
    if t.dtype != out.dtype:
        t = ops.astype(t, out.dtype)
    return t


def elementwise_batch(prim: Primitive) -> Callable[..., Any]:
    """The batching rule of a broadcasting elementwise function."""

    def rule(args: tuple[Any, ...], bdims: tuple[int | None, ...], **params: Any) -> Any:
        rank = max(ndim_of(a) - (b is not None) for a, b in zip(args, bdims, strict=True))
        moved = []
        for a, b in zip(args, bdims, strict=True):
            if b is not None:
                a = bdim_to_front(a, b)
                missing = rank - (ndim_of(a) - 1)
                if missing:
                    shape = shape_of(a)
                    a = ops.reshape(a, (shape[0],) + (1,) * missing + shape[1:])
            moved.append(a)
        return prim.bind(*moved, **params), 0

    return rule


def unary(name: str, deriv: Deriv | None, *, namespace: str = "",
          reads: str = "x, out") -> Primitive:
    """Define an elementwise unary primitive ``name`` with derivative ``deriv(x, out)``.

    ``deriv`` of ``None`` declares the function non-differentiable (derivative zero).
    ``reads`` names what ``deriv`` computes with: ``"out"`` (``tanh``: ``1 - out**2``)
    or ``"x"`` (``sin``: ``cos(x)``) lets the reverse-mode tape keep only the shape and
    dtype of the other, so ``tanh``'s input is freed after the forward pass.
    """
    prim = Primitive(name, namespace=namespace)

    @def_api(name, namespace)
    def api(x: Any, /) -> Any:
        return bind(prim, (x,), {})  # not prim.bind(x): one frame less per eager op

    api.__name__ = api.__qualname__ = name
    def_batch(prim, lambda args, bdims: (prim.bind(args[0]), bdims[0]))
    if deriv is None:
        def_nondifferentiable(prim)
        return prim

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        (x,), (x_dot,) = primals, tangents
        out = prim.bind(x)
        return out, fit(ops.multiply(x_dot, deriv(x, out)), out)

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
        (x,) = primals
        if isinstance(x, Tracer) or isinstance(out, Tracer):
            return (unbroadcast(ops.multiply(ct, deriv(x, out)), x),)
        # A concrete derivative: with the operator, written inline, NumPy writes the
        # product into the derivative's temporary instead of a new array (it elides
        # only temporaries of Python operators that nothing else references).
        return (unbroadcast(ct * deriv(x, out), x),)

    def_jvp(prim, jvp)
    def_vjp(prim, vjp)
    if reads == "out":
        def_vjp_metadata(prim, "primals")  # unbroadcast reads x's shape and dtype only
    elif reads == "x":
        def_vjp_metadata(prim, "out")
    elif reads != "x, out":
        raise ValueError(f"unary({name!r}): reads must be 'x', 'out' or 'x, out'")
    return prim


def linear_unary(name: str, *, namespace: str = "", **defaults: Any) -> Primitive:
    """Define a primitive that is linear in its one array argument (params keyword-only).

    Its JVP applies the primitive to the tangent; its VJP must be registered separately
    because the transpose differs per function.
    """
    prim = Primitive(name, namespace=namespace)

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], **params: Any) -> Any:
        return prim.bind(primals[0], **params), prim.bind(tangents[0], **params)

    def_jvp(prim, jvp)
    return prim


def binary_primitive(name: str, *, namespace: str = "") -> Primitive:
    """A broadcasting binary primitive with its traced function and batching rule only.

    The traced function turns number subclasses (``IntEnum``) into builtin scalars where
    they enter, so rules and backends see exact Python scalars.
    """
    prim = Primitive(name, namespace=namespace)

    @def_api(name, namespace)
    def api(x1: Any, x2: Any, /) -> Any:
        if type(x1) not in PLAIN_TYPES:
            x1 = builtin_scalar(x1)
        if type(x2) not in PLAIN_TYPES:
            x2 = builtin_scalar(x2)
        return bind(prim, (x1, x2), {})

    api.__name__ = api.__qualname__ = name
    def_batch(prim, elementwise_batch(prim))
    return prim


def binary(name: str, dx: Deriv | None, dy: Deriv | None, *, namespace: str = "",
           linear: tuple[int, int] | None = None, reads_out: bool = True) -> Primitive:
    """Define a broadcasting binary primitive with partials ``dx(x, y, out)``/``dy(...)``.

    ``linear=(a, b)`` marks ``out = a*x + b*y`` (``add``: ``(1, 1)``, ``subtract``:
    ``(1, -1)``), whose rules need no multiplications by ones. ``reads_out=False`` says
    the partials never use ``out`` (``multiply``), so the tape keeps only its metadata.
    """
    prim = binary_primitive(name, namespace=namespace)
    if dx is None and dy is None and linear is None:
        def_nondifferentiable(prim)
        return prim

    if linear is not None:
        _, b = linear

        def lin_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
            out = prim.bind(*primals)
            x_dot, y_dot = tangents
            if y_dot is not None and b == -1:
                y_dot = ops.negative(y_dot)
            if x_dot is None:
                return out, fit(y_dot, out)
            if y_dot is None:
                return out, fit(x_dot, out)
            return out, fit(ops.add(x_dot, y_dot), out)

        def lin_vjp(ct: Any, primals: tuple[Any, ...], out: Any,
                    needs: tuple[bool, ...]) -> Any:
            x, y = primals
            ct_x = unbroadcast(ct, x) if needs[0] else None
            ct_y = None
            if needs[1]:
                ct_y = unbroadcast(ops.negative(ct) if b == -1 else ct, y)
            return ct_x, ct_y

        def_jvp(prim, lin_jvp)
        def_vjp(prim, lin_vjp)
        def_vjp_metadata(prim, "primals", "out")  # unbroadcast reads shapes and dtypes
        return prim

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        x, y = primals
        x_dot, y_dot = tangents
        out = prim.bind(x, y)
        t = None
        if x_dot is not None and dx is not None:
            t = ops.multiply(x_dot, dx(x, y, out))
        if y_dot is not None and dy is not None:
            term = ops.multiply(y_dot, dy(x, y, out))
            t = term if t is None else ops.add(t, term)
        return out, None if t is None else fit(t, out)

    def vjp(ct: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
        x, y = primals
        if isinstance(x, Tracer) or isinstance(y, Tracer) or isinstance(out, Tracer):
            ct_x = unbroadcast(ops.multiply(ct, dx(x, y, out)), x) if needs[0] and dx else None
            ct_y = unbroadcast(ops.multiply(ct, dy(x, y, out)), y) if needs[1] and dy else None
            return ct_x, ct_y
        # Concrete partials: operators, for the reason given in unary's rule.
        ct_x = unbroadcast(ct * dx(x, y, out), x) if needs[0] and dx else None
        ct_y = unbroadcast(ct * dy(x, y, out), y) if needs[1] and dy else None
        return ct_x, ct_y

    def_jvp(prim, jvp)
    def_vjp(prim, vjp)
    if not reads_out:
        def_vjp_metadata(prim, "out")
    return prim


def nondiff(name: str, *, namespace: str = "", batch: Callable[..., Any] | None = None,
            nargs: int = 1) -> Primitive:
    """Define a non-differentiable elementwise primitive (comparisons, ``floor``, ...)."""
    prim = Primitive(name, namespace=namespace)
    if nargs == 1:

        @def_api(name, namespace)
        def api(x: Any, /) -> Any:
            return bind(prim, (x,), {})

    else:

        @def_api(name, namespace)
        def api(x1: Any, x2: Any, /) -> Any:  # type: ignore[misc]
            if type(x1) not in PLAIN_TYPES:
                x1 = builtin_scalar(x1)
            if type(x2) not in PLAIN_TYPES:
                x2 = builtin_scalar(x2)
            return bind(prim, (x1, x2), {})

    api.__name__ = api.__qualname__ = name
    def_nondifferentiable(prim)
    def_batch(prim, batch or elementwise_batch(prim))
    return prim


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a unijax tracer."""
    return isinstance(x, Tracer)
