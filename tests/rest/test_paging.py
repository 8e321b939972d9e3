"""Every REST listing visits each memory once although one add wrote them all at one time, and the
cloud dialect takes times as its fields promise (epoch seconds or milliseconds, ISO 8601) and refuses
times no store can hold."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from tests.rest.conftest import Users, failed, ok

CLOUD = "/api/openmem/v1"
COUNT = 600


def cloud(http: httpx2.Client, path: str, payload: dict[str, Any]) -> httpx2.Response:
    return http.post(CLOUD + path, content=json.dumps(payload), headers={"Content-Type": "application/json"})


def add_batch(http: httpx2.Client) -> None:
    """One cloud add of COUNT messages, each with a numeric chat_time (epoch seconds, as documented)."""
    messages = [{"role": "user", "content": f"Item {n}: the green folder {n} is in drawer {n % 13}.",
                 "chat_time": 1772409600 + n} for n in range(COUNT)]
    ok(cloud(http, "/add/message", {"messages": messages, "user_id": "alice", "conversation_id": "batch",
                                     "async_mode": False}))


def test_every_listing_face_visits_each_memory_of_one_batch_once(users: Users) -> None:
    http = users.alice
    add_batch(http)

    for size in (7, 128, 200):
        seen: list[str] = []
        for page in range(1, COUNT // size + 2):
            response = http.get("/v1/memories/user/alice", params={"page": page, "size": size})
            assert response.status_code == 200, response.text
            seen += [m["id"] for m in response.json()["data"]["memories"]]
        assert len(seen) == COUNT and len(set(seen)) == COUNT, size

    seen = []
    for page in range(1, COUNT // 50 + 2):
        data = ok(cloud(http, "/get/memory", {"user_id": "alice", "page": page, "size": 50}))
        assert data["total"] == COUNT
        seen += [m["id"] for m in data["memory_detail_list"]]
    assert len(seen) == COUNT and len(set(seen)) == COUNT

    listed = ok(http.get("/api/memories", params={"user_id": "alice"}))
    memories = [m["id"] for cube in listed["text_mem"] for m in cube["memories"]]
    assert len(memories) == COUNT and len(set(memories)) == COUNT

    deleted = ok(cloud(http, "/delete/memory", {"filter": {"conversation_id": "batch"}}))
    assert deleted == {"success": True, "skipped_cube_ids": []}
    assert ok(cloud(http, "/get/memory", {"user_id": "alice"}))["total"] == 0


def test_cloud_chat_time_takes_epoch_seconds_milliseconds_and_iso(users: Users) -> None:
    http = users.alice
    for n, when in enumerate((1772409600, 1772409600000, "1772409600", "2026-03-02T00:00:00Z")):
        ok(cloud(http, "/add/message", {"messages": [{"role": "user", "content": f"Visit {n} to the dentist.",
                                                       "chat_time": when}],
                                         "user_id": "alice", "conversation_id": f"c{n}", "async_mode": False}))
    found = ok(cloud(http, "/get/memory", {"user_id": "alice", "size": 10,
                                           "filter": {"time_from": "2026-03-02", "time_to": "2026-03-02"}}))
    assert found["total"] == 4


def test_cloud_refuses_a_time_no_store_can_hold_naming_the_field(users: Users) -> None:
    http = users.alice
    for when in ("9999-12-31T23:59:59-05:00", 1e20, "1e20"):
        failed(cloud(http, "/add/message", {"messages": [{"role": "user", "content": "Hello.", "chat_time": when}],
                                            "user_id": "alice", "conversation_id": "c1", "async_mode": False}),
               400, "chat_time")
    failed(cloud(http, "/get/memory", {"user_id": "alice", "filter": {"time_to": "9999-12-31T23:59:59-05:00"}}),
           400, "time_to")
    assert ok(cloud(http, "/get/memory", {"user_id": "alice"}))["total"] == 0
