"""One contract for every graph store backend: SQLite and Bolt (FalkorDB, or Neo4j via NEO4J_URI)."""

from __future__ import annotations

import time
import uuid

import pytest

from memos_mcp.core.graph.neo4j_store import Neo4jGraphStore
from memos_mcp.core.graph.store import Entity, GraphStore, Relation
from memos_mcp.errors import BackendUnavailable, NotFound


def rel(cube_id: str, subject: str, predicate: str, obj: str, *memory_ids: str, **kw: float) -> Relation:
    return Relation(id=uuid.uuid4().hex, cube_id=cube_id, subject=subject, predicate=predicate, object=obj,
                    memory_ids=list(memory_ids), **kw)


def triples(relations: list[Relation]) -> set[tuple[str, str, str]]:
    return {(r.subject, r.predicate, r.object) for r in relations}


def test_entities_are_found_whatever_the_case_or_alias(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph_store.upsert_entities(cube, [Entity("Alice Smith", "person", ("Ally",)), Entity("Acme", "org")])
    graph_store.upsert_entities(cube, [Entity("ALICE  smith", "", ("A. Smith",))])

    found = graph_store.entity(cube, "alice smith")
    assert found == Entity("Alice Smith", "person", ("A. Smith", "Ally"), cube)
    assert graph_store.entity(cube, "ally") == found
    assert graph_store.entity(cube, "nobody") is None
    assert [e.name for e in graph_store.entities(cube)] == ["Acme", "Alice Smith"]
    assert [e.name for e in graph_store.entities(cube, limit=1, offset=1)] == ["Alice Smith"]


def test_an_identical_valid_relation_merges_provenance(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    first, = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m1")])
    again, other = graph_store.add_relations(cube, [rel(cube, "alice", "Works At", "ACME", "m2", "m1"),
                                                    rel(cube, "Alice", "lives in", "Paris", "m2")])

    assert again.id == first.id
    assert again.memory_ids == ["m1", "m2"]
    assert (again.subject, again.object) == ("Alice", "Acme")
    assert other.id != first.id
    assert len(graph_store.relations(cube)) == 2
    assert triples(graph_store.relations(cube, entity="PARIS")) == {("Alice", "lives in", "Paris")}


def test_invalidation_hides_a_relation_now_but_not_in_the_past(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    now = time.time()
    old, = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m1", valid_at=now - 1000)])
    future, = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Globex", "m2", valid_at=now + 1000)])

    invalidated = graph_store.invalidate(old.id, at=now - 500)

    assert invalidated.invalid_at == pytest.approx(now - 500)
    assert graph_store.relations(cube) == []
    assert [r.id for r in graph_store.relations(cube, at=now - 700)] == [old.id]
    assert [r.id for r in graph_store.relations(cube, at=now + 2000)] == [future.id]
    assert graph_store.neighbours(cube, ["Alice"], at=now - 700) == {"Acme"}
    # a new statement of an invalidated fact starts a new relation instead of reviving the old one
    fresh, = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m3")])
    assert fresh.id != old.id and fresh.memory_ids == ["m3"]
    with pytest.raises(NotFound):
        graph_store.invalidate("no-such-relation")


def chain(graph_store: GraphStore, cube: str) -> None:
    graph_store.add_relations(cube, [
        rel(cube, "Alice", "works at", "Acme", "m1"),
        rel(cube, "Acme", "based in", "Paris", "m2"),
        rel(cube, "Paris", "capital of", "France", "m3"),
        rel(cube, "Bob", "knows", "Alice", "m4"),
    ])


def test_neighbours_reach_one_or_two_hops(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    chain(graph_store, cube)

    assert graph_store.neighbours(cube, ["alice"]) == {"Acme", "Bob"}
    assert graph_store.neighbours(cube, ["alice"], depth=2) == {"Acme", "Bob", "Paris"}
    assert graph_store.neighbours(cube, ["Paris", "Bob"]) == {"Acme", "France", "Alice"}
    assert graph_store.neighbours(cube, ["nobody"], depth=2) == set()


def test_memories_weigh_less_the_further_they_are(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    chain(graph_store, cube)

    weights = graph_store.memories_for(cube, ["Alice"], depth=2)

    assert set(weights) == {"m1", "m2", "m4"}
    assert weights["m1"] == weights["m4"] > weights["m2"] > 0
    assert set(graph_store.memories_for(cube, ["Alice"], depth=1)) == {"m1", "m4"}


def test_forgetting_a_memory_drops_relations_left_without_provenance(graph_store: GraphStore,
                                                                      cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m1", "m2"),
                                     rel(cube, "Alice", "lives in", "Paris", "m1")])

    assert graph_store.forget_memory(cube, "m1") == 1

    remaining, = graph_store.relations(cube)
    assert (remaining.predicate, remaining.memory_ids) == ("works at", ["m2"])
    assert graph_store.entity(cube, "Paris") is None  # known only from what was forgotten
    assert graph_store.entity(cube, "Alice") is not None and graph_store.entity(cube, "Acme") is not None
    assert {e.name for e in graph_store.entities(cube)} == {"Alice", "Acme"}


def test_a_deleted_relation_is_gone(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    doomed, kept = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m1"),
                                                    rel(cube, "Alice", "lives in", "Paris", "m2")])

    graph_store.delete_relation(cube, doomed.id)

    assert [r.id for r in graph_store.relations(cube)] == [kept.id]
    assert [r.id for r in graph_store.relations(cube, entity="Acme")] == []
    with pytest.raises(NotFound):
        graph_store.delete_relation(cube, doomed.id)


def test_deleting_a_relation_named_in_another_cube_changes_nothing(graph_store: GraphStore,
                                                                   cube_ids: list[str]) -> None:
    """A relation id is looked for in the cube given: one of another cube is not found there, and keeps
    its provenance (it had lost its memory links, so deleting its memory left it behind for ever)."""
    theirs, mine = cube_ids
    relation, = graph_store.add_relations(theirs, [rel(theirs, "Bob", "met", "Leopoldine", "m1")])

    with pytest.raises(NotFound):
        graph_store.delete_relation(mine, relation.id)

    kept, = graph_store.relations(theirs)
    assert (kept.id, kept.memory_ids) == (relation.id, ["m1"])
    assert graph_store.forget_memory(theirs, "m1") == 1
    assert graph_store.relations(theirs) == []


def test_deleting_a_cube_leaves_other_cubes_intact(graph_store: GraphStore, cube_ids: list[str]) -> None:
    gone, kept = cube_ids
    for cube in cube_ids:
        graph_store.upsert_entities(cube, [Entity("Alice", "person")])
        graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", f"{cube}-m")])

    graph_store.delete_cube(gone)

    assert graph_store.entities(gone) == [] and graph_store.relations(gone) == []
    assert [e.name for e in graph_store.entities(kept)] == ["Acme", "Alice"]
    assert graph_store.memories_for(kept, ["alice"]) == {f"{kept}-m": 1.0}


def test_an_unreachable_bolt_server_is_backend_unavailable(closed_bolt_uri: str) -> None:
    uri = closed_bolt_uri
    store = Neo4jGraphStore(uri, "neo4j", "secret", "neo4j")

    with pytest.raises(BackendUnavailable) as caught:
        store.open()

    assert uri in caught.value.message and caught.value.details["uri"] == uri


def test_known_names_relations_of_memories_and_deleting_an_entity(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube, other = cube_ids
    graph_store.upsert_entities(cube, [Entity("Alice Smith", "person", ("Ally",))])
    graph_store.add_relations(cube, [rel(cube, "Alice Smith", "knows", "Bob", "m1"),
                                     rel(cube, "Bob", "knows", "Carol", "m2", "m3")])
    graph_store.add_relations(other, [rel(other, "Alice Smith", "knows", "Dan", "m1")])

    assert graph_store.known(cube, ["ALLY", "bob", "nobody"]) == {"ALLY": "alice smith", "bob": "bob"}
    assert triples(graph_store.relations_of(cube, ["m3", "m9"])) == {("Bob", "knows", "Carol")}
    assert graph_store.relations_of(cube, []) == []

    assert graph_store.delete_entity(cube, "ally") == 1
    assert graph_store.entity(cube, "Alice Smith") is None and graph_store.known(cube, ["ally"]) == {}
    assert triples(graph_store.relations(cube)) == {("Bob", "knows", "Carol")}
    assert triples(graph_store.relations(other)) == {("Alice Smith", "knows", "Dan")}
    with pytest.raises(NotFound):
        graph_store.delete_entity(cube, "Alice Smith")


def test_types_of_entity_keys_in_one_read_of_this_cube_only(graph_store: GraphStore, cube_ids: list[str]) -> None:
    cube, other = cube_ids
    graph_store.upsert_entities(cube, [Entity("Alice Smith", "person", ("Ally",)), Entity("Acme", "organization")])
    graph_store.add_relations(cube, [rel(cube, "Alice Smith", "works at", "Acme", "m1")])
    graph_store.upsert_entities(other, [Entity("Bob", "person")])

    keys = list(graph_store.known(cube, ["ally", "ACME", "bob"]).values())
    assert graph_store.types(cube, [*keys, "bob", "nobody"]) == {"alice smith": "person", "acme": "organization"}
    assert graph_store.types(other, ["bob", "alice smith"]) == {"bob": "person"}
    assert graph_store.types(cube, []) == {}


def test_linked_memories_are_the_newest_links_of_valid_relations_at_most_limit(graph_store: GraphStore,
                                                                               cube_ids: list[str]) -> None:
    cube, other = cube_ids
    now = time.time()
    graph_store.add_relations(cube, [rel(cube, "Alice", "knows", "Bob", "m1", "m2")])
    graph_store.add_relations(cube, [rel(cube, "Carol", "knows", "Alice", "m3")])
    graph_store.add_relations(cube, [rel(cube, "Alice", "knows", "Bob", "m4")])  # merged: newest link
    ended, = graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m5")])
    graph_store.invalidate(ended.id, at=now - 1)
    graph_store.add_relations(cube, [rel(cube, "Bob", "knows", "Dan", "m6")])
    graph_store.add_relations(other, [rel(other, "Alice", "knows", "Bob", "x1")])

    linked = graph_store.linked_memories(cube, ["alice"])
    assert sorted(linked) == ["m1", "m2", "m3", "m4"] and linked.index("m2") < linked.index("m1")
    assert graph_store.linked_memories(cube, ["alice"], limit=2) == linked[:2]
    assert "m5" in graph_store.linked_memories(cube, ["alice"], at=now - 2)
    assert set(graph_store.linked_memories(cube, ["alice", "dan"])) == {"m1", "m2", "m3", "m4", "m6"}
    assert graph_store.linked_memories(cube, ["nobody"]) == [] and graph_store.linked_memories(cube, []) == []


def test_memory_entities_name_the_entities_of_each_memorys_valid_relations(graph_store: GraphStore,
                                                                            cube_ids: list[str]) -> None:
    cube, other = cube_ids
    graph_store.add_relations(cube, [rel(cube, "Alice", "knows", "Bob", "m1", "m2"),
                                     rel(cube, "Bob", "knows", "Carol", "m2")])
    ended, = graph_store.add_relations(cube, [rel(cube, "Alice", "lives in", "Paris", "m1")])
    graph_store.invalidate(ended.id)
    graph_store.add_relations(other, [rel(other, "Dan", "knows", "Eve", "m1")])

    assert graph_store.memory_entities(cube, ["m1", "m2", "m9"]) == {"m1": {"alice", "bob"},
                                                                     "m2": {"alice", "bob", "carol"}}
    assert graph_store.memory_entities(cube, []) == {}


def test_forgetting_a_memory_keeps_stated_relations_and_those_of_other_memories(graph_store: GraphStore,
                                                                                cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    stated, = graph_store.add_relations(cube, [rel(cube, "Alice", "lives in", "Paris")])
    graph_store.add_relations(cube, [rel(cube, "Alice", "works at", "Acme", "m1"),
                                     rel(cube, "Bob", "knows", "Carol", "m2")])

    assert graph_store.forget_memory(cube, "m1") == 1

    assert triples(graph_store.relations(cube)) == {("Alice", "lives in", "Paris"), ("Bob", "knows", "Carol")}
    assert graph_store.relations(cube, entity="Paris")[0].id == stated.id
