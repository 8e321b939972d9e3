"""A large cube's export over streamable HTTP with the SDK client and its default 1 MiB limit per
server-sent event: the export_cube tool and the export resources carry it in parts."""

from __future__ import annotations

import base64
import json

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import EmbeddedResource, ResourceLink, TextResourceContents

from tests.http.conftest import Serve
from tests.http.support import TIMEOUT, streamable

COUNT = 620


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
            async with streamable(url) as session:
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
            async with streamable(url) as session:
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


def _cursor(state: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


FORGED = [  # cursors a client could send instead of one an export part returned
    {"e": False, "m": ["nan", "x"], "c": None, "k": 0},
    {"e": False, "m": [float("nan"), "5d0c4b5e-1c1d-4d7e-9a55-2f1a7c7b8e10"], "c": None, "k": 0},
    {"e": False, "m": [float("-inf"), "5d0c4b5e-1c1d-4d7e-9a55-2f1a7c7b8e10"], "c": None, "k": 0},
    {"e": False, "m": [1e30, "5d0c4b5e-1c1d-4d7e-9a55-2f1a7c7b8e10"], "c": None, "k": 0},
    {"e": True, "m": None, "c": {"a": 1}, "k": 0},
    {"e": False, "m": [1, 2, 3], "c": None, "k": 0},
    {"e": False, "m": None, "c": "", "k": -5},
    {"e": False, "m": None, "c": "", "k": 1e30},
    {"e": "yes", "m": None, "c": None, "k": 0},
]


def test_a_forged_export_cursor_is_refused_naming_it_and_the_server_stays_up(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    app.service.add_memory(user, memory_content="The blue crate holds spare fuses.")
    cube = app.service.get_user(user)[1][0].cube_id

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT * 2):
            async with streamable(app.url) as session:
                for state in FORGED:
                    result = await session.call_tool("export_cube", {"cube_id": cube, "cursor": _cursor(state)})
                    assert result.is_error and "cursor" in str(result.content), (state, result.content)
                    with pytest.raises(MCPError, match="cursor"):
                        await session.read_resource(f"memory://cubes/{cube}/export/{_cursor(state)}")
                whole = await session.call_tool("export_cube", {"cube_id": cube})
                assert not whole.is_error and "spare fuses" in str(whole.content)

    anyio.run(scenario)
    health = httpx2.get(f"{app.url}/health", timeout=TIMEOUT)
    assert health.status_code == 200, health.text


def test_a_part_full_of_characters_json_escapes_still_fits_one_event(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    cube = app.service.get_user(user)[1][0].cube_id
    for n in range(60):  # each memory's metadata near the limit, all of it escaped twice on the way
        app.service.add_memory(user, memory_content=f'Quote {n}: "{chr(34) * 300}"',
                               metadata={"blob": '"\\' * 4_000})

    async def scenario() -> int:
        parts = 0
        cursor = None
        with anyio.fail_after(TIMEOUT * 3):
            async with streamable(app.url) as session:
                for _ in range(100):
                    arguments: dict[str, object] = {"cube_id": cube, **({"cursor": cursor} if cursor else {})}
                    result = await session.call_tool("export_cube", arguments)
                    assert not result.is_error, str(result.content)[:300]
                    parts += 1
                    last = records(result.content[0].resource.text)[-1]  # type: ignore[union-attr]
                    cursor = last["cursor"] if last["type"] == "next" else None
                    if cursor is None:
                        return parts
        raise AssertionError("the export did not end")

    assert anyio.run(scenario) > 1


def test_metadata_beyond_its_limit_is_refused_naming_it(serve: Serve) -> None:
    app = serve()
    refused = httpx2.post(f"{app.url}/v1/memories", json={"content": "x", "metadata": {"blob": '"' * 480_000}},
                          timeout=TIMEOUT)
    assert refused.status_code == 413 and "metadata" in refused.text, refused.text
    assert app.service.list_memories(app.service.settings.default_user_id).total == 0
