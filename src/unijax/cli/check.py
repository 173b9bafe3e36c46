"""``unijax check``: run the conformance suite on installed backends and show a matrix.

The suite (the ``unijax_conformance`` package) runs in a pytest subprocess, isolated from
the current project's pytest configuration; its plugin writes one JSON line per finished
test (``--unijax-events``), which drives the progress display and the final tables: per
backend, each area (values, grad, vmap, jit, control, transforms, dtypes, errors,
selection, plugin) with its counts of ``passed``, ``xfail`` (a listed known failure that
failed for its stated reason), ``unsupported`` (the backend cannot run here, does not
declare what the test needs, or leaves out an optional extension) and ``failed``. The
unexpected failures follow, grouped by root cause (:func:`cause_of`) with one example
each; ``--report FILE.json`` holds every failure in full. The output fits 80 columns and
is plain text when stdout is not a terminal. The command needs pytest and hypothesis
only (``unijax[check]``); a backend's own expected-failure list is ``--xfail FILE``.

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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from unijax.cli import standard
from unijax.dispatch.plugins import _get, list_backends

__all__ = ["AREAS", "CheckError", "Matrix", "cause_of", "format_table", "main", "render_markdown",
           "run_suite"]

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
        self.stale: dict[str, dict[str, Any]] = {}

    def add(self, event: dict[str, Any]) -> None:
        """Record one ``test`` event of the suite."""
        backend, area, outcome = event.get("backend") or "", event["area"], event["outcome"]
        if not backend:
            return
        cell = self.counts.setdefault((backend, area), dict.fromkeys(_OUTCOMES, 0))
        cell[outcome] = cell.get(outcome, 0) + 1
        if outcome == "failed":
            self.failures.append({k: str(event.get(k, "")) for k in
                                  ("id", "backend", "area", "message", "exception",
                                   "xfail_problem")})
        elif outcome == "unsupported" and backend not in self.unsupported:
            self.unsupported[backend] = str(event.get("message", ""))
        pattern = event.get("stale_pattern")
        if pattern:
            row = self.stale.setdefault(f"{backend}: {pattern}",
                                        {"pattern": pattern, "backend": backend, "passed": 0,
                                         "example": str(event.get("id", ""))})
            row["passed"] += 1

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

    def totals(self, backend: str) -> dict[str, int]:
        """Every outcome's count over the backend's areas."""
        total = dict.fromkeys(_OUTCOMES, 0)
        for (b, _), cell in self.counts.items():
            if b == backend:
                for name, n in cell.items():
                    total[name] = total.get(name, 0) + n
        return total

    def groups(self) -> list[dict[str, Any]]:
        """The failures grouped by cause (exception type and message shape), largest
        first, each with its count, backends and one example."""
        groups: dict[str, dict[str, Any]] = {}
        for f in self.failures:
            key = cause_of(f)
            group = groups.setdefault(key, {"cause": key, "count": 0, "backends": [],
                                            "example": f["id"],
                                            "example_message": f.get("exception")
                                            or f["message"]})
            group["count"] += 1
            if f["backend"] not in group["backends"]:
                group["backends"].append(f["backend"])
        return sorted(groups.values(), key=lambda g: -g["count"])

    def to_json(self) -> dict[str, Any]:
        return {
            "matrix": {b: {a: {"status": self.status(b, a),
                               **self.counts.get((b, a), dict.fromkeys(_OUTCOMES, 0))}
                           for a in AREAS} for b in self.backends},
            "totals": {b: self.totals(b) for b in self.backends},
            "groups": self.groups(),
            "failures": self.failures,
            "unsupported": self.unsupported,
            "stale_patterns": list(self.stale.values()),
        }


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


def cause_of(failure: dict[str, str]) -> str:
    """A failure's root cause: its exception type and the shape of its message (the row's
    own names, quoted text, numbers and bracketed lists blanked), one line.

    Example:
        >>> cause_of({"id": "test_values.py::test_values_eager[mylib-sin]",
        ...           "exception": "AttributeError: module 'mylib' has no attribute 'sin'"})
        "AttributeError: module '…' has no attribute '…'"
        >>> cause_of({"id": "t.py::t[mylib-cos]",
        ...           "exception": "AssertionError: cos on mylib: shape (3,), expected (1, 3)"})
        'AssertionError: … on …: shape (…), expected (…)'
    """
    problem = failure.get("xfail_problem")
    if problem and not failure.get("exception"):
        return problem  # a listed test that passed: one cause, whatever its entry says
    text = failure.get("exception") or failure.get("message") or "unknown failure"
    text = text.splitlines()[0] if text.strip() else "unknown failure"
    params = failure.get("id", "").rpartition("[")[2].rstrip("]").split("-")
    names = {n for p in params if p for n in (p, p.partition("#")[0]) if len(n) > 1}
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.#]){re.escape(name)}(?![\w#])", "…", text)
    text = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], text)
    text = _NUMBER.sub("N", text)
    for _ in range(3):  # nested brackets, innermost first
        text = _BRACKETED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[-1], text)
    cause = " ".join(text.split())[:160]
    return f"{problem}: {cause}" if problem else cause


def render_markdown(matrix: Matrix, header: str) -> str:
    """The matrix, the failures grouped by cause, and every failure as a Markdown report.

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
        lines += ["", "## Unexpected failures by cause", ""]
        lines += [f"- {g['count']}x `{g['cause']}` ({', '.join(g['backends'])}), e.g. "
                  f"`{g['example']}`: {g['example_message']}" for g in matrix.groups()]
        lines += ["", "## Unexpected failures", ""]
        lines += [f"- `{f['id']}`: {f['message']}" for f in matrix.failures]
    if matrix.stale:
        lines += ["", "## Expected-failure patterns matching passing tests", ""]
        lines += [f"- {s['backend']}: `{s['pattern']}` ({s['passed']} passed, e.g. "
                  f"`{s['example']}`)" for s in matrix.stale.values()]
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


#: Column heads of the per-backend table (fits 80 columns with any area name).
_HEADS = ("area", "status", "passed", "xfail", "unsupp.", "failed")


def format_table(matrix: Matrix, backend: str) -> list[str]:
    """One backend's results as plain text, an area per line, at most 80 columns.

    Example:
        >>> m = Matrix()
        >>> m.add({"backend": "numpy", "area": "jit", "outcome": "passed"})
        >>> for line in format_table(m, "numpy")[:2]:
        ...     print(line)
        area        status       passed   xfail unsupp.  failed
        jit         passed            1       0       0       0
    """
    rows = [f"{_HEADS[0]:<11} {_HEADS[1]:<11} " + " ".join(f"{h:>7}" for h in _HEADS[2:])]
    for area in AREAS:
        cell = matrix.counts.get((backend, area))
        if not cell:
            continue
        counts = (cell["passed"], cell["xfail"], cell["unsupported"], cell["failed"])
        rows.append(f"{area:<11} {matrix.status(backend, area):<11} "
                    + " ".join(f"{n:>7}" for n in counts))
    total = matrix.totals(backend)
    rows.append(f"{'total':<11} {'':<11} " + " ".join(
        f"{total[k]:>7}" for k in ("passed", "xfail", "unsupported", "failed")))
    return rows


def _line(text: str, indent: str = "") -> str:
    """``text`` on one line of at most 80 columns after ``indent`` (cut with ``…``)."""
    text = indent + " ".join(text.splitlines())
    return text if len(text) <= 80 else text[:79] + "…"


def _print_results(matrix: Matrix, plain: bool, seconds: float) -> None:
    rich_console: Any = None
    if not plain and importlib.util.find_spec("rich") is not None:
        from rich.console import Console

        rich_console = Console(width=min(80, shutil.get_terminal_size().columns),
                               highlight=False)
    colours = {"passed": "green", "failed": "bold red", "xfail": "yellow",
               "unsupported": "dim"}
    for b in matrix.backends:
        lines = format_table(matrix, b)
        if rich_console is not None:
            from rich.markup import escape

            rich_console.print(f"[bold]{escape(b)}[/]")
            rich_console.print(f"[bold]{escape(lines[0])}[/]")
            for line, area in zip(lines[1:-1], [a for a in AREAS
                                                if (b, a) in matrix.counts], strict=True):
                status = matrix.status(b, area)
                rich_console.print(escape(line).replace(
                    status, f"[{colours.get(status, '')}]{status}[/]", 1))
            rich_console.print(escape(lines[-1]))
        else:
            print(b)
            print("\n".join(lines))
        total = matrix.totals(b)
        print(f"{b}: {total['passed']} passed, {total['xfail']} xfail, "
              f"{total['unsupported']} unsupported, {total['failed']} failed "
              f"in {seconds:.0f} s")
    for b, why in matrix.unsupported.items():
        print(_line(f"{b}: unsupported, e.g.: {why}", ""))
    groups = matrix.groups()
    if groups:
        print(f"\n{len(matrix.failures)} unexpected failure(s), {len(groups)} cause(s):")
        for g in groups:
            print(_line(f"{g['count']:>5}x {g['cause']}", ""))
            print(_line(f"e.g. {g['example']}", "        "))
            print(_line(f"{g['example_message']}", "        "))
    if matrix.stale:
        print("\nexpected-failure patterns that matched passing tests (narrow them):")
        for row in matrix.stale.values():
            print(_line(f"{row['passed']:>5} passed: {row['backend']}: {row['pattern']}", ""))
            print(_line(f"e.g. {row['example']}", "        "))


class CheckError(Exception):
    """A problem ``unijax check`` reports in one line (exit status 2)."""


def _validate_backends(names: Sequence[str]) -> None:
    installed = _get().installed()
    unknown = [n for n in names if n not in installed and n != "all"]
    if unknown:
        raise CheckError(f"no installed unijax plugin provides backend "
                         f"{', '.join(map(repr, unknown))}; installed: "
                         f"{', '.join(installed)}. Install the backend's plugin (entry point "
                         f"group unijax.backends), or run `unijax info` to list them.")


def _validate_xfail(path: str) -> None:
    import tomllib

    try:
        tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise CheckError(f"--xfail {path}: cannot read it: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise CheckError(f"--xfail {path}: not valid TOML: {err}") from None


def _usage_error(output: str) -> str:
    """pytest's own error line (a usage error, a bad expected-failure file), if any."""
    for line in output.splitlines():
        if line.startswith(("ERROR:", "E   ")) or "UsageError" in line:
            return line.removeprefix("ERROR:").strip()
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "pytest stopped before running a test"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``unijax check``.

    Args:
        argv: The arguments after ``unijax check``.

    Returns:
        0 when every test passed or failed as expected; 2 on a usage error; otherwise
        pytest's exit status.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        return _main(args_list)
    except CheckError as err:
        print(f"unijax check: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unijax check: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"unijax check: error: {type(err).__name__}: {err} (run with --debug for the "
              f"traceback)", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unijax check",
        description="Run the unijax conformance suite on installed backends and show, per "
                    "backend and area, how many tests passed, failed as listed (xfail), "
                    "were unsupported or failed. Exits non-zero on any unexpected failure. "
                    'Needs pytest and hypothesis: pip install "unijax[check]".')
    parser.add_argument("backends", nargs="*", metavar="NAME",
                        help="backends to check (default: every installed backend)")
    parser.add_argument("--thorough", action="store_true",
                        help="many hypothesis examples and every derivative order "
                             "(default: the quick ci profile)")
    parser.add_argument("--report", action="append", default=[], metavar="FILE",
                        help="also write the results to FILE.json (every failure in full) "
                             "or FILE.md (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="worker processes (needs pytest-xdist)")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="only tests matching this pytest -k expression")
    parser.add_argument("--plain", action="store_true",
                        help="no colours or progress bar (the default when stdout is not a "
                             "terminal)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error of unijax check itself")
    parser.add_argument("--xfail", action="append", default=None, metavar="FILE",
                        help="a backend's own expected-failure list (repeatable): top-level "
                             "entries apply to the one backend named, [backend] tables to "
                             "that backend. With --standard: the official suite's list")
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
    official.add_argument("--base-results", default=None, metavar="FILE",
                          help="reuse the base results of an earlier --json FILE")
    return parser


def _needs_pytest() -> None:
    missing = [m for m in ("pytest", "hypothesis") if importlib.util.find_spec(m) is None]
    if missing:
        raise CheckError(f"unijax check needs {' and '.join(missing)}: "
                         'pip install "unijax[check]"')


def _main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.standard is None:
        for flag, value in (("--backend", args.backend), ("--json", args.json),
                            ("--base-results", args.base_results)):
            if value is not None:
                parser.error(f"{flag} goes with --standard PATH")
    else:
        if args.backends or args.report or args.thorough:
            parser.error("--standard runs the official suite: name its bases with "
                         "--backend, and write its results with --json")
        if args.max_examples < 1:
            parser.error("--max-examples must be at least 1")
        if args.xfail is not None and len(args.xfail) > 1:
            parser.error("--standard takes one --xfail FILE")
        _needs_pytest()
        return standard.run(args.standard, args.backend or ["numpy"],
                            max_examples=args.max_examples, json_file=args.json,
                            xfail_file=args.xfail[0] if args.xfail else None,
                            base_results=args.base_results, jobs=args.jobs,
                            keyword=args.keyword)
    for report in args.report:
        if Path(report).suffix not in (".json", ".md"):
            parser.error(f"--report {report}: the file must end in .json or .md")
    _needs_pytest()
    _validate_backends(args.backends)
    extra = ["-k", args.keyword] if args.keyword else []
    for path in args.xfail or ():
        _validate_xfail(path)
        extra += ["--unijax-xfail", str(Path(path).resolve())]
    plain = args.plain or not sys.stdout.isatty()
    profile = "thorough" if args.thorough else "ci"
    progress = _Progress(plain)
    started = time.perf_counter()
    try:
        code, matrix, output = run_suite(args.backends, profile=profile, jobs=args.jobs,
                                         extra=extra, on_event=progress)
    finally:
        progress.stop()
    seconds = time.perf_counter() - started
    if not matrix.counts:
        if code in (0, 5):  # 5: nothing collected (a -k that selects nothing)
            print("unijax check: no test ran (check -k and the backend names)")
            return 0 if code == 0 else 5
        raise CheckError(_usage_error(output))
    _print_results(matrix, plain, seconds)
    header = (f"unijax check ({profile} profile): "
              f"{'unexpected failures' if code else 'all as expected'}")
    for report in args.report:
        path = Path(report)
        if path.suffix == ".json":
            path.write_text(json.dumps({"profile": profile, "exitstatus": code,
                                        "seconds": round(seconds, 1),
                                        "backends": matrix.backends, **matrix.to_json()},
                                       indent=2) + "\n", encoding="utf-8")
        else:
            path.write_text(render_markdown(matrix, header), encoding="utf-8")
    print(header)
    offline = _offline_checks(args.backends)
    return int(code) if code else offline


def _offline_checks(names: Sequence[str]) -> int:
    """Backends installed but unable to compute here run their ``"offline_check"`` extra
    (CuPy without a GPU compiles its generated kernels): 0 if each passed."""
    status = 0
    for info in list_backends():
        backend = info.backend
        if (backend is None or (names and info.name not in names and "all" not in names)
                or backend.available or backend.unusable is None):
            continue
        check = backend.extras.get("offline_check")
        if check is not None:
            print(f"{info.name}: cannot compute here ({backend.unusable}); its offline check:")
            status = status or int(check())
    return status
