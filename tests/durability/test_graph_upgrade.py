"""A graph file of the earlier format (provenance as JSON arrays) whose upgrade is killed part way
(SIGKILL) is either untouched or fully upgraded; the next open finishes it with every link kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
from tests.graph.test_sqlite_links import earlier_file

OPEN = """
import sys
from pathlib import Path
from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
print("opening", flush=True)
store = SqliteGraphStore(Path(sys.argv[1]))
store.open()
print("opened", flush=True)
"""


def test_an_upgrade_killed_part_way_is_finished_by_the_next_open_with_every_link_kept(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    alice = earlier_file(path, 200_000)
    for delay in (0.05, 0.3):
        process = subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline().strip() == "opening"
        time.sleep(delay)  # somewhere inside the upgrade, or after it: either must be safe
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()

    store = SqliteGraphStore(path)
    store.open()
    try:
        first, second = sorted(store.relations("c"), key=lambda r: r.id)
        assert first.memory_ids == alice and second.memory_ids == ["b1"]
        assert len(store.memories_for("c", ["Alice"])) == len(alice)
    finally:
        store.close()
