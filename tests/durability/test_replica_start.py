"""A replica starting (or restarting after a kill) on a PostgreSQL catalog that other live replicas write
to: its start-up clean-up of unfinished writes must touch only the writes of processes that are gone,
never a write another replica has in flight and is about to acknowledge."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.models import HistoryEvent, utcnow
from memos_mcp.core.service import MemoryService
from memos_mcp.core.write.add import dedup_key
from memos_mcp.errors import NotFound
from tests.postgres import PostgresServer

TIMEOUT = 60.0


def replica(data_dir: Path, url: str, embedder: LocalOnnxEmbedder, graph: bool = True) -> MemoryService:
    """A service as a replica opens it: catalog, vectors and graph on one PostgreSQL database."""
    return MemoryService.open(Settings(data_dir=data_dir, catalog={"url": url}, vector={"backend": "pgvector"},
                                       graph={"enabled": graph}), embedder=embedder)


def wait_for_a_blocked_statement(dsn: str) -> None:
    """Until a session of the database waits on a lock (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'").fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"no statement waited on the lock within {TIMEOUT} s")


def test_a_replica_starting_leaves_alone_the_write_another_replica_has_in_flight(
        tmp_path: Path, postgres: PostgresServer, embedder: LocalOnnxEmbedder) -> None:
    database = postgres.create_database()
    url, dsn = postgres.url(database), postgres.dsn(database)
    writing = replica(tmp_path / "writing", url, embedder)
    starting: MemoryService | None = None
    try:
        writing.ensure_user("alice")
        writing.ready()
        writing.graph()
        answers: list[Any] = []
        # The writer's add stores its memory's points, then its graph: holding the graph's entity table
        # keeps that add in flight (its history still pending) for as long as this transaction lasts.
        with psycopg.connect(dsn) as holder:
            holder.execute("LOCK TABLE graph_entities IN SHARE MODE")
            adding = threading.Thread(target=lambda: answers.append(writing.add_memory(
                "alice", memory_content="Alice met Bob at the harbour on Tuesday.")))
            adding.start()
            wait_for_a_blocked_statement(dsn)
            # another replica starts meanwhile (without graph memory, so that the lock holds it nowhere)
            starting = replica(tmp_path / "starting", url, embedder, graph=False)
            starting.ready()
            holder.rollback()
        adding.join(TIMEOUT)
        assert not adding.is_alive() and answers, "the add did not finish"
        (memory,) = answers[0].memories
        assert [m.id for m in starting.list_memories("alice").memories] == [memory.id]
        assert [e.event for e in writing.history("alice", memory.id)] == ["ADD"]
    finally:
        if starting is not None:
            starting.close()
        writing.close()



def test_a_live_replica_rolls_back_within_a_lease_the_write_a_dead_replica_left_unfinished(
        tmp_path: Path, postgres: PostgresServer, embedder: LocalOnnxEmbedder) -> None:
    database = postgres.create_database()
    url, dsn = postgres.url(database), postgres.dsn(database)
    live = MemoryService.open(Settings(data_dir=tmp_path / "live", catalog={"url": url},
                                       vector={"backend": "pgvector"}, graph={"enabled": False},
                                       add={"task_lease": 1.0}), embedder=embedder)
    try:
        live.ensure_user("alice")
        live.ready()
        # A replica that has since died (it holds no lock) recorded an add and claimed its text's key,
        # then was killed before its memory was stored: nobody restarts it.
        event = HistoryEvent(memory_id="0b7c5e8e-3f0a-4c4e-9d36-5d1f2f8c0a11", cube_id="alice_default_cube",
                             event="ADD", actor="alice", at=utcnow(), new_memory="The red kayak is in shed 4.")
        live.catalog.begin_writes([event], {event.memory_id: "key-of-the-dead-write"})
        deadline = time.monotonic() + TIMEOUT
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pending_writes").fetchone() != (0,):
                assert time.monotonic() < deadline, "the dead replica's write was never rolled back"
                time.sleep(0.05)
            keys = conn.execute("SELECT count(*) FROM memory_keys").fetchone()
        assert keys == (0,)  # the same text can be stored again
        assert live.catalog.history(event.memory_id) == []
    finally:
        live.close()


def test_the_same_text_added_after_a_replica_died_holding_its_key_is_stored_and_readable(
        tmp_path: Path, postgres: PostgresServer, embedder: LocalOnnxEmbedder) -> None:
    database = postgres.create_database()
    live = replica(tmp_path / "live", postgres.url(database), embedder, graph=False)
    try:
        live.ensure_user("alice")
        live.ready()
        text = "The spare key hangs behind the kitchen door."
        # A replica that has since died claimed this text's key in alice's cube, then was killed before
        # it stored the memory (it holds no lock); nothing has cleaned up after it yet.
        dead = "5a0f7c1e-9b7d-4f65-8a31-1c2d3e4f5a6b"
        key = dedup_key(f"fact:{text}", {}, None)
        live.catalog.begin_writes([HistoryEvent(memory_id=dead, cube_id="alice_default_cube", event="ADD",
                                                actor="alice", at=utcnow(), new_memory=text)], {dead: key})
        (memory,) = live.add_memory("alice", memory_content=text).memories
        assert memory.id != dead
        assert live.get_memory("alice", memory.id).memory == text  # acknowledged, so stored
        assert [m.id for m in live.list_memories("alice").memories] == [memory.id]
        assert live.catalog.history(dead) == []
    finally:
        live.close()


def test_a_memory_whose_add_a_dead_replica_never_acknowledged_is_not_read_while_a_live_write_is(
        tmp_path: Path, postgres: PostgresServer, embedder: LocalOnnxEmbedder) -> None:
    database = postgres.create_database()
    live = MemoryService.open(Settings(data_dir=tmp_path / "live", catalog={"url": postgres.url(database)},
                                       vector={"backend": "pgvector"}, graph={"enabled": False},
                                       add={"task_lease": 3600.0}), embedder=embedder)
    try:
        live.ensure_user("alice")
        text = "The blue canoe is kept in shed 7."
        (memory,) = live.add_memory("alice", memory_content=text).memories
        # The add's marks as a writer leaves them between storing the points and its acknowledgement.
        live.catalog.begin_writes([HistoryEvent(memory_id=memory.id, cube_id=memory.cube_id, event="ADD",
                                                actor="alice", at=utcnow(), new_memory=text)])

        def read() -> tuple[list[str], list[str], bool]:
            found = [m.id for m in live.search("alice", "Where is the blue canoe kept?").memories]
            listed = [m.id for m in live.list_memories("alice").memories]
            try:
                live.get_memory("alice", memory.id)
            except NotFound:
                return found, listed, False
            return found, listed, True

        with live.catalog.in_flight([memory.id]):  # its writer is alive: what it stored is read
            assert read() == ([memory.id], [memory.id], True)
        assert read() == ([], [], False)  # its writer is gone: rolled back by the next clean-up
    finally:
        live.close()
