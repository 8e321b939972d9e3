"""Stores left incomplete (as by a crash during their creation) are finished by the next open, and
the checks /health and doctor run find what an open store lacks. The broken states are made with the
stores' own engines (qdrant-edge's API, sqlite3), never by changing our code."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import httpx2
import pytest
import qdrant_edge as qe

from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.catalog_db import missing_schema, sqlite_engine
from memos_mcp.core.stores.vector import PAYLOAD_INDEXES, MemoryFilter, SparseVector, VectorPoint
from memos_mcp.core.stores.vector_client import QdrantClientVectorStore
from memos_mcp.core.stores.vector_edge import EdgeVectorStore
from memos_mcp.errors import DataDirReadOnly, StorageError
from tests.http.support import TIMEOUT, running_app, settings_for
from tests.test_cli import check_lines, memos, ok

DIM = 8
CUBE = "cube-a"


def point(n: int, created_at: float) -> VectorPoint:
    return VectorPoint(str(uuid.UUID(int=n)), [1.0] + [0.0] * (DIM - 1), SparseVector([n], [1.0]),
                       {"cube_id": CUBE, "status": "activated", "created_at": created_at, "memory": f"m{n}"})


def drop_indexes(shard_path: Path, *fields: str) -> None:
    """Remove payload indexes from a closed shard through qdrant-edge itself."""
    shard = qe.EdgeShard.load(str(shard_path))
    try:
        for field in fields:
            shard.update(qe.UpdateOperation.delete_field_index(field))
        assert not set(fields) & set(shard.info().payload_schema)
    finally:
        shard.flush()
        shard.close()


def test_an_edge_shard_missing_payload_indexes_is_repaired_by_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    store = EdgeVectorStore(path)
    store.open(DIM)
    assert store.repaired == ()  # a fresh shard is made whole, not repaired
    store.upsert([point(1, 100.0), point(2, 200.0)])
    store.close()
    drop_indexes(path, "created_at", "cube_id", "tags")

    store = EdgeVectorStore(path)
    store.open(DIM)
    try:
        assert set(store.repaired) == {"payload index created_at", "payload index cube_id", "payload index tags"}
        assert sorted(store.stats()["indexed_fields"]) == sorted(PAYLOAD_INDEXES)
        newest_first = store.scroll(MemoryFilter(cube_ids=(CUBE,)), limit=10)
        assert [p.payload["memory"] for p in newest_first] == ["m2", "m1"]
        assert "ordered scroll answers" in store.check()
    finally:
        store.close()
    reopened = EdgeVectorStore(path)  # the repair was flushed: nothing is missing any more
    reopened.open(DIM)
    assert reopened.repaired == ()
    reopened.close()


def test_an_edge_shard_whose_creation_stopped_before_its_config_file_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    shard = qe.EdgeShard.create(str(path), qe.EdgeConfig(
        vectors={"dense": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)},
        sparse_vectors={"sparse": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}))
    shard.close()
    (path / "edge_config.json").unlink()

    store = EdgeVectorStore(path)
    store.open(DIM)
    try:
        assert store.repaired[0] == "shard config"
        assert (path / "edge_config.json").exists()
        store.upsert([point(1, 1.0)])
        assert len(store.scroll(MemoryFilter(cube_ids=(CUBE,)), limit=5)) == 1
        store.check()
    finally:
        store.close()


def test_the_edge_check_names_a_payload_index_lost_while_open(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "vectors")
    store.open(DIM)
    try:
        store.check()
        store.shard.update(qe.UpdateOperation.delete_field_index("created_at"))
        with pytest.raises(StorageError, match=r"lacks the payload index.*created_at"):
            store.check()
    finally:
        store.close()


def test_the_qdrant_client_local_store_checks_its_collection_and_ordered_scroll(tmp_path: Path) -> None:
    store = QdrantClientVectorStore("memos", path=str(tmp_path / "qdrant"))
    store.open(DIM)
    try:
        store.upsert([point(1, 1.0), point(2, 2.0)])
        assert "ordered scroll answers" in store.check()
        store.client.delete_collection("memos")
        with pytest.raises(StorageError, match="collection memos is missing"):
            store.check()
    finally:
        store.close()
    reopened = QdrantClientVectorStore("memos", path=str(tmp_path / "qdrant"))
    reopened.open(DIM)  # creates the collection again
    try:
        reopened.check()
    finally:
        reopened.close()


def test_a_catalog_missing_tables_columns_and_indexes_is_completed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    # What a first start killed part-way through the schema (or an old release) leaves.
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, cube_id TEXT NOT NULL,"
                     " status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
                     " added TEXT NOT NULL DEFAULT '[]', deduplicated TEXT NOT NULL DEFAULT '[]', error TEXT);")
    db.close()
    with sqlite_engine(path, read_only=True).connect() as conn:
        missing = missing_schema(conn)
    assert {"table users", "table history", "column tasks.detail", "column tasks.job", "index tasks_open",
            "index history_memory"} <= set(missing)

    catalog = Catalog(path)
    try:
        assert catalog.check().startswith("schema version")
        assert catalog.counts()["users"] == 0
    finally:
        catalog.close()
    engine = sqlite_engine(path, read_only=True)
    with engine.connect() as conn:
        assert missing_schema(conn) == []
    engine.dispose()


def test_the_catalog_check_names_a_table_dropped_while_open(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        catalog.check()
        other = sqlite3.connect(tmp_path / "catalog.sqlite3")
        other.execute("DROP INDEX history_cube")
        other.commit()
        other.close()
        with pytest.raises(StorageError, match="lacks index history_cube"):
            catalog.check()
    finally:
        catalog.close()


def test_a_graph_store_missing_tables_is_completed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE entities (cube_id TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,"
               " type TEXT NOT NULL DEFAULT '', PRIMARY KEY (cube_id, key))")
    db.commit()
    db.close()
    store = SqliteGraphStore(path)
    store.open()
    store.close()
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    db.close()
    assert {"entities", "aliases", "relations", "relations_subject", "relations_object", "aliases_entity"} <= tables


def test_health_answers_503_naming_the_vectors_when_a_payload_index_is_gone_and_a_restart_repairs_it(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    settings = settings_for(tmp_path / "data")
    with running_app(settings, embedder) as app, httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        vectors = app.service.ready()
        assert http.get("/health").status_code == 200
        assert isinstance(vectors, EdgeVectorStore)
        vectors.shard.update(qe.UpdateOperation.delete_field_index("created_at"))  # the live shard, by qdrant-edge
        broken = http.get("/health")
        assert broken.status_code == 503
        assert broken.json()["failed"] == ["vectors"]
        assert "created_at" in broken.json()["backends"]["vectors"]
        assert broken.json()["backends"]["catalog"] == "ok"
    with running_app(settings, embedder) as app, httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        app.service.ready()
        assert app.service.vectors.repaired == ("payload index created_at",)
        healthy = http.get("/health")
        assert healthy.status_code == 200 and healthy.json()["status"] == "ok"


def test_doctor_names_the_payload_indexes_an_open_had_to_make_again(
        tmp_path: Path, clean_environment: None) -> None:
    data = tmp_path / "data"
    ok(memos(tmp_path, data, "doctor"))  # creates every store
    drop_indexes(data / "vectors", "created_at", "status")
    doctor = ok(memos(tmp_path, data, "doctor"))
    verdict, detail = check_lines(doctor.stdout)["vectors"]
    assert verdict == "ok"
    assert "repaired on open: payload index status, payload index created_at" in detail
    again = check_lines(ok(memos(tmp_path, data, "doctor")).stdout)["vectors"]
    assert again[0] == "ok" and "repaired" not in again[1]


def test_a_read_only_graph_store_reads_an_absent_file_as_empty_and_refuses_writes(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "graph.sqlite3", read_only=True)
    store.open()
    try:
        assert store.entities(CUBE) == []
        with pytest.raises(DataDirReadOnly):
            store.delete_cube(CUBE)
    finally:
        store.close()
    assert not (tmp_path / "graph.sqlite3").exists()
