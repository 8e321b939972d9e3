"""Two real ``memos-mcp serve`` processes on one PostgreSQL catalog with graph memory on: the graph is
in that database, and different memories naming the same people, added through both at the same
moment, make one relation whose provenance holds every one of them."""

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


def add_each_at_once(sends: list[tuple[str, str]]) -> list[str]:
    """POST each (server URL, text) add, released together by a barrier; the stored memories' ids."""
    barrier = threading.Barrier(len(sends))
    answers: list[Any] = [None] * len(sends)

    def send(index: int) -> None:
        url, text = sends[index]
        with httpx2.Client(base_url=url, timeout=TIMEOUT) as http:
            barrier.wait(timeout=TIMEOUT)
            answers[index] = http.post("/v1/memories", json={"content": text})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    for answer in answers:
        assert answer is not None and answer.status_code == 201, answer and answer.text
    return [str(a.json()["data"][0]["id"]) for a in answers]


def test_two_processes_linking_the_same_people_at_the_same_moment_store_one_relation(
        tmp_path: Path, postgres_url: str) -> None:
    first = Server(tmp_path / "one", DATABASE_URL=postgres_url)
    try:
        second = Server(tmp_path / "two", DATABASE_URL=postgres_url)
        try:
            ids: list[str] = []
            for n in range(ROUNDS):
                ids += add_each_at_once([(first.url, f"Alice met Bob at the market on day {n}."),
                                         (second.url, f"Alice met Bob at the harbour on day {n}.")])
        finally:
            second.close()
    finally:
        first.close()
    engine = sa.create_engine(database_url(postgres_url))
    try:
        with engine.connect() as conn:
            relations = conn.execute(sa.text("""SELECT id FROM graph_relations
                WHERE subject = 'alice' AND object = 'bob'""")).scalars().all()
            linked = conn.execute(sa.text("SELECT memory_id FROM graph_links WHERE relation_id = :id"),
                                  {"id": relations[0] if relations else ""}).scalars().all()
            entities = conn.execute(sa.text("SELECT key FROM graph_entities ORDER BY key")).scalars().all()
    finally:
        engine.dispose()
    assert len(set(ids)) == 2 * ROUNDS
    assert len(relations) == 1
    assert sorted(linked) == sorted(ids)
    assert entities.count("alice") == entities.count("bob") == 1
    assert not (tmp_path / "one" / "graph.sqlite3").exists() and not (tmp_path / "two" / "graph.sqlite3").exists()
