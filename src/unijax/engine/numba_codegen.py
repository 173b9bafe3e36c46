"""The Numba lowering's code generator: a staged program as the source of one function.

:func:`generate` writes a :class:`~unijax.engine.ir.Program` as Python source for Numba's
``@njit``: fused elementwise groups (the shared fusion plan,
:func:`unijax.engine.fusion.plan_fusion`) as loop nests of scalar statements, reductions
accumulated in their producers' loops, ``matmul`` as ``np.dot``, and ``scan``,
``while_loop``, ``cond`` and ``checkpoint`` bodies inline as ``for``, ``while`` and ``if``
statements. A scan body is split as the Python lowering's scan runner splits it: its
loop-invariant part runs once, its carry-independent part for every iteration at once,
and the loop keeps the rest. Values of shape ``()`` are scalars; every scalar operation
casts its operands and result to the dtypes the program recorded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from unijax.engine.fusion import Fused, plan_fusion
from unijax.engine.ir import Atom, Equation, Literal, Program, Var
from unijax.engine.numba_primitives import (
    ELEMENTWISE,
    dtype_of,
    initial,
    is_elementwise,
    is_reduction,
    kind,
    literal_dtype,
    promote,
    unsupported,
)
from unijax.engine.optimize import optimize
from unijax.engine.rules._scan_runner import PREPASS_BUDGET, nbytes
from unijax.engine.rules._scan_runner import (
    _split_carry_independent as split_carry_independent,
)
from unijax.engine.subprogram import Body, batch_of, eval_program, hoist

__all__ = ["ROWS_MAX_PROLOGUE", "ROWS_MIN_ELEMENTS", "generate", "generate_rows"]


#: Widths of the integer dtypes, in bits.
_BITS = {f"{sign}int{n}": n for sign in ("", "u") for n in (8, 16, 32, 64)}


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "_NAN"
    if math.isinf(value):
        return "_INF" if value > 0 else "(-_INF)"
    return repr(value)


class _Emitter:
    """Writes one program (and, inline, its bodies) as the statements of one function."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[Var, str] = {}
        self.count = 0
        self.constants: list[Any] = []
        self.const_names: list[str] = []
        self.const_ids: dict[int, str] = {}
        #: Values of fused loops written to arrays.
        self.stored: set[Var] = set()
        #: Values some equation or output reads (a scan's unread ``ys`` are not stacked).
        self.read: set[Var] = set()
        #: Values that are views in neither C nor Fortran order.
        self.strided: set[Var] = set()
        #: Arrays allocated before a loop for values its iterations write (see scan).
        self.buffers: dict[Var, str] = {}
        #: Constant arrays of one repeated value -> the name of that value.
        self.uniform: dict[str, str] = {}
        #: Constant integer arrays ``start + step * flat_index`` -> (start, step, shape).
        self.progressions: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        #: The fused group (ids of its members) computed over rows ``lo:hi`` of its
        #: leading axis only, into output arrays passed in (see :func:`generate_rows`).
        self.rows_group: tuple[int, ...] | None = None
        self.rows_outputs: dict[Var, str] = {}

    # -- names and atoms ------------------------------------------------------------------

    def fresh(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def name(self, var: Var) -> str:
        name = self.names.get(var)
        if name is None:
            name = self.names[var] = self.fresh("v")
        return name

    def constant(self, var: Var, value: Any) -> None:
        """Constants are arguments of the function (the cache then keys on types only)."""
        name = self.const_ids.get(id(value))
        if name is None:
            name = self.const_ids[id(value)] = f"k{len(self.constants)}"
            self.constants.append(value)
            self.const_names.append(name)
            if _uniform(value):
                # One value repeated (a cotangent of ones times a scale, folded while
                # staging): fused loops read it as a scalar, not from memory.
                self.constants.append(value.reshape(-1)[:1].copy().reshape(()))
                self.const_names.append(f"{name}_u")
                self.uniform[name] = f"{name}_u"
            else:
                step = _progression(value)
                if step is not None:
                    # start + step * i (the counters of random draws, an arange folded
                    # while staging): computed from the loop's index, not read.
                    self.progressions[name] = (int(value.reshape(-1)[0]), step, value.shape)
        self.names[var] = name

    def atom(self, a: Atom) -> str:
        if isinstance(a, Var):
            return self.name(a)
        value = a.value
        if type(value) is float:
            return _float_text(value)
        return repr(value)

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    # -- scalars --------------------------------------------------------------------------

    @staticmethod
    def cast(expr: str, src: str | None, dst: str) -> str:
        if src == dst:
            return expr
        if dst == "bool":
            return f"({expr} != 0)"
        return f"np.{dst}({expr})"

    # -- programs -------------------------------------------------------------------------

    def program(self, program: Program, inputs: Sequence[str], indent: int) -> list[str]:
        """Emit ``program`` reading ``inputs`` (names); returns its output expressions."""
        for var, name in zip(program.inputs, inputs, strict=True):
            self.names[var] = name
        for var, value in program.constants.items():
            self.constant(var, value)
        self.read.update(a for e in program.equations for a in e.inputs if isinstance(a, Var))
        self.read.update(a for a in program.outputs if isinstance(a, Var))
        steps = plan_fusion(program, is_elementwise, is_reduction)
        for step in steps:
            if isinstance(step, Fused):
                if step.reduction is None:
                    self.elementwise(step, indent)
                else:
                    self.reduction(step.reduction, list(step.members), step.shape, indent)
            else:
                self.equation(step, indent)
        return [self.atom(a) for a in program.outputs]

    def equation(self, eqn: Equation, indent: int) -> None:
        name = eqn.primitive.name
        if is_elementwise(eqn):
            self.elementwise(Fused((eqn,), tuple(a for a in eqn.inputs if isinstance(a, Var)),
                                   eqn.outputs, eqn.outputs[0].shape), indent)
        elif is_reduction(eqn):
            x = eqn.inputs[0]
            assert isinstance(x, Var)
            self.reduction(eqn, [], x.shape, indent)
        elif name == "scan":
            self.scan(eqn, indent)
        elif name == "while_loop":
            self.while_loop(eqn, indent)
        elif name == "cond":
            self.cond(eqn, indent)
        elif name == "checkpoint":
            outs = self.program(eqn.params["body"].program,
                                [self.atom(a) for a in eqn.inputs], indent)
            for v, expr in zip(eqn.outputs, outs, strict=True):
                self.emit(indent, f"{self.name(v)} = {expr}")
        else:
            self.structural(eqn, indent)

    def structural(self, eqn: Equation, indent: int) -> None:
        name = eqn.primitive.name
        (out,) = eqn.outputs
        ins = [self.atom(a) for a in eqn.inputs]
        x = eqn.inputs[0]
        assert isinstance(x, Var)
        target = self.name(out)
        if name == "matmul":
            # BLAS needs C or Fortran order; a general transpose has neither.
            ops = [f"np.ascontiguousarray({t})" if a in self.strided else t
                   for a, t in zip(eqn.inputs, ins, strict=True)]
            expr = f"np.dot({ops[0]}, {ops[1]})"
        elif name == "getitem":
            expr = self._basic_index(eqn.params["key"], x, out, ins[0])
        elif name in ("stack", "concat"):
            self._join(eqn, ins, indent)
            return
        elif name in ("reshape", "expand_dims", "squeeze"):
            if out.shape == x.shape:
                expr = ins[0]
            elif x.shape == ():
                expr = f"np.full({out.shape!r}, {ins[0]})"
            elif out.shape == ():
                expr = f"np.ascontiguousarray({ins[0]}).reshape(-1)[0]"
            else:
                expr = f"np.ascontiguousarray({ins[0]}).reshape({out.shape!r})"
        else:
            ndim = len(x.shape)
            if name == "matrix_transpose":
                perm = (*range(ndim - 2), ndim - 1, ndim - 2)
            elif name == "permute_dims":
                perm = tuple(int(a) for a in eqn.params["axes"])
            else:  # moveaxis
                source = [s % ndim for s in _ints(eqn.params["source"])]
                dest = [d % ndim for d in _ints(eqn.params["destination"])]
                rest = [i for i in range(ndim) if i not in source]
                order: list[int | None] = [None] * ndim
                for s, d in zip(source, dest, strict=True):
                    order[d] = s
                it = iter(rest)
                perm = tuple(next(it) if o is None else o for o in order)
            if perm == tuple(range(ndim)):
                expr = ins[0]
            elif perm == (1, 0):
                expr = f"{ins[0]}.T"  # Fortran order: BLAS reads it without a copy
            else:
                expr = f"np.transpose({ins[0]}, {perm!r})"
                self.strided.add(out)
        self.emit(indent, f"{target} = {expr}")

    def _basic_index(self, key: Sequence[tuple[Any, ...]], x: Var, out: Var, text: str
                     ) -> str:
        """``x[key]`` for a key of integers, slices and new axes (a view, as NumPy's)."""
        parts = []
        for item in key:
            if item[0] == "int":
                parts.append(str(item[1]))
            elif item[0] == "slice":
                start, stop, step = item[1:]
                parts.append(f"{start}:{'' if stop is None else stop}:{step}")
        expr = f"{text}[{', '.join(parts)}]" if parts else text
        new_axes = any(item[0] == "none" for item in key)
        if sum(item[0] == "int" for item in key) == len(x.shape):
            # Every axis taken by an integer: a scalar, as every value of shape () is.
            return f"np.full({out.shape!r}, {expr})" if new_axes else expr
        if new_axes:
            return f"np.ascontiguousarray({expr}).reshape({out.shape!r})"
        if x in self.strided or not _contiguous_view(x.shape, key):
            self.strided.add(out)
        return expr

    def _join(self, eqn: Equation, ins: Sequence[str], indent: int) -> None:
        """``stack`` and ``concat``: each operand copied into its part of the result."""
        (out,) = eqn.outputs
        target = self.name(out)
        self.emit(indent, f"{target} = np.empty({out.shape!r}, np.{dtype_of(out)})")
        axis = eqn.params.get("axis", 0)
        shapes = [a.shape for a in eqn.inputs if isinstance(a, Var)]  # no literals here
        if eqn.primitive.name == "concat" and axis is None:
            offset = 0
            for shape, text in zip(shapes, ins, strict=True):
                n = math.prod(shape)
                self.emit(indent, f"{target}[{offset}:{offset + n}] = "
                          f"np.ascontiguousarray({text}).reshape(-1)" if shape else
                          f"{target}[{offset}] = {text}")
                offset += n
            return
        axis = int(axis) % len(out.shape)
        offset = 0
        for shape, text in zip(shapes, ins, strict=True):
            if eqn.primitive.name == "stack":
                part = str(offset)
                offset += 1
            else:
                n = shape[axis]
                part = f"{offset}:{offset + n}"
                offset += n
            self.emit(indent, f"{target}[{', '.join([':'] * axis + [part])}] = {text}")

    # -- fused loops ----------------------------------------------------------------------

    def _loop_head(self, shape: tuple[int, ...], indent: int, rows: bool = False
                   ) -> tuple[list[str], int]:
        index = [self.fresh("i") for _ in shape]
        for d, i in enumerate(index):
            extent = "lo, hi" if rows and d == 0 else str(shape[d])
            self.emit(indent + d, f"for {i} in range({extent}):")
        return index, indent + len(shape)

    def _read(self, var: Var, index: Sequence[str], shape: tuple[int, ...]) -> str:
        """The element of input ``var`` at ``index`` of the loop over ``shape``
        (broadcast: missing leading axes and axes of size 1 read element 0)."""
        if var.shape == ():
            return self.name(var)
        scalar = self.uniform.get(self.name(var))
        if scalar is not None:
            return scalar
        progression = self.progressions.get(self.name(var))
        if progression is not None and progression[2] == tuple(shape):
            start, step, _ = progression
            flat = " + ".join(f"{i} * {st}" if st != 1 else i
                              for i, st in zip(index, _c_strides(shape), strict=True))
            return f"np.{dtype_of(var)}({start} + {step} * ({flat}))"
        offset = len(shape) - len(var.shape)
        parts = ["0" if d == 1 and shape[offset + k] != 1 else index[offset + k]
                 for k, d in enumerate(var.shape)]
        return f"{self.name(var)}[{', '.join(parts)}]"

    def _members(self, members: Sequence[Equation], index: Sequence[str],
                 shape: tuple[int, ...], indent: int, keep: Sequence[Var] = ()
                 ) -> dict[Var, str]:
        """Emit each member as a scalar statement; returns the local of each value in
        ``keep`` (the values the caller reads after the members).

        The members only one arm of a ``where`` reads (:func:`_arm_members`) are emitted
        inside an ``if`` on its condition: an element computes the arm it takes, not both
        (erfinv's three polynomials cost one).
        """
        homes = _arm_members(members, set(keep))
        local: dict[Var, str] = {}

        def operand(a: Atom, loaded: dict[Var, str], at: int) -> tuple[str, str | None]:
            if isinstance(a, Literal):
                return self.atom(a), literal_dtype(a.value)
            if a in local:
                return local[a], dtype_of(a)
            if a.shape == ():
                return self.name(a), dtype_of(a)
            name = loaded.get(a)
            if name is None:
                name = loaded[a] = self.fresh("e")
                self.emit(at, f"{name} = {self._read(a, index, shape)}")
            return name, dtype_of(a)

        def block(path: tuple[Any, ...], at: int, loaded: dict[Var, str]) -> None:
            for eqn in members:
                if homes[id(eqn)] != path:
                    continue
                (out,) = eqn.outputs
                dst = dtype_of(out)
                assert dst is not None
                arms = [(*path, (id(eqn), k)) for k in (1, 2)]
                if eqn.primitive.name == "where" and any(
                        homes[id(e)] in arms for e in members):
                    c, ct = operand(eqn.inputs[0], loaded, at)
                    name = local[out] = self.fresh("s")
                    self.emit(at, f"if {self.cast(c, ct, 'bool')}:")
                    for k, arm in zip((1, 2), arms, strict=True):
                        if k == 2:
                            self.emit(at, "else:")
                        # Loads inside an arm are not visible after it.
                        inner_loaded = dict(loaded)
                        block(arm, at + 1, inner_loaded)
                        v, vt = operand(eqn.inputs[k], inner_loaded, at + 1)
                        self.emit(at + 1, f"{name} = {self.cast(v, vt, dst)}")
                    continue
                ops = [operand(a, loaded, at) for a in eqn.inputs]
                name = local[out] = self.fresh("s")
                self.emit(at, f"{name} = {self._scalar(eqn, ops, dst)}")

        block((), indent, {})
        return local

    def _scalar(self, eqn: Equation, ops: list[tuple[str, str | None]], dst: str) -> str:
        name = eqn.primitive.name
        cast = self.cast
        if name == "where":
            (c, ct), (a, at), (b, bt) = ops
            return f"({cast(a, at, dst)} if {cast(c, ct, 'bool')} else {cast(b, bt, dst)})"
        if name == "clip":
            x, xt = ops[0]
            expr = cast(x, xt, dst)
            lo_hi = [(op, side) for op, side in zip(ops[1:], ("max", "min"), strict=False)
                     if op[0] != "None"]
            for (bound, bt), side in lo_hi:
                b = cast(bound, bt, dst)
                cmp = ">=" if side == "max" else "<="
                expr = f"(({expr}) if (({expr}) {cmp} {b} or ({expr}) != ({expr})) else {b})"
            return cast(expr, dst, dst)
        typing, _, template = ELEMENTWISE[name]
        if typing == "shift":
            return self._shift(name, [cast(e, t, dst) for e, t in ops], dst, eqn.inputs[1])
        if typing == "result":
            args = [cast(e, t, dst) for e, t in ops]
        elif typing == "compare":
            common = promote([t for _, t in ops], [isinstance(a, Var) and not a.weak
                                                    for a in eqn.inputs])
            args = [cast(e, t, common) for e, t in ops]
        elif typing == "logical":
            args = [cast(e, t, "bool") for e, t in ops]
        else:
            args = [e for e, _ in ops]
            if name == "isnan" and kind(ops[0][1] or "f") != "f":
                return "False"
            if name in ("isinf",) and kind(ops[0][1] or "f") != "f":
                return "False"
            if name == "isfinite" and kind(ops[0][1] or "f") != "f":
                return "True"
        expr = template.format(*args)
        return cast(expr, None, dst) if typing == "result" and dst != "bool" else expr

    @staticmethod
    def _shift(name: str, args: list[str], dst: str, amount: Atom) -> str:
        """NumPy's shift: in range, the machine's; by a negative amount or the width or
        more, 0 (a left shift, or a logical right one) or the sign (an arithmetic one)."""
        a, b = args
        bits = _BITS[dst]
        op = "<<" if name == "bitwise_left_shift" else ">>"
        if isinstance(amount, Literal) and 0 <= int(amount.value) < bits:
            return f"np.{dst}({a} {op} {b})"
        in_range = f"{b} < {bits}" if kind(dst) == "u" else f"0 <= {b} < {bits}"
        if name == "bitwise_left_shift":
            return f"np.{dst}(({a} << {b}) if {in_range} else 0)"
        fill = f"(-1 if {a} < 0 else 0)" if kind(dst) == "i" else "0"
        return f"np.{dst}(({a} >> {b}) if {in_range} else {fill})"

    def elementwise(self, fused: Fused, indent: int) -> None:
        shape = fused.shape
        if shape == ():
            local = self._members(fused.members, [], shape, indent, fused.outputs)
            for v in fused.outputs:
                self.emit(indent, f"{self.name(v)} = {local[v]}")
            return
        rows = self.rows_group == tuple(map(id, fused.members))
        for v in fused.outputs:
            if rows:
                self.names[v] = self.rows_outputs[v]
                continue
            buffer = self.buffers.get(v)
            self.emit(indent, f"{self.name(v)} = " + (
                f"np.empty({v.shape!r}, np.{dtype_of(v)})" if buffer is None else buffer))
        index, inner = self._loop_head(shape, indent, rows)
        local = self._members(fused.members, index, shape, inner, fused.outputs)
        for v in fused.outputs:
            self.emit(inner, f"{self._read(v, index, shape)} = {local[v]}")
        self.stored.update(fused.outputs)

    def reduction(self, eqn: Equation, members: list[Equation], shape: tuple[int, ...],
                  indent: int) -> None:
        (x,) = eqn.inputs
        assert isinstance(x, Var)
        (out,) = eqn.outputs
        op_name = eqn.primitive.name
        dst = dtype_of(out)
        assert dst is not None
        ndim = len(shape)
        axis = eqn.params.get("axis")
        axes = set(range(ndim)) if axis is None else {int(a) % max(ndim, 1)
                                                       for a in _ints(axis)}
        keepdims = bool(eqn.params.get("keepdims", False))
        if op_name == "sum" and self._contraction(x, members, shape, axes, keepdims, out,
                                                  indent):
            return
        if op_name in ("argmax", "argmin"):
            self._arg_reduction(eqn, members, shape, axes, keepdims, indent)
            return
        acc_type = "float64" if op_name == "mean" else dst
        init = initial(op_name, acc_type)
        count = math.prod(shape[d] for d in axes)
        target = self.name(out)
        scalar = out.shape == ()
        blocked = scalar and op_name in ("sum", "mean") and kind(acc_type) == "f" and \
            math.prod(shape) > 256
        if scalar:
            self.emit(indent, f"{target} = np.{acc_type}({init})")
            if blocked:
                self.emit(indent, f"{target}_b = np.{acc_type}(0)")
                self.emit(indent, f"{target}_n = 0")
        else:
            self.emit(indent, f"{target} = np.full({out.shape!r}, {init}, np.{acc_type})")
        # Values an earlier loop already stored are read, not recomputed (the plan's
        # reduction cone may repeat members of a group whose values are also written).
        members = _cone_excluding(members, x, self.stored)
        index, inner = self._loop_head(shape, indent)
        local = self._members(members, index, shape, inner, [x])
        value = local.get(x)
        if value is None:
            value = self._read(x, index, shape)
        value = self.cast(value, dtype_of(x), acc_type)
        if scalar:
            slot = target
        else:
            kept = [("0" if d in axes else index[d]) if keepdims else index[d]
                    for d in range(ndim) if keepdims or d not in axes]
            slot = f"{target}[{', '.join(kept)}]"
        if blocked:
            # Partial sums of 256 elements keep the rounding error close to NumPy's
            # pairwise summation (a running sum's error grows with the length).
            self.emit(inner, f"{target}_b += {value}")
            self.emit(inner, f"{target}_n += 1")
            self.emit(inner, f"if {target}_n == 256:")
            self.emit(inner + 1, f"{target} += {target}_b")
            self.emit(inner + 1, f"{target}_b = 0")
            self.emit(inner + 1, f"{target}_n = 0")
        elif op_name in ("sum", "mean"):
            self.emit(inner, f"{slot} += {value}")
        elif op_name == "prod":
            self.emit(inner, f"{slot} *= {value}")
        elif op_name == "any":
            self.emit(inner, f"if {value}:")
            self.emit(inner + 1, f"{slot} = True")
        elif op_name == "all":
            self.emit(inner, f"if not {value}:")
            self.emit(inner + 1, f"{slot} = False")
        else:
            cmp = ">" if op_name == "max" else "<"
            tmp = self.fresh("r")
            self.emit(inner, f"{tmp} = {value}")
            self.emit(inner, f"if {tmp} {cmp} {slot} or {tmp} != {tmp}:")
            self.emit(inner + 1, f"{slot} = {tmp}")
        if blocked:
            self.emit(indent, f"{target} += {target}_b")
        if op_name == "mean":
            if scalar:
                self.emit(indent, f"{target} = np.{dst}({target} / {count})")
            else:
                self.emit(indent, f"{target} = ({target} / {count}).astype(np.{dst})")

    def _arg_reduction(self, eqn: Equation, members: list[Equation],
                       shape: tuple[int, ...], axes: set[int], keepdims: bool,
                       indent: int) -> None:
        """``argmax``/``argmin``: the first position of the extreme, or of the first
        ``nan`` (NumPy's), over one axis or all of them (flat positions)."""
        (x,) = eqn.inputs
        assert isinstance(x, Var)
        (out,) = eqn.outputs
        src = dtype_of(x)
        assert src is not None
        extreme = "max" if eqn.primitive.name == "argmax" else "min"
        target, best = self.name(out), self.fresh("best")
        init = initial(extreme, src)
        if out.shape == ():
            self.emit(indent, f"{best} = np.{src}({init})")
            self.emit(indent, f"{target} = 0")
        else:
            self.emit(indent, f"{best} = np.full({out.shape!r}, {init}, np.{src})")
            self.emit(indent, f"{target} = np.zeros({out.shape!r}, np.int64)")
        members = _cone_excluding(members, x, self.stored)
        index, inner = self._loop_head(shape, indent)
        local = self._members(members, index, shape, inner, [x])
        value = self.fresh("r")
        self.emit(inner, f"{value} = {local.get(x) or self._read(x, index, shape)}")
        ndim = len(shape)
        if out.shape == ():
            slot, best_slot = target, best
        else:
            kept = [("0" if d in axes else index[d]) if keepdims else index[d]
                    for d in range(ndim) if keepdims or d not in axes]
            slot, best_slot = (f"{name}[{', '.join(kept)}]" for name in (target, best))
        if len(axes) == 1:
            position = index[next(iter(axes))]
        else:
            strides = _c_strides(shape)
            position = " + ".join(f"{i} * {st}" for i, st in zip(index, strides, strict=True))
        cmp = ">" if extreme == "max" else "<"
        self.emit(inner, f"if {best_slot} == {best_slot} and "
                  f"({value} {cmp} {best_slot} or {value} != {value}):")
        self.emit(inner + 1, f"{best_slot} = {value}")
        self.emit(inner + 1, f"{slot} = {position}")

    def _contraction(self, x: Var, members: list[Equation], shape: tuple[int, ...],
                     axes: set[int], keepdims: bool, out: Var, indent: int) -> bool:
        """``sum(a * b, axis=0)`` with ``a`` of shape ``(T, M, 1)`` and ``b`` of shape
        ``(T, 1, N)`` (the sum of outer products a reverse pass makes of a batched matrix
        product) as one matrix product ``a.T @ b``, which BLAS runs far faster."""
        members = _cone_excluding(members, x, self.stored)
        if len(shape) != 3 or axes != {0} or keepdims or len(members) != 1:
            return False
        (eqn,) = members
        if eqn.primitive.name != "multiply" or eqn.outputs[0] is not x:
            return False
        a, b = eqn.inputs
        if not (isinstance(a, Var) and isinstance(b, Var)) or dtype_of(a) != dtype_of(b) or \
                dtype_of(a) != dtype_of(out) or kind(dtype_of(out) or "b") != "f":
            return False
        t, m, n = shape
        if a.shape == (t, 1, n) and b.shape == (t, m, 1):
            a, b = b, a
        if a.shape != (t, m, 1) or b.shape != (t, 1, n):
            return False
        left = f"np.ascontiguousarray({self.name(a)}).reshape(({t}, {m})).T"
        right = f"np.ascontiguousarray({self.name(b)}).reshape(({t}, {n}))"
        self.emit(indent, f"{self.name(out)} = np.dot({left}, {right})")
        return True

    # -- control flow ---------------------------------------------------------------------

    def scan(self, eqn: Equation, indent: int) -> None:
        p = eqn.params
        body, nc, ncar, length = p["body"], p["num_consts"], p["num_carry"], p["length"]
        ins = [self.atom(a) for a in eqn.inputs]
        consts, init, xs = ins[:nc], ins[nc:nc + ncar], ins[nc + ncar:]
        prelude, pre, loop, used = _scan_parts(body, nc, ncar, length)
        # Loop-invariant code once; the carry-independent part for every iteration at
        # once (one matrix product instead of one per iteration); the rest in the loop.
        invariants = [*consts, *self.program(prelude, consts, indent)]
        per_step = [xs[j] for j in used]
        if pre is not None:
            per_step += self.program(pre, [*invariants, *xs], indent)
        carry = [self.fresh("carry") for _ in init]
        for c, first in zip(carry, init, strict=True):
            self.emit(indent, f"{c} = {first}")
        ys_vars = eqn.outputs[ncar:]
        ys = [self.name(v) if v in self.read else None for v in ys_vars]
        for name, v in zip(ys, ys_vars, strict=True):
            if name is not None:
                self.emit(indent, f"{name} = np.empty({v.shape!r}, np.{dtype_of(v)})")
        step, i = self.fresh("step"), self.fresh("i")
        self._hoist_buffers(loop, ncar, step, indent)
        self.emit(indent, f"for {step} in range({length}):")
        self.emit(indent + 1, f"{i} = {length - 1} - {step}" if p["reverse"] else
                  f"{i} = {step}")
        rows = [self.fresh("x") for _ in per_step]
        for r, x in zip(rows, per_step, strict=True):
            self.emit(indent + 1, f"{r} = {x}[{i}]")
        outs = self.program(loop, [*invariants, *carry, *rows], indent + 1)
        for name, expr in zip(ys, outs[ncar:], strict=True):
            if name is not None:
                self.emit(indent + 1, f"{name}[{i}] = {expr}")
        self._assign(carry, outs[:ncar], loop.outputs[:ncar], eqn.outputs[:ncar],
                     indent + 1)
        for v, c in zip(eqn.outputs[:ncar], carry, strict=True):
            self.emit(indent, f"{self.name(v)} = {c}")

    def _hoist_buffers(self, loop: Program, ncar: int, step: str, indent: int) -> None:
        """Allocate the arrays the loop's fused groups write once, before the loop.

        Safe only when every array carry the step returns is written by one of its own
        fused groups: then no value of one iteration survives into a later one except
        through a carry, whose two buffers alternate (the step reads one and writes the
        other), and ``ys`` are copied when stacked.
        """
        # In program order (a dict, not a set): the source, and so its disk-cache key,
        # must not depend on how Vars hash in this process.
        fused = dict.fromkeys(v for e in loop.equations if is_elementwise(e)
                              for v in e.outputs if v.shape != ())
        carries = loop.outputs[:ncar]
        if not fused or any(not (isinstance(a, Var) and (a.shape == () or a in fused))
                            for a in carries):
            return
        carried = {a for a in carries if isinstance(a, Var) and a.shape != ()}
        for v in fused:
            new = f"np.empty({v.shape!r}, np.{dtype_of(v)})"
            if v in carried:
                first, second = self.fresh("buf"), self.fresh("buf")
                self.emit(indent, f"{first} = {new}")
                self.emit(indent, f"{second} = {new}")
                self.buffers[v] = f"{first} if {step} % 2 == 0 else {second}"
            else:
                name = self.fresh("buf")
                self.emit(indent, f"{name} = {new}")
                self.buffers[v] = name

    def _assign(self, targets: Sequence[str], exprs: Sequence[str], atoms: Sequence[Atom],
                types: Sequence[Var], indent: int) -> None:
        """``targets = exprs`` at once (an expression may read another target)."""
        if not targets:
            return
        values = [self.cast(e, dtype_of(a) if isinstance(a, Var) else literal_dtype(a.value),
                            dtype_of(t) or "float64") if t.shape == () else e
                  for e, a, t in zip(exprs, atoms, types, strict=True)]
        self.emit(indent, f"{', '.join(targets)}, = {', '.join(values)},")

    def while_loop(self, eqn: Equation, indent: int) -> None:
        p = eqn.params
        cond, body, ncc, nbc = p["cond"], p["body"], p["cond_nconsts"], p["body_nconsts"]
        ins = [self.atom(a) for a in eqn.inputs]
        cc, bc, init = ins[:ncc], ins[ncc:ncc + nbc], ins[ncc + nbc:]
        carry = [self.fresh("carry") for _ in init]
        for c, first in zip(carry, init, strict=True):
            self.emit(indent, f"{c} = {first}")
        self.emit(indent, "while True:")
        (pred,) = self.program(cond.program, [*cc, *carry], indent + 1)
        self.emit(indent + 1, f"if not {pred}:")
        self.emit(indent + 2, "break")
        outs = self.program(body.program, [*bc, *carry], indent + 1)
        self._assign(carry, outs, body.program.outputs, eqn.outputs, indent + 1)
        for v, c in zip(eqn.outputs, carry, strict=True):
            self.emit(indent, f"{self.name(v)} = {c}")

    def cond(self, eqn: Equation, indent: int) -> None:
        branches = eqn.params["branches"]
        index, *operands = [self.atom(a) for a in eqn.inputs]
        chosen = self.fresh("branch")
        self.emit(indent, f"{chosen} = min(max(int({index}), 0), {len(branches) - 1})")
        targets = [self.name(v) for v in eqn.outputs]
        for k, branch in enumerate(branches):
            if len(branches) == 1:
                self.emit(indent, "if True:")
            elif k == 0:
                self.emit(indent, f"if {chosen} == 0:")
            elif k == len(branches) - 1:
                self.emit(indent, "else:")
            else:
                self.emit(indent, f"elif {chosen} == {k}:")
            outs = self.program(branch.program, operands, indent + 1)
            self._assign(targets, outs, branch.program.outputs, eqn.outputs, indent + 1)


def _scan_parts(body: Any, nc: int, ncar: int, length: int
                ) -> tuple[Program, Program | None, Program, list[int]]:
    """A scan body split as the Python lowering's scan runner splits it: ``(prelude, pre,
    loop, used)``: the loop-invariant prelude (constants in, hoisted values out), the
    batched carry-independent pre-pass (invariants and whole ``xs`` in, one stacked value
    per iteration out; ``None`` when there is none, it would stack more than the runner's
    budget, or Numba cannot lower it), the loop step (invariants, carry, the ``xs`` rows it
    reads at ``used``, then the pre-pass rows) and ``used``."""
    key = ("numba_scan", nc, ncar, length)
    parts = body._compiled.get(key)
    if parts is not None:
        return parts
    prelude, step = hoist(optimize(body.program), nc)
    n_inv = nc + len(prelude.outputs)
    n_xs = len(body.examples) - nc - ncar
    pre_body: Program | None = None
    pre, loop, used = split_carry_independent(step, n_inv, ncar)
    stacked = length * sum(nbytes(v) for v in pre.outputs if isinstance(v, Var))
    if pre.equations and length > 1 and stacked <= PREPASS_BUDGET:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # example values, not results
                consts = list(body.examples[:nc])
                invariants = [*consts, *eval_program(prelude, consts)]
                rows = list(body.examples[nc + ncar:])
                example = Body(pre, [*invariants, *rows],
                               eval_program(pre, [*invariants, *rows]), f"{body.name}_pre")
                batched, _ = batch_of(example, [False] * n_inv + [True] * n_xs, length,
                                      force=[True] * len(pre.outputs))
            if unsupported(batched.program) is None:
                pre_body = batched.program
        except Exception:  # a pre-pass is an optimisation: without it the loop does all
            pre_body = None
    if pre_body is None:
        loop, used = step, list(range(n_xs))
    parts = (prelude, pre_body, loop, used)
    body._compiled[key] = parts
    return parts


def _cone_excluding(members: Sequence[Equation], target: Var, stored: set[Var]
                    ) -> list[Equation]:
    """The members ``target`` needs when values in ``stored`` are read from memory."""
    defining = {v: e for e in members for v in e.outputs}
    needed: set[int] = set()
    stack = [target]
    while stack:
        v = stack.pop()
        e = defining.get(v)
        if e is None or id(e) in needed or (v in stored and v is not target):
            continue
        needed.add(id(e))
        stack.extend(a for a in e.inputs if isinstance(a, Var))
    return [e for e in members if id(e) in needed]


#: Members an arm of a ``where`` must hold before it is computed only where taken: a
#: branch costs more than a select of a few operations (and stops vectorisation).
ARM_MIN_MEMBERS = 4


def _arm_members(members: Sequence[Equation], keep: set[Var]) -> dict[int, tuple[Any, ...]]:
    """Where each member is emitted: ``()`` in the loop body, or the path of ``where``
    arms (``(id(where), 1 or 2)`` pairs, outermost first) that alone read its value.

    A member belongs to the innermost arm enclosing every use of its value (the common
    prefix of its uses' paths); a value the caller keeps, or an arm with fewer than
    :data:`ARM_MIN_MEMBERS` members, stays where its ``where`` is.
    """
    home: dict[int, tuple[Any, ...]] = {}
    users: dict[Var, list[tuple[Equation, int]]] = {}
    for eqn in members:
        for k, a in enumerate(eqn.inputs):
            if isinstance(a, Var):
                users.setdefault(a, []).append((eqn, k))
    for eqn in reversed(members):
        (out,) = eqn.outputs
        if out in keep or out not in users:
            home[id(eqn)] = ()
            continue
        paths = []
        for user, k in users[out]:
            path = home[id(user)]
            if user.primitive.name == "where" and k in (1, 2) and user.inputs[0] is not out:
                other = user.inputs[3 - k]
                if other is not out:
                    path = (*path, (id(user), k))
            paths.append(path)
        common = paths[0]
        for p in paths[1:]:
            n = 0
            while n < min(len(common), len(p)) and common[n] == p[n]:
                n += 1
            common = common[:n]
        home[id(eqn)] = common
    # Arms too small to branch on go back to their where's block.
    sizes: dict[tuple[Any, ...], int] = {}
    for path in home.values():
        for n in range(1, len(path) + 1):
            sizes[path[:n]] = sizes.get(path[:n], 0) + 1
    for key, path in home.items():
        for n in range(1, len(path) + 1):
            if sizes[path[:n]] < ARM_MIN_MEMBERS:
                home[key] = path[:n - 1]
                break
    return home


#: Smaller constants are read from memory (the check costs more than it saves).
UNIFORM_MIN_SIZE = 64


def _uniform(value: Any) -> bool:
    """Whether ``value`` is a NumPy array of at least :data:`UNIFORM_MIN_SIZE` elements
    that all equal the first (``nan`` never does)."""
    size = getattr(value, "size", 0)
    if not isinstance(size, int) or size < UNIFORM_MIN_SIZE or \
            not hasattr(value, "reshape"):
        return False
    flat = value.reshape(-1)
    return bool((flat == flat[0]).all())


def _progression(value: Any) -> int | None:
    """The step of an integer array of at least :data:`UNIFORM_MIN_SIZE` elements whose
    C-order values are ``first + step * k``, else ``None``."""
    import numpy as np

    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu" or \
            value.size < UNIFORM_MIN_SIZE:
        return None
    flat = value.reshape(-1).astype(np.int64)
    step = int(flat[1] - flat[0])
    expected = flat[0] + step * np.arange(flat.size, dtype=np.int64)
    return step if bool((flat == expected).all()) else None


def _contiguous_view(shape: tuple[int, ...], key: Sequence[tuple[Any, ...]]) -> bool:
    """Whether ``x[key]`` of a C-ordered ``x`` is in C or Fortran order (BLAS reads it)."""
    import numpy as np

    base = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape,
                                          _c_strides(shape))
    parts: list[Any] = [k[1] if k[0] == "int" else slice(*k[1:]) for k in key]
    view = base[tuple(parts)]
    return bool(view.flags.c_contiguous or view.flags.f_contiguous)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, tuple | list) else (int(value),)



#: Scalar functions of the generated module. ``_tanh`` as ``-t / (t + 2)`` with
#: ``t = expm1(-2|v|)``, signed like ``v``: the C library's ``tanh`` costs twice as much,
#: and one ``expm1`` without a branch (which a random sign mispredicts) stays within 3 ulp
#: of NumPy's, exact for small arguments; the signs of zero, ``inf`` and ``nan`` carry.
#: ``_log1p`` from ``log`` (Goldberg's ``log(u) * x / (u - 1)`` with ``u = 1 + x``, which
#: cancels the rounding of ``u``): the C library's ``log1p`` costs four times as much, and
#: this stays within 2 ulp of NumPy's (float32 arguments are computed in float64).
_HELPERS = (
    "",
    '@numba.njit(inline="always", error_model="numpy")',
    "def _log1p(v):",
    "    x = np.float64(v)",
    "    u = 1.0 + x",
    "    if u == 1.0:",
    "        return x",
    "    if u == _INF:",
    "        return u",
    "    return np.log(u) * (x / (u - 1.0))",
    "",
    '@numba.njit(inline="always", error_model="numpy")',
    "def _tanh(v):",
    "    t = np.expm1(-2.0 * abs(v))",
    "    return np.copysign(-t / (t + 2.0), v)",
)


def generate(program: Program, name: str = "run") -> tuple[str, list[Any]]:
    """The source of the Numba function for ``program`` and its constant arguments.

    The function takes ``(*inputs, *constants)`` (inputs of shape ``()`` as scalars) and
    returns a tuple of the outputs.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.exp(ops.sin(xs[0]) * 2.0)], [np.zeros(3)])
        >>> print(generate(program)[0].split("def run", 1)[1], end="")
        (a):
            v1 = np.empty((3,), np.float64)
            for i2 in range(3):
                e3 = a[i2]
                s4 = np.float64(np.sin(e3))
                s5 = np.float64((s4 * 2.0))
                s6 = np.float64(np.exp(s5))
                v1[i2] = s6
            return (v1,)
    """
    emitter = _Emitter()
    args = [_arg_name(k) for k in range(len(program.inputs))]
    body_lines_start = len(emitter.lines)
    outs = emitter.program(program, args, 1)
    for k, a in enumerate(program.outputs):
        if isinstance(a, Var) and a.shape == () and a not in program.constants:
            dtype = dtype_of(a)
            if a in program.inputs:
                continue
            outs[k] = f"np.{dtype}({outs[k]})" if dtype != "bool" else outs[k]
    body = emitter.lines[body_lines_start:]
    params = ", ".join([*args, *emitter.const_names])
    lines = [*_prelude(), f"def {name}({params}):", *body,
             f"    return ({', '.join(outs)}{',' if outs else ''})", ""]
    return "\n".join(lines), emitter.constants


#: Elements from which :func:`generate_rows` splits a program's rows over threads: below
#: it a thread's start costs more than its share of the work.
ROWS_MIN_ELEMENTS = 1 << 20
#: Elements the equations before the split group may compute (every thread repeats them).
ROWS_MAX_PROLOGUE = 1 << 12


def generate_rows(program: Program, name: str = "run") -> tuple[str, list[Any]] | None:
    """The source of a Numba function computing rows ``lo:hi`` of ``program``'s outputs,
    for programs that end in one large fused elementwise group producing all of them
    (``None`` for any other program).

    The function takes ``(lo, hi, *inputs, *constants, *outputs)``: the outputs are
    arrays of their full shapes that it fills along their leading axis, from ``lo`` to
    ``hi``. The equations before the group (small, at most :data:`ROWS_MAX_PROLOGUE`
    elements) run in every call. Every element is computed as in :func:`generate`, so
    splitting the rows over threads gives the same values, bit for bit.

    Example:
        >>> import numpy as np
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> program, _ = stage(lambda xs: [ops.exp(xs[0]) * 2.0], [np.zeros(3)])
        >>> generate_rows(program) is None  # too small to split
        True
        >>> program, _ = stage(lambda xs: [ops.exp(xs[0]) * 2.0], [np.zeros((1024, 1024))])
        >>> print(generate_rows(program)[0].split("def run", 1)[1], end="")
        (lo, hi, a, o1):
            for i1 in range(lo, hi):
                for i2 in range(1024):
                    e3 = a[i1, i2]
                    s4 = np.float64(np.exp(e3))
                    s5 = np.float64((s4 * 2.0))
                    o1[i1, i2] = s5
            return ()
    """
    outputs = program.outputs
    # What the outputs alone decide comes first: most programs fail it, and then the
    # caller's generate() is the only fusion plan made.
    shape: tuple[int, ...] = getattr(outputs[0], "shape", ()) if outputs else ()
    if len(shape) == 0 or shape[0] < 2 or math.prod(shape) < ROWS_MIN_ELEMENTS or \
            len(set(map(id, outputs))) != len(outputs) or not all(
                isinstance(a, Var) and a.shape == shape for a in outputs):
        return None
    steps = plan_fusion(program, is_elementwise, is_reduction)
    if not steps or not isinstance(steps[-1], Fused):
        return None
    last = steps[-1]
    if last.reduction is not None or last.shape != shape or \
            set(map(id, outputs)) != set(map(id, last.outputs)):
        return None
    prologue = sum(math.prod(v.shape) for step in steps[:-1]
                   for eqn in (step.members if isinstance(step, Fused) else (step,))
                   for v in eqn.outputs)
    if prologue > ROWS_MAX_PROLOGUE:
        return None
    emitter = _Emitter()
    emitter.rows_group = tuple(map(id, last.members))
    out_names = [f"o{k + 1}" for k in range(len(outputs))]
    emitter.rows_outputs = {v: n for v, n in zip(outputs, out_names, strict=True)
                            if isinstance(v, Var)}
    args = [_arg_name(k) for k in range(len(program.inputs))]
    emitter.program(program, args, 1)
    params = ", ".join(["lo", "hi", *args, *emitter.const_names, *out_names])
    lines = [*_prelude(), f"def {name}({params}):", *emitter.lines, "    return ()", ""]
    return "\n".join(lines), emitter.constants


def _prelude() -> list[str]:
    return ["import numpy as np", "import numba", "", "_INF = np.inf", "_NAN = np.nan", "",
            *_HELPERS, "", '@numba.njit(cache=True, error_model="numpy", nogil=True)']


def _arg_name(k: int) -> str:
    text = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        text = chr(ord("a") + r) + text
    return text + ("_" if text in ("if", "in", "is", "or", "as", "np") else "")
