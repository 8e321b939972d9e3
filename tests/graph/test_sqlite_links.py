"""The embedded graph keeps provenance as rows: an add writes its own links only, and a graph file of
the earlier format (a JSON array of memory ids per relation) is upgraded in place when opened."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
from memos_mcp.core.graph.store import Relation
from memos_mcp.errors import StorageError

# The schema of the graph file before provenance became rows, as that version created it.
_EARLIER = """
CREATE TABLE entities (cube_id TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cube_id, key));
CREATE TABLE aliases (cube_id TEXT NOT NULL, alias_key TEXT NOT NULL, alias TEXT NOT NULL, entity_key TEXT NOT NULL,
    PRIMARY KEY (cube_id, alias_key));
CREATE INDEX aliases_entity ON aliases(cube_id, entity_key);
CREATE TABLE relations (id TEXT PRIMARY KEY, cube_id TEXT NOT NULL, subject TEXT NOT NULL, predicate TEXT NOT NULL,
    object TEXT NOT NULL, predicate_key TEXT NOT NULL, confidence REAL NOT NULL, memory_ids TEXT NOT NULL,
    valid_at REAL, invalid_at REAL, created_at REAL NOT NULL);
CREATE INDEX relations_subject ON relations(cube_id, subject);
CREATE INDEX relations_object ON relations(cube_id, object);
"""


def rel(subject: str, obj: str, *memory_ids: str) -> Relation:
    return Relation(id=uuid.uuid4().hex, cube_id="c", subject=subject, predicate="knows", object=obj,
                    memory_ids=list(memory_ids))


def earlier_file(path: Path, memories: int) -> list[str]:
    """A graph file as the earlier version wrote it: Alice knows Bob from ``memories`` memories (in
    that order), Bob knows Carol from one; returns Alice's memory ids."""
    ids = [f"m{i:05d}" for i in range(memories)]
    db = sqlite3.connect(path)
    db.executescript(_EARLIER)
    db.executemany("INSERT INTO entities VALUES ('c', ?, ?, 'person')", [(n.lower(), n) for n in ("Alice", "Bob",
                                                                                                   "Carol")])
    db.execute("INSERT INTO relations VALUES ('r1', 'c', 'alice', 'knows', 'bob', 'knows', 1.0, ?, NULL, NULL, 1.0)",
               (json.dumps(list(reversed(ids))),))
    db.execute("INSERT INTO relations VALUES ('r2', 'c', 'bob', 'knows', 'carol', 'knows', 1.0, '[\"b1\"]', "
               "NULL, NULL, 2.0)")
    db.commit()
    db.close()
    return list(reversed(ids))


def test_an_earlier_graph_file_is_upgraded_in_place_keeping_provenance_and_its_order(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    alice = earlier_file(path, 300)

    for _ in range(2):  # the second open finds nothing left to do
        store = SqliteGraphStore(path)
        store.open()
        try:
            first, second = sorted(store.relations("c"), key=lambda r: r.id)
            assert first.memory_ids == alice and second.memory_ids == ["b1"]
            assert set(store.memories_for("c", ["Alice"])) == set(alice)
            assert store.linked_memories("c", ["bob"], limit=2) == ["b1", alice[-1]]
        finally:
            store.close()

    db = sqlite3.connect(path)
    assert "memory_ids" not in {row[1] for row in db.execute("PRAGMA table_info(relations)")}
    assert db.execute("SELECT count(*) FROM links").fetchone() == (301,)
    db.close()
    store = SqliteGraphStore(path)
    store.open()
    assert store.forget_memory("c", "b1") == 1 and store.entity("c", "Carol") is None
    store.close()


def test_a_read_only_earlier_graph_file_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "graph.sqlite3"
    earlier_file(path, 3)
    store = SqliteGraphStore(path, read_only=True)

    with pytest.raises(StorageError, match="table links"):
        store.open()


def test_adding_to_a_relation_with_thousands_of_memories_writes_only_the_new_link(tmp_path: Path) -> None:
    """Before provenance became rows, each add rewrote the whole JSON array (about 190 KB here) into the
    write-ahead log; now it writes a few pages, the same as for a relation with one memory."""
    path = tmp_path / "graph.sqlite3"
    store = SqliteGraphStore(path)
    store.open()
    try:
        store.add_relations("c", [rel("Alice", "Bob", *(str(uuid.uuid4()) for _ in range(5000)))])
        store.add_relations("c", [rel("Carol", "Dan", "d1")])
        wal = path.with_name(path.name + "-wal")
        grown = []
        for subject, obj in (("Alice", "Bob"), ("Carol", "Dan")):
            store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            assert wal.stat().st_size == 0
            store.store_relations("c", [rel(subject, obj, str(uuid.uuid4()))])
            grown.append(wal.stat().st_size)
        assert max(grown) < 64 * 1024
        assert len(store.relations("c", entity="Alice")[0].memory_ids) == 5001
    finally:
        store.close()
