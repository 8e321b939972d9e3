"""A large cube's export over streamable HTTP with the SDK client and its default 1 MiB limit per
server-sent event: the export_cube tool and the export resources carry it in parts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import EmbeddedResource, ResourceLink, TextResourceContents

from tests.http.conftest import Serve
from tests.http.support import TIMEOUT

COUNT = 620


@asynccontextmanager
async def default_client(url: str) -> AsyncIterator[ClientSession]:
    """The SDK's streamable HTTP client as an agent would open it: the default SSE event limit."""
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def fill(serve: Serve) -> tuple[str, str, set[str]]:
    app = serve()
    user = app.service.settings.default_user_id
    messages = [{"role": "user", "content": f"Note {n}: the blue crate on rack {n % 40} holds part {n}."}
                for n in range(COUNT)]
    ids = {m.id for m in app.service.add_memory(user, messages=messages).memories}
    return app.url, app.service.get_user(user)[1][0].cube_id, ids


def records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_cube_with_embeddings_arrives_whole_in_parts_over_streamable_http(serve: Serve) -> None:
    url, cube, ids = fill(serve)

    async def scenario() -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        cursor = None
        with anyio.fail_after(TIMEOUT * 3):
            async with default_client(url) as session:
                for _ in range(200):
                    arguments: dict[str, object] = {"cube_id": cube, "include_embeddings": True}
                    if cursor:
                        arguments["cursor"] = cursor
                    result = await session.call_tool("export_cube", arguments)
                    assert not result.is_error, result.content
                    part = result.content[0]
                    assert isinstance(part, EmbeddedResource) and isinstance(part.resource, TextResourceContents)
                    found += records(part.resource.text)
                    links = [c for c in result.content if isinstance(c, ResourceLink)]
                    cursor = found[-1]["cursor"] if found[-1]["type"] == "next" else None
                    assert [str(link.uri) for link in links] == (
                        [f"memory://cubes/{cube}/export/{cursor}"] if cursor else [])
                    if cursor is None:
                        return found
        raise AssertionError("the export did not end")

    found = anyio.run(scenario)
    memories = [r for r in found if r["type"] == "memory"]
    assert [r["id"] for r in memories if r["id"] in ids] == [r["id"] for r in memories]
    assert len(memories) == COUNT and {r["id"] for r in memories} == ids
    assert all(isinstance(r["embedding"], list) and len(r["embedding"]) > 0 for r in memories)
    assert sum(r["type"] == "message" for r in found) == COUNT


def test_the_export_resource_is_read_part_by_part_without_embeddings(serve: Serve) -> None:
    url, cube, ids = fill(serve)

    async def scenario() -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        uri = f"memory://cubes/{cube}/export"
        with anyio.fail_after(TIMEOUT * 3):
            async with default_client(url) as session:
                for _ in range(200):
                    (content,) = (await session.read_resource(uri)).contents
                    assert isinstance(content, TextResourceContents)
                    found += records(content.text)
                    if found[-1]["type"] != "next":
                        return found
                    uri = f"memory://cubes/{cube}/export/{found[-1]['cursor']}"
        raise AssertionError("the export did not end")

    found = anyio.run(scenario)
    memories = [r for r in found if r["type"] == "memory"]
    assert len(memories) == COUNT and {r["id"] for r in memories} == ids
    assert all("embedding" not in r for r in memories)
