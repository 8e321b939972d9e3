"""Graph memory: what the memory service does with the graph store, in one place.

``ingest`` stores the graphs of new memories (provenance: their ids; validity from their time) and
applies contradiction: a relation whose predicate is single-valued (``SINGLE_VALUED``, or named in
the extraction's ``replaces``) ends the still-valid relations with the same subject and predicate but
another object, by setting their ``invalid_at`` to the new fact's time; nothing is deleted. A fact
older than the relation it contradicts is stored already ended where the newer one starts.
``extract`` reads the deterministic graphs of memories stored together, knowing who takes part. ``expand``
turns a query into memory weights for search fusion, and names the people it resolved.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from memos_mcp.core.graph.extract import PERSON, ExtractedGraph, extract_graph, named_entities, query_names
from memos_mcp.core.graph.store import Entity, GraphStore, Relation, merge_ids, normalise

SINGLE_VALUED = frozenset((
    "is", "is_a", "age", "job", "title", "status", "lives_in", "lives_at", "located_in", "works_at",
    "works_for", "works_as", "employer", "married_to", "spouse", "partner", "dating", "nationality",
    "home", "born_in", "born_on",
))


def predicate_key(predicate: str) -> str:
    """``Lives in``, ``lives-in`` and ``lives_in`` are one predicate."""
    return "_".join(normalise(predicate).replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class MemoryGraph:
    """The graph of one stored memory, and when what it says became true (epoch seconds)."""

    memory_id: str
    graph: ExtractedGraph
    at: float | None = None


LINKED = 300  # the newest memories of each named entity a query's expansion reads; also counts specificity
Weigh = Callable[[Sequence[str]], dict[str, float]]


@dataclass(frozen=True)
class Expansion:
    """What the graph makes of a query: memory weights in [0, 1] for fusion, and the keys of the people
    the query names (search takes their names out of the text it embeds and matches: the graph links
    carry them, and a name said to a person in a memory no longer looks like one said about them).

    ``links`` are the candidates fusion may bring in beside the hybrid hits: with one hop, the ``LINKED``
    newest memories of each named entity (so their number, and the cost of finding and scoring them,
    does not grow with how many memories a person has). ``weigh`` gives the exact link weight of any
    memories (those of the cube apart, weight > 0 only), such as the hits of the hybrid search; None
    when ``links`` holds every linked memory already (two hops)."""

    links: dict[str, float]
    people: tuple[str, ...] = ()
    weigh: Weigh | None = None

    def weights(self, memory_ids: Sequence[str]) -> dict[str, float]:
        """The link weights of ``memory_ids`` (those linked only)."""
        if self.weigh is None:
            return {i: self.links[i] for i in memory_ids if i in self.links}
        return self.weigh(memory_ids)


class GraphMemory:
    def __init__(self, store: GraphStore, decay: float = 0.5, entity_links: bool = True) -> None:
        self.store = store
        self.decay = decay
        self.entity_links = entity_links  # False: a query is expanded through the people it names only

    def ingest(self, cube_id: str, items: Sequence[MemoryGraph]) -> list[str]:
        """Store the entities and relations of memories; returns the stored relations' ids (their
        provenance is not read back: an add costs the same however many memories a relation has)."""
        entities: dict[str, Entity] = {}
        merged: dict[tuple[str, str, str], Relation] = {}
        replacing: set[tuple[str, str, str]] = set()
        for item in items:
            replaced = {predicate_key(p) for p in item.graph.replaces}
            for ent in item.graph.entities:
                old = entities.get(ent.key)
                entities[ent.key] = ent if old is None else replace(
                    old, type=ent.type or old.type, aliases=tuple(dict.fromkeys([*old.aliases, *ent.aliases])))
            for subject, predicate, obj, confidence in item.graph.relations:
                rel = _relation(cube_id, subject, predicate, obj, confidence, [item.memory_id], item.at)
                ident = (normalise(subject), predicate_key(predicate), normalise(obj))
                known = merged.get(ident)
                merged[ident] = rel if known is None else replace(
                    known, confidence=max(known.confidence, rel.confidence),
                    memory_ids=merge_ids(known.memory_ids, rel.memory_ids),
                    valid_at=_earliest(known.valid_at, rel.valid_at))
                if ident[1] in SINGLE_VALUED or ident[1] in replaced:
                    replacing.add(ident)
        if entities:
            self.store.upsert_entities(cube_id, list(entities.values()))
        plain = [rel for ident, rel in merged.items() if ident not in replacing]
        stored = self.store.store_relations(cube_id, plain) if plain else []
        for ident in replacing:  # one at a time, each seeing the ones before it
            stored += self.store.store_relations(cube_id, [self._supersede(cube_id, merged[ident])])
        return stored

    def add_triples(self, cube_id: str, triples: Sequence[tuple[str, str, str, float]],
                    at: float | None = None) -> list[Relation]:
        """Relations stated directly (no memory behind them), with contradiction as for memories."""
        stored: list[Relation] = []
        for s, p, o, c in triples:
            rel = _relation(cube_id, s, p, o, c, [], at)
            single = predicate_key(p) in SINGLE_VALUED
            stored += self.store.add_relations(cube_id, [self._supersede(cube_id, rel) if single else rel])
        return stored

    def _supersede(self, cube_id: str, new: Relation) -> Relation:
        """End the valid relations ``new`` contradicts; ``new`` itself, ended if a later fact already holds."""
        subject = self.store.entity(cube_id, new.subject)
        if subject is None:
            return new
        when = time.time() if new.valid_at is None else new.valid_at
        pkey, okey = predicate_key(new.predicate), normalise(new.object)
        current = {r.id: r for at in (when, None) for r in self.store.relations(cube_id, entity=subject.name, at=at,
                                                                                limit=10_000)}
        ends_at = new.invalid_at
        for old in current.values():
            if normalise(old.subject) != subject.key or predicate_key(old.predicate) != pkey or \
                    normalise(old.object) == okey:
                continue
            if old.valid_at is not None and old.valid_at > when:  # the old relation is the newer fact
                ends_at = old.valid_at if ends_at is None else min(ends_at, old.valid_at)
            else:
                self.store.invalidate(old.id, at=when)
        return replace(new, invalid_at=ends_at)

    def forget(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        """Remove memories from the provenance of relations; returns how many relations were dropped."""
        return sum(self.store.forget_memory(cube_id, memory_id) for memory_id in memory_ids)

    def query_entities(self, cube_id: str, query: str) -> list[str]:
        """Keys of the cube's entities a query names (by name or alias, any case)."""
        return list(dict.fromkeys(self.store.known(cube_id, query_names(query)).values()))

    def people(self, cube_id: str, names: Collection[str]) -> set[str]:
        """Keys of the persons of the cube among ``names``."""
        types = self.store.types(cube_id, list(self.store.known(cube_id, list(names)).values()))
        return {key for key, kind in types.items() if kind == PERSON}

    def extract(self, cube_id: str, items: Sequence[tuple[str, str | None]]) -> list[ExtractedGraph]:
        """Deterministic graphs of memories stored together, each ``(text, speaker)``: the speakers of
        the batch and the persons the cube knows are people a text may only address."""
        speakers = {normalise(s) for _, s in items if s and s.strip()}
        named = {e.key for text, _ in items for e in named_entities(text)} - speakers
        people = speakers | (self.people(cube_id, named) if named else set())
        return [extract_graph(text, speaker, people) for text, speaker in items]

    def expand(self, cube_id: str, query: str, depth: int, at: float | None = None) -> Expansion:
        """Memory weights in [0, 1] from the entities the query names: each entity adds its link weight
        (1 within one hop, ``decay`` at two). A person counts in full: search takes the name out of
        its text, so the graph alone says whom the query is about. Any other entity stays in the text,
        and its links are scaled by how specific it is, 1 / (1 + ln n) for an entity linked directly
        to n memories (n counted up to ``LINKED``), so that a name met everywhere adds little to what
        the text match gives it. With one hop the candidates are each entity's ``LINKED`` newest
        memories and ``weigh`` scores any others; with two, every linked memory is read. With
        ``entity_links`` off, only people expand the query."""
        if depth != 1:
            return self._expand_far(cube_id, query, depth, at)
        specificity: dict[str, float] = {}
        scores: dict[str, float] = {}
        people: list[str] = []
        named = self.query_entities(cube_id, query)
        types = self.store.types(cube_id, named) if named else {}
        for key in named:
            linked = self.store.linked_memories(cube_id, [key], at, LINKED)
            if not linked:
                continue
            if types.get(key) == PERSON:
                people.append(key)
                specificity[key] = 1.0
            elif not self.entity_links:
                continue
            else:
                specificity[key] = 1 / (1 + math.log(len(linked)))
            for memory_id in linked:
                scores[memory_id] = min(1.0, scores.get(memory_id, 0.0) + specificity[key])

        def weigh(memory_ids: Sequence[str]) -> dict[str, float]:
            found = self.store.memory_entities(cube_id, memory_ids, at)
            weights = {m: min(1.0, sum(specificity.get(k, 0.0) for k in keys)) for m, keys in found.items()}
            return {m: w for m, w in weights.items() if w > 0}

        return Expansion(scores, tuple(people), weigh if specificity else None)

    def _expand_far(self, cube_id: str, query: str, depth: int, at: float | None) -> Expansion:
        """``expand`` over two hops: every memory within them is read (its cost follows the fan-out)."""
        scores: dict[str, float] = {}
        people: list[str] = []
        named = self.query_entities(cube_id, query)
        types = self.store.types(cube_id, named) if named else {}
        for key in named:
            weights = self.store.memories_for(cube_id, [key], depth, at, self.decay)
            if not weights:
                continue
            if types.get(key) == PERSON:
                people.append(key)
                specificity = 1.0
            elif not self.entity_links:
                continue
            else:
                direct = len(self.store.linked_memories(cube_id, [key], at, LINKED))
                specificity = 1 / (1 + math.log(max(1, direct)))
            for memory_id, weight in weights.items():
                scores[memory_id] = min(1.0, scores.get(memory_id, 0.0) + specificity * weight)
        return Expansion(scores, tuple(people))


def _relation(cube_id: str, subject: str, predicate: str, obj: str, confidence: float, memory_ids: list[str],
              at: float | None) -> Relation:
    return Relation(id=uuid.uuid4().hex, cube_id=cube_id, subject=subject.strip(), predicate=predicate.strip(),
                    object=obj.strip(), confidence=confidence, memory_ids=memory_ids, valid_at=at)


def _earliest(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else min(a, b)
