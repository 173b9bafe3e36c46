"""Fusion planning: which equations of a staged program run together in one kernel.

A compiler that emits its own kernels (CuPy's, see :mod:`unijax_cupy.kernels`) wins most
by running a chain of elementwise equations as *one* kernel: every intermediate stays in
registers instead of making a round trip through device memory, and one launch replaces
many. This module decides the grouping from the IR alone; it knows nothing of CUDA, so a
plan can be inspected, tested and executed anywhere.

The plan is a list of steps in a valid execution order. A step is either an
:class:`~unijax.engine.ir.Equation` run on its own, or a :class:`Fused` kernel:

* an **elementwise** kernel evaluates its member equations at every index of its
  ``shape`` (members whose own shape is smaller are broadcast, exactly as the backend
  would broadcast their results) and writes the members' values that are needed
  elsewhere;
* a **reduction** kernel evaluates its members the same way and reduces the last one's
  value with ``reduction`` (``sum``, ``max``, ... over some axes) without ever storing it.

Grouping, in three passes:

1. *Same-shape regions.* Walking the program in order, a fusable equation joins the
   regions of its fusable producers that have its output shape, as long as no path leaves
   the merged region and comes back into it (that would be a cycle: the kernel would need
   its own output). It starts a region of its own otherwise.
2. *Broadcast producers.* A region whose every value is consumed by one other region only
   (and is no program output), and whose shape broadcasts to that region's, is folded
   into it: ``t = r / o`` on shape ``(256, 1)`` feeding ``u * n`` on ``(256, 10)`` costs a
   few recomputed divisions but saves a launch and a stored intermediate.
3. *Reductions.* A reduction whose operand is a region's value used by that reduction
   alone becomes a reduction kernel over the operand's *cone* (the members it depends
   on), provided the cone's array inputs broadcast to the region's shape (the reduction's
   domain is the broadcast of its inputs).

Example:
    >>> import numpy as np
    >>> from unijax.engine.namespace import array_functions as ops
    >>> from unijax.engine.staging import stage
    >>> program, _ = stage(lambda xs: [ops.sum(ops.exp(-xs[0] * xs[0]) + 0.5 * xs[0])],
    ...                    [np.zeros(4)])
    >>> elementwise = {"negative", "multiply", "exp", "add"}
    >>> steps = plan_fusion(program, lambda e: e.primitive.name in elementwise,
    ...                     lambda e: e.primitive.name == "sum")
    >>> [(s.reduction.primitive.name, len(s.members)) for s in steps]
    [('sum', 5)]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from unijax.engine.ir import Equation, Program, Var

__all__ = ["Fused", "broadcast_shapes", "plan_fusion"]


@dataclass(eq=False)
class Fused:
    """One fused kernel of a plan.

    Attributes:
        members: The fused equations, in program order.
        inputs: The vars the members read but do not define, in order of first use
            (program inputs, constants, other steps' results; weak scalars included).
        outputs: The vars the kernel writes: member outputs needed by other steps or
            returned by the program (elementwise), or the reduction's output.
        shape: The index space every member is evaluated on.
        reduction: For a reduction kernel, the reduction equation; its operand is the
            last member's output. ``None`` for an elementwise kernel.
    """

    members: tuple[Equation, ...]
    inputs: tuple[Var, ...]
    outputs: tuple[Var, ...]
    shape: tuple[int, ...]
    reduction: Equation | None = None

    @property
    def kind(self) -> str:
        """``"elementwise"`` or ``"reduction"``."""
        return "elementwise" if self.reduction is None else "reduction"


Step = Equation | Fused


def broadcast_shapes(shapes: Iterable[tuple[int, ...]]) -> tuple[int, ...] | None:
    """The broadcast of ``shapes`` by the Array API rules (``None`` if incompatible).

    Example:
        >>> broadcast_shapes([(3, 1), (1, 4), ()]), broadcast_shapes([(2,), (3,)])
        ((3, 4), None)
    """
    result: list[int] = []
    for shape in shapes:
        if len(shape) > len(result):
            result = [1] * (len(shape) - len(result)) + result
        offset = len(result) - len(shape)
        for i, d in enumerate(shape):
            r = result[offset + i]
            if r == 1:
                result[offset + i] = d
            elif d != 1 and d != r:
                return None
    return tuple(result)


class _Groups:
    """Union-find over equation indices, with each group's shape, members and edges."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.shape: dict[int, tuple[int, ...]] = {}
        self.members: dict[int, list[int]] = {}
        self.succ: list[set[int]] = [set() for _ in range(n)]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def merge(self, roots: Sequence[int]) -> int:
        root = roots[0]
        for other in roots[1:]:
            self.parent[other] = root
            self.members[root].extend(self.members.pop(other))
            self.succ[root] |= self.succ[other]
            self.shape.pop(other)
        return root

    def creates_cycle(self, group: set[int]) -> bool:
        """Whether a path leaves ``group`` (a set of roots) and comes back into it."""
        frontier = []
        for g in group:
            live = set()
            for s in self.succ[g]:
                r = self.find(s)
                if r != g:  # edges inside a region are dropped for good: checks stay cheap
                    live.add(s)
                    if r not in group:
                        frontier.append(r)
            self.succ[g] = live
        seen: set[int] = set()
        while frontier:
            node = frontier.pop()
            if node in seen:
                continue
            seen.add(node)
            for s in map(self.find, self.succ[node]):
                if s in group:
                    return True
                if s not in seen:
                    frontier.append(s)
        return False


def plan_fusion(program: Program, fusable: Callable[[Equation], bool],
                reducible: Callable[[Equation], bool]) -> list[Step]:
    """Group ``program``'s equations into fused kernels (see the module docstring).

    Args:
        program: The (optimised) program.
        fusable: Whether an equation is elementwise and expressible inside a kernel.
        reducible: Whether a reduction equation may be fused with its operand's producers.

    Returns:
        The steps, in an order where each step's inputs are defined before it runs.
    """
    eqns = program.equations
    producer: dict[Var, int] = {v: i for i, e in enumerate(eqns) for v in e.outputs}
    consumers: dict[Var, list[int]] = {}
    groups = _Groups(len(eqns))
    ok = [fusable(e) for e in eqns]
    for i, eqn in enumerate(eqns):
        preds = []
        for a in eqn.inputs:
            p = producer.get(a) if isinstance(a, Var) else None
            if p is not None:
                consumers.setdefault(a, []).append(i)  # type: ignore[arg-type]
                groups.succ[groups.find(p)].add(i)
                preds.append(p)
        if not ok[i]:
            continue
        groups.members[i] = [i]
        groups.shape[i] = shape = eqn.outputs[0].shape
        chosen: list[int] = []
        for p in preds:
            root = groups.find(p)
            if ok[p] and root not in chosen and groups.shape[root] == shape and \
                    not groups.creates_cycle({*chosen, root, i}):
                chosen.append(root)
        if chosen:
            groups.merge([*chosen, i])
    for idx in groups.members.values():
        idx.sort()
    program_outputs = {a for a in program.outputs if isinstance(a, Var)}
    _fold_broadcast_producers(eqns, groups, consumers, program_outputs)
    return _steps(program, groups, consumers, program_outputs, reducible)


def _outside_consumers(groups: _Groups, root: int, eqns: Sequence[Equation],
                       consumers: dict[Var, list[int]]) -> set[int]:
    out: set[int] = set()
    for m in groups.members[root]:
        for v in eqns[m].outputs:
            out.update(c for c in consumers.get(v, ()) if groups.find(c) != root)
    return out


def _fold_broadcast_producers(eqns: Sequence[Equation], groups: _Groups,
                              consumers: dict[Var, list[int]], outputs: set[Var]) -> None:
    changed = True
    while changed:
        changed = False
        for root in list(groups.members):
            if root not in groups.members:
                continue
            if any(v in outputs for m in groups.members[root] for v in eqns[m].outputs):
                continue
            users = {groups.find(c) for c in _outside_consumers(groups, root, eqns, consumers)}
            if len(users) != 1:
                continue
            (user,) = users
            if user not in groups.members:  # consumed by an equation that is not fused
                continue
            if broadcast_shapes([groups.shape[root], groups.shape[user]]) != groups.shape[user]:
                continue
            groups.merge([user, root])
            groups.members[user].sort()
            changed = True


def _cone(targets: Iterable[Var], members: Sequence[Equation]) -> list[Equation]:
    """The members that ``targets`` depend on, in program order."""
    defining = {v: e for e in members for v in e.outputs}
    needed: set[int] = set()
    stack = [defining[v] for v in targets]
    while stack:
        e = stack.pop()
        if id(e) in needed:
            continue
        needed.add(id(e))
        stack.extend(defining[a] for a in e.inputs if isinstance(a, Var) and a in defining)
    return [e for e in members if id(e) in needed]


def _fused(members: list[Equation], outputs: tuple[Var, ...], shape: tuple[int, ...],
           reduction: Equation | None = None) -> Fused:
    defined: set[Var] = set()
    inputs: dict[Var, None] = {}
    for e in members:
        for a in e.inputs:
            if isinstance(a, Var) and a not in defined:
                inputs[a] = None
        defined.update(e.outputs)
    return Fused(tuple(members), tuple(inputs), outputs, shape, reduction)


def _steps(program: Program, groups: _Groups, consumers: dict[Var, list[int]],
           program_outputs: set[Var], reducible: Callable[[Equation], bool]) -> list[Step]:
    eqns = program.equations
    steps: list[tuple[int, Step]] = []  # (priority: first program index, step)
    fused_reductions: set[int] = set()
    for root, idx in groups.members.items():
        members = [eqns[m] for m in idx]
        shape = groups.shape[root]
        member_set = set(idx)
        # Reductions fed only by this region (and only by one of its values).
        for m in idx:
            (v,) = eqns[m].outputs
            users = consumers.get(v, [])
            if v in program_outputs or len(users) != 1 or users[0] in member_set:
                continue
            r = users[0]
            if groups.find(r) in groups.members or not reducible(eqns[r]):
                continue
            cone = _cone([v], members)
            fused = _fused(cone, eqns[r].outputs, shape, eqns[r])
            arrays = [a.shape for a in fused.inputs if not a.weak]
            if arrays and broadcast_shapes(arrays) == shape:
                fused_reductions.add(r)
                steps.append((r, fused))
        # Values the elementwise kernel must write: used by any other step or returned.
        written = tuple(
            v for e in members for v in e.outputs
            if v in program_outputs or any(c not in member_set and c not in fused_reductions
                                           for c in consumers.get(v, ())))
        if not written:
            continue
        cone = _cone(written, members)
        if len(cone) == 1:
            steps.append((idx[0], cone[0]))  # nothing to fuse: run it as it is
        else:
            steps.append((min(idx), _fused(cone, written, shape)))
    for i, e in enumerate(eqns):
        if groups.find(i) not in groups.members and i not in fused_reductions:
            steps.append((i, e))
    return _schedule(steps)


def _schedule(steps: list[tuple[int, Step]]) -> list[Step]:
    """Topological order of ``steps``, otherwise as close to program order as possible."""
    writer: dict[Var, int] = {}
    reads: list[list[Var]] = []
    for k, (_, step) in enumerate(steps):
        outs = step.outputs
        reads.append([a for a in step.inputs if isinstance(a, Var)])
        for v in outs:
            writer[v] = k
    waiting = [0] * len(steps)
    dependents: list[list[int]] = [[] for _ in steps]
    for k, read in enumerate(reads):
        for w in {writer[v] for v in read if v in writer}:
            waiting[k] += 1
            dependents[w].append(k)
    ready = [(steps[k][0], k) for k in range(len(steps)) if waiting[k] == 0]
    heapq.heapify(ready)
    order: list[Step] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(steps[k][1])
        for d in dependents[k]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (steps[d][0], d))
    if len(order) != len(steps):  # pragma: no cover - the grouping passes prevent it
        raise AssertionError("fusion plan has a cycle")
    return order
