"""The real HTTP app under uvicorn on a loopback port, and the SDK's own clients talking to it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from memos_mcp.config import Settings
from memos_mcp.core.embedder import Embedder
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.http import build_app
from memos_mcp.rest.base import Dialect

ADMIN_KEY = "test-admin-key-0123456789"
TIMEOUT = 60.0
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rpc_result(response: httpx2.Response) -> dict[str, Any]:
    """The result of a JSON-RPC answer, sent as JSON or as one SSE ``message`` event."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        message = json.loads(data[-1])
    else:
        message = response.json()
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


def settings_for(data_dir: Path, read_only: bool = False, **server: Any) -> Settings:
    return Settings(data_dir=data_dir, read_only=read_only, server={"host": "127.0.0.1", **server})


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    service: MemoryService
    keys: KeyRing


@contextmanager
def running_app(settings: Settings, embedder: Embedder, rest: list[Dialect] | None = None) -> Iterator[Running]:
    """``build_app`` (with the ``rest`` dialects, by default all) under a real uvicorn server in a
    thread. The listening socket is bound here, so clients can connect at once: the kernel queues them
    until uvicorn accepts."""
    service = MemoryService.open(settings, embedder=embedder)
    admin_key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    keys = KeyRing(service, admin_key)
    if not service.read_only:  # as serve does: a read-only server makes nothing
        service.ensure_user(settings.default_user_id)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    config = uvicorn.Config(build_app(settings, service, keys, rest), log_config=None, lifespan="on",
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn")
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{listener.getsockname()[1]}", service, keys)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def auth(key: str | None, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}"} if key else {}


@asynccontextmanager
async def streamable(url: str, key: str | None = None, scheme: str = "Bearer") -> AsyncIterator[ClientSession]:
    """An initialized MCP session over streamable HTTP at ``url``/mcp, with the client's default limit
    of 1 MiB per server-sent event (every answer fits it: ``memos_mcp.mcp.fit``)."""
    async with httpx2.AsyncClient(headers=auth(key, scheme), timeout=TIMEOUT) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def legacy_sse(url: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized MCP session over the legacy SSE transport at ``url``/sse."""
    async with sse_client(f"{url}/sse", headers=auth(key), timeout=TIMEOUT) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "\n".join(part.text for part in result.content if isinstance(part, TextContent))


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured output."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    assert result.structured_content is not None
    return result.structured_content


async def add_then_find(session: ClientSession, text: str, query: str) -> None:
    """The round trip every transport must carry: the tools are listed, a memory is added, a search finds it."""
    tools = {tool.name for tool in (await session.list_tools()).tools}
    assert {"add_memory", "search_memory", "list_cubes"} <= tools
    added = await call(session, "add_memory", memory_content=text)
    assert [m["memory"] for m in added["memories"]] == [text]
    found = await call(session, "search_memory", query=query)
    assert found["memories"][0]["memory"] == text
