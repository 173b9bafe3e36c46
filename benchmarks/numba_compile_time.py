"""What a new process pays for ``jit(grad)`` of the ``scan`` workload on NumPy with Numba.

    python benchmarks/numba_compile_time.py [--repeat 3]

Each measurement runs in a fresh interpreter with ``jit_compiler="numba"`` and its own
disk cache (``UNIJAX_CACHE_DIR``): *cold* starts from an empty cache (Numba compiles),
*cached* is the next process on the same cache (Numba loads the machine code). Printed
for each: importing Numba (with SciPy, which Numba's ``np.dot`` needs), then the first
call of ``unijax.jit(unijax.grad(rnn_scan))`` (staging, code generation, compiling or
loading, one run), then a second program's first call in the same process (``jit`` of the
forward pass: Numba is initialised by then). The best of ``--repeat`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, time
import unijax
from unijax.cli.benchmarks import programs as P, workloads as W

unijax.config.update("jit_compiler", "numba")
wl = W.get_workload("scan")
args = W._unijax_data(wl.make_data(wl.sizes["full"]), "numpy")
start = time.perf_counter()
import numba  # noqa: F401
import scipy.linalg  # noqa: F401  (Numba's np.dot loads SciPy's BLAS)
imported = time.perf_counter()
unijax.jit(unijax.grad(P.rnn_scan))(*args)
first = time.perf_counter()
unijax.jit(P.rnn_scan)(*args)
second = time.perf_counter()
print(json.dumps({"import": imported - start, "first": first - imported,
                  "second": second - first}))
"""


def _run(cache: str) -> dict[str, float]:
    env = {**os.environ, "UNIJAX_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cold, cached = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(_run(cache))
            cached.append(_run(cache))
    for label, runs in (("cold (empty disk cache)", cold), ("cached (new process)", cached)):
        best = {k: min(r[k] for r in runs) for k in runs[0]}
        print(f"{label}: import numba+scipy {best['import']:.2f} s | first jit(grad) call "
              f"{best['first']:.2f} s | a second program's first call "
              f"{best['second']:.2f} s")


if __name__ == "__main__":
    main()
