"""MCP over stdio that answers every line, as JSON-RPC 2.0 has it.

The SDK's stdio transport hands a line it cannot read as a JSON-RPC message to the server as an
exception, and the server drops it: the client waits for an answer that never comes. Here each such
line is answered: ``-32700 Parse error`` for a line that is not JSON, ``-32600 Invalid Request`` for
JSON that is not a JSON-RPC message (JSON-RPC 2.0, section 5.1), with the request's id when it can be
read from the line and null otherwise (section 5). The session goes on.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError


class StdioServer(MCPServer):
    """The SDK's ``MCPServer``, whose stdio transport answers the lines it cannot read (see the module)."""

    async def run_stdio_async(self) -> None:
        """Serve over the process's stdin and stdout until stdin closes."""
        async with stdio_server() as (read_stream, write_stream):
            messages_in, messages = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def answer_unreadable() -> None:
                async with messages_in:
                    async for item in read_stream:
                        if isinstance(item, Exception):
                            await write_stream.send(SessionMessage(unreadable(item)))
                        else:
                            await messages_in.send(item)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(answer_unreadable)
                lowlevel = self._lowlevel_server
                await lowlevel.run(messages, write_stream, lowlevel.create_initialization_options())
                tasks.cancel_scope.cancel()  # stdin is closed by now, unless the server ended first


def unreadable(problem: Exception) -> JSONRPCError:
    """The JSON-RPC error answering a line the transport could not read: ``problem`` is what reading
    it raised (a pydantic ValidationError: ``json_invalid`` for a line that is not JSON)."""
    errors = problem.errors() if isinstance(problem, ValidationError) else []
    if errors and errors[0]["type"] == "json_invalid":
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
            code=PARSE_ERROR, message=f"Parse error: the line is not JSON ({errors[0]['msg']})"))
    return JSONRPCError(jsonrpc="2.0", id=_id_in(errors), error=ErrorData(
        code=INVALID_REQUEST, message="Invalid Request: the line is not a JSON-RPC 2.0 request, notification or "
                                      "response object"))


def _id_in(errors: list[Any]) -> int | str | None:
    """The id of the object the line held, if one of the errors quotes it whole and its id is one."""
    for error in errors:
        found = error.get("input")
        if isinstance(found, dict) and isinstance(found.get("id"), int | str) and not isinstance(found["id"], bool):
            ident: int | str = found["id"]
            return ident
    return None
