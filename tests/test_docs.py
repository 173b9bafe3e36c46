"""The documentation is tested: every code block runs, so the docs cannot rot.

Each page's fenced blocks are checked in order, by language:

* ``python`` blocks run (``exec``) in one namespace per page, and ``pycon`` blocks
  (``>>>`` sessions) run as doctests in that same namespace, in a fresh interpreter per
  page (so ``set_backend`` on one page cannot leak into another). A ``python`` block with
  ``title="name.py"`` is a file listing: it is compiled and saved as an importable module
  for the page's later blocks;
* ``bash`` blocks: every command must exist — ``unijax`` subcommands and their flags,
  scripts under the repository and their flags, ``pip install`` extras, ``UNIJAX_*``
  variables;
* ``toml`` blocks parse, and a ``[tool.unijax]`` table holds only valid options;
* ``json`` blocks parse; ``text`` and unlabelled blocks are output or diagrams, not code.

A block that cannot run here is preceded by ``<!-- docs-test: skip (the reason) -->``.
Run one page by hand with ``python tests/test_docs.py docs/index.md``.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import types
from pathlib import Path
from typing import Any

import unijax

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if not p.relative_to(DOCS).parts[0].startswith("_"))
LANGUAGES = {"python", "pycon", "bash", "toml", "json", "yaml", "text", ""}  # "": a diagram

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<why>[^)]+)\)\s*-->")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclasses.dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    title: str | None = None
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, with their skip markers."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i, pending_skip = [], 0, None
    while i < len(lines):
        skip = _SKIP.search(lines[i])
        if skip:
            pending_skip = skip["why"]
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip() and not skip:
                pending_skip = None
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        lang = info.split()[0] if info else ""
        title = _TITLE.search(info)
        found.append(Block(page, i + 1, lang, "\n".join(body) + "\n",
                           title["title"] if title else None, pending_skip))
        pending_skip, i = None, j + 1
    return found


# --- running python and pycon blocks (in a subprocess per page) ------------------------------


def run_page(page: Path) -> list[str]:
    """Run the python/pycon blocks of ``page`` here; return the failures."""
    import unijax  # noqa: F401  (import errors show up as such)

    failures: list[str] = []
    page_module = types.ModuleType("unijax_docs_page")  # a real module: dataclasses need one
    sys.modules[page_module.__name__] = page_module
    namespace: dict[str, Any] = page_module.__dict__
    modules = Path(tempfile.mkdtemp(prefix="unijax-docs-"))
    sys.path.insert(0, str(modules))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for block in blocks(page):
        if block.skip or block.lang not in ("python", "pycon"):
            continue
        if block.lang == "python" and block.title and block.title.endswith(".py"):
            try:
                compile(block.code, block.title, "exec")
            except SyntaxError as err:
                failures.append(f"{block.where}: {block.title} does not compile: {err}")
            (modules / Path(block.title).name).write_text(block.code, encoding="utf-8")
            continue
        if block.lang == "python":
            try:
                exec(compile(block.code, block.where, "exec"), namespace)
            except Exception as err:
                import traceback

                failures.append(f"{block.where}: python block raised\n"
                                + "".join(traceback.format_exception(err)))
                break  # later blocks depend on this one
            continue
        test = doctest.DocTestParser().get_doctest(block.code, namespace, block.where,
                                                   str(page), block.line)
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=False)
        namespace.update(test.globs)  # DocTest works on a copy; later blocks need its names
        if result.failed:
            failures.append(f"{block.where}: pycon block failed\n" + "".join(out))
    return failures


def _runnable(page: Path) -> bool:
    return any(b.lang in ("python", "pycon") and not b.skip for b in blocks(page))


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIJAX_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "examples"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _ids(pages: list[Path]) -> list[str]:
    return [str(p.relative_to(DOCS)) for p in pages]


# --- tests -----------------------------------------------------------------------------------

import pytest  # noqa: E402  (the runner above works without pytest)

RUNNABLE = [p for p in PAGES if _runnable(p)]


@pytest.mark.parametrize("page", RUNNABLE, ids=_ids(RUNNABLE))
def test_page_code_blocks_run(page: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, __file__, str(page)], capture_output=True,
                          text=True, cwd=tmp_path, env=_clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_page_blocks_have_known_languages(page: Path) -> None:
    for block in blocks(page):
        assert block.lang in LANGUAGES, (
            f"{block.where}: code block language {block.lang!r}; use one of "
            f"{sorted(LANGUAGES)} (teach tests/test_docs.py to check a new one)")


def _help(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True,
                          cwd=ROOT, env=_clean_env(), timeout=120)
    assert done.returncode == 0, f"{argv} --help failed: {done.stderr[-2000:]}"
    return done.stdout


def _check_flags(words: list[str], help_text: str, where: str) -> None:
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--"):
            assert flag in help_text, f"{where}: {flag} is not an option ({' '.join(words)})"


def _check_command(line: str, where: str, helps: dict[tuple[str, ...], str]) -> None:
    from unijax.cli import COMMANDS
    from unijax.dispatch import options as _config

    words = shlex.split(line, comments=True)
    env_vars = {opt.env for opt in unijax.config.options()} | {_config.CONFIG_ENV}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name = words.pop(0).split("=", 1)[0]
        assert not name.startswith("UNIJAX_") or name in env_vars, \
            f"{where}: {name} is not a unijax environment variable"
    if not words:
        return
    tool, args = words[0], words[1:]
    if tool == "unijax":
        assert args and args[0] in COMMANDS, f"{where}: no subcommand `unijax {args[:1]}`"
        if importlib.util.find_spec(COMMANDS[args[0]][0]) is None:
            return  # that subcommand is being written; its module is not installed yet
        key = ("-m", "unijax.cli", args[0])
        text = helps.setdefault(key, _help(list(key)))
        _check_flags(args[1:], text, where)
    elif tool == "python":
        assert args, f"{where}: `python` without arguments"
        if args[0] == "-m":
            assert importlib.util.find_spec(args[1]) is not None, f"{where}: no module {args[1]}"
            return
        script = ROOT / args[0]
        assert script.is_file(), f"{where}: {args[0]} does not exist in the repository"
        key = (str(script),)
        text = helps.setdefault(key, _help(list(key)))
        _check_flags(args[1:], text, where)
    elif tool == "pip":
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        extras = set(pyproject["project"]["optional-dependencies"])
        for word in args:
            # unijax has no package-index release: an install line must name a checkout.
            assert not re.fullmatch(r"unijax(\[[^\]]*\])?", word), (
                f"{where}: `pip install {word}` needs a release on a package index; install "
                "from a clone instead (`pip install \".[jax]\"`)")
            m = re.fullmatch(r"(?:\.|[\w.~/-]*/unijax)\[([^\]]+)\]", word)
            if m:
                unknown = set(m[1].split(",")) - extras
                assert not unknown, f"{where}: unknown extras {sorted(unknown)}"
    else:
        assert tool in ("pytest", "mkdocs", "cd", "git"), (
            f"{where}: unchecked command {tool!r}; teach tests/test_docs.py to check it")


def test_shell_commands_exist() -> None:
    helps: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for block in blocks(page):
            if block.lang != "bash" or block.skip:
                continue
            for offset, line in enumerate(block.code.splitlines(), start=1):
                line = line.strip().removeprefix("$ ")
                if line and not line.startswith("#"):
                    _check_command(line, f"{block.where}+{offset}", helps)


def test_toml_and_json_blocks_are_valid() -> None:
    import json


    options = {opt.name: opt for opt in unijax.config.options()}
    for page in PAGES:
        for block in blocks(page):
            if block.lang == "json" and not block.skip:
                json.loads(block.code)
            if block.lang != "toml" or block.skip:
                continue
            data = tomllib.loads(block.code)
            table = data.get("tool", {}).get("unijax", {})
            for key, value in table.items():
                name = key.replace("-", "_")
                assert name in options, f"{block.where}: unknown option {key!r}"
                options[name].validate(value)


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("unijax_docs_hooks",
                                                  DOCS / "_tools" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_error_class_has_an_entry() -> None:
    import inspect

    from unijax import errors

    classes = {name for name in errors.__all__ if inspect.isclass(getattr(errors, name))}
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `?(\w+)`?\s*$", text, flags=re.MULTILINE))
    assert classes - documented == set(), f"errors.md lacks entries for {classes - documented}"
    assert documented - classes == set(), f"errors.md documents unknown {documented - classes}"
    for name in classes:
        entry = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for part in ("**Causes.**", "**Message.**", "**Fix.**"):
            assert part in entry, f"errors.md entry {name} lacks {part}"
    tree = _hooks().error_tree()
    assert all(f"[`{name}`]" in tree for name in classes)


def test_configuration_reference_lists_every_option() -> None:

    assert "<!-- unijax:config-options -->" in (DOCS / "configuration.md").read_text()
    table = _hooks().config_table()
    for opt in unijax.config.options():
        assert f"| `{opt.name}` |" in table and f"`{opt.env}`" in table


def test_generated_assets_are_checked_in() -> None:
    import json

    report = json.loads((DOCS / "assets" / "benchmarks.json").read_text(encoding="utf-8"))
    assert report["targets"] and report["workloads"]
    assert (DOCS / "assets" / "benchmarks.png").stat().st_size > 1000
    assert "unijax" in (DOCS / "_snippets" / "conformance-matrix.md").read_text()
    assert "bench_summary" in dir(_hooks())


def test_conformance_matrix_summarises_events() -> None:
    spec = importlib.util.spec_from_file_location("gen_conformance",
                                                  DOCS / "_tools" / "gen_conformance.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    events = [{"event": "collected", "count": 4}] + [
        {"event": "test", "backend": b, "area": "grad", "outcome": o, "nodeid": "x"}
        for b, o in (("numpy", "passed"), ("numpy", "passed"), ("jax", "passed"),
                     ("jax", "xfail"), ("cupy", "unsupported"))]
    table = gen.summarise(events)
    assert "| area | cupy | jax | numpy |" in table
    assert "| grad | unsupported | 1/2 (1 xfail) | 2/2 |" in table


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason='mkdocs is not installed (pip install "unijax[docs]")')
@pytest.mark.skipif(importlib.util.find_spec("mkdocstrings") is None,
                    reason='mkdocstrings is not installed (pip install "unijax[docs]")')
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT,
                          env={**_clean_env(), "NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    site = tmp_path / "site"
    _assert_no_raw_roles(site)
    _assert_every_public_name_has_an_api_entry((site / "api" / "index.html").read_text())


#: A Sphinx role left in the rendered text (docstrings are Markdown on the site).
_RAW_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const|ref|doc):"
                       r"(?:`|&#x60;|<code>)")


def _assert_no_raw_roles(site: Path) -> None:
    found = [f"{page.relative_to(site)}: {m.group(0)}"
             for page in site.rglob("*.html") for m in _RAW_ROLE.finditer(page.read_text())]
    assert not found, f"raw Sphinx roles on the site: {found[:10]} ({len(found)} in all)"


def _assert_every_public_name_has_an_api_entry(api_html: str) -> None:
    """Each name in the public modules' ``__all__`` has an anchor on the API page, or is an
    alias of a name that has one and the page says so (``unijax.remat``)."""
    missing = []
    for module_name in ("unijax", "unijax.lax", "unijax.extend", "unijax.testing"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            qualified = f"{module_name}.{name}"
            if f'id="{qualified}"' in api_html:
                continue
            obj = getattr(module, name)
            documented_twin = any(
                getattr(module, other) is obj and f'id="{module_name}.{other}"' in api_html
                for other in module.__all__ if other != name)
            if not (documented_twin or isinstance(obj, types.ModuleType)) \
                    or f"<code>{qualified}</code>" not in api_html:
                missing.append(qualified)
    assert not missing, f"public names without an entry on docs/api.md: {missing}"


if __name__ == "__main__":
    problems = []
    for arg in sys.argv[1:]:
        problems += run_page(Path(arg).resolve())
    print("\n\n".join(problems) if problems else "ok")
    sys.exit(1 if problems else 0)


def test_expected_failure_lists_are_rendered_with_their_reasons() -> None:
    import tomllib

    from unijax_conformance._xfail import XFAIL_DIR, parse_entry

    text = _hooks().expected_failures()
    assert "<!-- unijax:expected-failures -->" in (DOCS / "conformance.md").read_text()
    for path in XFAIL_DIR.glob("*.toml"):
        assert f"### {path.stem}" in text
        for pattern, value in tomllib.loads(path.read_text(encoding="utf-8")).items():
            reason = parse_entry(pattern, value, path.name).reason
            assert f"`{pattern}`" in text and reason.replace("|", "\\|") in text
