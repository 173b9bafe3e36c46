"""Per-call cost of NumPy's and torch's dispatch protocols on tracers.

A traced function may call the traced namespace (``xp.sin(x)``, ``xp =
array_namespace(x)``: the fast path), or NumPy and torch directly (``np.sin(x)``,
``torch.sin(x)``), which reach the same traced function through ``__array_ufunc__``,
``__array_function__`` or ``__torch_function__``. This times both, on the same tracer,
inside one trace: NumPy's under eager ``unijax.grad`` (a reverse-mode tracer over a
4-element array, where every call is paid on every evaluation), torch's while
``unijax.jit`` traces (paid once per trace, then the compiled program runs). Medians of
15 blocks, in microseconds per call; the protocol's own cost is the difference. Run::

    python benchmarks/protocol_overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import unijax

CALLS, BLOCKS = 300, 15


def median_us(op: Callable[[], Any]) -> float:
    """Median over blocks of ``CALLS`` calls of ``op``, in µs per call."""
    for _ in range(20):
        op()
    times = []
    for _ in range(BLOCKS):
        start = time.perf_counter()
        for _ in range(CALLS):
            op()
        times.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(times)


def numpy_rows() -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    w = np.linspace(1.0, 2.0, 4)

    def traced(x: Any) -> Any:
        xp = array_namespace(x)
        rows.extend([
            ("sin (ufunc)", median_us(lambda: xp.sin(x)), median_us(lambda: np.sin(x))),
            ("sum (function)", median_us(lambda: xp.sum(x, axis=0)),
             median_us(lambda: np.sum(x, axis=0))),
            ("concat (function)", median_us(lambda: xp.concat([x, x])),
             median_us(lambda: np.concatenate([x, x]))),
            ("ndarray * tracer", median_us(lambda: x * w), median_us(lambda: w * x)),
        ])
        return xp.sum(x)

    unijax.grad(traced)(np.linspace(0.1, 0.4, 4))
    return rows


def torch_rows() -> list[tuple[str, float, float]]:
    import torch

    rows: list[tuple[str, float, float]] = []

    def traced(x: Any) -> Any:
        xp = array_namespace(x)
        rows.extend([
            ("sin", median_us(lambda: xp.sin(x)), median_us(lambda: torch.sin(x))),
            ("sum(dim=0)", median_us(lambda: xp.sum(x, axis=0)),
             median_us(lambda: torch.sum(x, dim=0))),
        ])
        return xp.sum(x)

    with unijax.use_backend("torch"):
        unijax.jit(traced)(torch.linspace(0.1, 0.4, 4, dtype=torch.float64))
    return rows


def main() -> None:
    for title, rows in (("NumPy, eager grad", numpy_rows()), ("torch, jit tracing", torch_rows())):
        print(f"{title}: µs per call")
        print(f"  {'call':<20} {'xp.f(x)':>9} {'protocol':>9} {'extra':>7}")
        for name, fast, protocol in rows:
            print(f"  {name:<20} {fast:9.2f} {protocol:9.2f} {protocol - fast:7.2f}")


if __name__ == "__main__":
    main()
