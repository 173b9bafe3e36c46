"""Automatic differentiation: the forward-mode (JVP) and reverse-mode (VJP) interpreters.

Forward mode carries a tangent beside each primal and applies ``jvp_rules``.

Reverse mode records a tape: each primitive applied to a tracer of the trace appends a
:class:`Node` holding the primal inputs and output; the backward pass walks the tape in
reverse, calling ``vjp_rules``. Rules compute with ``bind``, so the backward pass is
itself traced by any enclosing transform; that is all ``grad(grad(f))``,
forward-over-reverse Hessians and ``jit(grad(f))`` need. A tape (rather than JAX's
linearise-and-transpose) keeps the interpreter small and the per-op cost low, which is
what eager NumPy users feel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax.engine.core import Primitive, Trace, Tracer, bind, is_array
from unijax.engine.namespace import array_functions
from unijax.engine.registry import (
    jvp_rules,
    metadata_only,
    missing_rule,
    nondifferentiable,
    residual_vjp_rules,
    vjp_rules,
)
from unijax.errors import UnsupportedTransformError, message

__all__ = ["JVPTrace", "JVPTracer", "VJPTrace", "VJPTracer", "jvp_flat", "vjp_flat"]


# --- forward mode ---------------------------------------------------------------------------


class JVPTracer(Tracer):
    """A primal with its tangent (``None``: a symbolic zero tangent)."""

    __slots__ = ("primal", "tangent")

    def __init__(self, trace: Trace, primal: Any, tangent: Any) -> None:
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    def _primal(self) -> Any:
        return self.primal

    def _differentiated(self) -> bool:
        return self.tangent is not None


class JVPTrace(Trace):
    """Forward-mode interpreter."""

    __slots__ = ()
    kind = "forward-mode differentiation (jvp, jacfwd)"

    def pure(self, value: Any) -> JVPTracer:
        return JVPTracer(self, value, None)

    def _split(self, args: Sequence[Any]) -> tuple[list[Any], list[Any], bool]:
        primals, tangents, perturbed = [], [], False
        for a in args:
            if type(a) is JVPTracer and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
                perturbed = perturbed or a.tangent is not None
            else:
                primals.append(a)
                tangents.append(None)
        return primals, tangents, perturbed

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        primals, tangents, perturbed = self._split(args)
        if not perturbed or prim in nondifferentiable:
            return self._constant(bind(prim, tuple(primals), params), prim.multiple_results)
        rule = jvp_rules.get(prim)
        if rule is None:
            raise missing_rule(prim, "jvp")
        out, out_dot = rule(tuple(primals), tuple(tangents), **params)
        if prim.multiple_results:
            return tuple(JVPTracer(self, o, d) for o, d in zip(out, out_dot, strict=True))
        return JVPTracer(self, out, out_dot)

    def _constant(self, out: Any, multiple: bool) -> Any:
        # Results stay tracers (with zero tangent) so that user code calling
        # array_namespace(a, b) on them never sees two namespaces.
        if multiple:
            return tuple(JVPTracer(self, o, None) for o in out)
        return JVPTracer(self, out, None)

    def process_custom_vjp(self, call: Any, args: tuple[Any, ...]) -> Any:
        primals, _tangents, perturbed = self._split(args)
        if not perturbed:
            return list(self._constant(call.bind_fun(primals), True))
        raise UnsupportedTransformError(
            message(
                f"Forward-mode differentiation (jvp, jacfwd, hessian) of custom_vjp function "
                f"{call.name!r} is not defined: a custom VJP gives only reverse-mode rules",
                fix="Use reverse mode (grad, vjp, jacrev), or define the function with "
                "unijax.custom_jvp instead.",
            )
        )

    def process_custom_jvp(self, call: Any, args: tuple[Any, ...]) -> Any:
        primals, tangents, perturbed = self._split(args)
        if not perturbed:
            return list(self._constant(call.bind_fun(primals), True))
        tangents = [
            t if t is not None else _zeros_like(p) for p, t in zip(primals, tangents, strict=True)
        ]
        outs, out_tangents = call.jvp(primals, tangents)
        return [JVPTracer(self, o, t) for o, t in zip(outs, out_tangents, strict=True)]


def jvp_flat(fun: Callable[[list[Any]], list[Any]], primals: Sequence[Any],
             tangents: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Push ``tangents`` forward through ``fun`` (lists of arrays in, lists out).

    A tangent of ``None`` marks an input that is not differentiated; it still enters the
    trace (as a constant) when it is an array.
    """
    trace = JVPTrace()
    outs = trace.run(fun, [JVPTracer(trace, p, t) if t is not None or is_array(p) else p
                           for p, t in zip(primals, tangents, strict=True)])
    out_primals, out_tangents = [], []
    for o in outs:
        if type(o) is JVPTracer and o._trace is trace:
            out_primals.append(o.primal)
            out_tangents.append(o.tangent if o.tangent is not None else _zeros_like(o.primal))
        else:
            out_primals.append(o)
            out_tangents.append(_zeros_like(o))
    return out_primals, out_tangents


# --- reverse mode ---------------------------------------------------------------------------


class Node:
    """One recorded primitive application (``rule is None``: an input of the trace)."""

    __slots__ = ("multiple", "needs", "out", "params", "parents", "position", "primals", "rule")

    def __init__(self, rule: Any, params: dict[str, Any], primals: tuple[Any, ...], out: Any,
                 parents: tuple[tuple[Node, int] | None, ...], position: int,
                 multiple: bool) -> None:
        self.rule = rule
        self.params = params
        self.primals = primals
        self.out = out
        self.parents = parents
        self.position = position
        self.multiple = multiple
        #: Which inputs need a cotangent: the rule's ``needs`` argument.
        self.needs = tuple([p is not None for p in parents])


class ShapeDtype:
    """What the tape keeps of an array whose VJP rule needs only its shape and dtype."""

    __slots__ = ("dtype", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = shape
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @staticmethod
    def of(x: Any) -> Any:
        """``x``'s metadata; Python scalars (no shape) are kept as they are."""
        shape = getattr(x, "shape", None)
        return x if shape is None else ShapeDtype(tuple(shape), x.dtype)


class VJPTracer(Tracer):
    """A value recorded on a reverse-mode tape (``node is None``: a constant)."""

    __slots__ = ("index", "node", "value")

    def __init__(self, trace: Trace, value: Any, node: Node | None, index: int = 0) -> None:
        self._trace = trace
        self.value = value
        self.node = node
        self.index = index

    def _primal(self) -> Any:
        return self.value

    def _differentiated(self) -> bool:
        return self.node is not None


class VJPTrace(Trace):
    """Reverse-mode interpreter: records a tape, then runs it backwards."""

    __slots__ = ("tape",)
    kind = "reverse-mode differentiation (grad, vjp)"

    def __init__(self) -> None:
        super().__init__()
        self.tape: list[Node] = []

    def pure(self, value: Any) -> VJPTracer:
        return VJPTracer(self, value, None)

    def new_input(self, value: Any) -> VJPTracer:
        node = Node(None, {}, (), value, (), len(self.tape), False)
        self.tape.append(node)
        return VJPTracer(self, value, node)

    def _split(self, args: Sequence[Any]) -> tuple[list[Any], list[tuple[Node, int] | None], bool]:
        primals: list[Any] = []
        parents: list[tuple[Node, int] | None] = []
        recorded = False
        for a in args:
            if type(a) is VJPTracer and a._trace is self:
                primals.append(a.value)
                if a.node is None:
                    parents.append(None)
                else:
                    parents.append((a.node, a.index))
                    recorded = True
            else:
                primals.append(a)
                parents.append(None)
        return primals, parents, recorded

    def _constant(self, out: Any, multiple: bool) -> Any:
        # Unrecorded results stay tracers: see JVPTrace._constant.
        if multiple:
            return tuple(VJPTracer(self, o, None) for o in out)
        return VJPTracer(self, out, None)

    def _record(self, rule: Any, params: dict[str, Any], primals: list[Any], out: Any,
                parents: list[tuple[Node, int] | None], multiple: bool) -> Any:
        node = Node(rule, params, tuple(primals), out, tuple(parents), len(self.tape), multiple)
        self.tape.append(node)
        if multiple:
            return tuple(VJPTracer(self, o, node, i) for i, o in enumerate(out))
        return VJPTracer(self, out, node)

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        # The hot path of eager reverse mode: _record is written out in place (one frame
        # per operation is a few percent of the 50-step loop's gradient).
        primals, parents, recorded = self._split(args)
        args = tuple(primals)
        if recorded and prim in residual_vjp_rules:
            return self._process_with_residuals(prim, primals, parents, params)
        out = bind(prim, args, params)
        if not recorded or prim in nondifferentiable:
            return self._constant(out, prim.multiple_results)
        rule = vjp_rules.get(prim)
        if rule is None:
            raise missing_rule(prim, "vjp")
        multiple = prim.multiple_results
        tape = self.tape
        node = Node(rule, params, args, out, tuple(parents), len(tape), multiple)
        tape.append(node)
        discard = metadata_only.get(prim)
        if discard is not None:  # single-output primitives only (def_vjp_metadata checks)
            if "primals" in discard:
                node.primals = tuple([ShapeDtype.of(p) for p in args])
            if "out" in discard:
                node.out = ShapeDtype.of(out)
        if multiple:
            return tuple([VJPTracer(self, o, node, i) for i, o in enumerate(out)])
        return VJPTracer(self, out, node)

    def _process_with_residuals(self, prim: Primitive, primals: list[Any],
                                parents: list[tuple[Node, int] | None],
                                params: dict[str, Any]) -> Any:
        # The rule runs the forward pass itself, keeping what its backward pass needs.
        needs = tuple(p is not None for p in parents)
        out, backward = residual_vjp_rules[prim](tuple(primals), needs, **params)

        def rule(cts: Any, primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...]) -> Any:
            return backward(list(cts) if prim.multiple_results else [cts])

        return self._record(rule, {}, primals, out, parents, prim.multiple_results)

    def process_custom_vjp(self, call: Any, args: tuple[Any, ...]) -> Any:
        primals, parents, recorded = self._split(args)
        if not recorded:
            return list(self._constant(call.bind_fun(primals), True))
        outs, residuals = call.fwd(primals)

        def rule(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any,
                 needs: tuple[bool, ...]) -> list[Any]:
            full = [ct if ct is not None else _zeros_like(o)
                    for ct, o in zip(cts, out, strict=True)]
            return list(call.bwd(residuals, full))

        return list(self._record(rule, {}, primals, tuple(outs), parents, True))

    def process_custom_jvp(self, call: Any, args: tuple[Any, ...]) -> Any:
        # The VJP of a custom JVP rule: the tangent output is linear in the tangents, so the
        # gradient of <ct, tangent_out(t)> with respect to t is the transposed rule (J^T ct).
        primals, parents, recorded = self._split(args)
        outs = call.bind_fun(primals)
        if not recorded:
            return list(self._constant(outs, True))

        def rule(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any,
                 needs: tuple[bool, ...]) -> list[Any]:
            zeros = [_zeros_like(p) for p in primals]
            _, backward = vjp_flat(lambda ts: call.jvp(list(primals), ts)[1], zeros)
            full = [ct if ct is not None else _zeros_like(o)
                    for ct, o in zip(cts, out, strict=True)]
            return backward(full)

        return list(self._record(rule, {}, primals, tuple(outs), parents, True))

    def backward(self, outs: Sequence[Any], cts: Sequence[Any], inputs: Sequence[Node],
                 release: bool = False) -> list[Any]:
        """Cotangents of the input ``inputs`` nodes given cotangents ``cts`` of ``outs``.

        Inputs are given as their tape nodes, not their tracers: ``x[i] = v`` inside the
        function re-points an input tracer at the updated value. With ``release`` (the
        only backward pass over this tape, as in ``grad``) each node drops the arrays its
        rule read once the rule has run, so intermediates are freed along the way.
        """
        pending: dict[int, list[Any]] = {}
        start = -1
        for o, ct in zip(outs, cts, strict=True):
            if ct is None or type(o) is not VJPTracer or o._trace is not self or o.node is None:
                continue
            _accumulate(pending, o.node, o.index, ct)
            start = max(start, o.node.position)
        tape = self.tape
        for position in range(start, -1, -1):
            node_cts = pending.get(position)
            if node_cts is None:
                continue
            node = tape[position]
            if node.rule is None:
                continue  # an input: its cotangent stays in ``pending`` for the caller
            del pending[position]
            ct = tuple(node_cts) if node.multiple else node_cts[0]
            in_cts = node.rule(ct, node.primals, node.out, node.needs, **node.params)
            if release:
                node.primals, node.out = (), None
            for parent, in_ct in zip(node.parents, in_cts, strict=True):
                if parent is not None and in_ct is not None:
                    _accumulate(pending, parent[0], parent[1], in_ct)
        result = []
        for node in inputs:
            got = pending.get(node.position)
            result.append(got[0] if got is not None and got[0] is not None
                          else _zeros_like(node.out))
        return result


def _accumulate(pending: dict[int, list[Any]], node: Node, index: int, ct: Any) -> None:
    slots = pending.get(node.position)
    if slots is None:
        width = len(node.out) if node.multiple else 1
        slots = pending[node.position] = [None] * width
    prev = slots[index]
    slots[index] = ct if prev is None else _add(prev, ct)


def vjp_flat(fun: Callable[[list[Any]], list[Any]], primals: Sequence[Any],
             constants: Sequence[Any] = ()
             ) -> tuple[list[Any], Callable[..., list[Any]]]:
    """Run ``fun`` recording a tape; return its outputs and the backward function.

    The backward function takes the output cotangents and ``release=True`` when it is
    called only once (see :meth:`VJPTrace.backward`).

    ``fun`` receives the differentiated ``primals`` followed by ``constants`` (inputs that
    are not differentiated but enter the trace, so all arrays share one namespace).
    """
    trace = VJPTrace()
    inputs = [trace.new_input(p) for p in primals]
    # Taken before fun runs: x[i] = v inside it re-points an input tracer.
    nodes = [x.node for x in inputs if x.node is not None]
    lifted = [trace.pure(c) if is_array(c) else c for c in constants]
    outs = trace.run(fun, [*inputs, *lifted])
    values = [o.value if type(o) is VJPTracer and o._trace is trace else o for o in outs]

    def backward(cts: Sequence[Any], release: bool = False) -> list[Any]:
        return trace.backward(outs, cts, nodes, release)

    return values, backward


def _add(x: Any, y: Any) -> Any:
    return array_functions.add(x, y)


def _zeros_like(x: Any) -> Any:
    return array_functions.zeros_like(x)
