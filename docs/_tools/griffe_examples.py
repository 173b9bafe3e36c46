"""A griffe extension: docstrings written in the house style render as Markdown.

* ``Example:`` sections are read as ``Examples:``. griffe's Google parser knows only the
  plural; a singular ``Example:`` would become an admonition whose ``>>>`` lines render as
  plain Markdown text instead of code.
* Sphinx cross-reference roles (``:func:`unijax.jit```, ``:class:`~unijax.errors.X```),
  which read well in ``help()`` and editors, become code spans (``unijax.jit``, ``X``: a
  leading ``~`` keeps the last dotted part, as in Sphinx). Left alone they would show on the
  page as raw ``:func:`` text.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const|ref|doc):"
                   r"`(~?)([^`<]+?)(?:\s*<([^`>]+)>)?`")


def _code_span(match: re.Match[str]) -> str:
    short, text, target = match.group(1), match.group(2).strip(), match.group(3)
    if target is not None:  # :role:`title <target>`: the title is what the reader sees
        return f"`{text}`"
    return f"`{text.rsplit('.', 1)[-1] if short else text}`"


def markdown_docstring(text: str) -> str:
    """The docstring ``text`` with the two house-style rewrites above applied."""
    return _ROLE.sub(_code_span, _EXAMPLE.sub(r"\1Examples:", text))


class ExampleSections(Extension):
    """Rewrite every loaded docstring with :func:`markdown_docstring`."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
