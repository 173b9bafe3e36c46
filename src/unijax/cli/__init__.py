"""The ``unijax`` command: ``unijax info``, and the subcommands other modules provide.

Each subcommand lives in its own module with ``main(argv) -> int`` and is imported only
when it runs, so ``unijax info`` stays fast and a missing optional dependency of one
subcommand never breaks another.

Example:
    >>> from unijax.cli import COMMANDS
    >>> COMMANDS["info"][0]
    'unijax.cli.info'
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "main"]

#: Subcommand -> (module, one-line help). Add a row to add a subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("unijax.cli.info", "installed backends, devices, capabilities, the selection"),
    "check": ("unijax.cli.check", "run a function on every installed backend and compare"),
    "bench": ("unijax.cli.bench", "time transforms on the installed backends"),
    "demo": ("unijax.cli.demo", "train a small model with unijax.grad on the active backend"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: row for name, row in COMMANDS.items()
            if importlib.util.find_spec(row[0]) is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``unijax`` command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success.

    Example:
        >>> main(["info", "--plain"])  # doctest: +ELLIPSIS
        unijax ...
        0
    """
    commands = _available()
    parser = argparse.ArgumentParser(
        prog="unijax", description="JAX-style transforms for Array API code on every backend.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in commands.items():
        # add_help=False: the subcommand's own parser prints its help.
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    module = importlib.import_module(commands[args.command][0])
    run: Callable[[Sequence[str]], int] = module.main
    return int(run(rest) or 0)
