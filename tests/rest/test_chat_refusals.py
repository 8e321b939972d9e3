"""Chat refuses what it must refuse before it needs a language model: on a server without one, every
face that offers chat (each REST dialect's chat route, the MCP ``chat`` tool over streamable HTTP)
answers another user's or an unknown cube, acting for another user, a guest, a bad query, a bad limit
or a bad conversation id with its own 403 / 404 / 400 / 413 naming the field, and only a chat that
would be answered meets the 503 ``llm_not_configured``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from memos_mcp.core.models import Role
from memos_mcp.core.service import ROOT_USER
from tests.http.support import Running, streamable, text_of
from tests.rest.conftest import RestServe, client, failed

CLOUD = "/api/openmem/v1/chat"
LONG = "x" * 25_000  # past max_memory_size (20,000 characters)


@pytest.fixture
def app(rest_serve: RestServe) -> Running:
    """No language model; authentication on; alice and bob plain users, gus a guest."""
    app = rest_serve(admin_key=True)
    app.keys.create(ROOT_USER, "bob")
    return app


@pytest.fixture
def alice(app: Running) -> Iterator[httpx2.Client]:
    with client(app, app.keys.create(ROOT_USER, "alice").key) as http:
        yield http


# (route, body, status, words the message holds)
REFUSED: dict[str, tuple[str, dict[str, Any], int, tuple[str, ...]]] = {
    "api: empty message": ("/api/chat", {"message": "", "user_id": "alice"}, 400, ("query",)),
    "api: another user": ("/api/chat", {"message": "hi", "user_id": "bob"}, 403, ("bob",)),
    "api: another user's cube": ("/api/chat", {"message": "hi", "install_cube_ids": ["bob_default_cube"]}, 403,
                                 ("bob_default_cube",)),
    "api: unknown cube": ("/api/chat", {"message": "hi", "install_cube_ids": ["no_such_cube"]}, 404,
                          ("no_such_cube",)),
    "api: long message": ("/api/chat", {"message": LONG}, 413, ("query",)),
    "product: another user": ("/product/chat", {"user_id": "bob", "query": "hi"}, 403, ("bob",)),
    "product: blank query": ("/product/chat", {"user_id": "alice", "query": "   "}, 400, ("query",)),
    "product: another user's cube": ("/product/chat", {"user_id": "alice", "query": "hi",
                                                       "mem_cube_id": "bob_default_cube"}, 403, ("bob_default_cube",)),
    "product: bad history": ("/product/chat", {"user_id": "alice", "query": "hi", "history": [{"role": "x"}]}, 400,
                             ("history",)),
    # each message of a history is checked as a query's text is, and their count bounded
    "product: long history message": ("/product/chat", {"user_id": "alice", "query": "hi", "history": [
        {"role": "user", "content": LONG}]}, 413, ("history.0.content",)),
    "product: empty history message": ("/product/chat", {"user_id": "alice", "query": "hi", "history": [
        {"role": "user", "content": "ok"}, {"role": "assistant", "content": " "}]}, 400, ("history.1.content",)),
    "product: history field unknown": ("/product/chat", {"user_id": "alice", "query": "hi", "history": [
        {"role": "user", "content": "ok", "mood": "sad"}]}, 400, ("history.0.mood",)),
    "product: endless history": ("/product/chat", {"user_id": "alice", "query": "hi", "history": [
        {"role": "user", "content": "ok"}] * 5000}, 413, ("history",)),
    "cloud: another user": (CLOUD, {"user_id": "bob", "conversation_id": "c", "query": "hi"}, 403, ("bob",)),
    "cloud: bad conversation id": (CLOUD, {"user_id": "alice", "conversation_id": "../x", "query": "hi"}, 400,
                                   ("conversation_id",)),
    "cloud: blank query": (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": " \u200b "}, 400, ("query",)),
    "cloud: negative limit": (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": "hi",
                                      "memory_limit_number": -5}, 400, ("memory_limit_number",)),
    "cloud: negative preference limit": (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": "hi",
                                                 "preference_limit_number": -1}, 400, ("preference_limit_number",)),
    "cloud: long query": (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": LONG}, 413, ("query",)),
    "cloud stream: another user": (CLOUD, {"user_id": "bob", "conversation_id": "c", "query": "hi", "stream": True},
                                   403, ("bob",)),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_chat_that_must_be_refused_is_refused_for_what_it_is_not_for_the_missing_model(
        app: Running, alice: httpx2.Client, case: str) -> None:
    route, body, status, words = REFUSED[case]
    message = failed(alice.post(route, json=body), status, *words)
    assert "language model" not in message
    assert app.service.get_messages("alice", "c") == [] and app.service.get_messages("alice", "default") == []


@pytest.mark.parametrize("route, body, word", [
    ("/api/chat", {"message": "hi"}, "guest"), ("/product/chat", {"user_id": "gus", "query": "hi"}, "guest"),
    (CLOUD, {"user_id": "gus", "conversation_id": "c", "query": "hi"}, "guest"),
    ("/product/chat", {"user_id": "bob", "query": "hi"}, "bob")])
def test_a_guest_may_not_chat_on_any_dialect(app: Running, route: str, body: dict[str, Any], word: str) -> None:
    with client(app, app.keys.create(ROOT_USER, "gus", Role.GUEST).key) as gus:
        failed(gus.post(route, json=body), 403, word)


@pytest.mark.parametrize("route, body", [
    ("/api/chat", {"message": "hi"}), ("/product/chat", {"user_id": "alice", "query": "hi"}),
    (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": "hi"}),
    (CLOUD, {"user_id": "alice", "conversation_id": "c", "query": "hi", "stream": True})])
def test_a_chat_that_would_be_answered_meets_the_missing_model(alice: httpx2.Client, route: str,
                                                               body: dict[str, Any]) -> None:
    failed(alice.post(route, json=body), 503, "language model")


MCP_REFUSED: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "empty query": ({"query": ""}, ("invalid_request", "query")),
    "long query": ({"query": LONG}, ("payload_too_large", "query")),
    "another user's cube": ({"query": "hi", "cube_ids": ["bob_default_cube"]}, ("forbidden", "bob_default_cube")),
    "unknown cube": ({"query": "hi", "cube_ids": ["no_such_cube"]}, ("not_found", "no_such_cube")),
    "bad conversation id": ({"query": "hi", "conversation_id": "../x"}, ("invalid_request", "conversation_id")),
}


def test_the_mcp_chat_tool_refuses_what_it_must_before_it_needs_a_model(app: Running) -> None:
    alice, gus = app.keys.create(ROOT_USER, "alice").key, app.keys.create(ROOT_USER, "gus", Role.GUEST).key

    async def chats() -> tuple[dict[str, str], str, str]:
        refused: dict[str, str] = {}
        with anyio.fail_after(60):
            async with streamable(app.url, alice) as session:
                for case, (arguments, _) in MCP_REFUSED.items():
                    result = await session.call_tool("chat", arguments)
                    assert result.is_error, case
                    refused[case] = text_of(result)
                answerable = await session.call_tool("chat", {"query": "hi"})
            async with streamable(app.url, gus) as session:
                guest = await session.call_tool("chat", {"query": "hi"})
        assert answerable.is_error and guest.is_error
        return refused, text_of(answerable), text_of(guest)

    refused, answerable, guest = anyio.run(chats)
    for case, (_, words) in MCP_REFUSED.items():
        assert all(word in refused[case] for word in words), (case, refused[case])
        assert "llm_not_configured" not in refused[case], case
    assert "forbidden" in guest and "guest" in guest
    assert "llm_not_configured" in answerable
