"""MCP over stdio that answers every request, as JSON-RPC 2.0 and MCP have it.

The SDK's stdio transport reads stdin as text with universal newlines, hands a line it cannot read as
a JSON-RPC message to the server as an exception (the server drops it), and reads a request whose id
is neither a string nor an integer as a notification (its models ignore the id): in both cases the
client waits for an answer that never comes. Here stdin is read by this module instead, and the SDK's
transport only writes (and claims fd 1):

- a message is one line ended by ``\\n`` (MCP, "Transports: stdio"); ``\\r\\n`` ends one too, and a
  bare ``\\r`` inside a line is JSON whitespace (RFC 8259, section 2), not the end of the line;
- a line that is not JSON, or not UTF-8 (JSON text is UTF-8: RFC 8259, section 8.1), is answered
  ``-32700 Parse error`` with id null (JSON-RPC 2.0, sections 5 and 5.1);
- JSON that is not a JSON-RPC message is answered ``-32600 Invalid Request``, with the request's id
  when it is a string or an integer and null otherwise (section 5);
- a request (a ``method`` and an ``id`` member) whose id is not a string or an integer (``1.5``,
  ``1.0``, ``true``, ``{}``, ``[]``, ``null``) is answered ``-32600 Invalid Request`` with id null: MCP
  (spec 2025-06-18 and later, "Requests") says a request id MUST be a string or integer and MUST NOT be
  null, and only an object without an ``id`` member is a notification (JSON-RPC 2.0, section 4.1);
- a response from the client (``result`` or ``error`` and no ``method``) that cannot be read is never
  answered, only logged: the server replies to requests only (section 5), and an error echoing the
  response's id would read, to the client, as the answer to its own request of that id.

The session goes on after each.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

import anyio
from mcp.os.win32.utilities import rebind_std_handle_to_fd
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

log = logging.getLogger(__name__)


class StdioServer(MCPServer):
    """The SDK's ``MCPServer``, whose stdio transport answers every request (see the module)."""

    async def run_stdio_async(self) -> None:
        """Serve over the process's stdin and stdout until stdin closes."""
        with _stdin_claimed() as stdin:
            # The SDK's transport reads an empty stdin (and ends its reader at once): this reads the real one.
            async with stdio_server(stdin=anyio.wrap_file(io.StringIO())) as (unused, write_stream):
                unused.close()
                messages_in, messages = anyio.create_memory_object_stream[SessionMessage | Exception](0)

                async def read_stdin() -> None:
                    async with messages_in:
                        async for line in anyio.wrap_file(stdin):  # bytes: split at LF only, CR stays
                            try:
                                message = message_in(_utf8(line))
                            except NotAMessage as refused:
                                if refused.answer is None:
                                    log.warning("stdio: a line dropped, not answered: %s", refused)
                                else:
                                    await write_stream.send(SessionMessage(refused.answer))
                            else:
                                await messages_in.send(SessionMessage(message))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(read_stdin)
                    lowlevel = self._lowlevel_server
                    await lowlevel.run(messages, write_stream, lowlevel.create_initialization_options())
                    tasks.cancel_scope.cancel()  # stdin is closed by now, unless the server ended first


class NotAMessage(Exception):
    """A line that is not an MCP message. ``answer`` is the JSON-RPC error that answers it, or None when
    it is not to be answered (a response from the client); the exception's text says what is wrong."""

    def __init__(self, reason: str, answer: JSONRPCError | None) -> None:
        super().__init__(reason)
        self.answer = answer


def message_in(line: str) -> JSONRPCMessage:
    """The MCP message one line of stdin holds (JSON whitespace around and inside it, CR included), as
    the SDK's models read it: ``{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}`` is a request,
    ``{"jsonrpc": "2.0", "method": "notifications/initialized"}`` a notification.

    Raises:
        NotAMessage: the line is not JSON, not a JSON-RPC message, a request whose id is no string or
            integer (``{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}``, answered
            ``{"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid Request: ..."}}``),
            or a response that cannot be read (not answered); see the module for the sources.
    """
    try:
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as problem:
        raise _unreadable(line, problem) from None
    if isinstance(message, JSONRPCNotification):  # or a request with an id the SDK's models ignored
        found = _object_in(line)
        if found is not None and "id" in found:
            kind = _json_kind(found["id"])
            raise NotAMessage(f"a request whose id is {kind}", _invalid_request(
                None, f"the request's id is {kind}; an MCP request's id must be a string or an integer"))
    return message


def _unreadable(line: str, problem: ValidationError) -> NotAMessage:
    """What a line the SDK's models could not read is: ``problem`` is their ValidationError
    (``json_invalid`` for a line that is not JSON)."""
    errors = problem.errors()
    if errors and errors[0]["type"] == "json_invalid":
        return NotAMessage("not JSON", JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
            code=PARSE_ERROR, message=f"Parse error: the line is not JSON ({errors[0]['msg']})")))
    found = _object_in(line)
    if found is not None and ("result" in found or "error" in found) and "method" not in found:
        return NotAMessage("a response from the client that is not a JSON-RPC 2.0 response object", None)
    ident = found.get("id") if found is not None else None
    return NotAMessage("no JSON-RPC message", _invalid_request(
        ident if isinstance(ident, int | str) and not isinstance(ident, bool) else None,
        "the line is not a JSON-RPC 2.0 request, notification or response object"))


def _object_in(line: str) -> dict[str, Any] | None:
    """The JSON object ``line`` holds, or None for other JSON (an array, a string...)."""
    try:
        found = json.loads(line)
    except (ValueError, RecursionError):  # JSON to the SDK's parser and not to Python's: never seen
        return None
    return found if isinstance(found, dict) else None


def _invalid_request(ident: int | str | None, why: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=ident, error=ErrorData(code=INVALID_REQUEST,
                                                                message=f"Invalid Request: {why}"))


def _json_kind(value: object) -> str:
    """What JSON ``value`` is, in words (never the value itself: the answer stays short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number with a fraction or an exponent"
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else "not a string or an integer"


def _utf8(line: bytes) -> str:
    """``line`` as text; raises NotAMessage (answered ``-32700 Parse error``) for bytes that are not UTF-8:
    JSON text is UTF-8 (RFC 8259, section 8.1). The SDK's transport read them as U+FFFD, and a tool
    stored the text so."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotAMessage("not UTF-8", JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
            code=PARSE_ERROR, message=f"Parse error: the line is not UTF-8 (byte {line[exc.start]:#04x} at "
                                      f"offset {exc.start})"))) from None


@contextmanager
def _stdin_claimed() -> Iterator[IO[bytes]]:
    """stdin, as bytes, for this transport alone: while serving, fd 0 reads the null device (handlers
    and child processes read EOF, never a line meant for the server, as the SDK's own claim of fd 0 has
    it) and the wire is read through a private duplicate; fd 0 is the wire again after. Where fd 0 is
    not stdin's or cannot be diverted, stdin is read in place."""
    wire = _divert_stdin()
    if wire is None:
        yield sys.stdin.buffer
        return
    try:
        # closefd=False: the worker thread reading it may outlive the session; the descriptor is never reused.
        yield os.fdopen(wire, "rb", closefd=False)
    finally:
        os.dup2(wire, 0)
        with suppress(OSError):
            rebind_std_handle_to_fd(0)


def _divert_stdin() -> int | None:
    """Point fd 0 at the null device and return a private duplicate of what it was, or None (nothing
    changed) where fd 0 is not stdin's or that cannot be done."""
    try:
        if sys.stdin.buffer.fileno() != 0:
            return None
        wire = _duplicate_above_std(0)
    except (AttributeError, OSError, ValueError):  # no stdin, a stdin without a descriptor, or a closed one
        return None
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
    except OSError:
        os.close(wire)
        return None
    with suppress(OSError):
        rebind_std_handle_to_fd(0)  # Windows: children inherit the Win32 handle, not fd 0; elsewhere nothing
    return wire


def _duplicate_above_std(fd: int) -> int:
    """A duplicate of ``fd``, not inherited by children, that cannot land on fd 0, 1 or 2."""
    if sys.platform == "win32":  # pragma: no cover
        duplicate = os.dup(fd)
        if duplicate <= 2:
            os.close(duplicate)
            raise OSError(f"the duplicate of fd {fd} landed on fd {duplicate}")
        return duplicate
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
