"""mkdocs hooks: pages that are generated from the code, so they cannot go stale.

* ``<!-- unijax:config-options -->`` becomes the table of ``unijax.config.options()``;
* ``<!-- unijax:error-tree -->`` becomes the class hierarchy of ``unijax.errors``;
* ``<!-- unijax:bench-summary -->`` becomes the targets table of the checked-in benchmark
  report ``docs/assets/benchmarks.json`` (written by ``unijax bench --json``);
* ``<!-- unijax:expected-failures -->`` becomes the built-in backends' expected-failure
  lists (``unijax_conformance/xfail/*.toml``), one table per backend with each reason.

The navigation lists pages other teams own (``backend-authors.md``, ``examples/*.md``):
``on_config`` adds every ``docs/examples/*.md`` under "Backend authors", and ``on_files``
adds a stand-in for a listed page that does not exist yet, so the site (and its links)
build while those pages are being written.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.unijax")


# --- navigation ------------------------------------------------------------------------------

_STUB = """# {title}

!!! note "Not written yet"
    This page is maintained by another part of the project and has not landed yet.
"""


def _nav_pages(entries: list[Any]) -> list[tuple[str, str]]:
    found = []
    for entry in entries:
        if isinstance(entry, dict):
            (title, value), = entry.items()
            if isinstance(value, list):
                found += _nav_pages(value)
            elif isinstance(value, str) and value.endswith(".md"):
                found.append((title, value))
    return found


def _add_examples(entries: list[Any], docs: Path) -> bool:
    pages = sorted((docs / "examples").glob("*.md")) if (docs / "examples").is_dir() else []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        (_, value), = entry.items()
        if isinstance(value, list):
            if any(isinstance(e, dict) and "backend-authors.md" in e.values() for e in value):
                for page in pages:
                    title = page.stem.replace("_", " ").replace("-", " ").capitalize()
                    value.append({f"Example: {title}": f"examples/{page.name}"})
                return True
            if _add_examples(value, docs):
                return True
    return False


def on_config(config: Any) -> Any:
    if config.get("nav"):
        _add_examples(config["nav"], Path(config["docs_dir"]))
    return config


def on_files(files: Any, config: Any) -> Any:
    """Stand-in pages for nav entries whose page has not been written yet."""
    from mkdocs.structure.files import File

    for title, uri in _nav_pages(config.get("nav") or []):
        if files.get_file_from_path(uri) is None:
            log.info("nav: docs/%s does not exist yet; using a stand-in page", uri)
            files.append(File.generated(config, uri, content=_STUB.format(title=title)))
    return files


# --- generated fragments ---------------------------------------------------------------------


def config_table() -> str:
    """Markdown table of every option of ``unijax.config``."""
    import unijax

    rows = ["| option | default | environment variable | `[tool.unijax]` key | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for opt in unijax.config.options():
        rows.append(f"| `{opt.name}` | `{opt.default!r}` | `{opt.env}` | `{opt.name}` | "
                    f"{opt.help} |")
    return "\n".join(rows)


def error_tree() -> str:
    """Nested Markdown list of the ``unijax.errors`` classes, with their builtin bases."""
    from unijax import errors

    classes = [getattr(errors, name) for name in errors.__all__
               if inspect.isclass(getattr(errors, name))]

    def children(parent: type) -> list[type]:
        return [c for c in classes if c.__bases__[0] is parent]

    def lines(cls: type, depth: int) -> list[str]:
        builtins = [b.__name__ for b in cls.__mro__[1:]
                    if b.__module__ == "builtins" and b not in (Exception, BaseException, object)]
        also = f" (also `{'`, `'.join(builtins)}`)" if builtins else ""
        out = [f"{'    ' * depth}- [`{cls.__name__}`](#{cls.__name__.lower()}){also}"]
        for child in children(cls):
            out += lines(child, depth + 1)
        return out

    return "\n".join(lines(errors.UnijaxError, 0))


def _fmt(kind: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    if kind == "overhead":
        return f"{value * 1e6:+.2f} µs"
    if kind == "speedup":
        return f"{value:.1f}x faster"
    return f"{value:.2f}x"


def bench_summary(docs: Path) -> str:
    """The targets of the checked-in benchmark report, as a Markdown table."""
    path = docs / "assets" / "benchmarks.json"
    if not path.exists():
        return "*No benchmark report is checked in yet; run the command above.*"
    report = json.loads(path.read_text(encoding="utf-8"))
    m = report["machine"]
    head = (f"Measured with unijax {m['unijax']}, Python {m['python']}, "
            f"{m['cpu_count']} CPUs ({m['processor']}), load average "
            f"{m.get('load_average')} at the start and {report.get('load_average_end')} at "
            f"the end, preset `{report['settings']['preset']}`"
            + "".join(f", `{k}={v}`" for k, v in (m.get("environment") or {}).items())
            + ". Library versions: "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".")
    rows = ["| target | measured (median of paired rounds) | goal | met |",
            "| --- | --- | --- | --- |"]
    for t in report["targets"]:
        goal = (">= " if t["kind"] == "speedup" else "<= ") + _fmt(t["kind"], t["threshold"])
        met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
        rows.append(f"| {t['description']} | {_fmt(t['kind'], t['value'])} | {goal} | {met} |")
    imp = report.get("import") or {}
    extra = ""
    if imp.get("wall_s") is not None:
        libs = ", ".join(imp["array_libraries_imported"]) or "none"
        extra = (f"\n\n`import unijax` takes {imp['wall_s'] * 1e3:.0f} ms of wall time over an "
                 f"empty interpreter ({(imp.get('importtime_s') or 0) * 1e3:.0f} ms by "
                 f"`-X importtime`) and imports these array libraries: {libs}.")
    return head + "\n\n" + "\n".join(rows) + extra


def expected_failures() -> str:
    """The suite's expected failures per built-in backend, as Markdown tables."""
    import tomllib

    from unijax_conformance._xfail import XFAIL_DIR, parse_entry

    sections = []
    for path in sorted(XFAIL_DIR.glob("*.toml")):
        entries = tomllib.loads(path.read_text(encoding="utf-8"))
        title = f"### {path.stem}\n\n"
        if not entries:
            sections.append(title + "No expected failures.")
            continue
        rows = ["| test id pattern | reason | fails with |", "| --- | --- | --- |"]
        for pattern, value in entries.items():
            entry = parse_entry(pattern, value, path.name)
            # A pipe would end the table cell.
            cell = entry.reason.replace("|", "\\|")
            stated = entry.stated().replace("|", "\\|") if entry.checkable else "-"
            rows.append(f"| `{pattern}` | {cell} | {stated} |")
        sections.append(title + "\n".join(rows))
    return "\n\n".join(sections)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"])
    replacements = {
        "<!-- unijax:config-options -->": config_table,
        "<!-- unijax:error-tree -->": error_tree,
        "<!-- unijax:bench-summary -->": lambda: bench_summary(docs),
        "<!-- unijax:expected-failures -->": expected_failures,
    }
    for marker, make in replacements.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
