"""Running a staged :class:`~unijax.engine.ir.Program` with a concrete namespace ``xp``.

Two lowerings, both ``lower(program, xp) -> callable(*flat_inputs) -> list of outputs``
(the signature of a backend plugin's ``compiler`` hook):

* :func:`interpret` walks the equations, calling ``prim.impl_for(xp)`` for each. It works
  for any program and is the fallback for a backend without a compiler.
* :func:`compile_python` generates straight-line Python source, one line per equation
  calling the namespace function directly, and ``exec``\\ s it, so the engine's dispatch
  (tracers, ``bind``, rule lookup, even the interpreter loop) is gone at run time. NumPy's
  plugin uses it as its compiler.

Outputs that are program constants are returned as copies: the program keeps its
constants for every later call, so handing out the stored array would let a caller that
writes into its result corrupt the next call's result.
"""

from __future__ import annotations

import builtins
import itertools
import keyword
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from unijax.engine.buffers import BufferPlan, BufferSupport, OutForm, OutKind, plan_buffers
from unijax.engine.core import Primitive, bind
from unijax.engine.ir import Atom, Equation, Literal, Program, Var, var_names, weak_value

__all__ = [
    "RESERVED_NAMES",
    "Executable",
    "SourceGlobals",
    "compile_python",
    "equation_line",
    "function_text",
    "interpret",
    "is_source_identifier",
    "param_operands",
]


class Executable(Protocol):
    """What a lowering returns: ``executable(*flat_inputs) -> list of outputs``."""

    program: Program
    #: The generated Python source, or ``None`` for the interpreter.
    source: str | None

    def __call__(self, *args: Any) -> list[Any]: ...


def _is_array_constant(program: Program, atom: Atom) -> bool:
    # Only arrays need copying out: Python scalars are immutable.
    return isinstance(atom, Var) and hasattr(program.constants.get(atom), "shape")


# --- weakly typed scalars -------------------------------------------------------------------


def _is_weak(eqn: Equation) -> bool:
    return not eqn.primitive.multiple_results and eqn.outputs[0].weak


def _weak_impl(prim: Primitive) -> Callable[..., Any]:
    """Evaluate as staging did: Python scalars in, a Python scalar out (see ``weak_value``)."""

    def weak(*args: Any, **params: Any) -> Any:
        return weak_value(bind(prim, args, params))

    weak.__name__ = f"weak_{prim.name}"
    return weak


# --- the interpreter ------------------------------------------------------------------------


_GENERAL, _UNARY, _BINARY = 0, 1, 2


class Interpreted:
    """A program run by walking its equations (see :func:`interpret`)."""

    __slots__ = ("_copy", "_env", "_n_inputs", "_outputs", "_steps", "program", "source")

    def __init__(self, program: Program, xp: Any) -> None:
        self.program = program
        self.source: str | None = None
        # Every value lives in a slot of one list: inputs first, then constants and
        # literals (filled once, here), then equation outputs. Each call copies the list
        # and indexes it, which is cheaper than hashing vars into a dict.
        slots: dict[Any, int] = {v: i for i, v in enumerate(program.inputs)}
        env: list[Any] = [None] * len(program.inputs)

        def slot(atom: Atom) -> int:
            key = atom if isinstance(atom, Var) else ("literal", id(atom), atom)
            i = slots.get(key)
            if i is None:
                i = slots[key] = len(env)
                env.append(atom.value if isinstance(atom, Literal)
                           else program.constants.get(atom))
            return i

        for v in program.constants:
            slot(v)
        # Resolve every implementation now: a missing function fails at compile time, and
        # each call does no lookups. Common shapes of call get their own step kind: a
        # generic ``fn(*[...], **params)`` costs more than the NumPy op on small arrays.
        self._steps: list[tuple[int, Any, Any, Any, dict[str, Any], Any]] = []
        for eqn in program.equations:
            fn = _weak_impl(eqn.primitive) if _is_weak(eqn) else eqn.primitive.impl_for(xp)
            ins = [slot(a) for a in eqn.inputs]
            outs = [slot(v) for v in eqn.outputs]
            if eqn.primitive.multiple_results:
                self._steps.append((_GENERAL, fn, ins, None, eqn.params, outs))
            elif len(ins) == 1:
                self._steps.append((_UNARY, fn, ins[0], None, eqn.params, outs[0]))
            elif len(ins) == 2 and not eqn.params:
                self._steps.append((_BINARY, fn, ins[0], ins[1], eqn.params, outs[0]))
            else:
                self._steps.append((_GENERAL, fn, ins, None, eqn.params, outs[0]))
        self._outputs = [(slot(a), _is_array_constant(program, a)) for a in program.outputs]
        self._env = env
        self._n_inputs = len(program.inputs)
        self._copy = xp.asarray

    def __call__(self, *args: Any) -> list[Any]:
        if len(args) != self._n_inputs:
            raise TypeError(f"the program takes {self._n_inputs} inputs, got {len(args)}")
        env = self._env.copy()
        env[: self._n_inputs] = args
        for kind, fn, a, b, params, out in self._steps:
            if kind == _BINARY:
                env[out] = fn(env[a], env[b])
            elif kind == _UNARY:
                env[out] = fn(env[a], **params) if params else fn(env[a])
            elif isinstance(out, list):  # multiple results
                for i, o in zip(out, fn(*[env[i] for i in a], **params), strict=True):
                    env[i] = o
            else:
                env[out] = fn(*[env[i] for i in a], **params)
        return [self._copy(env[i], copy=True) if constant else env[i]
                for i, constant in self._outputs]


def interpret(program: Program, xp: Any) -> Interpreted:
    """Run ``program`` with namespace ``xp`` by walking its equations.

    Args:
        program: The program.
        xp: The concrete Array-API namespace to compute with.

    Returns:
        A callable ``f(*flat_inputs) -> list of outputs`` (``f.source`` is ``None``).

    Example:
        >>> import numpy as np
        >>> import array_api_compat.numpy as xp
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.sin(xs[0]) * xs[1]], [np.zeros(2), 2.0])
        >>> interpret(program, xp)(np.asarray([0.0, np.pi / 2]), 3.0)
        [array([0., 3.])]
    """
    return Interpreted(program, xp)


# --- the Python code generator --------------------------------------------------------------

RESERVED_NAMES = frozenset(dir(builtins)) | {"xp"}
"""Names generated code must not give its variables (builtins, and ``xp`` for the namespace)."""
_compile_ids = itertools.count()


def is_source_identifier(name: str) -> bool:
    """Whether ``name`` can be written into generated source as itself.

    Only plain ASCII identifiers qualify: text is never source. A primitive's name or a
    function's ``__name__`` is user data (``Primitive("f(0) or evil()")`` is a valid
    name), and Python normalises non-ASCII identifiers (NFKC: ``µ`` becomes ``μ``, ``ﬁ``
    becomes ``fi``), so a non-ASCII name written as ``def µ()`` would be stored under
    another key than the one the generator looks up.

    Example:
        >>> is_source_identifier("sin"), is_source_identifier("µ"), is_source_identifier("a b")
        (True, False, False)
    """
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


#: The names ``ir.var_names`` gives constants.
_CONSTANT_NAME = re.compile(r"c[0-9]+")


def _name_part(text: str) -> str:
    """``text`` reduced to characters that may appear inside a generated identifier."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in text)


def _source_literal(value: Any) -> str | None:
    """Source text that evaluates to an equal value of the same type, or ``None``."""
    tp = type(value)
    if value is None or tp is bool or tp is int or tp is str:
        return repr(value)
    if tp is float:
        return repr(value) if math.isfinite(value) else None
    if tp is complex:
        # Not repr(value): "-0j" evaluates to (-0-0j), losing the real part's sign.
        if math.isfinite(value.real) and math.isfinite(value.imag):
            return f"complex({value.real!r}, {value.imag!r})"
        return None
    if tp is tuple or tp is list:
        parts = [_source_literal(v) for v in value]
        if any(p is None for p in parts):
            return None
        text = ", ".join(parts)  # type: ignore[arg-type]
        if tp is tuple:
            return f"({text}{',' if len(parts) == 1 else ''})"
        return f"[{text}]"
    if tp is slice:
        parts = [_source_literal(v) for v in (value.start, value.stop, value.step)]
        if any(p is None for p in parts):
            return None
        return f"slice({', '.join(parts)})"  # type: ignore[arg-type]
    return None


class SourceGlobals:
    """The generated function's globals: values without a literal form get a name."""

    def __init__(self, xp: Any) -> None:
        self.namespace: dict[str, Any] = {"xp": xp, "__builtins__": builtins}
        self._by_id: dict[int, str] = {}
        self._count = itertools.count()

    def bind(self, value: Any, prefix: str) -> str:
        """The global name of ``value``: ``_<prefix><n>``, ``prefix`` kept to ``[A-Za-z0-9_]``."""
        name = self._by_id.get(id(value))
        if name is None:
            name = self._by_id[id(value)] = f"_{_name_part(prefix)}{next(self._count)}"
            self.namespace[name] = value
        return name

    def value(self, value: Any) -> str:
        text = _source_literal(value)
        return text if text is not None else self.bind(value, "p")


def function_text(eqn: Equation, xp: Any, glob: SourceGlobals) -> str:
    """Source text naming the function that evaluates ``eqn`` with ``xp`` (``xp.sin``)."""
    prim = eqn.primitive
    if _is_weak(eqn):
        return glob.bind(_weak_impl(prim), "weak_" + prim.qualname + "_")
    impl = prim.impl_for(xp)  # resolves (and validates) the function now
    if prim.custom_impl is None and is_source_identifier(prim.name) and \
            (not prim.namespace or is_source_identifier(prim.namespace)):
        return f"xp.{prim.namespace}.{prim.name}" if prim.namespace else f"xp.{prim.name}"
    # Any other name is data, not source: the function is reached through a global.
    return glob.bind(impl, "impl_" + prim.qualname + "_")


def param_operands(params: dict[str, Any], glob: SourceGlobals) -> list[str]:
    """Keyword operands for ``params``: ``axis=0``, or ``**_p0`` for names that are not
    plain identifiers (a parameter's name is data, never source)."""
    if all(is_source_identifier(k) for k in params):
        return [f"{k}={glob.value(v)}" for k, v in params.items()]
    return [f"**{glob.bind(dict(params), 'params')}"]


#: Primitives whose array operator the standard defines as the function, written as the
#: operator in generated code: a namespace's ``matmul`` may be a Python wrapper (NumPy's, in
#: array_api_compat) costing as much again as the product of two small arrays.
_INFIX = {"matmul": "@"}


def _infix(eqn: Equation, xp: Any) -> str | None:
    prim = eqn.primitive
    operator = _INFIX.get(prim.qualname)
    if operator is None or prim.custom_impl is not None or eqn.params or \
            len(eqn.inputs) != 2 or not all(isinstance(a, Var) for a in eqn.inputs):
        return None
    prim.impl_for(xp)  # validates the primitive as the plain path does
    return operator


def equation_line(eqn: Equation, names: dict[Var, str], xp: Any, glob: SourceGlobals) -> str:
    """One equation as a line of source, ``d = xp.add(b, c)`` (no indentation)."""

    def atom(a: Atom) -> str:
        return names[a] if isinstance(a, Var) else glob.value(a.value)

    infix = _infix(eqn, xp)
    if infix is not None:
        return f"{names[eqn.outputs[0]]} = {atom(eqn.inputs[0])} {infix} {atom(eqn.inputs[1])}"
    operands = [atom(a) for a in eqn.inputs] + param_operands(eqn.params, glob)
    targets = ", ".join(names[v] for v in eqn.outputs)
    if eqn.primitive.multiple_results and len(eqn.outputs) == 1:
        targets += ","
    return f"{targets} = {function_text(eqn, xp, glob)}({', '.join(operands)})"


def _out_forms(program: Program, buffers: BufferSupport | None) -> dict[Equation, OutForm]:
    """The equations that can write into an existing array, with the function to call."""
    if buffers is None:
        return {}
    forms = {}
    for eqn in program.equations:
        prim = eqn.primitive
        # Params would be keyword arguments the ``out=`` function may not take alike.
        if prim.multiple_results or eqn.params or prim.custom_impl is not None or \
                _is_weak(eqn):
            continue
        form = buffers.out_form(prim)
        if form is not None:
            forms[eqn] = form
    return forms


def compile_python(program: Program, xp: Any, *, name: str = "compiled",
                   buffers: BufferSupport | None = None) -> Any:
    """Generate and ``exec`` straight-line Python source that runs ``program`` with ``xp``.

    Each equation becomes one line calling the namespace function directly
    (``c = xp.sin(a)``). Params are written as literals where ``repr`` round-trips and
    bound as globals otherwise; constants are globals ``c0, c1, ...``.

    With ``buffers`` (a backend with mutable arrays), large results are written into the
    buffers of values that are dead by then or into arrays kept between calls, and large
    values are released after their last use (see :mod:`unijax.engine.buffers`):
    ``d = _out_add_0(c, b, out=c)``, ``del c``.

    Args:
        program: The program.
        xp: The concrete Array-API namespace the code calls.
        name: The generated function's name (shown in tracebacks).
        buffers: How the backend's functions write into existing arrays, or ``None``
            for a backend whose arrays are immutable.

    Returns:
        The generated function ``f(*flat_inputs) -> list of outputs``, with the source
        in ``f.source`` and the program in ``f.program``.

    Example:
        >>> import numpy as np
        >>> import array_api_compat.numpy as xp
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.exp(ops.sin(xs[0]) * xs[1])],
        ...                    [np.zeros(3), 2.0])
        >>> f = compile_python(program, xp)
        >>> print(f.source, end="")
        def compiled(a, b):
            c = xp.sin(a)
            d = xp.multiply(c, b)
            e = xp.exp(d)
            return [e]
        >>> f(np.zeros(3), 1.0)
        [array([1., 1., 1.])]
    """
    # The name is the caller's text (a body's __name__): written only if it is a plain
    # identifier that no generated global can be (those start with "_"; constants are
    # c0, c1, ...).
    fn_name = name if is_source_identifier(name) and not name.startswith("_") and \
        name not in RESERVED_NAMES and not _CONSTANT_NAME.fullmatch(name) else "compiled"
    names = var_names(program, reserved=RESERVED_NAMES | {fn_name})
    glob = SourceGlobals(xp)
    for var, value in program.constants.items():
        glob.namespace[names[var]] = value

    def atom(a: Atom) -> str:
        return names[a] if isinstance(a, Var) else glob.value(a.value)

    forms = _out_forms(program, buffers)

    def kind(eqn: Equation) -> OutKind:
        form = forms.get(eqn)
        if form is not None:
            return "elementwise" if form.elementwise else "general"
        fresh = buffers is not None and eqn.primitive.custom_impl is None and \
            buffers.returns_new(eqn.primitive)
        return "new" if fresh else None

    plan = BufferPlan() if buffers is None else \
        plan_buffers(program, kind, min_bytes=buffers.min_bytes,
                     max_slot_bytes=buffers.max_slot_bytes)
    args = ", ".join(names[v] for v in program.inputs)
    lines = [f"def {fn_name}({args}):"]
    slots = [f"_s{k}" for k in range(len(plan.slots))]
    if slots:
        # The slots' arrays outlive the call; each concurrent call takes its own set.
        glob.namespace["_free_slots"] = []
        glob.namespace["_new_slots"] = _slot_allocator(plan.slots, xp)
        taken = ", ".join(slots) + ","
        lines += ["    try:", f"        {taken} = _free_slots.pop()",
                  "    except IndexError:", f"        {taken} = _new_slots()"]
    for i, eqn in enumerate(program.equations):
        operands = [atom(a) for a in eqn.inputs] + param_operands(eqn.params, glob)
        target = names[plan.out[i]] if i in plan.out else \
            slots[plan.slot[i]] if i in plan.slot else None
        infix = _infix(eqn, xp) if target is None else None
        if infix is not None:
            targets = ", ".join(names[v] for v in eqn.outputs)
            lines.append(f"    {targets} = {operands[0]} {infix} {operands[1]}")
            if i in plan.release:
                lines.append(f"    del {', '.join(names[v] for v in plan.release[i])}")
            continue
        if target is None:
            function = function_text(eqn, xp, glob)
        else:
            eqn.primitive.impl_for(xp)  # validates the primitive as the plain path does
            function = glob.bind(forms[eqn].function, "out_" + eqn.primitive.name + "_")
            operands.append(f"out={target}")
        targets = ", ".join(names[v] for v in eqn.outputs)
        if eqn.primitive.multiple_results and len(eqn.outputs) == 1:
            targets += ","
        lines.append(f"    {targets} = {function}({', '.join(operands)})")
        if i in plan.release:
            lines.append(f"    del {', '.join(names[v] for v in plan.release[i])}")
    if slots:
        lines.append(f"    _free_slots.append(({', '.join(slots)},))")
    results = [f"xp.asarray({atom(a)}, copy=True)" if _is_array_constant(program, a)
               else atom(a) for a in program.outputs]
    lines.append(f"    return [{', '.join(results)}]")
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<unijax {fn_name} #{next(_compile_ids)}>", "exec")
    exec(code, glob.namespace)
    fn = glob.namespace[fn_name]
    fn.source = source
    fn.program = program
    fn.buffer_plan = plan
    return fn


def _slot_allocator(slots: list[tuple[tuple[int, ...], Any]], xp: Any
                    ) -> Callable[[], tuple[Any, ...]]:
    def new_slots() -> tuple[Any, ...]:
        return tuple(xp.empty(shape, dtype=dtype) for shape, dtype in slots)

    return new_slots
