"""What unijax adds per call in front of a native transform, resolved to tenths of a µs.

Run: ``python benchmarks/dispatch_overhead.py [rounds]``.

``unijax bench``'s ``tiny`` workload compares ``unijax.grad`` on JAX with ``jax.grad``, but
eager ``jax.grad`` retraces on every call and costs milliseconds, with a spread of hundreds
of microseconds: a difference of one microsecond is far below what that comparison can
resolve. This script measures the difference directly. Each transform is built and called
once as usual (which resolves the backend and warms unijax's caches); then the native
function it dispatches to is replaced by one that returns at once. What remains is
unijax's own path from the call to the native function: backend selection, argument
checks, the fast paths. It is compared with a bare Python function that forwards to the
same no-op, in alternating blocks; the median of the paired differences is reported with
its quartiles.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import unijax
from unijax.cli.benchmarks.programs import tiny


def _no_op(*args: Any, **kwargs: Any) -> None:
    return None


def _stub_native(state: Any) -> None:
    """Point every native function ``state`` dispatches to at :func:`_no_op`."""
    for name in list(state._native):
        state._native[name] = _no_op
    for name, entry in list(state._fast.items()):
        state._fast[name] = (_no_op, *entry[1:])


def paired_overhead_us(call: Callable[[], Any], bare: Callable[[], Any], rounds: int,
                       number: int = 20_000) -> tuple[float, float, float]:
    """Median and quartiles of per-call ``call - bare`` over ``rounds`` paired blocks (µs)."""
    diffs = []
    for r in range(rounds):
        times = {}
        for name, fn in (("call", call), ("bare", bare)) if r % 2 else (("bare", bare),
                                                                         ("call", call)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name] = (time.perf_counter() - start) / number
        diffs.append((times["call"] - times["bare"]) * 1e6)
    q1, median, q3 = statistics.quantiles(diffs, n=4)
    return median, q1, q3


def main(rounds: int = 21) -> None:
    import jax.numpy as jnp

    x, y = jnp.asarray([0.5, 1.0, 2.0]), jnp.asarray([1.0, 2.0, 3.0])
    cases: list[tuple[str, Any, Any, tuple[Any, ...]]] = []
    g = unijax.grad(tiny, backend="jax")
    g(x, y)
    cases.append(("unijax.grad on JAX", g, g._transform_state, (x, y)))
    j = unijax.jit(tiny, backend="jax")
    j(x, y)
    cases.append(("unijax.jit on JAX", j, j._jit_state, (x, y)))
    a = np.asarray([0.5, 1.0, 2.0])
    ga = unijax.grad(lambda v: unijax.namespace("autograd").sum(v * v), backend="autograd")
    ga(a)
    cases.append(("unijax.grad on Autograd", ga, ga._transform_state, (a,)))
    print(f"{'transform':28s} {'extra per call':>16s}  [quartiles]  ({rounds} paired rounds)")
    for label, fn, state, args in cases:
        _stub_native(state)

        def call(fn: Any = fn, args: tuple[Any, ...] = args) -> Any:
            return fn(*args)

        def bare(args: tuple[Any, ...] = args) -> Any:
            return _no_op(*args)  # calling the native function directly

        median, q1, q3 = paired_overhead_us(call, bare, rounds)
        print(f"{label:28s} {median:+13.2f} µs  [{q1:+.2f}, {q3:+.2f}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=21,
                        help="paired rounds per transform (default 21)")
    main(parser.parse_args().rounds)
