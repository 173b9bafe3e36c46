"""``unijax.lax`` as Python loops, for backends whose native transforms trace eagerly.

Autograd's ``grad`` records every operation as it runs, so a Python loop over the body is
differentiated like any other code. These functions run the constructs that way, with the
namespace of the backend, and check each iteration's outputs exactly as the engine does
(:func:`unijax.engine.lax.check_match`), so a mismatch raises the same
:class:`~unijax.errors.ControlFlowError` on every backend.

Only the chosen branch of ``cond``/``switch`` runs on the caller's operands; the others
run on placeholders (fresh arrays of the same shapes and dtypes), only to check that every
branch returns the same types, so a branch that writes its operand in place never touches
the caller's arrays. A carry given as a Python scalar is weakly typed, as in JAX: when the
body returns another dtype for it (an ``int`` carry, a float body), the loop starts again
from the carry cast to that dtype.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from unijax import tree_util
from unijax._validate import fun_name
from unijax.engine.frontend import as_array
from unijax.engine.lax import check_match, check_predicate, promoted_carry, scan_pair
from unijax.errors import UnsupportedTransformError, message

__all__ = ["PythonLoops"]

_SCALARS = (bool, int, float, complex)
_SCAN_FIX = ("Return a carry of the same structure, shapes and dtypes as the initial one "
             "(cast with xp.astype, or make the initial carry match).")
_BRANCH_FIX = "Make every branch return the same structure, shapes and dtypes."


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

    def _asarray(self, value: Any, *, dtype: Any) -> Any:
        return self.xp.asarray(value, dtype=dtype)

    def _placeholder(self, value: Any, fill: float = 0) -> Any:
        """A fresh array of ``value``'s shape and dtype (Python scalars as they are)."""
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            return value
        xp = self._namespace([value])
        return xp.ones_like(value) if fill else xp.zeros_like(value)

    def _promoted(self, given: Sequence[Any], carry: Any, new: Any) -> Any:
        """``carry`` with its weakly typed leaves promoted to ``new``'s dtypes, or None."""
        leaves, treedef = tree_util.tree_flatten(carry)
        new_leaves, new_def = tree_util.tree_flatten(new)
        if new_def != treedef:
            return None  # check_match names the mismatch
        promoted = promoted_carry(given, leaves, new_leaves, self._asarray)
        return None if promoted is None else tree_util.tree_unflatten(treedef, promoted)

    def _promote_weak(self, body: Callable[[Any], Any], given: Sequence[Any],
                      carry: Any) -> Any:
        """``carry`` with each leaf given as a Python scalar (weakly typed) promoted to the
        dtype ``body`` (the carry to the new carry) returns for it, as JAX promotes.

        The body runs on placeholders, never on the caller's values: first with the
        namespace's default dtypes, then with the Python scalars themselves (which promote
        as JAX's weak types do where the namespace has no mixed-kind promotion, as in
        ``int64 + float64`` on array-api-strict). If it fails on both, the carry stays.
        """
        if not any(isinstance(g, _SCALARS) for g in given):
            return carry
        leaves, treedef = tree_util.tree_flatten(carry)
        stand_in = [self._placeholder(c) for c in leaves]
        weak = [g if isinstance(g, _SCALARS) else c
                for g, c in zip(given, stand_in, strict=True)]
        for trial in (stand_in, weak):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = body(tree_util.tree_unflatten(treedef, trial))
                out = tree_util.tree_map(self._as_array, out)
            except Exception:
                continue
            promoted = self._promoted(given, carry, out)
            return carry if promoted is None else promoted
        return carry

    def _row_placeholders(self, xs_leaves: list[Any], xs_def: Any) -> Any:
        """One row of ``xs`` as fresh zeros (for a body run only for its types)."""
        return tree_util.tree_unflatten(xs_def, [
            self._namespace([leaf]).zeros(tuple(leaf.shape[1:]), dtype=leaf.dtype)
            for leaf in xs_leaves])

    # --- scan -------------------------------------------------------------------------------

    def scan(self, f: Callable[..., Any], init: Any, xs: Any, length: int,
             reverse: bool) -> tuple[Any, Any]:
        xs_leaves, xs_def = tree_util.tree_flatten(xs)
        given = tree_util.tree_leaves(init)
        carry = tree_util.tree_map(self._as_array, init)
        if any(isinstance(g, _SCALARS) for g in given):
            row = self._row_placeholders(xs_leaves, xs_def)
            carry = self._promote_weak(lambda c: scan_pair(f(c, row), fun_name(f))[0], given,
                                       carry)
        if length == 0:
            return self._empty_scan(f, carry, xs_leaves, xs_def)
        # The stacked outputs are collected as they come: nothing is allocated ahead, and
        # nothing at all when the body stacks nothing.
        columns: list[list[Any]] | None = None
        y_def: Any = None
        for i in (range(length - 1, -1, -1) if reverse else range(length)):
            x = tree_util.tree_unflatten(xs_def, [leaf[i, ...] for leaf in xs_leaves])
            new, y = scan_pair(f(carry, x), fun_name(f))
            check_match("scan", carry, new, expected_label="the carry it was given",
                        got_label="the carry it returned", fix=_SCAN_FIX)
            carry = tree_util.tree_map(self._as_array, new)
            y_leaves, y_def = tree_util.tree_flatten(tree_util.tree_map(self._as_array, y))
            if columns is None:
                columns = [[] for _ in y_leaves]
            for column, leaf in zip(columns, y_leaves, strict=True):
                column.append(leaf)
        assert columns is not None  # length > 0
        if reverse:
            for column in columns:
                column.reverse()
        stacked = [self._namespace(column).stack(column) for column in columns]
        return carry, tree_util.tree_unflatten(y_def, stacked)

    def _empty_scan(self, f: Callable[..., Any], carry: Any, xs_leaves: list[Any],
                    xs_def: Any) -> tuple[Any, Any]:
        """A scan of no iterations: the body runs once on placeholders, for the types of
        the carry and of what it stacks (JAX traces it once for the same reason)."""
        x = self._row_placeholders(xs_leaves, xs_def)
        new, y = scan_pair(f(tree_util.tree_map(self._placeholder, carry), x), fun_name(f))
        check_match("scan", carry, new, expected_label="the carry it was given",
                    got_label="the carry it returned", fix=_SCAN_FIX)

        def empty(value: Any) -> Any:
            value = self._as_array(value)
            xp = self._namespace([value])
            return xp.zeros((0, *value.shape), dtype=value.dtype)

        return carry, tree_util.tree_map(empty, y)

    # --- while_loop and fori_loop ---------------------------------------------------------

    def while_loop(self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   init_val: Any) -> Any:
        given = tree_util.tree_leaves(init_val)
        carry = tree_util.tree_map(self._as_array, init_val)
        carry = self._promote_weak(body_fun, given, carry)
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
            start, stop = int(lower), int(upper)

            def step(carry: Any, _: Any) -> tuple[Any, None]:
                new = body_fun(self.xp.asarray(start + carry[0]), carry[1])
                return (carry[0] + 1, new), None

            # A scan with a Python counter: the same checks and promotion as scan's.
            counted = _Counted(step, body_fun)
            return self.scan(counted, (self.xp.asarray(0), init_val), None,
                             max(stop - start, 0), False)[0][1]

        def going(carry: Any) -> Any:
            return carry[0] < carry[1]

        def advance(carry: Any) -> Any:
            i, stop, value = carry
            return i + 1, stop, body_fun(i, value)

        return self.while_loop(going, advance, (lower, upper, init_val))[2]

    # --- cond and switch ------------------------------------------------------------------

    def switch(self, index: Any, branches: Sequence[Callable[..., Any]],
               operands: tuple[Any, ...], api: str) -> Any:
        chosen = min(max(int(index), 0), len(branches) - 1)
        out = branches[chosen](*operands)
        self.check_branches(api, [out if k == chosen else self._on_placeholders(b, operands)
                                  for k, b in enumerate(branches)])
        return out

    def _on_placeholders(self, branch: Callable[..., Any], operands: tuple[Any, ...]) -> Any:
        """``branch``'s output on fresh arrays shaped like ``operands`` (zeros, else ones),
        for its types only; :data:`NOT_RUN` if it fails on both (it is not checked)."""
        for fill in (0, 1):
            try:
                stand_in = tree_util.tree_map(lambda v, fill=fill: self._placeholder(v, fill),
                                              operands)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return branch(*stand_in)
            except Exception:
                continue
        return NOT_RUN

    def check_branches(self, api: str, outs: Sequence[Any]) -> None:
        """Raise :class:`~unijax.errors.ControlFlowError` unless every branch's output
        (``outs[k]``, or :data:`NOT_RUN` for one that is not checked) has the same types."""
        ran = [(k, o) for k, o in enumerate(outs) if o is not NOT_RUN]
        for (low, first), (high, other) in itertools.pairwise(ran):
            check_match(api, first, other, expected_label=f"the output of branch {low}",
                        got_label=f"the output of branch {high}", fix=_BRANCH_FIX)


#: Stands for the output of a branch that could not be run for the type check.
NOT_RUN: Any = object()


class _Counted:
    """A ``fori_loop`` step named after its body, for messages."""

    def __init__(self, step: Callable[..., Any], body_fun: Callable[..., Any]) -> None:
        self._step = step
        self.__name__ = fun_name(body_fun)

    def __call__(self, carry: Any, x: Any) -> Any:
        return self._step(carry, x)
