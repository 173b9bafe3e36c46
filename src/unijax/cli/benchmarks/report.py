"""Presenting a benchmark report: tables (rich or plain text), JSON and a bar chart.

The report is plain data (``dict``), as written by ``unijax bench --json``, so the tables
and the plot can be regenerated from a saved file (``unijax bench --from-json``).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unijax.cli.output import plain_table, rich_table

__all__ = ["PLOT_HINT", "fmt_time", "plot", "render", "write_json"]

Row = tuple[str, ...]
Section = tuple[str, Sequence[str], list[Row], str]  # title, headers, rows, caption

PLOT_HINT = 'unijax bench --plot needs matplotlib: pip install "unijax[plot]"'


def fmt_time(seconds: float | None) -> str:
    """``1.23 ms``-style text for a duration in seconds."""
    if seconds is None or math.isnan(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_target(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == "overhead":
        return f"{value * 1e6:+.2f} us"
    if kind == "speedup":
        return f"{value:.2f}x faster"
    return f"{value:.2f}x"


def _variant_rows(workload: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for v in workload["variants"]:
        if v["error"]:
            rows.append((str(v["label"]), "error", "", "", "", "", str(v["error"])))
            continue
        spread = f"{fmt_time(v['q1_s'])} - {fmt_time(v['q3_s'])}"
        ratio = ""
        if v["ratio"] is not None:
            ratio = f"{v['ratio']:.2f}x [{v['ratio_q1']:.2f}-{v['ratio_q3']:.2f}]"
        first = fmt_time(v["first_call_s"]) if "jit" in v["transform"] else ""
        note = f"MISMATCH: {v['mismatch']}" if v["mismatch"] else ""
        rows.append((str(v["label"]), fmt_time(v["median_s"]), spread,
                     f"{v['calls_per_round']}x{v['rounds']}", first, ratio, note))
    return rows


_VARIANT_HEADERS = ("variant", "median", "IQR", "calls x rounds", "first call",
                    "vs baseline [IQR]", "note")


def _baseline_note(workload: dict[str, Any]) -> str:
    bases = sorted({v.get("baseline_label") or v["baseline"]
                    for v in workload["variants"] if v["baseline"]})
    return "baselines: " + ", ".join(bases) if bases else ""


_SCALING_HEADERS = ("rows", "data GB", "time", "peak MB per worker", "spilled", "restarted",
                    "gradient")


def _scaling_section(sc: dict[str, Any]) -> Section:
    """The Dask sweep: one row per row count."""
    rows: list[Row] = []
    for r in sc["sizes"]:
        if r.get("error"):
            rows.append((f"{r['rows']:,}", "", "", "", "", "", f"error: {r['error']}"))
            continue
        rows.append((f"{r['rows']:,}", f"{r['dataset_gb']:.2f}", fmt_time(r["seconds"]),
                     ", ".join(f"{m:.0f}" for m in r["peak_rss_mb"]),
                     "yes" if r["spilled"] else "no", "yes" if r["restarted"] else "no",
                     "matches" if r["matches"] else
                     f"WRONG ({r['max_error_in_stderr']:.1f} standard errors)"))
    caption = (f"{sc['workers']} worker processes of {sc['memory_limit']} each, one cluster "
               f"per size; {sc['features']} features, {sc['chunk_rows']:,}-row chunks "
               "generated on the workers")
    if sc.get("error"):
        caption = f"not run: {sc['error']}"
    return ("scaling: least-squares gradient on Dask, rows doubling", _SCALING_HEADERS, rows,
            caption)


def _sections(report: dict[str, Any]) -> list[Section]:
    """(title, headers, rows, caption) for every table of the report."""
    out: list[Section] = []
    rows: list[Row]
    for w in report["workloads"]:
        caption = _baseline_note(w)
        if w["skipped"]:
            caption += ("; " if caption else "") + "skipped: " + ", ".join(sorted(w["skipped"]))
        out.append((f"{w['name']}: {w['title']}", _VARIANT_HEADERS, _variant_rows(w), caption))
    imp = report.get("import")
    if imp:
        if "error" in imp:
            rows = [("error", str(imp["error"]))]
        else:
            libs = ", ".join(imp["array_libraries_imported"]) or "none"
            rows = [("wall time over an empty interpreter", fmt_time(imp["wall_s"])),
                    ("-X importtime, cumulative", fmt_time(imp["importtime_s"])),
                    ("empty interpreter start-up", fmt_time(imp["interpreter_s"])),
                    ("array libraries imported", libs)]
        out.append(("import unijax", ("measure", "value"), rows,
                    f"median of {imp.get('runs', 0)} fresh interpreters"))
    mem = report.get("memory")
    if mem:
        peaks = mem["peak_bytes"]
        ref = peaks.get("native/autograd/grad")
        rows = [(str(key), f"{b / 2**20:.2f} MiB", f"{b / ref:.2f}x" if ref else "")
                for key, b in peaks.items()]
        rows += [(str(key), "error", str(msg)) for key, msg in mem["errors"].items()]
        out.append(("peak memory of one call (tracemalloc), MLP", ("variant", "peak",
                                                                    "vs autograd.grad"),
                    rows, "NumPy-based variants only: tracemalloc does not see XLA buffers"))
    if report.get("scaling"):
        out.append(_scaling_section(report["scaling"]))
    measured = [t for t in report.get("targets") or [] if t["value"] is not None]
    if measured:
        # What was measured, side by side; the goals the project quotes are in the JSON
        # report and the benchmarks page, not in a pass/fail column here.
        rows = []
        for t in measured:
            value = _fmt_target(t["kind"], t["value"])
            if t["low"] != t["high"]:
                value += (f" [{_fmt_target(t['kind'], t['low'])} .. "
                          f"{_fmt_target(t['kind'], t['high'])}]")
            rows.append((str(t.get("compares") or t["description"]), value))
        out.append(("key comparisons", ("numerator vs denominator",
                                        "median [IQR] of paired rounds"), rows, ""))
    return out


def _header(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m.get("load_average")
    end = report.get("load_average_end")
    env = " ".join(f"{k}={v}" for k, v in (m.get("environment") or {}).items())
    return (f"unijax {m['unijax']} bench ({report['settings']['preset']}), Python "
            f"{m['python']}, {m['cpu_count']} CPUs, load average {load} at start, {end} at "
            f"end, {report['duration_s']:.0f} s" + (f", {env}" if env else ""))


def render(report: dict[str, Any], *, plain: bool = False, width: int | None = None) -> str:
    """The report as text: rich tables (``width`` columns, default the terminal's) when
    rich is installed and not ``plain``, else plain columns that nothing cuts."""
    sections = _sections(report)
    if plain or importlib.util.find_spec("rich") is None:
        lines = [_header(report)]
        for title, headers, rows, caption in sections:
            lines.append("")
            lines.append(title)
            lines.append(plain_table(headers, rows, indent="  ").rstrip("\n"))
            if caption:
                lines.append(f"  ({caption})")
        return "\n".join(lines) + "\n"
    from rich.console import Console
    from rich.text import Text

    width = width or shutil.get_terminal_size().columns
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(Text(_header(report)))
    for title, headers, rows, caption in sections:
        console.print(rich_table(title, headers, rows, caption or None))
    return console.export_text()


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """Write ``report`` as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n",
                          encoding="utf-8")


_BACKEND_ORDER = ("numpy", "autograd", "jax", "array_api_strict")


#: Width of the figure: 800 px at the saved resolution, a page's width without scaling.
_PLOT_WIDTH_IN, _PLOT_DPI = 8.0, 100


def plot(report: dict[str, Any], path: str | Path) -> None:
    """A horizontal bar chart of each unijax variant's time over its baseline's.

    One row per unijax variant, grouped by workload and labelled ``workload: transform``;
    the colour is the backend, hatched bars are compiled (``jit``). Bars are medians of
    the per-round paired ratios, with their quartiles as error bars, on a log scale; left
    of the line at 1 unijax is faster than the native library it is compared with
    (``autograd.grad`` for NumPy-like arrays, JAX's own transform on JAX). The image is
    800 pixels wide with 9-point text, so it reads at a page's width without zooming.

    Raises:
        ImportError: matplotlib is not installed (the message is :data:`PLOT_HINT`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as err:
        raise ImportError(PLOT_HINT) from err

    def order(v: dict[str, Any]) -> tuple[int, bool, str]:
        rank = _BACKEND_ORDER.index(v["library"]) if v["library"] in _BACKEND_ORDER else 99
        return rank, v["transform"].startswith("jit"), v["transform"]

    rows: list[tuple[str, dict[str, Any]]] = []
    for w in report["workloads"]:
        rows += [(w["name"], v) for v in sorted(
            (v for v in w["variants"] if v["kind"] == "unijax" and v["ratio"]), key=order)]
    backends = sorted({v["library"] for _, v in rows},
                      key=lambda b: _BACKEND_ORDER.index(b) if b in _BACKEND_ORDER else 99)
    palette = plt.get_cmap("tab10")
    color = {b: palette(i) for i, b in enumerate(backends)}
    height = 1.4 + 0.19 * len(rows)
    fig, ax = plt.subplots(figsize=(_PLOT_WIDTH_IN, height))
    y, labels, previous = 0.0, [], None
    positions = []
    for name, v in rows:
        if previous is not None and name != previous:
            y += 0.6  # a gap between workloads
        previous = name
        spread = [[max(0.0, v["ratio"] - v["ratio_q1"])], [max(0.0, v["ratio_q3"] - v["ratio"])]]
        ax.barh(y, v["ratio"], 0.8, xerr=spread, capsize=1.5, color=color[v["library"]],
                hatch="////" if v["transform"].startswith("jit") else None,
                edgecolor="white", linewidth=0.0, error_kw={"linewidth": 0.7})
        positions.append(y)
        labels.append(f"{name}: {v['transform']}")
        y += 1.0
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("time / native time (log scale; left of 1: unijax is faster)", fontsize=9)
    load = report["machine"].get("load_average")
    ax.set_title(f"unijax vs native libraries ({report['settings']['preset']} run, "
                 f"{report['machine'].get('cpu_count')} CPUs, load "
                 f"{load[0] if load else '?'})", fontsize=10)
    handles = [Patch(facecolor=color[b], label=b) for b in backends]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="////",
                         label="compiled (jit)"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=_PLOT_DPI)
    plt.close(fig)
