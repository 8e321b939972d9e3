"""The REST mirror: one module per dialect, each defining ``DIALECT`` (a ``base.Dialect``), all
mounted into the same Starlette app as the MCP transports and all thin over the same core."""

from __future__ import annotations

import importlib
import pkgutil

from starlette.routing import BaseRoute

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.rest.base import Dialect, Guards


def dialects() -> list[Dialect]:
    """Every module of this package that defines ``DIALECT``, in name order."""
    found: list[Dialect] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        dialect = getattr(importlib.import_module(f"{__name__}.{module.name}"), "DIALECT", None)
        if isinstance(dialect, Dialect):
            found.append(dialect)
    return found


def rest_routes(service: MemoryService, keys: KeyRing, guards: Guards | None = None) -> list[BaseRoute]:
    return [route for dialect in dialects() for route in dialect.routes(service, keys, guards)]
