"""Facts added over REST with a conversation (mem0 ``run_id``, MemOS product ``session_id``) are indexed
with that conversation's earlier facts, and "Name: ..." makes Name their speaker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx2

from tests.core.test_facts import FILLER
from tests.rest.conftest import Users, ok


def mem0_add(http: httpx2.Client, content: str, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/memories", json={"content": content, "user_id": "alice", **body})
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()["data"][0]
    return added


def test_a_mem0_fact_of_a_run_is_found_through_the_runs_earlier_facts_and_links_its_speaker(users: Users) -> None:
    http = users.alice
    for text in FILLER:
        mem0_add(http, text)
    mem0_add(http, "Gina: We booked the flights to Reykjavik for March.", run_id="trip")
    after = mem0_add(http, "Gina: It cost way more than we planned.", run_id="trip")
    alone = mem0_add(http, "It cost way more than we had planned.")

    response = http.get("/v1/memories/search", params={"query": "Reykjavik", "user_id": "alice", "limit": 3})
    ids = [m["id"] for m in response.json()["data"]]
    assert after["id"] in ids and alone["id"] not in ids
    assert after["relationships"] == [{"type": "mentioned", "entity": "Gina", "confidence": 0.5, "source": "Gina"}]


def test_a_memos_product_fact_of_a_session_is_found_through_the_sessions_earlier_facts(users: Users) -> None:
    http = users.alice
    for text in FILLER:
        ok(http.post("/product/add", json={"user_id": "alice", "memory_content": text}))
    for text, session in (("We booked the flights to Reykjavik for March.", "trip"),
                          ("It cost way more than we planned.", "trip"),
                          ("It cost way more than we had planned.", None)):
        ok(http.post("/product/add", json={"user_id": "alice", "memory_content": text, "session_id": session}))

    data = ok(http.post("/product/search", json={"query": "Reykjavik", "user_id": "alice", "top_k": 3}))
    found = [m["memory"] for group in data["text_mem"] for m in group["memories"]]
    assert "It cost way more than we planned." in found and "It cost way more than we had planned." not in found


def test_a_mem0_fact_takes_its_timestamp_as_event_time_and_messages_keep_their_own(users: Users) -> None:
    http = users.alice
    added = mem0_add(http, "Gina: I renewed my passport.", run_id="trip", timestamp=1683554160)
    assert added["metadata"]["timestamp"] == "2023-05-08T13:56:00Z"
    iso = mem0_add(http, "Gina: I packed the tent.", run_id="trip", timestamp="2023-05-09T08:00:00+02:00")
    assert datetime.fromisoformat(iso["metadata"]["timestamp"]) == datetime(2023, 5, 9, 6, tzinfo=UTC)
    refused = http.post("/v1/memories", json={"messages": [{"role": "user", "content": "I live in Oslo"}],
                                              "user_id": "alice", "timestamp": 1683554160})
    assert refused.status_code == 400 and "timestamp" in refused.json()["error"]["message"]
