"""Property test: hostile JSON bodies (deep nesting, huge integers, NaN and infinities, odd metadata
and filter keys, NUL bytes in paths) sent to a POST route of every REST dialect on the real app over
loopback are answered 4xx in that dialect's envelope, naming the field, and store nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import ROOT_USER
from tests.http.support import TIMEOUT, Running, running_app

# A POST route of each dialect that takes metadata or filters, and how its valid body looks.
ROUTES = {
    "/v1/memories": {"content": "x"},
    "/v1/facts": {"content": "x"},
    "/v1/facts/search": {"query": "x"},
    "/api/memories": {"memory_content": "x"},
    "/product/add": {"user_id": "default", "memory_content": "x"},
    "/api/openmem/v1/add/message": {"user_id": "default", "messages": [{"role": "user", "content": "x"}]},
    "/api/openmem/v1/search/memory": {"user_id": "default", "query": "x"},
    "/api/openmem/v1/delete/memory": {"filter": {}},
}
# Where each route takes metadata (added) or a filter (searched, deleted).
META_FIELD = {"/v1/memories": "metadata", "/v1/facts": "metadata", "/v1/facts/search": "filters",
              "/api/memories": None, "/product/add": None, "/api/openmem/v1/add/message": "info",
              "/api/openmem/v1/search/memory": "filter", "/api/openmem/v1/delete/memory": "filter"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: LocalOnnxEmbedder) -> Iterator[Running]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hostile"), rest={"rate_limits": []},
                        server={"host": "127.0.0.1"})
    with running_app(settings, embedder) as running:
        yield running


VALID_KEY = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")  # the keys metadata may have (README)


def _raw_number() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]),
                     st.integers(min_value=33, max_value=6000).map(lambda n: "9" * n))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_KEYS = st.one_of(st.sampled_from(['a"b', "a\\b", "", "x" * 65, "a b", "a\x00b", "metadata.\"k\""]),
                     st.text(min_size=1, max_size=8).filter(lambda k: not VALID_KEY.fullmatch(k)))


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """(route, body, a word the answer must name)."""
    route = draw(st.sampled_from(sorted(ROUTES)))
    base = json.dumps(ROUTES[route])[:-1]  # open: a field is appended
    field = META_FIELD[route]
    kind = draw(st.sampled_from(["deep", "number", "key", "path"] if field else ["deep", "number", "path"]))
    if kind == "deep":
        return route, f'{base}, "extra": {_nested(draw(st.integers(65, 30_000)))}}}'.encode(), "body"
    if kind == "number":
        return route, f'{base}, "extra": {draw(_raw_number())}}}'.encode(), "body"
    if kind == "path":
        path = draw(st.text(max_size=10)) + "\x00" + draw(st.text(max_size=10))
        return "/api/memories", json.dumps({"doc_path": path}).encode(), "doc_path"
    key = draw(BAD_KEYS)
    inner = {"metadata": {key: 1}} if field in ("filter", "filters") else {key: 1}
    body = {**ROUTES[route], field: inner}
    return route, json.dumps(body).encode(), "metadata" if field in ("filter", "filters") else ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile())
def test_hostile_bodies_are_a_4xx_in_every_dialect_and_change_nothing(server: Running,
                                                                      case: tuple[str, bytes, str]) -> None:
    route, body, names = case
    with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
        answer = http.post(route, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, (route, body[:200], answer.status_code, answer.text)
    assert names in answer.text, (route, body[:200], answer.text)
    assert server.service.list_memories(ROOT_USER, user_id="default").total == 0


# Text no store keeps, sent as JSON escapes: a lone surrogate, and a NUL in fields beside the memory text.
UNSTORABLE = [
    ("/product/add", '{"user_id": "default", "memory_content": "The boat is blue.", "tags": ["ok", "\\ud800"]}',
     "tags.1"),
    ("/api/openmem/v1/add/message", '{"user_id": "default", "tags": ["a\\u0000b"], "messages": '
     '[{"role": "user", "content": "The boat is blue."}]}', "tags.0"),
    ("/v1/memories", '{"messages": [{"role": "user", "content": "The boat is blue.", "name": "Ann\\udfff"}]}',
     "messages.0.name"),
    ("/api/memories", '{"messages": [{"role": "user", "content": "The boat is blue.", "message_id": "m\\u0000"}]}',
     "messages.0.message_id"),
    ("/v1/memories", '{"content": "The boat is blue.", "metadata": {"note": ["x", {"y": "\\ud83d"}]}}',
     "metadata.note"),
    ("/api/mem_cubes", '{"name": "cube \\ud800"}', "name"),
    # A lone surrogate in a key: the error quoting it must still encode (it was a plain-text 500).
    ("/v1/memories", '{"content": "The boat is blue.", "metadata": {"k\\ud800": 1}}', "metadata.k\\\\ud800"),
    ("/product/search", '{"user_id": "default", "query": "boat", "x\\udfff": 1}', "x\\\\udfff"),
    ("/api/openmem/v1/get/memory", '{"user_id": "default", "filter": {"a\\ud800b": 1}}', "filter"),
    ("/api/users", '{"user_id": "ann", "user_name": "Ann\\u0000", "role": "user"}', "user_name"),
]


def test_text_no_store_keeps_is_a_400_naming_the_field_on_every_dialect(server: Running) -> None:
    """A lone surrogate (no UTF-8 encodes it) or a NUL in a tag, a message's name or id, metadata, a cube's
    or a user's name is refused naming the field; before, a lone surrogate in a tag came back 500 from
    the vector store's encoder."""
    before = (server.service.list_memories(ROOT_USER, size=200).total, len(server.service.list_users(ROOT_USER)),
              len(server.service.list_cubes(ROOT_USER)))
    with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
        for route, body, field in UNSTORABLE:
            answer = http.post(route, content=body.encode(), headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (route, body, answer.status_code, answer.text)
            assert field in answer.text, (route, field, answer.text)
    after = (server.service.list_memories(ROOT_USER, size=200).total, len(server.service.list_users(ROOT_USER)),
             len(server.service.list_cubes(ROOT_USER)))
    assert after == before
