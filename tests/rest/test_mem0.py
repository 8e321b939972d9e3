"""The mem0-style dialect over real HTTP: ``/v1/memories...`` and ``/status`` in
``{success, data, message, timestamp}``, errors in ``{success: false, error: {code, message, details}}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx2

from tests.openai_server import OpenAIServer
from tests.rest.conftest import RestServe, Users, client, llm_of

MEMORY_KEYS = {"id", "content", "user_id", "metadata", "relationships"}


def good(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "data", "message", "timestamp"} and body["success"] is True, body
    datetime.fromisoformat(body["timestamp"])
    return body["data"]


def bad(response: httpx2.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "error", "timestamp"} and body["success"] is False, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code, error
    for word in words:
        assert word in error["message"], error["message"]
    return error


def test_memories_round_trip(users: Users) -> None:
    http = users.alice
    [added] = good(http.post("/v1/memories", json={"content": "I love building AI applications with FastAPI",
                                                   "user_id": "alice", "metadata": {"source": "external_test",
                                                                                    "project": "demo"}}), 201)
    assert set(added) == MEMORY_KEYS | {"event"} and added["event"] == "ADD"
    assert added["relationships"] == [{"type": "related_to", "entity": "FastAPI", "confidence": 0.5, "source": "AI"}]
    assert added["content"] == "I love building AI applications with FastAPI" and added["user_id"] == "alice"
    meta = added["metadata"]
    assert meta["source"] == "external_test" and meta["project"] == "demo" and isinstance(meta["entities"], list)
    datetime.fromisoformat(meta["timestamp"])

    one = good(http.get(f"/v1/memories/{added['id']}"))
    assert one == {k: v for k, v in added.items() if k != "event"}  # the event belongs to the add
    embedded = good(http.get(f"/v1/memories/{added['id']}", params={"include_embedding": "true"}))
    assert isinstance(embedded["embedding"], list) and all(isinstance(x, float) for x in embedded["embedding"])

    found = good(http.get("/v1/memories/search", params={"query": "FastAPI", "user_id": "alice", "limit": 5}))
    assert found[0]["id"] == added["id"] and 0 < found[0]["score"] <= 1

    from_chat = good(http.post("/v1/memories", json={"messages": [{"role": "user", "content": "I live in Oslo"}],
                                                     "user_id": "alice"}), 201)
    assert from_chat[0]["metadata"]["source"] == "chat"
    listed = good(http.get("/v1/memories/user/alice", params={"size": 1}))
    assert listed["total"] == 2 and listed["size"] == 1 and len(listed["memories"]) == 1

    changed = good(http.put(f"/v1/memories/{added['id']}", json={"content": "I build AI apps with Starlette"}))
    assert changed["content"] == "I build AI apps with Starlette" and changed["metadata"]["project"] == "demo"

    assert good(http.delete(f"/v1/memories/{added['id']}")) == {"id": added["id"], "deleted": True}
    bad(http.get(f"/v1/memories/{added['id']}"), 404, "MEMORY_NOT_FOUND", added["id"])
    bad(http.delete(f"/v1/memories/{added['id']}"), 404, "MEMORY_NOT_FOUND")
    bad(http.put(f"/v1/memories/{added['id']}", json={"content": "x"}), 404, "MEMORY_NOT_FOUND")


def test_bad_input(users: Users) -> None:
    http = users.alice
    bad(http.post("/v1/memories", content=b"{oops", headers={"Content-Type": "application/json"}), 400,
        "INVALID_REQUEST", "JSON")
    bad(http.post("/v1/memories", json={"user_id": "alice"}), 400, "INVALID_REQUEST", "exactly one")
    bad(http.post("/v1/memories", json={"content": "a", "messages": [{"content": "b"}]}), 400, "INVALID_REQUEST")
    bad(http.post("/v1/memories", json={"content": 12}), 400, "INVALID_REQUEST", "content")
    bad(http.post("/v1/memories", json={"content": "x", "metadata": {"bad key!": 1}}), 400, "INVALID_REQUEST",
        "metadata")
    bad(http.get("/v1/memories/search"), 400, "INVALID_REQUEST", "query")
    bad(http.get("/v1/memories/search", params={"query": "x", "limit": "lots"}), 400, "INVALID_REQUEST", "limit")
    bad(http.put("/v1/memories/00000000-0000-4000-8000-000000000000", json={}), 400, "INVALID_REQUEST")
    bad(http.get("/v1/memories/not-an-id"), 404, "MEMORY_NOT_FOUND")


def test_max_memory_size_is_413(rest_serve: RestServe) -> None:
    app = rest_serve(max_memory_size=50)
    with client(app) as http:
        error = bad(http.post("/v1/memories", json={"content": "x" * 51}), 413, "PAYLOAD_TOO_LARGE", "50")
        assert error["details"]["field"] == "memory_content"


def test_other_users_and_auth(users: Users) -> None:
    [mine] = good(users.alice.post("/v1/memories", json={"content": "My locker code is 4711"}), 201)
    bad(users.bob.get(f"/v1/memories/{mine['id']}"), 404, "MEMORY_NOT_FOUND")
    bad(users.bob.delete(f"/v1/memories/{mine['id']}"), 404, "MEMORY_NOT_FOUND")
    bad(users.bob.get("/v1/memories/user/alice"), 403, "FORBIDDEN", "alice")
    bad(users.bob.get("/v1/memories/search", params={"query": "locker", "user_id": "alice"}), 403, "FORBIDDEN")
    assert good(users.bob.get("/v1/memories/search", params={"query": "locker code"})) == []
    assert good(users.root.get("/v1/memories/user/alice"))["total"] == 1  # an admin may act for alice
    with client(users.app) as anonymous, client(users.app, "mk_wrong") as wrong:
        for http in (anonymous, wrong):
            assert http.get("/v1/memories/search", params={"query": "x"}).status_code == 401
            assert http.get("/status").status_code == 401


def test_auth_failures_use_the_mem0_envelope(users: Users) -> None:
    with client(users.app) as anonymous:
        bad(anonymous.get("/status"), 401, "UNAUTHORIZED")


def test_status(users: Users) -> None:
    good(users.alice.post("/v1/memories", json={"content": "I like sailing"}), 201)
    status = good(users.alice.get("/status"))
    assert status["status"] == "ok" and isinstance(status["version"], str) and status["uptime_seconds"] >= 0
    assert status["counts"] == {"memories": 1, "cubes": 1, "conversations": 0}
    assert good(users.bob.get("/status"))["counts"]["memories"] == 0


def test_added_through_mem0_found_through_the_cloud_api(users: Users) -> None:
    [added] = good(users.alice.post("/v1/memories", json={"content": "My favourite mountain is the Matterhorn"}),
                   201)
    response = users.alice.post("/api/openmem/v1/search/memory",
                                json={"query": "Which mountain do I like?", "user_id": "alice"})
    assert response.status_code == 200, response.text
    found = response.json()["data"]["memory_detail_list"]
    assert found[0]["id"] == added["id"] and found[0]["memory_value"] == added["content"]


def test_infer_false_stores_the_messages_as_given_without_the_language_model(rest_serve: RestServe,
                                                                             model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    said = [{"role": "user", "content": "My locker code is 4471."},
            {"role": "user", "content": "The gym closes at 22:00 on Sundays."}]
    with client(app) as http:
        added = good(http.post("/v1/memories", json={"messages": said, "infer": False}), 201)
        assert sorted(m["content"] for m in added) == sorted(m["content"] for m in said)
        assert all(m["event"] == "ADD" for m in added)
        assert model.chats == []  # no extraction call
        bad(http.post("/v1/memories", json={"messages": said, "infer": "sometimes"}), 400, "INVALID_REQUEST",
            "infer")
    assert sorted(m.memory for m in app.service.list_memories("default").memories) == \
        sorted(m["content"] for m in said)


def test_an_empty_user_id_deletes_nothing_and_is_refused_naming_it(users: Users) -> None:
    """DELETE /v1/memories?user_id= deleted every memory of the caller: an empty id read as "the caller"."""
    http = users.alice
    good(http.post("/v1/memories", json={"messages": [{"role": "user", "content": "I grow tomatoes."}],
                                         "infer": False}), 201)
    before = good(http.get("/v1/memories"))
    assert before
    for params in ({"user_id": ""}, {"user_id": "", "agent_id": "cook"}):
        bad(http.delete("/v1/memories", params=params), 400, "INVALID_REQUEST", "user_id")
    assert good(http.get("/v1/memories")) == before
