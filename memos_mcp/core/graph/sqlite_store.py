"""The embedded graph store: SQLite (WAL) under the data directory. Entities, their aliases and the
relations between them are three tables; traversals run one indexed query per hop."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memos_mcp.core.graph.store import (
    DEFAULT_DECAY,
    Entity,
    GraphStore,
    Relation,
    normalise,
    resolved,
)
from memos_mcp.core.stores.sqlite_files import connect, migrate, missing_schema, statements
from memos_mcp.errors import DataDirReadOnly, NotFound, StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    cube_id TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cube_id, key));
CREATE TABLE IF NOT EXISTS aliases (
    cube_id TEXT NOT NULL, alias_key TEXT NOT NULL, alias TEXT NOT NULL, entity_key TEXT NOT NULL,
    PRIMARY KEY (cube_id, alias_key));
CREATE INDEX IF NOT EXISTS aliases_entity ON aliases(cube_id, entity_key);
CREATE TABLE IF NOT EXISTS relations (
    id TEXT PRIMARY KEY, cube_id TEXT NOT NULL, subject TEXT NOT NULL, predicate TEXT NOT NULL,
    object TEXT NOT NULL, predicate_key TEXT NOT NULL, confidence REAL NOT NULL,
    valid_at REAL, invalid_at REAL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS relations_subject ON relations(cube_id, subject);
CREATE INDEX IF NOT EXISTS relations_object ON relations(cube_id, object);
CREATE TABLE IF NOT EXISTS links (
    seq INTEGER PRIMARY KEY, relation_id TEXT NOT NULL, cube_id TEXT NOT NULL, memory_id TEXT NOT NULL,
    subject TEXT NOT NULL, object TEXT NOT NULL, UNIQUE (relation_id, memory_id));
CREATE INDEX IF NOT EXISTS links_memory ON links(cube_id, memory_id);
CREATE INDEX IF NOT EXISTS links_subject ON links(cube_id, subject, seq);
CREATE INDEX IF NOT EXISTS links_object ON links(cube_id, object, seq)
"""
# relations.subject / relations.object hold entity keys; display names come from entities. A relation's
# provenance is its rows in ``links`` (one per memory, in the order they were linked: ``seq``), which
# repeat the relation's entity keys so that "the memories linked to an entity, newest first" is one
# index walk, however many memories the entity has.


def _create(db: sqlite3.Connection) -> None:
    for statement in statements(_SCHEMA):
        db.execute(statement)
    _rows_from_arrays(db)


def _rows_from_arrays(db: sqlite3.Connection) -> None:
    """Upgrade a graph file of an earlier version in place: provenance kept as a JSON array of memory
    ids in ``relations.memory_ids`` (re-encoded whole by every add) becomes rows of ``links``, in the
    array's order, and the column goes. Part of the schema's one transaction (``migrate``): a process
    killed meanwhile leaves the old file as it was, and the next open does it again."""
    if "memory_ids" not in {row[1] for row in db.execute("PRAGMA table_info(relations)")}:
        return
    db.execute("""INSERT OR IGNORE INTO links (relation_id, cube_id, memory_id, subject, object)
        SELECT r.id, r.cube_id, m.value, r.subject, r.object FROM relations r, json_each(r.memory_ids) m
        ORDER BY r.created_at, r.rowid, m.key""")
    db.execute("ALTER TABLE relations DROP COLUMN memory_ids")


_VALID = "(r.valid_at IS NULL OR r.valid_at <= ?) AND (r.invalid_at IS NULL OR r.invalid_at > ?)"
_SELECT = """SELECT r.*, s.name AS s_name, o.name AS o_name, (SELECT json_group_array(memory_id) FROM
    (SELECT memory_id FROM links WHERE relation_id = r.id ORDER BY seq)) AS memory_ids FROM relations r
    JOIN entities s ON s.cube_id = r.cube_id AND s.key = r.subject
    JOIN entities o ON o.cube_id = r.cube_id AND o.key = r.object"""


class SqliteGraphStore(GraphStore):
    """The graph file at ``path``. Every open creates whatever part of the schema is missing, in one
    transaction. ``read_only`` (a data directory that may not be written) creates nothing: a missing
    file reads as an empty graph, and writes raise ``DataDirReadOnly``."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        try:
            if self.read_only and not self.path.exists():
                db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                db.row_factory = sqlite3.Row
                migrate(db, _create)
                db.execute("PRAGMA query_only=ON")
            elif self.read_only:
                db = connect(self.path, read_only=True)
                missing = missing_schema(db, _create)
                if missing:
                    db.close()
                    raise StorageError(f"the read-only graph store at {self.path} lacks {', '.join(missing)}",
                                       path=str(self.path), missing=missing)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = connect(self.path)
                migrate(db, _create)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the graph store at {self.path}: {exc}", path=str(self.path)) from exc
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("the graph store is not open", path=str(self.path))
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise DataDirReadOnly.refused(f"the graph store at {self.path}", path=str(self.path))
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"graph write failed: {exc}") from exc

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"graph read failed: {exc}") from exc

    @staticmethod
    def _relation(row: sqlite3.Row) -> Relation:
        return Relation(id=row["id"], cube_id=row["cube_id"], subject=row["s_name"], predicate=row["predicate"],
                        object=row["o_name"], confidence=row["confidence"], memory_ids=json.loads(row["memory_ids"]),
                        valid_at=row["valid_at"], invalid_at=row["invalid_at"], created_at=row["created_at"])

    # --- entities ----------------------------------------------------------------------------
    @staticmethod
    def _found_in(db: sqlite3.Connection, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        """Entity key of each normalised name that is an entity's key or alias."""
        keys = sorted({normalise(n) for n in names})
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        found = {row[0]: row[1] for row in db.execute(
            f"SELECT alias_key, entity_key FROM aliases WHERE cube_id = ? AND alias_key IN ({marks})",
            (cube_id, *keys))}
        found.update((row[0], row[0]) for row in db.execute(
            f"SELECT key FROM entities WHERE cube_id = ? AND key IN ({marks})", (cube_id, *keys)))
        return found

    def _found(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        with self._lock:
            try:
                return self._found_in(self._conn(), cube_id, names)
            except sqlite3.Error as exc:
                raise StorageError(f"graph read failed: {exc}") from exc

    def delete_entity(self, cube_id: str, name: str) -> int:
        with self._tx() as db:
            key = self._found_in(db, cube_id, [name]).get(normalise(name))
            if key is None:
                raise NotFound("entity", name)
            dropped = db.execute("DELETE FROM relations WHERE cube_id = ? AND (subject = ? OR object = ?)",
                                 (cube_id, key, key)).rowcount
            db.execute("DELETE FROM links WHERE cube_id = ? AND (subject = ? OR object = ?)", (cube_id, key, key))
            db.execute("DELETE FROM aliases WHERE cube_id = ? AND entity_key = ?", (cube_id, key))
            db.execute("DELETE FROM entities WHERE cube_id = ? AND key = ?", (cube_id, key))
        return int(dropped)

    def upsert_entities(self, cube_id: str, entities: Sequence[Entity]) -> None:
        with self._tx() as db:
            for ent in entities:
                db.execute("""INSERT INTO entities (cube_id, key, name, type) VALUES (?, ?, ?, ?)
                    ON CONFLICT (cube_id, key) DO UPDATE SET
                    type = CASE WHEN excluded.type != '' THEN excluded.type ELSE entities.type END""",
                           (cube_id, ent.key, ent.name, ent.type))
                db.executemany("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
                               [(cube_id, normalise(a), a, ent.key) for a in ent.aliases if normalise(a) != ent.key])

    def entity(self, cube_id: str, name: str) -> Entity | None:
        key = self._resolve(cube_id, [name])[name]
        rows = self._rows("SELECT * FROM entities WHERE cube_id = ? AND key = ?", (cube_id, key))
        return self._entities(cube_id, rows)[0] if rows else None

    def types(self, cube_id: str, keys: Sequence[str]) -> dict[str, str]:
        unique = sorted(set(keys))
        if not unique:
            return {}
        marks = ",".join("?" * len(unique))
        rows = self._rows(f"SELECT key, type FROM entities WHERE cube_id = ? AND key IN ({marks})", (cube_id, *unique))
        return {row["key"]: row["type"] for row in rows}

    def entities(self, cube_id: str, limit: int = 100, offset: int = 0) -> list[Entity]:
        rows = self._rows("SELECT * FROM entities WHERE cube_id = ? ORDER BY key LIMIT ? OFFSET ?",
                          (cube_id, limit, offset))
        return self._entities(cube_id, rows)

    def _entities(self, cube_id: str, rows: list[sqlite3.Row]) -> list[Entity]:
        keys = [row["key"] for row in rows]
        aliases: dict[str, list[str]] = {}
        if keys:
            for alias in self._rows(f"""SELECT entity_key, alias FROM aliases WHERE cube_id = ?
                    AND entity_key IN ({",".join("?" * len(keys))}) ORDER BY alias_key""", (cube_id, *keys)):
                aliases.setdefault(alias["entity_key"], []).append(alias["alias"])
        return [Entity(name=row["name"], type=row["type"], aliases=tuple(aliases.get(row["key"], [])),
                       cube_id=cube_id) for row in rows]

    # --- relations ---------------------------------------------------------------------------
    def store_relations(self, cube_id: str, relations: Sequence[Relation]) -> list[str]:
        now = time.time()
        stored: list[str] = []
        with self._tx() as db:
            names = [n for r in relations for n in (r.subject, r.object)]
            keys = resolved(names, self._found_in(db, cube_id, names))
            for rel in relations:
                s_key, o_key = keys[rel.subject], keys[rel.object]
                for key, name in ((s_key, rel.subject), (o_key, rel.object)):
                    db.execute("INSERT OR IGNORE INTO entities (cube_id, key, name) VALUES (?, ?, ?)",
                               (cube_id, key, name))
                same = db.execute(
                    """SELECT id FROM relations WHERE cube_id = ? AND subject = ? AND object = ?
                    AND predicate_key = ? AND (invalid_at IS NULL OR invalid_at > ?) ORDER BY created_at LIMIT 1""",
                    (cube_id, s_key, o_key, normalise(rel.predicate), now)).fetchone()
                if same is None:
                    db.execute("INSERT INTO relations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (rel.id, cube_id, s_key, rel.predicate, o_key, normalise(rel.predicate),
                                rel.confidence, rel.valid_at, rel.invalid_at, rel.created_at))
                rid = rel.id if same is None else same["id"]
                db.executemany("INSERT OR IGNORE INTO links (relation_id, cube_id, memory_id, subject, object) "
                               "VALUES (?, ?, ?, ?, ?)", [(rid, cube_id, m, s_key, o_key) for m in
                                                          dict.fromkeys(rel.memory_ids)])
                stored.append(rid)
        return stored

    def _by_ids(self, cube_id: str | None, ids: Sequence[str]) -> list[Relation]:
        unique = sorted(set(ids))
        if not unique:
            return []
        scope, args = ("r.cube_id = ? AND", [cube_id]) if cube_id is not None else ("", [])
        rows = self._rows(f"{_SELECT} WHERE {scope} r.id IN ({','.join('?' * len(unique))})", [*args, *unique])
        return [self._relation(row) for row in rows]

    def invalidate(self, relation_id: str, at: float | None = None) -> Relation:
        with self._tx() as db:
            done = db.execute("UPDATE relations SET invalid_at = ? WHERE id = ?",
                              (time.time() if at is None else at, relation_id)).rowcount
        if not done:
            raise NotFound("relation", relation_id)
        return self._by_ids(None, [relation_id])[0]

    def relations(self, cube_id: str, *, entity: str | None = None, at: float | None = None,
                  limit: int = 100) -> list[Relation]:
        when = time.time() if at is None else at
        sql, args = f"{_SELECT} WHERE r.cube_id = ? AND {_VALID}", [cube_id, when, when]
        if entity is not None:
            key = self._resolve(cube_id, [entity])[entity]
            sql += " AND (r.subject = ? OR r.object = ?)"
            args += [key, key]
        rows = self._rows(f"{sql} ORDER BY r.created_at, r.id LIMIT ?", [*args, limit])
        return [self._relation(row) for row in rows]

    def memories_for(self, cube_id: str, entities: Sequence[str], depth: int = 1, at: float | None = None,
                     decay: float = DEFAULT_DECAY) -> dict[str, float]:
        """One hop in one statement; two hops walk as for every store."""
        if depth != 1:
            return super().memories_for(cube_id, entities, depth, at, decay)
        keys = sorted(set(self._resolve(cube_id, entities).values()))
        if not keys:
            return {}
        when = time.time() if at is None else at
        marks = ",".join("?" * len(keys))
        rows = self._rows(f"""SELECT DISTINCT l.memory_id FROM links l JOIN relations r ON r.id = l.relation_id
            WHERE l.cube_id = ? AND (l.subject IN ({marks}) OR l.object IN ({marks})) AND {_VALID}""",
                          (cube_id, *keys, *keys, when, when))
        return dict.fromkeys((str(row[0]) for row in rows), 1.0)

    def linked_memories(self, cube_id: str, keys: Sequence[str], at: float | None = None,
                        limit: int = 1000) -> list[str]:
        """Newest links first: two index walks (by subject, by object) that stop after ``limit`` rows
        of valid relations each, so the cost follows ``limit``, not how many memories the entities have."""
        unique = sorted(set(keys))
        if not unique or limit <= 0:
            return []
        when = time.time() if at is None else at
        marks = ",".join("?" * len(unique))
        walks = [f"""SELECT * FROM (SELECT l.memory_id, l.seq FROM links l JOIN relations r ON r.id = l.relation_id
            WHERE l.cube_id = ? AND l.{side} IN ({marks}) AND {_VALID} ORDER BY l.seq DESC LIMIT ?)"""
                 for side in ("subject", "object")]
        rows = self._rows(f"{walks[0]} UNION ALL {walks[1]} ORDER BY seq DESC",
                          (cube_id, *unique, when, when, limit) * 2)
        return list(dict.fromkeys(str(row[0]) for row in rows))[:limit]

    def memory_entities(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> dict[str, set[str]]:
        ids = sorted(set(memory_ids))
        if not ids:
            return {}
        when = time.time() if at is None else at
        found: dict[str, set[str]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for row in self._rows(f"""SELECT l.memory_id, l.subject, l.object FROM links l
                    JOIN relations r ON r.id = l.relation_id
                    WHERE l.cube_id = ? AND l.memory_id IN ({",".join("?" * len(part))}) AND {_VALID}""",
                                  (cube_id, *part, when, when)):
                found.setdefault(row[0], set()).update((row[1], row[2]))
        return found

    def _edges(self, cube_id: str, keys: Sequence[str], at: float) -> list[tuple[str, str, Relation]]:
        marks = ",".join("?" * len(keys))
        rows = self._rows(f"""{_SELECT} WHERE r.cube_id = ? AND {_VALID}
            AND (r.subject IN ({marks}) OR r.object IN ({marks})) ORDER BY r.created_at, r.id""",
                          (cube_id, at, at, *keys, *keys))
        return [(row["subject"], row["object"], self._relation(row)) for row in rows]

    def relations_of(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> list[Relation]:
        ids = sorted(set(memory_ids))
        if not ids:
            return []
        when = time.time() if at is None else at
        rows = self._rows(f"""{_SELECT} WHERE r.id IN (SELECT relation_id FROM links WHERE cube_id = ?
            AND memory_id IN ({",".join("?" * len(ids))})) AND {_VALID} ORDER BY r.created_at, r.id""",
                          (cube_id, *ids, when, when))
        return [self._relation(row) for row in rows]

    def delete_relation(self, cube_id: str, relation_id: str) -> None:
        with self._tx() as db:
            done = db.execute("DELETE FROM relations WHERE cube_id = ? AND id = ?", (cube_id, relation_id)).rowcount
            db.execute("DELETE FROM links WHERE cube_id = ? AND relation_id = ?", (cube_id, relation_id))
        if not done:
            raise NotFound("relation", relation_id)

    def forget_memory(self, cube_id: str, memory_id: str) -> int:
        dropped = 0
        with self._tx() as db:
            rows = db.execute("SELECT relation_id, subject, object FROM links WHERE cube_id = ? AND memory_id = ?",
                              (cube_id, memory_id)).fetchall()
            db.execute("DELETE FROM links WHERE cube_id = ? AND memory_id = ?", (cube_id, memory_id))
            touched: set[str] = set()
            for row in rows:
                if db.execute("SELECT 1 FROM links WHERE relation_id = ? LIMIT 1", (row[0],)).fetchone() is None:
                    dropped += db.execute("DELETE FROM relations WHERE id = ?", (row[0],)).rowcount
                    touched |= {row[1], row[2]}
            for key in touched:  # an entity no relation names any more was known only from what was forgotten
                if db.execute("SELECT 1 FROM relations WHERE cube_id = ? AND (subject = ? OR object = ?) LIMIT 1",
                              (cube_id, key, key)).fetchone() is None:
                    db.execute("DELETE FROM aliases WHERE cube_id = ? AND entity_key = ?", (cube_id, key))
                    db.execute("DELETE FROM entities WHERE cube_id = ? AND key = ?", (cube_id, key))
        return dropped

    def delete_cube(self, cube_id: str) -> None:
        with self._tx() as db:
            for table in ("links", "relations", "aliases", "entities"):
                db.execute(f"DELETE FROM {table} WHERE cube_id = ?", (cube_id,))
