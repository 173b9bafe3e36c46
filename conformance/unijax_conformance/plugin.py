"""The pytest plugin behind ``pytest --pyargs unijax_conformance``.

pytest loads this module in every run where unijax is installed (entry point ``pytest11``),
so it stays light: it imports no array library, not even unijax, until a test asks for the
``unijax_backend`` fixture. It adds

* ``--unijax-backend NAME`` (repeatable, comma separated, or ``all``; default: every
  installed backend) — the backends the suite's tests are parametrized over. A backend
  whose library is missing, or that reports no usable device, is *skipped* with the
  reason (the install hint, the device error);
* ``--unijax-profile ci|thorough`` — how many hypothesis examples each check draws, and
  on how many rows a backend's native transforms are checked (the ci profile samples
  them and reports the rest as skipped, with the reason; rows listed as expected
  failures always run, so that a stale entry fails the run);
* ``--unijax-xfail FILE`` (repeatable) — extra expected-failure lists, in the format of
  ``unijax_conformance/xfail/<backend>.toml`` (for third-party backends; a plugin can
  also ship one as ``Backend.xfail_file``). Each listed row must fail for the reason its
  entry states (``raises``, ``match``): one that fails otherwise is a failure printing
  both (see ``_xfail``);
* ``--unijax-events FILE`` — one JSON line per finished test (used by ``unijax check``).

The fixture ``unijax_backend`` (a :class:`~unijax_conformance._support.BackendUnderTest`)
is available to any project's own tests too: a test that takes it runs once per selected
backend.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from unijax_conformance import _state
from unijax_conformance._xfail import Entry, ExpectedFailures, leaf_exceptions

_NAMES = pytest.StashKey[list[str]]()
_XFAILS = pytest.StashKey[ExpectedFailures]()
_ENTRY = pytest.StashKey[Entry]()
_STALE = pytest.StashKey[dict[str, list[str]]]()
#: The session's config, for hooks that pytest calls without it.
_CONFIG: list[pytest.Config] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unijax", "unijax conformance suite")
    group.addoption(
        "--unijax-backend", action="append", default=[], metavar="NAME",
        help="backend(s) to run the unijax conformance suite on: repeat the option, "
             "separate names by commas, or pass 'all' (default: every installed backend)")
    group.addoption(
        "--unijax-profile", choices=tuple(_state.PROFILES), default=None,
        help="hypothesis profile of the conformance suite: 'ci' (few examples, "
             "derandomized) or 'thorough' (many); default ci, or $UNIJAX_CONFORMANCE_PROFILE")
    group.addoption(
        "--unijax-xfail", action="append", default=[], metavar="FILE",
        help="a TOML file of expected failures ('test id pattern' = { reason = ..., "
             "raises = ..., match = ... }, in [backend] tables, or at the top level when "
             "one backend is checked) to add to the lists shipped with unijax_conformance "
             "and with the backends' plugins")
    group.addoption(
        "--unijax-events", default=None, metavar="FILE",
        help="write one JSON line per finished conformance test to FILE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "unijax_transform(name): the per-row test checks transform `name`; in "
                   "the ci profile it runs on a sample of rows where the backend runs `name` "
                   "natively (skipped, with the reason, on the others, unless listed as an "
                   "expected failure)")
    profile = (config.getoption("unijax_profile")
               or os.environ.get("UNIJAX_CONFORMANCE_PROFILE") or "ci")
    if profile not in _state.PROFILES:
        raise pytest.UsageError(
            f"UNIJAX_CONFORMANCE_PROFILE={profile!r} is not a profile; use one of "
            f"{', '.join(_state.PROFILES)}")
    _state.profile = profile
    _CONFIG[:] = [config]
    if _requested(config):
        selected_backends(config)  # a misspelt name is a usage error before collection
    events = config.getoption("unijax_events")
    if events and not hasattr(config, "workerinput"):  # xdist workers report to the controller
        from unijax_conformance._events import EventWriter

        config.pluginmanager.register(EventWriter(events), "unijax_conformance_events")


def _requested(config: pytest.Config) -> list[str]:
    names: list[str] = []
    for value in config.getoption("unijax_backend") or []:
        names.extend(n.strip() for n in value.split(",") if n.strip())
    return names


def selected_backends(config: pytest.Config) -> list[str]:
    """The backend names the suite runs on (validated once per session).

    Raises:
        pytest.UsageError: ``--unijax-backend`` names a backend no plugin provides.
    """
    if _NAMES in config.stash:
        return config.stash[_NAMES]
    from unijax.dispatch.plugins import _get

    installed = _get().installed()
    requested = _requested(config)
    if not requested or "all" in requested:
        names = installed
    else:
        unknown = [n for n in requested if n not in installed]
        if unknown:
            raise pytest.UsageError(
                f"--unijax-backend: no installed unijax plugin provides "
                f"{', '.join(map(repr, unknown))}; installed: {', '.join(installed)}. "
                f"Install the backend's plugin (its entry point group is unijax.backends).")
        names = list(dict.fromkeys(requested))
    config.stash[_NAMES] = names
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "unijax_backend" not in metafunc.fixturenames:
        return
    names = selected_backends(metafunc.config)
    metafunc.parametrize("unijax_backend", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def unijax_backend(request: pytest.FixtureRequest) -> Any:
    """The backend under test (skips, with the reason, when it cannot run here).

    Its tests run inside the backend's ``scope`` extra, the context unijax's own calls
    compute in (JAX: x64 for the float64 policy, as a user enables it), so that its
    namespace used directly computes as it does under unijax's calls.
    """
    from unijax_conformance._support import load_backend

    backend = load_backend(request.param)
    scope = backend.backend.extras.get("scope")
    with scope() if scope is not None else contextlib.nullcontext():
        yield backend


@pytest.fixture
def unijax_selected(unijax_backend: Any) -> Any:
    """The backend under test, selected with ``unijax.use_backend`` for the test."""
    import unijax

    with unijax.use_backend(unijax_backend.name):
        yield unijax_backend


def area_of(nodeid: str) -> str:
    """The matrix column of a test: ``test_<area>[_more].py`` gives ``<area>``.

    Example:
        >>> area_of("x/unijax_conformance/test_transforms_custom.py::test_a[numpy]")
        'transforms'
    """
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.removeprefix("test_").removesuffix(".py").split("_", 1)[0]


def suite_id(item: pytest.Item) -> str:
    """A test's id relative to the suite (what the xfail lists match), e.g.
    ``test_grad.py::test_grad_finite_differences[jax-sin]``; pytest's node id depends on
    the rootdir, which may be anywhere."""
    return f"{Path(item.path).name}::{item.name}"


_SUITE_DIR = Path(__file__).resolve().parent


def _in_suite(item: pytest.Item) -> bool:
    # By path: under --import-mode=importlib the module's name need not be the package's.
    return Path(item.path).resolve().parent == _SUITE_DIR


# Hypothesis's pytest plugin wraps a parametrized test's settings in a new settings object
# on every run (to relax one health check), so a test parametrized ~1000 times (rows x
# backends) ends up with a chain of ~1000 settings; looking up a `None` database (which
# seeded runs force) then walks the whole chain and overflows the stack. Restoring the
# original settings before each run keeps the chain at its original depth.
_SETTINGS: dict[Any, Any] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    original = _SETTINGS.get(fn)
    if original is not None:
        setattr(fn, "_hypothesis_internal_use_settings", original)  # noqa: B010
    missing = _missing_extension(item)
    if missing is not None:
        pytest.skip(missing)


#: The standard's optional extensions: a namespace may leave each out as a whole.
EXTENSIONS = ("linalg", "fft")


def _missing_extension(item: pytest.Item) -> str | None:
    """Why a per-row test of an optional extension is unsupported, or None when it runs.

    The standard lets a library leave out ``linalg`` and ``fft``; its own test suite
    skips their tests then, and so does this one (the row is ``unsupported``, not failed).
    An extension that is present is checked in full.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or not _in_suite(item):
        return None
    spec, backend = callspec.params.get("spec"), callspec.params.get("unijax_backend")
    extension, dot, _ = getattr(spec, "name", "").partition(".")
    if not dot or extension not in EXTENSIONS or not isinstance(backend, str):
        return None
    from unijax.dispatch.plugins import get_backend
    from unijax.errors import UnijaxError

    try:
        namespace = get_backend(backend).namespace
    except UnijaxError:
        return None  # the fixture skips, saying why the backend cannot run here
    if hasattr(namespace, extension):
        return None
    return (f"unsupported: {backend}'s namespace has no {extension!r} extension (optional "
            f"in the Array API standard), so {spec.name} cannot run on it")


def in_sample(row: str, backend: str, share: float) -> bool:
    """Whether a stable hash of row and backend puts the row in a sample of ``share``.

    Example:
        >>> in_sample("sin", "jax", 1.0), in_sample("sin", "jax", 0.0)
        (True, False)
    """
    return share >= 1 or zlib.crc32(f"{row}/{backend}".encode()) % 1000 < share * 1000


def _outside_sample(item: pytest.Item, backend: str) -> str | None:
    """Why a per-row test is left out of the profile's ``native_share`` (see ``_state``), or
    None when it runs."""
    marker = item.get_closest_marker("unijax_transform")
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("spec") if callspec is not None else None
    share = _state.PROFILES[_state.profile]["native_share"]
    if marker is None or spec is None or share >= 1:
        return None
    from unijax.dispatch.plugins import get_backend

    transform = marker.args[0]
    if transform not in get_backend(backend, require_available=False).capabilities.native:
        return None
    if in_sample(spec.name, backend, share):
        return None
    return (f"the {_state.profile} profile checks {backend}'s native {transform} on a "
            f"{share:.0%} sample of the rows, and this row is not in it; run with "
            f"--unijax-profile thorough (unijax check --thorough) to check every row")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = [item for item in items if _in_suite(item)]
    if not suite:
        return
    if _XFAILS not in config.stash:
        config.stash[_XFAILS] = _load_xfails(config)
    xfails = config.stash[_XFAILS]
    dropped = []
    for item in suite:
        fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        settings = getattr(fn, "_hypothesis_internal_use_settings", None)
        if settings is not None and fn not in _SETTINGS:
            _SETTINGS[fn] = settings
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("unijax_backend") if callspec else None
        if "unijax_backend" in getattr(item, "fixturenames", ()) and not isinstance(backend,
                                                                                   str):
            # No backend was selected at all: pytest's "empty parameter set" items carry
            # nothing to test.
            dropped.append(item)
            continue
        item.user_properties.append(("unijax_id", suite_id(item)))
        item.user_properties.append(("unijax_area", area_of(suite_id(item))))
        item.user_properties.append(("unijax_backend", backend or ""))
        if backend is None:
            continue
        entry = xfails.entry(backend, suite_id(item))
        if entry is not None:
            # Outside the sample too: a listed failure that starts passing, or that fails
            # for another reason, must be reported in every profile. The outcome is
            # decided in pytest_runtest_makereport, against the entry's stated reason.
            item.stash[_ENTRY] = entry
            continue
        outside = _outside_sample(item, backend)
        if outside is not None:
            # Skipped, not deselected: the summary and ``unijax check`` count what was
            # left out, and say why. A skip mark costs no fixture and no example.
            item.add_marker(pytest.mark.skip(reason=outside))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        dropped_ids = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in dropped_ids]


def _load_xfails(config: pytest.Config) -> ExpectedFailures:
    """The shipped lists, ``--unijax-xfail`` files, and the selected backends' own files."""
    from unijax.dispatch.plugins import get_backend

    own: dict[str, str] = {}
    for name in selected_backends(config):
        path = getattr(get_backend(name, require_available=False), "xfail_file", None)
        if path is not None:
            own[name] = str(path)
    names = selected_backends(config)
    try:
        # A backend's own file (top-level entries) applies to the one backend checked.
        return ExpectedFailures.load(config.getoption("unijax_xfail"), own,
                                     default_backend=names[0] if len(names) == 1 else None)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}" if text else type(error).__name__


def exception_summary(error: BaseException) -> str:
    """``Type: message`` of a failure, one line (the first of a group's failures)."""
    return _one_line(next(leaf_exceptions(error)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Any:
    """Judge a listed row against its entry; record every failure's exception.

    ``report.unijax_exception`` (``Type: message``) is what ``unijax check`` groups
    failures by; ``report.unijax_problem`` says what is wrong with a listed row's entry;
    ``report.unijax_stale`` names a pattern that matched a passing row.
    """
    report = yield
    if call.when != "call" or not _in_suite(item):
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    if error is not None and not isinstance(error, pytest.skip.Exception):
        report.unijax_exception = exception_summary(error)
    entry = item.stash.get(_ENTRY, None)
    if entry is None or isinstance(error, pytest.skip.Exception):
        return report
    where = f"{entry.source}: {entry.pattern!r}"
    if error is None:
        if entry.exact:
            report.outcome = "failed"
            report.longrepr = (f"[XPASS(strict)] listed as an expected failure ({where}: "
                               f"{entry.reason}), but it passed: remove the entry")
            report.unijax_problem = "a listed expected failure passed"
        else:
            report.unijax_stale = entry.pattern
        return report
    if entry.explains(error):
        report.outcome = "skipped"
        report.wasxfail = entry.reason
        return report
    actual = "\n".join(f"  {_one_line(e)}" for e in leaf_exceptions(error))
    if entry.checkable:
        head = (f"listed as an expected failure ({where}) that {entry.stated()}: "
                f"{entry.reason}\nbut it failed otherwise:\n{actual}")
        report.unijax_problem = "a listed expected failure failed for another reason"
    else:
        head = (f"the expected failure {where} states no checkable reason; add "
                f"raises = \"{type(next(leaf_exceptions(error))).__name__}\" and/or "
                f"match = \"...\" to it. The row failed with:\n{actual}")
        report.unijax_problem = "a listed expected failure states no raises or match"
    report.outcome = "failed"
    report.longrepr = f"{head}\n\n{report.longreprtext}"
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    stale = getattr(report, "unijax_stale", None)
    if stale is not None and _CONFIG:
        _CONFIG[0].stash.setdefault(_STALE, {}).setdefault(stale, []).append(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    stale = config.stash.get(_STALE, {})
    if not stale:
        return
    terminalreporter.section("unijax: xfail patterns matching passing rows")
    for pattern, nodeids in stale.items():
        terminalreporter.write_line(f"{pattern}: {len(nodeids)} row(s) passed, e.g. "
                                    f"{nodeids[0]}; narrow the pattern")

