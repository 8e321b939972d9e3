"""What a client stores reads back whole over real HTTP, per dialect: memio documents whose chunks repeat
or are shared, duplicate adds that carry other metadata, long text, and graph reads after archiving."""

from __future__ import annotations

import pytest

from tests.mcp.test_mcp_content import NOTES, TRIP
from tests.rest.conftest import Memio, Users
from tests.rest.conftest import ok as memos_ok
from tests.rest.test_mem0 import good
from tests.rest.test_memio import error, ok

LINE = "2026-03-01 12:00:00 INFO worker-7 heartbeat ok, queue depth 0"
LOG = "\n".join([LINE] * 200 + ["2026-03-01 12:00:01 ERROR worker-7 disk full on /var/lib/data"])


@pytest.mark.parametrize("content", [
    LOG,
    LOG + "\n",
    "  " + LOG.replace("\n", "\r\n"),
    "Intro paragraph.\n\n" + ("Same sentence again. " * 150) + "\n\nThe end.",
    "word " * 700,
    "x" * 3000,
])
def test_a_document_reads_back_exactly_as_posted(memio: Memio, content: str) -> None:
    http = memio.alice
    created = ok(http.post("/v1/documents", json={"content": content, "doc_id": "log"}), 201)
    assert created["chunks"] > 1 and created["content"] == content
    assert ok(http.get("/v1/documents/log"))["content"] == content
    assert [d["content"] for d in ok(http.get("/v1/documents"))] == [content]
    replaced = ok(http.put("/v1/documents/log", json={"content": content + " Addendum."}))
    assert replaced["content"] == content + " Addendum."
    assert ok(http.get("/v1/documents/log"))["content"] == content + " Addendum."


def test_documents_sharing_text_are_both_kept_and_deleting_one_leaves_the_other_whole(memio: Memio) -> None:
    http = memio.alice
    shared = "Section 1. " + "The pump must be primed before it starts. " * 30
    first, second = shared + "\nAppendix A: valves.", shared + "\nAppendix B: filters."
    ok(http.post("/v1/documents", json={"content": first, "doc_id": "manual-a", "metadata": {"v": 1}}), 201)
    ok(http.post("/v1/documents", json={"content": second, "doc_id": "manual-b"}), 201)
    ok(http.post("/v1/documents", json={"content": shared, "doc_id": "manual-c"}), 201)
    ok(http.post("/v1/facts", json={"content": "Section 1."}), 201)
    assert ok(http.delete("/v1/documents/manual-a")) == {"deleted": ok(http.get("/v1/documents/manual-b"))["chunks"]}
    assert ok(http.get("/v1/documents/manual-b"))["content"] == second
    assert ok(http.get("/v1/documents/manual-c"))["content"] == shared
    error(http.get("/v1/documents/manual-a"), 404, "not_found", "get_document")
    hits = ok(http.post("/v1/documents/search", json={"query": "Appendix B filters"}))
    assert hits[0]["id"] == "manual-b"


def test_a_fact_added_again_is_the_same_fact_unless_its_agent_or_metadata_differ(memio: Memio) -> None:
    http = memio.alice
    one = ok(http.post("/v1/facts", json={"content": "Office wifi is OfficeNet", "agent_id": "a1"}), 201)
    same = ok(http.post("/v1/facts", json={"content": "Office wifi is OfficeNet", "agent_id": "a1"}), 201)
    other = ok(http.post("/v1/facts", json={"content": "Office wifi is OfficeNet", "agent_id": "a2"}), 201)
    assert same["id"] == one["id"] and other["id"] != one["id"] and other["agent_id"] == "a2"
    assert [f["id"] for f in ok(http.get("/v1/facts", params={"agent_id": "a2"}))] == [other["id"]]
    ok(http.delete(f"/v1/facts/{one['id']}"))
    assert ok(http.get(f"/v1/facts/{other['id']}"))["content"] == "Office wifi is OfficeNet"


def test_a_memos_add_says_which_memories_it_found_already_stored(users: Users) -> None:
    http = users.alice
    first = memos_ok(http.post("/api/memories", json={"memory_content": LOG}))
    again = memos_ok(http.post("/api/memories", json={"memory_content": LOG}))
    assert len(first["added"]) > 1 and first["deduplicated"] == []
    assert again["added"] == [] and again["deduplicated"] == first["added"]
    assert [m["id"] for m in again["memories"]] == first["added"]


def test_every_dialect_that_answers_an_add_says_when_it_was_de_duplicated(users: Users) -> None:
    http = users.alice
    fact = ok(http.post("/v1/facts", json={"content": "The gate code is 4711"}), 201)
    again = ok(http.post("/v1/facts", json={"content": "The gate code is 4711"}), 201)
    assert fact["deduplicated"] is False and again["deduplicated"] is True and again["id"] == fact["id"]
    [added] = good(http.post("/v1/memories", json={"content": "Standup is at 9:15"}), 201)
    [same] = good(http.post("/v1/memories", json={"content": "Standup is at 9:15"}), 201)
    assert (added["event"], same["event"], same["id"]) == ("ADD", "NONE", added["id"])
    message = {"messages": [{"role": "user", "content": "My cousin Okonkwo lives in Lagos."}]}
    first = ok(http.post("/v1/history/sessions/s1/messages", json=message), 201)
    twice = ok(http.post("/v1/history/sessions/s1/messages", json=message), 201)
    assert first["deduplicated_ids"] == [] and twice["memory_ids"] == [] and twice["deduplicated_ids"] == \
        first["memory_ids"]


def test_the_same_words_in_another_session_are_found_through_that_session(users: Users) -> None:
    http = users.alice
    message = {"messages": [{"role": "user", "content": "My cousin Okonkwo lives in Lagos."}]}
    ok(http.post("/v1/history/sessions/sessC/messages", json=message), 201)
    in_d = ok(http.post("/v1/history/sessions/sessD/messages", json=message), 201)
    assert len(in_d["memory_ids"]) == 1
    found = ok(http.post("/v1/history/sessions/sessD/search", json={"query": "Okonkwo"}))
    assert found and "Okonkwo" in str(found)
    ok(http.delete("/v1/history/sessions/sessC"))
    assert "Okonkwo" in str(ok(http.post("/v1/history/sessions/sessD/search", json={"query": "Okonkwo"})))


def test_mem0_keeps_the_metadata_of_each_caller(users: Users) -> None:
    http = users.alice
    [first] = good(http.post("/v1/memories", json={"content": "Team lunch is on Fridays",
                                                   "metadata": {"team": "red"}}), 201)
    [second] = good(http.post("/v1/memories", json={"content": "Team lunch is on Fridays",
                                                    "metadata": {"team": "blue"}}), 201)
    [again] = good(http.post("/v1/memories", json={"content": "Team lunch is on Fridays",
                                                   "metadata": {"team": "red"}}), 201)
    assert second["id"] != first["id"] and again["id"] == first["id"]
    assert (first["metadata"]["team"], second["metadata"]["team"]) == ("red", "blue")
    good(http.delete(f"/v1/memories/{first['id']}"))
    assert good(http.get(f"/v1/memories/{second['id']}"))["metadata"]["team"] == "blue"


def test_a_mem0_update_of_the_text_replaces_the_entities_it_gave(users: Users) -> None:
    http = users.alice
    [added] = good(http.post("/v1/memories", json={"content": "Prefers aisle seats on long flights",
                                                   "metadata": {"topic": "travel"}}), 201)
    assert "aisle" in added["metadata"]["entities"]
    changed = good(http.put(f"/v1/memories/{added['id']}", json={"content": "Prefers window seats on long flights"}))
    entities = good(http.get(f"/v1/memories/{added['id']}"))["metadata"]["entities"]
    assert changed["content"] == "Prefers window seats on long flights"
    assert "window" in entities and "aisle" not in entities


def test_a_fact_inside_a_long_mem0_message_is_found_first(users: Users) -> None:
    http = users.alice
    for note in NOTES:
        good(http.post("/v1/memories", json={"content": note}), 201)
    turn = TRIP + "Also, my passport number ends in 4417."
    good(http.post("/v1/memories", json={"messages": [{"role": "user", "content": turn}]}), 201)
    found = good(http.get("/v1/memories/search", params={"query": "passport 4417"}))
    assert "4417" in found[0]["content"]


def test_memio_graph_reads_leave_out_what_only_archived_memories_said(memio: Memio) -> None:
    http = memio.alice
    moved = ok(http.post("/v1/facts", json={"content": "Caroline moved to Lisbon in March."}), 201)
    ok(http.post("/v1/facts", json={"content": "Caroline met Zofia at the support group."}), 201)
    assert "Lisbon" in {t["object"] for t in ok(http.get("/v1/graph/entities/Caroline"))["triples"]}
    memio.app.service.update_memory("alice", moved["id"], status="archived")

    def objects(triples: list[dict[str, object]]) -> set[object]:
        return {t["object"] for t in triples}

    assert objects(ok(http.get("/v1/graph/entities/Caroline"))["triples"]) == {"Zofia"}
    assert objects(ok(http.get("/v1/graph/triples"))["triples"]) == {"Zofia"}
    searched = ok(http.post("/v1/graph/search", json={"query": "Where did Caroline move?", "depth": 2}))
    assert objects(searched["triples"]) == {"Zofia"}
    assert "Lisbon" not in {n["name"] for n in searched["nodes"]}
    error(http.get("/v1/graph/entities/Lisbon"), 404, "not_found", "graph_get_entity", "Lisbon")
    memio.app.service.update_memory("alice", moved["id"], status="activated")
    assert "Lisbon" in objects(ok(http.get("/v1/graph/entities/Lisbon"))["triples"])
