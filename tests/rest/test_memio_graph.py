"""memio's /v1/graph routes over real HTTP: triples, entities, search, deletes, isolation between
users, the graph of added memories, and 501 when graph memory is off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memos_mcp.core.service import ROOT_USER
from tests.http.support import ADMIN_KEY
from tests.rest.conftest import Memio, RestServe, client
from tests.rest.test_memio import error, ok

TRIPLES = [{"subject": "Alice", "predicate": "works_at", "object": "Acme", "metadata": {"confidence": 0.8}},
           {"subject": "Acme", "predicate": "located_in", "object": "Lisbon"}]


def spo(triples: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(t["subject"], t["predicate"], t["object"]) for t in triples}


def test_triples_are_added_listed_searched_and_deleted(memio: Memio) -> None:
    http = memio.alice
    added = ok(http.post("/v1/graph/triples", json={"triples": TRIPLES}), 201)["triples"]
    assert spo(added) == {("Alice", "works_at", "Acme"), ("Acme", "located_in", "Lisbon")}
    assert added[0]["metadata"]["confidence"] == 0.8 and added[0]["metadata"]["cube_id"] == "alice_default_cube"
    assert spo(ok(http.get("/v1/graph/triples"))["triples"]) == spo(added)

    entity = ok(http.get("/v1/graph/entities/acme"))
    assert entity["entity"] == "Acme" and spo(entity["triples"]) == spo(added)

    near = ok(http.post("/v1/graph/search", json={"query": "Where does Alice work?"}))
    assert spo(near["triples"]) == {("Alice", "works_at", "Acme")} and near["scores"] == [0.8]
    far = ok(http.post("/v1/graph/search", json={"query": "Where does Alice work?", "depth": 2}))
    assert spo(far["triples"]) == spo(added) and far["scores"] == [0.8, 0.5]
    assert {n["name"] for n in far["nodes"]} == {"Alice", "Acme", "Lisbon"}

    moved = ok(http.post("/v1/graph/triples", json={"triples": [
        {"subject": "Alice", "predicate": "works at", "object": "Globex"}]}), 201)["triples"]
    assert spo(ok(http.get("/v1/graph/entities/Alice"))["triples"]) == {("Alice", "works at", "Globex")}

    assert ok(http.delete(f"/v1/graph/triples/{moved[0]['id']}")) == {"deleted": 1}
    error(http.delete(f"/v1/graph/triples/{moved[0]['id']}"), 404, "not_found", "graph_delete_triple")
    assert ok(http.delete("/v1/graph/entities/Lisbon")) == {"deleted": 1}
    assert spo(ok(http.get("/v1/graph/triples"))["triples"]) == set()  # Alice-Acme ended when she moved
    error(http.get("/v1/graph/entities/Lisbon"), 404, "not_found", "graph_get_entity", "Lisbon")
    error(http.delete("/v1/graph/entities/Lisbon"), 404, "not_found", "graph_delete_entity")


def test_an_entity_whose_name_holds_a_slash_is_read_and_deleted_by_its_name(memio: Memio) -> None:
    """``AC/DC`` was stored but its route answered a plain-text 404: it could not be read or deleted."""
    http = memio.alice
    ok(http.post("/v1/graph/triples", json={"triples": [
        {"subject": "AC/DC", "predicate": "plays", "object": "rock"},
        {"subject": "Ana", "predicate": "likes", "object": "a/b/c"}]}), 201)
    assert spo(ok(http.get("/v1/graph/entities/AC%2FDC"))["triples"]) == {("AC/DC", "plays", "rock")}
    assert ok(http.get("/v1/graph/entities/a/b/c"))["entity"] == "a/b/c"
    assert ok(http.delete("/v1/graph/entities/AC%2FDC")) == {"deleted": 1}
    error(http.get("/v1/graph/entities/AC%2FDC"), 404, "not_found", "graph_get_entity", "AC/DC")
    error(http.delete("/v1/graph/entities/"), 422, "invalid_request", "graph_delete_entity", "entity")  # no name
    assert spo(ok(http.get("/v1/graph/triples"))["triples"]) == {("Ana", "likes", "a/b/c")}


def test_memories_added_anywhere_feed_the_graph_and_delete_all_clears_it(memio: Memio) -> None:
    http = memio.alice
    fact = ok(http.post("/v1/facts", json={"content": "Caroline met Zofia at the support group."}), 201)
    triple, = ok(http.get("/v1/graph/triples"))["triples"]
    assert (triple["subject"], triple["object"], triple["metadata"]["memory_ids"]) == (
        "Caroline", "Zofia", [fact["id"]])

    assert ok(http.delete("/v1/graph")) == {"deleted": 1}
    assert ok(http.get("/v1/graph/triples"))["triples"] == []
    assert ok(http.get(f"/v1/facts/{fact['id']}"))["id"] == fact["id"]  # memories stay


def test_another_users_graph_is_invisible_and_admins_act_for_users(memio: Memio) -> None:
    ok(memio.alice.post("/v1/graph/triples", json={"triples": TRIPLES}), 201)
    assert ok(memio.bob.get("/v1/graph/triples"))["triples"] == []
    error(memio.bob.get("/v1/graph/entities/Alice"), 404, "not_found", "graph_get_entity")
    assert ok(memio.bob.post("/v1/graph/search", json={"query": "Alice"}))["triples"] == []
    error(memio.bob.get("/v1/graph/triples", params={"user_id": "alice"}), 403, "forbidden", "graph_list_triples")
    assert spo(ok(memio.root.get("/v1/graph/triples", params={"user_id": "alice"}))["triples"]) == spo(TRIPLES)


@pytest.mark.parametrize(("body", "where"), [
    ({"triples": []}, "triples"),
    ({"triples": [{"subject": "", "predicate": "knows", "object": "b"}]}, "subject"),
    ({"triples": [{"subject": "a", "predicate": "knows", "object": "b", "metadata": {"source": "x"}}]}, "source"),
    ({"triples": [{"subject": "a", "predicate": "knows", "object": "b", "metadata": {"confidence": 2}}]},
     "confidence"),
])
def test_bad_triples_are_422_and_store_nothing(memio: Memio, body: dict[str, Any], where: str) -> None:
    error(memio.alice.post("/v1/graph/triples", json=body), 422, "invalid_request", "graph_add_triples", where)
    assert ok(memio.alice.get("/v1/graph/triples"))["triples"] == []


@pytest.fixture
def no_graph(rest_serve: RestServe) -> Iterator[Memio]:
    app = rest_serve(admin_key=True, graph={"enabled": False})
    alice, bob = app.keys.create(ROOT_USER, "alice").key, app.keys.create(ROOT_USER, "bob").key
    with client(app, ADMIN_KEY) as root, client(app, alice) as a, client(app, bob) as b:
        yield Memio(app, root, a, b)


@pytest.mark.parametrize(("method", "path", "body", "operation"), [
    ("POST", "/v1/graph/triples", {"triples": [{"subject": "a", "predicate": "knows", "object": "b"}]},
     "graph_add_triples"),
    ("GET", "/v1/graph/triples", None, "graph_list_triples"),
    ("GET", "/v1/graph/entities/alice", None, "graph_get_entity"),
    ("POST", "/v1/graph/search", {"query": "who knows alice"}, "graph_search"),
    ("DELETE", "/v1/graph/entities/alice", None, "graph_delete_entity"),
    ("DELETE", "/v1/graph/triples/t-1", None, "graph_delete_triple"),
    ("DELETE", "/v1/graph", None, "graph_delete_all"),
])
def test_with_graph_memory_off_the_graph_routes_answer_501(no_graph: Memio, method: str, path: str,
                                                           body: dict[str, Any] | None, operation: str) -> None:
    error(no_graph.alice.request(method, path, json=body), 501, "not_supported", operation, "graph.enabled")
