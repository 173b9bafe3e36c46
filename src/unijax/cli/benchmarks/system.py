"""Measurements outside the timed workloads: import cost, peak memory, the machine.

``import unijax`` is timed in fresh subprocesses (the only honest way: a module imports
once per process), both as wall time over an empty interpreter and with ``-X importtime``,
and each subprocess also reports which array libraries ended up in ``sys.modules`` (none
should). Peak memory is measured with :mod:`tracemalloc`, which NumPy reports its buffers
to, so it covers array data as well as Python objects; it cannot see memory that XLA
allocates, so only NumPy-based variants are compared.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import unijax
from unijax.cli.benchmarks.harness import Settings, quartiles, workload_size
from unijax.cli.benchmarks.workloads import get_workload

__all__ = ["ARRAY_LIBRARIES", "MEMORY_VARIANTS", "machine_info", "measure_import",
           "measure_memory"]

#: Modules that ``import unijax`` must not import.
ARRAY_LIBRARIES = ("numpy", "jax", "jaxlib", "autograd", "cupy", "array_api_strict",
                   "array_api_compat", "torch")

#: MLP variants whose peak memory is compared (NumPy-based, so tracemalloc sees them).
MEMORY_VARIANTS = ("native/numpy/forward", "native/autograd/grad", "unijax/numpy/grad",
                   "unijax/numpy/jit(grad)", "unijax/autograd/grad",
                   # the checkpoint workload: one gradient, with and without checkpoint
                   "unijax/numpy/grad (chain)", "unijax/numpy/grad(checkpoint) (chain)")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS",
                "JAX_PLATFORMS")

_PROBE = ("import sys, json; import unijax; "
          f"print(json.dumps(sorted(m for m in {ARRAY_LIBRARIES!r} if m in sys.modules)))")


def _wall(code: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    return time.perf_counter() - start, done


def _importtime_us(stderr: str) -> float | None:
    """Cumulative microseconds of the top-level ``unijax`` line of ``-X importtime``."""
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == " unijax":
            return float(parts[1].strip())
    return None


def measure_import(runs: int) -> dict[str, Any]:
    """Time ``import unijax`` in ``runs`` fresh interpreters.

    Returns:
        ``wall_s`` (median wall time of ``python -c "import unijax; ..."`` minus that of
        ``python -c pass``), ``importtime_s`` (median cumulative ``-X importtime`` figure),
        ``array_libraries_imported`` (the union over runs; should be empty), and the raw
        samples.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    walls, empties, cumulative, imported = [], [], [], set()
    for _ in range(max(1, runs)):
        t_empty, _done = _wall("pass", env)
        t_import, done = _wall(_PROBE, env)
        if done.returncode != 0:
            return {"error": done.stderr.strip()[-500:]}
        imported.update(json.loads(done.stdout.strip().splitlines()[-1]))
        empties.append(t_empty)
        walls.append(t_import)
        timed = subprocess.run([sys.executable, "-X", "importtime", "-c", "import unijax"],
                               capture_output=True, text=True, env=env, check=False)
        us = _importtime_us(timed.stderr)
        if us is not None:
            cumulative.append(us * 1e-6)
    wall = quartiles(walls)[1] - quartiles(empties)[1]
    return {
        "wall_s": wall,
        "importtime_s": quartiles(cumulative)[1] if cumulative else None,
        "interpreter_s": quartiles(empties)[1],
        "array_libraries_imported": sorted(imported),
        "runs": len(walls),
    }


def peak_bytes(thunk: Callable[[], Any], runs: int) -> int:
    """The least, over ``runs`` calls, of the traced memory peak above the start."""
    best = math.inf
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(max(1, runs)):
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            out = thunk()
            best = min(best, tracemalloc.get_traced_memory()[1] - start)
            del out
    finally:
        tracemalloc.stop()
    return int(best)


def measure_memory(settings: Settings, libraries: dict[str, str | None],
                   keys: Sequence[str] = MEMORY_VARIANTS) -> dict[str, Any]:
    """Peak memory of one call of each MLP and checkpoint variant in ``keys`` (warmed up).

    Returns:
        ``peak_bytes`` (variant key -> bytes), ``errors`` (variant key -> message) and
        the MLP size used.
    """
    peaks: dict[str, int] = {}
    errors: dict[str, str] = {}
    sizes = {}
    for name in ("mlp", "checkpoint"):
        workload = get_workload(name)
        size = sizes[name] = workload_size(workload, settings)
        data = workload.make_data(size)
        for v in workload.variants:
            if v.key not in keys or libraries.get(v.library, "") is not None:
                continue
            try:
                thunk = v.build(data)
                for _ in range(max(2, settings.warmup)):  # compile, fill caches
                    thunk()
                peaks[v.key] = peak_bytes(thunk, settings.memory_runs)
            except Exception as err:  # report and go on
                errors[v.key] = f"{type(err).__name__}: {err}"[:300]
    return {"workload": "mlp", "size": sizes["mlp"], "sizes": sizes, "peak_bytes": peaks,
            "errors": errors}


def machine_info() -> dict[str, Any]:
    """Python, platform, CPU count, load average, library versions, thread settings."""
    versions: dict[str, str | None] = {}
    for dist in ("numpy", "autograd", "jax", "jaxlib", "array-api-strict", "array-api-compat"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "unijax": unijax.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "versions": versions,
        # Thread pools decide how much BLAS- and XLA-heavy workloads use the machine.
        "environment": {k: os.environ[k] for k in _THREAD_VARS if k in os.environ},
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, where the OS reports them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None
