"""Time unijax.random.normal against NumPy's Generator on 10**7 draws, eager and jitted.

    python benchmarks/random_speed.py [--size 10000000] [--repeat 5]

Prints the best of ``--repeat`` runs of each, and the ratios to
``numpy.random.Generator.standard_normal``, and the Threefry bits alone under ``jit``.
``jit`` is timed after its first call (which
traces and compiles) with a new key per call.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import unijax
from unijax import random


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_jit(fn: Callable[[Any], Any], key: Any, repeat: int) -> tuple[float, float]:
    """The first call of ``jit(fn)`` (trace and compile) and its best later call, each
    with a new key."""
    draw = unijax.jit(fn)
    start = time.perf_counter()
    draw(key)
    first = time.perf_counter() - start
    counter = iter(range(1, 10**6))
    return first, best(lambda: draw(random.fold_in(key, next(counter))), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10**7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, repeat = args.size, args.repeat
    unijax.set_backend("numpy")
    key = random.key(0)
    generator = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        base = best(lambda d=dtype: generator.standard_normal(n, dtype=d), repeat)
        random.normal(key, (n,), dtype)  # compiles the eager loop once (cached on disk)
        eager = best(lambda d=dtype: random.normal(key, (n,), d), repeat)
        first, jitted = time_jit(lambda k, d=dtype: random.normal(k, (n,), d), key, repeat)
        print(f"{dtype}: Generator.standard_normal {base:.3f} s | unijax eager {eager:.3f} s "
              f"({eager / base:.2f}x) | unijax jit {jitted:.3f} s ({jitted / base:.2f}x, "
              f"first call {first:.1f} s)")
    _, bits = time_jit(lambda k: random.bits(k, (n,), "uint32"), key, repeat)
    print(f"uint32 bits under jit: {bits:.3f} s")


if __name__ == "__main__":
    main()
