"""A least-squares gradient over a dataset larger than any one worker's memory, on Dask.

    python examples/dask_least_squares.py                     # 20M x 10 float64 (1.6 GB)
    python examples/dask_least_squares.py --rows 2000000 --memory-limit 300MB --json

A ``dask.distributed.LocalCluster`` of two worker processes, each limited to 600 MB by
default, computes ``unijax.grad`` of the mean squared residual of a linear model. The
data are generated on the workers, chunk by chunk, from a seeded random generator:
nothing of that size ever exists in this process or in any one worker. Each chunk is
generated, used for its share of the gradient and dropped, so a worker's memory stays
flat as the rows grow.

With ``X`` standard normal and ``y = X @ w_true + noise * e``, the expected gradient at
``w`` is ``2 (w - w_true)``; the script checks the computed one against it, within six
standard deviations of the sampling error, and reports the time, each worker's peak
resident memory, and whether any worker restarted or spilled to disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import unijax_dask
from array_api_compat import array_namespace
from distributed import Client, LocalCluster

import unijax


def loss(w: Any, X: Any, y: Any) -> Any:
    """Mean squared residual of the linear model ``X @ w``."""
    xp = array_namespace(w, X, y)
    r = X @ w - y
    return xp.sum(r * r) / X.shape[0]


def make_data(rows: int, features: int, chunk_rows: int, noise: float,
              seed: int = 0) -> tuple[Any, Any, np.ndarray]:
    """Lazy ``(X, y, w_true)``: each chunk is generated where it is computed."""
    rng = da.random.default_rng(seed)
    w_true = np.linspace(1.0, -1.0, features)
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features))
    y = X @ w_true + noise * rng.standard_normal(rows, chunks=chunk_rows)
    return X, y, w_true


def _worker_state(dask_worker: Any) -> dict[str, Any]:
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
    X, y, w_true = make_data(rows, features, chunk_rows, noise)
    w = np.zeros(features)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        before = client.run(_worker_state)
        start = time.perf_counter()
        grad = unijax_dask.compute(unijax.grad(loss, backend="dask")(w, X, y))
        seconds = time.perf_counter() - start
        after = client.run(_worker_state)
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
        "matches": bool(np.all(error < 6.0 * stderr)),
        "peak_rss_mb": sorted(state["peak_rss_mb"] for state in after.values()),
        "spilled_bytes": sum(state["spilled_bytes"] for state in after.values()),
        "restarted": sorted(after) != sorted(before) or any(
            after[a]["pid"] != before[a]["pid"] for a in after),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="600MB")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    result = run(args.rows, args.features, args.chunk_rows, args.workers,
                 args.memory_limit)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['rows']:,} rows x {result['features']} features "
              f"({result['dataset_gb']:.2f} GB with y) on {args.workers} workers of "
              f"{args.memory_limit}")
        print(f"gradient  {np.round(result['gradient'], 4)}")
        print(f"expected  {np.round(result['expected'], 4)}  "
              f"(worst error {result['max_error_in_stderr']:.1f} standard errors)")
        print(f"time {result['seconds']:.1f} s; peak memory per worker "
              f"{', '.join(f'{m:.0f} MB' for m in result['peak_rss_mb'])}; "
              f"spilled {result['spilled_bytes']} bytes; restarted: {result['restarted']}")
    ok = result["matches"] and not result["restarted"] and math.isfinite(result["seconds"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
