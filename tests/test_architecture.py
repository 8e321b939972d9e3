"""The package's import graph: no circles anywhere in ``memos_mcp`` (type-only and function-local
imports count: a circle a type checker or a late call walks is still a circle), and the core knows
no transport. The edges are read from the source with ``ast``, so nothing is imported to check."""

from __future__ import annotations

import ast
from pathlib import Path

import memos_mcp

PACKAGE = Path(memos_mcp.__file__).parent
TRANSPORTS = ("mcp", "starlette", "uvicorn", "memos_mcp.rest", "memos_mcp.mcp", "memos_mcp.http", "memos_mcp.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, wherever the import statement stands (top level, under
    ``TYPE_CHECKING``, inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from pkg import module``
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as the modules along it (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    circle = _circle(_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_check_finds_a_circle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circle(graph) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_relative_and_type_only_imports_are_edges(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from memos_mcp.core import service\n"
                      "def f():\n    from .models import Memory\n", encoding="utf-8")
    assert {"memos_mcp.core.service", "memos_mcp.core.models"} <= _imports("memos_mcp.core.m", module)


def test_the_core_imports_no_transport() -> None:
    graph = {name: _imports(name, path) for name, path in _modules().items() if name.startswith("memos_mcp.core")}
    leaks = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                   if any(target == t or target.startswith(t + ".") for t in TRANSPORTS))
    assert not leaks, leaks


ROOMS = ("memos_mcp.core.context", "memos_mcp.core.checks", "memos_mcp.core.directory", "memos_mcp.core.retrieval",
         "memos_mcp.core.conversations", "memos_mcp.core.chat", "memos_mcp.core.write")


def test_no_room_of_the_core_imports_the_service_that_composes_it() -> None:
    modules = _modules()
    leaks = sorted(name for name, path in modules.items()
                   if any(name == room or name.startswith(room + ".") for room in ROOMS)
                   and "memos_mcp.core.service" in _imports(name, path))
    assert not leaks, leaks


def test_no_rest_dialect_imports_another() -> None:
    modules = _modules()
    dialects = {name for name, path in modules.items()
                if name.startswith("memos_mcp.rest.") and "DIALECT = " in path.read_text(encoding="utf-8")}
    leaks = sorted(f"{name} imports {target}" for name in dialects for target in _imports(name, modules[name])
                   if target in dialects and target != name)
    assert not leaks, leaks
