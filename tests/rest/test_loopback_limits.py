"""The default rate limits (the seed's 100 per minute and 20 per 10 s, per key) over real HTTP: an open
loopback server (no key at all: one person's agent) answers searches beyond them, a keyed caller is
held to them, and limits configured explicitly hold on loopback too."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import ROOT_USER
from tests.http.support import ADMIN_KEY, TIMEOUT, auth, running_app

SEARCHES = 130  # beyond the default 100 per minute (and far beyond 20 per 10 s), well within a minute
QUERIES = ["Where does Ana live?", "What did Ben buy?", "Which book did Chloe read?", "When is the trip?"]


def searches(url: str, key: str | None, count: int) -> list[int]:
    """``count`` POST /product/search from 4 threads at once; their statuses in order."""
    with httpx2.Client(base_url=url, headers=auth(key), timeout=TIMEOUT) as http:
        def one(i: int) -> int:
            body = {"query": QUERIES[i % len(QUERIES)], "user_id": "default", "top_k": 5}
            return http.post("/product/search", json=body).status_code
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(count)))


def test_an_open_loopback_server_answers_more_searches_than_the_default_limits_allow(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    settings = Settings(data_dir=tmp_path / "data", server={"host": "127.0.0.1"})  # the default limits, no key
    assert settings.rest.rate_limits == ["100/minute", "20/10 seconds"]
    with running_app(settings, embedder) as app:
        app.service.add_memory(ROOT_USER, user_id="default", memory_content="Ana lives in Porto with her cat.")
        statuses = searches(app.url, None, SEARCHES)
        assert statuses == [200] * SEARCHES


def test_a_keyed_caller_of_the_same_server_is_held_to_the_default_limits(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    settings = Settings(data_dir=tmp_path / "data", server={"host": "127.0.0.1", "admin_key": ADMIN_KEY})
    with running_app(settings, embedder) as app:
        statuses = searches(app.url, ADMIN_KEY, 30)
        assert statuses.count(200) == 20 and statuses.count(429) == 10
        with httpx2.Client(base_url=app.url, headers=auth(ADMIN_KEY), timeout=TIMEOUT) as http:
            refused = http.post("/product/search", json={"query": "x", "user_id": "default"})
        assert refused.status_code == 429 and refused.json()["code"] == 429
        assert refused.headers["X-RateLimit-Limit"] == "20" and int(refused.headers["Retry-After"]) >= 1


def test_limits_configured_explicitly_hold_on_an_open_loopback_server(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    settings = Settings(data_dir=tmp_path / "data", server={"host": "127.0.0.1"},
                        rest={"rate_limits": ["100/minute"]})
    with running_app(settings, embedder) as app:
        statuses = searches(app.url, None, SEARCHES)
        assert statuses.count(200) == 100 and statuses.count(429) == SEARCHES - 100
