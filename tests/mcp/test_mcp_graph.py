"""The graph tools end to end through the SDK client, over a real service and real stores."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory
from tests.mcp.support import call, connect, fail, remember

pytestmark = pytest.mark.anyio


async def test_search_graph_walks_from_an_entity_or_a_query_to_relations_and_their_memories(
        people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        met = await remember(client, "Caroline met Zofia at the support group.")
        told = await remember(client, "Zofia recommended Becoming.")

        near = await call(client, "search_graph", entity="caroline")
        assert [(r["subject"], r["object"], r["hop"]) for r in near["relations"]] == [("Caroline", "Zofia", 1)]
        assert near["relations"][0]["memory_ids"] == [met["id"]] and near["memories"] == []

        far = await call(client, "search_graph", query="Who did Caroline meet?", depth=2, include_memories=True)
        assert {(r["object"], r["hop"]) for r in far["relations"]} == {("Zofia", 1), ("Becoming", 2)}
        assert {m["id"] for m in far["memories"]} == {met["id"], told["id"]}
        assert {e["name"] for e in far["entities"]} == {"Caroline", "Zofia", "Becoming"}

        listed = await call(client, "list_entities", limit=2, offset=1)
        assert [e["name"] for e in listed["entities"]] == ["Caroline", "Zofia"]


async def test_added_relations_replace_single_valued_facts_and_can_be_deleted(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        first = await call(client, "add_relations", triples=[{"subject": "Alice", "predicate": "works_at",
                                                              "object": "Acme", "confidence": 0.9}])
        await call(client, "add_relations", triples=[{"subject": "Alice", "predicate": "works at",
                                                      "object": "Globex"}])
        now = await call(client, "search_graph", entity="Alice")
        assert [r["object"] for r in now["relations"]] == ["Globex"]
        assert first["relations"][0]["confidence"] == 0.9 and first["relations"][0]["memory_ids"] == []

        deleted = await call(client, "delete_relation", relation_id=now["relations"][0]["id"])
        assert deleted == {"deleted": 1, "id": now["relations"][0]["id"]}
        assert (await call(client, "search_graph", entity="Alice"))["relations"] == []
        assert "not_found" in await fail(client, "delete_relation", relation_id=now["relations"][0]["id"])


async def test_bad_graph_arguments_are_tool_errors(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        assert "exactly one of query or entity" in await fail(client, "search_graph")
        assert "exactly one of query or entity" in await fail(client, "search_graph", query="a", entity="b")
        await fail(client, "search_graph", entity="x", depth=3)
        await fail(client, "add_relations", triples=[{"subject": "", "predicate": "knows", "object": "b"}])
        await fail(client, "add_relations", triples=[])


async def test_another_users_graph_stays_invisible_and_untouchable(people: MemoryService) -> None:
    async with connect(people, "alice") as alice:
        await remember(alice, "Alice met Zofia.")
        relation = (await call(alice, "search_graph", entity="Zofia"))["relations"][0]
    async with connect(people, "bob") as bob:
        assert (await call(bob, "search_graph", entity="Zofia"))["relations"] == []
        assert (await call(bob, "list_entities"))["entities"] == []
        assert "forbidden" in await fail(bob, "search_graph", entity="Zofia", cube_id="alice_default_cube")
        assert "forbidden" in await fail(bob, "add_relations", cube_id="alice_default_cube",
                                         triples=[{"subject": "Bob", "predicate": "knows", "object": "Zofia"}])
        assert "not_found" in await fail(bob, "delete_relation", relation_id=relation["id"])


async def test_search_memory_expands_through_the_graph_when_asked(make_service: ServiceFactory) -> None:
    service = make_service(graph={"weight": 0.5})
    service.ensure_user("alice")
    async with connect(service, "alice") as client:
        for text in ("Caroline met Zofia at the support group.", "Zofia suggested reading Becoming.",
                     "The support group meets on Tuesdays.", "Friends recommended the new cafe downtown.",
                     "Jon recommended a good plumber."):
            await remember(client, text)
        question = "What did the friend Caroline met at the support group recommend?"

        plain = await call(client, "search_memory", query=question, top_k=3, graph=False)
        linked = await call(client, "search_memory", query=question, top_k=3, graph=True, graph_depth=2)
        assert "Zofia suggested reading Becoming." not in [m["memory"] for m in plain["memories"]]
        assert "Zofia suggested reading Becoming." in [m["memory"] for m in linked["memories"]]
        await fail(client, "search_memory", query=question, graph_depth=3)
