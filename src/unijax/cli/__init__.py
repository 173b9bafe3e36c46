"""The ``unijax`` command: ``unijax info``, and the subcommands other modules provide.

Each subcommand lives in its own module with ``main(argv) -> int`` and is imported only
when it runs, so ``unijax info`` stays fast and a missing optional dependency of one
subcommand never breaks another.

An error in a subcommand (a bad backend name, a malformed configuration file, a missing
optional library) prints one line, ``unijax demo: error: ...``, and exits with status 2;
``unijax --debug COMMAND`` shows the traceback instead.

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
from importlib import metadata

from unijax import __version__

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


def _version() -> str:
    try:
        return metadata.version("unijax")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return __version__


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    # unijax's own errors say what failed and how to fix it; a foreign one is named.
    return text if type(err).__module__.startswith("unijax") else f"{type(err).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``unijax`` command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 when the command failed with an error (printed as
        one line on standard error, or as a traceback with ``--debug``).

    Example:
        >>> main(["info", "--plain"])  # doctest: +ELLIPSIS
        unijax ...
        0
        >>> main(["demo", "--backend", "no-such-backend"])  # doctest: +ELLIPSIS
        2
    """
    commands = _available()
    parser = argparse.ArgumentParser(
        prog="unijax", description="JAX-style transforms for Array API code on every backend.")
    parser.add_argument("--version", action="version", version=f"unijax {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when a command fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in commands.items():
        # add_help=False: the subcommand's own parser prints its help.
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    module = importlib.import_module(commands[args.command][0])
    run: Callable[[Sequence[str]], int] = module.main
    try:
        return int(run(rest) or 0)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as err:
        if args.debug:
            raise
        print(f"unijax {args.command}: error: {_one_line(err)}\n"
              "(run `unijax --debug ...` for the traceback)", file=sys.stderr)
        return 2
