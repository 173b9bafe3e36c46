"""Staging: the interpreter behind ``jit`` that records a :class:`~unijax.engine.ir.Program`.

Staging is *concrete*: the function runs once on the real input values, and each
:class:`StagingTracer` holds the concrete value beside the IR variable it stands for.
Shapes and dtypes therefore come from the backend itself (no abstract-evaluation rules,
and dtype semantics are exactly the backend's), and the values computed while staging
are the first call's results.

Equations whose operands are all constants never reach this trace (``bind`` evaluates
them directly), so closed-over arrays and creation functions are folded for free; so
are ``zeros_like``/``ones_like``/``full_like`` of a traced array, whose values depend
only on its (static) shape and dtype.

A staging tracer refuses ``bool()``/``int()``/``float()`` and ``np.asarray`` even though
its value is known: the program must be valid for every input of the same signature, so
Python control flow on a traced value would silently bake in one branch. Constants of the
program (values computed only from constants) are the exception: they are the same on
every call.

Loops are the exception to concrete staging. ``jit`` stages with ``exact=False``: a
primitive with a :data:`placeholder_rules` entry (``scan``, ``while_loop``) is recorded
without running it, and its outputs get placeholder values of the right shapes and dtypes,
so staging a 10,000-step loop costs what staging a 10-step one does. Values computed from
placeholders are *tainted*: they are not the function's results (``jit`` runs the compiled
program for those), and an operation that fails on them raises
:class:`NeedsExactStaging`, after which ``jit`` stages again with every loop run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from unijax.engine.core import (
    SCALAR_TYPES,
    Primitive,
    Trace,
    Tracer,
    bind,
    builtin_scalar,
    namespace_for_args,
    namespace_for_value,
)
from unijax.engine.ir import Atom, Equation, Literal, Program, Var, weak_value
from unijax.errors import ConcretizationError, message

__all__ = [
    "NeedsExactStaging",
    "StagingTrace",
    "StagingTracer",
    "is_placeholder",
    "placeholder_rules",
    "stage",
    "var_for",
]

#: Per loop primitive, ``rule(values, **params) -> outputs`` with the right shapes and
#: dtypes but not the right values (filled by the control-flow rules).
placeholder_rules: dict[Primitive, Callable[..., Any]] = {}


class NeedsExactStaging(Exception):
    """An operation failed on placeholder values: the function must be staged again with
    every loop run (``exact=True``)."""


class StagingTracer(Tracer):
    """A concrete value being recorded as the program variable ``var``.

    Converting it to a Python value raises :class:`~unijax.errors.ConcretizationError`.
    """

    __slots__ = ("value", "var")

    def __init__(self, trace: StagingTrace, value: Any, var: Var) -> None:
        self._trace = trace
        self.value = value
        self.var = var

    def _primal(self) -> Any:
        return self.value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.var.shape

    @property
    def dtype(self) -> Any:
        if self.var.weak:
            # A weak Python scalar reports the dtype it takes on its own, as eagerly.
            trace: StagingTrace = self._trace  # type: ignore[assignment]
            return trace.weak_dtype(self.value)
        return self.var.dtype

    @property
    def device(self) -> Any:
        if self.var.weak:
            trace: StagingTrace = self._trace  # type: ignore[assignment]
            return trace.device
        return super().device

    def _is_constant(self) -> bool:
        trace: StagingTrace = self._trace  # type: ignore[assignment]
        return self.var in trace.constants

    def _concrete(self, what: str) -> Any:
        trace: StagingTrace = self._trace  # type: ignore[assignment]
        if self.var in trace.constants:
            # A constant of the program (made or closed over while tracing): its value is
            # the same for every call, so Python may use it.
            return super()._concrete(what)
        raise ConcretizationError(
            message(
                f"{what}() was called on a traced array ({self.var.aval}) inside a jit-"
                "compiled function. Under jit a traced value's concrete value is not "
                "available: the compiled program must work for every input of this shape "
                "and dtype, so Python control flow (if, while, int(x), range(x)) cannot "
                "depend on it",
                fix="Mark the argument static with jit(f, static_argnums=...) or "
                "static_argnames=..., or write the branch as array code: "
                "xp.where(cond, a, b) instead of `a if cond else b`.",
            )
        )


class StagingTrace(Trace):
    """Records every primitive applied to its tracers as an equation.

    Args:
        xp: The namespace of the jit call (used for the dtype of weak scalar inputs).
        device: The device of the jit call's arrays.

    Example:
        >>> import numpy as np
        >>> trace = StagingTrace()
        >>> x = trace.new_input(np.zeros((2, 3), dtype=np.float32))
        >>> y = x * 2.0
        >>> y.shape, y.dtype, len(trace.equations)
        ((2, 3), dtype('float32'), 1)
    """

    __slots__ = ("_captured", "_const_ids", "cacheable", "constants", "device", "equations",
                 "exact", "inputs", "tainted", "xp")
    data_dependent_shapes = False
    kind = "jit"

    def __init__(self, xp: Any = None, device: Any = None, *, exact: bool = True) -> None:
        super().__init__()
        self.xp = xp
        self.device = device
        #: Whether loops are run while staging (see the module docstring).
        self.exact = exact
        #: Vars whose staged values derive from placeholders.
        self.tainted: set[Var] = set()
        self.inputs: list[Var] = []
        self.equations: list[Equation] = []
        self.constants: dict[Var, Any] = {}
        # Constants by id(value), so one closed-over array is one constant; the dict in
        # ``constants`` keeps each value alive, so its id cannot be reused meanwhile.
        self._const_ids: dict[int, Var] = {}
        # The closed-over values themselves, so that their ids stay unique while staging.
        self._captured: list[Any] = []
        self.cacheable = True

    def weak_dtype(self, value: Any) -> Any:
        """The dtype a Python scalar takes as an array of this trace's namespace."""
        if self.xp is None:
            return namespace_for_args((value,)).asarray(value).dtype
        return self.xp.asarray(value).dtype

    def new_input(self, value: Any) -> StagingTracer:
        """Make a tracer for one input of the program (an array or a Python scalar)."""
        var = var_for(value)
        self.inputs.append(var)
        return StagingTracer(self, value, var)

    def pure(self, value: Any) -> StagingTracer:
        return StagingTracer(self, value, self._constant(value))

    def _constant(self, value: Any) -> Var:
        var = self._const_ids.get(id(value))
        if var is None:
            if isinstance(value, Tracer):
                # Closed over from an enclosing transform: right for this call only.
                self.cacheable = False
                snapshot = value
            elif hasattr(value, "shape"):
                # Captured at trace time, as in JAX: the program keeps a copy, so writing
                # to the closed-over array later changes no expression of the program (a
                # reference would change those that read it directly but not the ones
                # folded while staging).
                snapshot = namespace_for_value(value).asarray(value, copy=True)
            else:
                snapshot = value
            var = self._const_ids[id(value)] = var_for(value)
            self._captured.append(value)
            self.constants[var] = snapshot
        return var

    def atom(self, value: Any) -> Atom:
        """The atom standing for ``value``: its var, a constant or a literal."""
        if type(value) is StagingTracer and value._trace is self:
            return value.var
        if isinstance(value, Tracer) or hasattr(value, "shape"):
            return self._constant(value)
        return Literal(value)

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        values: list[Any] = []
        atoms: list[Atom] = []
        weak = True
        constant = True
        for a in args:
            if type(a) is StagingTracer and a._trace is self:
                values.append(a.value)
                atoms.append(a.var)
                weak = weak and a.var.weak
                constant = constant and a.var in self.constants
            else:
                a = builtin_scalar(a)
                values.append(a)
                atoms.append(self.atom(a))
                weak = weak and (type(a) in SCALAR_TYPES or a is None)
        folded = constant and self.cacheable
        tainted = False
        if folded:
            out = bind(prim, tuple(values), params)
        else:
            out, tainted = self._evaluate(prim, values, atoms, params)
        if weak and not prim.multiple_results:
            out = weak_value(out)  # Python scalars in, a Python scalar out (see weak_value)
        if folded:
            # Constants in, a constant out: folded now, as operations on closed-over
            # arrays are, so the program records no equation and the value stays concrete.
            if prim.multiple_results:
                return tuple(self.pure(o) for o in out)
            return self.pure(out)
        atoms_t = tuple(atoms)
        if prim.multiple_results:
            outs = tuple(out)
            out_vars = tuple(var_for(o) for o in outs)
            self.equations.append(Equation(prim, atoms_t, dict(params), out_vars))
            if tainted:
                self.tainted.update(out_vars)
            return tuple(StagingTracer(self, o, v) for o, v in zip(outs, out_vars, strict=True))
        var = var_for(out)
        self.equations.append(Equation(prim, atoms_t, dict(params), (var,)))
        if tainted:
            self.tainted.add(var)
        return StagingTracer(self, out, var)

    def _evaluate(self, prim: Primitive, values: list[Any], atoms: list[Atom],
                  params: dict[str, Any]) -> tuple[Any, bool]:
        """The staged value of ``prim`` and whether it is tainted (see the module docs)."""
        if not self.exact:
            rule = placeholder_rules.get(prim)
            if rule is not None:
                return rule(values, **params), True
        if not (self.tainted and any(type(a) is Var and a in self.tainted for a in atoms)):
            return bind(prim, tuple(values), params), False
        try:
            # Placeholder values are no one's data: what they would warn about is moot.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return bind(prim, tuple(values), params), True
        except NeedsExactStaging:
            raise
        except Exception as err:
            raise NeedsExactStaging(prim.qualname) from err

    def process_custom_vjp(self, call: Any, args: tuple[Any, ...]) -> Any:
        # The primal function runs on this trace's tracers, so it is recorded op by op
        # (``call.bind_fun`` would dispatch straight back here). A grad taken inside the
        # jitted function runs its VJP trace above this one, so it still sees the rule.
        return list(call.fun(list(args)))

    def process_custom_jvp(self, call: Any, args: tuple[Any, ...]) -> Any:
        return list(call.fun(list(args)))


def var_for(value: Any) -> Var:
    """The var for a concrete value: its shape and dtype (a weak var for a Python scalar)."""
    tp = type(value)
    if tp in SCALAR_TYPES:
        return Var((), tp)
    return Var(tuple(value.shape), value.dtype)


def stage(fun_flat: Callable[[list[Any]], Sequence[Any]], flat_args: Sequence[Any], *,
          xp: Any = None, device: Any = None, exact: bool = True
          ) -> tuple[Program, list[Any] | None]:
    """Run ``fun_flat`` once on ``flat_args``, recording it as a program.

    Args:
        fun_flat: Takes a list of arrays (and Python scalars), returns a sequence of them.
        flat_args: The concrete inputs; Python scalars become weakly typed inputs.
        xp: The call's namespace (for the dtype of weak scalar inputs).
        device: The call's device.
        exact: Whether to run loops while staging; with ``False`` they are recorded
            without running (see the module docstring).

    Returns:
        ``(program, outputs)``: the unoptimised program and the concrete outputs computed
        while staging, or ``None`` for the outputs when a loop was not run.
        ``program.cacheable`` is ``False`` if ``fun_flat`` read a tracer of an enclosing
        transform.

    Raises:
        NeedsExactStaging: With ``exact=False``, an operation failed on placeholder values.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> program, outs = stage(lambda xs: [ops.sin(xs[0]) * 2.0], [np.zeros(3)])
        >>> print(program)
        { lambda ; a:f64[3] . let
            b:f64[3] = sin a
            c:f64[3] = multiply b 2.0
          in (c,) }
        >>> outs
        [array([0., 0., 0.])]
    """
    trace = StagingTrace(xp, device, exact=exact)
    tracers = [trace.new_input(a) for a in flat_args]
    outs = trace.run(fun_flat, list(tracers))
    out_atoms: list[Atom] = []
    values: list[Any] = []
    for o in outs:
        out_atoms.append(trace.atom(o))
        values.append(o.value if type(o) is StagingTracer and o._trace is trace else o)
    program = Program(trace.inputs, trace.constants, trace.equations, out_atoms,
                      cacheable=trace.cacheable)
    if trace.tainted:
        return program, None
    return program, values


def is_placeholder(value: Any) -> bool:
    """Whether ``value`` is a staged value derived from a loop's placeholder outputs."""
    if type(value) is not StagingTracer:
        return False
    trace: StagingTrace = value._trace  # type: ignore[assignment]
    return value.var in trace.tainted
