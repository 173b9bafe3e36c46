"""A griffe extension: read the house style's ``Example:`` sections as ``Examples:``.

griffe's Google parser knows only the plural; a singular ``Example:`` would become an
admonition whose ``>>>`` lines render as plain Markdown text instead of code.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every loaded docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
