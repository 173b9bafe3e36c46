"""What the Numba lowering handles: dtypes, the primitives it writes as scalar code,
and why a program cannot be lowered (:func:`unsupported`).

Shared by the code generator (:mod:`unijax.engine.numba_codegen`) and the lowering
(:mod:`unijax.engine.lower_numba`); it knows nothing of Numba itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unijax.engine.ir import Equation, Literal, Program, Var

__all__ = ["ELEMENTWISE", "dtype_of", "initial", "is_elementwise", "is_reduction", "kind",
           "literal_dtype", "promote", "unsupported"]

# --- dtypes ---------------------------------------------------------------------------------

_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                     "uint64", "float32", "float64"})
_WEAK = {bool: "bool", int: "int64", float: "float64"}


def dtype_of(var: Var) -> str | None:
    """The NumPy dtype name a var computes in (weak scalars: 64-bit), or None."""
    if var.weak:
        return _WEAK.get(var.dtype)
    name = getattr(var.dtype, "name", None)
    if name is None:
        name = getattr(var.dtype, "__name__", None)  # a scalar type such as np.float64
        if name is not None:
            import numpy as np

            name = np.dtype(var.dtype).name
    return name if name in _DTYPES else None


def kind(dtype: str) -> str:
    return "b" if dtype == "bool" else dtype[0]


def literal_dtype(value: Any) -> str | None:
    return _WEAK.get(type(value))


# --- the primitives handled -----------------------------------------------------------------

#: Elementwise primitives: name -> (typing, kinds of the result dtype, template). Typing:
#: ``result`` casts operands to the result dtype; ``compare`` to the operands' promoted
#: dtype (bool result); ``logical`` to bool; ``test`` keeps the operand's dtype.
ELEMENTWISE: dict[str, tuple[str, str, str]] = {}


def _table(typing: str, kinds: str, **templates: str) -> None:
    for name, template in templates.items():
        ELEMENTWISE[name] = (typing, kinds, template)


_table("result", "fiu", add="({0} + {1})", subtract="({0} - {1})", multiply="({0} * {1})",
       negative="(-{0})", positive="{0}", square="({0} * {0})", abs="abs({0})",
       astype="{0}", broadcast_to="{0}",
       sign="(1 if {0} > 0 else (-1 if {0} < 0 else {0} - {0}))",
       maximum="({0} if ({0} >= {1} or {0} != {0}) else {1})",
       minimum="({0} if ({0} <= {1} or {0} != {0}) else {1})")
_table("result", "f", divide="({0} / {1})", pow="np.power({0}, {1})", exp="np.exp({0})",
       expm1="np.expm1({0})", log="np.log({0})", log1p="_log1p({0})",
       log2="np.log2({0})", log10="np.log10({0})", sqrt="np.sqrt({0})", sin="np.sin({0})",
       cos="np.cos({0})", tan="np.tan({0})", asin="np.arcsin({0})", acos="np.arccos({0})",
       atan="np.arctan({0})", sinh="np.sinh({0})", cosh="np.cosh({0})",
       tanh="_tanh({0})", asinh="np.arcsinh({0})", acosh="np.arccosh({0})",
       atanh="np.arctanh({0})", atan2="np.arctan2({0}, {1})", hypot="np.hypot({0}, {1})",
       copysign="np.copysign({0}, {1})", floor="np.floor({0})", ceil="np.ceil({0})",
       trunc="np.trunc({0})", logaddexp="np.logaddexp({0}, {1})")
_table("result", "iub", bitwise_and="({0} & {1})", bitwise_or="({0} | {1})",
       bitwise_xor="({0} ^ {1})")
_table("result", "fiu", remainder="np.remainder({0}, {1})",
       floor_divide="np.floor_divide({0}, {1})")
# Shifts by a negative amount or by the width or more are NumPy's (0, or the sign for an
# arithmetic right shift), not the machine's (undefined in LLVM): the code generator
# writes the range check; the template is the in-range case.
_table("shift", "iu", bitwise_left_shift="({0} << {1})", bitwise_right_shift="({0} >> {1})")
_table("compare", "b", equal="({0} == {1})", not_equal="({0} != {1})", less="({0} < {1})",
       less_equal="({0} <= {1})", greater="({0} > {1})", greater_equal="({0} >= {1})")
_table("logical", "b", logical_and="({0} and {1})", logical_or="({0} or {1})",
       logical_xor="({0} != {1})", logical_not="(not {0})")
_table("test", "b", isnan="({0} != {0})", isinf="np.isinf({0})",
       isfinite="np.isfinite({0})")

#: Reductions that may fuse into their operand's loop.
_REDUCTIONS = frozenset({"sum", "prod", "max", "min", "mean", "any", "all", "argmax",
                         "argmin"})
#: Shape-only primitives written as NumPy calls on whole arrays.
_STRUCTURAL = frozenset({"reshape", "expand_dims", "squeeze", "matrix_transpose",
                         "permute_dims", "moveaxis", "matmul", "getitem", "stack", "concat"})
#: The items of a ``getitem`` key written as NumPy basic indexing (no index arrays).
_BASIC_ITEMS = frozenset({"int", "slice", "none"})
_CONTROL = frozenset({"scan", "while_loop", "cond", "checkpoint"})


def is_elementwise(eqn: Equation) -> bool:
    prim = eqn.primitive
    # A custom implementation is fine: the scalar code here is written from the name.
    if prim.namespace or prim.multiple_results:
        return False
    name = prim.name
    if name == "where":
        return len(eqn.inputs) == 3 and dtype_of(eqn.outputs[0]) is not None
    if name == "clip":
        return dtype_of(eqn.outputs[0]) is not None
    entry = ELEMENTWISE.get(name)
    if entry is None:
        return False
    out = dtype_of(eqn.outputs[0])
    if out is None or (kind(out) not in entry[1] and not (name == "astype" and out == "bool")):
        return False
    for a in eqn.inputs:
        if name == "clip" and isinstance(a, Literal) and a.value is None:
            continue  # no bound on that side
        if (dtype_of(a) if isinstance(a, Var) else literal_dtype(a.value)) is None:
            return False
    return True


def is_reduction(eqn: Equation) -> bool:
    prim = eqn.primitive
    if prim.namespace or prim.name not in _REDUCTIONS:
        return False
    (x,) = eqn.inputs
    out = dtype_of(eqn.outputs[0])
    if not isinstance(x, Var) or out is None or dtype_of(x) is None:
        return False
    if prim.name in ("max", "min") and kind(out) == "b":
        return False
    if prim.name == "mean" and kind(out) != "f":
        return False
    if prim.name in ("argmax", "argmin"):
        # One axis or all of them, over a non-empty operand (NumPy raises on empty).
        axis = eqn.params.get("axis")
        if 0 in x.shape or x.shape == () or not (axis is None or isinstance(axis, int)) \
                or kind(dtype_of(x) or "b") == "b":
            return False
    return set(eqn.params) <= {"axis", "keepdims", "dtype"}


def unsupported(program: Program) -> str | None:
    """Why ``program`` cannot be lowered to Numba (``None`` if it can).

    Example:
        >>> unsupported(Program([], {}, [], []))
    """
    for var, value in program.constants.items():
        if dtype_of(var) is None and not hasattr(value, "shape"):
            if type(value) not in _WEAK:
                return f"a constant of type {type(value).__name__}"
        elif dtype_of(var) is None:
            return f"a constant of dtype {var.dtype}"
    for v in program.inputs:
        if dtype_of(v) is None:
            return f"an input of dtype {v.dtype}"
    for a in program.outputs:
        if isinstance(a, Literal) and literal_dtype(a.value) is None:
            return f"an output literal {a.value!r}"
    for eqn in program.equations:
        reason = _unsupported_equation(eqn)
        if reason is not None:
            return reason
    return None


def _unsupported_equation(eqn: Equation) -> str | None:
    name = eqn.primitive.qualname
    if is_elementwise(eqn) or is_reduction(eqn):
        return None
    for v in eqn.outputs:
        if dtype_of(v) is None:
            return f"{name} makes a value of dtype {v.dtype}"
    if name in _CONTROL:
        for value in eqn.params.values():
            for body in value if isinstance(value, tuple) else (value,):
                program = getattr(body, "program", None)
                if isinstance(program, Program):
                    reason = unsupported(program)
                    if reason is not None:
                        return reason
        return None
    if name in _STRUCTURAL:
        if name == "matmul":
            a, b = eqn.inputs
            if not (isinstance(a, Var) and isinstance(b, Var)) or a.shape == () or \
                    b.shape == () or len(a.shape) > 2 or len(b.shape) > 2 or \
                    dtype_of(a) != dtype_of(b) or kind(dtype_of(a) or "b") != "f":
                return "matmul of other than floating vectors and matrices of one dtype"
        if name == "getitem" and (len(eqn.inputs) != 1 or any(
                item[0] not in _BASIC_ITEMS for item in eqn.params["key"])):
            return "getitem with index arrays"
        if name in ("stack", "concat") and len({dtype_of(a) for a in eqn.inputs if
                                                 isinstance(a, Var)}) > 1:
            return f"{name} of arrays of different dtypes"
        if not all(isinstance(a, Var) for a in eqn.inputs):
            return f"{name} of a literal"
        return None
    return f"the primitive {name}"


def initial(reduction: str, dtype: str) -> str:
    """The accumulator's first value for ``reduction`` in ``dtype`` (source text)."""
    if reduction in ("sum", "mean"):
        return "0"
    if reduction in ("any", "all"):
        return "False" if reduction == "any" else "True"
    if reduction == "prod":
        return "1"
    import numpy as np

    if kind(dtype) == "f":
        return "-_INF" if reduction == "max" else "_INF"
    info = np.iinfo(dtype)
    return str(info.min if reduction == "max" else info.max)


def promote(dtypes: Sequence[str | None], strong: Sequence[bool]) -> str:
    """The dtype NumPy compares in: the strong operands' promotion; a weak Python float
    meeting integers makes it float64."""
    import numpy as np

    strong_types = [t for t, s in zip(dtypes, strong, strict=True) if s and t is not None]
    weak_types = [t for t, s in zip(dtypes, strong, strict=True) if not s and t is not None]
    if not strong_types:
        return np.result_type(*weak_types).name
    common = np.result_type(*strong_types).name
    if any(kind(w) == "f" for w in weak_types) and kind(common) != "f":
        return "float64"
    if any(kind(w) in "iu" for w in weak_types) and kind(common) == "b":
        return "int64"
    return common
