"""The graph store on PostgreSQL: the embedded store's tables (``graph_tables``) in the catalog's
database, so that replicas sharing that database share one graph. SQLAlchemy 2 Core over psycopg 3;
the schema is made by Alembic (``graph_migrations``) at every writable open.

Several processes may write at once. Entities, aliases and links are inserted ``ON CONFLICT`` on their
unique keys; a relation's "is the same statement still open?" check and its insert run under a
transaction-scoped advisory lock on the relation's identity (taken in sorted order, so two batches
never deadlock), and a unique index on open relations backs it: two replicas adding one relation at
the same moment store it once, with both memories in its provenance."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Row

from memos_mcp.core.graph import graph_tables as t
from memos_mcp.core.graph.store import DEFAULT_DECAY, Entity, GraphStore, Relation, normalise, resolved
from memos_mcp.core.stores import catalog_db
from memos_mcp.core.stores.closing_engine import ClosingEngine
from memos_mcp.errors import DataDirReadOnly, NotFound, StorageError

MIGRATIONS = Path(__file__).with_name("graph_migrations")
_MIGRATION_LOCK = 0x6D656D6F67  # "memog": replicas starting together migrate once
_RELATION_LOCKS = 0x6D67  # the advisory-lock class of relation identities
_ERRORS = (sa.exc.SQLAlchemyError,)

_VALID = "(r.valid_at IS NULL OR r.valid_at <= :at) AND (r.invalid_at IS NULL OR r.invalid_at > :at)"
_ORDER = 'ORDER BY r.created_at, r.id COLLATE "C"'  # SQLite's order: bytewise
_SELECT = """SELECT r.*, s.name AS s_name, o.name AS o_name, ARRAY(SELECT memory_id FROM graph_links
    WHERE relation_id = r.id ORDER BY seq) AS memory_ids FROM graph_relations r
    JOIN graph_entities s ON s.cube_id = r.cube_id AND s.key = r.subject
    JOIN graph_entities o ON o.cube_id = r.cube_id AND o.key = r.object"""


def _sql(statement: str, *expanding: str) -> sa.TextClause:
    """A textual statement whose named list parameters expand (``IN :keys``)."""
    return sa.text(statement).bindparams(*(sa.bindparam(name, expanding=True) for name in expanding))


def upgrade(conn: Connection, location: str) -> bool:
    """Migrate the graph's tables to ``graph_tables.HEAD`` on ``conn`` (inside its transaction); False
    if they already were there (then Alembic is not loaded). ``location``: the database as messages name it."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    if sa.inspect(conn).has_table(t.VERSION_TABLE):
        at = conn.execute(sa.text(f"SELECT version_num FROM {t.VERSION_TABLE}")).scalar()
        if at == t.HEAD:
            return False
    catalog_db.alembic_upgrade(conn, MIGRATIONS, location)
    return True


def missing_schema(conn: Connection) -> list[str]:
    """What the database lacks of ``graph_tables.metadata`` (see ``catalog_db.missing_schema_of``)."""
    return catalog_db.missing_schema_of(conn, t.metadata)


def _identity_lock(cube_id: str, s_key: str, o_key: str, predicate_key: str) -> int:
    """The advisory-lock key (32 bits) of one relation identity within a cube."""
    return zlib.crc32("\x1f".join((cube_id, s_key, o_key, predicate_key)).encode())


class PostgresGraphStore(GraphStore):
    """The graph in the PostgreSQL database at ``url`` (a ``postgresql://`` URL, as ``catalog.url``).
    ``read_only`` migrates nothing (a database lacking the tables raises ``StorageError`` at open) and
    every write raises ``DataDirReadOnly``. Unreachable databases and failed statements raise
    ``StorageError``."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.url = catalog_db.database_url(url)
        self.location = catalog_db.shown(self.url)
        self.read_only = read_only
        self._engine: ClosingEngine | None = None

    def open(self) -> None:
        engine = catalog_db.postgres_engine(self.url)
        try:
            if self.read_only:
                with engine.connect() as conn:
                    missing = missing_schema(conn)
                if missing:
                    raise StorageError(f"the read-only graph store at {self.location} lacks {', '.join(missing)}",
                                       path=self.location, missing=missing)
            else:
                with engine.begin() as conn:
                    upgrade(conn, self.location)
        except StorageError:
            engine.dispose()
            raise
        except _ERRORS as exc:
            engine.dispose()
            raise StorageError(f"cannot open the graph store at {self.location}: {exc}", path=self.location) from exc
        self._engine = ClosingEngine(engine)

    def close(self) -> None:
        """Close every pooled connection, and each one a call in flight holds when it is given back."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    def _engine_or_fail(self) -> ClosingEngine:
        if self._engine is None:
            raise StorageError("the graph store is not open", path=self.location)
        return self._engine

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        if self.read_only:
            raise DataDirReadOnly(f"cannot write to the graph store at {self.location}: it is opened read-only",
                                  path=self.location)
        try:
            with self._engine_or_fail().begin() as conn:
                yield conn
        except _ERRORS as exc:
            raise StorageError(f"graph write failed: {exc}") from exc

    def _rows(self, statement: sa.TextClause, args: dict[str, Any]) -> list[Row[Any]]:
        try:
            with self._engine_or_fail().connect() as conn:
                return list(conn.execute(statement, args))
        except _ERRORS as exc:
            raise StorageError(f"graph read failed: {exc}") from exc

    @staticmethod
    def _relation(row: Row[Any]) -> Relation:
        m = row._mapping
        return Relation(id=m["id"], cube_id=m["cube_id"], subject=m["s_name"], predicate=m["predicate"],
                        object=m["o_name"], confidence=m["confidence"], memory_ids=list(m["memory_ids"]),
                        valid_at=m["valid_at"], invalid_at=m["invalid_at"], created_at=m["created_at"])

    # --- entities ----------------------------------------------------------------------------
    @staticmethod
    def _found_in(conn: Connection, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        keys = sorted({normalise(n) for n in names})
        if not keys:
            return {}
        rows = conn.execute(_sql("""SELECT alias_key, entity_key, 0 AS own FROM graph_aliases
            WHERE cube_id = :cube AND alias_key IN :keys UNION ALL
            SELECT key, key, 1 FROM graph_entities WHERE cube_id = :cube AND key IN :keys ORDER BY own""", "keys"),
                            {"cube": cube_id, "keys": keys})
        return {row.alias_key: row.entity_key for row in rows}  # an entity's own key comes last, and wins

    def _found(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        try:
            with self._engine_or_fail().connect() as conn:
                return self._found_in(conn, cube_id, names)
        except _ERRORS as exc:
            raise StorageError(f"graph read failed: {exc}") from exc

    def delete_entity(self, cube_id: str, name: str) -> int:
        with self._tx() as conn:
            key = self._found_in(conn, cube_id, [name]).get(normalise(name))
            if key is None:
                raise NotFound("entity", name)
            args = {"cube": cube_id, "key": key}
            dropped = conn.execute(sa.text("DELETE FROM graph_relations WHERE cube_id = :cube "
                                           "AND (subject = :key OR object = :key)"), args).rowcount
            conn.execute(sa.text("DELETE FROM graph_links WHERE cube_id = :cube AND (subject = :key OR object = :key)"),
                         args)
            conn.execute(sa.text("DELETE FROM graph_aliases WHERE cube_id = :cube AND entity_key = :key"), args)
            conn.execute(sa.text("DELETE FROM graph_entities WHERE cube_id = :cube AND key = :key"), args)
        return int(dropped)

    def upsert_entities(self, cube_id: str, entities: Sequence[Entity]) -> None:
        with self._tx() as conn:
            for ent in sorted(entities, key=lambda e: e.key):  # one lock order for concurrent writers
                new = insert(t.entities).values(cube_id=cube_id, key=ent.key, name=ent.name, type=ent.type)
                conn.execute(new.on_conflict_do_update(
                    index_elements=["cube_id", "key"],
                    set_={"type": sa.case((new.excluded.type != "", new.excluded.type), else_=t.entities.c.type)}))
                rows = [{"cube_id": cube_id, "alias_key": normalise(a), "alias": a, "entity_key": ent.key}
                        for a in dict.fromkeys(ent.aliases) if normalise(a) != ent.key]
                if rows:
                    alias = insert(t.aliases)
                    conn.execute(alias.on_conflict_do_update(
                        index_elements=["cube_id", "alias_key"],
                        set_={"alias": alias.excluded.alias, "entity_key": alias.excluded.entity_key}), rows)

    def entity(self, cube_id: str, name: str) -> Entity | None:
        key = self._resolve(cube_id, [name])[name]
        rows = self._rows(sa.text("SELECT * FROM graph_entities WHERE cube_id = :cube AND key = :key"),
                          {"cube": cube_id, "key": key})
        return self._entities(cube_id, rows)[0] if rows else None

    def types(self, cube_id: str, keys: Sequence[str]) -> dict[str, str]:
        unique = sorted(set(keys))
        if not unique:
            return {}
        rows = self._rows(sa.text("SELECT key, type FROM graph_entities WHERE cube_id = :cube AND key = ANY(:keys)"),
                          {"cube": cube_id, "keys": unique})
        return {row._mapping["key"]: row._mapping["type"] for row in rows}

    def entities(self, cube_id: str, limit: int = 100, offset: int = 0) -> list[Entity]:
        rows = self._rows(sa.text('SELECT * FROM graph_entities WHERE cube_id = :cube ORDER BY key COLLATE "C" '
                                  "LIMIT :limit OFFSET :offset"), {"cube": cube_id, "limit": limit, "offset": offset})
        return self._entities(cube_id, rows)

    def _entities(self, cube_id: str, rows: list[Row[Any]]) -> list[Entity]:
        keys = [row._mapping["key"] for row in rows]
        aliases: dict[str, list[str]] = {}
        if keys:
            named = _sql('SELECT entity_key, alias FROM graph_aliases WHERE cube_id = :cube '
                         'AND entity_key IN :keys ORDER BY alias_key COLLATE "C"', "keys")
            for row in self._rows(named, {"cube": cube_id, "keys": keys}):
                aliases.setdefault(row.entity_key, []).append(row.alias)
        return [Entity(name=row._mapping["name"], type=row._mapping["type"],
                       aliases=tuple(aliases.get(row._mapping["key"], [])), cube_id=cube_id) for row in rows]

    # --- relations ---------------------------------------------------------------------------
    def store_relations(self, cube_id: str, relations: Sequence[Relation]) -> list[str]:
        now = time.time()
        stored: list[str] = []
        with self._tx() as conn:
            names = [n for r in relations for n in (r.subject, r.object)]
            keys = resolved(names, self._found_in(conn, cube_id, names))
            locks = sorted({_identity_lock(cube_id, keys[r.subject], keys[r.object], normalise(r.predicate))
                            for r in relations})
            for lock in locks:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                             {"cls": _RELATION_LOCKS, "key": lock - (1 << 31)})
            # a new entity is named by the first name given for its key (in order, subject before object)
            first = {keys[n]: n for r in reversed(relations) for n in (r.object, r.subject)}
            conn.execute(insert(t.entities).on_conflict_do_nothing(),
                         [{"cube_id": cube_id, "key": key, "name": first[key]} for key in sorted(first)])
            for rel in relations:
                s_key, o_key, p_key = keys[rel.subject], keys[rel.object], normalise(rel.predicate)
                same = conn.execute(sa.text(
                    """SELECT id FROM graph_relations WHERE cube_id = :cube AND subject = :s AND object = :o
                    AND predicate_key = :p AND (invalid_at IS NULL OR invalid_at > :now)
                    ORDER BY created_at LIMIT 1"""), {"cube": cube_id, "s": s_key, "o": o_key, "p": p_key,
                                                      "now": now}).scalar()
                if same is None:
                    conn.execute(t.relations.insert().values(
                        id=rel.id, cube_id=cube_id, subject=s_key, predicate=rel.predicate, object=o_key,
                        predicate_key=p_key, confidence=rel.confidence, valid_at=rel.valid_at,
                        invalid_at=rel.invalid_at, created_at=rel.created_at))
                rid = rel.id if same is None else str(same)
                rows = [{"relation_id": rid, "cube_id": cube_id, "memory_id": m, "subject": s_key, "object": o_key}
                        for m in dict.fromkeys(rel.memory_ids)]
                if rows:
                    conn.execute(insert(t.links).on_conflict_do_nothing(), rows)
                stored.append(rid)
        return stored

    def _by_ids(self, cube_id: str | None, ids: Sequence[str]) -> list[Relation]:
        unique = sorted(set(ids))
        if not unique:
            return []
        scope = "r.cube_id = :cube AND" if cube_id is not None else ""
        rows = self._rows(_sql(f"{_SELECT} WHERE {scope} r.id IN :ids", "ids"), {"cube": cube_id, "ids": unique})
        return [self._relation(row) for row in rows]

    def invalidate(self, relation_id: str, at: float | None = None) -> Relation:
        with self._tx() as conn:
            done = conn.execute(sa.text("UPDATE graph_relations SET invalid_at = :at WHERE id = :id"),
                                {"at": time.time() if at is None else at, "id": relation_id}).rowcount
        if not done:
            raise NotFound("relation", relation_id)
        return self._by_ids(None, [relation_id])[0]

    def relations(self, cube_id: str, *, entity: str | None = None, at: float | None = None,
                  limit: int = 100) -> list[Relation]:
        args: dict[str, Any] = {"cube": cube_id, "at": time.time() if at is None else at, "limit": limit}
        sql = f"{_SELECT} WHERE r.cube_id = :cube AND {_VALID}"
        if entity is not None:
            args["key"] = self._resolve(cube_id, [entity])[entity]
            sql += " AND (r.subject = :key OR r.object = :key)"
        rows = self._rows(sa.text(f"{sql} {_ORDER} LIMIT :limit"), args)
        return [self._relation(row) for row in rows]

    def memories_for(self, cube_id: str, entities: Sequence[str], depth: int = 1, at: float | None = None,
                     decay: float = DEFAULT_DECAY) -> dict[str, float]:
        """One hop in one statement; two hops walk as for every store."""
        if depth != 1:
            return super().memories_for(cube_id, entities, depth, at, decay)
        keys = sorted(set(self._resolve(cube_id, entities).values()))
        if not keys:
            return {}
        rows = self._rows(_sql(f"""SELECT DISTINCT l.memory_id FROM graph_links l
            JOIN graph_relations r ON r.id = l.relation_id
            WHERE l.cube_id = :cube AND (l.subject IN :keys OR l.object IN :keys) AND {_VALID}""", "keys"),
                          {"cube": cube_id, "keys": keys, "at": time.time() if at is None else at})
        return dict.fromkeys((str(row[0]) for row in rows), 1.0)

    def linked_memories(self, cube_id: str, keys: Sequence[str], at: float | None = None,
                        limit: int = 1000) -> list[str]:
        """Newest links first: two index walks (by subject, by object) that stop after ``limit`` rows
        of valid relations each, so the cost follows ``limit``, not how many memories the entities have."""
        unique = sorted(set(keys))
        if not unique or limit <= 0:
            return []
        walks = [f"""(SELECT l.memory_id, l.seq FROM graph_links l JOIN graph_relations r ON r.id = l.relation_id
            WHERE l.cube_id = :cube AND l.{side} IN :keys AND {_VALID} ORDER BY l.seq DESC LIMIT :limit)"""
                 for side in ("subject", "object")]
        rows = self._rows(_sql(f"{walks[0]} UNION ALL {walks[1]} ORDER BY seq DESC", "keys"),
                          {"cube": cube_id, "keys": unique, "at": time.time() if at is None else at, "limit": limit})
        return list(dict.fromkeys(str(row[0]) for row in rows))[:limit]

    def memory_entities(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> dict[str, set[str]]:
        ids = sorted(set(memory_ids))
        if not ids:
            return {}
        found: dict[str, set[str]] = {}
        for row in self._rows(_sql(f"""SELECT l.memory_id, l.subject, l.object FROM graph_links l
                JOIN graph_relations r ON r.id = l.relation_id
                WHERE l.cube_id = :cube AND l.memory_id IN :ids AND {_VALID}""", "ids"),
                              {"cube": cube_id, "ids": ids, "at": time.time() if at is None else at}):
            found.setdefault(row.memory_id, set()).update((row.subject, row.object))
        return found

    def _edges(self, cube_id: str, keys: Sequence[str], at: float) -> list[tuple[str, str, Relation]]:
        rows = self._rows(_sql(f"""{_SELECT} WHERE r.cube_id = :cube AND {_VALID}
            AND (r.subject IN :keys OR r.object IN :keys) {_ORDER}""", "keys"),
                          {"cube": cube_id, "at": at, "keys": list(keys)})
        return [(row._mapping["subject"], row._mapping["object"], self._relation(row)) for row in rows]

    def relations_of(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> list[Relation]:
        ids = sorted(set(memory_ids))
        if not ids:
            return []
        rows = self._rows(_sql(f"""{_SELECT} WHERE r.id IN (SELECT relation_id FROM graph_links
            WHERE cube_id = :cube AND memory_id IN :ids) AND {_VALID} {_ORDER}""", "ids"),
                          {"cube": cube_id, "ids": ids, "at": time.time() if at is None else at})
        return [self._relation(row) for row in rows]

    def delete_relation(self, cube_id: str, relation_id: str) -> None:
        with self._tx() as conn:
            args = {"cube": cube_id, "id": relation_id}
            done = conn.execute(sa.text("DELETE FROM graph_relations WHERE cube_id = :cube AND id = :id"),
                                args).rowcount
            conn.execute(sa.text("DELETE FROM graph_links WHERE cube_id = :cube AND relation_id = :id"), args)
        if not done:
            raise NotFound("relation", relation_id)

    def forget_memory(self, cube_id: str, memory_id: str) -> int:
        dropped = 0
        with self._tx() as conn:
            rows = conn.execute(sa.text("""DELETE FROM graph_links WHERE cube_id = :cube AND memory_id = :memory
                RETURNING relation_id, subject, object"""), {"cube": cube_id, "memory": memory_id}).all()
            touched: set[str] = set()
            for rid, subject, obj in rows:
                if conn.execute(sa.text("SELECT 1 FROM graph_links WHERE relation_id = :id LIMIT 1"),
                                {"id": rid}).first() is None:
                    dropped += conn.execute(sa.text("DELETE FROM graph_relations WHERE id = :id"), {"id": rid}).rowcount
                    touched |= {subject, obj}
            for key in sorted(touched):  # an entity no relation names any more was known only from what was forgotten
                args = {"cube": cube_id, "key": key}
                if conn.execute(sa.text("""SELECT 1 FROM graph_relations WHERE cube_id = :cube
                        AND (subject = :key OR object = :key) LIMIT 1"""), args).first() is None:
                    conn.execute(sa.text("DELETE FROM graph_aliases WHERE cube_id = :cube AND entity_key = :key"), args)
                    conn.execute(sa.text("DELETE FROM graph_entities WHERE cube_id = :cube AND key = :key"), args)
        return dropped

    def delete_cube(self, cube_id: str) -> None:
        with self._tx() as conn:
            for table in ("graph_links", "graph_relations", "graph_aliases", "graph_entities"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE cube_id = :cube"), {"cube": cube_id})
