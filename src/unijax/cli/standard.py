"""``unijax check --standard PATH``: the official Array API test suite on the traced namespace.

The suite is `data-apis/array-api-tests <https://github.com/data-apis/array-api-tests>`_,
checked out at ``PATH`` with its ``array-api`` submodule (the spec's stubs). It runs in a
pytest subprocess, twice per base: once on the traced namespace over the base
(:mod:`unijax.cli.standard_namespace`), once on the base itself, with the same settings
(API version 2024.12, ``--max-examples``, derandomized examples, no deadline). A failure of
the traced namespace is *expected* only when the expected-failure list names it **and** the
base fails the same test: everything the traced namespace fails while its base passes is a
real failure, listed or not, and so is a failure shared with the base that the list does not
name (add it, with the reason).

This module is also the pytest plugin (``-p unijax.cli.standard``) that records each
test's outcome, one JSON line per test phase, in the file named by ``$UNIJAX_STANDARD_EVENTS``.

Example:
    >>> failures = ExpectedFailures({"array_api_tests/test_x.py::test_y[*]": "a reason"})
    >>> failures.reason("array_api_tests/test_x.py::test_y[float32]")
    'a reason'
    >>> traced = {"t::a": Outcome("failed", "boom"), "t::b": Outcome("failed", "bang"),
    ...           "t::c": Outcome("passed")}
    >>> base = {"t::a": Outcome("failed", "boom"), "t::b": Outcome("passed"),
    ...         "t::c": Outcome("passed")}
    >>> c = compare(traced, base, ExpectedFailures({"t::a": "the base's own bug"}))
    >>> [e["id"] for e in c.expected], [(u["id"], u["kind"]) for u in c.unexpected]
    (['t::a'], [('t::b', 'base passes')])
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "API_VERSION",
    "BASES",
    "Comparison",
    "ExpectedFailures",
    "Outcome",
    "compare",
    "default_xfail_file",
    "run",
    "run_suite",
    "suite_module",
]

#: The version of the standard the suite checks (and the traced namespace implements).
API_VERSION = "2024.12"
#: ``--backend`` choices: the importable module of each base namespace.
BASES: dict[str, str] = {"numpy": "array_api_compat.numpy",
                         "array_api_strict": "array_api_strict"}
#: The environment variable naming the file the plugin writes its events to.
EVENTS_VARIABLE = "UNIJAX_STANDARD_EVENTS"
_OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed")


# --- the plugin, inside the suite's pytest --------------------------------------------------

_plugin_state: dict[str, Any] = {}


def pytest_configure(config: Any) -> None:
    path = os.environ.get(EVENTS_VARIABLE)
    # xdist workers forward their reports to the controller, which writes them once.
    if path and not hasattr(config, "workerinput"):
        _plugin_state["out"] = open(path, "a", encoding="utf-8")


def pytest_unconfigure(config: Any) -> None:
    out = _plugin_state.pop("out", None)
    if out is not None:
        out.close()


def pytest_runtest_logreport(report: Any) -> None:
    out = _plugin_state.get("out")
    if out is None:
        return
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    message = ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
    elif report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[-1])
    out.write(json.dumps({"id": report.nodeid, "when": report.when, "outcome": outcome,
                          "message": message}) + "\n")
    out.flush()


# --- outcomes and the expected-failure list -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One test's outcome (``passed``, ``failed``, ``skipped``, ``xfailed``, ``xpassed``)
    and the first line of its error or skip reason."""

    outcome: str
    message: str = ""


def read_events(lines: Iterable[str]) -> dict[str, Outcome]:
    """Each test's outcome from the plugin's events: a failed phase fails the test."""
    tests: dict[str, Outcome] = {}
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        test_id, outcome, message = event["id"], event["outcome"], event["message"]
        before = tests.get(test_id)
        if before is not None and (before.outcome == "failed" or (
                outcome == "passed" and event["when"] != "call")):
            continue  # the first error stays; a passing setup or teardown changes nothing
        tests[test_id] = Outcome(outcome, _one_line(message))
    return tests


def _one_line(message: str, limit: int = 300) -> str:
    text = " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def counts(tests: Mapping[str, Outcome]) -> dict[str, int]:
    """How many tests ended in each outcome."""
    found = Counter(t.outcome for t in tests.values())
    return {name: found.get(name, 0) for name in _OUTCOMES}


def default_xfail_file() -> Path | None:
    """``unijax_conformance/xfail/standard.toml``, found without importing the package."""
    spec = importlib.util.find_spec("unijax_conformance")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent / "xfail" / "standard.toml"


class ExpectedFailures:
    """``"test id pattern" = "reason"`` entries; ``*`` is the only wildcard.

    A pattern is a test id as the suite prints it
    (``array_api_tests/test_signatures.py::test_func_signature[isdtype]``).
    """

    def __init__(self, entries: Mapping[str, str]) -> None:
        self.entries = dict(entries)
        self._compiled = {p: re.compile(".*".join(re.escape(part) for part in p.split("*")))
                          for p in self.entries}

    @classmethod
    def load(cls, path: Path | None) -> ExpectedFailures:
        """Read a TOML list (``None`` or a missing default file: no entries).

        Raises:
            ValueError: The file is not valid TOML, or an entry's reason is not a
                non-empty string.
        """
        if path is None:
            return cls({})
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"cannot read the expected failures {path}: {err}") from err
        for pattern, reason in data.items():
            if not isinstance(reason, str) or not reason.strip():
                raise ValueError(f"{path}: the reason for {pattern!r} must be a non-empty "
                                 "string saying why the base fails it")
        return cls(data)

    def pattern(self, test_id: str) -> str | None:
        """The first pattern matching ``test_id``, or None."""
        for pattern, compiled in self._compiled.items():
            if compiled.fullmatch(test_id):
                return pattern
        return None

    def reason(self, test_id: str) -> str | None:
        """The reason ``test_id`` is expected to fail, or None."""
        pattern = self.pattern(test_id)
        return None if pattern is None else self.entries[pattern]


@dataclasses.dataclass
class Comparison:
    """The traced namespace's results against its base's.

    ``expected``: failures listed and failed by the base too. ``unexpected``: the real
    failures, each with its ``kind`` (``base passes``, ``not listed`` — the base fails it
    too but the list does not name it — or ``skipped here`` — the base runs it).
    ``unused``: patterns that matched no failure here.
    """

    expected: list[dict[str, str]]
    unexpected: list[dict[str, str]]
    unused: list[str]


def compare(traced: Mapping[str, Outcome], base: Mapping[str, Outcome],
            xfails: ExpectedFailures) -> Comparison:
    """Sort the traced namespace's failures into expected and real ones."""
    expected: list[dict[str, str]] = []
    unexpected: list[dict[str, str]] = []
    used: set[str] = set()
    for test_id, result in traced.items():
        other = base.get(test_id, Outcome("absent"))
        row = {"id": test_id, "message": result.message, "base_outcome": other.outcome,
               "base_message": other.message}
        if result.outcome == "failed":
            pattern = xfails.pattern(test_id)
            if other.outcome != "failed":
                unexpected.append({**row, "kind": "base passes" if other.outcome == "passed"
                                   else f"base {other.outcome}"})
            elif pattern is None:
                unexpected.append({**row, "kind": "not listed"})
            else:
                used.add(pattern)
                expected.append({**row, "reason": xfails.entries[pattern]})
        elif result.outcome == "skipped" and other.outcome == "passed":
            unexpected.append({**row, "kind": "skipped here"})
    return Comparison(expected, unexpected, [p for p in xfails.entries if p not in used])


# --- running the suite ----------------------------------------------------------------------


def suite_module(base: str, traced: bool) -> str:
    """The ``ARRAY_API_TESTS_MODULE`` for ``base`` itself or its traced namespace.

    Example:
        >>> suite_module("array_api_strict", traced=False)
        'array_api_strict'
    """
    if not traced:
        return BASES.get(base, base)
    return ("exec('from unijax.cli.standard_namespace import namespace; "
            f'xp = namespace("{base}")\')')


def check_checkout(path: Path) -> str | None:
    """Why ``path`` is not a usable checkout of array-api-tests, or None."""
    if not (path / "array_api_tests" / "__init__.py").is_file():
        return f"{path} is not a checkout of data-apis/array-api-tests (no array_api_tests/)"
    if not (path / "array-api" / "src" / "array_api_stubs").is_dir():
        return (f"{path}/array-api has no src/array_api_stubs: fetch the spec submodule "
                "(git submodule update --init)")
    return None


def _commit(path: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def run_suite(path: Path, base: str, *, traced: bool, max_examples: int = 20,
              jobs: int = 1, extra: Sequence[str] = (),
              targets: Sequence[str] = ("array_api_tests",),
              env: Mapping[str, str] | None = None) -> tuple[int, dict[str, Outcome], str]:
    """Run array-api-tests from the checkout ``path`` on ``base`` or its traced namespace.

    ``targets`` are what pytest collects: the suite's folder, or test ids.

    Returns:
        ``(pytest's exit status, each test's outcome, pytest's output)``.
    """
    environment = dict(os.environ if env is None else env)
    environment.update({
        "ARRAY_API_TESTS_MODULE": suite_module(base, traced),
        "ARRAY_API_TESTS_VERSION": API_VERSION,
        "ARRAY_API_STRICT_API_VERSION": API_VERSION,
    })
    environment.pop("ARRAY_API_TESTS_SKIP_DTYPES", None)
    with tempfile.TemporaryDirectory(prefix="unijax-standard-") as tmp:
        events = Path(tmp) / "events.jsonl"
        events.touch()
        environment[EVENTS_VARIABLE] = str(events)
        cmd = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider",
               "-p", "no:unijax_conformance", "-p", "unijax.cli.standard",
               "-q", "--no-header", "-rN", "--tb=no", "--max-examples", str(max_examples),
               "--derandomize", "--disable-deadline"]
        if jobs > 1 and importlib.util.find_spec("xdist") is not None:
            cmd += ["-n", str(jobs)]
        cmd += list(extra)
        done = subprocess.run(cmd, cwd=path, env=environment, capture_output=True,
                              text=True, check=False)
        tests = read_events(events.read_text(encoding="utf-8").splitlines())
    return done.returncode, tests, done.stdout + done.stderr


def _label(base: str, traced: bool) -> str:
    return f"traced namespace over {base}" if traced else f"{base} itself"


def _count_line(tests: Mapping[str, Outcome]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts(tests).items() if n) or "no tests"


#: How many more times the base runs the tests that only the traced namespace failed.
RECHECKS = 4


def _recheck(path: Path, base: str, comparison: Comparison, tests: dict[str, Outcome],
             max_examples: int) -> dict[str, Outcome]:
    """The base's outcomes, where a test it passed but the traced namespace failed counts
    as failed when the base fails it in one of :data:`RECHECKS` more runs.

    Some tests of the suite draw their example outside Hypothesis's derandomized examples
    (the unary special cases use ``.example()``), so one run can pass a case that the base
    gets wrong when the draw hits it (``expm1(-0+0j)``).
    """
    tests = dict(tests)
    pending = [row["id"] for row in comparison.unexpected if row["kind"] == "base passes"]
    for _ in range(RECHECKS):
        if not pending:
            break
        _, again, _ = run_suite(path, base, traced=False, max_examples=max_examples,
                                targets=pending)
        for test_id, result in again.items():
            if result.outcome == "failed" and test_id in pending:
                tests[test_id] = Outcome("failed", f"{result.message} (on a repeated run)")
        pending = [t for t in pending if tests[t].outcome != "failed"]
    return tests


def _load_base_results(path: Path, max_examples: int) -> dict[str, dict[str, Outcome]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("api_version") != API_VERSION or data.get("max_examples") != max_examples:
        raise ValueError(f"{path}: its results are at API version {data.get('api_version')} "
                         f"with --max-examples {data.get('max_examples')}, not "
                         f"{API_VERSION} with {max_examples}")
    return {base: {k: Outcome(**v) for k, v in result["base"]["tests"].items()}
            for base, result in data.get("results", {}).items()}


def run(path: str | Path, backends: Sequence[str] = ("numpy",), *, max_examples: int = 20,
        json_file: str | Path | None = None, xfail_file: str | Path | None = None,
        base_results: str | Path | None = None, jobs: int = 1, keyword: str | None = None,
        out: Any = None) -> int:
    """Run the official suite on the traced namespace and the bases; print the comparison.

    Args:
        path: A checkout of array-api-tests with its ``array-api`` submodule.
        backends: Base names (keys of :data:`BASES`).
        max_examples: Hypothesis examples per test (the suite's ``--max-examples``).
        json_file: Also write every test's outcome and the comparison there.
        xfail_file: The expected-failure list (default: ``xfail/standard.toml`` of
            ``unijax_conformance``).
        base_results: A ``json_file`` of an earlier run whose base results to reuse
            (same API version and ``max_examples``) instead of running the bases again.
        jobs: Worker processes (pytest-xdist), when installed.
        keyword: Only tests matching this pytest ``-k`` expression.
        out: Where to print (default: standard output).

    Returns:
        0 when every failure of the traced namespace is expected, 1 when some is not, 2
        when the suite could not run.
    """
    out = sys.stdout if out is None else out
    checkout = Path(path).resolve()
    problem = check_checkout(checkout)
    if problem is not None:
        print(f"unijax check --standard: {problem}", file=sys.stderr)
        return 2
    xfail_path = Path(xfail_file) if xfail_file is not None else default_xfail_file()
    if xfail_path is not None and xfail_file is None and not xfail_path.is_file():
        xfail_path = None
    try:
        xfails = ExpectedFailures.load(xfail_path)
        reused = (_load_base_results(Path(base_results), max_examples)
                  if base_results is not None else {})
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"unijax check --standard: {err}", file=sys.stderr)
        return 2
    extra = ["-k", keyword] if keyword else []
    report: dict[str, Any] = {
        "suite": {"path": str(checkout), "commit": _commit(checkout),
                  "spec_commit": _commit(checkout / "array-api")},
        "api_version": API_VERSION, "max_examples": max_examples,
        "xfail_file": None if xfail_path is None else str(xfail_path), "results": {}}
    status = 0
    print(f"array-api-tests {report['suite']['commit'] or '(unknown commit)'} at "
          f"{checkout}, API version {API_VERSION}, --max-examples {max_examples}", file=out)
    for base in backends:
        runs: dict[str, dict[str, Outcome]] = {}
        for traced in (True, False):
            if not traced and base in reused:
                runs["base"] = reused[base]
                print(f"{_label(base, traced)}: {_count_line(runs['base'])} "
                      f"(from {base_results})", file=out, flush=True)
                continue
            code, tests, output = run_suite(checkout, base, traced=traced,
                                            max_examples=max_examples, jobs=jobs, extra=extra)
            if code not in (0, 1) or not tests:
                print(f"unijax check --standard: the suite did not run on "
                      f"{_label(base, traced)} (pytest exit status {code}):\n"
                      f"{output[-4000:]}", file=sys.stderr)
                return 2
            runs["traced" if traced else "base"] = tests
            print(f"{_label(base, traced)}: {_count_line(tests)}", file=out, flush=True)
        comparison = compare(runs["traced"], runs["base"], xfails)
        if base not in reused:
            runs["base"] = _recheck(checkout, base, comparison, runs["base"], max_examples)
            comparison = compare(runs["traced"], runs["base"], xfails)
        print(f"  expected failures (listed; {base} fails them too): "
              f"{len(comparison.expected)}", file=out)
        for row in comparison.unexpected:
            print(f"  FAILED ({row['kind']}) {row['id']}: {row['message']}", file=out)
        status = status or int(bool(comparison.unexpected))
        report["results"][base] = {
            **{kind: {"counts": counts(tests),
                      "tests": {k: dataclasses.asdict(v) for k, v in tests.items()}}
               for kind, tests in runs.items()},
            **dataclasses.asdict(comparison)}
    report["exitstatus"] = status
    if json_file is not None:
        Path(json_file).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("unexpected failures" if status else "all failures as expected", file=out)
    return status
