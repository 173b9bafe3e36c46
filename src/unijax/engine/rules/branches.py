"""Branches: the ``cond`` primitive (``switch`` and ``cond`` of ``unijax.lax``).

``cond(index, *operands, branches=(...))`` applies ``branches[index]`` (each a
:class:`~unijax.engine.subprogram.Body` of the same inputs and output types) to the
operands; the index is clamped to the valid range, as ``jax.lax.switch`` does. Only the
chosen branch runs. Under ``vmap`` with an index that differs between examples, every
branch runs on the whole batch and each example takes its own branch's outputs.
"""

from __future__ import annotations

from typing import Any

from unijax.engine.ad import vjp_flat
from unijax.engine.batching import move_bdim
from unijax.engine.core import Primitive
from unijax.engine.namespace import array_functions as ops
from unijax.engine.registry import def_batch, def_jvp, def_vjp
from unijax.engine.subprogram import Body, batch_of, differentiable, jvp_of, stage_body

__all__ = ["cond_p"]


def _chosen(index: Any, count: int) -> int:
    return min(max(int(index), 0), count - 1)


def _cond_impl(xp: Any, index: Any, *operands: Any, branches: tuple[Body, ...]) -> list[Any]:
    return list(branches[_chosen(index, len(branches))].compiled(xp)(*operands))


cond_p = Primitive("cond", multiple_results=True, impl=_cond_impl)


@def_jvp(cond_p)
def _cond_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
              branches: tuple[Body, ...]) -> Any:
    nonzero = [t is not None for t in tangents[1:]]
    n_out = len(branches[0].out_examples)
    out_nz = [False] * n_out
    for branch in branches:
        found = jvp_of(branch, nonzero)[1]
        out_nz = [a or b for a, b in zip(out_nz, found, strict=True)]
    out_nz = [nz and differentiable(e) for nz, e in zip(out_nz, branches[0].out_examples,
                                                       strict=True)]
    jvp_branches = tuple(jvp_of(branch, nonzero, select=out_nz)[0] for branch in branches)
    outs = cond_p.bind(primals[0], *primals[1:], *(t for t in tangents[1:] if t is not None),
                       branches=jvp_branches)
    it = iter(outs[n_out:])
    return outs[:n_out], [next(it) if nz else None for nz in out_nz]


@def_vjp(cond_p)
def _cond_vjp(cts: tuple[Any, ...], primals: tuple[Any, ...], out: Any, needs: tuple[bool, ...],
              *, branches: tuple[Body, ...]) -> list[Any]:
    # The backward pass recomputes the chosen branch with a tape and applies its VJP.
    operands = primals[1:]
    wanted = [need and differentiable(e) for need, e in zip(needs[1:], branches[0].examples,
                                                            strict=True)]
    out_d = [differentiable(e) for e in branches[0].out_examples]
    full_cts = [ops.zeros_like(o) if ct is None else ct
                for o, ct, d in zip(out, cts, out_d, strict=True) if d]
    backward = tuple(_backward_branch(b, wanted, out_d) for b in branches)
    in_cts = iter(cond_p.bind(primals[0], *operands, *full_cts, branches=backward))
    return [None, *(next(in_cts) if w else None for w in wanted)]


def _backward_branch(branch: Body, wanted: list[bool], out_d: list[bool]) -> Body:
    n = len(branch.examples)

    def fun(flat: list[Any]) -> list[Any]:
        operands, cts = flat[:n], flat[n:]
        diff = [v for v, w in zip(operands, wanted, strict=True) if w]

        def apply(values: list[Any]) -> list[Any]:
            it = iter(values)
            outs = branch(*[next(it) if w else v for v, w in zip(operands, wanted,
                                                                   strict=True)])
            return [o for o, d in zip(outs, out_d, strict=True) if d]

        _, back = vjp_flat(apply, diff)
        return back(cts, release=True)

    examples = [*branch.examples,
                *(e for e, d in zip(branch.out_examples, out_d, strict=True) if d)]
    staged, _ = stage_body(fun, examples, name=f"{branch.name}_vjp")
    return staged


@def_batch(cond_p)
def _cond_batch(values: tuple[Any, ...], bdims: tuple[int | None, ...], *,
                branches: tuple[Body, ...]) -> Any:
    size = next(int(v.shape[d]) for v, d in zip(values, bdims, strict=True) if d is not None)
    batched = [d is not None for d in bdims[1:]]
    operands = [move_bdim(v, d, 0, size) if d is not None else v
                for v, d in zip(values[1:], bdims[1:], strict=True)]
    n_out = len(branches[0].out_examples)
    if bdims[0] is None:
        flags = [False] * n_out
        for branch in branches:
            found = batch_of(branch, batched, size)[1]
            flags = [a or b for a, b in zip(flags, found, strict=True)]
        batched_branches = tuple(batch_of(b, batched, size, force=flags)[0] for b in branches)
        outs = cond_p.bind(values[0], *operands, branches=batched_branches)
        return outs, [0 if f else None for f in flags]
    # A different branch per example: run them all on the batch, then select.
    index = ops.clip(move_bdim(values[0], bdims[0], 0, size), 0, len(branches) - 1)
    results = [batch_of(b, batched, size, force=[True] * n_out)[0](*operands)
               for b in branches]
    outs = []
    for j in range(n_out):
        chosen = results[-1][j]
        for k in range(len(branches) - 2, -1, -1):
            candidate = results[k][j]
            mask = ops.reshape(index == k, (-1,) + (1,) * (len(candidate.shape) - 1))
            chosen = ops.where(mask, candidate, chosen)
        outs.append(chosen)
    return outs, [0] * n_out
