"""The house rules, checked on the source: one import name, imports pointing one way, no import cycle
(function-level imports included), export using training's public surface only, files and functions a
reader can hold. A unit test: nothing is imported or trained."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnkeras"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80

pytestmark = pytest.mark.unit


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (a package's ``__init__`` for a package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Project modules ``module`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                       for a in node.names]
        else:
            continue
        found |= {t for t in map(_resolve, (t for t in targets if t.split(".")[0] == "cnnkeras")) if t}
    found.discard(module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_point_one_way():
    """common <- models <- training <- export; only the command (cnnkeras.main) sees every package."""
    def layer(m: str) -> str:
        if m in ("cnnkeras.errors", "cnnkeras._keras", "cnnkeras"):  # the base every layer stands on
            return "cnnkeras.common"
        for prefix in ("cnnkeras.common", "cnnkeras.training", "cnnkeras.export", "cnnkeras.search"):
            if m == prefix or m.startswith(prefix + "."):
                return prefix
        return "cnnkeras"

    rank = {"cnnkeras.common": 0, "cnnkeras": 1, "cnnkeras.training": 2, "cnnkeras.export": 3, "cnnkeras.search": 4}
    wrong = [(m, t) for m, targets in GRAPH.items() for t in targets
             if m != "cnnkeras.main" and rank[layer(t)] > rank[layer(m)]]
    assert wrong == []


def test_export_uses_training_through_its_public_surface():
    inner = [(m, t) for m, targets in GRAPH.items() if m.startswith("cnnkeras.export")
             for t in targets if t.startswith("cnnkeras.training.")]
    assert inner == []


def test_one_top_level_package():
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert tops == {"cnnkeras"}


def test_files_and_functions_a_reader_can_hold():
    long_files = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    long_functions = [f"{m}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
                      for m, p in MODULES.items() for node in ast.walk(ast.parse(p.read_text()))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long_files == {} and long_functions == []


def test_every_package_says_what_it_holds():
    undocumented = [m for m, p in MODULES.items() if p.name == "__init__.py" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert undocumented == []
