"""``unijax info``: installed backends, versions, devices, capabilities and the selection.

Uses rich tables on a terminal when rich is installed (``pip install "unijax[cli]"``),
plain text otherwise: piped, redirected, without rich, or with ``--plain``.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from unijax.cli.output import rich_table, use_rich
from unijax.dispatch.config import config
from unijax.dispatch.plugins import PluginInfo, list_backends
from unijax.dispatch.selection import explain_backend

__all__ = ["collect", "main"]

_HEADERS = ("backend", "status", "version", "devices", "native transforms", "capabilities")


def _safe(fn: Any) -> str:
    try:
        return str(fn())
    except Exception as err:  # a broken library must not hide the other backends
        return f"error: {type(err).__name__}: {err}"


def _row(info: PluginInfo) -> tuple[str, ...]:
    b = info.backend
    if b is None:
        return (info.name, "not allowed" if not info.allowed else "broken", "", "", "",
                info.error or "")
    if not b.available:
        reason = b.unusable if all(importlib.util.find_spec(m) for m in b.requires) else None
        return (info.name, f"unavailable: {reason}" if reason else
                f"missing: {b.install_hint}", "", "", "", "")
    caps = b.capabilities
    flags = [name for name, on in (("forward AD", caps.forward_ad), ("reverse AD",
             caps.reverse_ad), ("x64", caps.x64), ("mutable", caps.mutable_arrays),
             ("compiler", caps.compiler or b.compiler is not None)) if on]
    version = _safe(b.version) if b.version is not None else "unknown"
    devices = _safe(lambda: ", ".join(str(d) for d in b.devices()))
    native = ", ".join(sorted(caps.native)) or "none (unijax engine)"
    note = b.extras.get("info")  # a backend's own line, e.g. which jit ran (torch)
    if note is not None:
        flags.append(_safe(note))
    return (info.name, "available", version, devices, native, ", ".join(flags))


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def collect() -> dict[str, Any]:
    """Everything ``unijax info`` shows, as plain data.

    Nothing here raises on a bad configuration (an invalid option, a malformed config
    file): the diagnostic tool reports it, under ``"problems"``, and shows the rest.

    Example:
        >>> data = collect()
        >>> [row[0] for row in data["backends"] if row[0] == "numpy"]
        ['numpy']
        >>> data["problems"]
        []
    """
    problems: list[str] = []

    def problem(err: Exception) -> str:
        text = _describe(err)
        if text not in problems:  # a broken config file fails every option the same way
            problems.append(text)
        return text

    try:
        selection = str(explain_backend())
    except Exception as err:  # reported, not raised: see the docstring
        selection = problem(err)
    options = []
    for opt in config.options():
        try:
            options.append((opt.name, repr(config.read(opt.name)),
                            config.source(opt.name)))
        except Exception as err:
            options.append((opt.name, "invalid", problem(err)))
    try:
        backends = [_row(info) for info in list_backends()]
    except Exception as err:  # the allow-list of plugins is an option too
        backends = []
        problem(err)

    return {
        "unijax": metadata.version("unijax"),
        "python": f"{platform.python_version()} ({sys.executable})",
        "backends": backends,
        "selection": selection,
        "options": options,
        "problems": problems,
    }


def _print_plain(data: dict[str, Any]) -> None:
    print(f"unijax {data['unijax']} on Python {data['python']}")
    print("\nBackends:")
    if not data["backends"]:
        print("  not listed: the configuration has a problem (see Problems)")
    for row in data["backends"]:
        print(f"  {row[0]}: {row[1]}")
        for header, value in zip(_HEADERS[2:], row[2:], strict=True):
            if value:
                print(f"      {header}: {value}")
    print(f"\nSelected: {data['selection']}")
    print("\nOptions:")
    for name, value, source in data["options"]:
        print(f"  {name} = {value}  ({source})")
    if data["problems"]:
        print("\nProblems:")
        for text in data["problems"]:
            print(f"  - {text}")


def _print_rich(data: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"unijax {data['unijax']} on Python {data['python']}", markup=False)
    caption = None if data["backends"] else (
        "not listed: the configuration has a problem (see Problems)")
    console.print(rich_table("Backends", _HEADERS, data["backends"], caption))
    console.print(f"Selected: {data['selection']}", markup=False)
    console.print(rich_table("Options", ("option", "value", "source"), data["options"]))
    if data["problems"]:
        console.print("Problems:", markup=False)
        for text in data["problems"]:
            console.print(f"  - {text}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report; returns 0, or 1 when it lists problems (a bad configuration).

    Example:
        >>> main(["--plain"])  # doctest: +ELLIPSIS
        unijax ...
        0
    """
    parser = argparse.ArgumentParser(prog="unijax info", description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="plain text, even with rich")
    args = parser.parse_args(argv)
    data = collect()
    if use_rich(plain=args.plain):
        _print_rich(data)
    else:
        _print_plain(data)
    return 1 if data["problems"] else 0
