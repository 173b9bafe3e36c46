"""The benchmarks behind ``unijax bench``.

They live inside the package, not only in the repository's ``benchmarks/`` folder, so that
``unijax bench`` works from an installed wheel; ``benchmarks/*.py`` in the repository are
thin scripts over these modules.

* :mod:`~unijax._benchmarks.programs` — the programs, written once as Array API code, and
  their NumPy-like twins for the native baselines;
* :mod:`~unijax._benchmarks.workloads` — data, variants (unijax per backend, native
  libraries) and the quoted targets;
* :mod:`~unijax._benchmarks.harness` — interleaved timing and paired-ratio statistics;
* :mod:`~unijax._benchmarks.system` — import time, peak memory, machine information;
* :mod:`~unijax._benchmarks.suite` — one session, assembled into a report;
* :mod:`~unijax._benchmarks.report` — tables, JSON and the bar chart.
"""
