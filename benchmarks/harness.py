"""Run the benchmarks (a thin script over ``unijax bench``).

    python benchmarks/harness.py --quick
    python benchmarks/harness.py --json bench.json --plot bench.png

Takes exactly the arguments of ``unijax bench`` (``--help`` lists them). The harness
itself — interleaved rounds, paired ratios, import time, peak memory — is
``unijax.cli.benchmarks.harness`` and ``unijax.cli.benchmarks.system``.
"""

from __future__ import annotations

import sys

from unijax.cli.bench import main
from unijax.cli.benchmarks.harness import PRESETS, Settings, run_workload
from unijax.cli.benchmarks.suite import run

__all__ = ["PRESETS", "Settings", "main", "run", "run_workload"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
