"""``unijax.lax`` on Autograd: Python loops that its ``grad`` records as they run.

The operands of a ``while_loop`` decide who runs it, and they can all be concrete (a
Python scalar or a NumPy carry) while its predicate reads a value that ``jit`` or ``vmap``
traces: ``while_loop(lambda c: c < n, body, 0)`` with a traced ``n``. A Python loop cannot
ask such a predicate whether to go on. :class:`AutogradLoops` notices it the first time
the predicate returns a tracer of the engine and hands the loop, from the carry it has
reached, to the engine's ``while_loop``, as on every backend without native control flow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unijax import lax
from unijax.extend import PythonLoops

__all__ = ["AutogradLoops"]


def _is_engine_tracer(value: Any) -> bool:
    return bool(getattr(type(value), "__unijax_tracer__", False))


class _TracedPredicate(Exception):  # control flow inside AutogradLoops, never raised to users
    """The predicate returned an engine tracer for ``carry``: the engine goes on."""

    def __init__(self, carry: Any, pred: Any, first: bool) -> None:
        super().__init__()
        self.carry, self.pred, self.first = carry, pred, first


class AutogradLoops(PythonLoops):
    """:class:`~unijax.extend.PythonLoops` whose ``while_loop`` hands a predicate traced
    by ``jit`` or ``vmap`` to the engine.

    Example:
        >>> import numpy as np
        >>> import unijax
        >>> from unijax import lax
        >>> f = lambda n: lax.while_loop(lambda c: c < n, lambda c: c + 1.5, 0.0)
        >>> float(unijax.jit(f, backend="autograd")(np.asarray(4.0)))
        4.5
    """

    def while_loop(self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   init_val: Any) -> Any:
        calls = 0

        @functools.wraps(cond_fun)
        def probe(carry: Any) -> Any:
            nonlocal calls
            calls += 1
            pred = cond_fun(carry)
            if _is_engine_tracer(pred):
                raise _TracedPredicate(carry, pred, calls == 1)
            return pred

        try:
            return super().while_loop(probe, body_fun, init_val)
        except _TracedPredicate as traced:
            # Before any iteration the engine gets init_val itself: a Python scalar in it
            # stays weakly typed, exactly as where the engine runs the whole loop.
            carry, pred = (init_val if traced.first else traced.carry), traced.pred
        return _on_the_engine(cond_fun, body_fun, carry, pred)


def _on_the_engine(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   carry: Any, pred: Any) -> Any:
    """The rest of the loop from ``carry``, run by the engine's ``while_loop``.

    ``unijax.lax`` picks the engine when an operand is one of its tracers; the predicate
    (such a tracer) is carried along unchanged for that, after the user's carry so that
    messages about the carry number its leaves as the user does.
    """

    @functools.wraps(cond_fun)
    def cond(state: tuple[Any, Any]) -> Any:
        return cond_fun(state[0])

    @functools.wraps(body_fun)
    def body(state: tuple[Any, Any]) -> tuple[Any, Any]:
        return body_fun(state[0]), state[1]

    return lax.while_loop(cond, body, (carry, pred))[0]
