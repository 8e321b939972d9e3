"""A fact added over MCP in a conversation: found through the conversation's earlier facts, timed by the
``chat_time`` argument, its "Name: ..." speaker a person of graph memory."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import MemoryService
from tests.core.test_facts import FILLER
from tests.mcp.support import call, connect, fail, remember

pytestmark = pytest.mark.anyio


async def test_a_fact_over_mcp_is_indexed_with_its_conversation_its_time_and_its_speaker(
        people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        for text in FILLER:
            await remember(client, text)
        await remember(client, "Gina: We booked the flights to Reykjavik for March.", conversation_id="trip",
                       chat_time="10:04 am on 2 March, 2023")
        after = await remember(client, "Gina: It cost way more than we planned.", conversation_id="trip",
                               chat_time="10:05 am on 2 March, 2023")
        alone = await remember(client, "It cost way more than we had planned.")
        found = await call(client, "search_memory", query="Reykjavik", top_k=3, graph=False,
                           include_preference=False)
    ids = [m["id"] for m in found["memories"]]
    assert after["id"] in ids and alone["id"] not in ids
    assert after["event_time"].startswith("2023-03-02T10:05")
    graph = people.graph()
    assert graph is not None
    cube = after["cube_id"]
    linked = {r.subject for r in graph.store.relations(cube, limit=1000) if after["id"] in r.memory_ids}
    assert linked == {"Gina"} and graph.people(cube, ["Gina"]) == {"gina"}


async def test_a_label_before_a_colon_over_mcp_names_no_person(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        note = await remember(client, "Note: buy milk", conversation_id="errands")
    graph = people.graph()
    assert graph is not None and graph.people(note["cube_id"], ["Note"]) == set()


async def test_a_fact_time_no_store_can_hold_is_a_tool_error_naming_chat_time(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        message = await fail(client, "add_memory", memory_content="Gina: I renewed my passport.",
                             conversation_id="c1", chat_time="9999-12-31T23:59:59-05:00")
        listed = await call(client, "list_memories")
    assert "chat_time" in message and listed["total"] == 0
