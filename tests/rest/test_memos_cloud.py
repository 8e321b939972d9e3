"""The MemOS cloud dialect over real HTTP: the exact requests the official ``MemOSClient`` makes
(``memos/api/client.py`` of MemoryOS 2.0.33: POST JSON with every optional key present, ``Token`` auth,
``GET /get/memory/{id}``), the reference shapes, errors in ``{code, message, data: null}``."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import pytest

from tests.openai_server import OpenAIServer, Reply
from tests.rest.conftest import RestServe, Users, client, failed, llm_of, ok

BASE = "/api/openmem/v1"
MEMORY_FIELDS = {"id": str, "memory_key": str, "memory_value": str, "memory_type": str, "create_time": int,
                 "status": str, "confidence": float, "tags": list, "update_time": int}
PREFERENCE_FIELDS = {"id", "preference_type", "preference", "reasoning", "create_time", "conversation_id",
                     "status", "update_time"}

DELETED = {"success": True, "skipped_cube_ids": []}  # no read-only cube held a match

def post(http: httpx2.Client, path: str, payload: dict[str, Any]) -> httpx2.Response:
    """As the client sends it: ``data=json.dumps(payload)`` with a JSON content type."""
    return http.post(BASE + path, content=json.dumps(payload), headers={"Content-Type": "application/json"})


def add(http: httpx2.Client, user_id: str, text: str, conversation_id: str | None = None,
        async_mode: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = ok(post(http, "/add/message", {
        "messages": [{"role": "user", "content": text}], "user_id": user_id, "conversation_id": conversation_id,
        "info": None, "source": None, "app_id": None, "agent_id": None, "allow_public": False,
        "allow_knowledgebase_ids": None, "allow_memory_view": None, "tags": None, "async_mode": async_mode}))
    return data


def search(http: httpx2.Client, user_id: str, query: str, **extra: Any) -> dict[str, Any]:
    payload = {"query": query, "user_id": user_id, "conversation_id": None, "agent_id": None,
               "memory_limit_number": 6, "include_preference": True, "knowledgebase_ids": None, "filter": None,
               "preference_limit_number": 6, "tool_memory_limit_number": 6, "relativity": None,
               "include_skill": False, "skill_limit_number": 6, "include_memory_view": None,
               "context_format": "memory", "source": None, "include_tool_memory": False, **extra}
    data: dict[str, Any] = ok(post(http, "/search/memory", payload))
    return data


def check_memory(detail: dict[str, Any], relativity: bool) -> None:
    for name, kind in MEMORY_FIELDS.items():
        assert isinstance(detail[name], kind), (name, detail)
    assert detail["create_time"] > 1_600_000_000_000  # milliseconds, not seconds
    assert set(detail) == {*MEMORY_FIELDS, "conversation_id", "relativity"}
    if relativity:
        assert isinstance(detail["relativity"], float) and 0 <= detail["relativity"] <= 1


def test_the_client_round_trip(users: Users) -> None:
    added = add(users.alice, "alice", "I am planning a trip to Kyoto in October", "conv-1")
    assert added["success"] is True and added["status"] == "completed" and added["task_id"]
    status = ok(post(users.alice, "/get/status", {"task_id": added["task_id"]}))
    assert status == {"task_id": added["task_id"], "status": "completed"}

    found = search(users.alice, "alice", "Where am I travelling?", conversation_id="conv-1")
    assert set(found) == {"memory_detail_list", "preference_detail_list", "preference_note"}
    memory = found["memory_detail_list"][0]
    check_memory(memory, relativity=True)
    assert "Kyoto" in memory["memory_value"] and memory["conversation_id"] == "conv-1"
    assert memory["status"] == "activated"

    page = ok(post(users.alice, "/get/memory", {"include_preference": True, "user_id": "alice", "agent_id": None,
                                                "include_tool_memory": True, "include_memory_view": None,
                                                "filter": None, "page": 1, "size": 10}))
    assert {k: page[k] for k in ("total", "size", "current", "pages")} == {"total": 1, "size": 10, "current": 1,
                                                                           "pages": 1}
    assert [m["id"] for m in page["memory_detail_list"]] == [memory["id"]]
    check_memory(page["memory_detail_list"][0], relativity=False)

    one = ok(users.alice.get(f"{BASE}/get/memory/{memory['id']}"))
    assert one["memory_value"] == memory["memory_value"] and one["relativity"] is None

    messages = ok(post(users.alice, "/get/message", {"user_id": "alice", "conversation_id": "conv-1",
                                                     "conversation_limit_number": None,
                                                     "message_limit_number": None, "source": None}))
    [message] = messages["message_detail_list"]
    assert message["role"] == "user" and "Kyoto" in message["content"] and message["conversation_id"] == "conv-1"
    assert isinstance(message["create_time"], int) and message["create_time"] > 1_600_000_000_000

    updated = ok(post(users.alice, "/update/memory", {"memory_id": memory["id"], "content": "I go to Osaka in May",
                                                      "title": "Trip", "status": None}))
    assert updated["memory_value"] == "I go to Osaka in May" and updated["memory_key"] == "Trip"
    assert updated["update_time"] >= updated["create_time"]
    archived = ok(post(users.alice, "/update/memory", {"memory_id": memory["id"], "status": "archived"}))
    assert archived["status"] == "archived"

    assert ok(post(users.alice, "/delete/memory", {"memory_ids": [memory["id"]]})) == DELETED
    failed(users.alice.get(f"{BASE}/get/memory/{memory['id']}"), 404, memory["id"])


def test_preferences_have_their_shape(users: Users) -> None:
    add(users.alice, "alice", "I prefer green tea over coffee in the morning", "c")
    found = search(users.alice, "alice", "What do I like to drink?")
    assert found["preference_detail_list"], found
    for preference in found["preference_detail_list"]:
        assert set(preference) == PREFERENCE_FIELDS
        assert preference["preference_type"] in ("explicit_preference", "implicit_preference")
        assert isinstance(preference["create_time"], int) and preference["create_time"] > 1_600_000_000_000
    assert bool(found["preference_note"]) == bool(found["preference_detail_list"])
    none = search(users.alice, "alice", "What do I like to drink?", include_preference=False)
    assert none["preference_detail_list"] == [] and none["preference_note"] == ""


def test_a_conversation_comes_first_without_excluding_others(users: Users) -> None:
    add(users.alice, "alice", "My sister lives in Lisbon and works as an architect", "family")
    add(users.alice, "alice", "My colleague lives in Lisbon and works as an architect", "work")
    for conversation in ("family", "work"):
        found = search(users.alice, "alice", "Who lives in Lisbon and works as an architect?",
                       conversation_id=conversation)
        conversations = [m["conversation_id"] for m in found["memory_detail_list"]]
        assert conversations[0] == conversation and set(conversations) == {"family", "work"}
    assert search(users.alice, "alice", "Who lives in Lisbon?", relativity=1.0)["memory_detail_list"] == []


def test_delete_by_user_and_by_filter(users: Users) -> None:
    add(users.alice, "alice", "I keep a cat called Miso", "pets")
    add(users.alice, "alice", "I run every Sunday morning", "sport")
    assert ok(post(users.alice, "/delete/memory", {"filter": {"conversation_id": "pets"}})) == DELETED
    left = ok(post(users.alice, "/get/memory", {"user_id": "alice"}))
    assert [m["conversation_id"] for m in left["memory_detail_list"]] == ["sport"]
    assert ok(post(users.alice, "/delete/memory", {"user_id": "alice"})) == DELETED
    assert ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["total"] == 0


def test_bad_input_is_answered_in_the_envelope(users: Users) -> None:
    http = users.alice
    failed(http.post(BASE + "/search/memory", content=b"{not json", headers={"Content-Type": "application/json"}),
           400, "JSON")
    failed(post(http, "/search/memory", {"user_id": "alice"}), 400, "query")
    failed(post(http, "/add/message", {"messages": [], "user_id": "alice"}), 400, "messages")
    failed(post(http, "/add/message", {"messages": [{"role": "user", "content": "hi"}]}), 400, "user_id")
    failed(post(http, "/get/memory", {"user_id": "alice", "size": 51}), 400, "size")
    failed(post(http, "/search/memory", {"query": "x", "user_id": "alice", "filter": {"colour": "red"}}), 400,
           "filter")
    failed(post(http, "/delete/memory", {"memory_ids": ["a"], "user_id": "alice"}), 400, "exactly one")
    failed(post(http, "/delete/memory", {}), 400, "exactly one")
    failed(post(http, "/update/memory", {"memory_id": "x", "status": "gone"}), 400, "status")


def test_unknown_ids_and_other_users(users: Users) -> None:
    add(users.alice, "alice", "My bank PIN hint is the year I moved to Berlin", "secret")
    [mine] = ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["memory_detail_list"]
    unknown = "00000000-0000-4000-8000-000000000000"
    failed(post(users.alice, "/get/status", {"task_id": "no-such-task"}), 404, "no-such-task")
    failed(users.alice.get(f"{BASE}/get/memory/{unknown}"), 404, unknown)
    failed(post(users.alice, "/update/memory", {"memory_id": unknown, "content": "x"}), 404, unknown)
    failed(post(users.alice, "/delete/memory", {"memory_ids": [unknown]}), 404, unknown)
    # bob sees nothing of alice's: her ids are unknown to him, acting as her is forbidden
    failed(users.bob.get(f"{BASE}/get/memory/{mine['id']}"), 404, mine["id"])
    failed(post(users.bob, "/update/memory", {"memory_id": mine["id"], "content": "x"}), 404)
    failed(post(users.bob, "/delete/memory", {"memory_ids": [mine["id"]]}), 404)
    failed(post(users.bob, "/search/memory", {"query": "PIN", "user_id": "alice"}), 403, "alice")
    failed(post(users.bob, "/get/memory", {"user_id": "alice"}), 403)
    failed(post(users.bob, "/delete/memory", {"user_id": "alice"}), 403)
    failed(post(users.bob, "/get/message", {"user_id": "alice", "conversation_id": "secret"}), 403)
    assert search(users.bob, "bob", "PIN hint Berlin")["memory_detail_list"] == []
    task = add(users.alice, "alice", "Another secret about my garden", "secret")["task_id"]
    failed(post(users.bob, "/get/status", {"task_id": task}), 404)
    assert ok(users.alice.get(f"{BASE}/get/memory/{mine['id']}"))["id"] == mine["id"]  # still there


def test_auth_failures_are_401(users: Users) -> None:
    with client(users.app) as anonymous, client(users.app, "mk_wrong", "Token") as wrong:
        for http in (anonymous, wrong):
            assert post(http, "/search/memory", {"query": "x", "user_id": "alice"}).status_code == 401
            assert http.get(f"{BASE}/get/memory/x").status_code == 401


def test_auth_failures_use_the_cloud_envelope(users: Users) -> None:
    with client(users.app) as anonymous:
        failed(post(anonymous, "/search/memory", {"query": "x", "user_id": "alice"}), 401)


def test_chat_without_a_model_is_503_before_any_stream(users: Users) -> None:
    for stream in (False, True):
        response = post(users.alice, "/chat", {"user_id": "alice", "conversation_id": "c", "query": "hi",
                                               "stream": stream})
        assert response.headers["content-type"].startswith("application/json")
        failed(response, 503, "language model")


def test_chat_with_a_model(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    model.replies += ["You are going to Kyoto.", "Kyoto, in October."]
    with client(app) as http:
        add(http, "default", "I am planning a trip to Kyoto in October", "trip", async_mode=False)
        answer = ok(post(http, "/chat", {"user_id": "default", "conversation_id": "trip",
                                         "query": "Where am I going?", "add_message_on_answer": True}))
        assert answer == {"response": "You are going to Kyoto."}
        with http.stream("POST", BASE + "/chat", json={"user_id": "default", "conversation_id": "trip",
                                                      "query": "When?", "stream": True}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            frames = [json.loads(line[5:]) for line in streamed.iter_lines() if line.startswith("data:")]
        assert [f["type"] for f in frames] == ["reference", "text", "text", "text", "end"]
        assert "".join(f["data"] for f in frames[1:-1]) == "Kyoto, in October."
        assert any("Kyoto in October" in m["memory_value"] for m in frames[0]["data"])
        messages = ok(post(http, "/get/message", {"user_id": "default", "conversation_id": "trip"}))
        assert [m["role"] for m in messages["message_detail_list"]][-4:] == ["user", "assistant"] * 2


def test_chat_honours_the_system_prompt_and_the_search_limits(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    model.replies += ["Kyoto.", "Kyoto again."]
    with client(app) as http:
        add(http, "default", "I am planning a trip to Kyoto in October", "trip", async_mode=False)
        add(http, "default", "I prefer window seats on trains", "trip", async_mode=False)
        ok(post(http, "/chat", {"user_id": "default", "conversation_id": "trip", "query": "Where to?",
                                "system_prompt": "You are a terse travel agent."}))
        system = model.chat_requests[-1]["messages"][0]["content"]
        assert system.startswith("You are a terse travel agent.") and "Kyoto in October" in system
        ok(post(http, "/chat", {"user_id": "default", "conversation_id": "trip", "query": "Where to?",
                                "memory_limit_number": 1, "include_preference": False}))
        facts = model.chat_requests[-1]["messages"][0]["content"].split("## Facts")[1].split("## Preferences")
        assert len(facts[0].strip().splitlines()) == 1 and "window seats" not in facts[1]
        failed(post(http, "/chat", {"user_id": "default", "conversation_id": "trip", "query": "x",
                                    "add_message_on_answer": False}), 400, "add_message_on_answer")


def test_a_model_failing_mid_stream_is_an_error_frame_and_without_stream_a_503(rest_serve: RestServe,
                                                                               model: OpenAIServer) -> None:
    app = rest_serve(llm={**llm_of(model), "max_retries": 0})
    model.replies += [Reply(content="one two three four", die_after=2), Reply(content="one two three", die_after=2)]
    with client(app) as http:
        with http.stream("POST", BASE + "/chat", json={"user_id": "default", "conversation_id": "c",
                                                      "query": "Count", "stream": True}) as streamed:
            frames = [json.loads(line[5:]) for line in streamed.iter_lines() if line.startswith("data:")]
        assert [f["type"] for f in frames] == ["reference", "text", "error"]
        assert frames[-1]["data"]["code"] == 503
        failed(post(http, "/chat", {"user_id": "default", "conversation_id": "c", "query": "Count"}), 503,
               "language model")
    assert app.service.get_messages("default", "c") == []


def test_an_impossible_time_or_broken_unicode_is_a_400_never_a_500(users: Users) -> None:
    infinite = users.alice.post("/api/openmem/v1/add/message", json={
        "user_id": "alice", "messages": [{"role": "user", "content": "hello", "chat_time": "INF"}]})
    failed(infinite, 400, "chat_time")
    surrogate = users.alice.post("/api/openmem/v1/add/message", content=b'{"user_id": "alice", "messages": '
                                 b'[{"role": "user", "content": "bad \\ud800 text"}]}',
                                 headers={"Content-Type": "application/json"})
    failed(surrogate, 400, "Unicode")


def test_async_adds_with_a_model_are_followed_through_get_status(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    model.extraction_replies.append(Reply(delay=0.3, content=json.dumps(
        {"facts": [{"key": "Trip", "value": "The user plans a trip to Kyoto in October 2026.", "sources": [0]}]})))
    with client(app) as http:
        added = add(http, "default", "I am planning a trip to Kyoto in October", "trip")
        assert added["status"] in ("waiting", "in_progress")
        status = "waiting"
        for _ in range(400):  # bounded: 20 s
            status = ok(post(http, "/get/status", {"task_id": added["task_id"]}))["status"]
            if status not in ("waiting", "in_progress"):
                break
            time.sleep(0.05)
        assert status == "completed"
        found = search(http, "default", "Kyoto")["memory_detail_list"]
        assert found[0]["memory_value"] == "The user plans a trip to Kyoto in October 2026."
        waited = add(http, "default", "I booked a ryokan", "trip", async_mode=False)
        assert waited["status"] == "failed"  # no scripted answer: the rule extractor's memory, and the reason


def test_a_filter_with_no_condition_or_an_empty_list_deletes_nothing_and_is_refused_naming_it(users: Users) -> None:
    """``{"filter": {"tags": []}}`` (and ``{}``, ``{"kind": null}``, ``{"metadata": {}}``) deleted every
    memory of every cube the caller may write: an empty list was no condition at all."""
    add(users.alice, "alice", "I keep a cat called Miso", "pets", async_mode=False)
    add(users.alice, "alice", "I run every Sunday morning", "sport", async_mode=False)
    before = ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["total"]
    assert before >= 2
    for flt, field in (({}, "filter"), ({"kind": None}, "filter"), ({"conversation_id": None}, "filter"),
                       ({"metadata": {}}, "filter"), ({"tags": []}, "tags"), ({"kind": []}, "kind"),
                       ({"memory_type": []}, "memory_type"), ({"status": []}, "status")):
        failed(post(users.alice, "/delete/memory", {"filter": flt}), 400, field)
        assert ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["total"] == before, flt
    failed(post(users.alice, "/search/memory", {"query": "cat", "user_id": "alice", "filter": {"kind": []}}), 400,
           "kind")
    # a page of facts asked for preferences only: no fact matches (the narrowed kinds are none, not any)
    page = ok(post(users.alice, "/get/memory", {"user_id": "alice", "filter": {"kind": ["preference"]}}))
    assert page["memory_detail_list"] == [] and page["total"] == 0


@pytest.mark.parametrize("value", [2**63, -2**63 - 1, 10**30])
def test_a_metadata_filter_value_no_memory_can_hold_is_refused_naming_it_and_deletes_nothing(
        users: Users, value: int) -> None:
    """An integer beyond 64 bits in a metadata filter was a 507 carrying the vector engine's dump."""
    add(users.alice, "alice", "I keep a cat called Miso", "pets", async_mode=False)
    before = ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["total"]
    for path, body in (("/search/memory", {"query": "cat", "user_id": "alice"}), ("/delete/memory", {})):
        text = failed(post(users.alice, path, {**body, "filter": {"metadata": {"n": value}}}), 400, "metadata")
        assert "64 bits" in text and "qdrant" not in text.lower()
    assert ok(post(users.alice, "/get/memory", {"user_id": "alice"}))["total"] == before



def test_a_bad_filter_is_named_by_the_dialects_own_field(users: Users) -> None:
    """Errors named the core's ``filters.tag`` where this dialect's body field is ``filter``."""
    add(users.alice, "alice", "I keep a cat called Miso", "pets", async_mode=False)
    for path, body in (("/search/memory", {"query": "cat", "user_id": "alice"}),
                       ("/get/memory", {"user_id": "alice"}), ("/delete/memory", {})):
        text = failed(post(users.alice, path, {**body, "filter": {"tag": ["pets"]}}), 400, "filter.tag")
        assert "filters." not in text, text
