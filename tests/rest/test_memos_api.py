"""The MemOS REST API (/api) over real HTTP: every route, its success and its failures."""

from __future__ import annotations

from typing import Any

import httpx2

from memos_mcp.core.service import ROOT_USER
from tests.openai_server import OpenAIServer
from tests.rest.conftest import RestServe, Users, client, failed, llm_of, ok


def add(http: httpx2.Client, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(http.post("/api/memories", json=body), "Memories added successfully")
    return data


def texts(data: dict[str, Any]) -> list[str]:
    return [m["memory"] for group in data["text_mem"] for m in group["memories"]]


# --- configuration ----------------------------------------------------------------------------

def test_configure_is_for_admins_and_refuses_what_it_cannot_apply(users: Users) -> None:
    assert ok(users.root.post("/api/configure", json={}), "Configuration unchanged: nothing to apply") is None
    failed(users.root.post("/api/configure", json={"llm": {"backend": "openai"}, "user_manager": {}}), 400,
           "llm, user_manager", "restart")
    failed(users.alice.post("/api/configure", json={"llm": {}}), 403, "configure")
    failed(users.root.post("/api/configure", content=b"{"), 400, "JSON")


# --- users ------------------------------------------------------------------------------------

def test_users_are_created_and_listed_by_admins(users: Users) -> None:
    created = ok(users.root.post("/api/users", json={"user_id": "carol", "user_name": "Carol", "role": "USER"}),
                 "User created successfully")
    assert (created["user_id"], created["role"], created["mem_cube_id"]) == ("carol", "user", "carol_default_cube")
    listed = ok(users.root.get("/api/users"), "Users retrieved successfully")
    assert {"alice", "bob", "carol", ROOT_USER} <= {u["user_id"] for u in listed["users"]}
    failed(users.root.post("/api/users", json={"user_id": "carol", "user_name": "C", "role": "user"}), 409, "carol")
    failed(users.root.post("/api/users", json={"user_id": "dan", "user_name": "Dan"}), 400, "role", "Field required")
    failed(users.root.post("/api/users", json={"user_id": "dan", "user_name": "Dan", "role": "owner"}), 400, "role")
    failed(users.alice.post("/api/users", json={"user_id": "dan", "user_name": "Dan", "role": "user"}), 403)
    failed(users.alice.post("/api/users", json={"user_id": "eve", "user_name": "Eve", "role": "root"}), 403)
    failed(users.alice.get("/api/users"), 403, "list users")


def test_users_me_names_the_caller_and_its_cubes(users: Users) -> None:
    me = ok(users.bob.get("/api/users/me"), "User info retrieved successfully")
    assert me["user_id"] == "bob" and [c["cube_id"] for c in me["accessible_cubes"]] == ["bob_default_cube"]
    assert ok(users.root.get("/api/users/me"))["role"] == "root"


# --- cubes ------------------------------------------------------------------------------------

def test_cubes_are_created_shared_and_deleted(users: Users) -> None:
    cube = ok(users.alice.post("/api/mem_cubes", json={"name": "Trips", "path": "/data/trips",
                                                       "mem_cube_id": "alice-trips"}),
              "MemCube registered successfully")
    assert cube == {"cube_id": "alice-trips", "cube_name": "Trips", "owner_id": "alice", "is_default": False,
                    "permission": "owner"}
    by_path = ok(users.alice.post("/api/mem_cubes", json={"path": "/data/recipes"}))
    assert by_path["cube_name"] == "recipes" and by_path["cube_id"]
    failed(users.alice.post("/api/mem_cubes", json={"mem_cube_id": "x"}), 400, "name")
    failed(users.alice.post("/api/mem_cubes", json={"name": "Again", "mem_cube_id": "alice-trips"}), 409)
    failed(users.alice.post("/api/mem_cubes", json={"name": "Bad", "mem_cube_id": "no spaces"}), 400, "cube_id")
    failed(users.alice.post("/api/mem_cubes", json={"name": "For Bob", "user_id": "bob"}), 403)
    assert ok(users.root.post("/api/mem_cubes", json={"name": "For Bob", "user_id": "bob"}))["owner_id"] == "bob"

    add(users.alice, mem_cube_id="alice-trips", memory_content="The Kyoto trip is booked for April.")
    failed(users.bob.post("/api/search", json={"query": "Kyoto", "install_cube_ids": ["alice-trips"]}), 403)
    shared = ok(users.alice.post("/api/mem_cubes/alice-trips/share", json={"target_user_id": "bob"}),
                "Cube shared successfully")
    assert shared["cube_id"] == "alice-trips"
    found = ok(users.bob.post("/api/search", json={"query": "when is the Kyoto trip",
                                                   "install_cube_ids": ["alice-trips"]}))
    assert "April" in texts(found)[0]
    failed(users.bob.post("/api/memories", json={"mem_cube_id": "alice-trips", "memory_content": "x"}), 403)
    # sharing with an unknown user answers as with a known one: user ids cannot be probed
    assert ok(users.alice.post("/api/mem_cubes/alice-trips/share", json={"target_user_id": "nobody"})) == shared
    failed(users.alice.post("/api/mem_cubes/alice-trips/share", json={}), 400, "target_user_id")
    failed(users.bob.post("/api/mem_cubes/alice-trips/share", json={"target_user_id": "bob"}), 403)
    failed(users.alice.post("/api/mem_cubes/missing/share", json={"target_user_id": "bob"}), 404, "missing")

    failed(users.bob.delete("/api/mem_cubes/alice-trips"), 403)
    failed(users.alice.delete("/api/mem_cubes/missing"), 404, "missing")
    assert ok(users.alice.delete("/api/mem_cubes/alice-trips"), "MemCube unregistered successfully") is None
    failed(users.alice.get("/api/memories", params={"mem_cube_id": "alice-trips"}), 404, "alice-trips")


# --- memories ---------------------------------------------------------------------------------

def test_memories_are_added_listed_read_updated_and_deleted(users: Users) -> None:
    added = add(users.alice, user_id="alice", mem_cube_id="alice_default_cube",
                memory_content="Alice's car is a green Skoda.")
    assert added["cube_id"] == "alice_default_cube"
    [memory] = added["memories"]
    assert set(memory) == {"id", "memory", "ref_id", "metadata"}
    add(users.alice, messages=[{"role": "user", "content": "I am allergic to peanuts."},
                               {"role": "assistant", "content": "Noted."}])
    listed = ok(users.alice.get("/api/memories", params={"mem_cube_id": "alice_default_cube", "user_id": "alice"}),
                "Memories retrieved successfully")
    assert listed["act_mem"] == [] and listed["para_mem"] == []
    assert sorted(texts(listed)) == ["Alice's car is a green Skoda.", "I am allergic to peanuts."]
    assert [m["metadata"]["type"] for m in listed["pref_mem"][0]["memories"]] == ["preference"]
    path = f"/api/memories/alice_default_cube/{memory['id']}"
    assert ok(users.alice.get(path), "Memory retrieved successfully")["memory"] == "Alice's car is a green Skoda."
    updated = ok(users.alice.put(path, json={"memory_content": "Alice's car is a red Volvo."}),
                 "Memory updated successfully")
    assert updated["memory"] == "Alice's car is a red Volvo." and updated["id"] == memory["id"]
    assert "red Volvo" in texts(ok(users.alice.post("/api/search", json={"query": "what car", "limit": 1})))[0]
    assert ok(users.alice.delete(path), "Memory deleted successfully") is None
    failed(users.alice.get(path), 404, memory["id"])
    assert ok(users.alice.delete("/api/memories/alice_default_cube"), "All memories deleted successfully") == {
        "deleted": 2}
    assert texts(ok(users.alice.get("/api/memories"))) == []


def test_memory_routes_refuse_bad_input_unknown_and_foreign_ids(users: Users) -> None:
    bobs = add(users.bob, memory_content="Bob's PIN hint is his first dog's name.")["memories"][0]["id"]
    foreign = f"/api/memories/bob_default_cube/{bobs}"
    failed(users.alice.get(foreign), 404)  # ids never leak across users
    failed(users.alice.put(foreign, json={"memory_content": "mine now"}), 404)
    failed(users.alice.delete(foreign), 404)
    failed(users.alice.delete("/api/memories/bob_default_cube"), 403, "bob_default_cube")
    failed(users.alice.get("/api/memories", params={"mem_cube_id": "bob_default_cube"}), 403)
    failed(users.alice.get("/api/memories", params={"user_id": "bob"}), 403)
    failed(users.alice.get(f"/api/memories/alice_default_cube/{bobs}"), 404)  # the wrong cube for the id
    failed(users.alice.get("/api/memories/alice_default_cube/not-an-id"), 404, "not-an-id")
    failed(users.alice.delete("/api/memories/unknown"), 404, "unknown")
    failed(users.alice.put("/api/memories/alice_default_cube/x", json={}), 400, "memory_content")
    failed(users.alice.put("/api/memories/alice_default_cube/x", content=b"nope"), 400, "JSON")
    failed(users.alice.post("/api/memories", json={"messages": [{"role": "user"}]}), 400, "messages.0.content")
    failed(users.alice.post("/api/memories", json={"memory_content": "a", "doc_path": "b.txt"}), 400, "exactly one")
    failed(users.alice.post("/api/memories", json={"doc_path": "/etc/passwd"}), 403)
    failed(users.alice.post("/api/memories", json={"memory_content": "x", "mem_cube_id": "nope"}), 404, "nope")
    assert ok(users.root.get(foreign))["id"] == bobs  # an admin reads every cube


# --- search and chat --------------------------------------------------------------------------

def test_search_finds_memories_added_by_the_product_dialect(users: Users) -> None:
    ok(users.alice.post("/product/add", json={"user_id": "alice", "memory_content": "Alice's dentist is Dr. Okafor."}))
    found = ok(users.alice.post("/api/search", json={"user_id": "alice", "query": "who is my dentist",
                                                     "install_cube_ids": ["alice_default_cube"], "limit": 5}),
               "Search completed successfully")
    assert texts(found) == ["Alice's dentist is Dr. Okafor."]
    assert found["text_mem"][0]["memories"][0]["metadata"]["relativity"] > 0
    assert users.app.service.search("alice", "dentist").memories[0].memory == "Alice's dentist is Dr. Okafor."
    failed(users.alice.post("/api/search", json={"user_id": "alice"}), 400, "query")
    failed(users.alice.post("/api/search", json={"query": "x", "limit": 0}), 400, "top_k")
    failed(users.alice.post("/api/search", json={"query": "x", "install_cube_ids": ["bob_default_cube"]}), 403)
    failed(users.alice.post("/api/search", json={"query": "x", "install_cube_ids": ["none"]}), 404, "none")
    failed(users.alice.post("/api/search", json={"query": "x", "user_id": "bob"}), 403)


def test_chat_without_a_model_is_503_and_with_one_answers(users: Users, rest_serve: RestServe,
                                                          model: OpenAIServer) -> None:
    failed(users.alice.post("/api/chat", json={"message": "hello"}), 503, "language model")
    failed(users.alice.post("/api/chat", json={"user_id": "alice"}), 400, "message")
    app = rest_serve(llm=llm_of(model))
    with client(app) as http:
        add(http, memory_content="The user's cat is called Miso.")
        model.replies.append("Your cat is Miso.")
        assert ok(http.post("/api/chat", json={"message": "what is my cat called"}),
                  "Chat response generated") == "Your cat is Miso."
        failed(http.post("/api/chat", json={"message": "x", "install_cube_ids": ["nope"]}), 404, "nope")
    assert "Miso" in model.chat_requests[-1]["messages"][0]["content"]


def test_no_route_claims_the_cloud_prefix(users: Users) -> None:
    from memos_mcp.rest.memos_api import DIALECT

    assert all(not (DIALECT.prefix + o.path).startswith("/api/openmem") for o in DIALECT.operations)
