"""Expected failures: small TOML files of ``"test id pattern" = "reason"``.

``xfail/<backend>.toml`` inside this package lists the known failures of a built-in
backend; ``--unijax-xfail FILE`` adds more (a third party's own list). A file has either
top-level entries, which apply to the backend the file is named after, or tables named by
backend (``[mylib]``), which is how ``--unijax-xfail`` files name their backend. A pattern
is a test id relative to the suite (``test_grad.py::test_grad_finite_differences[jax-sin]``)
where ``*`` matches any text; every other character, brackets included, is literal. Each
marked test runs as ``xfail(strict=True)``: an expected failure that starts passing fails
the run, so the lists stay honest.

Example:
    >>> failures = ExpectedFailures({"jax": {"test_jit.py::*[jax-sin]": "a reason"}})
    >>> failures.reason("jax", "test_jit.py::test_jit_matches_eager[jax-sin]")
    'a reason'
    >>> failures.reason("jax", "test_jit.py::test_jit_matches_eager[jax-s]") is None
    True
    >>> failures.reason("numpy", "test_jit.py::test_jit_matches_eager[numpy-sin]") is None
    True
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["XFAIL_DIR", "ExpectedFailures"]

XFAIL_DIR = Path(__file__).resolve().parent / "xfail"


class ExpectedFailures:
    """Expected-failure patterns per backend, with one reason each."""

    def __init__(self, table: dict[str, dict[str, str]]) -> None:
        self.table = table

    @classmethod
    def load(cls, extra_files: Iterable[str | Path] = ()) -> ExpectedFailures:
        """Read the shipped lists and ``extra_files``.

        Raises:
            ValueError: A file is not valid TOML, or an entry's reason is not a string.
        """
        table: dict[str, dict[str, str]] = {}
        for path in sorted(XFAIL_DIR.glob("*.toml")):
            cls._merge(table, path, default_backend=path.stem)
        for extra in extra_files:
            cls._merge(table, Path(extra), default_backend=None)
        return cls(table)

    @staticmethod
    def _merge(table: dict[str, dict[str, str]], path: Path,
               default_backend: str | None) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"unijax conformance: cannot read expected failures {path}: "
                             f"{err}") from err
        for key, value in data.items():
            if isinstance(value, dict):
                backend, entries = key, value
            elif default_backend is not None:
                backend, entries = default_backend, {key: value}
            else:
                raise ValueError(f"{path}: entry {key!r} is outside a [backend] table; "
                                 "put it under the backend's name, e.g. [mylib]")
            for pattern, reason in entries.items():
                if not isinstance(reason, str) or not reason.strip():
                    raise ValueError(f"{path}: the reason for {pattern!r} must be a "
                                     "non-empty string saying why it fails")
                table.setdefault(backend, {})[pattern] = reason

    def reason(self, backend: str, test_id: str) -> str | None:
        """The reason ``test_id`` is expected to fail on ``backend``, or None."""
        for pattern, reason in self.table.get(backend, {}).items():
            if _compile(pattern).fullmatch(test_id):
                return reason
        return None


def _compile(pattern: str) -> re.Pattern[str]:
    """``*`` is the only wildcard: test ids are full of ``[`` and ``]``."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
