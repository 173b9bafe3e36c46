"""The examples give the same results on every backend, chosen by configuration.

``examples/run_all.py --json --quick`` runs once per backend in a fresh interpreter with
``UNIJAX_BACKEND`` set (the configuration path an application uses); the results must
agree with NumPy's to floating-point accuracy, and every loss must fall. The VAE draws
its randomness with ``unijax.random``: its dropout mask and first losses must match NumPy's
almost to the last bit.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unijax.cli.benchmarks.harness import available_libraries

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BACKENDS = ("numpy", "autograd", "jax", "array_api_strict", "torch")
USABLE = [b for b, why in available_libraries(BACKENDS).items() if why is None]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIJAX_")}
    return {**env, **extra}


def _backend_env(backend: str) -> dict[str, str]:
    # A quick run would spend most of its time in torch.compile, which jit only hands the
    # hottest programs to; generated Python gives the same values.
    extra = {"UNIJAX_TORCH_COMPILE": "never"} if backend == "torch" else {}
    if backend == "jax":
        # The examples' own code between unijax calls computes in float64 only with JAX's
        # x64 flag on, which is the application's to set (unijax never changes it).
        extra = {"JAX_ENABLE_X64": "1"}
    return _env(UNIJAX_BACKEND=backend, **extra)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """``run_all.py --json --quick`` on every usable backend, all started at once."""
    cwd = tmp_path_factory.mktemp("examples")  # no pyproject.toml above: env decides
    procs = {b: subprocess.Popen([sys.executable, str(EXAMPLES / "run_all.py"), "--json",
                                  "--quick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, cwd=cwd, env=_backend_env(b))
             for b in USABLE}
    found = {}
    for backend, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{backend}:\n{err[-4000:]}"
        found[backend] = json.loads(out.strip().splitlines()[-1])
    return found


def test_each_run_used_the_configured_backend(results) -> None:
    assert {b: r["backend"] for b, r in results.items()} == {b: b for b in USABLE}


@pytest.mark.parametrize("backend", [b for b in USABLE if b != "numpy"])
def test_results_agree_with_numpy(results, backend: str) -> None:
    want, got = results["numpy"]["results"], results[backend]["results"]
    assert want.keys() == got.keys()
    for example in want:
        for key, value in want[example].items():
            np.testing.assert_allclose(got[example][key], value, rtol=1e-6, atol=1e-9,
                                       err_msg=f"{example}.{key} on {backend}")


def test_losses_fall(results) -> None:
    for backend, run in results.items():
        r = run["results"]
        for name, series in (("logistic_regression", r["logistic_regression"]["losses"]),
                             ("mlp_clipped", r["mlp_clipped"]["losses"]),
                             ("gp_regression", r["gp_regression"]["nll"]),
                             ("rnn_scan", r["rnn_scan"]["losses"]),
                             ("vae_dropout", r["vae_dropout"]["losses"]),
                             ("vae_dropout eval", r["vae_dropout"]["eval_loss"])):
            assert series[-1] < series[0], f"{name} on {backend}: {series}"
            assert all(np.isfinite(series)), f"{name} on {backend}: {series}"
        assert r["logistic_regression"]["accuracy"] > 0.8
        assert r["gp_regression"]["rmse"] < 0.3


@pytest.mark.parametrize("backend", [b for b in USABLE if b != "numpy"])
def test_vae_draws_the_same_numbers_as_numpy(results, backend: str) -> None:
    # unijax.random gives every backend the same bits from the same seed, so the dropout
    # mask is identical; the losses before any training step differ only by the backends'
    # own float64 functions (tanh, exp, the log1p inside normal: a few ulp), far below 1e-12.
    want = results["numpy"]["results"]["vae_dropout"]
    got = results[backend]["results"]["vae_dropout"]
    assert got["kept"] == want["kept"]
    np.testing.assert_allclose([got["losses"][0], got["eval_loss"][0]],
                               [want["losses"][0], want["eval_loss"][0]], rtol=1e-12, atol=0,
                               err_msg=f"vae_dropout's first losses on {backend}")


def test_script_flag_overrides_configuration(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "logistic_regression.py"),
                           "--backend", "numpy", "--steps", "3"], capture_output=True,
                          text=True, cwd=tmp_path, env=_env(UNIJAX_BACKEND="autograd"),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backend 'numpy' (set_backend:" in done.stdout
    assert "losses: [0.693147," in done.stdout


@pytest.mark.parametrize("module", ["unijax_examples.optim", "unijax_examples.models"])
def test_library_doctests(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
