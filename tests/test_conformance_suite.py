"""The conformance suite passes (or fails only as listed) on the backends CI installs.

Each test runs ``pytest --pyargs unijax_conformance --unijax-backend NAME`` in a subprocess
(through :func:`unijax.cli.check.run_suite`, the engine of ``unijax check``) in the ci
profile, and fails with the list of unexpected failures. The third-party example plugin
runs the same way, registered through a generated entry point.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from unijax_conformance._sandbox import environment, write_distribution
from unijax_conformance._xfail import XFAIL_DIR

from unijax.cli.check import run_suite

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "thirdparty_plugin"
JOBS = 2 if importlib.util.find_spec("xdist") is not None else 1


def _assert_conforms(backend: str, **kwargs: Any) -> None:
    code, matrix, output = run_suite([backend], jobs=JOBS, **kwargs)
    failures = "\n".join(f"  {f['id']}: {f['message']}" for f in matrix.failures)
    assert matrix.counts, f"the suite did not run on {backend}:\n{output[-3000:]}"
    assert code == 0, f"unexpected failures on {backend}:\n{failures}\n{output[-2000:]}"
    statuses = {matrix.status(backend, area)
                for area in ("values", "grad", "vmap", "jit", "control")}
    assert statuses <= {"passed", "xfail"}, f"{backend}: {statuses}"


@pytest.mark.parametrize("backend", ["numpy", "autograd", "jax", "array_api_strict", "torch",
                                     "dask"])
def test_conformance(backend: str) -> None:
    _assert_conforms(backend)


def test_thirdparty_example_conforms(tmp_path: Path) -> None:
    site = write_distribution(tmp_path / "site", "unijax-example-backend",
                              {"example_numpy": "unijax_example_backend"})
    # The example is NumPy's namespace on the unijax engine: it shares numpy's listed
    # engine bugs, and no other failure.
    numpy_list = (XFAIL_DIR / "numpy.toml").read_text(encoding="utf-8")
    shared = tmp_path / "xfail.toml"
    renamed = numpy_list.replace("[numpy-", "[example_numpy-").replace("[numpy]",
                                                                        "[example_numpy]")
    shared.write_text("[example_numpy]\n" + renamed, encoding="utf-8")
    _assert_conforms("example_numpy", extra=["--unijax-xfail", str(shared)],
                     env=environment([site, EXAMPLE / "src"]))
