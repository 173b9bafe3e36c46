"""``unijax.lax`` on dask arrays: Python loops that refuse unknown chunk sizes first.

Outside every transform the constructs of ``unijax.lax`` run as Python loops on the dask
namespace (:class:`unijax.extend.PythonLoops`). An operand whose chunk sizes are unknown
(after boolean masking) has ``nan`` in its shape, which would surface as ``cannot convert
float NaN to integer`` or as a carry "expected f64[nan], but got f64[nan]"; here it is the
same :class:`unijax.errors.ShapeError` that ``grad``, ``vmap`` and ``jit`` raise. A
``while_loop``'s carry is persisted each iteration, as the engine's is (see
``__unijax_settle__`` in :mod:`unijax_dask._namespace`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unijax.extend import PythonLoops
from unijax.tree_util import tree_leaves
from unijax_dask._chunks import check_known_chunks
from unijax_dask._compute import persist

__all__ = ["DaskLoops"]


def _check(api: str, *trees: Any) -> None:
    for leaf in tree_leaves(trees):
        if getattr(leaf, "chunks", None) is not None and hasattr(leaf, "dask"):
            check_known_chunks(leaf, api)


class DaskLoops(PythonLoops):
    """:class:`~unijax.extend.PythonLoops` that check their operands' chunk sizes.

    Example:
        >>> import dask.array as da
        >>> import array_api_compat.dask.array as xp
        >>> x = da.arange(4.0, chunks=2)
        >>> DaskLoops(xp, None).fori_loop(0, 3, lambda i, c: c * 2.0, x, True).compute().tolist()
        [0.0, 8.0, 16.0, 24.0]
    """

    def scan(self, f: Callable[..., Any], init: Any, xs: Any, length: int,
             reverse: bool) -> tuple[Any, Any]:
        _check("unijax.lax.scan", init, xs)
        return super().scan(f, init, xs, length, reverse)

    def while_loop(self, cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
                   init_val: Any) -> Any:
        _check("unijax.lax.while_loop", init_val)

        def step(carry: Any) -> Any:
            # The predicate computes the carry every iteration anyway: persisting it
            # keeps each test from recomputing all the iterations before it.
            return persist(body_fun(carry))

        return super().while_loop(cond_fun, step, init_val)

    def fori_loop(self, lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any],
                  init_val: Any, static_bounds: bool) -> Any:
        _check("unijax.lax.fori_loop", init_val)
        return super().fori_loop(lower, upper, body_fun, init_val, static_bounds)

    def switch(self, index: Any, branches: Sequence[Callable[..., Any]],
               operands: tuple[Any, ...], api: str) -> Any:
        _check(api, operands)
        return super().switch(index, branches, operands, api)
