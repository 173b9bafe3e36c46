"""Running a scan body on concrete arrays: a prelude, a batched pre-pass, one loop.

:class:`ScanRunner` is what the ``scan`` primitive's evaluation calls (see
:mod:`unijax.engine.rules.loops`). It splits the body's program by what each equation
depends on, batches the part that does not depend on the carry over every iteration at
once, and writes the remaining loop out as one generated Python function.
"""

from __future__ import annotations

import math
from typing import Any

from unijax.engine.ir import Program, Var, dtype_name, var_names
from unijax.engine.lower import (
    RESERVED_NAMES,
    SourceGlobals,
    compile_python,
    equation_line,
    is_source_identifier,
)
from unijax.engine.optimize import optimize
from unijax.engine.subprogram import (
    Body,
    batch_of,
    custom_call_p,
    eval_program,
    hoist,
    split_by_dependence,
)

__all__ = ["PREPASS_BUDGET", "ScanRunner", "nbytes"]


#: The most bytes a scan's pre-pass may stack (see :class:`ScanRunner`).
PREPASS_BUDGET = 64 * 2**20


def nbytes(var: Var) -> int:
    """The bytes of an array of ``var``'s shape and dtype."""
    bits = "".join(ch for ch in dtype_name(var.dtype) if ch.isdigit())
    return math.prod(var.shape) * (int(bits) // 8 if bits else 8)


def _split_carry_independent(program: Program, n_inv: int, n_carry: int
                             ) -> tuple[Program, Program, list[int]]:
    """Split a loop step (inputs: invariants, carry, per-iteration values) into the
    equations that do not depend on the carry (a pre-pass that can run for every iteration
    at once) and the rest. Returns ``(pre, loop, used_xs)``: ``pre`` maps (invariants,
    per-iteration values) to what the loop reads of it; ``loop`` takes (invariants, carry,
    the per-iteration values it reads, at ``used_xs``, then ``pre``'s outputs)."""
    inv = program.inputs[:n_inv]
    carry = program.inputs[n_inv:n_inv + n_carry]
    xs = program.inputs[n_inv + n_carry:]
    # A custom rule stays in the loop: its user functions are not batched here.
    pre_eqns, loop_eqns, pre_outs = split_by_dependence(
        program, carry, pinned=lambda eqn: eqn.primitive is custom_call_p)
    read_set = {a for eqn in loop_eqns for a in eqn.inputs if isinstance(a, Var)}
    read_set.update(a for a in program.outputs if isinstance(a, Var))
    used_xs = [j for j, x in enumerate(xs) if x in read_set]
    pre = Program([*inv, *xs], program.constants, pre_eqns, pre_outs)
    loop = Program([*inv, *carry, *(xs[j] for j in used_xs), *pre_outs], program.constants,
                   loop_eqns, program.outputs)
    return pre, loop, used_xs


def _compile_loop(program: Program, xp: Any, n_inv: int, n_carry: int, name: str) -> Any:
    """Generate the whole loop of a scan step as one Python function.

    ``loop(*invariants, *carry, *stacked, length, reverse) -> [*carry, *columns]`` runs
    ``program`` (inputs: invariants, carry, one row of each stacked input) once per row,
    with the equations written out inside the ``for`` statement: no call, argument list
    or result list per iteration, which on small arrays costs as much as the arithmetic.
    """
    if not is_source_identifier(name):  # user text never becomes source (see lower.py)
        name = "scan_loop"
    reserved = RESERVED_NAMES | {name, "i", "length", "reverse"}
    names = var_names(program, reserved=reserved)
    glob = SourceGlobals(xp)
    for var, value in program.constants.items():
        glob.namespace[names[var]] = value
    inputs = program.inputs
    inv = [names[v] for v in inputs[:n_inv]]
    carry = [names[v] for v in inputs[n_inv:n_inv + n_carry]]
    rows = [names[v] for v in inputs[n_inv + n_carry:]]
    stacked = [f"_stacked{k}" for k in range(len(rows))]
    outs = program.outputs

    def atom(a: Any) -> str:
        return names[a] if isinstance(a, Var) else glob.value(a.value)

    columns = [f"_column{k}" for k in range(len(outs) - n_carry)]
    args = ", ".join([*inv, *carry, *stacked, "length", "reverse"])
    lines = [f"def {name}({args}):"]
    lines += [f"    {c} = [None] * length" for c in columns]
    lines.append("    for i in (range(length - 1, -1, -1) if reverse else range(length)):")
    lines += [f"        {r} = {s}[i, ...]" for r, s in zip(rows, stacked, strict=True)]
    lines += [f"        {equation_line(eqn, names, xp, glob)}" for eqn in program.equations]
    # The ys first: one may be the carry this iteration received.
    lines += [f"        {c}[i] = {atom(a)}" for c, a in zip(columns, outs[n_carry:], strict=True)]
    if carry:
        lines.append(f"        {', '.join(carry)}, = {', '.join(atom(a) for a in outs[:n_carry])},")
    finals = [f"xp.asarray({c}, copy=True)" if isinstance(a, Var) and a in program.constants
              else c for c, a in zip(carry, outs[:n_carry], strict=True)]
    lines.append(f"    return [{', '.join([*finals, *columns])}]")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<unijax {name}>", "exec"), glob.namespace)
    fn = glob.namespace[name]
    fn.source = source
    return fn


class ScanRunner:
    """A scan body, compiled for running on concrete arrays of namespace ``xp``.

    Three parts: a prelude, run once, computes what depends only on the constants
    (loop-invariant code); a pre-pass computes what depends on the per-iteration inputs
    but not on the carry for every iteration at once, batched along the scan axis (in a
    backward scan, the recomputed forward iteration and its local derivatives); the loop
    runs the rest, one iteration at a time. The pre-pass is skipped when what it would
    stack exceeds :data:`PREPASS_BUDGET`.
    """

    def __init__(self, body: Body, xp: Any, nc: int, ncar: int, consts: list[Any],
                 xs: list[Any], length: int) -> None:
        prelude, step = hoist(optimize(body.program), nc)
        self.prelude = compile_python(prelude, xp, name=f"{body.name}_prelude")
        n_inv = nc + len(prelude.outputs)
        pre, loop, used = _split_carry_independent(step, n_inv, ncar)
        stacked = length * sum(nbytes(v) for v in pre.outputs if isinstance(v, Var))
        self.pre: Any = None
        if pre.equations and length > 1 and stacked <= PREPASS_BUDGET:
            invariants = [*consts, *self.prelude(*consts)]
            rows = [x[0, ...] for x in xs]
            pre_body = Body(pre, [*invariants, *rows], eval_program(pre, [*invariants, *rows]),
                            f"{body.name}_pre")
            batched, _ = batch_of(pre_body, [False] * n_inv + [True] * len(rows), length,
                                  force=[True] * len(pre.outputs))
            self.pre = batched.compiled(xp)
            self.used = used
        else:
            loop = step
            self.used = list(range(len(xs)))
        self.loop = _compile_loop(loop, xp, n_inv, ncar, body.name)

    def __call__(self, consts: list[Any], carry: list[Any], xs: list[Any], length: int,
                 reverse: bool) -> tuple[list[Any], list[list[Any]]]:
        invariants = [*consts, *self.prelude(*consts)]
        per_step = [xs[j] for j in self.used]
        if self.pre is not None:
            per_step += self.pre(*invariants, *xs)
        out = self.loop(*invariants, *carry, *per_step, length, reverse)
        return out[:len(carry)], out[len(carry):]
