"""unijax backend plugin for Dask arrays (through ``array_api_compat.dask.array``).

Dask has no transforms of its own: the unijax engine supplies grad, vmap and jit over
dask's Array-API namespace, so every result is a lazy dask array, computed by whatever
scheduler is active (dask's threaded scheduler, or a ``dask.distributed.Client`` the
user started). :func:`compute` computes a pytree of results in one ``dask.compute`` call,
so that subgraphs the results share run once.

``jit`` stages a function once per shape, chunking, dtype and static arguments and lowers
the program to straight-line Python calling the dask namespace: a call builds one task
graph for the whole program, which dask's optimisation fuses when it is computed. Dask
arrays are immutable once built, so no buffers are planned.

The namespace fixes what would otherwise be silently wrong: ``linalg`` functions with
the standard's results on one matrix or a stack (:mod:`unijax_dask._linalg`), and traced
values kept out of dask graphs (:mod:`unijax_dask._tracers`). ``unijax.lax`` outside
transforms runs as Python loops that refuse unknown chunk sizes
(:mod:`unijax_dask._loops`); a ``while_loop`` persists its carry each iteration, and long
chains of operations have their graph layers merged, so graphs stay bounded.

Nothing here imports dask (or NumPy) until it is used: dask arrays are recognised by their
type's module name, and the namespace is loaded lazily.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from unijax.extend import Backend, Capabilities, NativeTransforms, compile_python, hookimpl
from unijax_dask._chunks import check_known_chunks, jit_key
from unijax_dask._compute import compute, computed, persist
from unijax_dask._loops import DaskLoops
from unijax_dask._namespace import guarded_namespace

__all__ = [
    "check_known_chunks", "compute", "computed", "jit_key", "persist", "unijax_backend",
]


def _load_namespace() -> Any:
    return guarded_namespace()


def _load_native() -> NativeTransforms:
    # Every transform comes from the engine; unijax.lax outside transforms runs as Python
    # loops that refuse unknown chunk sizes with the transforms' ShapeError.
    return NativeTransforms(lax=DaskLoops)


def _compile(program: Any, xp: Any) -> Any:
    # No BufferSupport: a dask array is a node of a task graph, never written into.
    return compile_python(program, xp, name="dask_program")


def _to_host(x: Any) -> Any:
    # An explicit conversion (unijax.to_backend) computes the array on the active scheduler.
    import numpy as np

    return np.asarray(check_known_chunks(x, "unijax.to_backend").compute())


@hookimpl
def unijax_backend() -> Backend:
    """Dask arrays, lazy and chunked; every transform comes from the engine.

    Example:
        >>> backend = unijax_backend()
        >>> backend.name, backend.array_modules, sorted(backend.capabilities.native)
        ('dask', ('dask',), ['lax'])
    """
    return Backend(
        name="dask",
        array_modules=("dask",),
        requires=("dask", "array_api_compat"),
        install_hint='pip install "dask[array]" distributed',
        load_namespace=_load_namespace,
        load_native=_load_native,
        capabilities=Capabilities(native=frozenset({"lax"}), mutable_arrays=True,
                                  compiler=True),
        compiler=_compile,
        devices=lambda: ("cpu",),
        version=lambda: metadata.version("dask"),
        extras={
            # A dask array is a graph: converting it for another backend would compute
            # it, so that takes unijax.to_backend (through to_host), never a mixed call.
            "lazy_arrays": True,
            "to_host": _to_host,
            "jit_key": jit_key,
            # unijax.block_until_ready: persisted, a training loop's parameters start
            # each step from computed blocks instead of the history of every step.
            "block_until_ready": persist,
        },
    )
