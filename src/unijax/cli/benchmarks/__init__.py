"""The benchmarks behind ``unijax bench``.

They live inside the package, not only in the repository's ``benchmarks/`` folder, so that
``unijax bench`` works from an installed wheel; ``benchmarks/*.py`` in the repository are
thin scripts over these modules.

* :mod:`~unijax.cli.benchmarks.programs` — the programs, written once as Array API code, and
  their NumPy-like twins for the native baselines;
* :mod:`~unijax.cli.benchmarks.workloads` — data, variants (unijax per backend, native
  libraries) and the quoted targets;
* :mod:`~unijax.cli.benchmarks.harness` — interleaved timing and paired-ratio statistics;
* :mod:`~unijax.cli.benchmarks.system` — import time, peak memory, machine information;
* :mod:`~unijax.cli.benchmarks.suite` — one session, assembled into a report;
* :mod:`~unijax.cli.benchmarks.report` — tables, JSON and the bar chart.
"""
