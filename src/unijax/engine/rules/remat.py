"""Rematerialisation: the ``checkpoint`` primitive (``unijax.checkpoint``, ``remat``).

``checkpoint(*args, body=...)`` computes ``body(*args)``. Its only effect is on reverse
mode: the tape keeps the inputs, not the intermediates, and the backward pass runs the
body again with a tape of its own. A chain of checkpointed segments therefore holds one
segment's intermediates at a time, at the price of a second forward pass.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.ad import vjp_flat
from unijax.engine.batching import move_bdim
from unijax.engine.core import Primitive
from unijax.engine.namespace import array_functions as ops
from unijax.engine.registry import def_batch, def_jvp, residual_vjp_rules
from unijax.engine.subprogram import Body, batch_of, differentiable, jvp_of

__all__ = ["checkpoint_p"]


def _checkpoint_impl(xp: Any, *args: Any, body: Body) -> list[Any]:
    return list(body.compiled(xp)(*args))


checkpoint_p = Primitive("checkpoint", multiple_results=True, impl=_checkpoint_impl)


@def_jvp(checkpoint_p)
def _checkpoint_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, body: Body) -> Any:
    nonzero = [t is not None for t in tangents]
    jbody, out_nz = jvp_of(body, nonzero)
    outs = checkpoint_p.bind(*primals, *(t for t in tangents if t is not None), body=jbody)
    n = len(body.out_examples)
    it = iter(outs[n:])
    return outs[:n], [next(it) if nz else None for nz in out_nz]


def _checkpoint_vjp(primals: tuple[Any, ...], needs: tuple[bool, ...], *, body: Body) -> Any:
    outs = checkpoint_p.bind(*primals, body=body)  # below this tape: nothing is recorded
    wanted = [need and differentiable(e) for need, e in zip(needs, body.examples, strict=True)]
    out_d = [differentiable(e) for e in body.out_examples]

    def backward(cts: list[Any]) -> list[Any]:
        def apply(values: list[Any]) -> list[Any]:
            it = iter(values)
            args = [next(it) if w else p for p, w in zip(primals, wanted, strict=True)]
            return [o for o, d in zip(body(*args), out_d, strict=True) if d]

        _, back = vjp_flat(apply, [p for p, w in zip(primals, wanted, strict=True) if w])
        full = [ops.zeros_like(o) if ct is None else ct
                for o, ct, d in zip(outs, cts, out_d, strict=True) if d]
        in_cts = iter(back(full, release=True))
        return [next(in_cts) if w else None for w in wanted]

    return outs, backward


residual_vjp_rules[checkpoint_p] = _checkpoint_vjp


@def_batch(checkpoint_p)
def _checkpoint_batch(values: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                      body: Body) -> Any:
    size = next(int(v.shape[d]) for v, d in zip(values, bdims, strict=True) if d is not None)
    batched = [d is not None for d in bdims]
    bbody, flags = batch_of(body, batched, size)
    moved = [move_bdim(v, d, 0, size) if d is not None else v
             for v, d in zip(values, bdims, strict=True)]
    outs = checkpoint_p.bind(*moved, body=bbody)
    return outs, [0 if f else None for f in flags]
