"""An add of messages without a language model, killed with SIGKILL after its messages were stored and
before its memories were all written. Before, the next start found the messages and no task: the
conversation kept turns whose memories never came (search never found them), and a retry stored the
turns twice. Now the messages are stored with an open task of the add's job, so the next start makes
the memories the add would have made, exactly those a completed add makes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2
import pytest

from memos_mcp.core.service import MemoryService
from tests.conftest import settings_for
from tests.durability.support import TIMEOUT, Server, catalog_rows

pytestmark = pytest.mark.usefixtures("clean_environment")

USER = "default"  # the server's user without keys on loopback
TURNS = 1500  # enough that writing their memories takes seconds after the messages are stored
COLOURS = ["red", "blue", "green", "amber", "violet", "grey"]
THINGS = ["kayak", "lantern", "violin", "teapot", "bicycle", "atlas", "compass"]
MESSAGES = [{"role": "user", "content": f"Note {i}: the {COLOURS[i % 6]} {THINGS[i % 7]} is kept in box {i * 7 % 997}."}
            for i in range(TURNS)]


def _count(data_dir: Path, sql: str) -> int:
    """One number from the catalog of a running server (its WAL lets a reader in), retried while busy."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return int(catalog_rows(data_dir, sql)[0][0])  # type: ignore[call-overload]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _texts(service: MemoryService, cube_id: str) -> list[str]:
    texts: list[str] = []
    for page in range(1, 50):
        found = service.list_memories(USER, cube_ids=[cube_id], page=page, size=200).memories
        texts += [m.memory for m in found]
        if len(found) < 200:
            return sorted(texts)
    raise AssertionError("more memories than expected")


def test_an_add_killed_after_its_messages_were_stored_is_finished_by_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data)
    answer: list[httpx2.Response | BaseException] = []

    def add() -> None:
        try:
            with httpx2.Client(timeout=120.0) as http:
                answer.append(http.post(f"{server.url}/product/add", json={"user_id": "default",
                                                                            "messages": MESSAGES}))
        except httpx2.HTTPError as exc:  # the kill cut it off
            answer.append(exc)

    adding = threading.Thread(target=add)
    try:
        adding.start()
        deadline = time.monotonic() + TIMEOUT
        while _count(data, "SELECT count(*) FROM messages") < TURNS:
            assert time.monotonic() < deadline and adding.is_alive(), "the messages were never stored"
            time.sleep(0.01)
        server.kill()  # the messages are stored; their memories are being written
    finally:
        server.kill()
        adding.join(timeout=TIMEOUT)
    assert answer and isinstance(answer[0], httpx2.HTTPError), "the add was answered before the kill"
    written = _count(data, "SELECT count(*) FROM history h WHERE event = 'ADD' "
                           "AND NOT EXISTS (SELECT 1 FROM pending_writes p WHERE p.history_seq = h.seq)")

    restarted = Server(data)  # its start resumes what the killed one left
    try:
        deadline = time.monotonic() + 2 * TIMEOUT
        while _count(data, "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')"):
            assert time.monotonic() < deadline, "the interrupted add was not finished"
            time.sleep(0.1)
    finally:
        restarted.kill()

    service = MemoryService.open(settings_for(data))
    try:
        control = service.create_cube(USER, "control", cube_id="control")
        service.add_memory(USER, cube_id=control.cube_id, messages=MESSAGES)
        default = next(c.cube_id for c in service.list_cubes(USER) if c.is_default)
        made = _texts(service, "control")
        assert written < len(made), "the kill came after every memory was written"
        assert _texts(service, default) == made
        assert len(service.catalog.recent_messages([default], "default", 2 * TURNS)) == TURNS
    finally:
        service.close()
