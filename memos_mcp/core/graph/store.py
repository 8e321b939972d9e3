"""The graph store port: entities and the relations between them, per cube, with provenance and time.

An entity is identified within its cube by a normalised key (whitespace collapsed, case folded), so
"Alice", "alice " and "ALICE" are one entity; an alias resolves to its entity the same way. A relation
(subject, predicate, object) carries the ids of the memories it was extracted from and a validity
window: ``valid_at`` (null: since always) and ``invalid_at`` (null: still valid). Relations are
invalidated, never silently rewritten, so a question "as of then" still has its answer.
Times are epoch seconds (float). Backends: ``sqlite_store`` (embedded), ``postgres_store`` (embedded, in
the catalog's PostgreSQL database) and ``neo4j_store`` (Bolt).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_DECAY = 0.5  # weight kept per extra hop in memories_for


def normalise(name: str) -> str:
    """The key an entity name is matched by."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Entity:
    name: str
    type: str = ""
    aliases: tuple[str, ...] = ()
    cube_id: str = ""

    @property
    def key(self) -> str:
        return normalise(self.name)


@dataclass(frozen=True)
class Relation:
    id: str
    cube_id: str
    subject: str
    predicate: str
    object: str
    confidence: float = 1.0
    memory_ids: list[str] = field(default_factory=list)
    valid_at: float | None = None
    invalid_at: float | None = None
    created_at: float = field(default_factory=time.time)

    def valid(self, at: float) -> bool:
        return (self.valid_at is None or self.valid_at <= at) and (self.invalid_at is None or self.invalid_at > at)

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes two relations the same statement."""
        return normalise(self.subject), normalise(self.predicate), normalise(self.object)


def resolved(names: Sequence[str], found: dict[str, str]) -> dict[str, str]:
    """Each name's entity key from ``found`` (normalised name -> key), else its own normalised key."""
    return {name: found.get(normalise(name), normalise(name)) for name in names}


def merge_ids(old: Iterable[str], new: Iterable[str]) -> list[str]:
    """Provenance union, first-seen order."""
    return list(dict.fromkeys([*old, *new]))


class GraphStore(ABC):
    """What the memory service needs from a graph database. Every call is scoped to one cube."""

    @abstractmethod
    def open(self) -> None:
        """Connect and create the schema; raises BackendUnavailable when the server cannot be reached."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def upsert_entities(self, cube_id: str, entities: Sequence[Entity]) -> None:
        """Create or update by key: a non-empty type replaces the old one, aliases are added to."""

    @abstractmethod
    def entity(self, cube_id: str, name: str) -> Entity | None:
        """The entity whose name or alias normalises like ``name``."""

    @abstractmethod
    def entities(self, cube_id: str, limit: int = 100, offset: int = 0) -> list[Entity]:
        """Entities ordered by key."""

    @abstractmethod
    def types(self, cube_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The type of each entity of the cube among ``keys`` (entity keys, as ``known`` gives them; other
        keys are left out): one read, where ``entity`` costs several per name."""

    def known(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        """The names (by key or alias) that are entities of the cube, each with its entity's key."""
        found = self._found(cube_id, names)
        return {name: found[normalise(name)] for name in names if normalise(name) in found}

    @abstractmethod
    def delete_entity(self, cube_id: str, name: str) -> int:
        """Remove an entity, its aliases and every relation touching it (whatever their validity).
        Returns the number of relations removed. Raises NotFound."""

    @abstractmethod
    def store_relations(self, cube_id: str, relations: Sequence[Relation]) -> list[str]:
        """Store relations, creating missing entities. A relation identical (by normalised subject,
        predicate and object) to one still valid adds its memory ids to that one's provenance instead
        of being stored twice. Returns the stored relations' ids, one per input, in order. Costs the
        same however many memories the relations already have (nothing of their provenance is read)."""

    @abstractmethod
    def _by_ids(self, cube_id: str | None, ids: Sequence[str]) -> list[Relation]:
        """The relations with these ids (in ``cube_id``, or any cube when None), in no given order."""

    def add_relations(self, cube_id: str, relations: Sequence[Relation]) -> list[Relation]:
        """``store_relations``, then the stored relations with their whole provenance, one per input."""
        stored = self.store_relations(cube_id, relations) if relations else []
        by_id = {r.id: r for r in self._by_ids(cube_id, stored)}
        return [by_id[i] for i in stored]

    @abstractmethod
    def invalidate(self, relation_id: str, at: float | None = None) -> Relation:
        """Set ``invalid_at`` (now by default); the relation is kept. Raises NotFound."""

    @abstractmethod
    def relations(self, cube_id: str, *, entity: str | None = None, at: float | None = None,
                  limit: int = 100) -> list[Relation]:
        """Relations valid at ``at`` (now by default), optionally only those touching ``entity``."""

    @abstractmethod
    def relations_of(self, cube_id: str, memory_ids: Sequence[str], at: float | None = None) -> list[Relation]:
        """Relations valid at ``at`` (now by default) whose provenance holds any of the memory ids."""

    @abstractmethod
    def delete_relation(self, cube_id: str, relation_id: str) -> None:
        """Remove a relation for good. Raises NotFound."""

    @abstractmethod
    def linked_memories(self, cube_id: str, keys: Sequence[str], at: float | None = None,
                        limit: int = 1000) -> list[str]:
        """At most ``limit`` ids of the memories behind relations valid at ``at`` (now by default) that
        touch any of the entity ``keys``, the newest first: by when each was linked (embedded store) or
        by relation, newest first, then by place in its provenance (Bolt). On the embedded store its
        cost follows ``limit``, not how many memories the entities are linked to."""

    @abstractmethod
    def memory_entities(self, cube_id: str, memory_ids: Sequence[str],
                        at: float | None = None) -> dict[str, set[str]]:
        """The keys of the entities each memory is linked to by relations valid at ``at`` (now by
        default); memories without any are left out. Its cost follows ``len(memory_ids)``."""

    @abstractmethod
    def forget_memory(self, cube_id: str, memory_id: str) -> int:
        """Remove a memory from every relation's provenance, drop relations left with none and the
        entities no relation names any more. Returns the number of relations dropped."""

    @abstractmethod
    def delete_cube(self, cube_id: str) -> None: ...

    @abstractmethod
    def _edges(self, cube_id: str, keys: Sequence[str], at: float) -> list[tuple[str, str, Relation]]:
        """Relations valid at ``at`` touching any of the entity keys, as (subject key, object key,
        relation). The one primitive the traversals below are built on."""

    @abstractmethod
    def _found(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        """Entity key of each normalised name that is an entity's key or alias (an entity's own key
        beats another's alias). The one lookup by name the rest is built on."""

    def _resolve(self, cube_id: str, names: Sequence[str]) -> dict[str, str]:
        """Entity key for each name (by key or alias); unknown names map to their own key."""
        return resolved(names, self._found(cube_id, names))

    def _walk(self, cube_id: str, names: Sequence[str], depth: int,
              at: float | None) -> tuple[dict[str, int], dict[str, str], list[tuple[int, Relation]]]:
        """Breadth-first over valid relations: hop of each reached key, display names, edges by hop."""
        if depth not in (1, 2):
            raise ValueError("depth must be 1 or 2")
        when = time.time() if at is None else at
        seeds = set(self._resolve(cube_id, names).values())
        hops = dict.fromkeys(seeds, 0)
        display: dict[str, str] = {}
        edges: list[tuple[int, Relation]] = []
        seen_edges: set[str] = set()
        frontier = sorted(seeds)
        for hop in range(1, depth + 1):
            if not frontier:
                break
            reached: list[str] = []
            for s_key, o_key, rel in self._edges(cube_id, frontier, when):
                if rel.id not in seen_edges:
                    seen_edges.add(rel.id)
                    edges.append((hop, rel))
                for key, name in ((s_key, rel.subject), (o_key, rel.object)):
                    display.setdefault(key, name)
                    if key not in hops:
                        hops[key] = hop
                        reached.append(key)
            frontier = reached
        return hops, display, edges

    def subgraph(self, cube_id: str, entities: Sequence[str], depth: int = 1,
                 at: float | None = None) -> list[tuple[int, Relation]]:
        """The relations valid at ``at`` within ``depth`` hops, each with its hop (1: touching the entities)."""
        return self._walk(cube_id, entities, depth, at)[2]

    def neighbours(self, cube_id: str, entities: Sequence[str], depth: int = 1,
                   at: float | None = None) -> set[str]:
        """Names of the entities reachable within ``depth`` hops over relations valid at ``at``
        (now by default), the starting entities excluded."""
        hops, display, _ = self._walk(cube_id, entities, depth, at)
        return {display[key] for key, hop in hops.items() if hop > 0}

    def memories_for(self, cube_id: str, entities: Sequence[str], depth: int = 1, at: float | None = None,
                     decay: float = DEFAULT_DECAY) -> dict[str, float]:
        """All the memory ids behind the relations within ``depth`` hops, weighted ``decay ** (hop - 1)``:
        1.0 for relations touching the entities, ``decay`` one step further. Best weight wins."""
        _, _, edges = self._walk(cube_id, entities, depth, at)
        weights: dict[str, float] = {}
        for hop, rel in edges:
            weight = decay ** (hop - 1)
            for memory_id in rel.memory_ids:
                weights[memory_id] = max(weights.get(memory_id, 0.0), weight)
        return weights
