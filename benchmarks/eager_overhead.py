"""Per-call cost of the engine's eager reverse mode on tiny arrays.

Times ``unijax.grad`` on NumPy for two functions where the engine's own bookkeeping, not
the arithmetic, is the cost: a 50-step ``sin``/``multiply``/``add`` chain on 4-element
arrays (about 150 primitives per call), and a small function that makes two constants
with the traced namespace. Medians of 15 blocks, in microseconds per call. Run it in two
checkouts to compare them:

    python benchmarks/eager_overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import unijax


def chain(x: Any) -> Any:
    xp = array_namespace(x)
    y = x
    for _ in range(50):
        y = xp.sin(y) * 0.9 + x
    return xp.sum(y)


def with_constants(x: Any) -> Any:
    xp = array_namespace(x)
    weights = xp.asarray([1.0, 2.0, 3.0, 4.0])
    return xp.sum(x * weights + xp.zeros(4))


def median_us(fn: Callable[[Any], Any], x: Any, calls: int, blocks: int = 15) -> float:
    """Median over ``blocks`` timed blocks of ``calls`` calls, in µs per call."""
    for _ in range(50):
        fn(x)
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    x = np.ones(4)
    rows = [("grad of a 50-step chain", chain, 200),
            ("grad making two constants", with_constants, 2000)]
    for label, fn, calls in rows:
        print(f"{label:28s} {median_us(unijax.grad(fn), x, calls):8.1f} µs")


if __name__ == "__main__":
    main()
