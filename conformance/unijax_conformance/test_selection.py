"""Backend selection: the precedence rules, and isolation across threads and asyncio tasks.

Precedence, first match wins: ``backend=`` > ``use_backend`` > ``set_backend`` >
``UNIJAX_BACKEND`` > ``[tool.unijax]`` in the project's config file > the input arrays >
``"numpy"``. A choice made in one thread or task is invisible to the others, leaving a
context restores exactly the previous state, and using a backend (its namespace, its
native transforms) never changes the selection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace

import unijax
from unijax.dispatch.plugins import _get, get_backend
from unijax.errors import UnijaxError
from unijax.testing import to_numpy
from unijax_conformance._support import REFERENCE, BackendUnderTest, load_backend


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No environment variable, config file or set_backend chooses a backend."""
    before = unijax.explain_backend()
    for var in ("UNIJAX_BACKEND", "UNIJAX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    unijax.set_backend(None)
    unijax.config.reload()
    yield tmp_path
    monkeypatch.undo()
    unijax.set_backend(None)
    unijax.config.reload()
    if before.rule == "set_backend":
        unijax.set_backend(before.backend)


def _other(b: BackendUnderTest) -> str:
    """Another available backend: the reference, or for the reference the next one."""
    if b.name != REFERENCE:
        return REFERENCE

    for name in _get().installed():
        if name == b.name:
            continue
        try:
            get_backend(name)
            return name
        except UnijaxError:
            continue
    pytest.skip("precedence needs a second available backend to choose against")


def _square_sum(x: Any) -> Any:
    xp = array_namespace(x)
    return xp.sum(x * x)


def _rule(*args: Any, backend: str | None = None) -> tuple[str, str]:
    e = unijax.explain_backend(*args, backend=backend)
    return e.backend, e.rule


def test_selection_precedence(unijax_backend: BackendUnderTest, clean: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    b, other = unijax_backend, _other(unijax_backend)
    mine = b.asarray(np.ones(2))
    theirs = load_backend(other).asarray(np.ones(2))
    # default, then the input-arrays rule (for a backend recognised by its array types)
    assert _rule() == ("numpy", "default")
    owner = unijax.explain_backend(mine)
    if b.backend.owns_type(type(mine)) and owner.backend == b.name:
        assert owner.rule == "input_arrays"
    # the config file beats the input arrays
    (clean / "pyproject.toml").write_text(f'[tool.unijax]\nbackend = "{b.name}"\n')
    unijax.config.reload()
    assert _rule(theirs) == (b.name, "config_file")
    # the environment beats the config file
    (clean / "pyproject.toml").write_text(f'[tool.unijax]\nbackend = "{other}"\n')
    monkeypatch.setenv("UNIJAX_BACKEND", b.name)
    unijax.config.reload()
    assert _rule(theirs) == (b.name, "env")
    # set_backend beats the environment
    monkeypatch.setenv("UNIJAX_BACKEND", other)
    unijax.config.reload()
    unijax.set_backend(b.name)
    assert _rule(theirs) == (b.name, "set_backend")
    # use_backend beats set_backend; the argument beats use_backend
    unijax.set_backend(other)
    with unijax.use_backend(b.name):
        assert _rule(theirs) == (b.name, "context")
        assert unijax.current_backend() == b.name
        g = unijax.grad(_square_sum)(3.0)  # Python scalars: the context decides
        assert b.owns(g), f"grad under use_backend({b.name!r}) returned a {type(g).__name__}"
    with unijax.use_backend(other):
        assert _rule(theirs, backend=b.name) == (b.name, "argument")
        g = unijax.grad(_square_sum, backend=b.name)(3.0)
        assert b.owns(g), f"grad(backend={b.name!r}) returned a {type(g).__name__}"
    assert _rule() == (other, "set_backend")


def test_selection_isolated_across_threads(unijax_backend: BackendUnderTest,
                                           clean: Path) -> None:
    b, other = unijax_backend, _other(unijax_backend)
    both_inside = threading.Barrier(2, timeout=30)
    seen: dict[str, Any] = {}

    def worker(name: str) -> None:
        try:
            with unijax.use_backend(name):
                both_inside.wait()
                seen[name] = (unijax.current_backend(), unijax.grad(_square_sum)(2.0))
                both_inside.wait()
            seen[name + " after"] = unijax.current_backend()
        except BaseException as err:  # reported by the main thread
            seen[name] = err
            both_inside.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (b.name, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in (b.name, other):
        assert not isinstance(seen.get(name), BaseException), seen.get(name)
        current, g = seen[name]
        assert current == name, f"a thread inside use_backend({name!r}) saw {current!r}"
        assert float(np.asarray(to_numpy(g))) == 4.0
        assert seen[name + " after"] == "numpy", (
            f"after leaving use_backend({name!r}) the thread selects {seen[name + ' after']!r}")
    assert b.owns(seen[b.name][1])
    assert _rule() == ("numpy", "default"), "the threads' choices leaked into the main thread"


def test_selection_isolated_across_asyncio_tasks(unijax_backend: BackendUnderTest,
                                                 clean: Path) -> None:
    b, other = unijax_backend, _other(unijax_backend)

    async def task(name: str) -> list[str]:
        seen = []
        with unijax.use_backend(name):
            for _ in range(3):
                await asyncio.sleep(0)  # let the other task run inside its own context
                seen.append(unijax.current_backend())
                unijax.grad(_square_sum)(1.0)
        seen.append(unijax.current_backend())
        return seen

    async def main() -> list[list[str]]:
        return list(await asyncio.gather(task(b.name), task(other)))

    mine, theirs = asyncio.run(main())
    assert mine == [b.name] * 3 + ["numpy"], mine
    assert theirs == [other] * 3 + ["numpy"], theirs
    assert _rule() == ("numpy", "default")


def test_selection_restored_after_use(unijax_backend: BackendUnderTest, clean: Path) -> None:
    b = unijax_backend
    x = b.asarray(np.array([0.5, 1.5]))
    with unijax.use_backend(b.name):
        unijax.grad(_square_sum)(x)
        unijax.value_and_grad(_square_sum)(x)
        unijax.vmap(lambda v: v * 2.0)(x)
        unijax.jit(_square_sum)(x)
        unijax.jvp(lambda v: v * 2.0, (x,), (x,))
        unijax.vjp(lambda v: v * 2.0, x)
        with pytest.raises(ZeroDivisionError):
            with unijax.use_backend(REFERENCE):
                raise ZeroDivisionError
        assert unijax.current_backend() == b.name
    assert _rule() == ("numpy", "default"), (
        f"after using {b.name!r} the selection is {unijax.explain_backend()}")
    assert unijax.config.read("backend") is None
    seen: list[tuple[str, str]] = []
    t = threading.Thread(target=lambda: seen.append(_rule()))
    t.start()
    t.join(30)
    assert seen == [("numpy", "default")], f"a new thread sees {seen}"
