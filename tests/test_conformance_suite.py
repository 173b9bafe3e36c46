"""The conformance suite passes (or fails only as listed) on the backends CI installs.

Each test runs ``pytest --pyargs unijax_conformance --unijax-backend NAME`` in a subprocess
(through :func:`unijax.cli.check.run_suite`, the engine of ``unijax check``) in the ci
profile, and fails with the list of unexpected failures. The third-party example plugins
run the same way, registered through a generated entry point: the minimal one in full,
the marray one (the guide's worked example) on a subset that includes rows of each of its
listed failures (``unijax check marray`` runs it in full).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from unijax_conformance._sandbox import environment, write_distribution
from unijax_conformance._xfail import XFAIL_DIR

from unijax.cli.check import run_suite

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = DOCS / "examples" / "thirdparty_plugin"
MARRAY = DOCS / "examples" / "marray_plugin"
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


def test_numpy_jit_rows_conform_with_the_numba_lowering(tmp_path: Path) -> None:
    """The ``jit`` and control-flow rows on NumPy with every program Numba can compile
    compiled (the rest falls back to the Python lowering, as it must)."""
    pytest.importorskip("numba")
    env = {**os.environ, "UNIJAX_JIT_COMPILER": "numba", "UNIJAX_CACHE_DIR": str(tmp_path)}
    code, matrix, output = run_suite(["numpy"], jobs=JOBS, env=env, extra=[
        "-k", "test_jit or test_construct_under_transform or test_checkpoint"])
    failures = "\n".join(f"  {f['id']}: {f['message']}" for f in matrix.failures)
    assert code == 0, f"unexpected failures with Numba:\n{failures}\n{output[-2000:]}"
    assert matrix.totals("numpy")["passed"] > 100, matrix.totals("numpy")
    # Programs were compiled, not only handed back to the Python lowering.
    assert any((tmp_path / "numba" / "__pycache__").glob("*.nbi"))


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


# Rows of each listed marray failure (the read-only index arrays, the spec's asarray of a
# list of arrays), the plugin and selection areas, and the rows of both missing
# extensions of one function each (unsupported).
_MARRAY_SUBSET = ("test_plugin or test_selection or test_errors or (test_values_eager and "
                  "(asarray or linalg.det or fft.fft or sum or where)) or (test_jit_matches_eager "
                  "and __getitem__) or (test_vmap_matches_loop and take_along_axis)")


def test_marray_example_conforms_with_its_shipped_expected_failures(tmp_path: Path) -> None:
    pytest.importorskip("marray")
    site = write_distribution(tmp_path / "site", "unijax-marray", {"marray": "unijax_marray"})
    code, matrix, output = run_suite(["marray"], jobs=JOBS, extra=["-k", _MARRAY_SUBSET],
                                     env=environment([site, MARRAY / "src"]))
    failures = "\n".join(f"  {f['id']}: {f['message']}" for f in matrix.failures)
    assert code == 0, f"unexpected failures on marray:\n{failures}\n{output[-2000:]}"
    totals = matrix.totals("marray")
    # Every listed failure kind ran, failing for its stated reason; linalg and fft are
    # unsupported (marray has neither extension), not failed.
    assert totals["xfail"] >= 10 and totals["passed"] > 50, totals
    assert totals["unsupported"] >= 2 and not matrix.stale, (totals, matrix.stale)


def test_guide_lists_the_marray_plugin_as_shipped() -> None:
    guide = (DOCS / "backend-authors.md").read_text(encoding="utf-8")
    source = (MARRAY / "src" / "unijax_marray.py").read_text(encoding="utf-8")
    assert f'```python title="unijax_marray.py"\n{source}```' in guide
