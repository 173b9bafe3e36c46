"""The README's quickstart is what CI runs, and its code example works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quickstart_is_two_commands_and_ci_runs_the_test_command() -> None:
    install_and_run, install_and_test = (b.strip() for b in _blocks("bash")[:2])
    assert "unijax demo" in install_and_run and "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install_and_test in ci, "the README's test command must appear verbatim in .ci/run"


def test_readme_python_example_runs() -> None:
    (code,) = _blocks("python")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_demo_prints_a_falling_loss() -> None:
    done = subprocess.run([sys.executable, "-m", "unijax.cli", "demo", "--steps", "60"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", done.stdout)]
    assert len(losses) >= 3 and losses[-1] < losses[0] * 0.95, done.stdout
    assert "final accuracy" in done.stdout
