"""The dask namespace unijax computes with: ``array_api_compat.dask.array``, guarded.

The engine reads the shapes of the concrete arrays under its tracers (a rule computes the
shape a cotangent is broadcast to; ``vmap`` reads the size of the mapped axis). A dask
array whose chunk sizes are unknown, as after boolean masking (``x[x > 0]``), has ``nan``
in its shape, which would surface as ``cannot convert float NaN to integer`` deep inside a
rule, or as a retrace on every ``jit`` call. So the namespace the engine computes with is
``array_api_compat.dask.array`` with each function checking its array arguments first:
one loop over the arguments, next to the tens of microseconds dask spends adding a layer
to a task graph. It keeps the module's name, so ``array_namespace`` still sees one
namespace beside the user's own dask arrays.

Two functions differ from array_api_compat's. ``asarray`` wraps a NumPy array as one
chunk (array_api_compat's splits arrays above dask's ``array.chunk-size``): a NumPy
argument next to dask arrays, such as a vector of weights, is then one block that every
task of the data reads. ``broadcast_to`` gives the axes it adds or stretches dask's
automatic chunks (one chunk each, as dask does, when the result is smaller than
``array.chunk-size``). The ``linalg`` functions whose results differ from the standard's
(``cholesky``, ``inv``) or that dask lacks or refuses on stacks of matrices come from
:mod:`unijax_dask._linalg`.

Loading the namespace also fixes ``array_api_compat.dask.array`` itself, the namespace
``array_namespace`` gives user code for dask arrays: its ``linalg`` gets the same
functions, and its functions send traced values to their own namespace
(:mod:`unijax_dask._tracers`). ``__unijax_settle__`` computes a ``while_loop``'s carry
each iteration (the engine calls it where a namespace has it).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from unijax_dask._chunks import check_known_chunks, raise_unknown_size
from unijax_dask._linalg import linalg_overrides
from unijax_dask._tracers import is_tracer_routing, route_tracers

__all__ = ["guarded_namespace"]

#: Submodules of the standard's extensions, guarded like the main namespace.
_EXTENSIONS = ("linalg", "fft")


def _guard(fn: Callable[..., Any], array_type: type, where: str) -> Callable[..., Any]:
    def check(a: Any) -> None:
        tp = type(a)
        if tp is array_type:
            check_known_chunks(a, where)
        elif tp is float:
            if a != a:  # a size read from an unknown shape (xp.eye(n), xp.zeros(n))
                raise_unknown_size(where)
        elif tp is list or tp is tuple:  # concat, stack, broadcast_arrays; shapes
            for item in a:
                check(item)

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for a in args:
            check(a)
        if kwargs:
            for a in kwargs.values():
                check(a)
        out: Any = fn(*args, **kwargs)
        if type(out) is array_type and _layers(out) > MAX_LAYERS:
            return flattened(out)
        return out

    return guarded


def _layers(x: Any) -> int:
    return len(x.dask.layers)


#: The most layers a result's task graph keeps before they are merged into one.
MAX_LAYERS = 256


def flattened(x: Any) -> Any:
    """``x`` with its task graph's layers merged into one (the same tasks and keys).

    Every dask operation copies the mapping of its input's graph layers: along a chain of
    n operations (a loop of n steps, and the backward pass of a ``scan``) building the
    graph costs n**2. Merging the layers every ``MAX_LAYERS`` operations keeps it linear.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.from_collections(x.name, x.__dask_graph__().to_dict(),
                                            dependencies=())
    return da.Array(graph, x.name, x.chunks, meta=x._meta)


def _unrouted(value: Any) -> Any:
    # The engine never hands a traced value to its namespace: it computes with the
    # functions as they were before route_tracers wrapped them.
    return value.__wrapped__ if is_tracer_routing(value) else value


def _guarded_module(module: types.ModuleType, array_type: type,
                    overrides: dict[str, Any]) -> types.ModuleType:
    guarded = types.ModuleType(module.__name__, module.__doc__)
    for name, value in vars(module).items():
        value = _unrouted(value)
        if name.startswith("__") or isinstance(value, type | types.ModuleType) \
                or not callable(value):
            setattr(guarded, name, value)
        else:
            setattr(guarded, name, _guard(value, array_type, f"{module.__name__}.{name}"))
    for name, value in overrides.items():
        setattr(guarded, name, _guard(value, array_type, f"{module.__name__}.{name}"))
    return guarded


def guarded_namespace() -> types.ModuleType:
    """``array_api_compat.dask.array`` with unknown chunk sizes refused (see module doc).

    Example:
        >>> xp = guarded_namespace()
        >>> xp.__name__, int(xp.sum(xp.ones(4)).compute())
        ('array_api_compat.dask.array', 4)
    """
    import array_api_compat.dask.array as base
    import dask.array as da
    import numpy as np
    from dask.array.core import normalize_chunks

    compat_asarray = _unrouted(base.asarray)
    compat_broadcast_to = da.broadcast_to  # array_api_compat re-exports dask's

    def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None,
                **kwargs: Any) -> Any:
        if type(obj) is np.ndarray and copy is not False and not kwargs:
            # A private copy: later writes to the caller's array must not reach the graph.
            data = np.array(obj, dtype=dtype, copy=True)
            return da.from_array(data, chunks=data.shape)
        return compat_asarray(obj, dtype=dtype, device=device, copy=copy, **kwargs)


    def broadcast_to(x: Any, /, shape: Any) -> Any:
        shape = tuple(shape)
        if type(x) is not da.Array or x.shape == shape:
            return compat_broadcast_to(x, shape)
        # The axes a broadcast adds or stretches get dask's automatic chunks, not one
        # chunk each: a cotangent broadcast to the data's shape (the VJP of sum) would
        # otherwise make everything computed from it a single block as large as the data.
        new = len(shape) - x.ndim
        chunks = ("auto",) * new + tuple(
            "auto" if old == 1 and size != 1 else blocks
            for blocks, old, size in zip(x.chunks, x.shape, shape[new:], strict=False))
        return da.broadcast_to(x, shape, chunks=normalize_chunks(chunks, shape, dtype=x.dtype))

    base_linalg: Any = base.linalg  # type: ignore[attr-defined]
    linalg = linalg_overrides(base_linalg)
    namespace = _guarded_module(base, da.Array,
                                {"asarray": asarray, "broadcast_to": broadcast_to})
    for ext in _EXTENSIONS:
        setattr(namespace, ext, _guarded_module(getattr(base, ext), da.Array,
                                                linalg if ext == "linalg" else {}))
    # The user's namespace (array_namespace of a dask array) gets the standard's linalg
    # results too, and sends traced values to their own namespace.
    for name, fn in linalg.items():
        setattr(base_linalg, name, fn)
    route_tracers(base, _EXTENSIONS)
    namespace.__unijax_settle__ = _settle  # type: ignore[attr-defined]
    # bool() of a dask array computes its graph: under a transform that is refused, so
    # array_api_compat's is_lazy_array sees a traced dask value as lazy (see the engine).
    namespace.__unijax_lazy__ = True  # type: ignore[attr-defined]
    return namespace


def _settle(values: Any) -> list[Any]:
    # What the engine's while_loop calls on its carry each iteration (its predicate is
    # about to compute it anyway): computed blocks keep the graph one layer deep.
    import dask
    from dask.base import is_dask_collection

    values = list(values)
    where = [i for i, v in enumerate(values) if is_dask_collection(v)]
    if where:
        done = dask.persist(*(values[i] for i in where))
        for i, value in zip(where, done, strict=True):
            values[i] = value
    return values
