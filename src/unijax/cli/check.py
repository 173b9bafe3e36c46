"""``unijax check``: run the conformance suite on installed backends and show a matrix.

The suite (the ``unijax_conformance`` package) runs in a pytest subprocess, isolated from
the current project's pytest configuration; its plugin writes one JSON line per finished
test (``--unijax-events``), which drives the progress display and the final matrix of
backend x area (values, grad, vmap, jit, transforms, dtypes, errors, selection, plugin),
each cell ``passed``, ``failed``, ``xfail`` (a listed known failure) or ``unsupported``
(the backend cannot run here, or does not declare what the test needs).

``unijax check --standard PATH`` runs the official Array API test suite (a checkout of
data-apis/array-api-tests at ``PATH``) on the traced namespace instead, and on its base
(:mod:`unijax.cli.standard`).

Example:
    >>> from unijax.cli.check import Matrix
    >>> m = Matrix()
    >>> m.add({"backend": "numpy", "area": "grad", "outcome": "passed"})
    >>> m.add({"backend": "numpy", "area": "grad", "outcome": "xfail"})
    >>> m.status("numpy", "grad"), m.cell("numpy", "grad")
    ('xfail', 'xfail 1 · passed 1')
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from unijax.cli import standard

__all__ = ["AREAS", "Matrix", "main", "render_markdown", "run_suite"]

#: The matrix columns, in order (a test's area comes from its module ``test_<area>*.py``).
AREAS = ("values", "grad", "vmap", "jit", "control", "transforms", "dtypes", "errors",
         "selection", "plugin")
_OUTCOMES = ("failed", "xfail", "passed", "unsupported")


class Matrix:
    """Outcome counts per backend and area, and the failures with their messages."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.failures: list[dict[str, str]] = []
        self.unsupported: dict[str, str] = {}

    def add(self, event: dict[str, Any]) -> None:
        """Record one ``test`` event of the suite."""
        backend, area, outcome = event.get("backend") or "", event["area"], event["outcome"]
        if not backend:
            return
        cell = self.counts.setdefault((backend, area), dict.fromkeys(_OUTCOMES, 0))
        cell[outcome] = cell.get(outcome, 0) + 1
        if outcome == "failed":
            self.failures.append({k: str(event.get(k, "")) for k in
                                  ("id", "backend", "area", "message")})
        elif outcome == "unsupported" and backend not in self.unsupported:
            self.unsupported[backend] = str(event.get("message", ""))

    @property
    def backends(self) -> list[str]:
        return sorted({b for b, _ in self.counts})

    def status(self, backend: str, area: str) -> str:
        """``failed``, ``xfail``, ``passed``, ``unsupported``, or ``-`` (no tests)."""
        cell = self.counts.get((backend, area))
        if not cell or not any(cell.values()):
            return "-"
        if cell["failed"]:
            return "failed"
        if cell["xfail"]:
            return "xfail"
        return "passed" if cell["passed"] else "unsupported"

    def cell(self, backend: str, area: str) -> str:
        """The cell text: each non-zero count, worst first."""
        cell = self.counts.get((backend, area))
        if not cell:
            return "-"
        return " · ".join(f"{name} {cell[name]}" for name in _OUTCOMES if cell[name])

    def to_json(self) -> dict[str, Any]:
        return {
            "matrix": {b: {a: {"status": self.status(b, a),
                               **self.counts.get((b, a), dict.fromkeys(_OUTCOMES, 0))}
                           for a in AREAS} for b in self.backends},
            "failures": self.failures,
            "unsupported": self.unsupported,
        }


def render_markdown(matrix: Matrix, header: str) -> str:
    """The matrix and the failures as a Markdown report.

    Example:
        >>> m = Matrix()
        >>> m.add({"backend": "jax", "area": "jit", "outcome": "passed"})
        >>> print(render_markdown(m, "unijax check").splitlines()[2].replace(" ", ""))
        |backend|values|grad|vmap|jit|control|transforms|dtypes|errors|selection|plugin|
    """
    lines = [f"# {header}", "", "| backend | " + " | ".join(AREAS) + " |",
             "|---" * (len(AREAS) + 1) + "|"]
    for b in matrix.backends:
        lines.append(f"| {b} | " + " | ".join(
            f"{matrix.status(b, a)} ({matrix.cell(b, a)})" if matrix.status(b, a) != "-"
            else "-" for a in AREAS) + " |")
    if matrix.unsupported:
        lines += ["", "## Unsupported", ""]
        lines += [f"- **{b}**: {why}" for b, why in matrix.unsupported.items()]
    if matrix.failures:
        lines += ["", "## Unexpected failures", ""]
        lines += [f"- `{f['id']}`: {f['message']}" for f in matrix.failures]
    return "\n".join(lines) + "\n"


# --- running the suite ------------------------------------------------------------------------


def _pytest_command(backends: Sequence[str], profile: str, events: Path, ini: Path,
                    jobs: int, extra: Sequence[str], targets: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "--pyargs", *targets, "-c", str(ini),
           "--rootdir", str(ini.parent), "-p", "no:cacheprovider", "-q", "--no-header",
           "-W", "ignore::pytest.PytestUnraisableExceptionWarning",
           "--unijax-profile", profile, "--unijax-events", str(events)]
    for name in backends:
        cmd += ["--unijax-backend", name]
    if jobs > 1 and importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(jobs)]
    return cmd + list(extra)


def _follow(path: Path, proc: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    """The events written to ``path`` until ``proc`` exits (like ``tail -f``)."""
    while not path.exists():
        if proc.poll() is not None:
            return  # pytest stopped before the plugin started (a usage error)
        time.sleep(0.05)
    with path.open(encoding="utf-8") as f:
        partial = ""
        while True:
            line = f.readline()
            if line.endswith("\n"):
                yield json.loads(partial + line)
                partial = ""
            elif line:
                partial += line  # the writer is mid-line
            elif proc.poll() is not None:  # it exited: whatever is left is complete
                for rest in (partial + f.read()).splitlines():
                    if rest.strip():
                        yield json.loads(rest)
                return
            else:
                time.sleep(0.05)


def run_suite(backends: Sequence[str] = (), *, profile: str = "ci", jobs: int = 1,
              extra: Sequence[str] = (), targets: Sequence[str] = ("unijax_conformance",),
              env: dict[str, str] | None = None,
              on_event: Callable[[dict[str, Any]], None] | None = None
              ) -> tuple[int, Matrix, str]:
    """Run the conformance suite in a subprocess.

    Args:
        backends: Backend names (empty: every installed backend).
        profile: ``"ci"`` or ``"thorough"``.
        jobs: Worker processes (pytest-xdist), when installed.
        extra: More pytest arguments (``["-k", "grad"]``).
        targets: What pytest collects: the suite's package, or test ids of its files.
        env: The subprocess's environment (default: this process's); in the ci profile
            ``XLA_FLAGS`` defaults to XLA's optimisation level 0 (compile time).
        on_event: Called with every event as it arrives (for progress).

    Returns:
        ``(pytest exit status, matrix, pytest's output)``.
    """
    matrix = Matrix()
    env = dict(os.environ if env is None else env)
    if profile == "ci":
        # The suite compiles a few thousand tiny XLA programs, and compiling, not running,
        # is what they cost: XLA's CPU backend at optimisation level 0 compiles them in
        # about half the time. A user's own XLA_FLAGS, and the thorough profile, keep
        # XLA's defaults (so do unijax's unit tests against JAX).
        env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    with tempfile.TemporaryDirectory(prefix="unijax-check-") as tmp:
        ini, events = Path(tmp) / "pytest.ini", Path(tmp) / "events.jsonl"
        ini.write_text("[pytest]\n", encoding="utf-8")
        cmd = _pytest_command(backends, profile, events, ini, jobs, extra, targets)
        with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                    text=True, env=env)
            try:
                for event in _follow(events, proc):
                    if event.get("event") == "test":
                        matrix.add(event)
                    if on_event is not None:
                        on_event(event)
            finally:
                code = proc.wait()
            out.seek(0)
            output = out.read()
    return code, matrix, output


# --- the command ------------------------------------------------------------------------------


class _Progress:
    """Progress while the suite runs: a rich progress bar, or a line per 10 %."""

    def __init__(self, plain: bool) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self._rich: Any = None
        self._task: Any = None
        self._last_tenth = -1
        if not plain and importlib.util.find_spec("rich") is not None and sys.stderr.isatty():
            from rich.progress import Progress

            self._rich = Progress(transient=True)
            self._rich.start()
            self._task = self._rich.add_task("conformance", total=None)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "collected":
            self.total = max(self.total, int(event["count"]))
            if self._rich is not None:
                self._rich.update(self._task, total=self.total)
            return
        if kind != "test":
            return
        self.done += 1
        self.failed += event["outcome"] == "failed"
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done,
                              description=f"{event['backend']} {event['area']}"
                                          f"{f' ({self.failed} failed)' if self.failed else ''}")
        elif self.total:
            tenth = 10 * self.done // self.total
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                print(f"  {self.done}/{self.total} tests, {self.failed} failed", file=sys.stderr)

    def stop(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def _print_matrix(matrix: Matrix, plain: bool) -> None:
    colours = {"passed": "green", "failed": "bold red", "xfail": "yellow",
               "unsupported": "dim"}
    if not plain and importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="unijax conformance")
        table.add_column("backend")
        for area in AREAS:
            table.add_column(area)
        for b in matrix.backends:
            table.add_row(b, *(f"[{colours.get(matrix.status(b, a), '')}]{matrix.status(b, a)}"
                               f"[/]" for a in AREAS))
        Console().print(table)
    else:
        width = max([len(b) for b in matrix.backends] + [7])
        print("backend".ljust(width), *(a.ljust(11) for a in AREAS))
        for b in matrix.backends:
            print(b.ljust(width), *(matrix.status(b, a).ljust(11) for a in AREAS))
    for b, why in matrix.unsupported.items():
        print(f"{b}: unsupported here: {why}")
    for f in matrix.failures:
        print(f"FAILED {f['id']}: {f['message']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``unijax check``.

    Args:
        argv: The arguments after ``unijax check``.

    Returns:
        0 when every test passed or failed as expected; otherwise pytest's exit status.
    """
    parser = argparse.ArgumentParser(
        prog="unijax check",
        description="Run the unijax conformance suite on installed backends and show a "
                    "matrix of backend x area. Exits non-zero on any unexpected failure.")
    parser.add_argument("backends", nargs="*", metavar="NAME",
                        help="backends to check (default: every installed backend)")
    parser.add_argument("--thorough", action="store_true",
                        help="many hypothesis examples and every derivative order "
                             "(default: the quick ci profile)")
    parser.add_argument("--report", action="append", default=[], metavar="FILE",
                        help="also write the results to FILE.json or FILE.md (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="worker processes (needs pytest-xdist)")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="only tests matching this pytest -k expression")
    parser.add_argument("--plain", action="store_true", help="no colours or progress bar")
    official = parser.add_argument_group(
        "the official Array API test suite",
        "--standard PATH runs data-apis/array-api-tests, checked out at PATH with its "
        f"array-api submodule, at API version {standard.API_VERSION} on the traced "
        "namespace over each --backend and on the backend itself, and fails on any failure "
        "of the traced namespace that its base does not share, or that the "
        "expected-failure list does not name")
    official.add_argument("--standard", metavar="PATH", default=None,
                          help="a checkout of data-apis/array-api-tests")
    official.add_argument("--backend", action="append", choices=tuple(standard.BASES),
                          default=None, help="the base namespace (repeatable; default numpy)")
    official.add_argument("--max-examples", type=int, default=20, metavar="N",
                          help="hypothesis examples per test (default 20)")
    official.add_argument("--json", default=None, metavar="FILE",
                          help="write every test's outcome and the comparison to FILE")
    official.add_argument("--xfail", default=None, metavar="FILE",
                          help="the expected-failure list (default: the one shipped in "
                               "unijax_conformance/xfail/standard.toml)")
    official.add_argument("--base-results", default=None, metavar="FILE",
                          help="reuse the base results of an earlier --json FILE")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.standard is None:
        for flag, value in (("--backend", args.backend), ("--json", args.json),
                            ("--xfail", args.xfail), ("--base-results", args.base_results)):
            if value is not None:
                parser.error(f"{flag} goes with --standard PATH")
    else:
        if args.backends or args.report or args.thorough:
            parser.error("--standard runs the official suite: name its bases with "
                         "--backend, and write its results with --json")
        if args.max_examples < 1:
            parser.error("--max-examples must be at least 1")
        if importlib.util.find_spec("pytest") is None:
            print('unijax check needs pytest and hypothesis: pip install "unijax[test]"',
                  file=sys.stderr)
            return 2
        return standard.run(args.standard, args.backend or ["numpy"],
                            max_examples=args.max_examples, json_file=args.json,
                            xfail_file=args.xfail, base_results=args.base_results,
                            jobs=args.jobs, keyword=args.keyword)
    for report in args.report:
        if Path(report).suffix not in (".json", ".md"):
            parser.error(f"--report {report}: the file must end in .json or .md")
    if importlib.util.find_spec("pytest") is None:
        print('unijax check needs pytest and hypothesis: pip install "unijax[test]"',
              file=sys.stderr)
        return 2
    profile = "thorough" if args.thorough else "ci"
    progress = _Progress(args.plain)
    extra = ["-k", args.keyword] if args.keyword else []
    try:
        code, matrix, output = run_suite(args.backends, profile=profile, jobs=args.jobs,
                                         extra=extra, on_event=progress)
    finally:
        progress.stop()
    if not matrix.counts:
        print(output[-4000:], file=sys.stderr)
    _print_matrix(matrix, args.plain)
    header = (f"unijax check ({profile} profile): "
              f"{'unexpected failures' if code else 'all as expected'}")
    for report in args.report:
        path = Path(report)
        if path.suffix == ".json":
            path.write_text(json.dumps({"profile": profile, "exitstatus": code,
                                        "backends": matrix.backends, **matrix.to_json()},
                                       indent=2) + "\n", encoding="utf-8")
        else:
            path.write_text(render_markdown(matrix, header), encoding="utf-8")
    print(header)
    return 0 if code == 0 else int(code)
