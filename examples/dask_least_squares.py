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

The workload itself lives in :mod:`unijax.cli.benchmarks.scaling`, which
``unijax bench --workload scaling`` also runs.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence

import numpy as np

from unijax.cli.benchmarks.scaling import loss, make_data, run

__all__ = ["loss", "main", "make_data", "run"]


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
