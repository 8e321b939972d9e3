"""Every REST dialect over real HTTP acts on what the client sent, or refuses it by name: a misnamed
body field or query parameter is an error in the dialect's envelope naming it and the right name
(never dropped, which would widen a read or send a write to the default cube); the fields a dialect
defines are honoured (mem0's agent_id and run_id are scopes); blank text and ids made only of dots are
refused; and a refused request stores nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.openai_server import OpenAIServer
from tests.rest.conftest import Memio, RestServe, Users, client, llm_of

Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keywords (json=, params=)


def refused(response: httpx2.Response, *words: str) -> str:
    """The error text of a 400 (422 in memio) in any dialect's envelope, naming ``words``."""
    assert response.status_code in (400, 422), response.text
    text = response.text
    for word in words:
        assert word in text, text
    return text


def count(users: Users, user: str = "alice") -> int:
    return users.app.service.list_memories(user, size=1).total


def work_cube(users: Users) -> None:
    users.app.service.create_cube("alice", "Work", "work")


# (request with one misnamed field or parameter, the misnamed name, the right name)
MISNAMED: list[tuple[Request, str, str]] = [
    (("POST", "/product/add", {"json": {"user_id": "alice", "memory_content": "Desk 12.", "cube_id": "work"}}),
     "cube_id", "mem_cube_id"),
    (("POST", "/product/search", {"json": {"user_id": "alice", "query": "desk", "mem_cube": "work"}}),
     "mem_cube", "mem_cube_id"),
    (("POST", "/product/get_all", {"json": {"user_id": "alice", "memory_type": "text_mem",
                                            "mem_cube_id": ["work"]}}), "mem_cube_id", "mem_cube_ids"),
    (("POST", "/api/memories", {"json": {"memory_content": "Desk 12.", "cube_id": "work"}}), "cube_id",
     "mem_cube_id"),
    (("GET", "/api/memories", {"params": {"cube_id": "work"}}), "cube_id", "mem_cube_id"),
    (("POST", "/api/search", {"json": {"query": "desk", "install_cube_id": ["work"]}}), "install_cube_id",
     "install_cube_ids"),
    (("POST", "/api/openmem/v1/search/memory", {"json": {"query": "desk", "user_id": "alice",
                                                         "memory_limit": 3}}), "memory_limit",
     "memory_limit_number"),
    (("POST", "/api/openmem/v1/add/message", {"json": {"user_id": "alice", "conversationid": "c1",
                                                       "messages": [{"role": "user", "content": "Desk 12."}]}}),
     "conversationid", "conversation_id"),
    (("GET", "/v1/memories/search", {"params": {"query": "desk", "userid": "alice"}}), "userid", "user_id"),
    (("POST", "/v1/memories", {"json": {"content": "Desk 12.", "agentid": "a1"}}), "agentid", "agent_id"),
    (("GET", "/v1/memories/user/alice", {"params": {"pages": 2}}), "pages", "page"),
    (("POST", "/v1/facts", {"json": {"content": "Desk 12.", "agent": "a1"}}), "agent", "agent_id"),
    (("GET", "/v1/facts", {"params": {"agentid": "a1"}}), "agentid", "agent_id"),
    (("POST", "/v1/documents", {"json": {"content": "Desk 12.", "docid": "d1"}}), "docid", "doc_id"),
]


@pytest.mark.parametrize(("request_", "wrong", "right"), MISNAMED, ids=[f"{r[0]} {r[1]} {w}" for r, w, _ in MISNAMED])
def test_a_misnamed_field_is_refused_naming_it_and_the_right_name(users: Users, request_: Request, wrong: str,
                                                                  right: str) -> None:
    work_cube(users)
    method, path, options = request_
    text = refused(users.alice.request(method, path, **options), f"'{wrong}'", f"did you mean '{right}'?")
    assert "unknown" in text
    assert count(users) == 0


def test_a_nested_unknown_field_is_refused_by_its_path(users: Users) -> None:
    refused(users.alice.post("/v1/memories", json={"messages": [{"role": "user", "text": "I live in Oslo"}]}),
            "unknown field 'messages.0.text'")
    refused(users.alice.post("/api/memories", json={"messages": [{"role": "user", "content": "Oslo.",
                                                                  "chattime": "2025-01-01"}]}),
            "'messages.0.chattime'", "did you mean 'chat_time'?")
    refused(users.alice.post("/api/openmem/v1/search/memory", json={"query": "x", "user_id": "alice",
                                                                    "filter": {"tag": ["a"]}}), "tag")
    refused(users.alice.post("/api/openmem/v1/add/message", json={"user_id": "alice", "messages": [
        {"role": "user", "content": "I visited Rome with my sister", "chattime": "2020-05-01T10:00:00Z",
         "foo": {"a": 1}}]}), "'messages.0.chattime'", "did you mean 'chat_time'?", "'messages.0.foo'")
    assert count(users) == 0
    kept = users.alice.post("/api/openmem/v1/add/message", json={"user_id": "alice", "async_mode": False, "messages": [
        {"role": "user", "content": "I visited Rome with my sister", "chat_time": "2020-05-01T10:00:00Z",
         "message_id": "m-7", "name": "Alice"}]})
    assert kept.status_code == 200, kept.text
    memory = users.app.service.list_memories("alice").memories[0]
    assert memory.event_time is not None and memory.event_time.year == 2020
    assert memory.sources[0].message_id == "m-7" and memory.sources[0].name == "Alice"


def test_every_unknown_field_of_a_request_is_named(users: Users) -> None:
    text = refused(users.alice.post("/v1/memories", json={"content": "Desk 12.", "userid": "alice", "meta": {}}))
    assert "'userid'" in text and "'meta'" in text


def test_a_query_parameter_an_operation_does_not_define_is_refused(users: Users) -> None:
    refused(users.alice.get("/api/users/me", params={"verbose": "1"}), "unknown query parameter 'verbose'",
            "takes no query parameters")
    refused(users.alice.post("/v1/memories", params={"user_id": "bob"}, json={"content": "Desk 12."}),
            "unknown query parameter 'user_id'", "send 'user_id' in the JSON body")
    refused(users.alice.get("/v1/memories/search", params=[("query", "a"), ("query", "b")]),
            "'query' is given more than once")
    assert count(users) == 0 and count(users, "bob") == 0


def test_the_fields_the_dialects_define_are_honoured(users: Users) -> None:
    work_cube(users)
    added = users.alice.post("/api/memories", json={"memory_content": "The office is on floor four.",
                                                    "mem_cube_id": "work"})
    assert added.status_code == 200, added.text
    assert added.json()["data"]["cube_id"] == "work"
    listed = users.alice.get("/api/memories", params={"mem_cube_id": "work"}).json()["data"]
    assert [c["cube_id"] for c in listed["text_mem"]] == ["work"]
    cloud = users.alice.post("/api/openmem/v1/add/message", json={
        "user_id": "alice", "conversation_id": "c1", "agent_id": "planner", "source": "web", "tags": ["t"],
        "info": {"k": "v"}, "async_mode": False, "messages": [{"role": "user", "content": "I like green tea."}]})
    assert cloud.status_code == 200, cloud.text
    found = users.alice.post("/api/openmem/v1/search/memory", json={
        "query": "tea", "user_id": "alice", "memory_limit_number": 3, "include_preference": True,
        "preference_limit_number": 2, "relativity": 0.0, "conversation_id": "c1"})
    assert found.status_code == 200, found.text


# --- mem0 scopes ---------------------------------------------------------------------------------------

def _add(http: httpx2.Client, content: str, **scopes: str) -> dict[str, Any]:
    response = http.post("/v1/memories", json={"content": content, **scopes})
    assert response.status_code == 201, response.text
    [memory] = response.json()["data"]
    return dict(memory)


def _contents(response: httpx2.Response) -> set[str]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return {m["content"] for m in (data["memories"] if isinstance(data, dict) else data)}


def test_a_body_sent_to_an_operation_that_takes_none_is_refused_and_changes_nothing(users: Users) -> None:
    _add(users.alice, "The planner books trains to Bergen.", agent_id="bot9", run_id="r1")
    _add(users.alice, "The planner books hotels in Bergen.", agent_id="bot9", run_id="r2")
    widened = users.alice.request("DELETE", "/v1/memories", params={"agent_id": "bot9"}, json={"run_id": "r1"})
    refused(widened, "takes no request body", "send 'run_id' as a query parameter")
    refused(users.alice.request("DELETE", "/v1/facts", params={"user_id": "alice"}, json={"agent_id": "bot9"}),
            "takes no request body")
    refused(users.alice.request("GET", "/v1/memories/search", params={"query": "x"}, json={"user_idd": "x"}),
            "takes no request body")
    refused(users.alice.request("GET", "/api/users/me", content=b'{"verbose": true}'), "takes no request body")
    assert count(users) == 2


def test_an_error_about_unknown_fields_stays_small_however_many_are_sent(users: Users) -> None:
    body = {"user_id": "alice", "query": "desk", **{f"field_{i}": i for i in range(20_000)}}
    text = refused(users.alice.post("/product/search", json=body), "'field_0'", "and 19995 more unknown fields")
    assert len(text) < 4_000


def test_mem0_agent_id_and_run_id_are_scopes_of_add_search_list_and_delete(users: Users) -> None:
    http = users.alice
    planner = _add(http, "The planner books trains to Bergen.", agent_id="planner", run_id="run-1")
    _add(http, "The planner books hotels in Bergen.", agent_id="planner", run_id="run-2")
    _add(http, "The cook books tables in Bergen.", agent_id="cook")
    _add(http, "Alice books flights to Bergen.")
    assert (planner["agent_id"], planner["run_id"]) == ("planner", "run-1")
    assert "agent_id" not in planner["metadata"] and "run_id" not in planner["metadata"]

    search = {"query": "books Bergen", "limit": 10}
    assert len(_contents(http.get("/v1/memories/search", params=search))) == 4
    assert _contents(http.get("/v1/memories/search", params={**search, "agent_id": "planner"})) == {
        "The planner books trains to Bergen.", "The planner books hotels in Bergen."}
    assert _contents(http.get("/v1/memories/search", params={**search, "agent_id": "planner",
                                                             "run_id": "run-2"})) == {
        "The planner books hotels in Bergen."}
    assert _contents(http.get("/v1/memories/search", params={**search, "run_id": "nope"})) == set()
    assert _contents(http.get("/v1/memories/user/alice", params={"agent_id": "cook"})) == {
        "The cook books tables in Bergen."}
    assert _contents(http.get("/v1/memories", params={"agent_id": "planner", "run_id": "run-1"})) == {
        "The planner books trains to Bergen."}
    assert len(_contents(http.get("/v1/memories"))) == 4
    refused(http.get("/v1/memories", params={"agent": "planner"}), "did you mean 'agent_id'?")
    one = http.get(f"/v1/memories/{planner['id']}").json()["data"]
    assert (one["agent_id"], one["run_id"]) == ("planner", "run-1")

    updated = http.put(f"/v1/memories/{planner['id']}", json={"metadata": {"note": "changed"}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["agent_id"] == "planner" and updated.json()["data"]["metadata"]["note"] == "changed"

    facts = users.alice.get("/v1/facts", params={"agent_id": "cook"})  # the memio dialect sees the same scope
    assert [f["content"] for f in facts.json()] == ["The cook books tables in Bergen."]

    deleted = http.delete("/v1/memories", params={"agent_id": "planner"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["deleted"] == 2
    assert _contents(http.get("/v1/memories/user/alice")) == {"The cook books tables in Bergen.",
                                                              "Alice books flights to Bergen."}
    assert http.delete("/v1/memories", params={"run_id": "run-1"}).json()["data"]["deleted"] == 0
    refused(http.delete("/v1/memories"), "at least one of user_id, agent_id or run_id")
    assert count(users) == 2


def test_mem0_delete_all_keeps_other_users_memories(users: Users) -> None:
    _add(users.alice, "Alice keeps a diary.", agent_id="scribe")
    _add(users.bob, "Bob keeps a diary.", agent_id="scribe")
    assert users.alice.delete("/v1/memories", params={"agent_id": "scribe"}).json()["data"]["deleted"] == 1
    assert count(users) == 0 and count(users, "bob") == 1


def test_mem0_scopes_are_ids_and_not_metadata_keys(users: Users) -> None:
    refused(users.alice.post("/v1/memories", json={"content": "A note.", "metadata": {"agent_id": "x"}}),
            "metadata.agent_id is reserved")
    refused(users.alice.post("/v1/memories", json={"content": "A note.", "run_id": ".."}), "run_id", "only of dots")
    refused(users.alice.get("/v1/memories/search", params={"query": "a", "agent_id": "a b"}), "agent_id")
    assert count(users) == 0


# --- blank text and dotted ids -------------------------------------------------------------------------

def test_blank_tags_and_keys_and_dotted_scopes_and_entities_are_refused_and_store_nothing(users: Users) -> None:
    http = users.alice
    refused(http.post("/api/openmem/v1/add/message", json={"user_id": "alice", "tags": ["\u200b"], "messages": [
        {"role": "user", "content": "I like tea."}]}), "tags.0")
    for scope in ({"agent_id": "..."}, {"app_id": ".."}):
        refused(http.post("/api/openmem/v1/add/message", json={"user_id": "alice", **scope, "messages": [
            {"role": "user", "content": "I like tea."}]}), next(iter(scope)), "only of dots")
    refused(http.post("/api/openmem/v1/add/message", json={"user_id": "alice", "messages": [
        {"role": "user", "content": "I like tea.", "chat_time": True}]}), "chat_time")
    refused(http.post("/v1/facts", json={"content": "I like tea.", "agent_id": ".."}), "agent_id", "only of dots")
    refused(http.post("/v1/facts", json={"content": "I like tea.", "metadata": {"agent_id": "."}}), "agent_id")
    refused(http.post("/v1/graph/triples", json={"triples": [{"subject": "..", "predicate": "knows",
                                                              "object": "Bob"}]}), "subject", "only dots")
    assert count(users) == 0
    memory = users.app.service.add_memory("alice", memory_content="Prefers aisle seats.").memories[0]
    for title in ("   ", "\u200b\u200b"):
        refused(http.post("/api/openmem/v1/update/memory", json={"memory_id": memory.id, "title": title}), "key")
    assert users.app.service.get_memory("alice", memory.id).key == memory.key


def test_an_eight_digit_time_is_a_basic_iso_date_not_epoch_seconds(users: Users) -> None:
    added = users.alice.post("/api/openmem/v1/add/message", json={"user_id": "alice", "async_mode": False, "messages": [
        {"role": "user", "content": "We met in Lisbon.", "chat_time": "20231114"}]})
    assert added.status_code == 200, added.text
    [memory] = users.app.service.list_memories("alice").memories
    assert memory.event_time is not None and memory.event_time.date().isoformat() == "2023-11-14"
    hits = users.app.service.search("alice", "Lisbon", filters={"time_to": "20231114"}).memories
    assert [h.id for h in hits] == [memory.id]  # a bare basic date as upper bound is that whole day


@pytest.mark.parametrize("when", ["20240230", "20231314", "99999999", "00000000"])
def test_an_eight_digit_time_that_is_no_date_is_refused_naming_the_field_not_read_as_epoch_seconds(
        users: Users, when: str) -> None:
    """'20240230' was stored as 1970-08-23 (epoch seconds), though eight digits are a basic ISO date."""
    for path, body, field in (
            ("/api/openmem/v1/add/message", {"user_id": "alice", "async_mode": False, "messages": [
                {"role": "user", "content": "We met in Lisbon.", "chat_time": when}]}, "chat_time"),
            ("/v1/memories", {"content": "We met in Lisbon.", "timestamp": when}, "timestamp"),
            ("/api/openmem/v1/search/memory", {"user_id": "alice", "query": "Lisbon", "filter": {"time_to": when}},
             "time_to")):
        answer = users.alice.post(path, json=body)
        assert answer.status_code == 400 and field in answer.text and when in answer.text, (path, answer.text)
    assert users.app.service.list_memories("alice").total == 0


INVISIBLE = ["\u200b", "\ufeff \u200d", "\u2060\u00ad\n", "\u3000", "\u2065", "\u0301", "\u3164\u2065", "\ufffc"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_text_that_shows_nothing_is_refused_by_every_dialect(users: Users, text: str) -> None:
    http = users.alice
    refused(http.post("/v1/memories", json={"content": text}), "empty")
    refused(http.post("/v1/memories", json={"messages": [{"role": "user", "content": text}]}), "empty")
    refused(http.post("/product/add", json={"user_id": "alice", "memory_content": text}), "empty")
    refused(http.post("/api/memories", json={"memory_content": text}), "empty")
    refused(http.post("/api/openmem/v1/add/message", json={"user_id": "alice", "async_mode": False,
                                                           "messages": [{"role": "user", "content": text}]}), "empty")
    refused(http.post("/v1/facts", json={"content": text}), "empty")
    refused(http.post("/v1/documents", json={"content": text}), "empty")
    refused(http.post("/product/search", json={"user_id": "alice", "query": text}), "empty")
    refused(http.get("/v1/memories/search", params={"query": text}), "empty")
    assert count(users) == 0


def test_two_names_of_one_message_field_are_refused_by_every_dialect_that_reads_them(users: Users) -> None:
    message = {"role": "user", "content": "We met Ana.", "message_id": "m-a", "dia_id": "D1:3"}
    timed = {"role": "user", "content": "We met Ana.", "chat_time": "2024-01-01", "timestamp": "2020-01-01"}
    for path, body in (("/v1/memories", {}), ("/product/add", {"user_id": "alice"}), ("/api/memories", {})):
        refused(users.alice.post(path, json={**body, "messages": [message]}), "message_id and dia_id")
        refused(users.alice.post(path, json={**body, "messages": [timed]}), "chat_time and timestamp")
    assert count(users) == 0


@pytest.mark.parametrize("dots", [".", "..", "..."])
def test_ids_made_only_of_dots_are_refused_by_every_dialect(users: Users, dots: str) -> None:
    refused(users.alice.post("/api/mem_cubes", json={"name": "Dots", "mem_cube_id": dots}), "only of dots")
    refused(users.root.post("/api/users", json={"user_id": dots, "user_name": "Dot", "role": "user"}),
            "only of dots")
    refused(users.root.post("/product/users/register", json={"user_id": dots}), "only of dots")
    refused(users.alice.post("/v1/documents", json={"content": "A dotted doc.", "doc_id": dots}), "only of dots")
    refused(users.alice.post("/api/openmem/v1/add/message", json={
        "user_id": "alice", "conversation_id": dots, "messages": [{"role": "user", "content": "Hi there."}]}),
        "only of dots")
    assert users.app.service.catalog.get_cube(dots) is None and users.app.service.catalog.get_user(dots) is None
    assert count(users) == 0


def test_memio_document_update_with_blank_content_keeps_the_document(memio: Memio) -> None:
    created = memio.alice.post("/v1/documents", json={"content": "The lease ends in May.", "doc_id": "lease"})
    assert created.status_code == 201, created.text
    refused(memio.alice.put("/v1/documents/lease", json={"content": "\u200b\u200b"}), "empty")
    assert memio.alice.get("/v1/documents/lease").json()["content"] == "The lease ends in May."


# --- the MemOS cloud fields the official client sends ------------------------------------------------

CLOUD = "/api/openmem/v1"


def _cloud_add(http: httpx2.Client, content: str, **fields: Any) -> None:
    response = http.post(f"{CLOUD}/add/message", json={
        "user_id": "alice", "async_mode": False, "messages": [{"role": "user", "content": content}], **fields})
    assert response.status_code == 200, response.text


def test_cloud_agent_id_narrows_search_listing_and_delete(users: Users) -> None:
    http = users.alice
    _cloud_add(http, "The planner books trains to Bergen.", agent_id="planner", app_id="trips")
    _cloud_add(http, "The cook books tables in Bergen.", agent_id="cook")
    search = {"query": "books Bergen", "user_id": "alice", "memory_limit_number": 10}
    found = http.post(f"{CLOUD}/search/memory", json={**search, "agent_id": "planner"}).json()["data"]
    assert [m["memory_value"] for m in found["memory_detail_list"]] == ["The planner books trains to Bergen."]
    listed = http.post(f"{CLOUD}/get/memory", json={"user_id": "alice", "agent_id": "cook",
                                                    "include_tool_memory": True}).json()["data"]
    assert [m["memory_value"] for m in listed["memory_detail_list"]] == ["The cook books tables in Bergen."]
    stored = users.app.service.list_memories("alice", filters={"metadata": {"app_id": "trips"}}).memories
    assert [m.memory for m in stored] == ["The planner books trains to Bergen."]
    assert http.post(f"{CLOUD}/delete/memory", json={"agent_id": "cook"}).status_code == 200
    assert [m.memory for m in users.app.service.list_memories("alice").memories] == [
        "The planner books trains to Bergen."]


@pytest.mark.parametrize(("path", "field", "value"), [
    ("/add/message", "allow_public", True),
    ("/add/message", "allow_knowledgebase_ids", ["kb1"]),
    ("/search/memory", "include_skill", True),
    ("/search/memory", "knowledgebase_ids", ["kb1"]),
    ("/search/memory", "context_format", "markdown"),
    ("/get/memory", "include_memory_view", ["v"]),
    ("/delete/memory", "memory_type", "text_mem"),
])
def test_cloud_fields_of_the_hosted_service_are_refused_unless_neutral(users: Users, path: str, field: str,
                                                                        value: Any) -> None:
    _cloud_add(users.alice, "The lease ends in May.")
    bodies: dict[str, dict[str, Any]] = {
        "/add/message": {"user_id": "alice", "messages": [{"role": "user", "content": "A second note."}]},
        "/search/memory": {"query": "lease", "user_id": "alice"},
        "/get/memory": {"user_id": "alice"},
        "/delete/memory": {"user_id": "alice"},
    }
    refused(users.alice.post(f"{CLOUD}{path}", json={**bodies[path], field: value}), field, "not supported")
    neutral = {"allow_public": False, "include_skill": False, "context_format": "memory"}.get(field)
    if path != "/delete/memory":
        answer = users.alice.post(f"{CLOUD}{path}", json={**bodies[path], field: neutral})
        assert answer.status_code == 200, answer.text
    assert "The lease ends in May." in [m.memory for m in users.app.service.list_memories("alice").memories]


def test_cloud_chat_applies_the_clients_temperature_and_token_limit(rest_serve: RestServe,
                                                                    model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    model.replies += ["Kyoto.", "Kyoto again."]
    chat = {"user_id": "default", "conversation_id": "trip", "query": "Where to?"}
    with client(app) as http:
        answer = http.post(f"{CLOUD}/chat", json={**chat, "temperature": 0.2, "max_tokens": 64, "top_p": 0.95,
                                                  "internet_search": False, "async_mode": True})
        assert answer.status_code == 200, answer.text
        sent = model.chat_requests[-1]
        assert (sent["temperature"], sent["max_tokens"]) == (0.2, 64)
        refused(http.post(f"{CLOUD}/chat", json={**chat, "internet_search": True}), "internet_search",
                "not supported")
        refused(http.post(f"{CLOUD}/chat", json={**chat, "model_name": "gpt-4o"}), "model_name", "not supported")
        refused(http.post(f"{CLOUD}/chat", json={**chat, "temprature": 0.2}), "did you mean 'temperature'?")
    assert len(model.chat_requests) == 1


def test_product_registration_with_blank_interests_stores_no_memory(users: Users) -> None:
    answer = users.root.post("/product/users/register", json={"user_id": "carol", "interests": "\u200b\u2060"})
    assert answer.status_code == 200, answer.text
    assert users.app.service.list_memories("carol").total == 0


@pytest.mark.parametrize("interests", ["x " * 15_000, "nul \x00 here"])
def test_product_registration_with_interests_refused_registers_nobody_and_a_retry_stores_them(
        users: Users, interests: str) -> None:
    """Interests beyond max_memory_size were refused (413) after the user was made, and the retry, finding
    the user, answered 200 without storing them."""
    answer = users.root.post("/product/users/register", headers={"Content-Type": "application/json"},
                             content=json.dumps({"user_id": "zed", "interests": interests}))  # escapes kept
    assert answer.status_code in (400, 413) and "interests" in answer.text, answer.text
    assert "zed" not in {u.user_id for u in users.app.service.list_users("root")}
    again = users.root.post("/product/users/register", json={"user_id": "zed", "interests": "Zed sails."})
    assert again.status_code == 200, again.text
    assert [m.memory for m in users.app.service.list_memories("zed").memories] == ["Zed sails."]


@pytest.mark.parametrize("cube_id", [".hidden", "a..b", "v1.2:x@y", "..a", "@."])
def test_ids_with_dots_and_something_else_are_addressable_in_rest_paths(users: Users, cube_id: str) -> None:
    http = users.alice
    assert http.post("/api/mem_cubes", json={"name": "Dotted", "mem_cube_id": cube_id}).status_code == 200
    added = http.post("/api/memories", json={"memory_content": "A dotted note.", "mem_cube_id": cube_id})
    assert added.status_code == 200, added.text
    listed = http.get("/api/memories", params={"mem_cube_id": cube_id}).json()["data"]["text_mem"]
    assert [m["memory"] for m in listed[0]["memories"]] == ["A dotted note."]
    deleted = http.delete(f"/api/mem_cubes/{cube_id}")
    assert deleted.status_code == 200, deleted.text
    assert users.app.service.catalog.get_cube(cube_id) is None


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/product/search", {"query": "x", "user_id": "alice", "top_k": True}, "top_k"),
    ("/api/openmem/v1/search/memory", {"query": "x", "user_id": "alice", "memory_limit_number": True},
     "memory_limit_number"),
    ("/api/openmem/v1/get/memory", {"user_id": "alice", "page": True}, "page"),
    ("/api/openmem/v1/search/memory", {"query": "x", "user_id": "alice", "preference_limit_number": False},
     "preference_limit_number")])
def test_a_boolean_where_a_number_belongs_is_refused_naming_the_field(users: Users, path: str,
                                                                       body: dict[str, Any], field: str) -> None:
    """JSON's true was read as 1 (top_k: true searched for one hit)."""
    refused(users.alice.post(path, json=body), field, "boolean")


def test_a_method_or_path_a_dialect_lacks_is_answered_in_that_dialects_envelope(users: Users) -> None:
    """The router's 405 and 404 were plain text ("Method Not Allowed") under every dialect's paths."""
    http = users.alice
    mem0 = http.post("/v1/memories/search", json={"query": "x"})  # mem0 searches with GET
    assert mem0.status_code == 405 and "GET" in mem0.headers["allow"]
    assert mem0.json()["success"] is False and mem0.json()["error"]["details"]["type"] == "method_not_allowed"
    memio = http.put("/v1/facts", json={})
    assert memio.status_code == 405 and memio.json()["error"] == "method_not_allowed"
    product = http.get("/product/search")
    assert product.status_code == 405 and product.json()["code"] == 405 and product.json()["data"] is None
    missing = http.get("/v1/documents/a/b")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    for path in ("/product/nope", "/api/openmem/v1/nope", "/api/nope"):  # under a dialect's prefix only
        nowhere = http.get(path)
        assert nowhere.status_code == 404 and nowhere.json()["code"] == 404 and nowhere.json()["data"] is None
    assert http.get("/v1/history/").json()["error"] == "not_found"  # memio's
    elsewhere = http.get("/nowhere")
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "not_found"
