"""MCP Apps through the SDK's own client: a client that negotiates the extension finds the memory view
on the reading tools and reads it as an app; any other client sees the listings and results of a
server without apps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.client import advertise
from mcp.client.extension import ClientExtension
from mcp.types import TextResourceContents

from memos_mcp.core.service import MemoryService
from memos_mcp.mcp.apps import APP_MIME_TYPE, EXTENSION_ID, MEMORY_VIEW, VIEW_TOOLS
from tests.mcp.support import call, connect, remember

pytestmark = pytest.mark.anyio

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
MODES = ["auto", "legacy"]  # the 2026-07-28 protocol (capabilities on each request) and the handshake


@pytest.fixture
def backend() -> str:
    """Listing does not touch the vectors: one backend is enough."""
    return "edge"


def wire(model: Any) -> str:
    """A result as the client received it, in a canonical JSON form (for byte comparisons)."""
    return json.dumps(model.model_dump(by_alias=True, mode="json", exclude_none=True), sort_keys=True)


async def listings(service: MemoryService, mode: str, extensions: list[ClientExtension] | None) -> dict[str, Any]:
    async with connect(service, "alice", mode=mode, extensions=extensions) as client:
        return {"tools": await client.list_tools(), "resources": await client.list_resources(),
                "templates": await client.list_resource_templates(), "prompts": await client.list_prompts()}


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_negotiates_apps_finds_the_memory_view_on_the_reading_tools(
        people: MemoryService, mode: str) -> None:
    found = await listings(people, mode, [APPS])
    views = {tool.name: (tool.meta or {}).get("ui") for tool in found["tools"].tools}
    assert {name for name, ui in views.items() if ui} == set(VIEW_TOOLS)
    assert all(views[name] == {"resourceUri": MEMORY_VIEW} for name in VIEW_TOOLS)
    listed = {str(resource.uri): resource for resource in found["resources"].resources}
    assert listed[MEMORY_VIEW].mime_type == APP_MIME_TYPE


@pytest.mark.parametrize("mode", MODES)
async def test_the_memory_view_is_read_as_one_self_contained_app_page(people: MemoryService, mode: str) -> None:
    async with connect(people, "alice", mode=mode, extensions=[APPS]) as client:
        read = await client.read_resource(MEMORY_VIEW)
    assert len(read.contents) == 1
    page = read.contents[0]
    assert isinstance(page, TextResourceContents)
    assert page.mime_type == APP_MIME_TYPE
    assert str(page.uri) == MEMORY_VIEW
    assert page.text.lstrip().lower().startswith("<!doctype html>") and page.text.rstrip().endswith("</html>")
    assert (page.meta or {}).get("ui") == {"prefersBorder": True}
    # Works offline: nothing is fetched from anywhere (no external script, style, image or font).
    for needle in ("http://", "https://", "src=", "@import", "url("):
        assert needle not in page.text, needle
    # Memory text is only ever set as text.
    assert "innerHTML" not in page.text and "insertAdjacentHTML" not in page.text and "document.write" not in page.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("settings", [None, {}, {"mimeTypes": ["text/html"]}],
                         ids=["no-extension", "extension-without-mime-types", "other-mime-type"])
async def test_a_client_without_the_app_mime_type_sees_the_listings_of_a_server_without_apps(
        people: MemoryService, mode: str, settings: dict[str, Any] | None) -> None:
    extensions = None if settings is None else [advertise(EXTENSION_ID, settings)]
    plain = await listings(people, mode, extensions)
    with_apps = await listings(people, mode, [APPS])
    # Nothing of the view: no tool points at it, no ui:// resource is listed...
    assert all(not (tool.meta or {}).get("ui") for tool in plain["tools"].tools)
    assert all(not str(resource.uri).startswith("ui://") for resource in plain["resources"].resources)
    assert "ui://" not in wire(plain["tools"]) + wire(plain["resources"])
    # ...and the rest is what a client with apps gets without the view's own additions.
    for tool in with_apps["tools"].tools:
        if tool.name in VIEW_TOOLS:
            tool.meta = {key: value for key, value in (tool.meta or {}).items() if key != "ui"} or None
    with_apps["resources"].resources = [r for r in with_apps["resources"].resources if str(r.uri) != MEMORY_VIEW]
    for kind in ("tools", "resources", "templates", "prompts"):
        assert wire(plain[kind]) == wire(with_apps[kind]), kind


@pytest.mark.parametrize("mode", MODES)
async def test_tool_results_are_the_same_whether_or_not_the_client_renders_apps(
        people: MemoryService, mode: str) -> None:
    async with connect(people, "alice", mode=mode) as plain, \
            connect(people, "alice", mode=mode, extensions=[APPS]) as apps:
        memory = await remember(apps, "The lighthouse keeper's cat is called Fresnel.", tags=["cats"])
        for name, arguments in [("search_memory", {"query": "what is the cat called"}),
                                ("list_memories", {}), ("get_memory", {"memory_id": memory["id"]}),
                                ("memory_history", {"memory_id": memory["id"]})]:
            seen = [await client.call_tool(name, arguments) for client in (plain, apps)]
            assert wire(seen[0]) == wire(seen[1]), name
            assert not seen[0].is_error, name


async def test_a_client_that_renders_apps_still_gets_the_text_every_client_gets(people: MemoryService) -> None:
    """The spec's graceful degradation: a UI-bound tool's content stays meaningful without the view."""
    async with connect(people, "alice", extensions=[APPS]) as client:
        memory = await remember(client, "The ferry to the island leaves at 7:40.")
        found = await client.call_tool("search_memory", {"query": "when does the ferry leave"})
        text = "\n".join(part.text for part in found.content if part.type == "text")
        assert json.loads(text)["memories"][0]["id"] == memory["id"]
        assert (await call(client, "search_memory", query="ferry"))["memories"][0]["id"] == memory["id"]


async def test_a_read_only_server_still_offers_the_view_on_its_reading_tools(people: MemoryService) -> None:
    async with connect(people, "alice", read_only=True, extensions=[APPS]) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {name for name, tool in tools.items() if (tool.meta or {}).get("ui")} == set(VIEW_TOOLS)
        assert (await client.read_resource(MEMORY_VIEW)).contents[0].mime_type == APP_MIME_TYPE

