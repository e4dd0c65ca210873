"""The shape of the package: no import cycle, the data model at the bottom, the C
extension imported in one place."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tbexport"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tbexport modules ``name`` imports anywhere in it (functions and
    TYPE_CHECKING blocks included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != "tbexport"}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_module_takes_part_in_an_import_cycle() -> None:
    graph = _graph()
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path:  # each cycle once, from its least module
                walk(start, nxt, [*path, nxt])

    for module in graph:
        if module != "tbexport":
            walk(module, module, [module])
    assert cycles == []


def test_the_data_model_imports_nothing_of_tbexport() -> None:
    graph = _graph()
    assert graph["tbexport.model"] == set()
    assert graph["tbexport.values"] == set()


def test_the_c_extension_is_imported_at_run_time_in_one_module() -> None:
    """(``decode`` names its result type for mypy alone, under TYPE_CHECKING.)"""
    importers = []
    for name, path in sorted(_modules().items()):
        tree = ast.parse(path.read_text())
        checking = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        ]
        typing_only = {id(n) for block in checking for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
                names = [node.module or "", *(alias.name for alias in node.names)]
                if any(n.endswith("_codec") for n in names):
                    importers.append(name)
        assert "_fastscan" not in path.read_text(), path
    assert importers == ["tbexport.native"]
