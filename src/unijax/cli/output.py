"""How the command line prints: rich tables on a terminal, plain text everywhere else.

Every subcommand asks :func:`use_rich` once. Rich is used only when it is installed, the
user did not ask for ``--plain``, and standard output is a terminal: piped or redirected
output (``unijax check numpy | cat``, a CI log) is plain text that no column width can
cut. Rich tables fold long cells onto more lines rather than end them with an ellipsis,
so they fit the terminal's width (80 columns included).

Example:
    >>> import io
    >>> use_rich(plain=True)
    False
    >>> print(plain_table(("name", "value"), [("a", "1"), ("long name", "22")]), end="")
    name       value
    a          1
    long name  22
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["plain_table", "rich_table", "use_rich"]


def use_rich(*, plain: bool = False, stream: TextIO | None = None) -> bool:
    """Whether to print with rich: installed, not ``plain``, and ``stream`` is a terminal.

    Args:
        plain: The user asked for plain text (``--plain``).
        stream: Where the output goes (default: ``sys.stdout``).

    Returns:
        True when rich tables should be printed.
    """
    if plain or importlib.util.find_spec("rich") is None or sys.modules.get("rich", 0) is None:
        return False
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded with spaces; nothing is cut, however long a cell is.

    Args:
        headers: The column titles.
        rows: The cells, one sequence per row, as many as ``headers``.
        indent: Put before every line.

    Returns:
        The table, one line per row after the header line, each ending in a newline.
    """
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    return "".join(indent + "  ".join(str(c).ljust(w) for c, w in
                                      zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in (headers, *rows))


def rich_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
               caption: str | None = None) -> Any:
    """A rich ``Table`` whose cells wrap (fold) instead of being cut with an ellipsis.

    Cells are rich ``Text``, never markup: labels such as ``grad [numpy]`` print as they are.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), caption=Text(caption) if caption else None,
                  title_justify="left")
    for header in headers:
        table.add_column(Text(header), overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table
