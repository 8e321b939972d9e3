"""What a client stores comes back whole, findable and current, through the MCP SDK client over a real
service (both vector backends): long turns, de-duplication, updates of the text, archived memories."""

from __future__ import annotations

from typing import Any

import pytest

from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect, remember

pytestmark = pytest.mark.anyio

NOTES = ("Book the airport taxi for 6am.", "Renew the travel insurance in June.",
         "The hotel confirmation number is 55821.", "Pack the power adapter.",
         "Check in online 24 hours before the flight.")  # short notes that outrank a long turn's passing fact
TRIP = "I want to tell you about our trip to Porto last spring. " + \
    "We walked around the old town, saw churches and markets and ate far too many pastries. " * 32


async def _search(client: Any, query: str, **arguments: Any) -> list[dict[str, Any]]:
    found = await call(client, "search_memory", query=query, **arguments)
    hits: list[dict[str, Any]] = found["memories"]
    return hits


@pytest.mark.parametrize("fact, query", [
    ("Oh, and my passport number ends in 4417.", "passport 4417"),
    ("By the way my gym locker code is 9032.", "gym locker code"),
])
@pytest.mark.parametrize("where", ["end", "middle"])
async def test_a_fact_inside_a_long_message_is_found_first(
        people: MemoryService, fact: str, query: str, where: str) -> None:
    text = TRIP + fact if where == "end" else TRIP[:len(TRIP) // 2] + fact + " " + TRIP[len(TRIP) // 2:]
    assert len(text) > 2 * people.settings.chunk_size
    async with connect(people, "alice") as client:
        for note in NOTES:
            await remember(client, note)
        added = await call(client, "add_memory", messages=[{"role": "user", "content": text}])
        assert len(added["memories"]) > 1  # the turn is stored as its pieces, each its own memory
        assert all(len(m["memory"]) <= people.settings.chunk_size for m in added["memories"])
        assert all(m["sources"][0]["message_id"] == added["memories"][0]["sources"][0]["message_id"]
                   for m in added["memories"])
        hits = await _search(client, query)
        assert fact in hits[0]["memory"]


async def test_long_text_of_every_add_path_is_found_by_a_fact_anywhere_in_it(people: MemoryService) -> None:
    fact = "The spare key hides under the blue flowerpot."
    async with connect(people, "alice") as client:
        for note in NOTES:
            await remember(client, note)
        await call(client, "add_memory", memory_content=TRIP + fact, tags=["trip"])
        hits = await _search(client, "where is the spare key hidden")
        assert fact in hits[0]["memory"] and "trip" in hits[0]["tags"]


KITCHEN = " ".join((
    "We repainted the kitchen a pale green last weekend and it took far longer than planned.",
    "The hardware store ran out of rollers, so we drove to the one across town.",
    "My brother insisted on playing jazz records the entire time, which was fine until the needle broke.",
    "By Sunday evening the second coat was drying and the whole flat smelled of paint.")[i % 4]
    for i in range(40))[:2960]  # a page of other text: a whole piece's vector is diluted by it


async def test_a_fact_in_a_long_text_clears_the_memos_default_threshold_and_unrelated_questions_do_not(
        people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        await call(client, "add_memory", messages=[{"role": "user", "content": KITCHEN + " My passport number ends "
                                                    "in 6001."}])
        await call(client, "add_memory", memory_content=KITCHEN + " Also, my passport number ends in 6002.")
        await call(client, "add_memory", messages=[
            {"role": "user", "content": KITCHEN[:700] + " By the way my gym locker code is 9032. " + KITCHEN[700:]}])
        for query, fact in (("passport 6002", "6002"), ("passport 6001", "6001"), ("gym locker code", "9032"),
                            ("what is my locker code at the gym?", "9032")):
            hits = await _search(client, query, threshold=0.45)
            assert hits and fact in hits[0]["memory"], (query, [h["memory"][-60:] for h in hits])
            assert hits[0]["relativity"] >= 0.45
        assert await _search(client, "what is the capital of France?", threshold=0.45) == []


async def test_a_duplicate_add_says_so_with_the_existing_id_and_merges_the_callers_tags(
        people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        first = await call(client, "add_memory", memory_content="Dana's birthday is on 4 May.", tags=["family"])
        again = await call(client, "add_memory", memory_content="Dana's birthday is on 4 May.", tags=["dates"])
        assert again["added"] == [] and again["deduplicated"] == [first["memories"][0]["id"]]
        assert {"family", "dates"} <= set(again["memories"][0]["tags"])
        stored = await call(client, "get_memory", memory_id=first["memories"][0]["id"])
        assert {"family", "dates"} <= set(stored["tags"])
        tagged = await _search(client, "birthday", filters={"tags": ["dates"]})
        assert [h["id"] for h in tagged] == [first["memories"][0]["id"]]


async def test_a_turn_said_twice_is_one_memory_that_keeps_both_messages_as_sources(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        turns = [{"role": "user", "content": "Remind me to stretch.", "message_id": f"m{i}"} for i in (1, 2)]
        added = await call(client, "add_memory", messages=turns)
        assert [m["memory"] for m in added["memories"]] == ["Remind me to stretch."]
        assert [s["message_id"] for s in added["memories"][0]["sources"]] == ["m1", "m2"]
        again = await call(client, "add_memory", messages=[{**turns[0], "message_id": "m3"}])
        assert again["deduplicated"] == [added["added"][0]]
        assert [s["message_id"] for s in again["memories"][0]["sources"]] == ["m1", "m2", "m3"]


async def test_the_same_text_with_other_metadata_is_a_memory_of_its_own_and_deleting_one_keeps_the_other(
        people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        one = await call(client, "add_memory", memory_content="Standup is at 9:30.", metadata={"team": "red"})
        two = await call(client, "add_memory", memory_content="Standup is at 9:30.", metadata={"team": "blue"})
        assert two["deduplicated"] == [] and two["added"] != one["added"]
        assert two["memories"][0]["metadata"] == {"team": "blue"}
        await call(client, "delete_memory", memory_id=one["added"][0])
        left = await _search(client, "standup")
        assert [(h["id"], h["metadata"]) for h in left] == [(two["added"][0], {"team": "blue"})]


async def test_texts_sharing_passages_keep_every_piece_and_deleting_one_leaves_the_other_whole(
        people: MemoryService) -> None:
    line = "2026-03-01 12:00:00 INFO worker heartbeat ok"
    first = "\n".join([line] * 200 + ["2026-03-01 12:00:01 ERROR disk full on /var"])
    second = "\n".join([line] * 120 + ["2026-03-01 12:05:00 WARN queue is slow"])
    async with connect(people, "alice") as client:
        one = await call(client, "add_memory", memory_content=first)
        two = await call(client, "add_memory", memory_content=second)
        assert one["deduplicated"] == [] and two["deduplicated"] == []
        assert "\n".join(m["memory"] for m in one["memories"]) == first
        again = await call(client, "add_memory", memory_content=first)  # the whole text again: nothing new
        assert again["added"] == [] and again["deduplicated"] == one["added"]
        for memory_id in one["added"]:
            await call(client, "delete_memory", memory_id=memory_id)
        kept = [await call(client, "get_memory", memory_id=i) for i in two["added"]]
        assert "\n".join(m["memory"] for m in kept) == second


@pytest.mark.parametrize("caller_tags", [None, ["travel"]])
async def test_changing_the_text_derives_key_and_tags_again_and_keeps_the_callers(
        people: MemoryService, caller_tags: list[str] | None) -> None:
    async with connect(people, "alice") as client:
        added = await call(client, "add_memory", memory_content="Prefers aisle seats on long flights",
                           **({"tags": caller_tags} if caller_tags else {}))
        memory = added["memories"][0]
        assert "aisle" in memory["tags"] and "aisle" in memory["key"]
        updated = await call(client, "update_memory", memory_id=memory["id"],
                             memory_content="Prefers window seats on long flights")
        assert "window" in updated["key"] and "aisle" not in updated["key"]
        assert "window" in updated["tags"] and "aisle" not in updated["tags"]
        assert set(caller_tags or []) <= set(updated["tags"])
        assert await _search(client, "seats", filters={"tags": ["aisle"]}) == []
        assert [h["id"] for h in await _search(client, "seats", filters={"tags": ["window"]})] == [memory["id"]]


async def test_changing_the_text_leaves_no_entity_known_only_from_the_old_text(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        added = await call(client, "add_memory", memory_content="Marguerite moved to Lyon to work for Renault.")
        await call(client, "add_memory", memory_content="Marguerite likes long walks.")
        memory = added["memories"][0]
        for text in ("Marguerite moved to Oslo to work for Equinor.", "Marguerite moved to Bergen.",
                     "Marguerite moved to Tromso."):
            await call(client, "update_memory", memory_id=memory["id"], memory_content=text)
        names = {e["name"] for e in (await call(client, "list_entities"))["entities"]}
    assert {"Marguerite", "Tromso"} <= names
    assert not names & {"Lyon", "Renault", "Oslo", "Equinor", "Bergen"}, names


async def test_a_key_and_a_tag_the_caller_set_survive_a_change_of_the_text(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "Prefers aisle seats on long flights")
        await call(client, "update_memory", memory_id=memory["id"], key="Seat choice",
                   tags=[*memory["tags"], "aisle"])
        updated = await call(client, "update_memory", memory_id=memory["id"],
                             memory_content="Prefers window seats on long flights")
        assert updated["key"] == "Seat choice"
        assert "aisle" in updated["tags"] and "window" in updated["tags"]  # the caller gave aisle: it stays
        assert "prefers" in updated["tags"]


async def test_a_tag_the_caller_gave_at_add_stays_even_when_the_text_also_gave_it(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "Prefers aisle seats on long flights", tags=["aisle"])
        updated = await call(client, "update_memory", memory_id=memory["id"],
                             memory_content="Prefers window seats on short flights")
        assert "aisle" in updated["tags"] and "window" in updated["tags"] and "long" not in updated["tags"]


async def test_an_archived_memory_and_its_relations_leave_the_graph_reads(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        moved = await remember(client, "Caroline moved to Lisbon in March.")
        met = await remember(client, "Caroline met Zofia at the support group.")
        before = await call(client, "search_graph", entity="Caroline", include_memories=True)
        assert {r["object"] for r in before["relations"]} >= {"Lisbon", "Zofia"}
        await call(client, "update_memory", memory_id=moved["id"], status="archived")

        after = await call(client, "search_graph", entity="Caroline", include_memories=True)
        assert moved["id"] not in {i for r in after["relations"] for i in r["memory_ids"]}
        assert [m["id"] for m in after["memories"]] == [met["id"]]
        assert "Lisbon" not in {e["name"] for e in after["entities"]}
        asked = await call(client, "search_graph", query="Where does Caroline live?", include_memories=True)
        assert moved["id"] not in {m["id"] for m in asked["memories"]}
        everything = await call(client, "search_graph", entity="Caroline", include_memories=True,
                                include_archived=True)
        assert moved["id"] in {m["id"] for m in everything["memories"]}
        assert {e["name"] for e in (await call(client, "list_entities"))["entities"]} == {"Caroline", "Zofia"}
        assert "Lisbon" in {e["name"] for e in (await call(client, "list_entities", include_archived=True))[
            "entities"]}

        await call(client, "update_memory", memory_id=moved["id"], status="activated")
        back = await call(client, "search_graph", entity="Caroline", include_memories=True)
        assert moved["id"] in {m["id"] for m in back["memories"]}


async def test_a_relation_also_known_from_an_active_memory_stays(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        old = await remember(client, "Caroline met Zofia at the support group.")
        new = await remember(client, "Caroline met Zofia at the cafe.", tags=["again"])
        await call(client, "update_memory", memory_id=old["id"], status="archived")
        view = await call(client, "search_graph", entity="Caroline", include_memories=True)
        assert "Zofia" in {r["object"] for r in view["relations"]}
        assert [m["id"] for m in view["memories"]] == [new["id"]]


async def test_suggestions_and_the_recall_prompt_leave_archived_memories_out(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        gone = await remember(client, "Caroline moved to Lisbon in March.")
        await remember(client, "Zofia recommended the book Becoming.")
        await call(client, "update_memory", memory_id=gone["id"], status="archived")
        suggestions = await call(client, "get_suggestions")
        assert not any("Lisbon" in s or "Caroline" in s for s in suggestions["suggestions"])
        prompt = await client.get_prompt("recall", {"topic": "Caroline Lisbon"})
        text = " ".join(str(getattr(m.content, "text", "")) for m in prompt.messages)
        assert "Zofia recommended" in text and "moved to Lisbon" not in text
