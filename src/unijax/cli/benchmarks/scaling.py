"""Scaling out on Dask: a least-squares gradient over more data than a worker's memory.

A ``dask.distributed.LocalCluster`` of worker processes, each given a ``memory_limit``,
computes ``unijax.grad(..., backend="dask")`` of the mean squared residual of a linear
model. The data are generated on the workers, chunk by chunk, from a seeded random
generator: nothing of the dataset's size ever exists in this process or in any one worker.
Each chunk is generated, used for its share of the gradient and dropped, so a worker's
peak memory should stay flat as the rows double.

With ``X`` standard normal and ``y = X @ w_true + noise * e``, the expected gradient at
``w`` is ``2 (w - w_true)``; :func:`run` checks the computed one against it, within
:data:`ALLOWED_ERROR` standard deviations of the sampling error.

:func:`run` measures one size on a cluster of its own (fresh worker processes, so each
worker's peak resident memory belongs to that size alone); :func:`sweep` doubles the rows
over a :class:`Sweep`; :func:`measure_scaling` is the ``scaling`` section of
``unijax bench``. ``examples/dask_least_squares.py`` and ``benchmarks/dask_scaling.py``
are command lines over this module. Dask, distributed and NumPy are imported only inside
the functions that use them.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import unijax

__all__ = ["ALLOWED_ERROR", "FIGURES", "SWEEPS", "Sweep", "loss", "make_data",
           "measure_scaling", "missing", "run", "sweep", "sweep_for", "worker_state"]

#: A gradient matches when every entry is within this many standard errors of its expectation.
ALLOWED_ERROR = 6.0

#: The figures :func:`measure_scaling` reports for the targets (``Target.numerator`` and
#: ``Target.denominator`` of a target on the ``scaling`` section name two of them).
FIGURES = ("peak_mb_largest", "peak_mb_smallest", "gradient_error_worst",
           "gradient_error_allowed")

_INSTALL_HINT = 'the scaling workload needs dask and distributed: pip install "unijax[dask]"'


@dataclass(frozen=True)
class Sweep:
    """The sizes of one scaling run: rows doubling from ``start`` while at most ``stop``.

    Attributes:
        start: Rows of the smallest dataset.
        stop: Upper bound on the rows of the largest.
        features: Columns of ``X``.
        chunk_rows: Rows per chunk (one task generates and uses one chunk).
        workers: Worker processes of the ``LocalCluster``, one thread each.
        memory_limit: Each worker's ``memory_limit`` (dask's notation, ``"600MB"``).
    """

    start: int
    stop: int
    features: int = 10
    chunk_rows: int = 250_000
    workers: int = 2
    memory_limit: str = "600MB"

    def sizes(self) -> list[int]:
        """The row counts, doubling from :attr:`start`."""
        rows, out = self.start, []
        while rows <= self.stop:
            out.append(rows)
            rows *= 2
        return out


#: The sweep of each ``unijax bench`` preset. At the top of the full and quick sweeps the
#: data (``X`` and ``y``) are larger than a worker's memory: 1.76 GB over 600 MB, and
#: 1M x 101 float64, 0.81 GB, over 300 MB. The smoke sweep only starts the cluster.
SWEEPS: dict[str, Sweep] = {
    "full": Sweep(1_250_000, 20_000_000),
    "quick": Sweep(250_000, 1_000_000, features=100, chunk_rows=25_000, memory_limit="300MB"),
    "smoke": Sweep(20_000, 40_000, features=10, chunk_rows=10_000, memory_limit="400MB"),
}


def sweep_for(size: str) -> Sweep:
    """The sweep of a ``unijax bench`` size preset (``full`` for an unknown one)."""
    return SWEEPS.get(size) or SWEEPS["full"]


def missing() -> str | None:
    """Why the workload cannot run here (dask or distributed not installed), or None."""
    if any(importlib.util.find_spec(name) is None for name in ("dask", "distributed")):
        return _INSTALL_HINT
    return None


def loss(w: Any, X: Any, y: Any) -> Any:
    """Mean squared residual of the linear model ``X @ w``."""
    from array_api_compat import array_namespace

    xp = array_namespace(w, X, y)
    r = X @ w - y
    return xp.sum(r * r) / X.shape[0]


def make_data(rows: int, features: int, chunk_rows: int, noise: float,
              seed: int = 0) -> tuple[Any, Any, Any]:
    """Lazy ``(X, y, w_true)``: each chunk is generated where it is computed."""
    import dask.array as da
    import numpy as np

    rng = da.random.default_rng(seed)
    w_true = np.linspace(1.0, -1.0, features)
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features))
    y = X @ w_true + noise * rng.standard_normal(rows, chunks=chunk_rows)
    return X, y, w_true


def worker_state(dask_worker: Any) -> dict[str, Any]:
    """A worker's process id, peak resident memory (MB) and bytes spilled to disk.

    Run on every worker with ``client.run(worker_state)``.
    """
    import os
    import resource

    spilled = getattr(dask_worker.data, "spilled_total", None)
    return {
        "pid": os.getpid(),
        # ru_maxrss is the process's peak resident set, in KiB on Linux.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "spilled_bytes": int(getattr(spilled, "disk", 0) or 0),
    }


def run(rows: int, features: int = 10, chunk_rows: int = 250_000, workers: int = 2,
        memory_limit: str = "600MB", noise: float = 0.5) -> dict[str, Any]:
    """Start a cluster, compute the gradient once, and report what it took.

    Returns:
        A dict with the gradient, its expectation and error, the time, and per worker
        the peak resident memory (MB), spilled bytes and whether it restarted.
    """
    import dask
    import numpy as np
    from distributed import Client, LocalCluster

    X, y, w_true = make_data(rows, features, chunk_rows, noise)
    w = np.zeros(features)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        before = client.run(worker_state)
        start = time.perf_counter()
        (grad,) = dask.compute(unijax.grad(loss, backend="dask")(w, X, y))
        seconds = time.perf_counter() - start
        after = client.run(worker_state)
    d = w - w_true
    expected = 2.0 * d
    # Each entry averages rows terms of standard deviation 2 sqrt(|d|^2 + d_j^2 + noise^2).
    stderr = 2.0 * np.sqrt((d @ d + d * d + noise**2) / rows)
    error = np.abs(grad - expected)
    return {
        "rows": rows, "features": features, "chunk_rows": chunk_rows,
        "dataset_gb": rows * (features + 1) * 8 / 1e9, "memory_limit": memory_limit,
        "seconds": seconds,
        "gradient": grad.tolist(), "expected": expected.tolist(),
        "max_error_in_stderr": float(np.max(error / stderr)),
        "matches": bool(np.all(error < ALLOWED_ERROR * stderr)),
        "peak_rss_mb": sorted(state["peak_rss_mb"] for state in after.values()),
        "spilled_bytes": sum(state["spilled_bytes"] for state in after.values()),
        "restarted": sorted(after) != sorted(before) or any(
            after[a]["pid"] != before[a]["pid"] for a in after),
    }


def _attempt(spec: Sweep, rows: int) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return run(rows, spec.features, spec.chunk_rows, spec.workers, spec.memory_limit), None
    except Exception as err:  # report and go on with the next size
        return None, f"{type(err).__name__}: {err}"[:300]


def sweep(spec: Sweep, done: Callable[[int, dict[str, Any] | None, str | None], None]
          | None = None) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """:func:`run` at every size of ``spec``, each on a cluster of its own.

    Args:
        spec: The sizes, chunking, workers and memory limit.
        done: Called after each size with ``(rows, result, None)``, or
            ``(rows, None, error message)`` when the run raised.

    Returns:
        ``(rows, result, error)`` per size; a size that raised does not stop the others.
    """
    out = []
    for rows in spec.sizes():
        result, error = _attempt(spec, rows)
        if done is not None:
            done(rows, result, error)
        out.append((rows, result, error))
    return out


def measure_scaling(size: str, progress: Callable[[str], None] | None = None
                    ) -> dict[str, Any]:
    """The ``scaling`` section of ``unijax bench``: the sweep :data:`SWEEPS` ``[size]``.

    Returns:
        The sweep's settings; ``sizes``, one row per row count (rows, data GB, seconds,
        peak MB per worker, spilled and restarted flags, whether the gradient matched,
        or the error it raised); ``figures`` (:data:`FIGURES`, for the targets; empty
        unless every size ran); and ``error`` (why nothing ran, or None).
    """
    note = progress or (lambda _: None)
    spec = sweep_for(size)
    section: dict[str, Any] = {
        "features": spec.features, "chunk_rows": spec.chunk_rows, "workers": spec.workers,
        "memory_limit": spec.memory_limit, "sizes": [], "figures": {}, "error": missing()}
    if section["error"] is not None:
        return section
    runs = []
    for rows in spec.sizes():
        note(f"scaling: {rows:,} rows")
        runs.append((rows, *_attempt(spec, rows)))
    for rows, r, error in runs:
        if r is None:
            section["sizes"].append({"rows": rows, "error": error})
            continue
        section["sizes"].append({
            "rows": rows, "dataset_gb": r["dataset_gb"], "seconds": r["seconds"],
            "peak_rss_mb": r["peak_rss_mb"], "spilled": r["spilled_bytes"] > 0,
            "spilled_bytes": r["spilled_bytes"], "restarted": r["restarted"],
            "matches": r["matches"], "max_error_in_stderr": r["max_error_in_stderr"],
            "error": None})
    ran = [r for _, r, _ in runs if r is not None]
    if ran and len(ran) == len(runs):
        section["figures"] = {
            "peak_mb_largest": max(ran[-1]["peak_rss_mb"]),
            "peak_mb_smallest": max(ran[0]["peak_rss_mb"]),
            "gradient_error_worst": max(r["max_error_in_stderr"] for r in ran),
            "gradient_error_allowed": ALLOWED_ERROR,
        }
    return section
