"""A pytest plugin writing one JSON line per finished conformance test (``--unijax-events``).

``unijax check`` reads the file while pytest runs (progress) and after it (the matrix).
Each test's outcome is one of ``passed``, ``failed`` (an unexpected failure, or an
expected failure that passed, or failed for another reason than its entry states),
``xfail`` (failed for the reason its expected-failure entry states) and
``unsupported`` (skipped: the backend is not available here, does not declare the
capability the test needs, or its namespace leaves out an optional extension). A failed
test's ``exception`` is ``Type: message`` in one line (what ``unijax check`` groups
failures by); ``stale_pattern`` names an expected-failure pattern that matched the test
although it passed; ``xfail_problem`` says why a listed test failed (it passed, or
failed for another reason than its entry states).

Example:
    >>> outcome_of({"setup": "passed", "call": "passed", "teardown": "passed"}, False)
    'passed'
    >>> outcome_of({"setup": "skipped"}, False)
    'unsupported'
    >>> outcome_of({"setup": "passed", "call": "skipped"}, True)
    'xfail'
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

import pytest

__all__ = ["EventWriter", "outcome_of"]


def outcome_of(phases: dict[str, str], wasxfail: bool) -> str:
    """The matrix outcome of one test from its phases' outcomes."""
    if "failed" in phases.values():
        return "failed"
    if "skipped" in phases.values():
        return "xfail" if wasxfail else "unsupported"
    return "passed"


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = getattr(report, "wasxfail", "") or report.longreprtext or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ") and line[1:].strip()]
    return (" | ".join(errors) if errors else lines[-1] if lines else "")[:500]


class EventWriter:
    """Collects each test's phase reports and writes its outcome when it finishes."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._phases: dict[str, dict[str, str]] = {}
        self._xfail: dict[str, bool] = {}
        self._messages: dict[str, str] = {}
        self._seconds: dict[str, float] = {}
        self._exceptions: dict[str, str] = {}
        self._stale: dict[str, str] = {}
        self._problems: dict[str, str] = {}

    def _write(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(event) + "\n")
            self._file.flush()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._write({"event": "collected", "count": len(session.items)})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Under xdist the controller collects nothing itself; every worker collects all.
        self._write({"event": "collected", "count": len(ids), "worker": str(node)})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        phases = self._phases.setdefault(report.nodeid, {})
        phases[report.when] = report.outcome
        self._seconds[report.nodeid] = self._seconds.get(report.nodeid, 0.0) + report.duration
        if hasattr(report, "wasxfail"):
            self._xfail[report.nodeid] = True
        if (report.failed or report.skipped) and report.nodeid not in self._messages:
            self._messages[report.nodeid] = _message(report)
        # Set by the suite's plugin (also on xdist workers: report attributes travel).
        if getattr(report, "unijax_exception", None) and report.failed:
            self._exceptions.setdefault(report.nodeid, report.unijax_exception)
        if getattr(report, "unijax_problem", None):
            self._problems[report.nodeid] = report.unijax_problem
        if getattr(report, "unijax_stale", None):
            self._stale[report.nodeid] = report.unijax_stale
        if report.when != "teardown":
            return
        props = dict(report.user_properties)
        self._phases.pop(report.nodeid)
        self._write({
            "event": "test",
            "nodeid": report.nodeid,
            "id": props.get("unijax_id", report.nodeid),
            "backend": props.get("unijax_backend", ""),
            "area": props.get("unijax_area", ""),
            "outcome": outcome_of(phases, self._xfail.pop(report.nodeid, False)),
            "message": self._messages.pop(report.nodeid, ""),
            "seconds": round(self._seconds.pop(report.nodeid, 0.0), 4),
            "exception": self._exceptions.pop(report.nodeid, ""),
            "stale_pattern": self._stale.pop(report.nodeid, ""),
            "xfail_problem": self._problems.pop(report.nodeid, ""),
        })

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write({"event": "finished", "exitstatus": int(exitstatus)})
        self._file.close()
