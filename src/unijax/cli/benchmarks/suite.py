"""Running a whole benchmark session and assembling its report (plain data)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from unijax.cli.benchmarks import scaling, system
from unijax.cli.benchmarks.harness import (
    Settings,
    WorkloadResult,
    available_libraries,
    evaluate_targets,
    rounds_per_workload,
    run_workload,
)
from unijax.cli.benchmarks.workloads import BACKENDS, WORKLOADS

__all__ = ["DEFAULT_SECTIONS", "EXTRAS", "OPT_IN", "SECTIONS", "plan", "run"]

#: Sections that are not timed workloads.
EXTRAS = ("import", "memory", "scaling")
#: Everything ``--workload`` accepts.
SECTIONS = tuple(w.name for w in WORKLOADS) + EXTRAS
#: Sections that run only when named: ``scaling`` starts a Dask cluster per size.
OPT_IN = ("scaling",)
#: What runs when no section is named.
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s not in OPT_IN)


def plan(sections: Sequence[str], settings: Settings,
         libraries: dict[str, str | None]) -> int:
    """The number of progress steps :func:`run` will report."""
    steps = sum(rounds_per_workload(w, settings, libraries)
                for w in WORKLOADS if w.name in sections)
    steps += sum(1 for s in ("import", "memory") if s in sections)
    if "scaling" in sections and scaling.missing() is None:
        steps += len(scaling.sweep_for(settings.size).sizes())
    return steps


def run(settings: Settings, sections: Sequence[str] = DEFAULT_SECTIONS,
        backends: Sequence[str] = BACKENDS,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the selected workloads and extras; return the report.

    Args:
        settings: A :data:`~unijax.cli.benchmarks.harness.PRESETS` entry (or a variant of one).
        sections: Workload names and/or ``"import"``/``"memory"``/``"scaling"`` (the last
            not by default: see :data:`OPT_IN`).
        backends: Libraries whose variants run (unijax backends and native libraries
            alike: ``"jax"`` covers both ``unijax.grad`` on JAX and ``jax.grad``).
        progress: Called with a short description at each step.

    Returns:
        The report (JSON-ready): settings, machine, per-workload results, targets,
        import time, peak memory and the Dask scaling sweep (None for sections not run).
    """
    note = progress or (lambda _: None)
    started = time.time()
    machine = system.machine_info()
    libraries = available_libraries(backends)
    results: dict[str, WorkloadResult] = {}
    for w in WORKLOADS:
        if w.name in sections:
            results[w.name] = run_workload(w, settings, libraries, note)
    imported = memory = scaled = None
    if "import" in sections:
        note("import unijax")
        imported = system.measure_import(settings.import_runs)
    if "memory" in sections:
        note("peak memory")
        memory = system.measure_memory(settings, libraries)
    if "scaling" in sections:
        scaled = scaling.measure_scaling(settings.size, note)
    return {
        "schema": 1,
        "settings": {"preset": settings.preset, "size": settings.size,
                     "rounds": settings.rounds, "min_block_s": settings.min_block_s,
                     "warmup": settings.warmup},
        "machine": machine,
        "load_average_end": system.load_average(),
        "duration_s": time.time() - started,
        "libraries": libraries,
        "workloads": [r.summary() for r in results.values()],
        "targets": evaluate_targets(results, memory,
                                    figures={"scaling": (scaled or {}).get("figures", {})}),
        "import": imported,
        "memory": memory,
        "scaling": scaled,
    }
