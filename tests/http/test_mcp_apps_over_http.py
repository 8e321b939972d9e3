"""MCP Apps negotiated over streamable HTTP, however the server runs: the view is offered to the
clients whose capabilities the server knows on that request and that ask for it, and to no other."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client import advertise

from memos_mcp.mcp.apps import APP_MIME_TYPE, EXTENSION_ID, MEMORY_VIEW
from tests.http.conftest import Serve
from tests.http.support import TIMEOUT

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


async def offered(url: str, mode: str, apps: bool) -> tuple[Any, list[str]]:
    """What a client sees of the view: search_memory's ``_meta.ui`` and the ui:// resources listed."""
    async with Client(f"{url}/mcp", mode=mode, extensions=[APPS] if apps else None) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        listed = [str(r.uri) for r in (await client.list_resources()).resources if str(r.uri).startswith("ui://")]
        return (tools["search_memory"].meta or {}).get("ui"), listed


@pytest.mark.parametrize("server", [{}, {"json_response": True}, {"stateless_http": True}],
                         ids=["sessions", "json-answers", "stateless"])
def test_over_http_only_a_client_that_negotiates_apps_is_offered_the_view(serve: Serve, server: dict[str, Any]) -> None:
    app = serve(**server)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            view = ({"resourceUri": MEMORY_VIEW}, [MEMORY_VIEW])
            assert await offered(app.url, "auto", apps=True) == view  # 2026-07-28: capabilities on every request
            assert await offered(app.url, "auto", apps=False) == (None, [])
            assert await offered(app.url, "legacy", apps=False) == (None, [])
            # A handshake-era client's capabilities live in its session: a stateless server has none to
            # read, so it offers no view rather than guess.
            expected = (None, []) if server.get("stateless_http") else view
            assert await offered(app.url, "legacy", apps=True) == expected

    anyio.run(scenario)
