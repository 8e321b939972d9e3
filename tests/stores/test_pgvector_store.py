"""What only the pgvector backend has: its schema repaired at open, its configuration, replicas sharing
its table. The contract every backend keeps is in test_vector_stores.py."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from memos_mcp.config import Settings
from memos_mcp.core.factory import build_vector_store
from memos_mcp.core.stores.vector import MemoryFilter, SparseVector, VectorPoint
from memos_mcp.core.stores.vector_pg import PgVectorStore
from memos_mcp.errors import ConfigError, DataDirReadOnly, StorageError

DIM = 8


def _point(n: int) -> VectorPoint:
    return VectorPoint(str(uuid.UUID(int=n)), [1.0] + [0.0] * (DIM - 1), SparseVector([n], [1.0]),
                       {"cube_id": "c", "status": "activated", "created_at": float(n), "tags": [], "metadata": {}})


def _sql(url: str, statement: str) -> None:
    dsn = url.replace("postgresql://postgres@/", "dbname=").replace("?host=", " user=postgres host=")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def test_indexes_dropped_from_the_table_are_named_by_check_and_made_again_by_the_next_open(postgres_url: str) -> None:
    store = PgVectorStore(postgres_url, "memos")
    store.open(DIM)
    store.upsert([_point(1)])
    _sql(postgres_url, "DROP INDEX vectors_memos_created_at; DROP INDEX vectors_memos_dense")
    with pytest.raises(StorageError) as raised:
        store.check()
    assert "vectors_memos_created_at" in raised.value.message and "vectors_memos_dense" in raised.value.message
    store.close()

    again = PgVectorStore(postgres_url, "memos")
    again.open(DIM)
    try:
        assert set(again.repaired) == {"index vectors_memos_created_at", "index vectors_memos_dense"}
        assert "ordered scroll answers" in again.check()
        assert [p.id for p in again.scroll(MemoryFilter(cube_ids=("c",)), limit=5)] == [_point(1).id]
    finally:
        again.close()


def test_a_generated_column_dropped_from_the_table_is_added_again_from_the_payload(postgres_url: str) -> None:
    store = PgVectorStore(postgres_url, "memos")
    store.open(DIM)
    store.upsert([_point(1), _point(2)])
    store.close()
    _sql(postgres_url, "ALTER TABLE vectors_memos DROP COLUMN status")

    again = PgVectorStore(postgres_url, "memos")
    again.open(DIM)
    try:
        assert "column vectors_memos.status" in again.repaired
        assert again.count(MemoryFilter(cube_ids=("c",), status=("activated",))) == 2
    finally:
        again.close()


def test_two_stores_on_one_database_see_each_others_writes_at_once(postgres_url: str) -> None:
    first, second = PgVectorStore(postgres_url, "memos"), PgVectorStore(postgres_url, "memos")
    first.open(DIM)
    second.open(DIM)
    try:
        first.upsert([_point(1)])
        assert second.count(MemoryFilter(cube_ids=("c",))) == 1
        second.delete([_point(1).id])
        assert first.retrieve([_point(1).id]) == []
    finally:
        first.close()
        second.close()


def test_a_read_only_store_refuses_writes_and_an_absent_table(postgres_url: str) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        PgVectorStore(postgres_url, "memos", read_only=True).open(DIM)
    writer = PgVectorStore(postgres_url, "memos")
    writer.open(DIM)
    writer.close()
    reader = PgVectorStore(postgres_url, "memos", read_only=True)
    reader.open(DIM)
    try:
        with pytest.raises(DataDirReadOnly):
            reader.upsert([_point(1)])
        assert reader.stats()["points"] == 0
    finally:
        reader.close()


def test_the_pgvector_backend_uses_the_catalogs_database_unless_vector_url_names_another(tmp_path: Path) -> None:
    catalog = "postgresql://u:secret@db.example:5432/memos"
    store = build_vector_store(Settings(data_dir=tmp_path, catalog={"url": catalog}, vector={"backend": "pgvector"}))
    assert isinstance(store, PgVectorStore) and store.url.host == "db.example" and "secret" not in store.location
    other = build_vector_store(Settings(data_dir=tmp_path, catalog={"url": catalog},
                                        vector={"backend": "pgvector", "url": "postgresql://v@other/vec"}))
    assert isinstance(other, PgVectorStore) and other.url.host == "other"
    with pytest.raises(ConfigError, match="MEMOS_VECTOR__URL"):
        build_vector_store(Settings(data_dir=tmp_path, vector={"backend": "pgvector"}))
    with pytest.raises(ConfigError, match="collection"):
        PgVectorStore(catalog, "Bad-Name")


def _long_point(n: int, dimension: int) -> VectorPoint:
    """A point of a real model's size whose payload (a long memory) makes its row exceed 2 kB."""
    dense = [float((n * 31 + i) % 17) - 8.0 for i in range(dimension)]
    return VectorPoint(str(uuid.UUID(int=n)), dense, SparseVector([n], [1.0]),
                       {"cube_id": "c", "status": "activated", "created_at": float(n), "tags": [], "metadata": {},
                        "memory": " ".join(f"word{(n * 7 + i) % 997}" for i in range(400))})


def _out_of_line(url: str, column: str) -> list[bool]:
    """Per row (by id): whether ``column`` is stored in the TOAST table rather than in the row."""
    dsn = url.replace("postgresql://postgres@/", "dbname=").replace("?host=", " user=postgres host=")
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(f"SELECT pg_column_toast_chunk_id({column}) IS NOT NULL FROM vectors_memos ORDER BY id")
        return [bool(row[0]) for row in found.fetchall()]


def test_a_points_dense_vector_stays_in_its_row_while_a_long_payload_goes_to_toast(postgres_url: str) -> None:
    # a distance scan then reads no TOAST table (it did, at 10 us a row, and the planner chose such a scan)
    store = PgVectorStore(postgres_url, "memos")
    store.open(384)
    try:
        store.upsert([_long_point(1, 384), _long_point(2, 384)])
        assert _out_of_line(postgres_url, "dense") == [False, False]
        assert _out_of_line(postgres_url, "payload") == [True, True]
        assert [p.payload["memory"] for p in store.retrieve([_long_point(1, 384).id])] == \
            [_long_point(1, 384).payload["memory"]]
    finally:
        store.close()


def test_a_table_of_the_earlier_row_layout_gets_this_one_at_open_and_vacuum_full_moves_its_rows(
        postgres_url: str) -> None:
    store = PgVectorStore(postgres_url, "memos")
    store.open(384)
    # the layout of earlier releases: pgvector's EXTERNAL storage, PostgreSQL's 2 kB TOAST target
    _sql(postgres_url, "ALTER TABLE vectors_memos ALTER COLUMN dense SET STORAGE EXTERNAL, RESET (toast_tuple_target)")
    store.upsert([_long_point(1, 384)])
    store.close()
    assert _out_of_line(postgres_url, "dense") == [True]

    again = PgVectorStore(postgres_url, "memos")
    again.open(384)
    try:
        assert again.repaired == ("row layout",)
        again.upsert([_long_point(2, 384)])
        assert _out_of_line(postgres_url, "dense") == [True, False]
        _sql(postgres_url, "VACUUM FULL vectors_memos")
        assert _out_of_line(postgres_url, "dense") == [False, False]
        assert [p.id for p in again.dense_search(_long_point(2, 384).dense, MemoryFilter(cube_ids=("c",)), 1)] == \
            [_long_point(2, 384).id]
    finally:
        again.close()
    third = PgVectorStore(postgres_url, "memos")
    third.open(384)
    third.close()
    assert third.repaired == ()


@pytest.mark.parametrize("replica_commits", [True, False], ids=["replica commits", "replica rolls back"])
def test_a_conditional_write_waiting_for_a_replicas_change_of_its_field_stores_only_over_the_expected_value(
        postgres_url: str, replica_commits: bool) -> None:
    """Two replicas really interleaved: one changes a memory's text (content_hash) in an open
    transaction; the other's ``set_payload_if`` (reindex storing windows made for the old text) waits for
    that row, then writes only if the text it made them for is still the stored one."""
    store = PgVectorStore(postgres_url, "memos")
    store.open(DIM)
    first = _point(1)
    store.upsert([VectorPoint(first.id, first.dense, first.sparse, {**first.payload, "content_hash": "old"})])
    dsn = postgres_url.replace("postgresql://postgres@/", "dbname=").replace("?host=", " user=postgres host=")
    try:
        with psycopg.connect(dsn) as replica, psycopg.connect(dsn, autocommit=True) as watcher, \
                ThreadPoolExecutor(1) as pool:
            replica.execute("""UPDATE vectors_memos SET payload = payload || '{"content_hash": "new"}'
                               WHERE id = %s""", (first.id,))
            waiting = pool.submit(store.set_payload_if, first.id, {"windows": "made for old"}, "content_hash", "old")
            deadline = time.monotonic() + 10
            while not watcher.execute("""SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                                         AND query LIKE 'UPDATE vectors_memos%%'""").fetchone()[0]:
                assert time.monotonic() < deadline and not waiting.done(), "the conditional write never waited"
                time.sleep(0.02)
            if replica_commits:
                replica.commit()
            else:
                replica.rollback()
            assert waiting.result(timeout=10) is not replica_commits
        (stored,) = store.retrieve([first.id])
        if replica_commits:
            assert stored.payload["content_hash"] == "new" and "windows" not in stored.payload
        else:
            assert stored.payload["content_hash"] == "old" and stored.payload["windows"] == "made for old"
    finally:
        store.close()
