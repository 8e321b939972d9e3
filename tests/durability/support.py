"""A real ``memos-mcp serve`` subprocess on a data directory, and what a stopped one left on disk."""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from memos_mcp.config import ALIASES

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0
# Rate limiting off: the writers of these tests send far more than 100 requests a minute.
BASE_ENV = {"MEMOS_REST__RATE_LIMITS": "[]", "MEMOS_GRAPH__ENABLED": "true"}


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}
    return env | BASE_ENV | extra


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


class Server:
    """``memos-mcp serve --port 0`` on ``data_dir``; its stderr is read line by line. ``kill`` is SIGKILL
    (the process gets no chance to flush or close anything)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.process = subprocess.Popen([str(MEMOS), "--data-dir", str(data_dir), "serve", "--port", "0"],
                                        env=environment(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stderr is not None
        self.log: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.process.stderr, self.lines), daemon=True).start()
        try:
            port = self.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1)
        except BaseException:
            self.kill()
            raise
        self.url = f"http://127.0.0.1:{port}"

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            assert line, "memos-mcp serve ended:\n" + "".join(self.log)
            self.log.append(line)
            if found := re.search(pattern, line):
                return found

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL (if still running), then wait for the exit and the rest of the log."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        if self.process.stderr is not None and not self.process.stderr.closed:
            while (line := self.lines.get(timeout=TIMEOUT)) != "":
                self.log.append(line)
            self.process.stderr.close()


def catalog_rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of a query on the catalog of a data directory no process has open."""
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
