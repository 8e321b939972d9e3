"""The graph operations of the product, each made by an acting user: what the MCP graph tools and the
memio ``/v1/graph`` routes call. Reading needs read access to the cube, changing needs write access,
exactly as for memories; a cube defaults to the user's default cube for writes and to every readable
cube for reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from memos_mcp.core.checks import id_key
from memos_mcp.core.graph.memory import GraphMemory
from memos_mcp.core.graph.store import Entity, Relation, normalise
from memos_mcp.core.models import Memory, MemoryStatus, Permission, User
from memos_mcp.core.payload import from_point
from memos_mcp.core.stores.vector import MemoryFilter
from memos_mcp.core.text import is_blank
from memos_mcp.core.timeparse import from_epoch
from memos_mcp.errors import InvalidRequest, NotFound, NotSupported

if TYPE_CHECKING:
    from memos_mcp.core.access import AccessControl
    from memos_mcp.core.service import MemoryService

MAX_NAME = 200
MAX_TRIPLES = 1000
MAX_SCAN = 100_000  # relations or entities of a cube read to leave out what only archived memories said


class TripleIn(BaseModel):
    subject: str = Field(min_length=1, max_length=MAX_NAME, description="the entity the statement is about")
    predicate: str = Field(min_length=1, max_length=MAX_NAME, description="e.g. works_at, lives_in, knows")
    object: str = Field(min_length=1, max_length=MAX_NAME, description="the other entity or value")
    confidence: float = Field(1.0, ge=0, le=1)


class GraphEntity(BaseModel):
    name: str
    type: str = Field(description="person, date, or empty when unknown")
    aliases: list[str]
    cube_id: str


class GraphRelation(BaseModel):
    id: str
    cube_id: str
    subject: str
    predicate: str
    object: str
    confidence: float
    memory_ids: list[str] = Field(description="the memories this relation was extracted from")
    valid_at: datetime | None = Field(description="since when it holds (null: always)")
    invalid_at: datetime | None = Field(description="when a newer fact ended it (null: still valid)")
    hop: int | None = Field(None, description="distance from the searched entities (graph search only)")


class GraphView(BaseModel):
    entities: list[GraphEntity]
    relations: list[GraphRelation]
    memories: list[Memory] = Field(default_factory=list, description="the memories behind the relations")


def entity_out(entity: Entity) -> GraphEntity:
    return GraphEntity(name=entity.name, type=entity.type, aliases=list(entity.aliases), cube_id=entity.cube_id)


def relation_out(rel: Relation, hop: int | None = None) -> GraphRelation:
    def when(value: float | None) -> datetime | None:
        return from_epoch(value)
    return GraphRelation(id=rel.id, cube_id=rel.cube_id, subject=rel.subject, predicate=rel.predicate,
                         object=rel.object, confidence=rel.confidence, memory_ids=list(rel.memory_ids),
                         valid_at=when(rel.valid_at), invalid_at=when(rel.invalid_at), hop=hop)


def _check_name(kind: str, value: str) -> str:
    """A stated entity or predicate name: 1-``MAX_NAME`` characters with something visible, not only
    dots (an entity is addressed as a path segment, ``/v1/graph/entities/{entity}``, where ``.`` and
    ``..`` vanish)."""
    if is_blank(value) or len(value) > MAX_NAME or not value.strip().strip("."):
        raise InvalidRequest(f"{kind} must be 1-{MAX_NAME} characters, not all blank nor only dots", field=kind)
    return value


class GraphService:
    def __init__(self, service: MemoryService) -> None:
        self.service = service

    @property
    def access(self) -> AccessControl:
        """The service's access control, looked up at each use (stdio opens the service on first use)."""
        return self.service.access

    def _graph(self) -> GraphMemory:
        graph = self.service.graph()
        if graph is None:
            raise NotSupported("graph memory is turned off (graph.enabled is false)")
        return graph

    def _readable(self, user: User, cube_id: str | None) -> list[str]:
        return self.access.readable(user, [cube_id] if cube_id is not None else None)

    def search(self, actor_id: str, *, query: str | None = None, entity: str | None = None, depth: int = 1,
               cube_id: str | None = None, user_id: str | None = None, at: datetime | None = None,
               limit: int = 100, with_memories: bool = False, include_archived: bool = False) -> GraphView:
        """The relations within ``depth`` hops of an entity, or of the entities a query names. Unless
        ``include_archived``, relations whose memories are all archived are left out (and what lies
        beyond them), and so are archived memories."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if (query is None) == (entity is None) or is_blank(query or entity or ""):
            raise InvalidRequest("give exactly one of query or entity, not empty")
        if depth not in (1, 2) or isinstance(depth, bool):
            raise InvalidRequest("depth is 1 or 2", field="depth")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit lies in 1..1000", field="limit")
        graph, when = self._graph(), None if at is None else at.timestamp()
        entities: dict[tuple[str, str], GraphEntity] = {}
        relations: list[GraphRelation] = []
        for cube in self._readable(user, cube_id):
            seeds = graph.query_entities(cube, query) if query is not None else \
                list(graph.store.known(cube, [_check_name("entity", entity or "")]).values())
            if not seeds:
                continue
            edges = graph.store.subgraph(cube, seeds, depth, when)
            if not include_archived:
                edges = self._reachable(cube, seeds, edges)
            relations += [relation_out(rel, hop) for hop, rel in edges]
            names = [*seeds, *(n for _, rel in edges for n in (rel.subject, rel.object))]
            for name in dict.fromkeys(normalise(n) for n in names):
                found = graph.store.entity(cube, name)
                if found is not None:
                    entities.setdefault((cube, found.key), entity_out(found))
        relations = sorted(relations, key=lambda r: (r.hop or 0, -r.confidence))[:limit]
        memories: list[Memory] = []
        if with_memories:
            ids = list(dict.fromkeys(i for r in relations for i in r.memory_ids))
            memories = [m for m in (from_point(p) for p in self.service.ready().retrieve(ids))
                        if include_archived or m.status is MemoryStatus.ACTIVATED] if ids else []
        return GraphView(entities=list(entities.values()), relations=relations, memories=memories)

    def add_relations(self, actor_id: str, triples: Sequence[TripleIn], *, cube_id: str | None = None,
                      user_id: str | None = None) -> list[GraphRelation]:
        """Store stated relations (single-valued predicates end the contradicted ones)."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= len(triples) <= MAX_TRIPLES:
            raise InvalidRequest(f"give 1-{MAX_TRIPLES} triples", field="triples")
        rows = [(_check_name("subject", t.subject), _check_name("predicate", t.predicate),
                 _check_name("object", t.object), t.confidence) for t in triples]
        cube = self.access.writable(user, cube_id)
        with self.service.write_lock:
            return [relation_out(r) for r in self._graph().add_triples(cube.cube_id, rows)]

    def relations(self, actor_id: str, *, cube_id: str | None = None, user_id: str | None = None,
                  entity: str | None = None, limit: int = 100, include_archived: bool = False) -> list[GraphRelation]:
        """Relations valid now, optionally those touching ``entity``; unless ``include_archived``, not
        those whose memories are all archived."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit lies in 1..10000", field="limit")
        graph = self._graph()
        found = [relation_out(r) for cube in self._readable(user, cube_id)
                 for r in self._shown(cube, graph.store.relations(cube, entity=entity, limit=10_000 if not
                                                                 include_archived else limit), include_archived)]
        return found[:limit]

    def entities(self, actor_id: str, *, cube_id: str | None = None, user_id: str | None = None,
                 limit: int = 100, offset: int = 0, include_archived: bool = False) -> list[GraphEntity]:
        """The entities in name order; unless ``include_archived``, not those known only from relations
        whose memories are all archived."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidRequest("limit lies in 1..1000 and offset is not negative", field="limit")
        graph = self._graph()
        found: list[GraphEntity] = []
        for cube in self._readable(user, cube_id):
            listed = graph.store.entities(cube, limit=limit + offset if include_archived else MAX_SCAN)
            hidden = set() if include_archived else self._archived_entities(cube)
            found += [entity_out(e) for e in listed if e.key not in hidden]
        return found[offset:offset + limit]

    def entity(self, actor_id: str, name: str, *, cube_id: str | None = None, user_id: str | None = None,
               include_archived: bool = False) -> tuple[list[GraphEntity], list[GraphRelation]]:
        """The entity (in each readable cube that has it) and its valid relations (unless
        ``include_archived``, not those whose memories are all archived). Raises NotFound."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        graph = self._graph()
        entities, relations = [], []
        for cube in self._readable(user, cube_id):
            found = graph.store.entity(cube, _check_name("entity", name))
            if found is not None and (include_archived or found.key not in self._archived_entities(cube)):
                entities.append(entity_out(found))
                relations += [relation_out(r) for r in self._shown(
                    cube, graph.store.relations(cube, entity=found.name, limit=10_000), include_archived)]
        if not entities:
            raise NotFound("entity", name, "List entities to find valid names.")
        return entities, relations

    def _in_writable(self, user: User, cube_id: str | None) -> list[str]:
        if cube_id is not None:  # "" is refused, never "every cube"
            return [self.access.cube(user, cube_id, Permission.WRITE).cube_id]
        return [c.cube_id for c in self.service.catalog.cubes_of(user.user_id)
                if self.access.may_write(user, c)]

    def delete_entity(self, actor_id: str, name: str, *, cube_id: str | None = None,
                      user_id: str | None = None) -> int:
        """Remove an entity and its relations from the cubes the user can write; relations removed."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        graph, removed, found = self._graph(), 0, False
        with self.service.write_lock:
            for cube in self._in_writable(user, cube_id):
                try:
                    removed += graph.store.delete_entity(cube, _check_name("entity", name))
                    found = True
                except NotFound:
                    continue
        if not found:
            raise NotFound("entity", name, "List entities to find valid names.")
        return removed

    def delete_relation(self, actor_id: str, relation_id: str, *, cube_id: str | None = None,
                        user_id: str | None = None) -> None:
        """Remove a relation for good (to record that it stopped holding, add the new fact instead)."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        graph = self._graph()
        key = id_key(relation_id)
        with self.service.write_lock:
            for cube in self._in_writable(user, cube_id):
                try:
                    graph.store.delete_relation(cube, key)
                    return
                except NotFound:
                    continue
        raise NotFound("relation", relation_id, "Search the graph to find relation ids.")

    def clear(self, actor_id: str, *, cube_id: str | None = None, user_id: str | None = None) -> int:
        """Delete the whole graph of a cube (default: the user's default cube); returns 1."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        cube = self.access.writable(user, cube_id)
        with self.service.write_lock:
            self._graph().store.delete_cube(cube.cube_id)
        return 1

    def relationships(self, memories: Sequence[Memory],
                      include_archived: bool = False) -> dict[str, list[GraphRelation]]:
        """The valid relations each memory (already read by the caller) contributed to (unless
        ``include_archived``, not those whose memories are all archived); none when the graph is off."""
        graph = self.service.graph()
        found: dict[str, list[GraphRelation]] = {m.id: [] for m in memories}
        if graph is None or not memories:
            return found
        by_cube: dict[str, list[str]] = {}
        for memory in memories:
            by_cube.setdefault(memory.cube_id, []).append(memory.id)
        for cube, ids in by_cube.items():
            for rel in self._shown(cube, graph.store.relations_of(cube, ids), include_archived):
                for memory_id in set(rel.memory_ids) & set(ids):
                    found[memory_id].append(relation_out(rel))
        return found

    def _archived(self, cube_id: str, relations: Sequence[Relation]) -> set[str]:
        """Ids of the relations all of whose memories are archived (stated relations have none)."""
        ids = tuple(dict.fromkeys(i for r in relations for i in r.memory_ids))
        if not ids:
            return set()
        archived = {p.id for p in self.service.ready().scroll(
            MemoryFilter(cube_ids=(cube_id,), status=(MemoryStatus.ARCHIVED.value,), ids=ids), len(ids))}
        return {r.id for r in relations if r.memory_ids and archived.issuperset(r.memory_ids)} if archived else set()

    def _archived_entities(self, cube_id: str) -> set[str]:
        """Keys of the entities that only relations hidden as archived (``_archived``) touch."""
        relations = self._graph().store.relations(cube_id, limit=MAX_SCAN)
        hidden = self._archived(cube_id, relations)
        if not hidden:
            return set()
        keys = {r.id: {normalise(r.subject), normalise(r.object)} for r in relations}
        shown = {k for i, pair in keys.items() if i not in hidden for k in pair}
        return {k for i in hidden for k in keys[i]} - shown

    def _shown(self, cube_id: str, relations: Sequence[Relation], include_archived: bool) -> list[Relation]:
        hidden = set() if include_archived else self._archived(cube_id, relations)
        return [r for r in relations if r.id not in hidden]

    def _reachable(self, cube_id: str, seeds: Sequence[str],
                   edges: Sequence[tuple[int, Relation]]) -> list[tuple[int, Relation]]:
        """The edges of a walk without the hidden relations and the second hops reached only through them."""
        hidden = self._archived(cube_id, [rel for _, rel in edges])
        near = [(hop, rel) for hop, rel in edges if hop == 1 and rel.id not in hidden]
        reached = {normalise(n) for n in seeds} | {normalise(n) for _, rel in near for n in (rel.subject, rel.object)}
        return [*near, *((hop, rel) for hop, rel in edges if hop > 1 and rel.id not in hidden
                         and (normalise(rel.subject) in reached or normalise(rel.object) in reached))]
