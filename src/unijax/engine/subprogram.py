"""Sub-programs: the bodies of control-flow primitives, staged once and closed.

A control-flow primitive (``scan``, ``while_loop``, ``cond``, ``checkpoint``) takes its
body as a :class:`Body`: a staged :class:`~unijax.engine.ir.Program` whose every input is
explicit. :func:`stage_body` runs the Python function once, on example values, in a
:class:`BodyTrace`. A value the function reads from an enclosing transform (a tracer it
closed over, such as the weights a ``grad`` differentiates) becomes an extra input and is
returned as *captured*: the primitive takes it as an operand, so every transform below sees
it as one (closure conversion, as in JAX's closed jaxprs).

A body is then used three ways:

* :meth:`Body.compiled` is Python source generated from the program, called once per
  iteration when the loop runs on concrete arrays;
* calling the body (:func:`eval_program`) binds its equations one by one, so any active
  transform sees them; this is how the JVP, VJP and batching rules transform a body;
* :func:`jvp_of` and :func:`batch_of` stage such a transformed evaluation into a new body.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from unijax._dtypes import is_inexact
from unijax.engine.ad import JVPTrace, JVPTracer
from unijax.engine.batching import move_bdim, vmap_flat
from unijax.engine.core import Primitive, Tracer, bind, example_value, namespace_for_args
from unijax.engine.ir import Atom, Program, Var
from unijax.engine.lower import compile_python
from unijax.engine.namespace import array_functions
from unijax.engine.optimize import optimize
from unijax.engine.staging import (
    NeedsExactStaging,
    StagingTrace,
    StagingTracer,
    is_placeholder,
    var_for,
)

__all__ = [
    "Body",
    "BodyTrace",
    "batch_of",
    "custom_call_p",
    "differentiable",
    "eval_program",
    "hoist",
    "jvp_of",
    "split_by_dependence",
    "stage_body",
]

_names = itertools.count()

#: A ``custom_vjp``/``custom_jvp`` application inside a body: evaluating the body under a
#: transform re-applies the user's rule (see :func:`eval_program`).
custom_call_p = Primitive("custom_call", multiple_results=True,
                          impl=lambda xp, *args, call: call.fun(list(args)))


def eval_program(program: Program, args: Sequence[Any]) -> list[Any]:
    """Evaluate ``program`` on ``args`` by binding each equation (traceable).

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> body, _ = stage_body(lambda xs: [ops.sin(xs[0]) * 2.0], [np.zeros(2)])
        >>> eval_program(body.program, [np.full(2, np.pi / 2)])
        [array([2., 2.])]
    """
    env: dict[Var, Any] = dict(zip(program.inputs, args, strict=True))
    env.update(program.constants)

    def read(a: Atom) -> Any:
        return env[a] if isinstance(a, Var) else a.value

    for eqn in program.equations:
        ins = tuple(read(a) for a in eqn.inputs)
        if eqn.primitive is custom_call_p:
            outs = eqn.params["call"].bind_fun(ins)
        else:
            out = bind(eqn.primitive, ins, eqn.params)
            outs = out if eqn.primitive.multiple_results else (out,)
        for var, value in zip(eqn.outputs, outs, strict=True):
            env[var] = value
    return [read(a) for a in program.outputs]


class Body:
    """A staged, closed function of its inputs: the body of a control-flow primitive.

    Attributes:
        program: The staged program (inputs: the explicit ones, then the captured ones).
        examples: A concrete value for each input (from staging; used to stage
            transformed versions of the body).
        out_examples: The values its outputs had while staging (their shapes and dtypes).
        name: A name for generated code and messages.
    """

    __slots__ = ("_compiled", "examples", "name", "out_examples", "program")

    def __init__(self, program: Program, examples: Sequence[Any], out_examples: Sequence[Any],
                 name: str) -> None:
        self.program = program
        self.examples = list(examples)
        self.out_examples = list(out_examples)
        self.name = name
        self._compiled: dict[Any, Any] = {}

    def __call__(self, *args: Any) -> list[Any]:
        return eval_program(self.program, args)

    def compiled(self, xp: Any) -> Callable[..., list[Any]]:
        """The body as generated Python calling ``xp`` (optimised and compiled once)."""
        fn = self._compiled.get(id(xp))
        if fn is None:
            fn = self._compiled[id(xp)] = compile_python(optimize(self.program), xp,
                                                         name=self.name)
        return fn

    def compiled_loop(self, xp: Any, n_invariant: int
                      ) -> tuple[Callable[..., list[Any]], Callable[..., list[Any]]]:
        """``(prelude, step)`` for running the body in a loop whose first ``n_invariant``
        inputs stay the same: ``prelude(*invariant)`` computes, once, what depends on them
        alone, and ``step(*invariant, *hoisted, *rest)`` is one iteration."""
        key = (id(xp), n_invariant)
        parts = self._compiled.get(key)
        if parts is None:
            prelude, step = hoist(optimize(self.program), n_invariant)
            parts = (compile_python(prelude, xp, name=f"{self.name}_prelude"),
                     compile_python(step, xp, name=self.name))
            self._compiled[key] = parts
        return parts

    def permuted(self, inputs: Sequence[int], outputs: Sequence[int]) -> Body:
        """The same body with its inputs and outputs reordered (by old positions)."""
        program = self.program.replace(
            inputs=[self.program.inputs[i] for i in inputs],
            outputs=[self.program.outputs[i] for i in outputs])
        return Body(program, [self.examples[i] for i in inputs],
                    [self.out_examples[i] for i in outputs], self.name)

    def with_outputs(self, extra: Sequence[int]) -> Body:
        """The same body also returning its inputs at positions ``extra``."""
        program = self.program.replace(
            outputs=[*self.program.outputs, *(self.program.inputs[i] for i in extra)])
        return Body(program, self.examples,
                    [*self.out_examples, *(self.examples[i] for i in extra)], self.name)

    def __repr__(self) -> str:
        return f"<Body {self.name}: {len(self.examples)} inputs, {len(self.program)} equations>"


def split_by_dependence(program: Program, seeds: Sequence[Var],
                        pinned: Callable[[Any], bool] = lambda eqn: False
                        ) -> tuple[list[Any], list[Any], list[Var]]:
    """Split ``program``'s equations by whether they depend on any of ``seeds``.

    Returns ``(independent, dependent, crossing)``: the equations that read none of the
    seeds (directly or through other equations), the rest (in order, with every equation
    for which ``pinned(eqn)`` holds), and the independent equations' outputs that the
    dependent ones or the program's outputs read, in first-read order.
    """
    dependent_vars: set[Var] = set(seeds)
    independent, dependent = [], []
    for eqn in program.equations:
        if pinned(eqn) or any(isinstance(a, Var) and a in dependent_vars for a in eqn.inputs):
            dependent.append(eqn)
            dependent_vars.update(eqn.outputs)
        else:
            independent.append(eqn)
    made = {v for eqn in independent for v in eqn.outputs}
    read = [a for eqn in dependent for a in eqn.inputs] + list(program.outputs)
    crossing = list(dict.fromkeys(a for a in read if isinstance(a, Var) and a in made))
    return independent, dependent, crossing


def hoist(program: Program, n_invariant: int) -> tuple[Program, Program]:
    """Split ``program`` into a prelude of the equations that depend only on its first
    ``n_invariant`` inputs (and constants) and the rest (loop-invariant code motion)."""
    head = program.inputs[:n_invariant]
    prelude_eqns, step_eqns, hoisted = split_by_dependence(program,
                                                           program.inputs[n_invariant:])
    prelude = Program(head, program.constants, prelude_eqns, hoisted)
    step = Program([*head, *hoisted, *program.inputs[n_invariant:]], program.constants,
                   step_eqns, program.outputs)
    return prelude, step


class BodyTrace(StagingTrace):
    """Stages a body; values of enclosing transforms become inputs (``captured``)."""

    __slots__ = ("captured", "lifted")
    kind = "a control-flow body"

    def __init__(self, *, exact: bool) -> None:
        super().__init__(exact=exact)
        #: The enclosing transforms' values the body read, in input order.
        self.captured: list[Any] = []
        self.lifted: dict[int, StagingTracer] = {}

    def _foreign(self, value: Any) -> bool:
        return isinstance(value, Tracer) and value._trace is not self

    def _capture(self, value: Any) -> Var:
        var = self._const_ids.get(id(value))
        if var is None:
            var = self._const_ids[id(value)] = var_for(example_value(value))
            self._captured.append(value)  # keeps its id unique while staging
            self.inputs.append(var)
            self.captured.append(value)
            if is_placeholder(value):
                self.tainted.add(var)
        return var

    def _lift(self, value: Any) -> StagingTracer:
        tracer = self.lifted.get(id(value))
        if tracer is None:
            tracer = self.lifted[id(value)] = StagingTracer(self, example_value(value),
                                                            self._capture(value))
        return tracer

    def _constant(self, value: Any) -> Var:
        if self._foreign(value):
            return self._capture(value)
        return super()._constant(value)

    def pure(self, value: Any) -> StagingTracer:
        if self._foreign(value):
            return self._lift(value)
        return super().pure(value)

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        args = tuple(self._lift(a) if self._foreign(a) else a for a in args)
        return super().process(prim, args, params)

    def _evaluate(self, prim: Primitive, values: list[Any], atoms: list[Atom],
                  params: dict[str, Any]) -> tuple[Any, bool]:
        # A body's staged values are examples, not results: what they warn about is moot,
        # and an operation that fails on them (the Cholesky factor, in a branch that is not
        # taken, of a matrix that is not positive definite) is tried on benign values.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return super()._evaluate(prim, values, atoms, params)
            except NeedsExactStaging:
                raise
            except Exception:
                benign = [_benign(v) for v in values]
                try:
                    return super()._evaluate(prim, benign, atoms, params)
                except Exception:
                    pass
                raise

    def _process_custom(self, call: Any, args: tuple[Any, ...]) -> Any:
        # Kept as one equation, so transforming the body later applies the user's rule.
        return list(custom_call_p.bind(*args, call=call))

    process_custom_vjp = _process_custom
    process_custom_jvp = _process_custom


def stage_body(fun: Callable[[list[Any]], Sequence[Any]], examples: Sequence[Any], *,
               name: str = "body", tainted: bool = False) -> tuple[Body, list[Any]]:
    """Stage ``fun`` (a list of inputs to a sequence of outputs) on ``examples``.

    Args:
        fun: The body over flat lists.
        examples: One concrete value per input (their shapes and dtypes are the body's).
        name: The body's name in generated code.
        tainted: Whether ``examples`` derive from placeholders of an enclosing ``jit``
            (then an operation failing on them asks that ``jit`` to stage exactly).

    Returns:
        ``(body, captured)``: the body, whose inputs are ``examples``' followed by one per
        captured value, and the captured values of enclosing transforms.

    Raises:
        NeedsExactStaging: An operation failed on values derived from placeholders of an
            enclosing ``jit``.
    """
    try:
        return _stage_body(fun, examples, name, tainted, exact=False)
    except NeedsExactStaging:
        # A nested loop's placeholders broke an operation: run nested loops this time.
        return _stage_body(fun, examples, name, tainted, exact=True)


def _stage_body(fun: Callable[[list[Any]], Sequence[Any]], examples: Sequence[Any], name: str,
                tainted: bool, exact: bool) -> tuple[Body, list[Any]]:
    trace = BodyTrace(exact=exact)
    inputs = [trace.new_input(e) for e in examples]
    if tainted:
        trace.tainted.update(t.var for t in inputs)
    outs = list(trace.run(fun, list(inputs)))
    atoms = [trace.atom(o) for o in outs]
    out_examples = [o.value if type(o) is StagingTracer and o._trace is trace
                    else example_value(o) for o in outs]
    program = Program(trace.inputs, trace.constants, trace.equations, atoms)
    captured = trace.captured
    # The name becomes a function's in generated code, so it is made of ASCII letters,
    # digits and underscores only: ``scan_<lambda>`` is no identifier, and Python
    # NFKC-normalises the identifiers it compiles (``µ`` reads back as ``μ``, ``ﬁ`` as
    # ``fi``), so a name holding such letters would not be found after ``exec``.
    identifier = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not identifier or identifier[0].isdigit():
        identifier = f"body_{identifier}"
    body = Body(program, [*examples, *(example_value(c) for c in captured)], out_examples,
                f"{identifier}_{next(_names)}")
    return body, captured


def _benign(value: Any) -> Any:
    """An example value no function fails on: identity matrices for floating square
    matrices, ones otherwise (arrays only)."""
    if isinstance(value, Tracer) or not hasattr(value, "shape") or not differentiable(value):
        return value
    xp = namespace_for_args((value,))
    shape = tuple(value.shape)
    if len(shape) >= 2 and shape[-1] == shape[-2]:
        return xp.broadcast_to(xp.eye(shape[-1], dtype=value.dtype), shape)
    return xp.ones(shape, dtype=value.dtype)


def differentiable(value: Any) -> bool:
    """Whether ``value`` (an example) has a floating dtype, so it carries a derivative."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return isinstance(value, float | complex)
    return is_inexact(dtype)


def jvp_of(body: Body, nonzero: Sequence[bool], select: Sequence[bool] | None = None
           ) -> tuple[Body, list[bool]]:
    """The body that pushes tangents through ``body``.

    Args:
        body: The body.
        nonzero: Per input, whether it has a tangent (others are symbolic zeros).
        select: Per output, whether the new body returns its tangent (a zero tangent is
            materialised). By default, the outputs whose tangent is not a symbolic zero.

    Returns:
        ``(jvp_body, nonzero_out)``: ``jvp_body`` takes the primal inputs, then the
        tangents of the ``nonzero`` inputs, and returns the primal outputs, then the
        selected tangents; ``nonzero_out`` tells which output tangents are not symbolic
        zeros.
    """
    n = len(body.examples)
    found: list[list[bool]] = []

    def fun(flat: list[Any]) -> list[Any]:
        trace = JVPTrace()
        tangents = iter(flat[n:])
        inputs = [JVPTracer(trace, p, next(tangents) if nz else None)
                  for p, nz in zip(flat[:n], nonzero, strict=True)]
        outs = trace.run(lambda xs: body(*xs), inputs)
        primals, tangent_outs = [], []
        for o in outs:
            mine = type(o) is JVPTracer and o._trace is trace
            primals.append(o.primal if mine else o)
            tangent_outs.append(o.tangent if mine else None)
        nz_out = [t is not None for t in tangent_outs]
        found.append(nz_out)
        chosen = nz_out if select is None else select
        return [*primals, *(array_functions.zeros_like(p) if t is None else t
                            for p, t, keep in zip(primals, tangent_outs, chosen, strict=True)
                            if keep)]

    tangent_examples = [e for e, nz in zip(body.examples, nonzero, strict=True) if nz]
    staged, captured = stage_body(fun, [*body.examples, *tangent_examples], name=body.name)
    assert not captured, "a body's evaluation reads no enclosing transform"
    return staged, found[-1]


def batch_of(body: Body, batched: Sequence[bool], size: int, force: Sequence[bool] = ()
             ) -> tuple[Body, list[bool]]:
    """The body applied to a batch of ``size`` along axis 0 of the ``batched`` inputs.

    Returns:
        ``(batched_body, batched_out)``: outputs marked in ``batched_out`` (those that vary
        across the batch, and those in ``force``) have the batch axis first.
    """
    n_out = len(body.out_examples)
    force = list(force) or [False] * n_out
    found: list[list[bool]] = []

    def fun(flat: list[Any]) -> list[Any]:
        results = vmap_flat(lambda xs: body(*xs), flat, [0 if b else None for b in batched],
                            size)
        outs, flags = [], []
        for (value, bdim), forced in zip(results, force, strict=True):
            flags.append(bdim is not None or forced)
            outs.append(move_bdim(value, bdim, 0, size) if flags[-1] else value)
        found.append(flags)
        return outs

    examples = [_stacked(e, size) if b else e
                for e, b in zip(body.examples, batched, strict=True)]
    staged, captured = stage_body(fun, examples, name=body.name)
    assert not captured, "a body's evaluation reads no enclosing transform"
    return staged, found[-1]


def _stacked(example: Any, size: int) -> Any:
    xp = namespace_for_args((example,))
    example = xp.asarray(example)
    return xp.broadcast_to(xp.expand_dims(example, axis=0), (size, *example.shape))
