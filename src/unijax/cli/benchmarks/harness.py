"""Timing: interleaved rounds, robust statistics, ratios from one run.

Every variant of a workload is built and warmed up first (the first call of a ``jit``
variant compiles, and is reported separately as ``first_call_s``). Then the harness runs
*rounds*: in each round every variant runs one timed block of calls, in a fresh random
order (seeded). Machine noise (other processes, frequency changes) therefore hits every
variant alike, no variant always follows the same neighbour (a BLAS-heavy neighbour leaves
spinning threads behind), and a ratio is taken *per round* from two blocks measured
seconds apart; the reported ratio is the median of those paired ratios, with their
quartiles.

A block runs the callable ``number`` times, with ``number`` chosen after warm-up so that a
block lasts at least ``Settings.min_block_s``; the garbage collector is paused inside a
block, as :mod:`timeit` does.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unijax.cli.benchmarks.workloads import BACKENDS, TARGETS, Target, Variant, Workload
from unijax.dispatch.plugins import get_backend
from unijax.errors import UnijaxError
from unijax.testing import to_numpy
from unijax.tree_util import tree_leaves

__all__ = [
    "PRESETS",
    "Settings",
    "VariantResult",
    "WorkloadResult",
    "available_libraries",
    "evaluate_targets",
    "quartiles",
    "run_workload",
]


@dataclass(frozen=True)
class Settings:
    """How long to measure.

    Attributes:
        preset: ``"full"``, ``"quick"`` or ``"smoke"`` (tiny sizes, for tests).
        size: Which size of each workload to use (``"full"``, ``"quick"`` or ``"smoke"``).
        rounds: Timed blocks per variant.
        min_block_s: Least duration of one timed block.
        warmup: Untimed calls before timing (at least 1; the first compiles ``jit``).
        import_runs: Subprocesses used to time ``import unijax``.
        memory_runs: Calls per variant when measuring peak memory (the least is kept).
        slow_builds: Whether variants that take minutes to build run (full runs only).
    """

    preset: str
    size: str
    rounds: int
    min_block_s: float
    warmup: int
    import_runs: int
    memory_runs: int
    slow_builds: bool = False


PRESETS: dict[str, Settings] = {
    "full": Settings("full", "full", rounds=15, min_block_s=0.05, warmup=2, import_runs=10,
                     memory_runs=3, slow_builds=True),
    "quick": Settings("quick", "quick", rounds=5, min_block_s=0.01, warmup=2, import_runs=3,
                      memory_runs=1),
    "smoke": Settings("smoke", "smoke", rounds=2, min_block_s=0.0, warmup=1, import_runs=1,
                      memory_runs=1),
}


def available_libraries(wanted: Sequence[str] = BACKENDS) -> dict[str, str | None]:
    """``{library: None if usable, else why not}`` for numpy, autograd, jax, array_api_strict.

    A library is usable when unijax's backend of that name loads and is available (so a
    missing array library gives its install hint).
    """
    found: dict[str, str | None] = {}
    for name in wanted:
        try:
            get_backend(name)
            found[name] = None
        except UnijaxError as err:
            found[name] = f"{type(err).__name__}: {err}"
    return found


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)``; with fewer than two values all three are the one value."""
    if len(values) < 2:
        return (values[0],) * 3 if values else (math.nan,) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class VariantResult:
    """The measurements of one variant (times are seconds per call)."""

    key: str
    label: str
    kind: str
    library: str
    transform: str
    baseline: str | None
    times: list[float]
    number: int = 0
    first_call_s: float = math.nan
    error: str | None = None
    mismatch: str | None = None
    ratio: tuple[float, float, float] | None = None  # (q1, median, q3) vs baseline
    baseline_label: str | None = None

    def summary(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        q1, med, q3 = quartiles(self.times) if self.times else (math.nan,) * 3
        return {
            "key": self.key, "label": self.label, "kind": self.kind, "library": self.library,
            "transform": self.transform, "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "median_s": _num(med), "q1_s": _num(q1), "q3_s": _num(q3),
            "min_s": _num(min(self.times, default=math.nan)),
            "max_s": _num(max(self.times, default=math.nan)),
            "rounds": len(self.times), "calls_per_round": self.number,
            "first_call_s": _num(self.first_call_s),
            "ratio": None if self.ratio is None else _num(self.ratio[1]),
            "ratio_q1": None if self.ratio is None else _num(self.ratio[0]),
            "ratio_q3": None if self.ratio is None else _num(self.ratio[2]),
            "error": self.error, "mismatch": self.mismatch,
        }


@dataclass
class WorkloadResult:
    """Every variant of one workload, measured in the same interleaved rounds."""

    name: str
    title: str
    size: dict[str, int]
    variants: dict[str, VariantResult]
    skipped: dict[str, str]  # variant key -> why it did not run

    def paired(self, numerator: str, denominator: str,
               op: Callable[[float, float], float]) -> tuple[float, float, float] | None:
        """Quartiles of ``op(num_time, den_time)`` over the rounds both variants ran."""
        a, b = self.variants.get(numerator), self.variants.get(denominator)
        if a is None or b is None or not a.times or not b.times:
            return None
        return quartiles([op(x, y) for x, y in zip(a.times, b.times, strict=False)])

    def summary(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {"name": self.name, "title": self.title, "size": self.size,
                "variants": [v.summary() for v in self.variants.values()],
                "skipped": self.skipped}


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _error(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)[-1:]
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"{type(err).__name__}: {err}"[:300] + at


def _leaves(out: Any) -> list[Any]:
    import numpy as np

    return [np.asarray(to_numpy(leaf), dtype=np.float64) for leaf in tree_leaves(out)]


def _disagreement(got: list[Any], want: list[Any]) -> str | None:
    import numpy as np

    if len(got) != len(want):
        return f"returns {len(got)} arrays, the reference {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g.shape != w.shape:
            return f"leaf {i} has shape {g.shape}, the reference {w.shape}"
        if not np.allclose(g, w, rtol=1e-6, atol=1e-9):
            return f"leaf {i} differs from the reference by up to {np.max(np.abs(g - w)):.3g}"
    return None


def _block(thunk: Callable[[], Any], number: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            thunk()
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


Progress = Callable[[str], None]


def _prepare(v: Variant, data: Any, settings: Settings, res: VariantResult,
             reference: dict[str, tuple[str, list[Any]]]) -> Callable[[], Any] | None:
    """Build and warm up ``v``, check its output, size its blocks; None if it raised."""
    try:
        thunk = v.build(data)
        start = time.perf_counter()
        out = thunk()
        res.first_call_s = time.perf_counter() - start
        for _ in range(settings.warmup - 1):
            thunk()
        once = _block(thunk, 1)
    except Exception as err:  # one broken variant must not stop the others
        res.error = _error(err)
        return None
    leaves = _leaves(out)
    ref = reference.setdefault(v.output, (v.key, leaves))
    if ref[0] != v.key:
        why = _disagreement(leaves, ref[1])
        res.mismatch = None if why is None else f"{why} ({ref[0]})"
    res.number = max(1, min(100_000, math.ceil(settings.min_block_s / max(once, 1e-9))))
    return thunk


def run_workload(workload: Workload, settings: Settings, libraries: dict[str, str | None],
                 progress: Progress | None = None) -> WorkloadResult:
    """Build, check and time every runnable variant of ``workload``.

    Args:
        workload: The workload.
        settings: Rounds, block length, warm-up and size preset.
        libraries: Usable libraries (value None) and why the others are not; variants of
            libraries not in the mapping are left out silently.
        progress: Called with a short description once per build and once per round.

    Returns:
        The measurements; a variant that raised has ``error`` set and no times.
    """
    note = progress or (lambda _: None)
    size = dict(workload_size(workload, settings))
    data = workload.make_data(size)
    result = WorkloadResult(workload.name, workload.title.format(**size), size, {}, {})
    thunks: dict[str, Callable[[], Any]] = {}
    reference: dict[str, tuple[str, list[Any]]] = {}  # output kind -> (variant key, leaves)
    labels = {v.key: v.label for v in workload.variants}
    for v in workload.variants:
        if v.library not in libraries:
            continue
        if libraries[v.library] is not None:
            result.skipped[v.key] = str(libraries[v.library])
            continue
        if v.slow_build and not settings.slow_builds:
            result.skipped[v.key] = v.slow_build
            continue
        note(f"{workload.name}: build {v.label}")
        res = result.variants[v.key] = VariantResult(
            v.key, v.label, v.kind, v.library, v.transform, v.baseline, [],
            baseline_label=labels.get(v.baseline) if v.baseline else None)
        thunk = _prepare(v, data, settings, res, reference)
        if thunk is not None:
            thunks[v.key] = thunk
    keys = list(thunks)
    order = random.Random(0)  # seeded: a rerun visits the variants in the same orders
    rounds = workload_rounds(workload, settings)
    for r in range(rounds):
        note(f"{workload.name}: round {r + 1}/{rounds}")
        gc.collect()
        for key in order.sample(keys, len(keys)):
            res = result.variants[key]
            if res.error is not None:
                continue
            try:
                res.times.append(_block(thunks[key], res.number))
            except Exception as err:
                res.error, res.times = _error(err), []
    for res in result.variants.values():
        if res.baseline is not None:
            res.ratio = result.paired(res.key, res.baseline, lambda a, b: a / b)
    return result


def workload_size(workload: Workload, settings: Settings) -> dict[str, int]:
    """The problem size ``settings`` asks for (``quick`` falls back to ``full``)."""
    return dict(workload.sizes.get(settings.size) or workload.sizes["full"])


def workload_rounds(workload: Workload, settings: Settings) -> int:
    """How many timed rounds ``workload`` runs under ``settings``."""
    return settings.rounds * workload.rounds_factor


def rounds_per_workload(workload: Workload, settings: Settings,
                        libraries: dict[str, str | None]) -> int:
    """How many progress notes :func:`run_workload` will make (for a progress bar)."""
    builds = sum(1 for v in workload.variants if libraries.get(v.library, "") is None
                 and (settings.slow_builds or not v.slow_build))
    return builds + workload_rounds(workload, settings)


# --- targets ---------------------------------------------------------------------------------


def evaluate_targets(results: dict[str, WorkloadResult], memory: dict[str, Any] | None,
                     targets: Sequence[Target] = TARGETS,
                     figures: Mapping[str, Mapping[str, float]] | None = None
                     ) -> list[dict[str, Any]]:
    """Each target's measured value, and whether it is met (None: not measured here).

    Ratios, speedups and overheads are the medians of the per-round paired values, so both
    variants were timed under the same conditions; ``low``/``high`` are their quartiles.
    A target on a section that is not a timed workload compares two of that section's
    figures, numerator over denominator: ``figures[section]``, where the ``"memory"``
    section's are ``memory["peak_bytes"]`` (peak bytes per variant key).
    """
    sections = {"memory": (memory or {}).get("peak_bytes", {}), **(figures or {})}
    rows = []
    for t in targets:
        row: dict[str, Any] = {"id": t.id, "description": t.description, "kind": t.kind,
                               "compares": f"{t.workload}: {t.numerator} vs {t.denominator}",
                               "threshold": t.threshold, "value": None, "low": None,
                               "high": None, "met": None, "note": None}
        if t.workload in sections:
            got = sections[t.workload]
            a, b = got.get(t.numerator), got.get(t.denominator)
            if a is not None and b:
                row["value"] = row["low"] = row["high"] = a / b
        else:
            w = results.get(t.workload)
            op = {"ratio": lambda a, b: a / b, "speedup": lambda a, b: b / a,
                  "overhead": lambda a, b: a - b}.get(t.kind)
            q = None if w is None or op is None else w.paired(t.numerator, t.denominator, op)
            if q is not None:
                row["low"], row["value"], row["high"] = q
        if row["value"] is None:
            row["note"] = "not measured (workload or library not run)"
        else:
            value = row["value"]
            row["met"] = bool(value >= t.threshold if t.kind == "speedup"
                              else value <= t.threshold)
        rows.append(row)
    return rows
