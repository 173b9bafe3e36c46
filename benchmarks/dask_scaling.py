"""Scaling of a data-parallel gradient on Dask: time and worker memory as the rows double.

    python benchmarks/dask_scaling.py                        # 1.25M .. 20M rows
    python benchmarks/dask_scaling.py --start 1250000 --stop 40000000

A thin script over :mod:`unijax.cli.benchmarks.scaling` (``unijax bench --workload
scaling`` runs the same sweep). Each size starts its own two-worker ``LocalCluster``
(600 MB per worker by default), with fresh worker processes, so the peak resident memory
it reports belongs to that size alone. The data are generated on the workers chunk by
chunk, so the peak per worker should stay flat while the dataset grows past the workers'
combined memory.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from unijax.cli.benchmarks.scaling import Sweep, sweep


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=1_250_000)
    parser.add_argument("--stop", type=int, default=20_000_000)
    parser.add_argument("--memory-limit", default="600MB")
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    args = parser.parse_args(argv)
    print(f"{'rows':>12} {'data GB':>8} {'time s':>8} {'peak MB per worker':>20} "
          f"{'spilled':>8} {'restart':>8} {'correct':>8}", flush=True)

    def show(rows: int, r: dict[str, Any] | None, error: str | None) -> None:
        if r is None:
            print(f"{rows:>12,} failed: {error}", flush=True)
            return
        peaks = ", ".join(f"{m:.0f}" for m in r["peak_rss_mb"])
        print(f"{rows:>12,} {r['dataset_gb']:>8.2f} {r['seconds']:>8.1f} {peaks:>20} "
              f"{r['spilled_bytes']:>8} {r['restarted']!s:>8} {r['matches']!s:>8}",
              flush=True)

    spec = Sweep(args.start, args.stop, chunk_rows=args.chunk_rows,
                 memory_limit=args.memory_limit)
    runs = sweep(spec, show)
    ok = all(r is not None and r["matches"] and not r["restarted"] for _, r, _ in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
