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


def test_replicas_starting_at_the_same_moment_on_a_new_database_all_start_with_one_root_and_one_user(
        tmp_path: Path, postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "MEMOS_GRAPH__ENABLED": "false"}
    barrier = threading.Barrier(3)
    servers: list[Server | BaseException] = []

    def start(index: int) -> None:
        barrier.wait(timeout=TIMEOUT)
        try:
            servers.append(Server(tmp_path / f"replica-{index}", **env))
        except BaseException as exc:  # reported below with the others
            servers.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    try:
        assert len(servers) == 3 and all(isinstance(s, Server) for s in servers), servers
        for server in servers:
            assert isinstance(server, Server)
            with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
                assert http.get("/v1/memories").status_code == 200
    finally:
        for server in servers:
            if isinstance(server, Server):
                server.close()
    engine = sa.create_engine(database_url(postgres_url))
    try:
        with engine.connect() as conn:
            users = conn.execute(sa.text("SELECT user_id, count(*) FROM users GROUP BY user_id ORDER BY 1")).all()
            defaults = conn.execute(sa.text("SELECT owner_id, count(*) FROM cubes WHERE is_default = 1 "
                                            "GROUP BY owner_id ORDER BY 1")).all()
    finally:
        engine.dispose()
    assert [u for u, _ in users] == ["default", "root"], users
    assert all(n == 1 for _, n in users) and all(n == 1 for _, n in defaults) and len(defaults) == len(users)
