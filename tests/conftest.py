"""Fixtures shared by the tests of configuration, plugins and backend selection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import unijax
from unijax.dispatch import options, plugins


@pytest.fixture
def clean_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No environment variable, config file or runtime setting leaks into or out of a
    test: each runs in an empty folder with unijax's options reset before and after."""
    for var in [opt.env for opt in unijax.config.options()] + [options.CONFIG_ENV]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    options._reset()
    yield
    options._reset()


@pytest.fixture
def clean_plugins(clean_config: None) -> Iterator[None]:
    """``clean_config``, and the plugin registry rebuilt before and after the test."""
    plugins._reset()
    yield
    plugins._reset()
