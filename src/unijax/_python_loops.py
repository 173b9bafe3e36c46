"""``unijax.lax`` as Python loops, for backends whose native transforms trace eagerly.

Autograd's ``grad`` records every operation as it runs, so a Python loop over the body is
differentiated like any other code. These functions run the constructs that way, with the
namespace of the backend, and check each iteration's outputs exactly as the engine does
(:func:`unijax.engine.lax.check_match`), so a mismatch raises the same
:class:`~unijax.errors.ControlFlowError` on every backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._validate import fun_name
from unijax.engine.frontend import as_array
from unijax.engine.lax import check_match, check_predicate, scan_pair
from unijax.errors import UnsupportedTransformError, message

__all__ = ["PythonLoops"]


class PythonLoops:
    """The constructs of ``unijax.lax`` on a namespace ``xp``, as Python loops.

    Args:
        xp: The backend's Array-API namespace.
        is_tracer: Recognises the backend's reverse-mode tracers (``None``: it has none).
    """

    def __init__(self, xp: Any, is_tracer: Callable[[Any], bool] | None) -> None:
        self.xp = xp
        self.is_tracer = is_tracer

    def _namespace(self, values: Sequence[Any]) -> Any:
        # Under an engine transform (vmap over Autograd code) the values are the engine's
        # tracers, which the backend's own functions do not take.
        for v in values:
            if getattr(type(v), "__unijax_tracer__", False):
                return v.__array_namespace__()
        return self.xp

    def _as_array(self, value: Any) -> Any:
        if isinstance(value, float):
            return as_array(value, self.xp)  # the configured default float dtype
        return self.xp.asarray(value) if isinstance(value, bool | int | complex) else value

    def scan(self, f: Callable[..., Any], init: Any, xs: Any, length: int,
             reverse: bool) -> tuple[Any, Any]:
        xs_leaves, xs_def = tree_util.tree_flatten(xs)
        carry = tree_util.tree_map(self._as_array, init)
        rows: list[Any] = [None] * length
        for i in (range(length - 1, -1, -1) if reverse else range(length)):
            x = tree_util.tree_unflatten(xs_def, [leaf[i, ...] for leaf in xs_leaves])
            new, y = scan_pair(f(carry, x), fun_name(f))
            check_match("scan", carry, new, expected_label="the carry it was given",
                        got_label="the carry it returned",
                        fix="Return a carry of the same structure, shapes and dtypes as the "
                            "initial one (cast with xp.astype, or make the initial carry "
                            "match).")
            carry = tree_util.tree_map(self._as_array, new)
            rows[i] = tree_util.tree_map(self._as_array, y)
        if length == 0:
            raise UnsupportedTransformError(message(
                "scan with length 0 on this backend cannot tell the shapes of the stacked "
                "outputs without running the body",
                fix="Skip the scan when there is nothing to scan over."))
        y_leaves = [tree_util.tree_leaves(r) for r in rows]
        stacked = [self._namespace(column).stack(column)
                   for column in ([leaves[j] for leaves in y_leaves]
                                  for j in range(len(y_leaves[0])))]
        return carry, tree_util.tree_unflatten(tree_util.tree_structure(rows[0]), stacked)

    def while_loop(self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   init_val: Any) -> Any:
        carry = tree_util.tree_map(self._as_array, init_val)
        self._refuse_reverse_mode(carry)
        while bool(check_predicate(cond_fun(carry), cond_fun)):
            new = body_fun(carry)
            check_match("while_loop", carry, new, expected_label="the carry body_fun was given",
                        got_label="the carry body_fun returned",
                        fix="Return a carry of the same structure, shapes and dtypes as "
                            "init_val.")
            carry = tree_util.tree_map(self._as_array, new)
            self._refuse_reverse_mode(carry)
        return carry

    def _refuse_reverse_mode(self, carry: Any) -> None:
        is_tracer = self.is_tracer
        if is_tracer is not None and any(is_tracer(leaf) for leaf in
                                         tree_util.tree_leaves(carry)):
            raise UnsupportedTransformError(message(
                "reverse-mode differentiation (grad, vjp, jacrev) through while_loop is not "
                "defined: its number of iterations is only known by running it, so there is "
                "no fixed sequence of steps to run backwards (as in JAX)",
                fix="Use unijax.lax.fori_loop with Python int bounds (it becomes a scan) or "
                    "unijax.lax.scan with a fixed length; forward mode (jvp, jacfwd) works "
                    "through while_loop."))

    def fori_loop(self, lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any],
                  init_val: Any, static_bounds: bool) -> Any:
        if static_bounds:
            value = init_val
            for i in range(int(lower), int(upper)):
                new = body_fun(self.xp.asarray(i), value)
                check_match("fori_loop", value, new, expected_label="the carry it was given",
                            got_label="the carry body_fun returned",
                            fix="Return a carry of the same structure, shapes and dtypes as "
                                "init_val.")
                value = new
            return value

        def going(carry: Any) -> Any:
            return carry[0] < carry[1]

        def advance(carry: Any) -> Any:
            i, stop, value = carry
            return i + 1, stop, body_fun(i, value)

        return self.while_loop(going, advance, (lower, upper, init_val))[2]

    def switch(self, index: Any, branches: Sequence[Callable[..., Any]],
               operands: tuple[Any, ...], api: str) -> Any:
        chosen = min(max(int(index), 0), len(branches) - 1)
        out = branches[chosen](*operands)
        # JAX and the engine check every branch's output types; here the other branches
        # run only for that check (a branch that fails on these values is not checked).
        for k, branch in enumerate(branches):
            if k == chosen:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    other = branch(*operands)
            except Exception:
                continue
            first, second = (other, out) if k < chosen else (out, other)
            low, high = sorted((k, chosen))
            check_match(api, first, second, expected_label=f"the output of branch {low}",
                        got_label=f"the output of branch {high}",
                        fix="Make every branch return the same structure, shapes and dtypes.")
        return out
