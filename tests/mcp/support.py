"""Talking to the MCP server the way a client does: the SDK's own in-process ``Client``."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.types import CallToolResult, TextContent, TextResourceContents

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.mcp.server import build_server


def connect(service: MemoryService, user: str, keys: KeyRing | None = None, read_only: bool = False,
            **client_options: Any) -> Client:
    """A client of a fresh server over ``service`` whose default user (the acting user in-process) is ``user``."""
    return Client(build_server(service, keys or KeyRing(service), user, read_only=read_only), **client_options)


def text_of(result: CallToolResult) -> str:
    return "\n".join(part.text for part in result.content if isinstance(part, TextContent))


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured output."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content


async def fail(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; the error text the model sees."""
    result = await client.call_tool(tool, arguments)
    message = text_of(result)
    assert result.is_error is True, f"{tool} did not fail: {message}"
    assert result.structured_content is None
    assert message.strip(), f"{tool} failed without a message"
    assert "Traceback" not in message
    return message


async def remember(client: Client, text: str, **arguments: Any) -> dict[str, Any]:
    """Add one memory from text; the stored memory."""
    added = await call(client, "add_memory", memory_content=text, **arguments)
    assert len(added["memories"]) == 1
    memory: dict[str, Any] = added["memories"][0]
    return memory


async def read_text(client: Client, uri: str) -> tuple[str, str | None]:
    """Read a text resource; its text and mime type."""
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, TextResourceContents), f"{uri} is not text"
    return content.text, content.mime_type
