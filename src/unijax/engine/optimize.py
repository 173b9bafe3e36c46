"""Optimisation passes over a staged :class:`~unijax.engine.ir.Program`.

Each pass is a pure ``Program -> Program`` function; :func:`optimize` runs them to a fixed
point. Every rewrite is exact: it never changes a result's value, shape or dtype. Because
every var carries the concrete shape and dtype it had while staging, a simplification such
as ``x * 1 -> x`` is applied only when the result's shape and dtype equal ``x``'s, which
rules out broadcasting and type promotion without any abstract evaluation.

Because ``jit(grad(f))`` stages the forward and backward passes as one program, CSE also
merges recomputations across them (``cos(x)`` of the forward pass reused by the VJP of
``sin``).

Passes assume primitives are pure (no side effects, same inputs give the same outputs),
which holds for the Array API standard's functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from unijax.engine.core import Tracer, bind, namespace_for_value
from unijax.engine.ir import Atom, Equation, Literal, Program, Var, dtype_kind

__all__ = ["PASSES", "ScalarConstants", "cse", "dce", "fold_constants", "optimize", "simplify"]


def _subst(env: dict[Var, Atom], atoms: tuple[Atom, ...]) -> tuple[Atom, ...]:
    if not env:
        return atoms
    return tuple(env.get(a, a) if isinstance(a, Var) else a for a in atoms)


def _outputs(env: dict[Var, Atom], program: Program) -> list[Atom]:
    return [env.get(a, a) if isinstance(a, Var) else a for a in program.outputs]


# --- dead-code elimination ------------------------------------------------------------------


def dce(program: Program) -> Program:
    """Drop equations and constants that no output depends on.

    Inputs are kept even when unused: they are the compiled function's signature.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> def f(xs):
        ...     unused = ops.cos(xs[0])
        ...     return [ops.sin(xs[0])]
        >>> program, _ = stage(f, [np.zeros(2)])
        >>> len(program), len(dce(program))
        (2, 1)
    """
    live = {a for a in program.outputs if isinstance(a, Var)}
    kept: list[Equation] = []
    for eqn in reversed(program.equations):
        if any(v in live for v in eqn.outputs):
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    kept.reverse()
    constants = {v: c for v, c in program.constants.items() if v in live}
    return program.replace(equations=kept, constants=constants)


# --- common-subexpression elimination -------------------------------------------------------


def cse(program: Program) -> Program:
    """Merge equations that apply the same primitive to the same inputs and params.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.sin(xs[0]) + ops.sin(xs[0])], [np.zeros(2)])
        >>> program.primitive_counts(), cse(program).primitive_counts()
        ({'sin': 2, 'add': 1}, {'sin': 1, 'add': 1})
    """
    env: dict[Var, Atom] = {}
    seen: dict[tuple[Any, ...], Equation] = {}
    kept: list[Equation] = []
    for eqn in program.equations:
        eqn = eqn.replace(_subst(env, eqn.inputs))
        key = eqn.key()
        prev = seen.get(key)
        if prev is None:
            seen[key] = eqn
            kept.append(eqn)
        else:
            for out, same in zip(eqn.outputs, prev.outputs, strict=True):
                env[out] = same
    return program.replace(equations=kept, outputs=_outputs(env, program))


# --- algebraic simplification ---------------------------------------------------------------

# f(f(x)) == x exactly for every dtype these accept.
_INVOLUTIONS = frozenset({"negative", "matrix_transpose", "logical_not", "bitwise_invert",
                          "conj"})
_ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide"})
# f(x) == x whenever the result has x's shape and dtype.
_IDENTITY_IF_SAME_TYPE = frozenset({"reshape", "broadcast_to", "astype", "positive"})


class ScalarConstants:
    """Reads the scalar value of literals and uniform constant arrays (cached per var)."""

    def __init__(self, constants: dict[Var, Any]) -> None:
        self.constants = constants
        self._cache: dict[Var, tuple[Any, bool] | None] = {}

    def scalar(self, atom: Atom) -> tuple[Any, bool] | None:
        """``(value, sign_bit)`` if every element of ``atom`` equals one real scalar."""
        if isinstance(atom, Literal):
            v = atom.value
            if type(v) in (bool, int, float):
                return v, math.copysign(1.0, v) < 0
            return None
        if atom not in self.constants:
            return None
        if atom not in self._cache:
            self._cache[atom] = _uniform(self.constants[atom], atom)
        return self._cache[atom]


_PYTHON_TYPE = {"bool": bool, "integral": int, "real floating": float}


def _uniform(value: Any, var: Var) -> tuple[Any, bool] | None:
    kind = dtype_kind(var.dtype)
    convert = _PYTHON_TYPE.get(kind)
    if convert is None or isinstance(value, Tracer) or _is_lazy(value):
        return None
    try:
        if var.shape:
            xp = namespace_for_value(value)
            flat = xp.reshape(value, (-1,))
            if flat.shape[0] == 0 or not bool(xp.all(value == flat[0])):
                return None
            if kind == "real floating":
                signs = xp.signbit(value)
                if bool(xp.any(signs)) != bool(xp.all(signs)):
                    return None  # 0.0 mixed with -0.0 is not one scalar for addition
            value = flat[0]
        v = convert(value)
    except Exception:  # any backend quirk just means "not provably uniform"
        return None
    return v, math.copysign(1.0, v) < 0


def _is_lazy(value: Any) -> bool:
    # Reading a lazy array's values (a dask graph) would compute it while compiling: a
    # jit call never runs work the user did not ask for.
    if type(value) in (bool, int, float, complex):
        return False
    from array_api_compat import is_lazy_array  # deferred: importing unijax imports none

    return bool(is_lazy_array(value))


def _is_one(c: tuple[Any, bool] | None) -> bool:
    return c is not None and c[0] == 1


def _is_zero(c: tuple[Any, bool] | None, kind: str, negative: bool) -> bool:
    # x + (-0.0) and x - 0.0 are exact for floats; x + 0.0 is not (-0.0 + 0.0 == +0.0).
    if c is None or c[0] != 0:
        return False
    return kind == "integral" or (kind == "real floating" and c[1] == negative)


def _rewrite(eqn: Equation, producer: dict[Var, Equation],
             consts: ScalarConstants) -> Atom | Equation | None:
    """A simpler replacement for ``eqn``'s single output (an atom or an equation), if any."""
    prim = eqn.primitive
    if prim.multiple_results or prim.namespace:
        return None
    name, ins, out = prim.name, eqn.inputs, eqn.outputs[0]

    def same(a: Atom) -> bool:
        return isinstance(a, Var) and a.shape == out.shape and a.dtype == out.dtype

    if len(ins) == 2:
        if name not in _ARITHMETIC:
            return None
        kind = dtype_kind(out.dtype)
        if kind == "complex floating":
            return None  # complex x * (1+0j) is not exact: inf * 0 = nan in cross terms
        x, y = ins
        if name == "multiply":
            if same(x) and _is_one(consts.scalar(y)):
                return x
            if same(y) and _is_one(consts.scalar(x)):
                return y
        elif name == "divide":
            if same(x) and _is_one(consts.scalar(y)):
                return x
        elif name == "add":
            if same(x) and _is_zero(consts.scalar(y), kind, negative=True):
                return x
            if same(y) and _is_zero(consts.scalar(x), kind, negative=True):
                return y
        elif same(x) and _is_zero(consts.scalar(y), kind, negative=False):  # subtract
            return x
        return None
    if len(ins) != 1:
        return None
    (x,) = ins
    if name in _IDENTITY_IF_SAME_TYPE and same(x):
        return x
    inner = producer.get(x) if isinstance(x, Var) else None
    if inner is None or inner.primitive is not prim or len(inner.inputs) != 1:
        return None
    (w,) = inner.inputs
    if name in _INVOLUTIONS or (name == "permute_dims" and _composes_to_identity(inner, eqn)):
        return w if same(w) else None
    if name == "reshape":
        # Reshapes read elements in C order, so two in a row are one from the start.
        return Equation(prim, (w,), eqn.params, eqn.outputs)
    return None


def _composes_to_identity(first: Equation, second: Equation) -> bool:
    p, q = first.params.get("axes"), second.params.get("axes")
    if p is None or q is None or len(p) != len(q):
        return False
    return all(p[q[i]] == i for i in range(len(q)))


def simplify(program: Program) -> Program:
    """Apply exact algebraic identities.

    ``x*1``, ``1*x``, ``x/1``, ``x-0``, ``x+0`` and ``0+x`` (for floats only with ``-0.0``,
    since ``-0.0 + 0.0`` is ``+0.0``), ``negative(negative(x))`` and other involutions,
    ``permute_dims`` twice composing to the identity, ``reshape``/``broadcast_to``/
    ``astype`` to the operand's own shape and dtype, and ``reshape(reshape(x))`` ->
    ``reshape(x)``. Each applies only where the result's shape and dtype equal the kept
    operand's. The ones and zeros may be literals or constant arrays with one value
    throughout. A program output is never replaced by a program input, so the compiled
    function never returns its argument where the original returned a fresh array.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.sin(xs[0]) * 1.0 - 0.0], [np.zeros(2)])
        >>> len(program), len(dce(simplify(program)))
        (3, 1)
    """
    env: dict[Var, Atom] = {}
    producer: dict[Var, Equation] = {}
    consts = ScalarConstants(program.constants)
    outputs = {a for a in program.outputs if isinstance(a, Var)}
    inputs = set(program.inputs)
    kept: list[Equation] = []
    for eqn in program.equations:
        eqn = eqn.replace(_subst(env, eqn.inputs))
        new = _rewrite(eqn, producer, consts)
        while isinstance(new, Equation):  # a rewritten equation may simplify further
            eqn = new
            new = _rewrite(eqn, producer, consts)
        if new is not None and not (eqn.outputs[0] in outputs and new in inputs):
            env[eqn.outputs[0]] = new
            continue
        kept.append(eqn)
        for v in eqn.outputs:
            producer[v] = eqn
    return program.replace(equations=kept, outputs=_outputs(env, program))


# --- constant folding -----------------------------------------------------------------------


def fold_constants(program: Program) -> Program:
    """Evaluate equations whose inputs are all constants; their outputs become constants.

    Staging never records such equations, but other passes can create them (and
    hand-built programs may contain them). An equation that fails to evaluate is kept,
    so its error surfaces when the program runs, as it would without folding.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.ir import Equation, Program, Var
        >>> from unijax.engine.core import PRIMITIVES
        >>> from unijax.engine.namespace import array_functions as ops
        >>> _ = ops.sin  # registers the primitives
        >>> c, y = Var((2,), np.dtype("float64")), Var((2,), np.dtype("float64"))
        >>> p = Program([], {c: np.zeros(2)}, [Equation(PRIMITIVES["sin"], (c,), {}, (y,))],
        ...             [y])
        >>> folded = fold_constants(p)
        >>> len(folded), folded.constants[y]
        (0, array([0., 0.]))
    """
    constants = dict(program.constants)
    kept: list[Equation] = []
    for eqn in program.equations:
        values = []
        for a in eqn.inputs:
            if isinstance(a, Literal):
                values.append(a.value)
            elif a in constants and not isinstance(constants[a], Tracer):
                values.append(constants[a])
            else:
                break
        else:
            try:
                out = bind(eqn.primitive, tuple(values), eqn.params)
            except Exception:  # the run-time error is the one the user should see
                kept.append(eqn)
                continue
            outs = tuple(out) if eqn.primitive.multiple_results else (out,)
            constants.update(zip(eqn.outputs, outs, strict=True))
            continue
        kept.append(eqn)
    if len(kept) == len(program.equations):
        return program
    return program.replace(equations=kept, constants=constants)


# --- the pipeline ---------------------------------------------------------------------------

#: The passes :func:`optimize` runs, in order, each round.
PASSES: tuple[Callable[[Program], Program], ...] = (cse, simplify, fold_constants, dce)


def optimize(program: Program, *, max_rounds: int = 8) -> Program:
    """Run :data:`PASSES` until the program stops changing (at most ``max_rounds`` rounds).

    Args:
        program: A staged program.
        max_rounds: A bound on the rounds, for safety; two or three usually suffice.

    Returns:
        An equivalent program with at most as many equations.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [-(-ops.sin(xs[0]))], [np.zeros(2)])
        >>> print(optimize(program))
        { lambda ; a:f64[2] . let
            b:f64[2] = sin a
          in (b,) }
    """
    for _ in range(max_rounds):
        new = program
        for run_pass in PASSES:
            new = run_pass(new)
        if _same(new, program):
            return new
        program = new
    return program


def _same(a: Program, b: Program) -> bool:
    return (len(a.equations) == len(b.equations)
            and all(x is y for x, y in zip(a.equations, b.equations, strict=True))
            and all(x is y or x == y for x, y in zip(a.outputs, b.outputs, strict=True))
            and a.constants.keys() == b.constants.keys())
