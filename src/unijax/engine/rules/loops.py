"""Loops: the ``scan`` and ``while_loop`` primitives and their rules.

Both take their body as a :class:`~unijax.engine.subprogram.Body`, and their operands in
groups: ``scan(*consts, *carry, *xs)`` returns ``(*carry, *ys)`` where each ``ys`` stacks
one output per iteration along a new leading axis; ``while_loop(*cond_consts,
*body_consts, *carry)`` returns the final carry. Evaluated on arrays, each is a Python loop
over the body's generated code; under ``jit`` it is one equation whose body is staged once,
so the program's size does not grow with the trip count.

Reverse mode through ``scan`` keeps the carry entering each iteration (stacked) and runs a
reverse ``scan`` whose body recomputes one iteration and applies its VJP: memory grows with
the carries, not with every intermediate of every iteration. Reverse mode through
``while_loop`` is not defined (its trip count is not known in advance), as in JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unijax.engine.ad import vjp_flat
from unijax.engine.batching import move_bdim, vmap_flat
from unijax.engine.core import Primitive, namespace_for_args
from unijax.engine.namespace import array_functions as ops
from unijax.engine.registry import def_batch, def_jvp, residual_vjp_rules
from unijax.engine.rules._scan_runner import PREPASS_BUDGET, ScanRunner, nbytes
from unijax.engine.staging import placeholder_rules, var_for
from unijax.engine.subprogram import Body, batch_of, differentiable, jvp_of, stage_body
from unijax.errors import UnsupportedTransformError, message

__all__ = ["scan_p", "while_p"]


def _split(seq: Sequence[Any], *sizes: int) -> list[list[Any]]:
    parts, start = [], 0
    for size in sizes:
        parts.append(list(seq[start:start + size]))
        start += size
    parts.append(list(seq[start:]))
    return parts


def _axis_size(values: Sequence[Any], bdims: Sequence[int | None]) -> int:
    for v, d in zip(values, bdims, strict=True):
        if d is not None:
            return int(v.shape[d])
    raise AssertionError("a batching rule ran with no batched operand")


def _zeros(example: Any, xp: Any, leading: tuple[int, ...] = ()) -> Any:
    return xp.zeros((*leading, *example.shape), dtype=example.dtype)


# --- scan -------------------------------------------------------------------------------------


def _scan_impl(xp: Any, *args: Any, body: Body, num_consts: int, num_carry: int, length: int,
               reverse: bool) -> list[Any]:
    consts, carry, xs = _split(args, num_consts, num_carry)
    ys_examples = body.out_examples[num_carry:]
    key = ("scan", id(xp), num_consts, num_carry, length)
    runner = body._compiled.get(key)
    if runner is None:
        runner = body._compiled[key] = ScanRunner(body, xp, num_consts, num_carry, consts,
                                                   xs, length)
    carry, columns = runner(consts, carry, xs, length, reverse)
    if length == 0:
        return [*carry, *(_zeros(e, xp, (0,)) for e in ys_examples)]
    return [*carry, *(xp.stack(column) for column in columns)]


scan_p = Primitive("scan", multiple_results=True, impl=_scan_impl)


def _scan_placeholder(values: list[Any], *, body: Body, num_consts: int, num_carry: int,
                      length: int, reverse: bool) -> list[Any]:
    # The carry keeps its shape and dtype through the loop, so the initial one stands in.
    xp = namespace_for_args(tuple(body.out_examples) or tuple(values))
    ys = [xp.broadcast_to(xp.expand_dims(e, axis=0), (length, *e.shape))
          for e in body.out_examples[num_carry:]]
    return [*values[num_consts:num_consts + num_carry], *ys]


placeholder_rules[scan_p] = _scan_placeholder


@def_jvp(scan_p)
def _scan_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, body: Body,
              num_consts: int, num_carry: int, length: int, reverse: bool) -> Any:
    nc, ncar = num_consts, num_carry
    n_y = len(body.out_examples) - ncar
    nz = [t is not None for t in tangents]
    consts_nz, carry_nz, xs_nz = _split(nz, nc, ncar)
    carry_ok = [differentiable(e) for e in body.examples[nc:nc + ncar]]
    ys_ok = [differentiable(e) for e in body.out_examples[ncar:]]
    # Which carries have tangents: those given one, and any an iteration gives one to.
    while True:
        _, nz_out = jvp_of(body, consts_nz + carry_nz + xs_nz)
        grown = [a or (b and ok) for a, b, ok in zip(carry_nz, nz_out[:ncar], carry_ok,
                                                      strict=True)]
        if grown == carry_nz:
            break
        carry_nz = grown
    ys_nz = [b and ok for b, ok in zip(nz_out[ncar:], ys_ok, strict=True)]
    jbody, _ = jvp_of(body, consts_nz + carry_nz + xs_nz, select=carry_nz + ys_nz)
    n_x = len(primals) - nc - ncar
    k_c, k_car, k_x = sum(consts_nz), sum(carry_nz), sum(xs_nz)
    n_in = nc + ncar + n_x
    # jvp_of's layout (primals, then tangents) to scan's (consts, carry, xs groups).
    order = [*range(nc), *range(n_in, n_in + k_c),
             *range(nc, nc + ncar), *range(n_in + k_c, n_in + k_c + k_car),
             *range(nc + ncar, n_in), *range(n_in + k_c + k_car, n_in + k_c + k_car + k_x)]
    n_out = ncar + n_y
    out_order = [*range(ncar), *range(n_out, n_out + k_car),
                 *range(ncar, n_out), *range(n_out + k_car, n_out + k_car + sum(ys_nz))]
    jbody = jbody.permuted(order, out_order)
    consts, carry, xs = _split(primals, nc, ncar)
    t_consts, t_carry, t_xs = _split(tangents, nc, ncar)
    t_carry_in = [ops.zeros_like(c) if t is None else t
                  for c, t, keep in zip(carry, t_carry, carry_nz, strict=True) if keep]
    outs = scan_p.bind(
        *consts, *(t for t in t_consts if t is not None), *carry, *t_carry_in,
        *xs, *(t for t in t_xs if t is not None),
        body=jbody, num_consts=nc + k_c, num_carry=ncar + k_car, length=length,
        reverse=reverse)
    c_out, tc_out, y_out, ty_out = _split(outs, ncar, k_car, n_y)
    tc_iter, ty_iter = iter(tc_out), iter(ty_out)
    out_tangents = [next(tc_iter) if keep else None for keep in carry_nz]
    out_tangents += [next(ty_iter) if keep else None for keep in ys_nz]
    return [*c_out, *y_out], out_tangents


def _scan_vjp(primals: tuple[Any, ...], needs: tuple[bool, ...], *, body: Body,
              num_consts: int, num_carry: int, length: int, reverse: bool) -> Any:
    nc, ncar = num_consts, num_carry
    n_y = len(body.out_examples) - ncar
    # The forward pass also stacks the carry entering each iteration.
    outs = scan_p.bind(*primals, body=body.with_outputs(range(nc, nc + ncar)),
                       num_consts=nc, num_carry=ncar, length=length, reverse=reverse)
    final, ys, carries = _split(outs, ncar, n_y)
    consts, _, xs = _split(primals, nc, ncar)
    const_d = [need and differentiable(e) for need, e in zip(needs[:nc], body.examples[:nc],
                                                             strict=True)]
    carry_d = [differentiable(e) for e in body.examples[nc:nc + ncar]]
    xs_d = [need and differentiable(e) for need, e in zip(needs[nc + ncar:],
                                                          body.examples[nc + ncar:],
                                                          strict=True)]
    ys_d = [differentiable(e) for e in body.out_examples[ncar:]]

    def backward(cts: list[Any]) -> list[Any]:
        ct_final, ct_ys = _split(cts, ncar)
        ct_carry0 = [ops.zeros_like(c) if ct is None else ct
                     for c, ct, d in zip(final, ct_final, carry_d, strict=True) if d]
        ct_ys_in = [ops.zeros_like(y) if ct is None else ct
                    for y, ct, d in zip(ys, ct_ys, ys_d, strict=True) if d]
        if length > 1 and _summable(body, const_d, length):
            return _backward_then_batched(body, nc, ncar, const_d, carry_d, xs_d, ys_d,
                                          consts, carries, xs, ct_carry0, ct_ys_in, length,
                                          reverse)
        acc0 = [ops.zeros_like(c) for c, d in zip(consts, const_d, strict=True) if d]
        step = _scan_backward_body(body, nc, ncar, const_d, carry_d, xs_d, ys_d)
        results = scan_p.bind(*consts, *ct_carry0, *acc0, *carries, *xs, *ct_ys_in,
                              body=step, num_consts=nc,
                              num_carry=len(ct_carry0) + len(acc0), length=length,
                              reverse=not reverse)
        ct_init, ct_consts, ct_xs = _split(results, len(ct_carry0), len(acc0))
        return [*_fill(ct_consts, const_d), *_fill(ct_init, carry_d), *_fill(ct_xs, xs_d)]

    return [*final, *ys], backward


def _summable(body: Body, const_d: list[bool], length: int) -> bool:
    """Whether stacking one cotangent per iteration for each differentiated constant
    stays within :data:`PREPASS_BUDGET` (see :func:`_backward_then_batched`)."""
    examples = [e for e, d in zip(body.examples, const_d, strict=False) if d]
    return length * sum(nbytes(var_for(e)) for e in examples) <= PREPASS_BUDGET


def _backward_then_batched(body: Body, nc: int, ncar: int, const_d: list[bool],
                           carry_d: list[bool], xs_d: list[bool], ys_d: list[bool],
                           consts: list[Any], carries: list[Any], xs: list[Any],
                           ct_carry0: list[Any], ct_ys: list[Any], length: int,
                           reverse: bool) -> list[Any]:
    """The backward pass in two parts: a reverse scan of the carry's cotangent alone
    (the only sequential dependence), which also stacks the cotangent each iteration's
    carry received; then every iteration's cotangents for the constants and the ``xs``
    at once, batched along the scan axis (the constants' summed). The loop then runs only
    what the recurrence needs, and the per-iteration work is a few array operations over
    all iterations instead of many small ones each."""
    k_car = len(ct_carry0)
    loop = _scan_backward_body(body, nc, ncar, [False] * nc, carry_d, [False] * len(xs_d),
                               ys_d, emit_cts=True)
    outs = scan_p.bind(*consts, *ct_carry0, *carries, *xs, *ct_ys, body=loop, num_consts=nc,
                       num_carry=k_car, length=length, reverse=not reverse)
    ct_init, ct_seen = outs[:k_car], outs[k_car:]
    if not (any(const_d) or any(xs_d)):
        return [*_fill([], [False] * nc), *_fill(ct_init, carry_d), *[None] * len(xs_d)]

    def one(flat: list[Any]) -> list[Any]:
        c, ct_c, carry, x, ct_y = _split(flat, nc, k_car, ncar, len(xs_d))
        return _iteration_vjp(body, const_d, carry_d, xs_d, ys_d, c, carry, x, ct_c, ct_y,
                              wrt_carry=False)

    results = vmap_flat(one, [*consts, *ct_seen, *carries, *xs, *ct_ys],
                        [None] * nc + [0] * (k_car + len(carries) + len(xs) + len(ct_ys)),
                        length)
    k_c = sum(const_d)
    ct_consts = [ops.sum(move_bdim(v, d, 0, length), axis=0) for v, d in results[:k_c]]
    ct_xs = [move_bdim(v, d, 0, length) for v, d in results[k_c:]]
    return [*_fill(ct_consts, const_d), *_fill(ct_init, carry_d), *_fill(ct_xs, xs_d)]


def _iteration_vjp(body: Body, const_d: list[bool], carry_d: list[bool], xs_d: list[bool],
                   ys_d: list[bool], consts: list[Any], carry: list[Any], xs: list[Any],
                   ct_carry: list[Any], ct_ys: list[Any], *, wrt_carry: bool = True
                   ) -> list[Any]:
    """One iteration's VJP: the cotangents of the differentiated constants, carry (if
    ``wrt_carry``) and ``xs``, given those of its carry and ``ys`` outputs."""
    in_carry = [d and wrt_carry for d in carry_d]
    mask = [*const_d, *in_carry, *xs_d]
    full = [*consts, *carry, *xs]

    def fun(values: list[Any]) -> list[Any]:
        it = iter(values)
        args = [next(it) if m else v for v, m in zip(full, mask, strict=True)]
        outs = body(*args)
        return [o for o, d in zip(outs, [*carry_d, *ys_d], strict=True) if d]

    _, back = vjp_flat(fun, [v for v, m in zip(full, mask, strict=True) if m])
    return back([*ct_carry, *ct_ys], release=True)


def _fill(values: list[Any], mask: Sequence[bool]) -> list[Any]:
    it = iter(values)
    return [next(it) if m else None for m in mask]


def _scan_backward_body(body: Body, nc: int, ncar: int, const_d: list[bool],
                        carry_d: list[bool], xs_d: list[bool], ys_d: list[bool], *,
                        emit_cts: bool = False) -> Body:
    """One reverse iteration: recompute an iteration, apply its VJP, accumulate. With
    ``emit_cts``, also return (as a ``y``) the cotangent the iteration's carry received."""
    k_car, k_c, n_x = sum(carry_d), sum(const_d), len(xs_d)

    def step(flat: list[Any]) -> list[Any]:
        consts, ct_carry, acc, carry, xs, ct_ys = _split(flat, nc, k_car, k_c, ncar, n_x)
        in_cts = _iteration_vjp(body, const_d, carry_d, xs_d, ys_d, consts, carry, xs,
                                ct_carry, ct_ys)
        ct_consts, ct_carry_prev, ct_x = _split(in_cts, k_c, k_car)
        return [*ct_carry_prev, *(a + c for a, c in zip(acc, ct_consts, strict=True)), *ct_x,
                *(ct_carry if emit_cts else ())]

    ex_consts, ex_carry, ex_xs = _split(body.examples, nc, ncar)
    ex_ys = body.out_examples[ncar:]
    examples = [*ex_consts,
                *(e for e, d in zip(ex_carry, carry_d, strict=True) if d),
                *(e for e, d in zip(ex_consts, const_d, strict=True) if d),
                *ex_carry, *ex_xs,
                *(e for e, d in zip(ex_ys, ys_d, strict=True) if d)]
    staged, _ = stage_body(step, examples, name=f"{body.name}_vjp")
    return staged


residual_vjp_rules[scan_p] = _scan_vjp


@def_batch(scan_p)
def _scan_batch(values: tuple[Any, ...], bdims: tuple[int | None, ...], *, body: Body,
                num_consts: int, num_carry: int, length: int, reverse: bool) -> Any:
    nc, ncar = num_consts, num_carry
    size = _axis_size(values, bdims)
    consts_b, carry_b, xs_b = _split([d is not None for d in bdims], nc, ncar)
    while True:
        _, flags = batch_of(body, consts_b + carry_b + xs_b, size)
        grown = [a or b for a, b in zip(carry_b, flags[:ncar], strict=True)]
        if grown == carry_b:
            break
        carry_b = grown
    n_y = len(body.out_examples) - ncar
    bbody, flags = batch_of(body, consts_b + carry_b + xs_b, size,
                            force=carry_b + [False] * n_y)
    consts, carry, xs = _split(values, nc, ncar)
    d_consts, d_carry, d_xs = _split(bdims, nc, ncar)
    moved = [move_bdim(v, d, 0, size) if b else v
             for v, d, b in zip(consts, d_consts, consts_b, strict=True)]
    moved += [move_bdim(v, d, 0, size) if b else v
              for v, d, b in zip(carry, d_carry, carry_b, strict=True)]
    # Batched xs put the batch axis second: the loop runs over the leading axis.
    moved += [v if d is None else move_bdim(v, d, 1, size) for v, d in zip(xs, d_xs,
                                                                               strict=True)]
    outs = scan_p.bind(*moved, body=bbody, num_consts=nc, num_carry=ncar, length=length,
                       reverse=reverse)
    out_bdims = [0 if b else None for b in carry_b] + [1 if f else None
                                                         for f in flags[ncar:]]
    return outs, out_bdims


# --- while_loop -------------------------------------------------------------------------------


def _while_impl(xp: Any, *args: Any, cond: Body, body: Body, cond_nconsts: int,
                body_nconsts: int) -> list[Any]:
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    cond_prelude, test = cond.compiled_loop(xp, cond_nconsts)
    body_prelude, step = body.compiled_loop(xp, body_nconsts)
    cond_consts += cond_prelude(*cond_consts)
    body_consts += body_prelude(*body_consts)
    # A lazy backend (dask) computes the carry each iteration (its predicate needs it
    # anyway): otherwise each test recomputes every iteration before it, and the
    # carry's graph grows one layer deeper per iteration.
    settle = getattr(xp, "__unijax_settle__", None)
    while bool(test(*cond_consts, *carry)[0]):
        carry = step(*body_consts, *carry)
        if settle is not None:
            carry = settle(carry)
    return list(carry)


while_p = Primitive("while_loop", multiple_results=True, impl=_while_impl)


def _while_placeholder(values: list[Any], *, cond: Body, body: Body, cond_nconsts: int,
                       body_nconsts: int) -> list[Any]:
    return list(values[cond_nconsts + body_nconsts:])


placeholder_rules[while_p] = _while_placeholder


@def_jvp(while_p)
def _while_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...], *, cond: Body, body: Body,
               cond_nconsts: int, body_nconsts: int) -> Any:
    ncc, nbc = cond_nconsts, body_nconsts
    ncar = len(primals) - ncc - nbc
    _, bc_nz, carry_nz = _split([t is not None for t in tangents], ncc, nbc)
    carry_ok = [differentiable(e) for e in body.examples[nbc:]]
    while True:
        _, nz_out = jvp_of(body, bc_nz + carry_nz)
        grown = [a or (b and ok) for a, b, ok in zip(carry_nz, nz_out, carry_ok, strict=True)]
        if grown == carry_nz:
            break
        carry_nz = grown
    jbody, _ = jvp_of(body, bc_nz + carry_nz, select=carry_nz)
    k_bc, k_car = sum(bc_nz), sum(carry_nz)
    n_in = nbc + ncar
    jbody = jbody.permuted(
        [*range(nbc), *range(n_in, n_in + k_bc), *range(nbc, n_in),
         *range(n_in + k_bc, n_in + k_bc + k_car)],
        list(range(ncar + k_car)))
    tangent_examples = [e for e, nz in zip(body.examples[nbc:], carry_nz, strict=True) if nz]
    jcond = _ignoring_extra_inputs(cond, tangent_examples)
    cond_consts, body_consts, carry = _split(primals, ncc, nbc)
    _, t_bc, t_carry = _split(tangents, ncc, nbc)
    t_carry_in = [ops.zeros_like(c) if t is None else t
                  for c, t, keep in zip(carry, t_carry, carry_nz, strict=True) if keep]
    outs = while_p.bind(*cond_consts, *body_consts, *(t for t in t_bc if t is not None),
                        *carry, *t_carry_in, cond=jcond, body=jbody, cond_nconsts=ncc,
                        body_nconsts=nbc + k_bc)
    final, t_final = _split(outs, ncar)
    it = iter(t_final)
    return final, [next(it) if keep else None for keep in carry_nz]


def _ignoring_extra_inputs(body: Body, examples: list[Any]) -> Body:
    """``body`` taking (and ignoring) extra inputs shaped like ``examples``, at the end."""

    def fun(flat: list[Any]) -> list[Any]:
        return body(*flat[:len(body.examples)])

    staged, _ = stage_body(fun, [*body.examples, *examples], name=body.name)
    return staged


def _while_vjp(primals: tuple[Any, ...], needs: tuple[bool, ...], *, cond: Body, body: Body,
               cond_nconsts: int, body_nconsts: int) -> Any:
    params = {"cond": cond, "body": body, "cond_nconsts": cond_nconsts,
              "body_nconsts": body_nconsts}
    differentiated = [need and differentiable(e)
                      for need, e in zip(needs[cond_nconsts:], body.examples, strict=True)]
    if any(differentiated):
        raise UnsupportedTransformError(message(
            "reverse-mode differentiation (grad, vjp, jacrev) through while_loop is not "
            "defined: its number of iterations is only known by running it, so there is no "
            "fixed sequence of steps to run backwards (as in JAX)",
            fix="Use unijax.lax.fori_loop with Python int bounds (it becomes a scan) or "
                "unijax.lax.scan with a fixed length; forward mode (jvp, jacfwd) works "
                "through while_loop."))
    outs = while_p.bind(*primals, **params)

    def backward(cts: list[Any]) -> list[Any]:
        return [None] * len(primals)

    return outs, backward


residual_vjp_rules[while_p] = _while_vjp


@def_batch(while_p)
def _while_batch(values: tuple[Any, ...], bdims: tuple[int | None, ...], *, cond: Body,
                 body: Body, cond_nconsts: int, body_nconsts: int) -> Any:
    ncc, nbc = cond_nconsts, body_nconsts
    size = _axis_size(values, bdims)
    cc_b, bc_b, carry_b = _split([d is not None for d in bdims], ncc, nbc)
    while True:
        _, flags = batch_of(body, bc_b + carry_b, size)
        pred_batched = batch_of(cond, cc_b + carry_b, size)[1][0]
        grown = [a or b or pred_batched for a, b in zip(carry_b, flags, strict=True)]
        if grown == carry_b:
            break
        carry_b = grown
    bbody, _ = batch_of(body, bc_b + carry_b, size, force=carry_b)
    bcond, _ = batch_of(cond, cc_b + carry_b, size)
    cond_consts, body_consts, carry = _split(values, ncc, nbc)
    d_cc, d_bc, d_carry = _split(bdims, ncc, nbc)

    def moved(vs: list[Any], ds: list[Any], bs: list[bool]) -> list[Any]:
        return [move_bdim(v, d, 0, size) if b else v for v, d, b in zip(vs, ds, bs,
                                                                        strict=True)]

    cc, bc, init = moved(cond_consts, d_cc, cc_b), moved(body_consts, d_bc, bc_b), \
        moved(carry, d_carry, carry_b)
    if not pred_batched:
        outs = while_p.bind(*cc, *bc, *init, cond=bcond, body=bbody, cond_nconsts=ncc,
                            body_nconsts=nbc)
        return outs, [0 if b else None for b in carry_b]
    # The predicate differs between examples: run while any example goes on, and let the
    # examples that are done keep their carry.
    masked_cond, masked_body = _masked(bcond, bbody, ncc, nbc)
    outs = while_p.bind(*cc, *cc, *bc, *init, cond=masked_cond, body=masked_body,
                        cond_nconsts=ncc, body_nconsts=ncc + nbc)
    return outs, [0] * len(outs)


def _masked(bcond: Body, bbody: Body, ncc: int, nbc: int) -> tuple[Body, Body]:
    def any_going(flat: list[Any]) -> list[Any]:
        return [ops.any(bcond(*flat)[0])]

    def step(flat: list[Any]) -> list[Any]:
        cc, bc, carry = _split(flat, ncc, nbc)
        going = bcond(*cc, *carry)[0]
        new = bbody(*bc, *carry)
        return [ops.where(ops.reshape(going, (-1,) + (1,) * (len(c.shape) - 1)), n, c)
                for n, c in zip(new, carry, strict=True)]

    cc_ex = bcond.examples[:ncc]
    bc_ex, carry_ex = bbody.examples[:nbc], bbody.examples[nbc:]
    cond_body, _ = stage_body(any_going, [*cc_ex, *carry_ex], name=bcond.name)
    step_body, _ = stage_body(step, [*cc_ex, *bc_ex, *carry_ex], name=bbody.name)
    return cond_body, step_body
