"""Vectorisation: the batching interpreter behind the engine's ``vmap``.

A :class:`BatchTracer` holds a value with one extra axis, ``bdim`` (``None``: the value
is the same for every example). Each primitive is applied once to the whole batch by its
``batch_rules`` entry, never by a Python loop over examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax.engine.core import (
    Primitive,
    Trace,
    Tracer,
    bind,
    builtin_scalar,
    example_value,
    is_array,
    namespace_for_args,
)
from unijax.engine.namespace import array_functions
from unijax.engine.registry import batch_rules, missing_rule
from unijax.errors import ConcretizationError, message

__all__ = [
    "BatchTrace",
    "BatchTracer",
    "bdim_to_front",
    "move_bdim",
    "vmap_flat",
]


class BatchTracer(Tracer):
    """A batch of values stacked along axis ``bdim`` of ``value``."""

    __slots__ = ("bdim", "value")

    def __init__(self, trace: Trace, value: Any, bdim: int | None) -> None:
        self._trace = trace
        self.value = value
        self.bdim = bdim

    def _primal(self) -> Any:
        return self.value

    @property
    def shape(self) -> tuple[int, ...]:
        shape = tuple(self.value.shape)
        if self.bdim is None:
            return shape
        return shape[: self.bdim] + shape[self.bdim + 1 :]

    def _example(self) -> Any:
        value = example_value(self.value)
        if self.bdim is None:
            return value
        if value.shape[self.bdim] == 0:  # an empty batch: any value of one example's shape
            xp = namespace_for_args((value,))
            return xp.zeros(self.shape, dtype=value.dtype)
        return value[(slice(None),) * self.bdim + (0, ...)]

    def _is_constant(self) -> bool:
        return self.bdim is None

    def _concrete(self, what: str) -> Any:
        if self.bdim is None:
            return super()._concrete(what)
        raise ConcretizationError(
            message(
                f"{what}() of a value that varies across a vmap batch has no single answer",
                fix="Express the branch with xp.where(cond, a, b), or move the Python control "
                "flow outside the vmapped function. (Writing the value into a NumPy array, "
                "x[i] = value with x = np.zeros(...), asks for it too: make x with the "
                "value's namespace, xp = array_namespace(value), so the write is traced.)",
            )
        )


class BatchTrace(Trace):
    """Batching interpreter for one ``vmap`` of size ``axis_size``."""

    __slots__ = ("axis_size",)
    data_dependent_shapes = False
    kind = "vmap"

    def __init__(self, axis_size: int) -> None:
        super().__init__()
        self.axis_size = axis_size

    def pure(self, value: Any) -> BatchTracer:
        return BatchTracer(self, value, None)

    def _split(self, args: Sequence[Any]) -> tuple[list[Any], list[int | None], bool]:
        values: list[Any] = []
        bdims: list[int | None] = []
        batched = False
        for a in args:
            if type(a) is BatchTracer and a._trace is self:
                values.append(a.value)
                bdims.append(a.bdim)
                batched = batched or a.bdim is not None
            else:
                values.append(builtin_scalar(a))
                bdims.append(None)
        return values, bdims, batched

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        values, bdims, batched = self._split(args)
        if not batched:
            # Unbatched results stay tracers so array_namespace sees one namespace.
            out = bind(prim, tuple(values), params)
            if prim.multiple_results:
                return tuple(BatchTracer(self, o, None) for o in out)
            return BatchTracer(self, out, None)
        rule = batch_rules.get(prim)
        if rule is None:
            raise missing_rule(prim, "batch")
        out, out_bdim = rule(tuple(values), tuple(bdims), **params)
        if prim.multiple_results:
            return tuple(BatchTracer(self, o, d) for o, d in zip(out, out_bdim, strict=True))
        return BatchTracer(self, out, out_bdim)

    def _process_custom(self, call: Any, args: tuple[Any, ...]) -> Any:
        values, bdims, batched = self._split(args)
        if not batched:
            return [BatchTracer(self, o, None) for o in call.bind_fun(values)]
        # The custom rule is batched as a whole (fun, fwd and bwd each vmapped) and applied
        # one level down, so gradients taken outside this vmap still use the custom rule.
        outs = call.batched(bdims, self.axis_size).bind_fun(values)
        return [BatchTracer(self, o, 0) for o in outs]

    process_custom_vjp = _process_custom
    process_custom_jvp = _process_custom


def vmap_flat(fun: Callable[[list[Any]], list[Any]], args: Sequence[Any],
              in_dims: Sequence[int | None], axis_size: int) -> list[tuple[Any, int | None]]:
    """Apply ``fun`` to a batch; returns each output as ``(value, bdim)``.

    ``in_dims`` must be non-negative and already checked against ``axis_size``.
    """
    trace = BatchTrace(axis_size)
    inputs = [BatchTracer(trace, a, d) if d is not None or is_array(a) else a
              for a, d in zip(args, in_dims, strict=True)]
    outs = trace.run(fun, inputs)
    results = []
    for o in outs:
        if type(o) is BatchTracer and o._trace is trace:
            results.append((o.value, o.bdim))
        else:
            results.append((o, None))
    return results


# --- helpers for batching rules -------------------------------------------------------------


def move_bdim(x: Any, bdim: int | None, dst: int, axis_size: int) -> Any:
    """Move the batch axis of ``x`` to ``dst`` (broadcasting an unbatched ``x``)."""
    ops = array_functions
    if bdim is None:
        if not hasattr(x, "shape"):  # a Python scalar output: make it an array first
            x = namespace_for_args((x,)).asarray(x)
        x = ops.expand_dims(x, axis=0)
        shape = list(x.shape)
        shape[0] = axis_size
        x = ops.broadcast_to(x, tuple(shape))
        bdim = 0
    if bdim == dst:
        return x
    return ops.moveaxis(x, bdim, dst)


def bdim_to_front(x: Any, bdim: int | None) -> Any:
    """``x`` with its batch axis first (unbatched values are returned unchanged)."""
    if bdim is None or bdim == 0:
        return x
    return array_functions.moveaxis(x, bdim, 0)
