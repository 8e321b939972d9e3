"""The MemOS product API (/product) over real HTTP: every route, its success and its failures."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2

from memos_mcp.core.service import ROOT_USER
from tests.openai_server import OpenAIServer, Reply
from tests.rest.conftest import RestServe, Users, client, failed, llm_of, ok

METADATA_KEYS = {"user_id", "session_id", "status", "type", "key", "confidence", "source", "tags", "memory_type",
                 "sources", "created_at", "updated_at", "background", "relativity", "usage", "id", "memory", "ref_id"}


def register(http: httpx2.Client, **body: Any) -> dict[str, str]:
    data: dict[str, str] = ok(http.post("/product/users/register", json=body), "User registered successfully")
    return data


def add(http: httpx2.Client, user_id: str, **body: Any) -> None:
    assert ok(http.post("/product/add", json={"user_id": user_id, **body}), "Memory created successfully") is None


def search(http: httpx2.Client, user_id: str, query: str, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(http.post("/product/search", json={"query": query, "user_id": user_id, **body}),
                              "Search completed successfully")
    return data


def texts(data: dict[str, Any]) -> list[str]:
    return [m["memory"] for group in data["text_mem"] for m in group["memories"]]


# --- the seed's walk-through ------------------------------------------------------------------

def test_the_seed_example_registers_adds_and_searches(users: Users) -> None:
    ids = register(users.alice)
    assert ids == {"user_id": "alice", "mem_cube_id": "alice_default_cube"}
    add(users.alice, "alice", mem_cube_id=ids["mem_cube_id"],
        messages=[{"role": "user", "content": "I like strawberry"}],
        memory_content="", doc_path="", source="", user_profile=False)
    data = search(users.alice, "alice", "What do I like", mem_cube_id=ids["mem_cube_id"])
    assert set(data) == {"text_mem", "pref_mem", "act_mem", "para_mem"}
    assert data["act_mem"] == [] and data["para_mem"] == []
    [group] = data["text_mem"]
    assert group["cube_id"] == ids["mem_cube_id"]
    hit = group["memories"][0]
    assert set(hit) == {"id", "memory", "ref_id", "metadata"}
    assert "strawberr" in hit["memory"].lower()
    assert hit["ref_id"] == f"[{hit['id'][:8]}]"
    meta = hit["metadata"]
    assert set(meta) >= METADATA_KEYS
    assert (meta["id"], meta["memory"], meta["ref_id"]) == (hit["id"], hit["memory"], hit["ref_id"])
    assert meta["user_id"] == "alice" and meta["session_id"] == "default" and meta["status"] == "activated"
    assert meta["memory_type"] in ("WorkingMemory", "LongTermMemory", "UserMemory")
    assert 0 < meta["relativity"] <= 1 and meta["created_at"].endswith("+00:00")
    assert isinstance(meta["tags"], list) and isinstance(meta["usage"], list)


def test_the_same_calls_work_without_authentication_on_loopback(rest_serve: RestServe) -> None:
    app = rest_serve()
    with client(app) as http:
        ids = register(http)
        add(http, ids["user_id"], memory_content="The office plant is a fern named Gerald.", session_id="s1",
            source="notes")
        hit = search(http, ids["user_id"], "what is the plant called", session_id="s1")["text_mem"][0]["memories"][0]
    assert "Gerald" in hit["memory"]
    assert hit["metadata"]["source"] == "notes" and hit["metadata"]["session_id"] == "s1"


# --- users ------------------------------------------------------------------------------------

def test_register_is_idempotent_and_only_admins_register_others(users: Users) -> None:
    assert register(users.bob, user_id="bob") == register(users.bob) == {"user_id": "bob",
                                                                         "mem_cube_id": "bob_default_cube"}
    carol = register(users.root, user_id="carol", user_name="Carol", interests="Carol collects vintage maps.")
    assert carol == {"user_id": "carol", "mem_cube_id": "carol_default_cube"}
    assert register(users.root, user_id="carol") == carol
    assert "vintage maps" in texts(search(users.root, "carol", "what does Carol collect"))[0]
    fresh = register(users.root)
    assert fresh["user_id"] not in ("carol", ROOT_USER) and fresh["mem_cube_id"].startswith(fresh["user_id"])
    failed(users.alice.post("/product/users/register", json={"user_id": "dave"}), 403, "alice")
    failed(users.alice.post("/product/users/register", json={"user_id": "not valid!"}), 403)
    failed(users.root.post("/product/users/register", json={"user_id": "not valid!"}), 400, "user_id")
    failed(users.root.post("/product/users/register", json={"user_name": 5}), 400, "user_name")
    failed(users.root.post("/product/users/register", content=b"{not json"), 400, "JSON")


def test_users_are_listed_for_admins_and_each_user_sees_itself(users: Users) -> None:
    listed = ok(users.root.get("/product/users"), "Users retrieved successfully")
    assert {"alice", "bob", ROOT_USER} <= {u["user_id"] for u in listed}
    assert set(listed[0]) == {"user_id", "user_name", "role", "created_at", "is_active"}
    failed(users.alice.get("/product/users"), 403, "list users")
    me = ok(users.alice.get("/product/users/alice"))
    assert me["user_id"] == "alice" and me["role"] == "user"
    assert [c["cube_id"] for c in me["accessible_cubes"]] == ["alice_default_cube"]
    assert me["accessible_cubes"][0]["permission"] == "owner" and me["accessible_cubes"][0]["is_default"]
    assert ok(users.root.get("/product/users/bob"))["user_id"] == "bob"
    failed(users.alice.get("/product/users/bob"), 403, "bob")
    failed(users.root.get("/product/users/nobody"), 404, "nobody")


def test_a_request_without_a_key_is_refused(users: Users) -> None:
    with client(users.app) as anonymous:
        answer = anonymous.post("/product/search", json={"query": "x", "user_id": "alice"})
    assert answer.status_code == 401


# --- suggestions ------------------------------------------------------------------------------

def test_suggestions_come_from_recent_memories_in_english_or_chinese(users: Users) -> None:
    assert ok(users.alice.get("/product/suggestions/alice")) == {"query": []}
    add(users.alice, "alice", memory_content="Alice is training for the Berlin marathon in September.")
    english = ok(users.alice.get("/product/suggestions/alice"), "Suggestions retrieved successfully")["query"]
    assert len(english) == 1 and english[0].startswith("What else")
    posted = ok(users.alice.post("/product/suggestions", json={"user_id": "alice", "language": "en",
                                                               "mem_cube_id": "alice_default_cube"}))
    assert posted["query"] == english
    chinese = ok(users.alice.post("/product/suggestions", json={"user_id": "alice", "language": "zh",
                                                                "message": "hi"}))["query"]
    assert len(chinese) == 1 and chinese[0].startswith("关于")
    failed(users.alice.post("/product/suggestions", json={"user_id": "alice", "language": "fr"}), 400, "language")
    failed(users.alice.post("/product/suggestions", json={"language": "en"}), 400, "user_id")
    failed(users.alice.get("/product/suggestions/bob"), 403)
    failed(users.alice.post("/product/suggestions", json={"user_id": "alice", "mem_cube_id": "bob_default_cube"}),
           403, "bob_default_cube")
    failed(users.alice.post("/product/suggestions", json={"user_id": "alice", "mem_cube_id": "nope"}), 404, "nope")


# --- get_all and add --------------------------------------------------------------------------

def test_get_all_lists_every_text_memory_by_cube(users: Users) -> None:
    add(users.alice, "alice", memory_content="Alice's locker code is 4471.")
    add(users.alice, "alice", messages=[{"role": "user", "content": "My sister Jana lives in Prague."}],
        session_id="family")
    groups = ok(users.alice.post("/product/get_all", json={"user_id": "alice", "memory_type": "text_mem"}),
                "Memories retrieved successfully")
    assert [g["cube_id"] for g in groups] == ["alice_default_cube"]
    memories = groups[0]["memories"]
    assert len(memories) == 2 and all(set(m) == {"id", "memory", "ref_id", "metadata"} for m in memories)
    assert {m["metadata"]["session_id"] for m in memories} == {None, "family"}
    for kind in ("act_mem", "para_mem"):
        empty = ok(users.alice.post("/product/get_all", json={"user_id": "alice", "memory_type": kind,
                                                              "mem_cube_ids": ["alice_default_cube"]}))
        assert empty == [{"cube_id": "alice_default_cube", "memories": []}]
    assert ok(users.root.post("/product/get_all", json={"user_id": "alice", "memory_type": "text_mem"}))[0][
        "memories"]
    failed(users.alice.post("/product/get_all", json={"user_id": "alice", "memory_type": "graph"}), 400,
           "memory_type")
    failed(users.alice.post("/product/get_all", json={"user_id": "alice"}), 400, "memory_type")
    failed(users.alice.post("/product/get_all", json={"user_id": "alice", "memory_type": "text_mem",
                                                      "mem_cube_ids": ["bob_default_cube"]}), 403)
    failed(users.alice.post("/product/get_all", json={"user_id": "alice", "memory_type": "act_mem",
                                                      "mem_cube_ids": ["missing"]}), 404, "missing")
    failed(users.alice.post("/product/get_all", json={"user_id": "bob", "memory_type": "text_mem"}), 403)


def test_add_refuses_bad_input_unknown_and_foreign_cubes(users: Users) -> None:
    body = {"user_id": "alice", "memory_content": "Alice drinks oat milk."}
    failed(users.alice.post("/product/add", content=b'{"user_id": "alice",'), 400, "not valid JSON")
    failed(users.alice.post("/product/add", json={"memory_content": "x"}), 400, "user_id", "Field required")
    failed(users.alice.post("/product/add", json={"user_id": "alice", "messages": "hello"}), 400, "messages")
    failed(users.alice.post("/product/add", json={"user_id": "alice", "memory_content": "", "doc_path": ""}), 400,
           "exactly one")
    failed(users.alice.post("/product/add", json={**body, "mem_cube_id": "nowhere"}), 404, "nowhere")
    failed(users.alice.post("/product/add", json={**body, "mem_cube_id": "bob_default_cube"}), 403,
           "bob_default_cube")
    failed(users.alice.post("/product/add", json={**body, "user_id": "bob"}), 403, "bob")
    failed(users.alice.post("/product/add", json={**body, "session_id": "bad id!"}), 400, "conversation_id")
    add(users.root, "alice", memory_content="Alice drinks oat milk.")  # an admin adds for another user
    assert texts(search(users.alice, "alice", "what milk")) == ["Alice drinks oat milk."]


def test_search_refuses_bad_input_unknown_and_foreign_cubes(users: Users) -> None:
    failed(users.alice.post("/product/search", json={"user_id": "alice"}), 400, "query")
    failed(users.alice.post("/product/search", json={"query": "x", "user_id": "alice", "top_k": 0}), 400, "top_k")
    failed(users.alice.post("/product/search", json={"query": "x", "user_id": "alice", "top_k": "many"}), 400,
           "top_k")
    failed(users.alice.post("/product/search", json={"query": "x", "user_id": "alice", "mem_cube_id": "gone"}),
           404, "gone")
    failed(users.alice.post("/product/search", json={"query": "x", "user_id": "alice",
                                                     "readable_cube_ids": ["bob_default_cube"]}), 403)
    failed(users.alice.post("/product/search", content=b"[1, 2"), 400, "JSON")
    data = search(users.alice, "alice", "anything", mem_cube_id="", include_preference=False)
    assert data["text_mem"] == [{"cube_id": "alice_default_cube", "memories": []}] and data["pref_mem"] == []


def test_a_shared_cube_is_searched_with_readable_cube_ids(users: Users) -> None:
    add(users.bob, "bob", memory_content="The team offsite is in Lisbon in May.")
    users.app.service.share_cube("bob", "bob_default_cube", "alice")
    data = search(users.alice, "alice", "where is the offsite", readable_cube_ids=["bob_default_cube"],
                  mem_cube_id="alice_default_cube", top_k=3)
    assert [g["cube_id"] for g in data["text_mem"]] == ["bob_default_cube", "alice_default_cube"]
    assert "Lisbon" in data["text_mem"][0]["memories"][0]["memory"]


# --- across dialects --------------------------------------------------------------------------

def test_a_memory_added_here_is_found_by_the_api_dialect_and_the_core(users: Users) -> None:
    add(users.alice, "alice", memory_content="Alice's passport expires in March 2031.")
    found = ok(users.alice.post("/api/search", json={"query": "when does the passport expire"}))
    assert "March 2031" in texts(found)[0]
    core = users.app.service.search("alice", "passport expiry")
    assert "March 2031" in core.memories[0].memory
    assert found["text_mem"][0]["memories"][0]["id"] == core.memories[0].id


# --- chat -------------------------------------------------------------------------------------

def frames(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def test_chat_without_a_language_model_is_503_in_the_envelope(users: Users) -> None:
    answer = users.alice.post("/product/chat", json={"user_id": "alice", "query": "hello"})
    assert answer.headers["content-type"].startswith("application/json")
    failed(answer, 503, "language model")
    failed(users.alice.post("/product/chat", json={"user_id": "alice"}), 400, "query")


def test_chat_streams_status_reference_text_time_and_end(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    with client(app) as http:
        ids = register(http)
        add(http, ids["user_id"], memory_content="The user's favourite fruit is the strawberry.")
        hit = search(http, ids["user_id"], "favourite fruit")["text_mem"][0]["memories"][0]
        answer = f"You love strawberries {hit['ref_id']}, fresh from the field."
        model.replies.append(answer)
        stream = frames(http.post("/product/chat", json={"user_id": ids["user_id"], "query": "What fruit do I like?",
                                                         "mem_cube_id": ids["mem_cube_id"], "history": []}))
        kinds = [f["type"] for f in stream]
        assert kinds == ["status", "reference", *["text"] * len(answer.split()), "time", "end"]
        assert stream[0]["data"] == "0"
        assert stream[1]["data"][0]["id"] == hit["id"] and stream[1]["data"][0]["ref_id"] == hit["ref_id"]
        assert "".join(f["data"] for f in stream if f["type"] == "text") == answer
        assert re.fullmatch(r"\[[0-9a-f-]{8}\]", hit["ref_id"])
        assert stream[-2]["data"]["total_time"] >= 0 and stream[-1]["data"] is None
        system = model.chat_requests[-1]["messages"][0]["content"]
        assert f"{hit['ref_id']} The user's favourite fruit is the strawberry." in system
        failed(http.post("/product/chat", json={"user_id": ids["user_id"], "query": "x", "mem_cube_id": "no"}), 404)
    stored = app.service.get_messages(ids["user_id"], "default")
    assert [(m.role, m.content) for m in stored][-2:] == [("user", "What fruit do I like?"), ("assistant", answer)]


def test_chat_history_replaces_the_stored_window(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    model.replies += ["First.", "Second."]
    with client(app) as http:
        frames(http.post("/product/chat", json={"user_id": "default", "query": "One?"}))
        frames(http.post("/product/chat", json={"user_id": "default", "query": "Two?", "history": [
            {"role": "user", "content": "Zero?"}, {"role": "assistant", "content": "Nothing."}]}))
        failed(http.post("/product/chat", json={"user_id": "default", "query": "Three?",
                                                "history": [{"role": "judge", "content": "x"}]}), 400, "history")
    assert [m["content"] for m in model.chat_requests[0]["messages"][1:]] == ["One?"]
    assert [m["content"] for m in model.chat_requests[1]["messages"][1:]] == ["Zero?", "Nothing.", "Two?"]


def test_a_model_dying_mid_answer_ends_the_stream_with_an_error_frame(rest_serve: RestServe,
                                                                      model: OpenAIServer) -> None:
    app = rest_serve(llm={**llm_of(model), "max_retries": 0})
    model.replies.append(Reply(content="This answer will never be finished", die_after=3))
    with client(app) as http:
        stream = frames(http.post("/product/chat", json={"user_id": "default", "query": "Tell me"}))
    assert [f["type"] for f in stream] == ["status", "reference", "text", "text", "error"]
    assert stream[-1]["data"]["code"] == 503 and "language model" in stream[-1]["data"]["message"]
    assert app.service.get_messages("default", "default") == []
    assert app.service.list_memories("default").total == 0


def test_a_rate_limited_model_is_retried_and_a_slow_one_is_503(rest_serve: RestServe, model: OpenAIServer) -> None:
    app = rest_serve(llm={**llm_of(model), "max_retries": 1, "timeout": 0.3})
    model.replies += [Reply(status=429, headers={"retry-after": "0"}), "Patience pays.",
                      Reply(content="too late", delay=1.0), Reply(content="too late", delay=1.0)]
    with client(app) as http:
        stream = frames(http.post("/product/chat", json={"user_id": "default", "query": "Hello?"}))
        assert "".join(f["data"] for f in stream if f["type"] == "text") == "Patience pays."
        assert len(model.chat_requests) == 2
        slow = http.post("/product/chat", json={"user_id": "default", "query": "Still there?"})
        assert slow.headers["content-type"].startswith("application/json")
        failed(slow, 503, "timed out")
    assert len(model.chat_requests) == 4  # the timeout was retried once too


def test_suggestions_are_written_by_the_model_in_the_language_asked(rest_serve: RestServe,
                                                                     model: OpenAIServer) -> None:
    app = rest_serve(llm=llm_of(model))
    with client(app) as http:
        add(http, "default", memory_content="The user is learning to play the cello.")
        model.replies.append(json.dumps({"questions": ["大提琴怎么调音？", "每天练多久？", "先学哪首曲子？"]}))
        data = ok(http.post("/product/suggestions", json={"user_id": "default", "language": "zh"}))
        assert data == {"query": ["大提琴怎么调音？", "每天练多久？", "先学哪首曲子？"]}
        assert "Chinese" in model.chat_requests[-1]["messages"][0]["content"]
        model.replies.append("I cannot do JSON, sorry.")
        fallback = ok(http.get("/product/suggestions/default"))["query"]
        assert len(fallback) == 1 and "cello" in fallback[0]
