"""The CuPy compiler: a staged program as fused CUDA kernels, driven by generated Python.

:func:`compile_cupy` is the CuPy plugin's ``compiler`` hook. It plans fusion with
:func:`unijax.extend.plan_fusion`, writes each fused region as the CUDA C of a
``cupy.ElementwiseKernel`` (or a ``cupy.ReductionKernel`` when a ``sum``/``prod``/``max``/
``min``/``mean`` consumes the region), and generates straight-line Python that calls those
kernels and, for every other equation, the namespace function directly (as
:func:`unijax.extend.compile_python` does for NumPy).

Everything up to the kernel objects is string generation from the IR: CuPy is imported
only when a kernel first runs, so plans and CUDA sources can be generated, inspected and
tested on a machine without a GPU. The compiled function exposes ``.source`` (the Python
driver), ``.kernels`` (``(name, cuda_source)`` pairs) and ``.kernel_specs``; without a GPU,
:mod:`unijax_cupy.compile_check` compiles such specs for real GPUs with NVRTC and ``ptxas``.

Typing follows the eager backend exactly: every intermediate is a local variable of its
IR dtype (so a ``float32`` chain rounds at every step, as eagerly), operands are cast to
the dtype the operation computes in (its result dtype, or the promoted operand dtype for a
comparison), Python scalars are weakly typed (cast to the other operand's dtype) and
literals are written in that dtype (``0.5f`` for float32). ``float16`` computes in
``float`` and rounds on every store, as NumPy's and CuPy's half-precision loops do.
Operations whose C semantics differ from the Array API (integer division, shifts,
float-to-integer casts, complex numbers) are not fused: they run as namespace calls.
"""

from __future__ import annotations

import itertools
import keyword
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unijax.extend import (
    RESERVED_NAMES,
    Atom,
    Equation,
    Fused,
    Literal,
    Program,
    ScalarConstants,
    SourceGlobals,
    Var,
    dtype_name,
    function_text,
    interpret,
    param_operands,
    plan_fusion,
    var_names,
)
from unijax.extend import fusion_broadcast_shapes as broadcast_shapes

__all__ = ["TEMPLATES", "KernelSpec", "compile_cupy", "cupy_kernel", "generate"]

# Short dtype name (as ``dtype_name`` prints it) -> (NumPy/CuPy parameter type, C type).
# ``int``/``float`` are weak Python scalars: passed to kernels as 64-bit values and cast
# to the other operand's type where they are used, as the backend does eagerly.
_TYPES: dict[str, tuple[str, str]] = {
    "bool": ("bool", "bool"),
    "i8": ("int8", "signed char"), "i16": ("int16", "short"), "i32": ("int32", "int"),
    "i64": ("int64", "long long"), "u8": ("uint8", "unsigned char"),
    "u16": ("uint16", "unsigned short"), "u32": ("uint32", "unsigned int"),
    "u64": ("uint64", "unsigned long long"), "f16": ("float16", "float16"),
    "f32": ("float32", "float"), "f64": ("float64", "double"),
    "int": ("int64", "long long"), "float": ("float64", "double"),
}
_WEAK_SHORT = {"bool": "bool", "int": "i64", "float": "f64"}
_INT_SUFFIX = {"i32": "", "i64": "LL", "u32": "U", "u64": "ULL"}
_BITS = {"f32": ("__int_as_float", "0x7f800000", "0x7fc00000"),
         "f64": ("__longlong_as_double", "0x7ff0000000000000LL", "0x7ff8000000000000LL")}


def _kind(short: str) -> str:
    """``"b"``, ``"i"``, ``"u"`` or ``"f"``."""
    return "b" if short == "bool" else short[0]


def _compute(short: str) -> str:
    """The short name of the type an operation with this result type computes in."""
    return "f32" if short == "f16" else _WEAK_SHORT.get(short, short)


def _literal(value: Any, short: str) -> str:
    """CUDA C source for the Python scalar ``value`` as a constant of type ``short``.

    Example:
        >>> _literal(0.5, "f32"), _literal(2, "f64"), _literal(-3, "i64"), _literal(1, "u8")
        ('0.5f', '2.0', '(-3LL)', '((unsigned char)1)')
        >>> _literal(float("-inf"), "f32")
        '(-__int_as_float(0x7f800000))'
    """
    import numpy as np

    kind = _kind(short)
    if kind == "b":
        return "true" if value else "false"
    if kind == "f":
        v = float(getattr(np, _TYPES[short][0])(value))  # rounds as the backend does
        if math.isnan(v) or math.isinf(v):
            fn, inf, nan = _BITS[short]
            text = f"{fn}({nan if math.isnan(v) else inf})"
            return text if not v < 0 else f"(-{text})"
        text = str(np.float32(v)) + "f" if short == "f32" else repr(v)
    else:
        info = np.iinfo(_TYPES[short][0])
        v = int(value)
        if not info.min <= v <= info.max:
            raise OverflowError(f"{value!r} does not fit {_TYPES[short][0]}")
        suffix = _INT_SUFFIX.get(short)
        if suffix is None:
            return f"(({_TYPES[short][1]}){v})"
        if v == info.min and v < 0:  # -2147483648 would parse as -(2147483648): too wide
            return f"({v + 1}{suffix} - 1)"
        text = f"{v}{suffix}"
    return f"({text})" if text.startswith("-") else text


# --- the template table --------------------------------------------------------------------

#: Primitive name -> (operand typing, {compute kind: CUDA C expression template}).
#: Typing: ``result`` casts operands to the result's compute type; ``compare`` to the
#: operands' promoted type (the result is bool); ``logical`` needs bool operands; ``test``
#: keeps the operand's own type (bool result); ``where`` takes a bool condition. ``{one}``
#: and ``{zero}`` are typed literals of the compute type.
TEMPLATES: dict[str, tuple[str, dict[str, str]]] = {}


def _table(typing: str, kinds: str, **templates: str) -> None:
    for name, template in templates.items():
        TEMPLATES[name] = (typing, dict.fromkeys(kinds, template))


_table("result", "fiu", add="({0} + {1})", subtract="({0} - {1})",
       multiply="({0} * {1})", negative="(-{0})", positive="{0}", square="({0} * {0})")
_table("result", "f", divide="({0} / {1})", reciprocal="({one} / {0})", pow="pow({0}, {1})",
       exp="exp({0})", expm1="expm1({0})", log="log({0})", log1p="log1p({0})",
       log2="log2({0})", log10="log10({0})", sqrt="sqrt({0})", sin="sin({0})",
       cos="cos({0})", tan="tan({0})", asin="asin({0})", acos="acos({0})",
       atan="atan({0})", sinh="sinh({0})", cosh="cosh({0})", tanh="tanh({0})",
       asinh="asinh({0})", acosh="acosh({0})", atanh="atanh({0})", atan2="atan2({0}, {1})",
       hypot="hypot({0}, {1})", copysign="copysign({0}, {1})", floor="floor({0})",
       ceil="ceil({0})", trunc="trunc({0})", round="rint({0})")  # rint: half to even
_table("result", "iu", bitwise_and="({0} & {1})", bitwise_or="({0} | {1})",
       bitwise_xor="({0} ^ {1})", bitwise_invert="(~{0})")
_table("result", "fiub", broadcast_to="{0}", stop_gradient="{0}")
_table("compare", "fiub", equal="({0} == {1})", not_equal="({0} != {1})")
_table("compare", "fiu", less="({0} < {1})", less_equal="({0} <= {1})",
       greater="({0} > {1})", greater_equal="({0} >= {1})")
_table("logical", "b", logical_and="({0} && {1})", logical_or="({0} || {1})",
       logical_xor="({0} != {1})", logical_not="(!{0})")
_table("test", "f", isnan="isnan({0})", isinf="isinf({0})", isfinite="isfinite({0})",
       signbit="signbit({0})")
_table("where", "fiub", where="({0} ? {1} : {2})")
# NaN propagates and ties return the second operand, as NumPy's maximum/minimum do.
TEMPLATES["maximum"] = ("result", {"f": "(({0} > {1} || isnan({0})) ? {0} : {1})",
                                   "i": "({0} > {1} ? {0} : {1})", "u": "({0} > {1} ? {0} : {1})"})
TEMPLATES["minimum"] = ("result", {"f": "(({0} < {1} || isnan({0})) ? {0} : {1})",
                                   "i": "({0} < {1} ? {0} : {1})", "u": "({0} < {1} ? {0} : {1})"})
TEMPLATES["abs"] = ("result", {"f": "fabs({0})", "i": "({0} < {zero} ? -{0} : {0})", "u": "{0}"})
TEMPLATES["sign"] = ("result", {
    "f": "({0} > {zero} ? {one} : ({0} < {zero} ? -{one} : ({0} == {zero} ? {zero} : {0})))",
    "i": "({0} > {zero} ? {one} : ({0} < {zero} ? -{one} : {zero}))",
    "u": "({0} > {zero} ? {one} : {zero})"})

# Reductions fused with their operand's region: name -> (reduce_expr by kind, identity).
_REDUCTIONS: dict[str, tuple[dict[str, str], str]] = {
    "sum": (dict.fromkeys("fiu", "(a + b)"), "zero"),
    "mean": (dict.fromkeys("f", "(a + b)"), "zero"),
    "prod": (dict.fromkeys("fiu", "(a * b)"), "one"),
    "max": ({"f": "((a > b || isnan(a)) ? a : b)", "i": "(a > b ? a : b)",
             "u": "(a > b ? a : b)"}, "lowest"),
    "min": ({"f": "((a < b || isnan(a)) ? a : b)", "i": "(a < b ? a : b)",
             "u": "(a < b ? a : b)"}, "highest"),
}


def _short(atom: Atom) -> str | None:
    """The short type name of an operand (``None`` if kernels cannot hold it)."""
    if isinstance(atom, Literal):
        tp = type(atom.value)
        return tp.__name__ if tp in (bool, int, float) else None
    # Keyed with the type first: np.dtype("float64") == float, but a weak float is no f64.
    key = (type(atom.dtype), atom.dtype)
    try:
        return _SHORTS[key]
    except KeyError:
        name = dtype_name(atom.dtype)
        short = _SHORTS[key] = name if name in _TYPES else None
        return short
    except TypeError:  # an unhashable dtype object
        name = dtype_name(atom.dtype)
        return name if name in _TYPES else None


_SHORTS: dict[Any, str | None] = {}


def _weak(atom: Atom) -> bool:
    return isinstance(atom, Literal) or atom.weak


def _promote(atoms: tuple[Atom, ...]) -> str:
    """The type a comparison computes in: the operands' promotion, scalars weakly typed."""
    import numpy as np

    shorts = [(_short(a), _weak(a)) for a in atoms]
    strong = [_TYPES[s][0] for s, weak in shorts if not weak and s is not None]
    result = dtype_name(np.result_type(*strong)) if strong else "bool"
    for s, weak in shorts:
        if weak and s is not None and _RANK[_kind(_WEAK_SHORT[s])] > _RANK[_kind(result)]:
            result = _WEAK_SHORT[s]  # an int32 array compared with 0.5 compares in float64
    return _compute(result)


_RANK = {"b": 0, "i": 1, "u": 1, "f": 2}


def _astype_ok(src: str, dst: str) -> bool:
    # C casts float -> int are undefined out of range, and f64 -> f16 would round twice.
    ks, kd = _kind(src), _kind(dst)
    if kd == "b" or ks == "b":
        return True
    if kd in "iu":
        return ks in "iu"
    return dst != "f16" or src in ("f16", "f32")


def fusable(eqn: Equation) -> bool:
    """Whether ``eqn`` is elementwise and has an exact CUDA C form in :data:`TEMPLATES`."""
    prim = eqn.primitive
    if prim.multiple_results or prim.namespace or len(eqn.outputs) != 1 or eqn.outputs[0].weak:
        return False  # a weak (Python scalar) result is computed on the host
    out = _short(eqn.outputs[0])
    shorts = [_short(a) for a in eqn.inputs]
    if out is None or None in shorts or not eqn.inputs:
        return False
    if prim.name == "astype":
        return set(eqn.params) <= {"dtype", "copy"} and _astype_ok(
            _WEAK_SHORT.get(shorts[0], shorts[0]), out)  # type: ignore[arg-type]
    entry = TEMPLATES.get(prim.name)
    if entry is None or (eqn.params and prim.name != "broadcast_to"):
        return False
    typing, by_kind = entry
    if typing == "logical":
        return all(s == "bool" for s in shorts)
    if typing == "where" and shorts[0] != "bool":
        return False
    compute = _promote(eqn.inputs) if typing in ("compare", "test") else _compute(out)
    return _kind(compute) in by_kind


def reducible(eqn: Equation) -> bool:
    """Whether a reduction can run as a ``cupy.ReductionKernel`` over its operand's region."""
    entry = _REDUCTIONS.get(eqn.primitive.name)
    if entry is None or len(eqn.inputs) != 1 or not isinstance(eqn.inputs[0], Var):
        return False
    out = _short(eqn.outputs[0])
    if out is None or _kind(_compute(out)) not in entry[0]:
        return False
    if eqn.primitive.name in ("max", "min") and 0 in eqn.inputs[0].shape:
        return False  # NumPy raises for an empty max; an identity would hide that
    return set(eqn.params) <= {"axis", "keepdims", "dtype"}


# --- kernel specs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpec:
    """Everything needed to build one CuPy kernel (plain strings; no CuPy import).

    Attributes:
        kind: ``"elementwise"`` (``cupy.ElementwiseKernel``) or ``"reduction"``
            (``cupy.ReductionKernel``).
        name: The CUDA function's name.
        in_params: CuPy's parameter list, e.g. ``"float32 v_a, float64 v_b"``.
        out_params: Likewise for the outputs.
        operation: The elementwise kernel's body (statements).
        preamble: Code placed before the kernel (the reduction's map function).
        map_expr: The reduction's map expression.
        reduce_expr: The reduction's combining expression of ``a`` and ``b``.
        post_map_expr: The statement storing the reduced value ``a``.
        identity: The reduction's identity value.
        reduce_type: The C type the reduction accumulates in.
        fused: The plan step this kernel runs.
        arguments: The vars passed as ``in_params``, in order (uniform constants are
            written as literals instead).
    """

    kind: str
    name: str
    in_params: str
    out_params: str
    operation: str = ""
    preamble: str = ""
    map_expr: str = ""
    reduce_expr: str = ""
    post_map_expr: str = ""
    identity: str = ""
    reduce_type: str = ""
    fused: Fused | None = None
    arguments: tuple[Var, ...] = ()

    @property
    def source(self) -> str:
        """The CUDA C handed to CuPy, with the kernel's signature as comments."""
        cls = "ElementwiseKernel" if self.kind == "elementwise" else "ReductionKernel"
        head = [f"// {cls} {self.name}", f"// in_params:  {self.in_params}",
                f"// out_params: {self.out_params}"]
        if self.kind == "elementwise":
            return "\n".join([*head, self.operation]) + "\n"
        head += [f"// map_expr: {self.map_expr}", f"// reduce_expr: {self.reduce_expr}",
                 f"// post_map_expr: {self.post_map_expr}",
                 f"// identity: {self.identity}", f"// reduce_type: {self.reduce_type}"]
        return "\n".join([*head, self.preamble]) + "\n"


def _ctype(atom: Atom) -> str:
    return _TYPES[_short(atom)][1]  # type: ignore[index]


class _Writer:
    """Writes the CUDA C of the fused kernels of one program."""

    def __init__(self, program: Program, names: dict[Var, str]) -> None:
        self.names = names
        self.program = program
        self.consts = ScalarConstants(program.constants)

    def arguments(self, fused: Fused) -> tuple[list[Var], dict[Var, Any]]:
        """The vars passed to the kernel, and the uniform constants inlined instead."""
        inline: dict[Var, Any] = {}
        for v in fused.inputs:
            if v in self.program.constants and _short(v) is not None:
                scalar = self.consts.scalar(v)
                if scalar is not None:
                    inline[v] = scalar[0]
        kept = [v for v in fused.inputs if v not in inline]
        if inline and broadcast_shapes(v.shape for v in kept if not v.weak) != fused.shape:
            # A kernel's index space is the broadcast of its array arguments: keep the
            # constants rather than shrink it.
            return list(fused.inputs), {}
        return kept, inline

    def body(self, fused: Fused, inline: dict[Var, Any]) -> list[str]:
        """One typed local per member: ``float v_c = (v_a * v_b);``."""
        lines = []
        for eqn in fused.members:
            out = eqn.outputs[0]
            expr, expr_type = self.expression(eqn, inline)
            ctype = _ctype(out)
            if expr_type != ctype:
                expr = f"({ctype})({expr})"
            lines.append(f"{ctype} v_{self.names[out]} = {expr};")
        return lines

    def operand(self, a: Atom, short: str, inline: dict[Var, Any]) -> str:
        """``a`` as a value of type ``short``: a typed literal, or a (cast) local name."""
        if isinstance(a, Literal):
            return _literal(a.value, short)
        if a in inline:
            return _literal(inline[a], short)
        name = f"v_{self.names[a]}"
        target = _TYPES[short][1]
        return name if _ctype(a) == target else f"(({target}){name})"

    def expression(self, eqn: Equation, inline: dict[Var, Any]) -> tuple[str, str]:
        """The C expression of ``eqn``, and the C type it has."""
        out = _short(eqn.outputs[0])
        assert out is not None
        name = eqn.primitive.name
        if name == "astype":
            src = _short(eqn.inputs[0])
            src = _WEAK_SHORT.get(src, src)  # type: ignore[arg-type]
            x = self.operand(eqn.inputs[0], src, inline)  # type: ignore[arg-type]
            if out == "bool" and src != "bool":
                return f"({x} != {_literal(0, src)})", "bool"  # type: ignore[arg-type]
            return f"(({_TYPES[out][1]}){x})", _TYPES[out][1]
        typing, by_kind = TEMPLATES[name]
        if typing == "logical":
            compute = "bool"
        elif typing in ("compare", "test"):
            compute = _promote(eqn.inputs)
        else:
            compute = _compute(out)
        kinds = ["bool" if typing == "where" and i == 0 else compute
                 for i in range(len(eqn.inputs))]
        args = [self.operand(a, k, inline) for a, k in zip(eqn.inputs, kinds, strict=True)]
        text = by_kind[_kind(compute)].format(
            *args, one=_literal(1, compute), zero=_literal(0, compute))
        boolean = typing in ("compare", "test", "logical")
        return text, "bool" if boolean else _TYPES[compute][1]

    def signature(self, args: list[Var], prefix: str = "v_") -> str:
        return ", ".join(f"{_TYPES[_short(v)][0]} {prefix}{self.names[v]}"  # type: ignore[index]
                         for v in args)

    def elementwise(self, fused: Fused, name: str) -> KernelSpec:
        args, inline = self.arguments(fused)
        lines = self.body(fused, inline)
        lines += [f"o_{self.names[v]} = v_{self.names[v]};" for v in fused.outputs]
        return KernelSpec("elementwise", name, self.signature(args),
                          self.signature(list(fused.outputs), "o_"),
                          operation="\n".join(lines), fused=fused, arguments=tuple(args))

    def reduction(self, fused: Fused, name: str) -> KernelSpec:
        assert fused.reduction is not None
        args, inline = self.arguments(fused)
        reduced = fused.members[-1].outputs[0]
        red = fused.reduction
        out = red.outputs[0]
        acc = _compute(_short(out))  # type: ignore[arg-type]
        exprs, identity = _REDUCTIONS[red.primitive.name]
        params = ", ".join(f"const {_ctype(v)} v_{self.names[v]}" for v in args)
        body = "".join(f"    {line}\n" for line in self.body(fused, inline))
        fn = f"{name}_map"
        preamble = (f"__device__ __forceinline__ {_ctype(reduced)} {fn}({params}) {{\n"
                    f"{body}    return v_{self.names[reduced]};\n}}")
        post = "a"
        if red.primitive.name == "mean":
            axes = red.params.get("axis")
            axes = range(len(reduced.shape)) if axes is None else axes
            post = f"(a / {_literal(math.prod(reduced.shape[i] for i in axes), acc)})"
        if _ctype(out) != _TYPES[acc][1]:
            post = f"({_ctype(out)})({post})"
        return KernelSpec(
            "reduction", name, self.signature(args), self.signature([out], "o_"),
            preamble=preamble,
            map_expr=f"{fn}({', '.join(f'v_{self.names[v]}' for v in args)})",
            reduce_expr=exprs[_kind(acc)], post_map_expr=f"o_{self.names[out]} = {post}",
            identity=_identity(identity, acc), reduce_type=_TYPES[acc][1], fused=fused,
            arguments=tuple(args))


def _identity(which: str, short: str) -> str:
    import numpy as np

    if which in ("zero", "one"):
        return _literal(int(which == "one"), short)
    if _kind(short) == "f":
        return _literal(float("-inf") if which == "lowest" else float("inf"), short)
    info = np.iinfo(_TYPES[short][0])
    return _literal(info.min if which == "lowest" else info.max, short)


def generate(program: Program, *, prefix: str = "unijax") -> tuple[list[Any], list[KernelSpec],
                                                                   dict[Var, str]]:
    """Plan fusion for ``program`` and write each fused kernel's CUDA C (no CuPy needed).

    Args:
        program: The optimised program.
        prefix: Prefix of the kernels' names.

    Returns:
        ``(steps, specs, names)``: the plan's steps (equations and
        :class:`~unijax.extend.Fused` kernels, in execution order), one
        :class:`KernelSpec` per fused kernel (in the same order) and the var names used.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.sin(xs[0]) * 2.0 + xs[0]],
        ...                    [np.zeros(3, dtype=np.float32)])
        >>> _, specs, _ = generate(program)
        >>> print(specs[0].source, end="")
        // ElementwiseKernel unijax_fused_0
        // in_params:  float32 v_a
        // out_params: float32 o_d
        float v_b = sin(v_a);
        float v_c = (v_b * 2.0f);
        float v_d = (v_c + v_a);
        o_d = v_d;
    """
    names = var_names(program, reserved=RESERVED_NAMES)
    steps = plan_fusion(program, fusable, reducible)
    writer = _Writer(program, names)
    specs = []
    counter = itertools.count()
    for step in steps:
        if isinstance(step, Fused):
            if step.reduction is None:
                specs.append(writer.elementwise(step, f"{prefix}_fused_{next(counter)}"))
            else:
                specs.append(writer.reduction(step, f"{prefix}_reduce_{next(counter)}"))
    return steps, specs, names


# --- kernels and the driver -----------------------------------------------------------------


def cupy_kernel(spec: KernelSpec) -> Any:
    """Build the ``cupy.ElementwiseKernel``/``cupy.ReductionKernel`` for ``spec``."""
    import cupy

    if spec.kind == "elementwise":
        return cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.operation,
                                      spec.name, preamble=spec.preamble)
    return cupy.ReductionKernel(spec.in_params, spec.out_params, spec.map_expr,
                                spec.reduce_expr, spec.post_map_expr, spec.identity,
                                spec.name, reduce_type=spec.reduce_type,
                                preamble=spec.preamble)


class _LazyKernel:
    """Builds its kernel on the first call, then puts it in the driver's globals.

    If the CUDA compiler rejects the source (which would be a bug in this module), the
    fused equations run one namespace call at a time instead, with a warning, so the
    user's program still gives the eager results.
    """

    def __init__(self, spec: KernelSpec, program: Program,
                 make_kernel: Callable[[KernelSpec], Any], namespace: dict[str, Any],
                 slot: str) -> None:
        self.spec, self.program = spec, program
        self.make_kernel, self.namespace, self.slot = make_kernel, namespace, slot

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            kernel = self.make_kernel(self.spec)
            result = kernel(*args, **kwargs)
        except Exception as err:
            if type(err).__name__ != "CompileException":
                raise
            warnings.warn(f"unijax: CuPy could not compile the fused kernel {self.spec.name} "
                          f"({err}); running its equations unfused. Please report this with "
                          "the kernel's source (compiled.kernels).", RuntimeWarning,
                          stacklevel=2)
            kernel = self._unfused()
            result = kernel(*args, **kwargs)
        self.namespace[self.slot] = kernel
        return result

    def _unfused(self) -> Callable[..., Any]:
        fused = self.spec.fused
        assert fused is not None
        eqns = [*fused.members, *([fused.reduction] if fused.reduction else [])]
        args = list(self.spec.arguments)
        inlined = {v: self.program.constants[v] for v in fused.inputs if v not in args}
        run = interpret(Program(args, inlined, eqns, list(fused.outputs)), self.namespace["xp"])
        n = len(args)

        def call(*args: Any, **_: Any) -> Any:
            outs = run(*args[:n])
            for target, value in zip(args[n:], outs, strict=False):
                target[...] = value  # preallocated outputs
            return outs[0] if len(outs) == 1 else tuple(outs)

        return call


def compile_cupy(program: Program, xp: Any, *, name: str = "compiled",
                 make_kernel: Callable[[KernelSpec], Any] | None = None) -> Any:
    """Compile ``program`` to fused CuPy kernels and a generated Python driver.

    Args:
        program: The optimised program.
        xp: The namespace of the non-fused calls (``array_api_compat.cupy``).
        name: The driver function's name (shown in tracebacks).
        make_kernel: ``make_kernel(spec) -> kernel`` with CuPy's calling convention;
            default :func:`cupy_kernel`. Called lazily, on a kernel's first run.

    Returns:
        The driver ``f(*flat_inputs) -> list of outputs``, with ``f.source`` (Python),
        ``f.kernels`` (``[(name, cuda_source), ...]``), ``f.kernel_specs`` and
        ``f.program``.

    Example:
        >>> import numpy as np
        >>> import array_api_compat.numpy as xp
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.sum(ops.exp(xs[0]) * 2.0, axis=0) @ xs[1]],
        ...                    [np.zeros((4, 3)), np.zeros((3, 2))])
        >>> f = compile_cupy(program, xp)
        >>> print(f.source, end="")
        def compiled(a, b):
            e = _k0(a, axis=(0,), keepdims=False)
            f = xp.matmul(e, b)
            return [f]
        >>> [name for name, _ in f.kernels]
        ['unijax_reduce_0']
    """
    fn_name = name if name.isidentifier() and not keyword.iskeyword(name) else "compiled"
    steps, specs, names = generate(program)
    glob = SourceGlobals(xp)
    for var, value in program.constants.items():
        glob.namespace[names[var]] = value
    make = make_kernel or cupy_kernel

    def atom(a: Atom) -> str:
        return names[a] if isinstance(a, Var) else glob.value(a.value)

    lines = [f"def {fn_name}({', '.join(names[v] for v in program.inputs)}):"]
    spec_iter = enumerate(specs)
    for step in steps:
        if not isinstance(step, Fused):
            operands = [atom(a) for a in step.inputs]
            operands += param_operands(step.params, glob)
            call = f"{function_text(step, xp, glob)}({', '.join(operands)})"
            targets = ", ".join(names[v] for v in step.outputs)
            if step.primitive.multiple_results and len(step.outputs) == 1:
                targets += ","
            lines.append(f"    {targets} = {call}")
            continue
        k, spec = next(spec_iter)
        slot = f"_k{k}"
        glob.namespace[slot] = _LazyKernel(spec, program, make, glob.namespace, slot)
        args = [names[v] for v in spec.arguments]
        targets = ", ".join(names[v] for v in step.outputs)
        arrays = [v.shape for v in spec.arguments if not v.weak]
        if step.reduction is not None:
            red = step.reduction.params
            lines.append(f"    {targets} = {slot}({', '.join(args)}, axis={red.get('axis')!r}, "
                         f"keepdims={bool(red.get('keepdims', False))!r})")
        elif not arrays or broadcast_shapes(arrays) != step.shape:
            # CuPy sizes an elementwise kernel by its array arguments: allocate the
            # outputs when those do not span the whole index space.
            for v in step.outputs:
                lines.append(f"    {names[v]} = xp.empty({step.shape!r}, "
                             f"dtype={glob.bind(v.dtype, 'dt')})")
            lines.append(f"    {slot}({', '.join(args + [names[v] for v in step.outputs])})")
        else:
            lines.append(f"    {targets} = {slot}({', '.join(args)})")
    results = [f"xp.asarray({names[a]}, copy=True)"
               if isinstance(a, Var) and a in program.constants else atom(a)
               for a in program.outputs]
    lines.append(f"    return [{', '.join(results)}]")
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<unijax cupy {fn_name}>", "exec")
    exec(code, glob.namespace)
    fn = glob.namespace[fn_name]
    fn.source = source
    fn.kernels = [(s.name, s.source) for s in specs]
    fn.kernel_specs = specs
    fn.program = program
    return fn
