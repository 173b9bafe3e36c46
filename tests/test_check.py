"""``unijax check``: the matrix, the reports and the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from unijax_conformance._sandbox import environment, write_distribution

from unijax.cli import standard
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
    assert m.failures == [{"id": "t", "backend": "jax", "area": "grad", "message": "m",
                           "exception": "", "xfail_problem": ""}]
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


def test_check_unknown_backend_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unijax check: error: no installed unijax plugin provides backend "
                          "'nope'; installed: ") and "numpy" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_check_bad_xfail_file_is_one_clear_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["numpy", "--xfail", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "--xfail" in err and "cannot read it" in err and len(err.strip().splitlines()) == 1


def test_check_output_is_plain_and_fits_80_columns_when_piped(tmp_path: Path) -> None:
    # stdout is a pipe here: no rich table, no truncated cells.
    done = subprocess.run(
        [sys.executable, "-m", "unijax.cli", "check", "numpy", "-k",
         "test_jit_static_arguments or test_has_aux"],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 80, done.stdout
    assert "…" not in done.stdout and "\x1b[" not in done.stdout
    assert any(line.split()[:2] == ["jit", "passed"] for line in lines), done.stdout
    assert "numpy: 2 passed, 0 xfail, 0 unsupported, 0 failed" in done.stdout


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
    # Failures grouped by cause, with one example each; the full dump in the JSON report.
    assert "1 unexpected failure(s), 1 cause(s):" in done.stdout
    assert "e.g. test_plugin.py::test_mutable_arrays_as_declared[lying]" in done.stdout
    assert data["groups"][0]["count"] == 1 and data["failures"][0]["message"]


# --- unijax check --standard: the official Array API test suite ------------------------------


def test_standard_expected_failures_match_test_ids(tmp_path: Path) -> None:
    listed = tmp_path / "standard.toml"
    listed.write_text('"array_api_tests/test_a.py::test_b[*]" = "the base gets it wrong"\n')
    failures = standard.ExpectedFailures.load(listed)
    assert failures.reason("array_api_tests/test_a.py::test_b[x(1)]") == "the base gets it wrong"
    assert failures.reason("array_api_tests/test_a.py::test_bc") is None
    listed.write_text('"array_api_tests/test_a.py::test_b" = ""\n')
    with pytest.raises(ValueError, match="non-empty string"):
        standard.ExpectedFailures.load(listed)


def test_shipped_standard_list_is_valid() -> None:
    path = standard.default_xfail_file()
    assert path is not None and path.is_file()
    entries = standard.ExpectedFailures.load(path).entries
    assert entries and all(p.startswith("array_api_tests/") for p in entries)


def test_standard_compare_allows_only_failures_the_base_shares() -> None:
    r = standard.Outcome
    traced = {"shared": r("failed", "e"), "unlisted": r("failed", "e"), "mine": r("failed", "m"),
              "listed_mine": r("failed", "m"), "skipped": r("skipped", "why"),
              "new": r("failed", "n"), "ok": r("passed")}
    base = {"shared": r("failed", "e"), "unlisted": r("failed", "e"), "mine": r("passed"),
            "listed_mine": r("passed"), "skipped": r("passed"), "ok": r("passed")}
    listed = standard.ExpectedFailures({"shared": "r", "listed_mine": "r", "ok": "r"})
    c = standard.compare(traced, base, listed)
    assert [e["id"] for e in c.expected] == ["shared"]
    assert {u["id"]: u["kind"] for u in c.unexpected} == {
        "unlisted": "not listed", "mine": "base passes", "listed_mine": "base passes",
        "skipped": "skipped here", "new": "base absent"}
    assert c.unused == ["listed_mine", "ok"]


def test_standard_events_make_one_outcome_per_test() -> None:
    def event(test_id: str, when: str, outcome: str, message: str = "") -> str:
        return json.dumps({"id": test_id, "when": when, "outcome": outcome,
                           "message": message})

    lines = [event("a", "setup", "passed"), event("a", "call", "failed", "boom\n  detail"),
             event("a", "teardown", "passed"),
             event("b", "setup", "skipped", "no ext"), event("b", "teardown", "passed"),
             event("c", "setup", "passed"), event("c", "call", "passed"),
             event("c", "teardown", "failed", "leak"),
             event("d", "setup", "passed"), event("d", "call", "xfailed")]
    tests = standard.read_events(lines)
    assert tests == {"a": standard.Outcome("failed", "boom detail"),
                     "b": standard.Outcome("skipped", "no ext"),
                     "c": standard.Outcome("failed", "leak"),
                     "d": standard.Outcome("xfailed", "")}
    assert standard.counts(tests)["failed"] == 2


def test_standard_suite_module_names_the_traced_namespace() -> None:
    assert standard.suite_module("numpy", traced=False) == "array_api_compat.numpy"
    setting = standard.suite_module("numpy", traced=True)
    assert setting.startswith("exec('") and setting.endswith("')")
    scope: dict[str, Any] = {}
    exec(setting[len("exec('"):-len("')")], scope)
    assert type(scope["xp"]).__name__ == "TracedNamespace"
    assert scope["xp"].__name__ == "unijax.traced(array_api_compat.numpy)"


@pytest.mark.parametrize("argv", [["--backend", "numpy"], ["--json", "x.json"],
                                  ["--standard", ".", "numpy"],
                                  ["--standard", ".", "--max-examples", "0"]])
def test_standard_options_are_checked(argv: list[str], capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err
    assert "--standard" in err or "--max-examples" in err


def test_standard_needs_a_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--standard", str(tmp_path)]) == 2
    assert "not a checkout of data-apis/array-api-tests" in capsys.readouterr().err
    (tmp_path / "array_api_tests").mkdir()
    (tmp_path / "array_api_tests" / "__init__.py").write_text("")
    assert main(["--standard", str(tmp_path)]) == 2
    assert "git submodule update --init" in capsys.readouterr().err


_FAKE_SUITE = {
    "array_api_tests/__init__.py": '''
        import importlib, os
        setting = os.environ["ARRAY_API_TESTS_MODULE"]
        if setting.startswith("exec('"):
            scope = {}
            exec(setting[6:-2], scope)
            xp = scope["xp"]
        else:
            xp = importlib.import_module(setting)
        api_version = os.environ["ARRAY_API_TESTS_VERSION"]
    ''',
    "array_api_tests/test_fake.py": '''
        from pathlib import Path

        import pytest
        from array_api_tests import api_version, xp

        def test_passes():
            assert api_version == "2024.12"
            assert xp.sum(xp.asarray([1.0, 2.0])) == 3.0

        def test_shared():
            assert False, "the base gets this wrong"

        def test_unlisted():
            assert False, "so does this"

        def test_traced_only():
            assert "traced" not in xp.__name__, "only the traced namespace fails"

        def test_skipped():
            pytest.skip("not here")

        def test_drawn():
            # The base gets it wrong only when the draw hits the bad case: here, from its
            # second run on.
            ran = Path(__file__).with_name("base-ran")
            if "traced" not in xp.__name__:
                first = not ran.exists()
                ran.touch()
                assert first, "the base's bad case"
            assert "traced" not in xp.__name__, "the traced namespace's bad case"
    ''',
    "conftest.py": '''
        def pytest_addoption(parser):
            parser.addoption("--max-examples", type=int)
            parser.addoption("--derandomize", action="store_true")
            parser.addoption("--disable-deadline", action="store_true")
    ''',
    "array-api/src/array_api_stubs/__init__.py": "",
}


def test_standard_runs_the_suite_on_the_traced_namespace_and_the_base(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(standard, "RECHECKS", 1)
    suite = tmp_path / "array-api-tests"
    for name, text in _FAKE_SUITE.items():
        (suite / name).parent.mkdir(parents=True, exist_ok=True)
        (suite / name).write_text(textwrap.dedent(text))
    listed = tmp_path / "standard.toml"
    listed.write_text('"array_api_tests/test_fake.py::test_shared" = "the base fails it"\n'
                      '"array_api_tests/test_fake.py::test_drawn" = "when the draw hits it"\n'
                      '"array_api_tests/test_fake.py::test_traced_only" = "not allowed"\n')
    report = tmp_path / "r.json"
    argv = ["--standard", str(suite), "--backend", "numpy", "--max-examples", "3",
            "--xfail", str(listed), "--json", str(report)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "traced namespace over numpy: 1 passed, 4 failed, 1 skipped" in out
    assert "numpy itself: 3 passed, 2 failed, 1 skipped" in out
    # test_drawn: the base passed it once, and failed it when it ran again.
    assert "expected failures (listed; numpy fails them too): 2" in out
    assert ("FAILED (base passes) array_api_tests/test_fake.py::test_traced_only: "
            "AssertionError: only the traced namespace fails") in out
    assert "FAILED (not listed) array_api_tests/test_fake.py::test_unlisted" in out
    data = json.loads(report.read_text())
    assert data["api_version"] == "2024.12" and data["max_examples"] == 3
    result = data["results"]["numpy"]
    assert result["traced"]["counts"]["failed"] == 4
    assert result["base"]["tests"]["array_api_tests/test_fake.py::test_traced_only"] == {
        "outcome": "passed", "message": ""}
    assert [e["id"] for e in result["expected"]] == [
        "array_api_tests/test_fake.py::test_shared", "array_api_tests/test_fake.py::test_drawn"]
    assert result["base"]["tests"]["array_api_tests/test_fake.py::test_drawn"] == {
        "outcome": "failed",
        "message": "AssertionError: the base's bad case assert False (on a repeated run)"}
    # The base's results are reused: only the traced namespace runs again.
    assert main([*argv[:-2], "--base-results", str(report), "-k", "not traced_only"]) == 1
    out = capsys.readouterr().out
    assert f"numpy itself: 2 passed, 3 failed, 1 skipped (from {report})" in out
    assert "test_traced_only" not in out
