"""Two real ``memos-mcp serve`` processes on one PostgreSQL catalog (each with its own data directory
and vector store, as replicas are in this stage): the same text added to one cube through both at the
same moment is stored as one memory, whichever process wins; both answers name it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from memos_mcp.core.stores.catalog_db import database_url
from tests.durability.support import TIMEOUT, Server

pytestmark = pytest.mark.usefixtures("clean_environment")

ROUNDS = 8


def add_at_once(urls: list[str], text: str) -> list[dict[str, Any]]:
    """POST the same add to every server, released together by a barrier; each answer's first item."""
    barrier = threading.Barrier(len(urls))
    answers: list[Any] = [None] * len(urls)

    def send(index: int) -> None:
        with httpx2.Client(base_url=urls[index], timeout=TIMEOUT) as http:
            barrier.wait(timeout=TIMEOUT)
            answers[index] = http.post("/v1/memories", json={"content": text})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    for answer in answers:
        assert answer is not None and answer.status_code == 201, answer and answer.text
    return [a.json()["data"][0] for a in answers]


def test_two_processes_adding_the_same_text_at_the_same_moment_store_one_memory(
        tmp_path: Path, postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "MEMOS_GRAPH__ENABLED": "false"}
    first = Server(tmp_path / "one", **env)
    try:
        second = Server(tmp_path / "two", **env)
        try:
            for n in range(ROUNDS):
                text = f"The spare key number {n} hangs behind the kitchen door."
                answers = add_at_once([first.url, second.url], text)
                assert len({a["id"] for a in answers}) == 1, answers  # both name one memory
                assert sorted(a["event"] for a in answers) == ["ADD", "NONE"], answers
        finally:
            second.close()
    finally:
        first.close()
    engine = sa.create_engine(database_url(postgres_url))
    try:
        with engine.connect() as conn:
            added = conn.execute(sa.text("SELECT new_memory, count(*) FROM history WHERE event = 'ADD' "
                                         "GROUP BY new_memory")).all()
            keys = conn.execute(sa.text("SELECT count(*) FROM memory_keys")).scalar()
            pending = conn.execute(sa.text("SELECT count(*) FROM pending_writes")).scalar()
    finally:
        engine.dispose()
    assert len(added) == ROUNDS and all(count == 1 for _, count in added), added
    assert (keys, pending) == (ROUNDS, 0)
