"""Make a backend plugin visible to a subprocess without installing it.

A directory holding ``<name>-<version>.dist-info/`` (``METADATA`` and ``entry_points.txt``)
and the plugin's modules is, for :mod:`importlib.metadata`, an installed distribution once
it is on ``sys.path``. Putting it on ``PYTHONPATH`` of a subprocess registers the plugin's
``unijax.backends`` entry points there — the same discovery path as ``pip install`` —
without touching the current environment. unijax's tests use this to run the suite against
deliberately broken backends and against the third-party example plugin.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> site = write_distribution(root, "demo-plugin", {"demo": "demo_module"},
    ...                           {"demo_module": "X = 1\\n"})
    >>> sorted(p.name for p in site.iterdir())
    ['demo_module.py', 'demo_plugin-0.1.dist-info']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["environment", "write_distribution"]


def write_distribution(root: Path, name: str, backends: Mapping[str, str],
                       modules: Mapping[str, str] = {}, version: str = "0.1") -> Path:
    """Write a distribution declaring ``backends`` (entry point name -> module) into ``root``.

    Args:
        root: The directory to write (it becomes a ``sys.path`` entry).
        name: The distribution's name.
        backends: ``unijax.backends`` entry points: backend name -> ``module[:object]``.
        modules: Python modules to write next to it: module name -> source.
        version: The distribution's version.

    Returns:
        ``root``.
    """
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = ["[unijax.backends]", *(f"{k} = {v}" for k, v in backends.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source, encoding="utf-8")
    return root


def environment(paths: Sequence[Path], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with ``paths`` first on ``PYTHONPATH``, and no
    ``UNIJAX_*`` variable (the subprocess must not inherit a backend choice)."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if not k.startswith("UNIJAX_")}
    parts = [str(p) for p in paths] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                       if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
