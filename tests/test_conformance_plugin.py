"""The suite's pytest plugin: light to load, options, skips with reasons, strict xfails."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import unijax_conformance
from unijax_conformance import _state
from unijax_conformance._xfail import ExpectedFailures
from unijax_conformance.plugin import in_sample

from unijax.cli.check import run_suite

SUITE = Path(unijax_conformance.__file__).resolve().parent


def test_loading_the_plugin_imports_no_array_library() -> None:
    code = ("import sys, unijax_conformance.plugin; "
            "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
            "{'numpy', 'jax', 'autograd', 'array_api_strict', 'cupy', 'unijax', "
            "'hypothesis', 'array_api_compat'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_expected_failures_patterns(tmp_path: Path) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text('[mylib]\n"test_jit.py::*[mylib-sin]" = "no jit yet"\n')
    failures = ExpectedFailures.load([extra])
    assert failures.reason("mylib", "test_jit.py::test_jit_matches_eager[mylib-sin]") == \
        "no jit yet"
    assert failures.reason("mylib", "test_jit.py::test_jit_matches_eager[mylib-s]") is None
    assert failures.reason("other", "test_jit.py::test_jit_matches_eager[mylib-sin]") is None


@pytest.mark.parametrize(("text", "problem"), [
    ('"test_x.py::t" = "outside a table"\n', "outside a [backend] table"),
    ('[mylib]\n"test_x.py::t" = ""\n', "non-empty string"),
    ("[mylib\n", "cannot read"),
])
def test_expected_failures_errors(tmp_path: Path, text: str, problem: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=re.escape(problem)):
        ExpectedFailures.load([bad])


def _events(backends: list[str], tests: list[str], *extra: str) -> tuple[int, list[Any], str]:
    events: list[dict[str, Any]] = []
    code, _, output = run_suite(backends, targets=[str(SUITE / t) for t in tests],
                                extra=list(extra), on_event=events.append)
    return code, [e for e in events if e.get("event") == "test"], output


def test_unknown_backend_is_a_usage_error() -> None:
    code, events, output = _events(["no_such_backend"], ["test_jit.py"])
    assert code == 4 and not events
    assert "no installed unijax plugin provides 'no_such_backend'" in output


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_unavailable_backend_is_skipped_with_the_install_hint() -> None:
    from unijax.dispatch.plugins import get_backend

    missing = [name for name in ("cupy",) if not get_backend(name, require_available=False)
               .available]
    if not missing:
        pytest.skip("every built-in backend is available here (cupy on a GPU machine)")
    code, events, _ = _events(missing, ["test_plugin.py::test_jit_compiles"])
    assert code == 0
    (event,) = events
    assert event["outcome"] == "unsupported"
    # Not installed: the install hint; installed without a GPU: why it cannot compute.
    backend = get_backend("cupy", require_available=False)
    reason = backend.install_hint if not _installed("cupy") else backend.unusable
    assert reason and reason in event["message"]


def test_listed_failure_that_passes_fails_the_run(tmp_path: Path) -> None:
    listed = tmp_path / "xfail.toml"
    listed.write_text('[numpy]\n"test_jit.py::test_jit_compiles*" = "believed broken"\n'
                      '"test_plugin.py::test_jit_compiles[numpy]" = "believed broken"\n')
    code, events, _ = _events(["numpy"], ["test_plugin.py::test_jit_compiles"],
                              "--unijax-xfail", str(listed))
    assert code == 1
    (event,) = events
    assert event["outcome"] == "failed" and "XPASS(strict)" in event["message"]


def test_profiles_select_the_vmap_variants() -> None:
    def collected(profile: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             "--unijax-backend", "numpy", "--unijax-profile", profile,
             str(SUITE / "test_vmap.py")], capture_output=True, text=True, check=False)
        return [line for line in done.stdout.splitlines() if "[numpy-sin-" in line]

    assert len(collected("ci")) == 1
    assert len(collected("thorough")) == 3


# The ci profile checks a native transform on a sample of the rows (autograd's grad here:
# the cheapest native transform to run). Rows picked by the same stable hash as the plugin.
_SHARE = _state.PROFILES["ci"]["native_share"]


def _grad_row(name: str) -> str:
    return f"test_grad.py::test_grad_finite_differences[autograd-{name}]"


def _autograd_rows() -> tuple[str, str]:
    """A row inside the ci sample and one outside it, both passing on autograd."""
    pytest.importorskip("autograd")
    inside = next(n for n in ("log2", "log10", "maximum") if in_sample(n, "autograd", _SHARE))
    outside = next(n for n in ("sin", "cos", "exp") if not in_sample(n, "autograd", _SHARE))
    return inside, outside


def test_ci_profile_skips_rows_outside_the_sample_with_the_reason() -> None:
    inside, outside = _autograd_rows()
    code, events, _ = _events(["autograd"], [_grad_row(inside), _grad_row(outside)])
    assert code == 0
    outcomes = {e["id"]: e for e in events}
    assert outcomes[_grad_row(inside)]["outcome"] == "passed"
    skipped = outcomes[_grad_row(outside)]  # reported, not silently deselected
    assert skipped["outcome"] == "unsupported"
    assert f"checks autograd's native grad on a {_SHARE:.0%} sample" in skipped["message"]
    assert "--unijax-profile thorough" in skipped["message"]


def test_thorough_profile_runs_every_row() -> None:
    _, outside = _autograd_rows()
    events: list[dict[str, Any]] = []
    code, _, _ = run_suite(["autograd"], profile="thorough",
                           targets=[str(SUITE / _grad_row(outside))], on_event=events.append)
    assert code == 0
    (event,) = [e for e in events if e.get("event") == "test"]
    assert event["outcome"] == "passed"


def test_stale_expected_failure_outside_the_sample_fails_the_run(tmp_path: Path) -> None:
    # A listed row runs whatever the sample: an entry that passes must not hide there.
    _, outside = _autograd_rows()
    listed = tmp_path / "xfail.toml"
    listed.write_text(f'[autograd]\n"{_grad_row(outside)}" = "believed broken"\n')
    code, events, _ = _events(["autograd"], [_grad_row(outside)],
                              "--unijax-xfail", str(listed))
    assert code == 1
    (event,) = events
    assert event["outcome"] == "failed" and "XPASS(strict)" in event["message"]
