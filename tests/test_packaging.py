"""pyproject.toml against the code: every module memos_mcp imports is the standard library, memos_mcp
itself, or comes from a distribution the package declares (the bench extra's only under
memos_mcp/bench), so that no import works merely because another dependency happened to bring it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memos_mcp"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        names.add(normalise(match.group(0)))
    return names


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` (wherever they stand: lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found - set(sys.stdlib_module_names) - {"memos_mcp", "__future__"}


def distributions_of(module: str) -> set[str]:
    providers = metadata.packages_distributions().get(module)
    assert providers, f"no installed distribution provides the module {module!r}"
    return {normalise(name) for name in providers}


def test_every_imported_module_comes_from_a_declared_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = declared(project["dependencies"])
    bench = runtime | declared(project["optional-dependencies"]["bench"])
    undeclared: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        allowed = bench if path.is_relative_to(PACKAGE / "bench") else runtime
        for module in imported_modules(path):
            if not distributions_of(module) & allowed:
                undeclared[f"{path.relative_to(ROOT)}: {module}"] = ", ".join(sorted(distributions_of(module)))
    assert undeclared == {}, "imported but not declared in pyproject.toml (module: distribution)"


def test_the_check_sees_lazy_and_from_imports() -> None:
    modules = imported_modules(PACKAGE / "rest" / "openapi.py") | imported_modules(PACKAGE / "http.py")
    assert {"swagger_ui", "sse_starlette", "starlette"} <= modules
