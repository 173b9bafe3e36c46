"""The benchmark workloads (a thin script over :mod:`unijax.cli.benchmarks`).

The workloads live inside the package so that ``unijax bench`` works from an installed
wheel; this file re-exports them for scripts and notebooks in the repository:

    python benchmarks/workloads.py        # list the workloads and their variants

Each program is written once as Array API code in ``unijax.cli.benchmarks.programs`` (with a
NumPy-like twin for the Autograd and plain-NumPy baselines); the variants and the quoted
targets are in ``unijax.cli.benchmarks.workloads``.
"""

from __future__ import annotations

from unijax.cli.benchmarks.programs import *  # noqa: F403
from unijax.cli.benchmarks.workloads import (
    BACKENDS,
    TARGETS,
    WORKLOADS,
    Target,
    Variant,
    Workload,
    get_workload,
)

__all__ = ["BACKENDS", "TARGETS", "WORKLOADS", "Target", "Variant", "Workload", "get_workload"]


def main() -> None:
    """Print every workload, its variants and the targets evaluated on it."""
    for w in WORKLOADS:
        print(f"{w.name}: {w.title.format(**w.sizes['full'])}")
        for v in w.variants:
            base = f"  (vs {v.baseline})" if v.baseline else ""
            print(f"    {v.key}{base}")
        for t in TARGETS:
            if t.workload == w.name:
                print(f"    target: {t.description}")


if __name__ == "__main__":
    main()
