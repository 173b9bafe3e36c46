"""``unijax bench``: time unijax's transforms against the native libraries, in one run.

Runs the workloads of :mod:`unijax.cli.benchmarks` (MLP gradient, per-example gradients, a
50-step elementwise loop, a Gaussian-process likelihood, a 10^7-element expression and the
per-call overhead on a tiny input) with unijax on every installed backend and with the
native libraries directly (``autograd.grad``, ``jax.grad``, ``jax.jit(jax.grad)``, the
plain NumPy forward pass); then ``import unijax`` time and peak memory. Variants run in
interleaved rounds, and every ratio is the median of per-round paired ratios.

``scaling`` (a least-squares gradient on Dask over more data than a worker's memory,
doubling the rows, on a local cluster of two worker processes) runs only when named with
``--workload scaling``: it starts a cluster per size and takes a while.

Examples::

    unijax bench --quick                      # one to two minutes
    unijax bench --json bench.json --plot bench.png
    unijax bench --workload mlp,loop --backend numpy,autograd
    unijax bench --quick --workload scaling   # Dask: 0.25M to 1M rows (needs unijax[dask])
    unijax bench --from-json bench.json --plot bench.png   # re-render a saved run

Exit status: 0, or 1 when a variant raised or disagreed numerically with the others (the
report says which), or 2 for a usage error (such as ``--plot`` without matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from unijax.cli.benchmarks import report as rep
from unijax.cli.benchmarks.harness import PRESETS, available_libraries
from unijax.cli.benchmarks.suite import DEFAULT_SECTIONS, OPT_IN, SECTIONS, plan, run
from unijax.cli.benchmarks.workloads import BACKENDS, WORKLOADS
from unijax.cli.output import use_rich

__all__ = ["main"]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unijax bench",
                                     description=__doc__.splitlines()[0].replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="fewer, shorter rounds (one to two minutes); same problem sizes, "
                           "but a shorter scaling sweep (0.25M to 1M rows)")
    size.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tests: tiny
    parser.add_argument("--workload", action="append", default=[], metavar="NAME",
                        help=f"run only these (repeat or comma-separate): {', '.join(SECTIONS)}"
                             f"; default: all but {', '.join(OPT_IN)}, which runs only when "
                             "named")
    parser.add_argument("--backend", action="append", default=[], metavar="NAME",
                        help="only these libraries, unijax's backend and the native library "
                             f"alike (default: all of {', '.join(BACKENDS)} installed)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per variant")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="grouped bar chart of the ratios (needs matplotlib)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="render a saved report instead of running")
    parser.add_argument("--plain", action="store_true", help="plain-text tables, no rich")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser


def _check_choices(parser: argparse.ArgumentParser, given: list[str], valid: Sequence[str],
                   what: str, default: Sequence[str] | None = None) -> list[str]:
    names = [n for text in given for n in _names(text)]
    unknown = [n for n in names if n not in valid]
    if unknown:
        parser.error(f"unknown {what} {', '.join(map(repr, unknown))}; "
                     f"choose from {', '.join(valid)}")
    return names or list(valid if default is None else default)


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A progress callback: a rich bar on a terminal, plain lines otherwise."""
    if not enabled:
        yield lambda _: None
        return
    try:
        if not sys.stderr.isatty():
            raise ImportError
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        count = [0]

        def plain(text: str) -> None:
            count[0] += 1
            print(f"[{count[0]}/{total}] {text}", file=sys.stderr, flush=True)

        yield plain
        return
    columns = (TextColumn("{task.description:<48}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=total)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=escape(text))  # "[numpy]" is not markup

        yield advance


def _problems(report: dict[str, Any]) -> list[str]:
    found = []
    for w in report["workloads"]:
        for v in w["variants"]:
            if v["error"]:
                found.append(f"{w['name']}: {v['label']} raised {v['error']}")
            if v["mismatch"]:
                found.append(f"{w['name']}: {v['label']} disagrees: {v['mismatch']}")
    mem = report.get("memory") or {}
    found += [f"memory: {k} raised {msg}" for k, msg in (mem.get("errors") or {}).items()]
    for size in (report.get("scaling") or {}).get("sizes", []):
        if size.get("error"):
            found.append(f"scaling: {size['rows']:,} rows raised {size['error']}")
        elif not size.get("matches", True):
            found.append(f"scaling: the gradient over {size['rows']:,} rows is wrong")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``unijax bench`` with ``argv`` (the arguments after ``bench``)."""
    parser = _parser()
    args = parser.parse_args(list(argv or []))
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:12} {w.title.format(**w.sizes['full'])}")
        print(f"{'import':12} time of `import unijax` in fresh interpreters")
        print(f"{'memory':12} peak memory of the MLP gradient (tracemalloc)")
        print(f"{'scaling':12} Dask least-squares gradient, rows doubling, on a local "
              "cluster (only with --workload scaling)")
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"error: {rep.PLOT_HINT}", file=sys.stderr)
            return 2
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sections = _check_choices(parser, args.workload, SECTIONS, "workload", DEFAULT_SECTIONS)
    backends = _check_choices(parser, args.backend, BACKENDS, "backend")
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            report = json.load(f)
    else:
        settings = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
        if args.rounds is not None:
            settings = dataclasses.replace(settings, rounds=args.rounds)

        total = plan(sections, settings, available_libraries(backends))
        with _progress(total, not args.no_progress) as note:
            report = run(settings, sections, backends, note)
    print(rep.render(report, plain=not use_rich(plain=args.plain)), end="")
    if args.json:
        rep.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        rep.plot(report, args.plot)
        print(f"wrote {args.plot}")
    problems = _problems(report)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if problems else 0
