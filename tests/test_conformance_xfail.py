"""Expected failures must fail for the reason they state; optional extensions are unsupported.

The suite runs (in a pytest subprocess, through :func:`unijax.cli.check.run_suite`) on a
backend registered through a real entry point: NumPy's namespace with ``cholesky`` and
``det`` giving wrong values (the kind of defect an entry stating another reason would
hide) and without the ``fft`` extension. Two runs of a handful of rows each keep the file cheap.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from unijax_conformance._sandbox import environment, write_distribution
from unijax_conformance._xfail import Entry, ExpectedFailures, parse_entry

from unijax.cli.check import Matrix, cause_of, run_suite

PLUGIN = textwrap.dedent('''
    import types
    from pathlib import Path

    from unijax.extend import Backend, Capabilities, hookimpl


    def _load():
        import array_api_compat.numpy as cnp

        xp = types.ModuleType("shifted_namespace")
        xp.__dict__.update({k: getattr(cnp, k) for k in dir(cnp)
                            if not k.startswith("__") and k != "fft"})
        xp.__array_api_version__ = cnp.__array_api_version__
        linalg = types.ModuleType("shifted_namespace.linalg")
        linalg.__dict__.update(vars(cnp.linalg))
        # Shifted by one: wrong for every input the suite draws.
        linalg.cholesky = lambda x, /, *, upper=False: cnp.linalg.cholesky(x, upper=upper) + 1
        linalg.det = lambda x, /: cnp.linalg.det(x) + 1
        xp.linalg = linalg
        return xp


    @hookimpl
    def unijax_backend():
        return Backend("shifted", ("numpy",), ("numpy",), "(test only)", _load,
                       capabilities=Capabilities(native=frozenset(), mutable_arrays=True),
                       devices=lambda: ("cpu",), XFAIL)
''')


def _row(name: str) -> str:
    return f"test_values.py::test_values_eager[shifted-{name}]"


def _entry(name: str, fields: str) -> str:
    return f'"{_row(name)}" = {fields}\n'


def _run(tmp_path: Path, xfail: str | None, keyword: str, shipped: str | None = None
         ) -> tuple[int, Matrix, str]:
    own = "" if shipped is None else f"xfail_file={str(tmp_path / 'own.toml')!r}"
    if shipped is not None:
        (tmp_path / "own.toml").write_text(shipped, encoding="utf-8")
    site = write_distribution(tmp_path / "site", "unijax-shifted",
                              {"shifted": "unijax_shifted"},
                              {"unijax_shifted": PLUGIN.replace("XFAIL", own)})
    extra = ["-k", keyword]
    if xfail is not None:
        (tmp_path / "x.toml").write_text(xfail, encoding="utf-8")
        extra += ["--unijax-xfail", str(tmp_path / "x.toml")]
    return run_suite(["shifted"], extra=extra, env=environment([site]))


STATED = '{ reason = "shifted", raises = "AssertionError", match = "Not equal to tolerance" }'


def test_expected_failures_are_checked_against_their_stated_reason(tmp_path: Path) -> None:
    listed = "[shifted]\n" + "".join([
        # Blames a refusal; the row gives wrong values: a failure printing both.
        _entry("linalg.cholesky",
               '{ reason = "refuses stacked matrices", raises = "ValueError" }'),
        # States the real failure: xfail.
        _entry("linalg.cholesky#upper", STATED),
        # Nothing checkable: a failure that shows the actual one.
        _entry("linalg.det", '"shifted"'),
        # A pattern matching passing rows: reported. An exact entry that passes: a failure.
        _entry("sin*", '{ reason = "r", raises = "TypeError" }'),
        _entry("cos", '{ reason = "r", raises = "TypeError" }'),
    ])
    code, matrix, output = _run(
        tmp_path, listed,
        "test_values_eager and (linalg.cholesky or linalg.det or sin or cos or fft.fft)")
    by_id = {f["id"]: f for f in matrix.failures}
    assert code != 0 and set(by_id) == {_row("linalg.cholesky"), _row("linalg.det"),
                                        _row("cos")}, output[-3000:]
    assert "raises ValueError" in output and "refuses stacked matrices" in output
    assert "but it failed otherwise" in output
    assert by_id[_row("linalg.cholesky")]["exception"].startswith("AssertionError")
    assert "another reason" in by_id[_row("linalg.cholesky")]["xfail_problem"]
    assert "states no checkable reason" in output and 'raises = "AssertionError"' in output
    assert "XPASS(strict)" in output
    totals = matrix.totals("shifted")
    assert totals["xfail"] == 1
    # An optional extension left out: unsupported, with the reason, not failed.
    assert totals["unsupported"] >= 1
    assert "no 'fft' extension (optional" in matrix.unsupported["shifted"]
    [stale] = matrix.stale.values()
    assert stale["pattern"] == _row("sin*") and stale["passed"] >= 2  # sin and sinh
    assert "xfail patterns matching passing rows" in output


def test_backend_shipped_and_top_level_xfail_files(tmp_path: Path) -> None:
    # The plugin's Backend.xfail_file lists cholesky; a backend's own file given on the
    # command line (top-level entries, one backend checked) lists det.
    code, matrix, output = _run(tmp_path, _entry("linalg.det", STATED),
                                "test_values_eager and (cholesky or det)",
                                shipped=_entry("linalg.cholesky", STATED))
    # cholesky#upper is listed nowhere: the one failure.
    assert [f["id"] for f in matrix.failures] == [_row("linalg.cholesky#upper")], output[-3000:]
    assert matrix.totals("shifted")["xfail"] == 2 and code != 0


def test_failures_group_by_cause() -> None:
    m = Matrix()
    for name in ("sin", "cos", "tan"):
        m.add({"backend": "b", "area": "values", "outcome": "failed",
               "id": f"test_values.py::test_values_eager[b-{name}]", "message": "",
               "exception": f"AttributeError: module 'b' has no attribute '{name}'"})
    m.add({"backend": "b", "area": "values", "outcome": "failed",
           "id": "test_values.py::test_values_eager[b-sum]", "message": "",
           "exception": "AssertionError: sum on b: shape (3,), expected ()"})
    groups = m.groups()
    assert [g["count"] for g in groups] == [3, 1]
    assert groups[0]["example"].endswith("[b-sin]")
    assert cause_of(m.failures[0]) == "AttributeError: module '…' has no attribute '…'"


@pytest.mark.parametrize(("value", "error"), [
    ({"reason": "r"}, None),
    ({"reason": "r", "raises": "Exception"}, "alone matches any failure"),
    ({"reason": "r", "raises": 3}, "exception class name"),
    ({"reason": "r", "match": "("}, "not a regular expression"),
    ({"reason": "r", "raise": "X"}, "unknown field"),
    ({"raises": "X"}, "non-empty string"),
])
def test_entries_are_validated(value: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert not parse_entry("p", value, "f.toml").checkable
    else:
        with pytest.raises(ValueError, match=error):
            parse_entry("p", value, "f.toml")


def test_entry_explains_every_failure_of_a_group() -> None:
    entry = Entry("p", "r", raises=("ValueError",), match="shape")
    assert entry.explains(ValueError("bad shape"))
    assert not entry.explains(ValueError("bad dtype"))
    assert not entry.explains(ExceptionGroup("two", [ValueError("shape"), TypeError("x")]))
    assert entry.explains(ExceptionGroup("two", [ValueError("shape"), ValueError("shape 2")]))
    # A regex copied from a report's one-line message matches the multi-line original.
    one_line = Entry("p", "r", raises=("ValueError",), match=r"2D\. Input shape: \(2, 4\)")
    assert one_line.explains(ValueError("Array must be 2D.\nInput shape: (2, 4)"))


def test_every_shipped_entry_states_a_checkable_reason() -> None:
    unchecked = [f"{e.source}: {e.pattern}" for entries in ExpectedFailures.load().table.values()
                 for e in entries.values() if not e.checkable]
    assert not unchecked, "entries without raises/match:\n" + "\n".join(unchecked)
