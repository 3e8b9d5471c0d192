"""The core's modules import one another without a cycle, TYPE_CHECKING imports included.

Read from the source with ``ast`` (nothing is imported), so an import that
only type checkers follow counts too: a cycle there is still two modules
that each need to know the other. Some dependencies run one way only: the
stats know nothing of OpenTelemetry or of the telemetry that updates them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import taquba_memo

PACKAGE = "taquba_memo"
ROOT = Path(taquba_memo.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at any depth of its syntax tree."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from taquba_memo import compute` needs the module taquba_memo._compute;
                # `from taquba_memo import MemoStore` needs the package's __init__.
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    known = set(paths)
    return {name: imported_modules(path, known) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_core_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_graph_reader_sees_a_type_checking_import() -> None:
    graph = import_graph()
    assert "taquba_memo.backend" in graph["taquba_memo._compute"]


def top_level_imports(path: Path) -> set[str]:
    """The top-level package of every module ``path`` imports: ``opentelemetry``, ``os``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or "").split(".")[0])
    return found


def test_the_stats_import_neither_opentelemetry_nor_another_module_of_the_package() -> None:
    assert import_graph()["taquba_memo._stats"] == set()
    assert "opentelemetry" not in top_level_imports(ROOT / "_stats.py")


def test_the_telemetry_updates_the_stats() -> None:
    assert "taquba_memo._stats" in import_graph()["taquba_memo._telemetry"]
