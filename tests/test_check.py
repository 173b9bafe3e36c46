"""``unijax check``: the matrix, the reports and the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from unijax_conformance._sandbox import environment, write_distribution

from unijax.cli.check import AREAS, Matrix, main, render_markdown


def test_matrix_cells_worst_first() -> None:
    m = Matrix()
    for outcome in ["passed", "passed", "xfail", "failed"]:
        m.add({"backend": "jax", "area": "grad", "outcome": outcome, "id": "t", "message": "m"})
    m.add({"backend": "cupy", "area": "grad", "outcome": "unsupported", "message": "no GPU"})
    m.add({"backend": "", "area": "grad", "outcome": "failed"})  # not a backend's test
    assert m.status("jax", "grad") == "failed"
    assert m.cell("jax", "grad") == "failed 1 · xfail 1 · passed 2"
    assert m.status("cupy", "grad") == "unsupported"
    assert m.status("jax", "vmap") == "-"
    assert m.unsupported == {"cupy": "no GPU"}
    assert m.failures == [{"id": "t", "backend": "jax", "area": "grad", "message": "m"}]
    data = m.to_json()
    assert set(data["matrix"]["jax"]) == set(AREAS)
    md = render_markdown(m, "title")
    assert "| jax | - | failed (failed 1 · xfail 1 · passed 2) |" in md
    assert "- **cupy**: no GPU" in md and "- `t`: m" in md


def test_report_suffix_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["numpy", "--report", "out.txt"])
    assert ".json or .md" in capsys.readouterr().err


def test_check_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_report, md_report = tmp_path / "r.json", tmp_path / "r.md"
    code = main(["numpy", "--plain", "-k", "test_jit_static_arguments or test_has_aux",
                 "--report", str(json_report), "--report", str(md_report)])
    assert code == 0, capsys.readouterr()
    data = json.loads(json_report.read_text())
    assert data["exitstatus"] == 0 and data["backends"] == ["numpy"]
    assert data["matrix"]["numpy"]["jit"]["passed"] == 1
    assert data["matrix"]["numpy"]["transforms"]["status"] == "passed"
    assert "| numpy |" in md_report.read_text()
    assert "all as expected" in capsys.readouterr().out


def test_check_exits_non_zero_on_a_failure(tmp_path: Path) -> None:
    plugin = textwrap.dedent('''
        from unijax.extend import Backend, Capabilities, hookimpl

        def _load():
            import array_api_compat.numpy as cnp
            return cnp

        @hookimpl
        def unijax_backend():
            # Declares mutable arrays as immutable: the plugin tests notice.
            return Backend("lying", ("numpy",), ("numpy",), "(test only)", _load,
                           capabilities=Capabilities(mutable_arrays=False),
                           devices=lambda: ("cpu",))
    ''')
    site = write_distribution(tmp_path, "unijax-lying", {"lying": "unijax_lying"},
                              {"unijax_lying": plugin})
    report = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from unijax.cli.check import main; "
         "sys.exit(main(sys.argv[1:]))", "lying", "--plain", "-k", "mutable",
         "--report", str(report)],
        env=environment([site]), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["matrix"]["lying"]["plugin"]["status"] == "failed"
    assert "FAILED test_plugin.py::test_mutable_arrays_as_declared[lying]" in done.stdout
