"""A real ``memos-mcp serve`` subprocess on a data directory, and what a stopped one left on disk."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from memos_mcp.config import ALIASES
from tests.http.test_serve_cli import Served

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0
# Rate limiting off: the writers of these tests send far more than 100 requests a minute.
BASE_ENV = {"MEMOS_REST__RATE_LIMITS": "[]", "MEMOS_GRAPH__ENABLED": "true"}


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}
    return env | BASE_ENV | extra


class Server(Served):
    """``memos-mcp serve --port 0`` on ``data_dir`` with the durability tests' settings; ``kill`` is
    SIGKILL (the process gets no chance to flush or close anything), then the rest of its log."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        super().__init__(data_dir, **(BASE_ENV | env))

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.close()


def catalog_rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of a query on the catalog of a data directory no process has open."""
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
