"""The memio-style dialect under /v1 over real HTTP: facts, history, documents (the graph routes are in
test_memio_graph.py), memio's error envelope, per-user isolation, and the same data as the core."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.rest.conftest import Memio, client


def ok(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error(response: httpx2.Response, status: int, code: str, operation: str, *words: str) -> str:
    """memio's error object: ``{error, detail, provider, operation}``, the detail naming ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "provider", "operation"}, body
    assert (body["error"], body["provider"], body["operation"]) == (code, "memos-mcp", operation), body
    for word in words:
        assert word in body["detail"], body["detail"]
    detail: str = body["detail"]
    return detail


FACT_KEYS = {"id", "content", "user_id", "agent_id", "metadata", "score", "deduplicated", "created_at", "updated_at"}


# --- facts ---------------------------------------------------------------------------------------

def test_fact_crud_and_search(memio: Memio) -> None:
    http = memio.alice
    fact = ok(http.post("/v1/facts", json={"content": "Alice prefers dark mode in every editor",
                                           "agent_id": "assistant-1", "metadata": {"topic": "ui"}}), 201)
    assert set(fact) == FACT_KEYS
    assert (fact["user_id"], fact["agent_id"], fact["metadata"], fact["score"], fact["deduplicated"]) == (
        "alice", "assistant-1", {"topic": "ui"}, None, False)
    other = ok(http.post("/v1/facts", json={"content": "Alice lives in Lisbon"}), 201)
    assert other["agent_id"] is None

    assert ok(http.get(f"/v1/facts/{fact['id']}")) == {**fact, "deduplicated": None}  # said by a create only
    listed = ok(http.get("/v1/facts"))
    assert {f["id"] for f in listed} == {fact["id"], other["id"]}
    assert [f["id"] for f in ok(http.get("/v1/facts", params={"agent_id": "assistant-1"}))] == [fact["id"]]
    assert len(ok(http.get("/v1/facts", params={"limit": 1}))) == 1

    found = ok(http.post("/v1/facts/search", json={"query": "which theme does alice like", "limit": 1}))
    assert [f["id"] for f in found] == [fact["id"]] and 0 < found[0]["score"] <= 1
    found = ok(http.post("/v1/facts/search", json={"query": "theme", "agent_id": "nobody"}))
    assert found == []

    updated = ok(http.put(f"/v1/facts/{fact['id']}", json={"content": "Alice prefers light mode"}))
    assert (updated["content"], updated["agent_id"], updated["metadata"]) == (
        "Alice prefers light mode", "assistant-1", {"topic": "ui"})
    updated = ok(http.put(f"/v1/facts/{fact['id']}", json={"metadata": {"topic": "editor"}}))
    assert (updated["metadata"], updated["agent_id"]) == ({"topic": "editor"}, "assistant-1")

    assert ok(http.delete(f"/v1/facts/{fact['id']}")) == {"deleted": 1}
    error(http.get(f"/v1/facts/{fact['id']}"), 404, "not_found", "get_fact", fact["id"])
    assert ok(http.delete("/v1/facts")) == {"deleted": 1}
    assert ok(http.get("/v1/facts")) == []


def test_fact_errors_name_the_field_or_the_id(memio: Memio) -> None:
    http = memio.alice
    error(http.post("/v1/facts", json={"user_id": "alice"}), 422, "invalid_request", "create_fact", "content")
    error(http.post("/v1/facts", content=b"{not json"), 422, "invalid_request", "create_fact", "JSON")
    error(http.post("/v1/facts", json={"content": "x", "metadata": {"bad key!": 1}}), 422, "invalid_request",
          "create_fact", "metadata")
    error(http.post("/v1/facts", json={"content": "word " * 400}), 422, "invalid_request", "create_fact",
          "content", "document")
    error(http.post("/v1/facts/search", json={"query": "x", "limit": 0}), 422, "invalid_request",
          "search_facts", "limit")
    error(http.post("/v1/facts/search", json={"query": "x", "filters": {"nope": 1}}), 422, "invalid_request",
          "search_facts", "filters.nope")
    error(http.get("/v1/facts", params={"limit": "many"}), 422, "invalid_request", "list_facts", "limit")
    error(http.put("/v1/facts/unknown-id", json={"content": "x"}), 404, "not_found", "update_fact", "unknown-id")
    missing = "00000000-0000-4000-8000-000000000000"
    error(http.delete(f"/v1/facts/{missing}"), 404, "not_found", "delete_fact", missing)
    fact = ok(http.post("/v1/facts", json={"content": "Alice owns a cat"}), 201)
    error(http.put(f"/v1/facts/{fact['id']}", json={}), 422, "invalid_request", "update_fact", "nothing to update")


def test_one_user_never_sees_another_users_facts_and_admins_act_for_users(memio: Memio) -> None:
    fact = ok(memio.alice.post("/v1/facts", json={"content": "Alice's locker code is 4711"}), 201)
    for answer in (memio.bob.get(f"/v1/facts/{fact['id']}"), memio.bob.delete(f"/v1/facts/{fact['id']}"),
                   memio.bob.put(f"/v1/facts/{fact['id']}", json={"content": "mine"})):
        assert answer.status_code == 404, answer.text
    assert ok(memio.bob.get("/v1/facts")) == []
    assert ok(memio.bob.post("/v1/facts/search", json={"query": "locker code"})) == []
    assert ok(memio.bob.delete("/v1/facts")) == {"deleted": 0}
    error(memio.bob.post("/v1/facts", json={"content": "planted", "user_id": "alice"}), 403, "forbidden",
          "create_fact", "alice")
    error(memio.bob.get("/v1/facts", params={"user_id": "alice"}), 403, "forbidden", "list_facts")

    planted = ok(memio.root.post("/v1/facts", json={"content": "Alice's bus leaves at 8", "user_id": "alice"}), 201)
    assert planted["user_id"] == "alice"
    assert {f["id"] for f in ok(memio.root.get("/v1/facts", params={"user_id": "alice"}))} == {
        fact["id"], planted["id"]}
    assert ok(memio.alice.get(f"/v1/facts/{planted['id']}"))["content"] == "Alice's bus leaves at 8"


def test_a_fact_added_here_is_found_by_the_core_and_core_facts_are_listed_here(memio: Memio) -> None:
    fact = ok(memio.alice.post("/v1/facts", json={"content": "Alice's favourite fruit is the mango"}), 201)
    found = memio.app.service.search("alice", "favourite fruit").memories
    assert found[0].id == fact["id"] and found[0].metadata == {}
    core = memio.app.service.add_memory("alice", memory_content="Alice plays the cello").memories[0]
    assert ok(memio.alice.get(f"/v1/facts/{core.id}"))["content"] == "Alice plays the cello"
    assert core.id in {f["id"] for f in ok(memio.alice.get("/v1/facts"))}


def test_without_a_key_the_dialect_answers_401(memio: Memio) -> None:
    with client(memio.app) as anonymous:
        assert anonymous.get("/v1/facts").status_code == 401


# --- history -------------------------------------------------------------------------------------

def test_sessions_round_trip(memio: Memio) -> None:
    http = memio.alice
    added = ok(http.post("/v1/history/sessions/trip-1/messages", json={"messages": [
        {"role": "user", "content": "I am planning a trip to Kyoto in April", "timestamp": "2024-03-01T10:00:00Z",
         "metadata": {"channel": "web"}},
        {"role": "assistant", "content": "Kyoto in April has the cherry blossoms", "name": "guide"}]}), 201)
    assert added["session_id"] == "trip-1" and len(added["message_ids"]) == 2 and added["memory_ids"]
    ok(http.post("/v1/history/sessions/other/messages", json={"messages": [
        {"role": "user", "content": "My sister is called Maria"}]}), 201)

    messages = ok(http.get("/v1/history/sessions/trip-1/messages"))
    assert messages["session_id"] == "trip-1"
    assert [(m["role"], m["name"]) for m in messages["messages"]] == [("user", None), ("assistant", "guide")]
    assert messages["messages"][0]["timestamp"].startswith("2024-03-01T10:00:00")
    assert set(messages["messages"][0]) == {"id", "role", "content", "name", "metadata", "timestamp"}
    assert set(ok(http.get("/v1/history/sessions"))["sessions"]) == {"trip-1", "other"}

    hits = ok(http.post("/v1/history/sessions/trip-1/search", json={"query": "Kyoto trip", "limit": 5}))
    assert hits["session_id"] == "trip-1" and hits["results"]
    assert all("Kyoto" in h["content"] for h in hits["results"])
    assert set(hits["results"][0]) == {"id", "content", "role", "score", "timestamp"}
    assert ok(http.post("/v1/history/sessions/other/search", json={"query": "Kyoto", "limit": 5}))["results"] \
        and all("Kyoto" not in h["content"]
                for h in ok(http.post("/v1/history/sessions/other/search", json={"query": "Kyoto"}))["results"])

    assert ok(memio.bob.get("/v1/history/sessions")) == {"sessions": []}
    error(memio.bob.get("/v1/history/sessions/trip-1/messages"), 404, "not_found", "get_messages", "trip-1")

    assert ok(http.delete("/v1/history/sessions/trip-1")) == {"deleted": 2}
    error(http.get("/v1/history/sessions/trip-1/messages"), 404, "not_found", "get_messages", "trip-1")
    assert ok(http.delete("/v1/history/sessions")) == {"deleted": 1}
    assert ok(http.get("/v1/history/sessions")) == {"sessions": []}


def test_session_errors(memio: Memio) -> None:
    http = memio.alice
    error(http.post("/v1/history/sessions/s/messages", json={"messages": []}), 422, "invalid_request",
          "add_messages", "messages")
    error(http.post("/v1/history/sessions/s/messages", json={"messages": [{"role": "robot", "content": "x"}]}),
          422, "invalid_request", "add_messages", "messages.0.role")
    error(http.post("/v1/history/sessions/bad id!/messages", json={"messages": [{"role": "user", "content": "x"}]}),
          422, "invalid_request", "add_messages", "conversation_id")
    error(http.post("/v1/history/sessions/nope/search", json={"query": "x"}), 404, "not_found", "search_session",
          "nope")
    error(http.post("/v1/history/sessions/nope/search", json={"limit": 3}), 422, "invalid_request",
          "search_session", "query")
    error(http.delete("/v1/history/sessions/nope"), 404, "not_found", "delete_session", "nope")


# --- documents -----------------------------------------------------------------------------------

LONG = " ".join(f"Section {i} of the handbook explains how the team ships release number {i} safely."
                for i in range(60))


def test_documents_round_trip_with_chunks(memio: Memio) -> None:
    http = memio.alice
    doc = ok(http.post("/v1/documents", json={"content": LONG, "doc_id": "handbook", "metadata": {"v": 1}}), 201)
    assert (doc["id"], doc["metadata"], doc["content"]) == ("handbook", {"v": 1}, LONG)
    assert doc["chunks"] > 1
    short = ok(http.post("/v1/documents", json={"content": "The office closes at six."}), 201)
    assert short["chunks"] == 1 and short["id"]

    assert ok(http.get("/v1/documents/handbook")) == doc
    assert {d["id"] for d in ok(http.get("/v1/documents"))} == {"handbook", short["id"]}
    found = ok(http.post("/v1/documents/search", json={"query": "release number 42", "limit": 1}))
    assert [d["id"] for d in found] == ["handbook"] and "42" in found[0]["content"] and found[0]["score"] > 0

    # documents are not facts, and facts are not documents
    assert ok(http.get("/v1/facts")) == []
    assert ok(http.post("/v1/facts/search", json={"query": "office closes"})) == []
    error(http.post("/v1/documents", json={"content": "other", "doc_id": "handbook"}), 409, "conflict",
          "create_document", "handbook")

    updated = ok(http.put("/v1/documents/handbook", json={"content": LONG + " A final word."}))
    assert updated["content"] == LONG + " A final word." and updated["metadata"] == {"v": 1}
    assert ok(http.get("/v1/documents/handbook"))["content"] == updated["content"]

    error(memio.bob.get("/v1/documents/handbook"), 404, "not_found", "get_document", "handbook")
    assert ok(memio.bob.get("/v1/documents")) == []
    assert ok(http.delete("/v1/documents/handbook")) == {"deleted": updated["chunks"]}
    error(http.get("/v1/documents/handbook"), 404, "not_found", "get_document", "handbook")
    assert ok(http.delete("/v1/documents")) == {"deleted": 1}
    assert ok(http.get("/v1/documents")) == []


def test_document_errors(memio: Memio) -> None:
    http = memio.alice
    error(http.post("/v1/documents", json={"doc_id": "x"}), 422, "invalid_request", "create_document", "content")
    error(http.post("/v1/documents", json={"content": "x", "doc_id": "no spaces"}), 422, "invalid_request",
          "create_document", "doc_id")
    error(http.post("/v1/documents", json={"content": "x" * 20_001}), 413, "payload_too_large", "create_document",
          "content")
    error(http.put("/v1/documents/nope", json={"content": "x"}), 404, "not_found", "update_document", "nope")
    error(http.put("/v1/documents/nope", json={}), 422, "invalid_request", "update_document", "content")
    error(http.delete("/v1/documents/nope"), 404, "not_found", "delete_document", "nope")
    ok(http.post("/v1/documents", json={"content": "Lunch is at noon.", "doc_id": "lunch"}), 201)
    error(http.post("/v1/documents", json={"content": "Lunch is at noon.", "doc_id": "lunch"}), 409,
          "conflict", "create_document", "lunch")
    oversized = b'{"content": "' + b"x" * 1_100_000 + b'"}'
    error(http.post("/v1/documents", content=oversized, headers={"Content-Type": "application/json"}), 413,
          "payload_too_large", "create_document", "body")


def test_documents_whose_ids_differ_in_case_are_two_documents(memio: Memio) -> None:
    """A document whose ``doc_id`` differed only in case from another's, with the same text or text
    equal once folded, was answered 201 and then could not be found by either id."""
    http = memio.alice
    first = ok(http.post("/v1/documents", json={"content": "Hello World z1", "doc_id": "Memo-z1"}), 201)
    folded = ok(http.post("/v1/documents", json={"content": "hello world z1", "doc_id": "memo-z1"}), 201)
    same = ok(http.post("/v1/documents", json={"content": "Hello World z1", "doc_id": "MEMO-z1"}), 201)
    assert [(d["id"], d["content"]) for d in (first, folded, same)] == [
        ("Memo-z1", "Hello World z1"), ("memo-z1", "hello world z1"), ("MEMO-z1", "Hello World z1")]
    for doc in (first, folded, same):
        assert ok(http.get(f"/v1/documents/{doc['id']}")) == doc
    assert {d["id"] for d in ok(http.get("/v1/documents"))} == {"Memo-z1", "memo-z1", "MEMO-z1"}
    assert ok(http.delete("/v1/documents/MEMO-z1")) == {"deleted": 1}
    assert ok(http.get("/v1/documents/Memo-z1")) == first  # the other documents keep their text


def test_a_missing_or_unknown_key_is_refused_in_memios_shape_with_a_challenge(memio: Memio) -> None:
    with client(memio.app) as anonymous, client(memio.app, "mk_not-a-key") as stranger:
        missing = anonymous.post("/v1/facts/search", json={"query": "anything"})
        error(missing, 401, "unauthorized", "search_facts", "API key is required")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        error(stranger.get("/v1/facts"), 401, "unauthorized", "list_facts", "unknown API key")


def test_health_reports_memios_stores_without_a_key(memio: Memio) -> None:
    with client(memio.app) as anonymous:
        health = ok(anonymous.get("/health"))
    assert health["status"] in ("ok", "starting")
    assert health["stores"] == {"facts": "ok", "history": "ok", "documents": "ok"}
