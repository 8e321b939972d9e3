"""What only the pgvector backend has: its schema repaired at open, its configuration, replicas sharing
its table. The contract every backend keeps is in test_vector_stores.py."""

from __future__ import annotations

import uuid
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
