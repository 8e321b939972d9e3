"""Every REST dialect with a relevance threshold honours it, on the calibrated relativity scale: a MemOS
client's default 0.45 keeps the clear match and drops unrelated memories (real HTTP, both backends)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rest.conftest import Users, failed, ok

LIFE = ["I moved to Lisbon in March 2024.", "My dog is called Rex.", "I work as a nurse at St Mary's hospital.",
        "The quarterly report is due on March 3.", "I prefer writing Python over Java."]
CLEAR = [("where does the user live?", LIFE[0]), ("What city do I live in?", LIFE[0]),
         ("What pet does the user have?", LIFE[1]), ("what does the user do for a living?", LIFE[2])]
UNRELATED = "what is the capital of France?"


@pytest.fixture
def lived(users: Users) -> Users:
    users.app.service.ensure_user("alice")
    for text in LIFE:
        users.app.service.add_memory("alice", memory_content=text)
    return users


def product(users: Users, query: str, **body: Any) -> list[dict[str, Any]]:
    data = ok(users.alice.post("/product/search", json={"query": query, "user_id": "alice",
                                                         "include_preference": False, **body}))
    return [m for group in data["text_mem"] for m in group["memories"]]


def cloud(users: Users, query: str, **body: Any) -> list[dict[str, Any]]:
    data = ok(users.alice.post("/api/openmem/v1/search/memory", json={"query": query, "user_id": "alice",
                                                                       "include_preference": False, **body}))
    found: list[dict[str, Any]] = data["memory_detail_list"]
    return found


def mem0(users: Users, query: str, **params: Any) -> list[dict[str, Any]]:
    response = users.alice.get("/v1/memories/search", params={"query": query, "user_id": "alice", **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


@pytest.mark.parametrize(("query", "answer"), CLEAR)
def test_memos_product_search_honours_relativity(lived: Users, query: str, answer: str) -> None:
    kept = product(lived, query, relativity=0.45)
    assert [m["memory"] for m in kept] == [answer]
    assert kept[0]["metadata"]["relativity"] >= 0.45
    assert len(product(lived, query)) == len(LIFE)
    assert product(lived, UNRELATED, relativity=0.45) == []


@pytest.mark.parametrize(("query", "answer"), CLEAR)
def test_memos_cloud_search_honours_relativity(lived: Users, query: str, answer: str) -> None:
    kept = cloud(lived, query, relativity=0.45)
    assert [m["memory_value"] for m in kept] == [answer]
    assert kept[0]["relativity"] >= 0.45
    assert len(cloud(lived, query)) == len(LIFE)
    assert cloud(lived, UNRELATED, relativity=0.45) == []


@pytest.mark.parametrize(("query", "answer"), CLEAR)
def test_mem0_search_honours_threshold(lived: Users, query: str, answer: str) -> None:
    kept = mem0(lived, query, threshold=0.45)
    assert [m["content"] for m in kept] == [answer]
    assert kept[0]["score"] >= 0.45
    assert len(mem0(lived, query, limit=10)) == len(LIFE)
    assert mem0(lived, UNRELATED, threshold=0.45) == []


def test_a_threshold_outside_zero_to_one_is_refused_naming_its_field(lived: Users) -> None:
    for value in (-0.5, 1.5, "high"):
        failed(lived.alice.post("/product/search", json={"query": "dog", "user_id": "alice", "relativity": value}),
               400, "relativity")
        failed(lived.alice.post("/api/openmem/v1/search/memory",
                                json={"query": "dog", "user_id": "alice", "relativity": value}), 400, "relativity")
        response = lived.alice.get("/v1/memories/search", params={"query": "dog", "user_id": "alice",
                                                                   "threshold": value})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "INVALID_REQUEST" and "threshold" in error["message"]
