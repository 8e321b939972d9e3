"""The Bolt graph store: Neo4j (or any server speaking Bolt and openCypher, such as FalkorDB) through
the official ``neo4j`` driver.

Model: ``(:Entity {cube_id, key, name, type, aliases, alias_keys})`` nodes joined by
``[:REL {id, cube_id, predicate, predicate_key, confidence, memory_ids, valid_at, invalid_at,
created_at}]`` from subject to object. Times are epoch seconds (floats); no temporal types, because
FalkorDB rejects ``datetime()`` and crashes on ``localdatetime()``.

Data operations use portable Cypher only (MATCH, MERGE, UNWIND, SET +=, DETACH DELETE), batched with
UNWIND since a Bolt round trip to FalkorDB costs about 44 ms. The schema statements in ``_SCHEMA``
(a uniqueness constraint on (cube_id, key) per entity, an index on the relation id) are Neo4j 5 DDL:
real Neo4j applies them; FalkorDB rejects them, which ``open()`` logs at debug level and tolerates. The
same indexes in the unnamed form follow, which FalkorDB accepts, so that an add finds its entities and
relations by index there too (without, every lookup scanned every entity of the graph).

Provenance is a list of memory ids per relation: an add appends the new ids on the server (only they
travel), which the server still does in time linear in the list; memory links as records of their own
(as the embedded store keeps them) are not built for Bolt yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from neo4j import Driver, GraphDatabase, ManagedTransaction, Record
from neo4j.exceptions import ConfigurationError, DriverError, Neo4jError, ServiceUnavailable

from memos_mcp.core.graph.store import Entity, GraphStore, Relation, merge_ids, normalise, resolved
from memos_mcp.errors import BackendUnavailable, ConfigError, NotFound, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = (
    "CREATE CONSTRAINT memos_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.cube_id, e.key) IS UNIQUE",
    "CREATE INDEX memos_relation_id IF NOT EXISTS FOR ()-[r:REL]-() ON (r.id)",
    # The unnamed forms FalkorDB accepts (once: again, it and Neo4j answer that the index exists).
    "CREATE INDEX FOR (e:Entity) ON (e.key)",
    "CREATE INDEX FOR ()-[r:REL]-() ON (r.id)",
)
_VALID = "(r.valid_at IS NULL OR r.valid_at <= $at) AND (r.invalid_at IS NULL OR r.invalid_at > $at)"
_RETURN = """RETURN r.id AS id, r.cube_id AS cube_id, s.key AS s_key, s.name AS subject, r.predicate AS predicate,
    o.key AS o_key, o.name AS object, r.confidence AS confidence, r.memory_ids AS memory_ids,
    r.valid_at AS valid_at, r.invalid_at AS invalid_at, r.created_at AS created_at"""
_NEW_ENTITY = "ON CREATE SET {v}.name = {name}, {v}.type = '', {v}.aliases = [], {v}.alias_keys = []"


def _relation(rec: Record) -> Relation:
    return Relation(id=rec["id"], cube_id=rec["cube_id"], subject=rec["subject"], predicate=rec["predicate"],
                    object=rec["object"], confidence=float(rec["confidence"]), memory_ids=list(rec["memory_ids"]),
                    valid_at=rec["valid_at"], invalid_at=rec["invalid_at"], created_at=float(rec["created_at"]))


class Neo4jGraphStore(GraphStore):
    def __init__(self, uri: str, user: str = "neo4j", password: str = "", database: str = "neo4j") -> None:
        self.uri = uri
        self.database = database
        self._auth = (user, password)
        self._driver: Driver | None = None

    # --- plumbing ----------------------------------------------------------------------------
    def open(self) -> None:
        try:
            driver = GraphDatabase.driver(self.uri, auth=self._auth)
        except (ConfigurationError, ValueError) as exc:
            raise ConfigError(f"bad graph store URI {self.uri!r}: {exc}", uri=self.uri) from exc
        self._driver = driver
        try:
            driver.verify_connectivity()
        except (ServiceUnavailable, OSError) as exc:
            self.close()
            raise BackendUnavailable(f"graph store at {self.uri} is unreachable: {exc}", uri=self.uri) from exc
        except (Neo4jError, DriverError) as exc:
            self.close()
            raise StorageError(f"cannot open graph store at {self.uri}: {exc}", uri=self.uri) from exc
        for statement in _SCHEMA:
            try:
                driver.execute_query(statement, database_=self.database)
            except ServiceUnavailable as exc:
                self.close()
                raise BackendUnavailable(f"graph store at {self.uri} is unreachable: {exc}", uri=self.uri) from exc
            except (Neo4jError, DriverError) as exc:
                log.debug("graph server rejected schema statement %r: %s", statement, exc)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def _run(self, work: Callable[[ManagedTransaction], T], *, write: bool) -> T:
        if self._driver is None:
            raise StorageError("the graph store is not open", uri=self.uri)
        try:
            with self._driver.session(database=self.database) as session:
                return session.execute_write(work) if write else session.execute_read(work)
        except ServiceUnavailable as exc:
            raise BackendUnavailable(f"graph store at {self.uri} is unreachable: {exc}", uri=self.uri) from exc
        except (Neo4jError, DriverError) as exc:
            raise StorageError(f"graph store at {self.uri} failed: {exc}", uri=self.uri) from exc

    def _query(self, cypher: str, *, write: bool = False, **params: Any) -> list[Record]:
        def work(tx: ManagedTransaction) -> list[Record]:
            return list(tx.run(cypher, params))
        return self._run(work, write=write)

    # --- entities ----------------------------------------------------------------------------
    @staticmethod
    def _found_in(tx: ManagedTransaction, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        """Entity key of each normalised name that is an entity's key or alias."""
        keys = sorted({normalise(n) for n in names})
        found: dict[str, str] = {}
        if keys:
            for rec in tx.run("""UNWIND $keys AS k MATCH (e:Entity {cube_id: $cube})
                    WHERE e.key = k OR k IN e.alias_keys RETURN k, e.key AS key""", keys=keys, cube=cube_id):
                if found.get(rec["k"]) != rec["k"]:  # an entity's own key beats an alias
                    found[rec["k"]] = rec["key"]
        return found

    def _found(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        return self._run(lambda tx: self._found_in(tx, cube_id, names), write=False)

    def delete_entity(self, cube_id: str, name: str) -> int:
        def work(tx: ManagedTransaction) -> int | None:
            key = self._found_in(tx, cube_id, [name]).get(normalise(name))
            if key is None:
                return None
            rec = tx.run("""MATCH (e:Entity {cube_id: $cube, key: $key}) OPTIONAL MATCH (e)-[r:REL]-()
                WITH e, count(r) AS dropped DETACH DELETE e RETURN dropped""", cube=cube_id, key=key).single()
            return int(rec["dropped"]) if rec is not None else 0
        dropped = self._run(work, write=True)
        if dropped is None:
            raise NotFound("entity", name)
        return dropped

    def upsert_entities(self, cube_id: str, entities: Sequence[Entity]) -> None:
        rows = []
        for ent in entities:
            aliases = {normalise(a): a for a in ent.aliases if normalise(a) != ent.key}
            rows.append({"key": ent.key, "name": ent.name, "type": ent.type,
                         "aliases": list(aliases.values()), "alias_keys": list(aliases)})
        if not rows:
            return
        self._query(f"""UNWIND $rows AS row MERGE (e:Entity {{cube_id: $cube, key: row.key}})
            {_NEW_ENTITY.format(v="e", name="row.name")}
            SET e.type = CASE WHEN row.type <> '' THEN row.type ELSE e.type END,
                e.aliases = e.aliases + [i IN range(0, size(row.aliases) - 1)
                                         WHERE NOT row.alias_keys[i] IN e.alias_keys | row.aliases[i]]
            SET e.alias_keys = e.alias_keys + [k IN row.alias_keys WHERE NOT k IN e.alias_keys]""",
                    write=True, rows=rows, cube=cube_id)

    @staticmethod
    def _entity(rec: Record, cube_id: str) -> Entity:
        aliases = tuple(sorted(rec["aliases"] or (), key=normalise))
        return Entity(name=rec["name"], type=rec["type"] or "", aliases=aliases, cube_id=cube_id)

    def entity(self, cube_id: str, name: str) -> Entity | None:
        key = self._resolve(cube_id, [name])[name]
        recs = self._query("""MATCH (e:Entity {cube_id: $cube, key: $key})
            RETURN e.name AS name, e.type AS type, e.aliases AS aliases""", cube=cube_id, key=key)
        return self._entity(recs[0], cube_id) if recs else None

    def types(self, cube_id: str, keys: Sequence[str]) -> dict[str, str]:
        unique = sorted(set(keys))
        if not unique:
            return {}
        recs = self._query("""UNWIND $keys AS k MATCH (e:Entity {cube_id: $cube, key: k})
            RETURN e.key AS key, e.type AS type""", cube=cube_id, keys=unique)
        return {rec["key"]: rec["type"] for rec in recs}

    def entities(self, cube_id: str, limit: int = 100, offset: int = 0) -> list[Entity]:
        recs = self._query("""MATCH (e:Entity {cube_id: $cube}) RETURN e.name AS name, e.type AS type,
            e.aliases AS aliases ORDER BY e.key SKIP $offset LIMIT $limit""", cube=cube_id, offset=offset, limit=limit)
        return [self._entity(rec, cube_id) for rec in recs]

    # --- relations ---------------------------------------------------------------------------
    def store_relations(self, cube_id: str, relations: Sequence[Relation]) -> list[str]:
        """New memory ids are appended on the server (only they travel; the stored list is not read)."""
        if not relations:
            return []

        def work(tx: ManagedTransaction) -> list[str]:
            now = time.time()
            names = [n for r in relations for n in (r.subject, r.object)]
            keys = resolved(names, self._found_in(tx, cube_id, names))
            identity = [(keys[r.subject], normalise(r.predicate), keys[r.object]) for r in relations]
            probe = [{"s": s, "p": p, "o": o} for s, p, o in dict.fromkeys(identity)]
            existing: dict[tuple[str, str, str], str] = {}
            for rec in tx.run("""UNWIND $rows AS row
                    MATCH (s:Entity {cube_id: $cube, key: row.s})-[r:REL]->(o:Entity {cube_id: $cube, key: row.o})
                    WHERE r.predicate_key = row.p AND (r.invalid_at IS NULL OR r.invalid_at > $now)
                    RETURN row.s AS s, row.p AS p, row.o AS o, r.id AS id
                    ORDER BY r.created_at""", rows=probe, cube=cube_id, now=now):
                existing.setdefault((rec["s"], rec["p"], rec["o"]), rec["id"])
            stored: list[str] = []
            updates: dict[str, list[str]] = {}
            creates: dict[str, dict[str, Any]] = {}
            for rel, ident in zip(relations, identity, strict=True):
                if ident in existing:
                    rid = existing[ident]
                    if rid in creates:
                        props = creates[rid]["props"]
                        props["memory_ids"] = merge_ids(props["memory_ids"], rel.memory_ids)
                    else:
                        updates[rid] = merge_ids(updates.get(rid, []), rel.memory_ids)
                    stored.append(rid)
                    continue
                props = {"id": rel.id, "cube_id": cube_id, "predicate": rel.predicate, "predicate_key": ident[1],
                         "confidence": float(rel.confidence), "memory_ids": merge_ids([], rel.memory_ids),
                         "valid_at": rel.valid_at, "invalid_at": rel.invalid_at, "created_at": float(rel.created_at)}
                creates[rel.id] = {"s": ident[0], "sn": rel.subject, "o": ident[2], "on": rel.object, "props": props}
                if rel.invalid_at is None or rel.invalid_at > now:
                    existing[ident] = rel.id
                stored.append(rel.id)
            if updates:
                tx.run("""UNWIND $rows AS row MATCH (:Entity {cube_id: $cube})-[r:REL {id: row.id}]->()
                    SET r.memory_ids = r.memory_ids + [m IN row.m WHERE NOT m IN r.memory_ids]""",
                       rows=[{"id": k, "m": v} for k, v in updates.items()], cube=cube_id).consume()
            if creates:
                tx.run(f"""UNWIND $rows AS row
                    MERGE (s:Entity {{cube_id: $cube, key: row.s}}) {_NEW_ENTITY.format(v="s", name="row.sn")}
                    MERGE (o:Entity {{cube_id: $cube, key: row.o}}) {_NEW_ENTITY.format(v="o", name="row.on")}
                    CREATE (s)-[r:REL]->(o) SET r += row.props""", rows=list(creates.values()),
                       cube=cube_id).consume()
            return stored

        return self._run(work, write=True)

    def _by_ids(self, cube_id: str | None, ids: Sequence[str]) -> list[Relation]:
        scope = "{cube_id: $cube}" if cube_id is not None else ""
        recs = self._query(f"""UNWIND $ids AS rid MATCH (s:Entity {scope})-[r:REL {{id: rid}}]->(o:Entity)
            {_RETURN}""", ids=sorted(set(ids)), cube=cube_id)
        return [_relation(rec) for rec in recs]

    def invalidate(self, relation_id: str, at: float | None = None) -> Relation:
        when = time.time() if at is None else float(at)
        recs = self._query(f"""MATCH (s:Entity)-[r:REL {{id: $id}}]->(o:Entity) SET r.invalid_at = $at
            {_RETURN}""", write=True, id=relation_id, at=when)
        if not recs:
            raise NotFound("relation", relation_id)
        return _relation(recs[0])

    def relations(self, cube_id: str, *, entity: str | None = None, at: float | None = None,
                  limit: int = 100) -> list[Relation]:
        when = time.time() if at is None else float(at)
        touching = ""
        key = None
        if entity is not None:
            key = self._resolve(cube_id, [entity])[entity]
            touching = "AND (s.key = $key OR o.key = $key)"
        recs = self._query(f"""MATCH (s:Entity {{cube_id: $cube}})-[r:REL]->(o:Entity)
            WHERE {_VALID} {touching} {_RETURN} ORDER BY created_at, id LIMIT $limit""",
                           cube=cube_id, at=when, key=key, limit=limit)
        return [_relation(rec) for rec in recs]

    def _edges(self, cube_id: str, keys: Sequence[str], at: float) -> list[tuple[str, str, Relation]]:
        recs = self._query(f"""MATCH (s:Entity {{cube_id: $cube}})-[r:REL]->(o:Entity)
            WHERE (s.key IN $keys OR o.key IN $keys) AND {_VALID} {_RETURN} ORDER BY created_at, id""",
                           cube=cube_id, keys=list(keys), at=at)
        return [(rec["s_key"], rec["o_key"], _relation(rec)) for rec in recs]

    def relations_of(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> list[Relation]:
        if not memory_ids:
            return []
        when = time.time() if at is None else float(at)
        recs = self._query(f"""MATCH (s:Entity {{cube_id: $cube}})-[r:REL]->(o:Entity)
            WHERE {_VALID} AND any(m IN r.memory_ids WHERE m IN $ids) {_RETURN} ORDER BY created_at, id""",
                           cube=cube_id, at=when, ids=sorted(set(memory_ids)))
        return [_relation(rec) for rec in recs]

    def linked_memories(self, cube_id: str, keys: Sequence[str], at: float | None = None,
                        limit: int = 1000) -> list[str]:
        """Only ``limit`` ids travel; the server still reads the provenance lists of the relations."""
        if not keys or limit <= 0:
            return []
        when = time.time() if at is None else float(at)
        recs = self._query(f"""MATCH (s:Entity {{cube_id: $cube}})-[r:REL]->(o:Entity)
            WHERE (s.key IN $keys OR o.key IN $keys) AND {_VALID}
            WITH r ORDER BY r.created_at DESC, r.id UNWIND range(size(r.memory_ids) - 1, 0, -1) AS i
            WITH r.memory_ids[i] AS m, r.created_at AS t, i ORDER BY t DESC, i DESC
            RETURN m LIMIT $limit""", cube=cube_id, keys=sorted(set(keys)), at=when, limit=4 * limit)
        return list(dict.fromkeys(rec["m"] for rec in recs))[:limit]

    def memory_entities(self, cube_id: str, memory_ids: Sequence[str],
                        at: float | None = None) -> dict[str, set[str]]:
        if not memory_ids:
            return {}
        when = time.time() if at is None else float(at)
        recs = self._query(f"""MATCH (s:Entity {{cube_id: $cube}})-[r:REL]->(o:Entity)
            WHERE {_VALID} AND any(m IN r.memory_ids WHERE m IN $ids)
            UNWIND [m IN r.memory_ids WHERE m IN $ids] AS m RETURN m, s.key AS s, o.key AS o""",
                           cube=cube_id, at=when, ids=sorted(set(memory_ids)))
        found: dict[str, set[str]] = {}
        for rec in recs:
            found.setdefault(rec["m"], set()).update((rec["s"], rec["o"]))
        return found

    def delete_relation(self, cube_id: str, relation_id: str) -> None:
        recs = self._query("""MATCH (:Entity {cube_id: $cube})-[r:REL {id: $id}]->() DELETE r RETURN 1 AS done""",
                           write=True, cube=cube_id, id=relation_id)
        if not recs:
            raise NotFound("relation", relation_id)

    def forget_memory(self, cube_id: str, memory_id: str) -> int:
        def work(tx: ManagedTransaction) -> int:
            # Only the relations that held the memory go when it was their last: a stated relation stays.
            held = {rec["id"]: rec["n"] for rec in tx.run(
                """MATCH (:Entity {cube_id: $cube})-[r:REL]->() WHERE $mid IN r.memory_ids
                RETURN r.id AS id, size(r.memory_ids) AS n""", cube=cube_id, mid=memory_id)}
            tx.run("""MATCH (:Entity {cube_id: $cube})-[r:REL]->() WHERE $mid IN r.memory_ids
                SET r.memory_ids = [m IN r.memory_ids WHERE m <> $mid]""", cube=cube_id, mid=memory_id).consume()
            last = [rid for rid, n in held.items() if n == 1]
            if last:
                tx.run("""UNWIND $ids AS rid MATCH (:Entity {cube_id: $cube})-[r:REL {id: rid}]->() DELETE r""",
                       cube=cube_id, ids=last).consume()
            # An entity no relation names any more was known only from what was forgotten.
            tx.run("""MATCH (e:Entity {cube_id: $cube}) WHERE NOT (e)-[:REL]-() DELETE e""", cube=cube_id).consume()
            return len(last)
        return self._run(work, write=True)

    def delete_cube(self, cube_id: str) -> None:
        self._query("MATCH (e:Entity {cube_id: $cube}) DETACH DELETE e", write=True, cube=cube_id)
