"""Computing the lazy results of transforms on dask arrays, all in one graph.

Transforms on dask arrays return dask arrays: nothing runs until they are computed. The
results of one call usually share most of their graph (a value and its gradient share
the forward pass), so computing them one by one would run the shared part once per
result. :func:`compute` and :func:`persist` hand every dask leaf of a pytree to a single
``dask.compute``/``dask.persist`` call instead, on whichever scheduler is active: dask's
threaded scheduler by default, a ``dask.distributed.Client`` when the user started one.
unijax never starts a cluster itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unijax.tree_util import tree_flatten

__all__ = ["compute", "computed", "persist"]


def _run(tree: Any, how: str, kwargs: dict[str, Any]) -> Any:
    import dask
    from dask.base import is_dask_collection

    leaves, treedef = tree_flatten(tree)
    where = [i for i, leaf in enumerate(leaves) if is_dask_collection(leaf)]
    if where:
        done = getattr(dask, how)(*(leaves[i] for i in where), **kwargs)
        for i, value in zip(where, done, strict=True):
            leaves[i] = value
    return treedef.unflatten(leaves)


def compute(tree: Any, **kwargs: Any) -> Any:
    """Compute every dask leaf of ``tree`` in one ``dask.compute`` call.

    Args:
        tree: A pytree (the result of a transform); leaves that are not dask collections
            are returned as they are.
        **kwargs: Passed to ``dask.compute`` (``scheduler=``, ``optimize_graph=``, ...).

    Returns:
        ``tree`` with each dask array replaced by its NumPy value.

    Example:
        >>> import dask.array as da
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> loss = lambda w: array_namespace(w).sum(w * w)
        >>> value, grad = compute(unijax.value_and_grad(loss)(da.arange(3.0, chunks=2)))
        >>> float(value), grad.tolist()
        (5.0, [0.0, 2.0, 4.0])
    """
    return _run(tree, "compute", kwargs)


def persist(tree: Any, **kwargs: Any) -> Any:
    """Start computing every dask leaf of ``tree`` in one ``dask.persist`` call.

    On a ``dask.distributed.Client`` the results stay in the workers' memory and are
    returned at once as dask arrays backed by them; the next step of an iteration (new
    parameters from a gradient) then starts from computed blocks.

    Args:
        tree: A pytree; leaves that are not dask collections are returned as they are.
        **kwargs: Passed to ``dask.persist``.

    Returns:
        ``tree`` with each dask array replaced by its persisted version.

    Example:
        >>> import dask.array as da
        >>> out = persist({"w": da.ones(4, chunks=2) * 2.0, "step": 3})
        >>> out["step"], out["w"].sum().compute().item()
        (3, 8.0)
    """
    return _run(tree, "persist", kwargs)


def computed(fun: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``fun`` with its results computed in one ``dask.compute`` call (see :func:`compute`).

    Wrap a transformed function to get NumPy values back: ``computed(unijax.grad(loss))``.

    Args:
        fun: Any function returning a pytree of dask arrays.
        **kwargs: Passed to ``dask.compute`` on every call.

    Example:
        >>> import dask.array as da
        >>> import unijax
        >>> from array_api_compat import array_namespace
        >>> grad = computed(unijax.grad(lambda w: array_namespace(w).sum(w ** 3)))
        >>> grad(da.asarray([1.0, 2.0])).tolist()
        [3.0, 12.0]
    """
    @functools.wraps(fun)
    def run(*args: Any, **call_kwargs: Any) -> Any:
        return compute(fun(*args, **call_kwargs), **kwargs)

    return run
