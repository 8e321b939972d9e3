"""Graph memory (ingest with provenance, contradiction, forgetting, query expansion) on both backends."""

from __future__ import annotations

import math

import pytest

from memos_mcp.core.graph.extract import ExtractedGraph, extract_graph
from memos_mcp.core.graph.memory import LINKED, GraphMemory, MemoryGraph
from memos_mcp.core.graph.store import Entity, GraphStore

T0 = 1_700_000_000.0


@pytest.fixture
def graph(graph_store: GraphStore) -> GraphMemory:
    return GraphMemory(graph_store)


def stated(*triples: tuple[str, str, str], replaces: set[str] | None = None) -> ExtractedGraph:
    return ExtractedGraph(relations=[(s, p, o, 0.9) for s, p, o in triples], replaces=replaces or set())


def test_memories_of_one_batch_share_relations_and_entities_keep_their_types(
        graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph("m1", extract_graph("I met Sarah at the gym.", "Caroline"), T0),
                        MemoryGraph("m2", extract_graph("Sarah is so kind.", "Caroline"), T0 + 10)])

    rel, = graph.store.relations(cube)
    assert (rel.subject, rel.predicate, rel.object, rel.memory_ids) == ("Caroline", "mentions", "Sarah", ["m1", "m2"])
    assert rel.valid_at == T0
    caroline = graph.store.entity(cube, "caroline")
    assert caroline == Entity("Caroline", "person", (), cube)


def test_a_single_valued_fact_invalidates_the_old_one_at_its_own_time_and_keeps_it(
        graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph("m1", stated(("Alice", "lives in", "Paris")), T0)])
    graph.ingest(cube, [MemoryGraph("m2", stated(("alice", "lives_in", "Berlin"), ("Alice", "knows", "Bob")),
                                    T0 + 100)])

    now = {(r.subject, r.predicate, r.object) for r in graph.store.relations(cube)}
    assert now == {("Alice", "lives_in", "Berlin"), ("Alice", "knows", "Bob")}
    then = {(r.object, r.invalid_at) for r in graph.store.relations(cube, at=T0 + 50)}
    assert then == {("Paris", T0 + 100)}


def test_many_valued_predicates_accumulate_unless_the_extraction_says_it_replaces(
        graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph("m1", stated(("Alice", "likes", "tea"), ("Alice", "drives", "a Fiat")), T0)])
    graph.ingest(cube, [MemoryGraph("m2", stated(("Alice", "likes", "coffee"), ("Alice", "drives", "a Tesla"),
                                                 replaces={"drives"}), T0 + 10)])

    assert {r.object for r in graph.store.relations(cube)} == {"tea", "coffee", "a Tesla"}


def test_an_older_fact_arriving_late_is_stored_already_ended(graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph("new", stated(("Bob", "works at", "Globex")), T0 + 100)])
    graph.ingest(cube, [MemoryGraph("old", stated(("Bob", "works at", "Acme")), T0)])

    assert [r.object for r in graph.store.relations(cube)] == ["Globex"]
    assert [(r.object, r.invalid_at) for r in graph.store.relations(cube, at=T0 + 50)] == [("Acme", T0 + 100)]


def test_stated_triples_contradict_like_extracted_ones(graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.add_triples(cube, [("Eve", "married_to", "Sam", 1.0)], at=T0)
    graph.add_triples(cube, [("Eve", "married to", "Max", 1.0)], at=T0 + 5)
    assert [r.object for r in graph.store.relations(cube)] == ["Max"]


def test_forgetting_a_memory_drops_only_relations_left_without_provenance(
        graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph("m1", extract_graph("Sarah and Tom came.", "Caroline"), T0),
                        MemoryGraph("m2", extract_graph("Sarah left.", "Caroline"), T0)])

    assert graph.forget(cube, ["m1"]) == 2  # Caroline-Tom and Sarah-Tom
    rel, = graph.store.relations(cube)
    assert (rel.object, rel.memory_ids) == ("Sarah", ["m2"])


def test_expansion_weighs_specific_entities_above_ones_met_everywhere(graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph(f"m{i}", extract_graph(f"Day {i} with Jon.", "Caroline"), T0) for i in range(5)])
    graph.ingest(cube, [MemoryGraph("rare", extract_graph("Quentin gave me a book.", "Caroline"), T0)])

    one_hop = graph.expand(cube, "what did quentin give?", depth=1)
    assert (one_hop.links, one_hop.people) == ({"rare": 1.0}, ())
    assert graph.expand(cube, "nothing known here", depth=2).links == {}
    two_hops = graph.expand(cube, "Quentin", depth=2).links
    assert two_hops["rare"] == 1.0
    assert two_hops["m0"] == 0.5  # one hop further, through Caroline
    jon = graph.expand(cube, "when did I see Jon?", depth=1)
    assert set(jon.links) == {f"m{i}" for i in range(5)} and all(w < 0.5 for w in jon.links.values())


def test_a_person_the_query_names_counts_in_full_and_is_handed_back(graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    graph.ingest(cube, [MemoryGraph(f"c{i}", extract_graph(f"I went to painting class {i}.", "Caroline"), T0)
                        for i in range(6)])
    graph.ingest(cube, [MemoryGraph("m", extract_graph("I love camping.", "Melanie"), T0)])

    found = graph.expand(cube, "What classes has Caroline taken?", depth=1)
    assert found.people == ("caroline",)
    assert found.links == {f"c{i}": 1.0 for i in range(6)}  # a speaker met everywhere, yet the query's subject
    assert graph.expand(cube, "What does Melanie love?", depth=1).links == {"m": 1.0}


def test_expansion_reads_a_bounded_number_of_the_newest_links_and_weighs_any_memory_exactly(
        graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    many = LINKED + 50
    for start in range(0, many, 50):  # as adds come: FalkorDB 4.16 crashes on one batch of them all
        graph.ingest(cube, [MemoryGraph(f"c{i:05d}", extract_graph(f"I saw Jon on day {i}.", "Caroline"), T0)
                            for i in range(start, min(many, start + 50))])

    found = graph.expand(cube, "What did Caroline do?", depth=1)
    jon = graph.expand(cube, "Where is Jon?", depth=1)

    assert found.people == ("caroline",) and len(found.links) == LINKED and f"c{many - 1:05d}" in found.links
    oldest = sorted({f"c{i:05d}" for i in range(many)} - set(found.links))
    assert len(oldest) == 50
    assert found.weights([*oldest[:2], "unknown"]) == {oldest[0]: 1.0, oldest[1]: 1.0}  # beyond the candidates
    assert len(jon.links) == LINKED
    assert jon.weights([oldest[0]])[oldest[0]] == pytest.approx(1 / (1 + math.log(LINKED)))


def test_people_a_text_only_addresses_are_not_entities_of_it(graph: GraphMemory, cube_ids: list[str]) -> None:
    cube = cube_ids[0]
    first = graph.extract(cube, [("Hey Caroline, I went camping with Jon!", "Melanie"),
                                 ("Thanks, Melanie! Say hi to Jon.", "Caroline")])
    assert [e.name for e in first[0].entities] == ["Melanie", "Jon"]  # Jon is spoken about, Caroline to
    assert [e.name for e in first[1].entities] == ["Caroline", "Jon"]
    graph.ingest(cube, [MemoryGraph(f"m{i}", g, T0) for i, g in enumerate(first)])

    later, = graph.extract(cube, [("Wow, Caroline! Caroline's painting is in the Louvre.", "Zed")])
    assert [e.name for e in later.entities] == ["Zed", "Caroline", "Louvre"]  # also spoken about
    alone, = graph.extract(cube, [("Bye, Caroline. See you in Paris.", "Zed")])
    assert [e.name for e in alone.entities] == ["Zed", "Paris"]  # a person the cube knows, only addressed
