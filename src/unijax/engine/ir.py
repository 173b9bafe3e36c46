"""The engine's intermediate representation: a small, typed, straight-line program.

``jit`` stages a function into a :class:`Program`: input :class:`Var`\\ s, constants
(closed-over or constant-folded arrays), a list of :class:`Equation`\\ s (one primitive
application each) and the output atoms. Every :class:`Var` carries the concrete shape
and dtype it had while staging, so optimisation passes can check that a rewrite keeps
shapes and dtypes exactly, without any abstract-evaluation rules.

An *atom* is what an equation reads: a :class:`Var` or a :class:`Literal` (a Python
scalar or other non-array value written inline, such as the ``2.0`` in ``x * 2.0``).

Example:
    >>> from unijax.engine.core import PRIMITIVES, Primitive
    >>> sin_p = PRIMITIVES.get("sin") or Primitive("sin")
    >>> x = Var((3,), "float64")
    >>> y = Var((3,), "float64")
    >>> print(Program([x], {}, [Equation(sin_p, (x,), {}, (y,))], [y]))
    { lambda ; a:f64[3] . let
        b:f64[3] = sin a
      in (b,) }
"""

from __future__ import annotations

import itertools
import keyword
from collections.abc import Iterable, Sequence
from typing import Any

from unijax.engine.core import SCALAR_TYPES, Primitive

__all__ = [
    "Atom",
    "Equation",
    "Literal",
    "Program",
    "Var",
    "dtype_kind",
    "dtype_name",
    "freeze",
    "var_names",
    "weak_value",
]

_ids = itertools.count()


class Var:
    """A value of the program: its concrete shape and dtype at staging time.

    Vars compare and hash by identity. A Python scalar passed to ``jit`` is a *weak*
    input: its ``dtype`` is the Python type (``float``), so ``float32_array * s`` stays
    float32 exactly as it does eagerly.

    Args:
        shape: The shape (a tuple of ints).
        dtype: The backend's dtype object, or a Python scalar type for weak inputs.

    Example:
        >>> v = Var((2, 3), "float32")
        >>> v.shape, v.weak
        ((2, 3), False)
    """

    __slots__ = ("dtype", "id", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.id = next(_ids)
        self.shape = shape
        self.dtype = dtype

    @property
    def weak(self) -> bool:
        """Whether this stands for a Python scalar (weakly typed) rather than an array."""
        return isinstance(self.dtype, type) and self.dtype in SCALAR_TYPES

    @property
    def aval(self) -> str:
        """The type as printed: ``f64[3,2]`` (``float[]`` for a weak Python scalar)."""
        return f"{dtype_name(self.dtype)}[{','.join(str(d) for d in self.shape)}]"

    def __repr__(self) -> str:
        return f"Var(id={self.id}, {self.aval})"


class Literal:
    """A non-array value written inline in an equation (``2.0``, ``None``).

    Args:
        value: The value.

    Example:
        >>> Literal(2.0) == Literal(2.0), Literal(2.0) == Literal(2)
        (True, False)
    """

    __slots__ = ("key", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        # Type and repr both matter: 2 and 2.0 promote differently, -0.0 and 0.0 differ
        # in sign, and nan != nan would defeat CSE of identical literals.
        self.key = ("literal", freeze(value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Literal) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


Atom = Var | Literal
"""An operand of an equation: a variable of the program or a literal constant."""


class Equation:
    """``outputs = primitive(*inputs, **params)``.

    Args:
        primitive: The primitive applied.
        inputs: Its positional operands (atoms).
        params: Its keyword metadata, exactly as passed to ``bind``.
        outputs: The vars it defines (one, or several for a multiple-result primitive).

    Example:
        >>> from unijax.engine.core import PRIMITIVES, Primitive
        >>> sum_p = PRIMITIVES.get("sum") or Primitive("sum")
        >>> x, y = Var((4,), "float64"), Var((), "float64")
        >>> a = Equation(sum_p, (x,), {"axis": [0]}, (y,))
        >>> a.key() == Equation(sum_p, (x,), {"axis": [0]}, (Var((), "float64"),)).key()
        True
    """

    __slots__ = ("inputs", "outputs", "params", "primitive")

    def __init__(self, primitive: Primitive, inputs: tuple[Atom, ...], params: dict[str, Any],
                 outputs: tuple[Var, ...]) -> None:
        self.primitive = primitive
        self.inputs = inputs
        self.params = params
        self.outputs = outputs

    def replace(self, inputs: tuple[Atom, ...]) -> Equation:
        """The same equation reading ``inputs`` (``self`` when nothing changes)."""
        if inputs == self.inputs:  # vars compare by identity, literals by value
            return self
        return Equation(self.primitive, inputs, self.params, self.outputs)

    def key(self) -> tuple[Any, ...]:
        """A hashable key equal for equations that compute the same values (for CSE)."""
        return (self.primitive, tuple(a if isinstance(a, Var) else a.key for a in self.inputs),
                freeze(self.params))

    def __repr__(self) -> str:
        return f"Equation({self.primitive.qualname}, {len(self.inputs)} inputs)"


class Program:
    """A staged function: ``outputs = f(*inputs)`` as straight-line equations.

    Args:
        inputs: The input vars, in the order the compiled callable takes them.
        constants: Arrays the program reads but does not take as inputs (closed-over or
            constant-folded values), by var.
        equations: The equations, in an order where each input is defined before use.
        outputs: The output atoms (vars or literals).
        cacheable: ``False`` when the staged function read a tracer of an enclosing
            transform; such a program is only valid for the call that staged it.

    Example:
        >>> x = Var((), "float64")
        >>> print(Program([x], {}, [], [x]))
        { lambda ; a:f64[] . let
          in (a,) }
    """

    __slots__ = ("cacheable", "constants", "equations", "inputs", "outputs")

    def __init__(self, inputs: Sequence[Var], constants: dict[Var, Any],
                 equations: Sequence[Equation], outputs: Sequence[Atom], *,
                 cacheable: bool = True) -> None:
        self.inputs = list(inputs)
        self.constants = dict(constants)
        self.equations = list(equations)
        self.outputs = list(outputs)
        self.cacheable = cacheable

    def replace(self, *, inputs: Sequence[Var] | None = None,
                constants: dict[Var, Any] | None = None,
                equations: Sequence[Equation] | None = None,
                outputs: Sequence[Atom] | None = None,
                cacheable: bool | None = None) -> Program:
        """A copy with some fields replaced (passes build new programs this way)."""
        return Program(
            self.inputs if inputs is None else inputs,
            self.constants if constants is None else constants,
            self.equations if equations is None else equations,
            self.outputs if outputs is None else outputs,
            cacheable=self.cacheable if cacheable is None else cacheable,
        )

    def primitive_counts(self) -> dict[str, int]:
        """How many equations apply each primitive (by qualified name).

        Example:
            >>> Program([], {}, [], []).primitive_counts()
            {}
        """
        counts: dict[str, int] = {}
        for eqn in self.equations:
            name = eqn.primitive.qualname
            counts[name] = counts.get(name, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self.equations)

    def __str__(self) -> str:
        names = var_names(self)

        def atom(a: Atom) -> str:
            return names[a] if isinstance(a, Var) else repr(a.value)

        def typed(v: Var) -> str:
            return f"{names[v]}:{v.aval}"

        consts = " ".join(typed(v) for v in self.constants)
        ins = " ".join(typed(v) for v in self.inputs)
        lines = [f"{{ lambda {consts}{' ' if consts else ''}; {ins}{' ' if ins else ''}. let"]
        for eqn in self.equations:
            params = ", ".join(f"{k}={_show(v)}" for k, v in eqn.params.items())
            head = eqn.primitive.qualname + (f"[{params}]" if params else "")
            args = " ".join(atom(a) for a in eqn.inputs)
            lines.append(f"    {' '.join(typed(v) for v in eqn.outputs)} = {head} {args}".rstrip())
        outs = ", ".join(atom(a) for a in self.outputs)
        lines.append(f"  in ({outs}{',' if len(self.outputs) == 1 else ''}) }}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Program: {len(self.inputs)} inputs, {len(self.constants)} constants, "
                f"{len(self.equations)} equations, {len(self.outputs)} outputs>")


# --- names ----------------------------------------------------------------------------------


def _letters(i: int) -> str:
    # a..z, ba..zz, baa..: JAX's scheme, so names read like make_jaxpr output.
    digits = []
    while True:
        digits.append(chr(ord("a") + i % 26))
        i //= 26
        if i == 0:
            break
    return "".join(reversed(digits))


def var_names(program: Program, reserved: Iterable[str] = ()) -> dict[Var, str]:
    """Readable names: constants ``c0, c1, ...``; inputs then equation outputs ``a, b, ...``.

    Names that are Python keywords or in ``reserved`` get a trailing underscore, so the
    same names serve as identifiers in generated code.

    Example:
        >>> p = Program([Var((), "int32"), Var((), "int32")], {}, [], [])
        >>> sorted(var_names(p).values())
        ['a', 'b']
    """
    taken = set(reserved)
    names: dict[Var, str] = {}
    for i, v in enumerate(program.constants):
        names[v] = f"c{i}"
    counter = itertools.count()

    def fresh() -> str:
        name = _letters(next(counter))
        return name + "_" if keyword.iskeyword(name) or name in taken else name

    for v in program.inputs:
        if v not in names:
            names[v] = fresh()
    for eqn in program.equations:
        for v in eqn.outputs:
            names[v] = fresh()
    return names


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        inner = ", ".join(_show(v) for v in value)
        if isinstance(value, tuple):
            return f"({inner}{',' if len(value) == 1 else ''})"
        return f"[{inner}]"
    if _is_dtype(value):
        return dtype_name(value)
    return repr(value)


def _is_dtype(value: Any) -> bool:
    return type(value).__name__.lower().startswith("dtype") or "DType" in type(value).__name__


# --- dtypes ---------------------------------------------------------------------------------

_KIND_PREFIX = (("bfloat", "bf"), ("uint", "u"), ("int", "i"), ("float", "f"),
                ("complex", "c"))


def _dtype_basename(dtype: Any) -> str:
    if isinstance(dtype, type):
        return dtype.__name__
    text = str(dtype)
    if text.startswith("dtype("):  # numpy's repr form
        text = text[6:].strip("')\"")
    return text.rsplit(".", 1)[-1].strip("'>\"")


def dtype_name(dtype: Any) -> str:
    """The short printed name of a dtype: ``f64``, ``i32``, ``bool``; ``float`` if weak.

    Example:
        >>> import numpy as np
        >>> dtype_name(np.dtype("float32")), dtype_name(np.dtype("uint8")), dtype_name(float)
        ('f32', 'u8', 'float')
    """
    base = _dtype_basename(dtype)
    if isinstance(dtype, type):
        return base
    for prefix, short in _KIND_PREFIX:
        if base.startswith(prefix) and base[len(prefix):].isdigit():
            return short + base[len(prefix):]
    return base


_KINDS: dict[tuple[type, Any], str] = {}


def dtype_kind(dtype: Any) -> str:
    """``"bool"``, ``"integral"``, ``"real floating"``, ``"complex floating"`` or ``"other"``.

    Decided from the dtype's name so that optimisation passes need no namespace.

    Example:
        >>> import numpy as np
        >>> dtype_kind(np.dtype("int8")), dtype_kind(np.dtype("float16"))
        ('integral', 'real floating')
    """
    # Keyed with the type first, so dtypes of two libraries are never compared (that
    # warns in array-api-strict).
    key = (type(dtype), dtype)
    try:
        return _KINDS[key]
    except (KeyError, TypeError):
        pass
    base = _dtype_basename(dtype)
    if base == "bool":
        kind = "bool"
    elif base.startswith(("int", "uint")):
        kind = "integral"
    elif base.startswith(("float", "bfloat")):
        kind = "real floating"
    elif base.startswith("complex"):
        kind = "complex floating"
    else:
        kind = "other"
    try:
        _KINDS[key] = kind
    except TypeError:  # an unhashable dtype object: just not cached
        pass
    return kind


_PYTHON_TYPES = {"bool": bool, "integral": int, "real floating": float,
                 "complex floating": complex}


def weak_value(value: Any) -> Any:
    """``value`` as a Python scalar if it is 0-d (a weakly typed result), else unchanged.

    An operation whose operands are all Python scalars gives a Python scalar under jit,
    as ``2.0 * 2.0`` does eagerly, so it stays weakly typed: a NumPy float64 scalar would
    promote a float32 array it later meets, where the eager Python float does not.

    Example:
        >>> import numpy as np
        >>> weak_value(np.float64(4.0)), weak_value(np.asarray(True)), weak_value(3)
        (4.0, True, 3)
    """
    if type(value) in SCALAR_TYPES or tuple(getattr(value, "shape", (0,))) != ():
        return value
    convert = _PYTHON_TYPES.get(dtype_kind(value.dtype))
    return value if convert is None else convert(value)


# --- canonical keys -------------------------------------------------------------------------


def freeze(value: Any) -> Any:
    """A hashable key for ``value``, equal only for values that act identically.

    Slices, lists and dicts become tuples; floats are keyed by ``repr`` (so ``-0.0`` and
    ``0.0`` differ and ``nan`` matches itself) and every scalar by its type (``2`` and
    ``2.0`` promote differently). An unhashable object that is none of these is keyed by
    identity: never merged with another, which is always safe for CSE.

    Example:
        >>> freeze({"axis": [0, 1], "key": slice(None, 2)}) == freeze(
        ...     {"axis": [0, 1], "key": slice(None, 2)})
        True
        >>> freeze(0.0) == freeze(-0.0)
        False
    """
    tp = type(value)
    if tp is float or tp is complex:
        return (tp, repr(value))
    if tp in SCALAR_TYPES or value is None or tp is str:
        return (tp, value)
    if tp is tuple or tp is list:
        return (tp, tuple(freeze(v) for v in value))
    if tp is dict:
        return (dict, tuple((k, freeze(v)) for k, v in sorted(value.items(), key=_by_key)))
    if tp is slice:
        return (slice, freeze(value.start), freeze(value.stop), freeze(value.step))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (tp, value)


def _by_key(item: tuple[Any, Any]) -> str:
    return repr(item[0])
