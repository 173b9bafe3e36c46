"""``unijax bench`` and its harness: they run and report correctly (never timed here).

The command runs in a subprocess with ``--smoke`` (tiny problem sizes, two rounds), so
the test suite checks that every workload, variant, target, table, JSON file and plot is
produced without spending time on measurements.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from unijax.cli.bench import main
from unijax.cli.benchmarks import harness, report, scaling, system, workloads
from unijax.cli.benchmarks.harness import PRESETS, VariantResult, WorkloadResult, workload_rounds
from unijax.cli.benchmarks.suite import SECTIONS
from unijax.cli.benchmarks.workloads import TARGETS, WORKLOADS, Variant, Workload

ROOT = Path(__file__).resolve().parent.parent
HAVE_JAX = importlib.util.find_spec("jax") is not None
HAVE_AUTOGRAD = importlib.util.find_spec("autograd") is not None
HAVE_STRICT = importlib.util.find_spec("array_api_strict") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_DASK = all(importlib.util.find_spec(m) is not None for m in ("dask", "distributed"))


def bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "unijax.cli", "bench", "--smoke", "--plain", "--no-progress",
         "--json", str(out), *args], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    data = json.loads(out.read_text()) if out.exists() else None
    return done, data


def _numpy_family() -> str:
    names = ["numpy"] + (["autograd"] if HAVE_AUTOGRAD else []) + (
        ["array_api_strict"] if HAVE_STRICT else [])
    return ",".join(names)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                             dict, Path]:
    """One smoke run of every workload on the NumPy-based backends, with a plot."""
    tmp = tmp_path_factory.mktemp("bench")
    plot = ["--plot", str(tmp / "bench.png")] if HAVE_MPL else []
    done, data = bench(tmp, "--backend", _numpy_family(), *plot)
    assert data is not None, done.stderr[-3000:]
    return done, data, tmp


def test_smoke_run_succeeds_and_prints_every_table(smoke) -> None:
    done, _, _ = smoke
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for w in WORKLOADS:
        assert f"\n{w.name}: " in done.stdout
    for title in ("import unijax", "peak memory", "key comparisons"):
        assert title in done.stdout


def test_smoke_report_has_every_variant_measured_and_consistent(smoke) -> None:
    _, data, _ = smoke
    assert [w["name"] for w in data["workloads"]] == [w.name for w in WORKLOADS]
    libraries = set(_numpy_family().split(","))
    for w, spec in zip(data["workloads"], WORKLOADS, strict=True):
        expected = {v.key for v in spec.variants if v.library in libraries}
        assert {v["key"] for v in w["variants"]} == expected
        for v in w["variants"]:
            assert v["error"] is None and v["mismatch"] is None, (w["name"], v)
            assert v["rounds"] == workload_rounds(spec, PRESETS["smoke"]) and v["median_s"] > 0
            if v["baseline"] in expected:
                assert v["ratio"] is not None and v["ratio_q1"] <= v["ratio_q3"]


def test_smoke_report_evaluates_targets_and_extras(smoke) -> None:
    _, data, _ = smoke
    assert [t["id"] for t in data["targets"]] == [t.id for t in TARGETS]
    by_id = {t["id"]: t for t in data["targets"]}
    assert by_id["loop_jit_vs_eager"]["value"] > 0
    assert by_id["loop_jit_vs_eager"]["met"] in (True, False)
    if not HAVE_JAX or "jax" not in _numpy_family():
        assert by_id["jax_grad_mlp"]["value"] is None and by_id["jax_grad_mlp"]["met"] is None
    assert data["import"]["array_libraries_imported"] == []
    assert data["import"]["wall_s"] is not None
    assert data["memory"]["peak_bytes"]["unijax/numpy/grad"] > 0
    assert data["scaling"] is None  # opt-in: it starts a cluster
    assert by_id["scaling_memory_flat"]["met"] is None
    assert data["machine"]["cpu_count"] >= 1 and data["settings"]["preset"] == "smoke"


@pytest.mark.skipif(not HAVE_MPL, reason='matplotlib is not installed ("unijax[plot]")')
def test_smoke_plot_is_a_png(smoke) -> None:
    _, _, tmp = smoke
    assert (tmp / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not HAVE_JAX, reason='jax is not installed ("unijax[jax]")')
def test_smoke_run_on_jax_compares_with_raw_jax(tmp_path: Path) -> None:
    done, data = bench(tmp_path, "--backend", "jax", "--workload", "tiny,per_example")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    keys = {v["key"] for w in data["workloads"] for v in w["variants"]}
    assert {"native/jax/jit", "unijax/jax/jit", "native/jax/jit(vmap(grad))",
            "unijax/jax/jit(vmap(grad))"} <= keys
    overhead = {t["id"]: t for t in data["targets"]}["jax_jit_overhead_tiny"]
    assert overhead["value"] is not None and math.isfinite(overhead["value"])


@pytest.mark.skipif(not HAVE_DASK, reason='dask and distributed are not installed '
                    '("unijax[dask]")')
def test_smoke_scaling_sweep_runs_on_a_local_cluster(tmp_path: Path) -> None:
    done, data = bench(tmp_path, "--workload", "scaling")
    assert done.returncode == 0 and data is not None, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scaling: least-squares gradient on Dask" in done.stdout
    sc = data["scaling"]
    assert sc["error"] is None and sc["workers"] == 2
    assert [r["rows"] for r in sc["sizes"]] == scaling.SWEEPS["smoke"].sizes()
    for r in sc["sizes"]:
        assert r["error"] is None and r["matches"] and not r["restarted"], r
        assert len(r["peak_rss_mb"]) == 2 and min(r["peak_rss_mb"]) > 0
        assert r["seconds"] > 0 and r["dataset_gb"] > 0
    assert data["workloads"] == [] and data["import"] is None and data["memory"] is None
    by_id = {t["id"]: t for t in data["targets"]}
    assert by_id["scaling_gradient_correct"]["met"] is True
    flat = by_id["scaling_memory_flat"]
    assert flat["value"] > 0 and flat["met"] in (True, False)


def test_rerendering_a_saved_report(smoke, tmp_path: Path, capsys) -> None:
    _, _, tmp = smoke
    assert main(["--from-json", str(tmp / "report.json"), "--plain"]) == 0
    assert "key comparisons" in capsys.readouterr().out


def test_plot_without_matplotlib_fails_fast_with_install_hint(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["--plot", "x.png", "--workload", "mlp"]) == 2
    assert 'pip install "unijax[plot]"' in capsys.readouterr().err


def test_unknown_workload_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--workload", "mlp,nope"])
    assert info.value.code == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err


def test_list_names_every_section(capsys) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SECTIONS)


def test_targets_refer_to_existing_variants() -> None:
    keys = {w.name: {v.key for v in w.variants} for w in WORKLOADS}
    for t in TARGETS:
        if t.workload == "scaling":
            assert {t.numerator, t.denominator} <= set(scaling.FIGURES), t.id
            continue
        pool = set(system.MEMORY_VARIANTS) if t.workload == "memory" else keys[t.workload]
        assert t.numerator in pool and t.denominator in pool, t.id
    for w in WORKLOADS:
        for v in w.variants:
            assert v.baseline is None or v.baseline in keys[w.name], v.key


def _variant(key: str, fn, output: str = "value") -> Variant:
    return Variant(key, "numpy", "native", key, output, lambda data: fn)


def test_disagreeing_and_raising_variants_are_reported_not_fatal() -> None:
    def boom():
        raise RuntimeError("kaput")

    w = Workload("fake", "fake", {"full": {}, "smoke": {}}, lambda size: (), (
        _variant("a", lambda: 1.0), _variant("b", lambda: 1.0 + 1e-3), _variant("c", boom),
        _variant("d", lambda: 1.0)))
    result = harness.run_workload(w, PRESETS["smoke"], {"numpy": None})
    assert result.variants["a"].mismatch is None and result.variants["d"].mismatch is None
    assert "differs from the reference" in result.variants["b"].mismatch
    assert result.variants["c"].error.startswith("RuntimeError: kaput")
    assert len(result.variants["d"].times) == PRESETS["smoke"].rounds


def test_ratios_are_paired_per_round() -> None:
    def res(key: str, times: list[float], baseline: str | None = None) -> VariantResult:
        return VariantResult(key, key, "unijax", "numpy", "grad", baseline, times)

    w = WorkloadResult("mlp", "", {}, {
        "unijax/numpy/grad": res("unijax/numpy/grad", [1.0, 4.0, 2.0]),
        "native/autograd/grad": res("native/autograd/grad", [2.0, 8.0, 4.0])}, {})
    # medians of each alone would give 2/4; paired per round every ratio is exactly 0.5
    assert w.paired("unijax/numpy/grad", "native/autograd/grad", lambda a, b: a / b) == (
        0.5, 0.5, 0.5)
    rows = {r["id"]: r for r in harness.evaluate_targets({"mlp": w}, None)}
    assert rows["numpy_grad_vs_autograd_mlp"]["value"] == 0.5
    assert rows["numpy_grad_vs_autograd_mlp"]["met"] is True
    assert rows["numpy_grad_peak_memory_mlp"]["met"] is None


def test_fmt_time_picks_units() -> None:
    assert report.fmt_time(2.5) == "2.5 s"
    assert report.fmt_time(0.0015) == "1.5 ms"
    assert report.fmt_time(3e-6) == "3 us"
    assert report.fmt_time(None) == "-"


def test_benchmark_scripts_run() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "workloads.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "per_example" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "harness.py"), "--list"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "elementwise" in done.stdout, done.stderr


def test_dispatch_overhead_script_reports_each_transform() -> None:
    pytest.importorskip("jax")
    pytest.importorskip("autograd")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dispatch_overhead.py"),
                           "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("unijax.")]
    assert [row.split(" on ")[0] + " on " + row.split(" on ")[1].split()[0] for row in rows] \
        == ["unijax.grad on JAX", "unijax.jit on JAX", "unijax.grad on Autograd"]
    assert all(" µs  [" in row for row in rows)


def test_every_workload_has_smoke_and_full_sizes() -> None:
    for w in workloads.WORKLOADS:
        assert {"full", "smoke"} <= set(w.sizes)
        assert w.title.format(**w.sizes["full"])


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="rich is not installed")
def test_rich_tables_keep_bracketed_labels(smoke) -> None:
    _, data, _ = smoke
    text = report.render(data, width=200)
    assert "┃ variant" in text and "unijax grad [numpy]" in text


def test_rich_tables_fit_80_columns_without_cutting_cells(smoke) -> None:
    _, data, _ = smoke
    text = report.render(data, width=80)
    assert "┃" in text and max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # long cells fold onto more lines


def test_terminal_output_shows_measurements_not_goals(smoke) -> None:
    _, data, _ = smoke
    text = report.render(data, plain=True)
    assert "key comparisons" in text
    assert " NO" not in text and "goal" not in text and "met" not in text.split()


def test_plain_tables_without_rich(smoke, monkeypatch) -> None:
    _, data, _ = smoke
    monkeypatch.setitem(sys.modules, "rich", None)
    text = report.render(data)
    assert "┃" not in text and "unijax grad [numpy]" in text
