"""MCP answers that fit one server-sent event: the SDK clients (streamable HTTP and the legacy SSE
transport) refuse an event over 1 MiB, so a search with a large top_k, a listing page or an add of many
long memories must not answer with more. A tool whose list does not fit answers the head of it and says
how many items it left out (``omitted``); an answer that cannot be cut is a tool error naming the
cause, never a broken transport."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from memos_mcp.core import portability
from memos_mcp.core.service import MemoryService
from tests.http.conftest import Serve
from tests.http.support import TIMEOUT, legacy_sse, streamable, text_of

COUNT = 240
PAD = "x" * 7_000  # metadata a caller may attach (16 KB of JSON is allowed): 240 of them are about 3.5 MB


CLIENTS = {"streamable": streamable, "sse": legacy_sse}  # both with the SDK's default limit per event
Client = Callable[[str], AbstractAsyncContextManager[ClientSession]]


def fill(service: MemoryService) -> str:
    user = service.settings.default_user_id
    for n in range(COUNT):
        service.add_memory(user, memory_content=f"Ledger entry {n}: crate {n} of the blue shipment went to "
                                                f"dock {n % 17} on pallet {n * 7 % 101}.",
                           metadata={"pad": PAD, "n": n})
    return user


def run(client: Client, url: str, scenario: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with anyio.fail_after(TIMEOUT * 3):
            async with client(url) as session:
                return await scenario(session)
    return anyio.run(main)


def wire_size(result: Any) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


@pytest.mark.parametrize("transport", sorted(CLIENTS))
def test_a_search_with_a_large_top_k_answers_its_best_hits_and_counts_the_rest(serve: Serve, transport: str) -> None:
    app = serve()
    user = fill(app.service)
    whole = app.service.search(user, "which dock did the blue shipment crate go to", top_k=COUNT)
    assert len(whole.memories) == COUNT

    result = run(CLIENTS[transport], app.url, lambda s: s.call_tool(
        "search_memory", {"query": "which dock did the blue shipment crate go to", "top_k": COUNT}))
    assert not result.is_error, text_of(result)
    found = result.structured_content
    assert 0 < len(found["memories"]) < COUNT
    assert found["omitted"] == COUNT - len(found["memories"])
    assert [m["id"] for m in found["memories"]] == [m.id for m in whole.memories[:len(found["memories"])]]
    assert json.loads(result.content[0].text) == found  # the text copy says the same
    assert wire_size(result) <= 1024 * 1024


def test_a_listing_page_that_does_not_fit_answers_its_head_and_counts_the_rest(serve: Serve) -> None:
    app = serve()
    user = fill(app.service)
    whole = app.service.list_memories(user, page=1, size=200)
    result = run(streamable, app.url, lambda s: s.call_tool("list_memories", {"size": 200}))
    assert not result.is_error, text_of(result)
    page = result.structured_content
    assert 0 < len(page["memories"]) < 200 and page["omitted"] == 200 - len(page["memories"])
    assert (page["total"], page["page"], page["size"]) == (COUNT, 1, 200)
    assert [m["id"] for m in page["memories"]] == [m.id for m in whole.memories[:len(page["memories"])]]

    small = run(streamable, app.url, lambda s: s.call_tool("list_memories", {"size": 20, "page": 2}))
    assert small.structured_content["omitted"] == 0
    assert [m["id"] for m in small.structured_content["memories"]] == \
        [m.id for m in app.service.list_memories(user, page=2, size=20).memories]


def test_an_add_of_many_memories_stores_them_all_and_answers_what_fits(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    messages = [{"role": "user", "content": f"Turn {n}: the green van number {n} parks at bay {n % 9}."}
                for n in range(COUNT)]
    result = run(streamable, app.url, lambda s: s.call_tool(
        "add_memory", {"messages": messages, "metadata": {"pad": PAD}, "conversation_id": "vans"}))
    assert not result.is_error, text_of(result)
    added = result.structured_content
    stored = app.service.list_memories(user, page=1, size=200).total
    assert stored >= COUNT
    assert len(added["memories"]) > 0 and added["omitted"] == stored - len(added["memories"])
    assert wire_size(result) <= 1024 * 1024


def test_a_memory_too_large_for_one_answer_is_a_tool_error_naming_the_cause(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    cube = app.service.get_user(user)[1][0].cube_id
    ident = "0b6d5e0e-54c3-4c52-9b4a-4d7f0b1c2d3e"
    big = "€uro " * 3_900  # 19,500 characters (27,300 bytes): each source within the bounds an import checks
    header = next(portability.export_cube(app.service, user, cube, include_embeddings=False))
    memory = {"type": "memory", "id": ident, "cube_id": cube, "user_id": user, "memory": "the fat ledger",
              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
              "sources": [{"type": "chat", "content": big, "message_id": f"m{n}"} for n in range(50)]}
    portability.import_lines(app.service, user, [header, json.dumps(memory)], cube)

    for tool, arguments in (("get_memory", {"memory_id": ident}), ("export_cube", {"cube_id": cube})):
        result = run(streamable, app.url,
                     lambda s, tool=tool, arguments=arguments: s.call_tool(tool, arguments))
        assert result.is_error
        assert text_of(result).startswith("response_too_large:"), text_of(result)

    async def read(session: ClientSession) -> str:
        with pytest.raises(MCPError) as refused:
            await session.read_resource(f"memory://cubes/{cube}/memories/{ident}")
        return refused.value.error.message
    assert "response_too_large:" in run(legacy_sse, app.url, read)
    searched = run(streamable, app.url, lambda s: s.call_tool(
        "search_memory", {"query": "the fat ledger"}))
    assert not searched.is_error, text_of(searched)
    assert ident not in [m["id"] for m in searched.structured_content["memories"]]
    assert searched.structured_content["omitted"] >= 1
