"""Scaling of a data-parallel gradient on Dask: time and worker memory as the rows double.

    python benchmarks/dask_scaling.py                        # 1.25M .. 20M rows
    python benchmarks/dask_scaling.py --start 1250000 --stop 40000000

Each size runs ``examples/dask_least_squares.py`` in a fresh interpreter, so every size
starts its own two-worker ``LocalCluster`` (600 MB per worker by default) and the peak
resident memory it reports belongs to that size alone. The data are generated on the
workers chunk by chunk, so the peak per worker should stay flat while the dataset grows
past the workers' combined memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_least_squares.py"


def measure(rows: int, memory_limit: str, chunk_rows: int) -> dict[str, object]:
    """One run of the example at ``rows`` rows, as the dict it prints."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--rows", str(rows), "--memory-limit", memory_limit,
         "--chunk-rows", str(chunk_rows), "--json"],
        capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{rows} rows failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=1_250_000)
    parser.add_argument("--stop", type=int, default=20_000_000)
    parser.add_argument("--memory-limit", default="600MB")
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    args = parser.parse_args(argv)
    print(f"{'rows':>12} {'data GB':>8} {'time s':>8} {'peak MB per worker':>20} "
          f"{'spilled':>8} {'restart':>8} {'correct':>8}")
    rows, ok = args.start, True
    while rows <= args.stop:
        r = measure(rows, args.memory_limit, args.chunk_rows)
        peaks = ", ".join(f"{m:.0f}" for m in r["peak_rss_mb"])  # type: ignore[attr-defined]
        print(f"{rows:>12,} {r['dataset_gb']:>8.2f} {r['seconds']:>8.1f} {peaks:>20} "
              f"{r['spilled_bytes']:>8} {r['restarted']!s:>8} {r['matches']!s:>8}",
              flush=True)
        ok = ok and bool(r["matches"]) and not r["restarted"]
        rows *= 2
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
