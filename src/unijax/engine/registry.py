"""Rule tables and the decorators that fill them.

Each transform reads one table keyed by :class:`~unijax.engine.core.Primitive`:

* ``jvp_rules[prim](primals, tangents, **params) -> (out, out_tangent)``. A tangent of
  ``None`` is a symbolic zero. Multiple-result primitives return tuples for both.
* ``vjp_rules[prim](ct, primals, out, needs, **params) -> tuple of input cotangents``.
  ``needs[i]`` says whether input ``i`` wants a cotangent; return ``None`` for the ones
  that do not (or are zero). ``ct`` is a tuple (``None`` = zero) for multiple results.
* ``batch_rules[prim](args, bdims, **params) -> (out, out_bdim)``. ``bdims[i]`` is the
  mapped axis of ``args[i]`` or ``None``; at least one is not ``None``. Multiple-result
  primitives return ``(outs, out_bdims)``.

Rules are written with the functions of :data:`unijax.engine.namespace.array_functions`
(which ``bind``), so every rule is itself differentiable, batchable and stageable: that
is what makes ``grad(grad(f))`` and ``jit(vmap(grad(f)))`` work.

The traced namespace (what ``array_namespace(tracer)`` returns) is filled here too:
:func:`def_api` registers a function that works on arrays and tracers alike, and
:func:`def_creation` one that needs the concrete backend namespace (``zeros``, ``arange``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from unijax.engine.core import API_FUNCTIONS, CREATION_FUNCTIONS, Primitive
from unijax.errors import MissingRuleError, RuleRegistrationError, message

__all__ = [
    "API_FUNCTIONS",
    "CREATION_FUNCTIONS",
    "batch_rules",
    "def_api",
    "def_batch",
    "def_creation",
    "def_jvp",
    "def_nondifferentiable",
    "def_vjp",
    "def_vjp_metadata",
    "jvp_rules",
    "metadata_only",
    "missing_rule",
    "nondifferentiable",
    "residual_vjp_rules",
    "vjp_rules",
]

F = TypeVar("F", bound=Callable[..., Any])

jvp_rules: dict[Primitive, Callable[..., Any]] = {}
vjp_rules: dict[Primitive, Callable[..., Any]] = {}
batch_rules: dict[Primitive, Callable[..., Any]] = {}
nondifferentiable: set[Primitive] = set()
#: Per primitive, what its VJP rule reads only for shape and dtype: ``"primals"``, ``"out"``.
#: The reverse-mode tape keeps just that metadata for them (see :func:`def_vjp_metadata`).
metadata_only: dict[Primitive, frozenset[str]] = {}
#: Reverse-mode rules that run the forward pass themselves, for primitives whose backward
#: pass needs values the primitive does not return (a loop's carries):
#: ``rule(primals, needs, **params) -> (outputs, backward)``, ``backward(cts) -> in_cts``.
residual_vjp_rules: dict[Primitive, Callable[..., Any]] = {}

_REGISTRAR_OF = {"jvp": "def_jvp", "vjp": "def_vjp", "batch": "def_batch"}


def _register(table: dict[Primitive, Any], kind: str, prim: Primitive, rule: Any,
              override: bool) -> None:
    if not isinstance(prim, Primitive):
        raise TypeError(f"def_{kind} expects a Primitive, got {type(prim).__name__}")
    if prim in table and not override:
        raise RuleRegistrationError(
            message(f"A {kind} rule for primitive {prim.qualname!r} is already registered",
                    fix=f"Pass override=True to {_REGISTRAR_OF[kind]} to replace it.")
        )
    table[prim] = rule


def _decorator(table: dict[Primitive, Any], kind: str) -> Callable[..., Any]:
    def registrar(prim: Primitive, rule: F | None = None, *, override: bool = False) -> Any:
        if rule is not None:
            _register(table, kind, prim, rule, override)
            return rule

        def decorate(fn: F) -> F:
            _register(table, kind, prim, fn, override)
            return fn

        return decorate

    registrar.__name__ = f"def_{kind}"
    registrar.__doc__ = (
        f"Register the {kind} rule of ``prim`` (decorator, or ``def_{kind}(prim, rule)``).\n\n"
        "Raises:\n    RuleRegistrationError: a rule exists already and ``override`` is False.\n"
    )
    return registrar


def_jvp = _decorator(jvp_rules, "jvp")
"""Register a primitive's JVP rule: ``rule(primals, tangents, **params) -> (out, out_dot)``.

A decorator (``@def_jvp(prim)``) or a call (``def_jvp(prim, rule)``); registering twice
raises ``RuleRegistrationError`` unless ``override=True``.
"""
def_vjp = _decorator(vjp_rules, "vjp")
"""Register a primitive's VJP rule: ``rule(ct, primals, out, needs, **params) ->
cotangents``, one per primal (``None`` where ``needs`` says that primal's is not needed).

A decorator (``@def_vjp(prim)``) or a call (``def_vjp(prim, rule)``); registering twice
raises ``RuleRegistrationError`` unless ``override=True``.
"""
def_batch = _decorator(batch_rules, "batch")
"""Register a primitive's batching rule for ``vmap``:
``rule(args, bdims, **params) -> (out, out_bdim)``, with ``None`` for an unbatched value.

A decorator (``@def_batch(prim)``) or a call (``def_batch(prim, rule)``); registering twice
raises ``RuleRegistrationError`` unless ``override=True``.
"""


def def_vjp_metadata(prim: Primitive, *what: str) -> None:
    """Declare that ``prim``'s VJP rule uses ``what`` (``"primals"``, ``"out"``) only for
    their ``shape`` and ``dtype``.

    The reverse-mode tape then keeps that metadata instead of the arrays, so a large
    intermediate (the product in ``x @ w + b``) is freed as soon as the forward pass no
    longer needs it, as it would be without differentiation.

    Example:
        >>> double_p = Primitive("docs_double", impl=lambda xp, x: 2 * x)
        >>> def_vjp_metadata(double_p, "primals", "out")
        >>> sorted(metadata_only[double_p])
        ['out', 'primals']
    """
    unknown = set(what) - {"primals", "out"}
    if unknown or not what:
        raise ValueError(f"def_vjp_metadata takes 'primals' and/or 'out', got {what!r}")
    if prim.multiple_results:
        raise ValueError(f"def_vjp_metadata: {prim.qualname!r} has several outputs")
    metadata_only[prim] = frozenset(what)


def def_nondifferentiable(*prims: Primitive) -> None:
    """Declare primitives whose outputs carry no derivative (comparisons, ``floor``, ...).

    Their outputs are treated as constants by ``jvp``/``grad``: the derivative is zero
    where it exists, as in JAX.
    """
    for prim in prims:
        nondifferentiable.add(prim)


def missing_rule(prim: Primitive, kind: str) -> MissingRuleError:
    """The error for a primitive without a ``kind`` rule; names the registrar to call."""
    what = {"jvp": "forward-mode derivative (jvp)", "vjp": "reverse-mode derivative (vjp)",
            "batch": "batching rule (vmap)"}[kind]
    return MissingRuleError(
        message(
            f"Primitive {prim.qualname!r} has no {what} rule",
            fix=f"Register one with unijax.extend.{_REGISTRAR_OF[kind]}({prim.name}_p), or "
            "declare it non-differentiable with unijax.extend.def_nondifferentiable.",
        )
    )


def _qualified(name: str, namespace: str) -> str:
    return f"{namespace}.{name}" if namespace else name


def def_api(name: str, namespace: str = "") -> Callable[[F], F]:
    """Register ``fn`` as the traced namespace's function ``namespace.name``."""

    def decorate(fn: F) -> F:
        API_FUNCTIONS[_qualified(name, namespace)] = fn
        return fn

    return decorate


def def_creation(name: str, namespace: str = "") -> Callable[[F], F]:
    """Register ``fn(xp, *args, **kwargs)``, a function that needs the concrete namespace."""

    def decorate(fn: F) -> F:
        CREATION_FUNCTIONS[_qualified(name, namespace)] = fn
        return fn

    return decorate
