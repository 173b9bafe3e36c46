"""The package's layers: the import contracts hold and no import cycle exists anywhere.

``lint-imports`` checks the contracts in ``pyproject.toml`` (the layers, the engine kept
apart from dispatch, plugins on the public surface). The cycle check covers every import
statement, including those written inside functions, across unijax, the built-in plugins
and the conformance suite. A function-level import of first-party code is allowed only
where it defers loading an optional library (a plugin's namespace or native transforms)
or keeps the pytest plugin light; everywhere else it could only be hiding a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("unijax", "unijax_numpy", "unijax_jax", "unijax_autograd", "unijax_cupy",
            "unijax_array_api_strict", "unijax_torch", "unijax_dask", "unijax_conformance")
SOURCE_DIRS = (ROOT / "src", ROOT / "plugins", ROOT / "conformance")

# (module, function) pairs whose first-party imports defer an optional library.
DEFERRED = {
    ("unijax_autograd", "_load_namespace"),  # autograd, via the namespace module
    ("unijax_autograd", "_load_native"),  # autograd, via the transforms and custom rules
    ("unijax_cupy", "_compile"),  # the kernel generator, needed only once CuPy runs
    ("unijax_cupy", "_compile_check"),  # the generator and the compile check, for `check`
    ("unijax_torch", "_load_native"),  # torch, via torch.func's transforms and custom rules
    ("unijax_torch", "_scope"),  # torch, via the guard's TorchFunctionMode
}
# pytest imports its plugin in every session of the environment: unijax loads on use.
LIGHT_MODULES = {"unijax_conformance.plugin"}


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def _module_name(path: Path) -> str:
    for base in SOURCE_DIRS:
        if base in path.parents:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    raise AssertionError(path)


def _first_party(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in PACKAGES


def test_import_contracts_hold(capsys):
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert status == 0, report[-4000:]
    assert "0 broken" in report


def test_import_graph_has_no_cycle():
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in _strongly_connected(graph) if len(c) > 1] == [{"a", "b", "c"}]


def _function_level_imports() -> list[tuple[str, str, str]]:
    found = []
    for base in SOURCE_DIRS:
        for path in sorted(base.rglob("*.py")):
            module = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom):
                        names = ["." if node.level else node.module or ""]
                    else:
                        continue
                    for name in names:
                        if name == "." or _first_party(name):
                            found.append((module, fn.name, name))
    return found


def test_function_level_imports_only_defer_optional_libraries():
    hidden = [(module, fn, name) for module, fn, name in _function_level_imports()
              if (module, fn) not in DEFERRED and module not in LIGHT_MODULES]
    assert hidden == [], (
        "first-party imports inside functions (move them to the module top; if that makes "
        f"a cycle, the layering is wrong): {hidden}")


@pytest.mark.parametrize("needle", ["ElementwiseKernel", "ReductionKernel", "__global__",
                                    "import cupy"])
def test_core_holds_no_backend_kernel_source(needle):
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "src" / "unijax").rglob("*.py")
            if needle in p.read_text(encoding="utf-8")]
    assert hits == []
