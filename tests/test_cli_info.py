"""``unijax info``: backends, availability, capabilities and the selection, rich or plain."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from unijax.cli import main
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins

pytestmark = pytest.mark.usefixtures("clean_plugins")


def run_info(capsys, *args: str) -> str:
    assert main(["info", *args]) == 0
    return capsys.readouterr().out


def test_info_plain_lists_backends_and_selection(capsys):
    out = run_info(capsys, "--plain")
    assert out.startswith("unijax 0.1.0 on Python")
    for name in ("numpy", "jax", "autograd", "array_api_strict", "cupy"):
        assert f"  {name}: " in out
    assert "native transforms: none (unijax engine)" in out
    assert "native transforms: custom_jvp, custom_vjp, grad" in out
    assert "devices: cpu" in out
    assert "Selected: backend 'numpy', chosen by rule 'default'" in out
    assert "jit_cache_size = 256  (the default)" in out


def test_info_shows_install_hint_for_missing_library(capsys, monkeypatch):
    find_spec = importlib.util.find_spec  # cupy may be installed: hide it from this test
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "cupy"
                        else find_spec(name, *rest))
    assert '  cupy: missing: pip install cupy-cuda12x' in run_info(capsys, "--plain")


def test_info_explains_env_selection(capsys, monkeypatch):
    monkeypatch.setenv("UNIJAX_BACKEND", "jax")
    _config.reload()
    out = run_info(capsys, "--plain")
    assert "Selected: backend 'jax', chosen by rule 'env': UNIJAX_BACKEND=jax in the " \
           "environment" in out


def test_info_reports_bad_configuration_instead_of_crashing(capsys, monkeypatch):
    monkeypatch.setenv("UNIJAX_BACKEND", "jaxx")
    monkeypatch.setenv("UNIJAX_JIT_CACHE_SIZE", "-1")
    _config.reload()
    assert main(["info", "--plain"]) == 1
    out = capsys.readouterr().out
    assert "Selected: UnknownBackendError: unijax has no backend named 'jaxx'" in out
    assert "jit_cache_size = invalid" in out
    problems = out.split("\nProblems:\n", 1)[1]
    assert "  - UnknownBackendError: unijax has no backend named 'jaxx'" in problems
    assert "UNIJAX_JIT_CACHE_SIZE" in problems
    assert "  numpy: available" in out  # the rest of the report is still there


MALFORMED = [
    b"tool = 3\n",
    b'[tool]\nunijax = "x"\n',
    b"[tool.unijax\nbackend = 1\n",
    '[tool.unijax]\nbackend = "jäx"\n'.encode("latin-1"),
]


@pytest.mark.parametrize("body", MALFORMED)
@pytest.mark.parametrize("plain", [True, False])
def test_info_reports_a_malformed_pyproject_above_the_working_directory(
        capsys, monkeypatch, tmp_path, body, plain):
    monkeypatch.setenv("COLUMNS", "400")  # rich must not wrap the path
    path = tmp_path / "pyproject.toml"
    path.write_bytes(body)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    _config.reload()
    assert main(["info", *(["--plain"] if plain else [])]) == 1
    captured = capsys.readouterr()
    problems = captured.out.split("Problems:\n", 1)[1]
    assert problems.count("  - ConfigError: ") == 1 and str(path) in problems
    assert "Traceback" not in captured.out + captured.err


def test_info_in_a_subprocess_exits_1_on_a_malformed_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("tool = 3\n")
    code = "from unijax.cli import main; raise SystemExit(main(['info', '--plain']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"ConfigError: unijax cannot read config file {tmp_path / 'pyproject.toml'}" \
        in result.stdout


def test_info_shows_plugin_exiting_at_import_as_broken(capsys, tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "unijax_test_cli_exit-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: unijax-test-cli-exit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[unijax.backends]\nquits = unijax_test_cli_exit\n")
    (site / "unijax_test_cli_exit.py").write_text("import sys\nsys.exit(2)\n")
    monkeypatch.syspath_prepend(str(site))
    _plugins._reset()
    out = run_info(capsys, "--plain")
    assert "  quits: broken" in out and "SystemExit: 2" in out
    assert "  numpy: available" in out


def test_info_shows_broken_plugin(capsys, tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "unijax_test_cli-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unijax-test-cli\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[unijax.backends]\nbroken = unijax_test_cli_broken\n")
    (site / "unijax_test_cli_broken.py").write_text("raise RuntimeError('kaput')\n")
    monkeypatch.syspath_prepend(str(site))
    _plugins._reset()
    out = run_info(capsys, "--plain")
    assert "  broken: broken" in out and "RuntimeError: kaput" in out


def _as_terminal(monkeypatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)


def test_info_uses_rich_tables_on_a_terminal(capsys, monkeypatch):
    _as_terminal(monkeypatch, 200)
    out = run_info(capsys)
    assert "Backends" in out and "┃" in out and "array_api_strict" in out


def test_info_rich_tables_fit_80_columns_without_cutting_cells(capsys, monkeypatch):
    _as_terminal(monkeypatch, 80)
    out = re.sub(r"\x1b\[[0-9;]*m", "", run_info(capsys))  # the colours are not columns
    assert "┃" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out  # cells fold onto more lines instead of ending in an ellipsis


def test_info_is_plain_text_when_piped(capsys):
    out = run_info(capsys)  # capsys' stdout is not a terminal
    assert "\nBackends:\n" in out and "┃" not in out


def test_info_piped_through_a_subprocess_is_plain_and_uncut():
    done = subprocess.run([sys.executable, "-m", "unijax", "info"], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "40"})
    assert done.returncode == 0, done.stderr
    assert "┃" not in done.stdout and "…" not in done.stdout
    assert "  numpy: available" in done.stdout


def test_info_falls_back_to_plain_text_without_rich(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    out = run_info(capsys)
    assert "\nBackends:\n" in out and "┃" not in out


def test_cli_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "info" in capsys.readouterr().out


def test_cli_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_runs_in_a_subprocess():
    code = "from unijax.cli import main; raise SystemExit(main(['info', '--plain']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Selected: backend 'numpy'" in result.stdout


def test_version_flag_prints_the_installed_version(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"unijax {metadata.version('unijax')}"


def test_python_dash_m_unijax_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "unijax", "--version"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unijax ")


def test_a_failing_command_prints_one_line_and_exits_2(capsys):
    assert main(["demo", "--backend", "no-such-backend", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first, hint = err.strip().splitlines()
    assert first.startswith("unijax demo: error: ") and "no-such-backend" in first
    assert "--debug" in hint


def test_debug_flag_shows_the_traceback():
    from unijax.errors import UnknownBackendError

    with pytest.raises(UnknownBackendError):
        main(["--debug", "demo", "--backend", "no-such-backend", "--steps", "1"])


@pytest.mark.parametrize("steps", ["0", "-3", "many"])
def test_demo_rejects_steps_that_are_not_positive(capsys, steps):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--steps", steps])
    assert info.value.code == 2
    assert "at least 1" in capsys.readouterr().err
