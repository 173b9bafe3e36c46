"""``unijax info``: backends, availability, capabilities and the selection, rich or plain."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import unijax
from unijax.cli import main
from unijax.dispatch import options as _config
from unijax.dispatch import plugins as _plugins

ENV_VARS = [opt.env for opt in unijax.config.options()] + [_config.CONFIG_ENV]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    _config._reset()
    _plugins._reset()
    yield
    _config._reset()
    _plugins._reset()


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


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed")
def test_info_shows_install_hint_for_missing_library(capsys):
    assert '  cupy: missing: pip install "unijax[cupy]"' in run_info(capsys, "--plain")


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
    out = run_info(capsys, "--plain")
    assert "Selected: UnknownBackendError: unijax has no backend named 'jaxx'" in out
    assert "jit_cache_size = invalid" in out


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


def test_info_uses_rich_tables_when_available(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = run_info(capsys)
    assert "Backends" in out and "┃" in out and "array_api_strict" in out


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
