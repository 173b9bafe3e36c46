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
  ``unijax_conformance/xfail/<backend>.toml`` (for third-party backends);
* ``--unijax-events FILE`` — one JSON line per finished test (used by ``unijax check``).

The fixture ``unijax_backend`` (a :class:`~unijax_conformance._support.BackendUnderTest`)
is available to any project's own tests too: a test that takes it runs once per selected
backend.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from unijax_conformance import _state
from unijax_conformance._xfail import ExpectedFailures

_NAMES = pytest.StashKey[list[str]]()
_XFAILS = pytest.StashKey[ExpectedFailures]()


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
        help="a TOML file of expected failures ('test id pattern' = 'reason') to add to "
             "the lists shipped with unijax_conformance")
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
    """The backend under test (skips, with the reason, when it cannot run here)."""
    from unijax_conformance._support import load_backend

    return load_backend(request.param)


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
        config.stash[_XFAILS] = ExpectedFailures.load(config.getoption("unijax_xfail"))
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
        reason = xfails.reason(backend, suite_id(item))
        if reason is not None:
            # Outside the sample too: a listed failure that starts passing must fail the
            # run in every profile, or stale entries would go unnoticed.
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
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
