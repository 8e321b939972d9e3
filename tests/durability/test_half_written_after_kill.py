"""A replica killed with SIGKILL amid writes, on one PostgreSQL (catalog and pgvector): a memory whose
write it had begun and never acknowledged (its history still pending) must not be read through the
live replica, neither by id nor by search, since the live replicas roll it back later (every half
lease) and a caller would have seen a memory that then vanishes."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx2
import pytest

from tests.durability.fleet import Replica
from tests.durability.support import BASE_ENV
from tests.postgres import rows

pytestmark = pytest.mark.usefixtures("clean_environment")

WRITERS = 4
ROUNDS = 6  # kills, until one lands while a write's points are stored and its history pending
WRITE_SECONDS = 2.0


def _write_until(url: str, stop: threading.Event, sent: list[str]) -> None:
    with httpx2.Client(timeout=30.0) as http:
        while not stop.is_set():
            text = f"The rowing club {uuid.uuid4().hex[:12]} meets on Thursday."
            sent.append(text)
            try:
                http.post(f"{url}/v1/memories", json={"content": text})
            except httpx2.HTTPError:  # the kill cut this one off
                return


def test_a_write_a_killed_replica_never_acknowledged_is_not_read_through_the_live_replica(
        tmp_path: Path, postgres_url: str) -> None:
    env = BASE_ENV | {"DATABASE_URL": postgres_url, "MEMOS_VECTOR__BACKEND": "pgvector",
                      "MEMOS_GRAPH__ENABLED": "false"}
    killed, live = Replica(tmp_path / "killed", env), Replica(tmp_path / "live", env)
    killed.start()
    live.start()
    try:
        for _ in range(ROUNDS):
            stop, sent = threading.Event(), []
            writers = [threading.Thread(target=_write_until, args=(killed.url, stop, sent)) for _ in range(WRITERS)]
            for writer in writers:
                writer.start()
            time.sleep(WRITE_SECONDS)  # writes under way when the kill lands
            killed.kill()
            stop.set()
            for writer in writers:
                writer.join(timeout=60)
            # writes cut off after their points were stored (one cut before stores nothing readable)
            pending = rows(postgres_url, "SELECT p.memory_id, h.new_memory FROM pending_writes p "
                           "JOIN history h ON h.seq = p.history_seq JOIN vectors_memos v ON v.id::text = p.memory_id "
                           "WHERE p.event = 'ADD'")
            if pending:
                break
            killed.start()
        else:
            pytest.skip(f"no kill of {ROUNDS} landed between a write's points and its acknowledgement")
        with httpx2.Client(base_url=live.url, timeout=30.0) as http:
            for memory_id, text in pending:
                by_id = http.get(f"/v1/memories/{memory_id}")
                found = http.get("/v1/memories/search", params={"query": text, "limit": 5})
                assert found.status_code == 200, found.text
                assert (by_id.status_code, [m["id"] for m in found.json()["data"] if m["id"] == memory_id]) \
                    == (404, []), (memory_id, text, by_id.text)
    finally:
        killed.kill()
        live.stop()
