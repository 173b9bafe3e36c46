"""Buffer planning for generated code: where each large result is written.

Straight-line code that allocates a fresh array for every equation pays for it twice on
large arrays: the allocator returns memory that the kernel must fault in page by page
(glibc gives large blocks back to the system when they are freed, so this repeats on
every call), and every intermediate stays alive until the function returns. A backend
whose arrays are mutable and whose functions can write into an existing array (NumPy's
ufuncs and ``matmul`` take ``out=``) avoids both, as XLA's buffer assignment does:

* A result is written into the buffer of a value that is dead by then.
* An intermediate that finds no dead buffer gets a **slot**: an array the compiled
  function keeps between calls, so the second call allocates nothing. Results that
  reach the caller never live in a slot, since the next call would overwrite them, and
  neither do intermediates above ``max_slot_bytes``: the function would hold on to them
  between calls (NumPy maps arrays that large in huge pages, so faulting them in costs
  little anyway).
* Every other large value is released right after its last use.

The plan is computed from the IR alone, so it can be checked without running anything:

* A buffer is **owned** when an equation that writes into arrays (see ``out_kind``)
  produced it during this call, or when it is a slot. Inputs, constants and the results
  of every other equation are never written into: they may belong to the caller or be
  views.
* An owned buffer is **free** once every value that may alias it is dead. Any result of
  an equation that neither writes into arrays nor is known to return a new array
  (``reshape``, ``matrix_transpose``, indexing, a custom implementation ...) is assumed
  to be a view of its array inputs, so it keeps their buffers alive, and a value is
  *returned* when a program output may alias it.
* An elementwise equation may write into one of its own operands that dies there
  (``c = multiply(a, b, out=a)``): elementwise kernels read each element before writing
  it. Any other equation (``matmul``) takes a buffer only once it is already free.
* Only arrays of at least ``min_bytes`` take part: below that, allocation is cheap and
  the extra keyword argument would cost more than it saves.

Example:
    >>> import numpy as np
    >>> from unijax.engine.namespace import array_functions as ops
    >>> from unijax.engine.staging import stage
    >>> program, _ = stage(lambda xs: [ops.sum(ops.exp(ops.sin(xs[0]) * 2.0))],
    ...                    [np.zeros(100)])
    >>> plan = plan_buffers(program, lambda e: "elementwise", min_bytes=0)
    >>> [(program.equations[i].primitive.name, where) for i, where in plan.writes.items()]
    [('sin', 'slot 0'), ('multiply', 'slot 0'), ('exp', 'slot 0')]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TypingLiteral

from unijax.engine.ir import Equation, Program, Var

__all__ = ["BufferPlan", "BufferSupport", "OutForm", "OutKind", "plan_buffers"]

#: What an equation's result can be: written into an existing array, possibly one of its
#: own operands (``"elementwise"``) or only an unrelated one (``"general"``); always a new
#: array but not writable into (``"new"``); or anything, even a view of its operands
#: (``None``).
OutKind = TypingLiteral["elementwise", "general", "new"] | None


@dataclass(frozen=True)
class OutForm:
    """A backend function that writes its result into an array passed as ``out=``.

    Attributes:
        function: Called as ``function(*operands, out=array)``; it must compute exactly
            what the primitive's implementation computes.
        elementwise: Whether ``out`` may be one of the operands.

    Example:
        >>> import numpy as np
        >>> form = OutForm(np.add, elementwise=True)
        >>> a = np.ones(3)
        >>> form.function(a, 1.0, out=a) is a
        True
    """

    function: Callable[..., Any]
    elementwise: bool


@dataclass(frozen=True)
class BufferSupport:
    """What a backend with mutable arrays tells the code generator about its functions.

    Attributes:
        out_form: For a primitive, the function that writes its result into ``out=``, or
            ``None``.
        returns_new: Whether a primitive's implementation always returns a new array that
            shares no memory with its operands (reductions, for instance). Results of
            primitives for which this is false are taken to be views of their operands.
        min_bytes: Arrays smaller than this are allocated and released as usual.
        max_slot_bytes: Intermediates larger than this get no slot: they are allocated
            on each call (and still reused within it), so a compiled function never
            holds on to more than a few of them between calls.

    Example:
        >>> import numpy as np
        >>> import array_api_compat.numpy as xp
        >>> from unijax.engine.lower import compile_python
        >>> from unijax.engine.namespace import array_functions as ops
        >>> from unijax.engine.staging import stage
        >>> support = BufferSupport(
        ...     out_form=lambda prim: OutForm(np.negative, True) if prim.name == "negative"
        ...     else None,
        ...     returns_new=lambda prim: prim.name == "sum", min_bytes=0)
        >>> program, _ = stage(lambda xs: [ops.sum(-(-xs[0]))], [np.ones(4)])
        >>> f = compile_python(program, xp, buffers=support)
        >>> "out=b" in f.source, float(f(np.ones(4))[0])
        (True, 4.0)
    """

    out_form: Callable[[Any], OutForm | None]
    returns_new: Callable[[Any], bool]
    min_bytes: int = 1 << 16
    max_slot_bytes: int = 1 << 24


@dataclass
class BufferPlan:
    """Where large results are written and when values are released.

    Attributes:
        out: For an equation index, the var whose dead buffer receives its result.
        slot: For an equation index, the slot that receives its result.
        slots: Each slot's ``(shape, dtype)``: the arrays kept between calls.
        release: For an equation index, the vars whose last use it is and that are worth
            releasing right after it (large, defined by an equation).
        writes: For each planned equation, the buffer its result lands in: ``"slot k"``,
            or ``"new i"`` for the array equation ``i`` allocated for the caller (for
            reading plans and testing them).
    """

    out: dict[int, Var] = field(default_factory=dict)
    slot: dict[int, int] = field(default_factory=dict)
    slots: list[tuple[tuple[int, ...], Any]] = field(default_factory=list)
    release: dict[int, tuple[Var, ...]] = field(default_factory=dict)
    writes: dict[int, str] = field(default_factory=dict)


def _nbytes(var: Var) -> int:
    itemsize = getattr(var.dtype, "itemsize", None)
    if var.weak or not isinstance(itemsize, int):
        return 0
    return math.prod(var.shape) * itemsize


class _AliasSets:
    """Union-find over vars: vars in one set may share memory."""

    def __init__(self) -> None:
        self.parent: dict[Var, Var] = {}

    def find(self, v: Var) -> Var:
        root = self.parent.setdefault(v, v)
        while root is not self.parent[root]:
            root = self.parent[root]
        self.parent[v] = root
        return root

    def union(self, a: Var, b: Var) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.parent[rb] = ra


def plan_buffers(program: Program, out_kind: Callable[[Equation], OutKind], *,
                 min_bytes: int = 1 << 16, max_slot_bytes: int | None = None) -> BufferPlan:
    """Plan buffer reuse, slots and early release for ``program`` (see the module docstring).

    Args:
        program: The (optimised) program.
        out_kind: For each equation, whether and how it can write its result into an
            existing array of the result's shape and dtype (see :data:`OutKind`).
        min_bytes: Arrays smaller than this are neither reused nor released early.
        max_slot_bytes: Larger intermediates are allocated per call instead of in a slot.

    Returns:
        The :class:`BufferPlan`.
    """
    eqns = program.equations
    never = len(eqns)  # "used after the last equation": returned, or the caller's
    last_use: dict[Var, int] = {}
    for i, eqn in enumerate(eqns):
        for a in eqn.inputs:
            if isinstance(a, Var):
                last_use[a] = i
    for a in program.outputs:
        if isinstance(a, Var):
            last_use[a] = never

    # Which values may share memory: a result of an equation that cannot write into
    # arrays, and does not always return a new one, is taken to be a view of its inputs.
    kinds = [None if e.primitive.multiple_results or len(e.outputs) != 1 else out_kind(e)
             for e in eqns]
    aliases = _AliasSets()
    for eqn, kind in zip(eqns, kinds, strict=True):
        if kind is None:
            for out in eqn.outputs:
                for a in eqn.inputs:
                    if isinstance(a, Var) and not a.weak:
                        aliases.union(out, a)
    set_dies: dict[Var, int] = {}
    for v, i in last_use.items():
        root = aliases.find(v)
        set_dies[root] = max(set_dies.get(root, -1), i)
    for v in (*program.inputs, *program.constants):  # never written into
        set_dies[aliases.find(v)] = never

    def dies(v: Var) -> int:
        return set_dies.get(aliases.find(v), -1)

    plan = BufferPlan()
    owned: dict[Var, bool] = {}  # owned var -> whether its buffer is a slot
    buffer: dict[Var, str] = {}  # owned var -> its buffer's name in ``plan.writes``
    freed_after: dict[int, list[Var]] = {}  # equation index -> owned vars dead after it
    free: dict[tuple[tuple[int, ...], Any], list[Var]] = {}
    extended_use = dict(last_use)
    for i, (eqn, kind) in enumerate(zip(eqns, kinds, strict=True)):
        out = eqn.outputs[0]
        # A 0-d result stays as the backend returns it (NumPy: a scalar, not an array).
        if kind not in (None, "new") and out.shape and _nbytes(out) >= min_bytes:
            key = (out.shape, out.dtype)
            returned = dies(out) == never

            def usable(v: Var, returned: bool = returned) -> bool:
                return not (returned and owned[v])  # a slot must never reach the caller

            target = None
            if kind == "elementwise":
                target = next((a for a in eqn.inputs
                               if isinstance(a, Var) and a in owned and dies(a) == i
                               and (a.shape, a.dtype) == key and usable(a)), None)
            if target is None:
                target = next((v for v in reversed(free.get(key, ())) if usable(v)), None)
                if target is not None:
                    free[key].remove(target)
            if target is not None:
                plan.out[i] = target
                owned[out] = owned.pop(target)
                buffer[out] = buffer.pop(target)
                extended_use[target] = max(extended_use.get(target, -1), i)
            elif not returned and (max_slot_bytes is None or _nbytes(out) <= max_slot_bytes):
                plan.slot[i] = len(plan.slots)
                owned[out], buffer[out] = True, f"slot {len(plan.slots)}"
                plan.slots.append(key)
            else:  # an array for the caller, or too large to keep between calls
                owned[out], buffer[out] = False, f"new {i}"
            plan.writes[i] = buffer[out]
            freed_after.setdefault(max(dies(out), i), []).append(out)
        # Buffers whose every alias is dead now are free for the equations that follow.
        for v in freed_after.pop(i, ()):
            if v in owned:
                free.setdefault((v.shape, v.dtype), []).append(v)
    # A dead buffer that a later equation writes into stays bound until then; every other
    # large value an equation defines is released after its last use.
    defined = {v for e in eqns for v in e.outputs}
    release: dict[int, list[Var]] = {}
    for v, i in extended_use.items():
        if v in defined and i < never and _nbytes(v) >= min_bytes:
            release.setdefault(i, []).append(v)
    for i, vs in release.items():
        plan.release[i] = tuple(sorted(vs, key=lambda v: v.id))
    return plan
