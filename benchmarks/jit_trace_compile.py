"""How long the engine's ``jit`` takes to stage, optimise and lower a 1,000-equation function.

Run: ``python benchmarks/jit_trace_compile.py [n_equations]``. Prints the median of
several runs for each phase, and the per-call cost of the compiled program against the
same function run eagerly (small arrays, so dispatch overhead dominates).

The target is trace + optimise + compile well under 0.3 s for 1,000 equations.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from unijax.engine.jit import JitFunction
from unijax.engine.lower import compile_python, interpret
from unijax.engine.namespace import array_functions as ops
from unijax.engine.optimize import optimize
from unijax.engine.staging import stage


def chain(n_equations: int) -> Callable[[Any, Any], Any]:
    """A function of ``n_equations`` primitive applications (5 per step)."""
    steps = max(1, n_equations // 5)

    def f(x: Any, y: Any) -> Any:
        for i in range(steps):
            x = ops.sin(x) * y + ops.cos(x) * (1.0 + i * 1e-3)
        return x

    return f


def median_seconds(fn: Callable[[], Any], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(n_equations: int = 1000) -> None:
    f = chain(n_equations)
    x, y = np.linspace(0.0, 1.0, 16), np.full(16, 0.5)

    def fun_flat(xs: list[Any]) -> list[Any]:
        return [f(*xs)]

    program, _ = stage(fun_flat, [x, y])
    optimized = optimize(program)
    print(f"equations: staged {len(program)}, optimised {len(optimized)}")

    t_stage = median_seconds(lambda: stage(fun_flat, [x, y]))
    t_opt = median_seconds(lambda: optimize(program))
    t_compile = median_seconds(lambda: compile_python(optimized, xp))
    t_interp = median_seconds(lambda: interpret(optimized, xp))

    def first_call() -> None:
        JitFunction(f, backend_compiler_lookup=lambda _xp: compile_python)(x, y)

    t_first = median_seconds(first_call)
    print(f"stage            {t_stage * 1e3:8.2f} ms")
    print(f"optimize         {t_opt * 1e3:8.2f} ms")
    print(f"compile_python   {t_compile * 1e3:8.2f} ms")
    print(f"interpret (prep) {t_interp * 1e3:8.2f} ms")
    print(f"first jit call   {t_first * 1e3:8.2f} ms   (stage + optimise + compile, end to end)")

    jitted = JitFunction(f, backend_compiler_lookup=lambda _xp: compile_python)
    interpreted = JitFunction(f)
    jitted(x, y)
    interpreted(x, y)
    calls = 200
    t_eager = median_seconds(lambda: [f(x, y) for _ in range(calls)], 3) / calls
    t_jit = median_seconds(lambda: [jitted(x, y) for _ in range(calls)], 3) / calls
    t_int = median_seconds(lambda: [interpreted(x, y) for _ in range(calls)], 3) / calls
    print(f"per call: eager {t_eager * 1e6:8.1f} us, jit(compile_python) {t_jit * 1e6:8.1f} us, "
          f"jit(interpret) {t_int * 1e6:8.1f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
