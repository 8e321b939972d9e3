"""Graph memory through the memory service: extraction on add, re-derivation on update, forgetting on
delete, the cube's graph gone with the cube, and search expanded through the graph (real stores)."""

from __future__ import annotations

from typing import Any

import pytest

from memos_mcp.core.graph.extract import ExtractedGraph
from memos_mcp.core.graph.memory import GraphMemory
from memos_mcp.core.graph.service import GraphService, TripleIn
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.errors import Forbidden, InvalidRequest, NotFound, NotSupported
from tests.conftest import ServiceFactory

CUBE = "root_default_cube"
QUESTION = "What did the friend Caroline met at the support group recommend?"
STORY = ["Caroline met Zofia at the support group.", "Zofia suggested reading Becoming.",
         "The bakery recommends the rye bread.", "My doctor recommended more sleep.",
         "The support group meets on Tuesdays.", "Jon recommended a good plumber.",
         "Friends recommended the new cafe downtown."]


def graph_of(service: MemoryService) -> GraphMemory:
    graph = service.graph()
    assert graph is not None
    return graph


def triples(service: MemoryService, cube: str = CUBE) -> set[tuple[str, str, str]]:
    return {(r.subject, r.predicate, r.object) for r in graph_of(service).store.relations(cube)}


def found(service: MemoryService, **options: Any) -> list[str]:
    return [h.memory for h in service.search(ROOT_USER, QUESTION, **options).memories]


def test_added_turns_put_their_speaker_and_entities_in_the_graph_with_provenance(service: MemoryService) -> None:
    added = service.add_memory(ROOT_USER, messages=[
        {"role": "user", "name": "Caroline", "content": "I met Sarah at the LGBTQ center.",
         "chat_time": "2023-05-08T13:56:00Z"}])

    rel = next(r for r in graph_of(service).store.relations(CUBE) if r.object == "Sarah")
    assert (rel.subject, rel.predicate, rel.memory_ids) == ("Caroline", "mentions", added.added)
    assert rel.valid_at == pytest.approx(1683554160.0)
    assert graph_of(service).store.entity(CUBE, "caroline").type == "person"  # type: ignore[union-attr]


def test_an_extraction_that_brings_its_own_graph_is_stored_as_given(service: MemoryService) -> None:
    from memos_mcp.core.write.ingest.extractor import RuleExtractor

    class WithGraph(RuleExtractor):
        def from_messages(self, messages: Any, earlier: Any) -> Any:
            candidates = super().from_messages(messages, earlier)
            for c in candidates:
                c.graph = ExtractedGraph(relations=[("Ana", "lives_in", "Porto", 0.8)])
            return candidates

    service.extractor = WithGraph()
    service.add_memory(ROOT_USER, messages=[{"role": "user", "content": "ana moved to porto"}])
    service.add_memory(ROOT_USER, messages=[{"role": "user", "content": "Ana lives in Lisbon now",
                                             "chat_time": "2099-01-01T00:00:00Z"}])
    assert triples(service) == {("Ana", "lives_in", "Porto")}  # the Lisbon move lies in the future


def test_updating_the_text_re_derives_the_memorys_relations(service: MemoryService) -> None:
    memory = service.add_memory(ROOT_USER, memory_content="Alice met Bob.").memories[0]
    service.update_memory(ROOT_USER, memory.id, memory="Alice met Carol.")
    assert triples(service) == {("Alice", "related_to", "Carol")}


def test_deleting_memories_removes_their_provenance_and_orphaned_relations(service: MemoryService) -> None:
    first = service.add_memory(ROOT_USER, memory_content="Alice met Bob.").memories[0]
    service.add_memory(ROOT_USER, memory_content="Alice met Bob again, with Carol.")

    service.delete_memory(ROOT_USER, first.id)
    rel = next(r for r in graph_of(service).store.relations(CUBE) if r.object == "Bob")
    assert first.id not in rel.memory_ids and rel.memory_ids

    GraphService(service).add_relations(ROOT_USER, [TripleIn(subject="Dora", predicate="knows", object="Ed")])
    service.delete_all(ROOT_USER, CUBE)
    assert triples(service) == set()  # stated relations too: nothing of the cube is left
    assert GraphService(service).entities(ROOT_USER) == []


def test_deleting_a_cube_deletes_its_graph_only(service: MemoryService) -> None:
    service.create_cube(ROOT_USER, "work", cube_id="work")
    service.add_memory(ROOT_USER, cube_id="work", memory_content="Alice met Bob.")
    service.add_memory(ROOT_USER, memory_content="Dora met Ed.")

    service.delete_cube(ROOT_USER, "work")
    assert triples(service, "work") == set()
    assert triples(service) == {("Dora", "related_to", "Ed")}


def test_a_two_hop_memory_only_the_graph_finds(make_service: ServiceFactory) -> None:
    service = make_service(graph={"weight": 0.5})
    for text in STORY:
        service.add_memory(ROOT_USER, memory_content=text)

    assert "Zofia suggested reading Becoming." not in found(service, top_k=4, graph=False)
    assert "Zofia suggested reading Becoming." not in found(service, top_k=4, graph=True, graph_depth=1)
    hits = service.search(ROOT_USER, QUESTION, top_k=4, graph=True, graph_depth=2).memories
    assert "Zofia suggested reading Becoming." in [h.memory for h in hits]
    assert all(0 <= h.relativity <= 1 for h in hits)


def test_a_linked_memory_outside_the_hybrid_hits_is_fetched_and_still_filtered(make_service: ServiceFactory) -> None:
    service = make_service(graph={"weight": 0.5})
    for text in STORY:
        service.add_memory(ROOT_USER, memory_content=text, tags=["story"])
    for i in range(70):  # more than the hybrid hits and the graph pool
        service.add_memory(ROOT_USER, memory_content=f"Someone at the support group recommended recipe {i}.")

    assert "Zofia suggested reading Becoming." in found(service, top_k=4, graph=True, graph_depth=2)
    assert "Zofia suggested reading Becoming." not in found(service, top_k=4, graph=False)
    untagged = found(service, top_k=4, graph=True, graph_depth=2, filters={"tags": ["absent"]})
    assert untagged == []


CHAT = [("Caroline", "Melanie, your hiking photos are lovely! What hobbies do you have?"),
        ("Melanie", "Thanks, Caroline! My favourite hobby is hiking, every weekend."),
        ("Caroline", "Wow, Melanie! That keeps you sane."),
        ("Melanie", "My other hobby is pottery, since last month."),
        ("Caroline", "Hey Melanie, my hobbies are painting and reading.")]


def test_a_query_naming_a_speaker_finds_what_they_said_not_what_was_said_to_them(service: MemoryService) -> None:
    service.add_memory(ROOT_USER, messages=[{"role": "user", "name": name, "content": text} for name, text in CHAT])

    def speakers(graph: bool) -> list[str | None]:
        hits = service.search(ROOT_USER, "What hobbies does Melanie have?", top_k=5, graph=graph).memories
        return [h.sources[0].name for h in hits]

    assert speakers(graph=True)[:2] == ["Melanie", "Melanie"]
    assert speakers(graph=False)[:2] != ["Melanie", "Melanie"]  # the name matches the turns addressing her
    alone = service.search(ROOT_USER, "melanie", top_k=2, graph=True).memories  # nothing left but the name
    assert [h.sources[0].name for h in alone] == ["Melanie", "Melanie"]
    melanie = next(e for e in GraphService(service).entities(ROOT_USER) if e.name == "Melanie")
    assert melanie.type == "person"
    assert {r.subject for r in graph_of(service).store.relations(CUBE, entity="Melanie")} == {"Melanie"}


def test_search_refuses_a_bad_depth(service: MemoryService) -> None:
    with pytest.raises(InvalidRequest, match="graph_depth"):
        service.search(ROOT_USER, "anything", graph_depth=3)


def test_with_the_graph_turned_off_nothing_is_extracted_and_graph_calls_say_so(make_service: ServiceFactory) -> None:
    service = make_service(graph={"enabled": False})
    service.add_memory(ROOT_USER, memory_content="Alice met Bob.")
    assert service.graph() is None
    assert [h.memory for h in service.search(ROOT_USER, "Alice", graph=True).memories] == ["Alice met Bob."]
    with pytest.raises(NotSupported):
        GraphService(service).entities(ROOT_USER)


def test_another_users_graph_is_neither_visible_nor_writable(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.ensure_user("bob")
    service.add_memory("alice", memory_content="Alice met Zofia.")
    graphs = GraphService(service)

    assert graphs.entities("bob") == []
    assert graphs.search("bob", entity="Zofia").relations == []
    with pytest.raises(NotFound):
        graphs.entity("bob", "Zofia")
    with pytest.raises(Forbidden, match="no write access"):
        graphs.add_relations("bob", [TripleIn(subject="Bob", predicate="owns", object="Zofia")],
                             cube_id="alice_default_cube")
    relation = graphs.search("alice", entity="Zofia").relations[0]
    with pytest.raises(NotFound):
        graphs.delete_relation("bob", relation.id)
    assert [e.name for e in graphs.entities("alice")] == ["Alice", "Zofia"]


def test_with_the_catalog_on_postgresql_the_graph_lives_in_that_database_shared_by_replicas(
        make_service: ServiceFactory, backend: str, tmp_path: Any) -> None:
    if not backend.endswith("+postgresql"):
        pytest.skip("the catalog is on SQLite here")
    first = make_service(tmp_path / "one")
    first.add_memory(ROOT_USER, memory_content="Alice met Bob.")
    url = first.settings.catalog.url.get_secret_value()  # type: ignore[union-attr]
    second = make_service(tmp_path / "two", catalog={"url": url})  # another replica: its own data dir

    assert triples(second) == {("Alice", "related_to", "Bob")}
    GraphService(second).add_relations(ROOT_USER, [TripleIn(subject="Bob", predicate="knows", object="Carol")])
    assert triples(first) == {("Alice", "related_to", "Bob"), ("Bob", "knows", "Carol")}
    assert not (tmp_path / "one" / "graph.sqlite3").exists() and not (tmp_path / "two" / "graph.sqlite3").exists()
