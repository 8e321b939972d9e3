"""A real ``memos-mcp serve`` subprocess on a data directory, and what a stopped one left on disk."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2

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


def post_at_once(sends: Sequence[tuple[str, str, dict[str, Any]]]) -> list[httpx2.Response]:
    """POSTs each (base URL, path, JSON body), from a thread each released together by a barrier;
    the answers in the same order (AssertionError if any got none within ``TIMEOUT``)."""
    barrier = threading.Barrier(len(sends))
    answers: list[httpx2.Response | None] = [None] * len(sends)

    def send(index: int) -> None:
        url, path, body = sends[index]
        with httpx2.Client(base_url=url, timeout=TIMEOUT) as http:
            barrier.wait(timeout=TIMEOUT)
            answers[index] = http.post(path, json=body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    assert all(answers), answers
    return [a for a in answers if a is not None]


def catalog_rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of a query on the catalog of a data directory no process has open."""
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
