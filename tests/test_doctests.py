"""Every docstring example in the package and the built-in plugins runs and is right.

Modules are imported by their canonical names (``doctest.testmod``), never collected by
path, so module state (config, plugin registry) exists once in the process.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import unijax

# Every module of every built-in plugin package (found by walking them, so a new module's
# examples run without a list to keep up to date).
_PLUGIN_PACKAGES = ["unijax_numpy", "unijax_jax", "unijax_autograd", "unijax_array_api_strict",
                    "unijax_cupy", "unijax_torch", "unijax_dask"]
PLUGINS = sorted(
    {name for name in _PLUGIN_PACKAGES if importlib.util.find_spec(name) is not None}
    | {m.name for name in _PLUGIN_PACKAGES if importlib.util.find_spec(name) is not None
       for m in pkgutil.walk_packages(importlib.import_module(name).__path__, f"{name}.")})
# ``__main__`` modules run the command line when imported: they hold no examples.
MODULES = sorted(
    {m.name for m in pkgutil.walk_packages(unijax.__path__, "unijax.")
     if not m.name.endswith(".__main__")} | {"unijax"}
) + PLUGINS


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_api_has_examples() -> None:
    finder = doctest.DocTestFinder()
    missing = [
        name for name in unijax.__all__
        if callable(getattr(unijax, name)) and not any(
            t.examples for t in finder.find(getattr(unijax, name), name))
    ]
    assert not missing, f"public functions without a docstring example: {missing}"
