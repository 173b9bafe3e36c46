"""Expected failures: small TOML files of test id patterns, each with a checkable reason.

``xfail/<backend>.toml`` inside this package lists the known failures of a built-in
backend; ``--unijax-xfail FILE`` adds more (a third party's own list), and so does a
plugin's ``Backend.xfail_file``. A file has either top-level entries, which apply to the
backend the file is named after, or tables named by backend (``[mylib]``), which is how
other files name their backend. An entry's key is a test id relative to the suite
(``test_grad.py::test_grad_finite_differences[jax-sin]``) where ``*`` matches any text;
every other character, brackets included, is literal. Its value states why the row fails,
in words and in a form the suite checks:

* ``reason``: the explanation, for people;
* ``raises``: the exception class the row fails with (its name or ``module.Name``; any
  base class matches), or a list of them. A wrong value is ``"AssertionError"``;
* ``match``: a regular expression searched for in the failure's message, as raised or
  with its whitespace collapsed to single spaces, as reports print it (for wrong values,
  the kind of assertion: ``"Not equal to tolerance"``, ``"shape"``, ``"result dtypes"``).

At least one of ``raises`` and ``match`` is required. A listed row that fails for its
stated reason is reported ``xfail``; one that fails otherwise is a failure that prints the
stated reason and the actual one; an exact entry whose row passes is a failure (remove
the entry), and a pattern (with ``*``) that matches a passing row is reported, not
failed: patterns cover families of rows, some of which may pass.

Example:
    >>> failures = ExpectedFailures({"jax": {"test_jit.py::*[jax-sin]": Entry(
    ...     "test_jit.py::*[jax-sin]", "a reason", raises=("TypeError",))}})
    >>> entry = failures.entry("jax", "test_jit.py::test_jit_matches_eager[jax-sin]")
    >>> entry.reason, entry.exact
    ('a reason', False)
    >>> entry.explains(TypeError("x")), entry.explains(ValueError("x"))
    (True, False)
    >>> failures.entry("jax", "test_jit.py::test_jit_matches_eager[jax-s]") is None
    True
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["XFAIL_DIR", "Entry", "ExpectedFailures", "leaf_exceptions", "parse_entry"]

XFAIL_DIR = Path(__file__).resolve().parent / "xfail"

#: Classes every exception derives from: naming one alone states no reason.
_TOO_BROAD = frozenset({"Exception", "BaseException", "builtins.Exception",
                        "builtins.BaseException"})


@dataclass(frozen=True)
class Entry:
    """One expected failure: which rows, why, and how to recognise the failure.

    Attributes:
        pattern: The test id pattern (``*`` is the only wildcard).
        reason: Why the rows fail, in words.
        raises: Exception class names, any of which the failure may be.
        match: A regular expression the failure's message must contain.
        source: The file the entry comes from.
    """

    pattern: str
    reason: str
    raises: tuple[str, ...] = ()
    match: str | None = None
    source: str = ""

    @property
    def exact(self) -> bool:
        """Whether the entry names one row (no ``*``)."""
        return "*" not in self.pattern

    @property
    def checkable(self) -> bool:
        """Whether the entry states its failure in a form the suite checks."""
        return bool(self.raises) or self.match is not None

    def explains(self, error: BaseException) -> bool:
        """Whether ``error`` is the failure this entry states (every one of a group)."""
        if not self.checkable:
            return False
        return all(self._explains_one(e) for e in leaf_exceptions(error))

    def _explains_one(self, error: BaseException) -> bool:
        if self.raises:
            names = {n for c in type(error).__mro__
                     for n in (c.__name__, f"{c.__module__}.{c.__qualname__}")}
            if not names & set(self.raises):
                return False
        if self.match is None:
            return True
        # Reports print a message on one line: a regex copied from one matches too.
        text = str(error)
        return any(re.search(self.match, t) is not None for t in (text, " ".join(text.split())))

    def stated(self) -> str:
        """The stated failure in one line: ``raises TypeError matching 'x'``."""
        parts = []
        if self.raises:
            parts.append("raises " + " or ".join(self.raises))
        if self.match is not None:
            parts.append(f"message matching {self.match!r}")
        return " with ".join(parts) if parts else "nothing checkable"


def leaf_exceptions(error: BaseException) -> Iterator[BaseException]:
    """``error``, or every exception inside it when it is a group (hypothesis raises one
    when it finds several distinct failures)."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from leaf_exceptions(inner)
    else:
        yield error


def parse_entry(pattern: str, value: Any, source: str) -> Entry:
    """One entry from its TOML value (a table of ``reason``, ``raises``, ``match``).

    A bare string is read as a reason with nothing checkable: its rows then fail, saying
    how they failed, so that the entry can be completed.

    Raises:
        ValueError: The value is malformed (the message names the file and the entry).
    """
    where = f"{source}: entry {pattern!r}"
    if isinstance(value, str):
        value = {"reason": value}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a table {{ reason = ..., raises = ..., "
                         f"match = ... }}, got {type(value).__name__}")
    unknown = set(value) - {"reason", "raises", "match"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; the "
                         "fields are reason, raises and match")
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{where}: 'reason' must be a non-empty string saying why it fails")
    raises = value.get("raises", ())
    if isinstance(raises, str):
        raises = (raises,)
    if not isinstance(raises, list | tuple) or not all(isinstance(r, str) and r
                                                       for r in raises):
        raise ValueError(f"{where}: 'raises' must be an exception class name or a list "
                         "of them, e.g. raises = \"TypeError\"")
    match = value.get("match")
    if match is not None:
        if not isinstance(match, str):
            raise ValueError(f"{where}: 'match' must be a regular expression (a string)")
        try:
            re.compile(match)
        except re.error as err:
            raise ValueError(f"{where}: 'match' is not a regular expression: {err}") from err
    if set(raises) <= _TOO_BROAD and raises and match is None:
        raise ValueError(f"{where}: raises = {raises[0]!r} alone matches any failure; name "
                         "the exception's own class, or add match = \"...\"")
    return Entry(pattern, reason.strip(), tuple(raises), match, source)


def _is_entry(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and "reason" in value)


class ExpectedFailures:
    """Expected-failure entries per backend."""

    def __init__(self, table: dict[str, dict[str, Entry]]) -> None:
        self.table = table

    @classmethod
    def load(cls, extra_files: Iterable[str | Path] = (),
             backend_files: dict[str, str] | None = None,
             default_backend: str | None = None) -> ExpectedFailures:
        """Read the shipped lists, ``extra_files`` and each backend's own file.

        Args:
            extra_files: Files whose entries sit in ``[backend]`` tables.
            backend_files: Backend name -> the file its plugin ships
                (``Backend.xfail_file``): top-level entries apply to that backend.
            default_backend: The backend that top-level entries of ``extra_files`` apply
                to (None: such entries are an error).

        Raises:
            ValueError: A file cannot be read, is not valid TOML, or has a malformed entry.
        """
        table: dict[str, dict[str, Entry]] = {}
        for path in sorted(XFAIL_DIR.glob("*.toml")):
            if path.stem != "standard":  # the official suite's list (unijax check --standard)
                cls._merge(table, path, default_backend=path.stem)
        for name, own in (backend_files or {}).items():
            cls._merge(table, Path(own), default_backend=name)
        for extra in extra_files:
            cls._merge(table, Path(extra), default_backend=default_backend)
        return cls(table)

    @staticmethod
    def _merge(table: dict[str, dict[str, Entry]], path: Path,
               default_backend: str | None) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"unijax conformance: cannot read expected failures {path}: "
                             f"{err}") from err
        for key, value in data.items():
            if _is_entry(value):
                if default_backend is None:
                    raise ValueError(f"{path}: entry {key!r} is outside a [backend] table; "
                                     "put it under the backend's name, e.g. [mylib]")
                backend, entries = default_backend, {key: value}
            elif isinstance(value, dict):
                backend, entries = key, value
            else:
                raise ValueError(f"{path}: {key!r} is neither an entry (a table with a "
                                 "'reason') nor a [backend] table of entries")
            for pattern, spec in entries.items():
                table.setdefault(backend, {})[pattern] = parse_entry(pattern, spec, str(path))

    def entry(self, backend: str, test_id: str) -> Entry | None:
        """The entry listing ``test_id`` on ``backend`` (an exact one first), or None."""
        entries = self.table.get(backend, {})
        exact = entries.get(test_id)
        if exact is not None:
            return exact
        for pattern, entry in entries.items():
            if not entry.exact and _compile(pattern).fullmatch(test_id):
                return entry
        return None

    def reason(self, backend: str, test_id: str) -> str | None:
        """The reason ``test_id`` is expected to fail on ``backend``, or None."""
        entry = self.entry(backend, test_id)
        return None if entry is None else entry.reason


def _compile(pattern: str) -> re.Pattern[str]:
    """``*`` is the only wildcard: test ids are full of ``[`` and ``]``."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
