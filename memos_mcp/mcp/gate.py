"""What every MCP handler goes through: who is asking, a worker thread for the synchronous core,
and core errors turned into tool errors the model can act on.

Identity: ``remember_request`` (a server middleware) records each request's transport object in a
context variable for the handler it wraps. Over HTTP that is the Starlette request, whose ASGI scope
holds the user the auth middleware authenticated; on stdio and in-process there is none, and the
configured default user acts.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.from_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from memos_mcp.errors import InvalidRequest, MemosError, NotFound, Unauthorized

T = TypeVar("T")

# The HTTP auth middleware puts the authenticated user id here, in the ASGI scope.
PRINCIPAL_SCOPE_KEY = "memos.principal"
_REQUEST: ContextVar[Any] = ContextVar("memos_mcp_request", default=None)


async def remember_request(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    token = _REQUEST.set(ctx.request)
    try:
        return await call_next(ctx)
    finally:
        _REQUEST.reset(token)


def tool_error(error: MemosError) -> Exception:
    """A tool's error: the core's ``"<code>: <message>"`` as the tool result's error text."""
    return ToolError(_described(error))


class Gate:
    """``threads``: how many core calls run at once in worker threads (None: anyio's default limiter)."""

    def __init__(self, default_user: str, threads: anyio.CapacityLimiter | None = None) -> None:
        self.default_user = default_user
        self.threads = threads

    def principal(self) -> str:
        """The acting user: the configured user on stdio and in-process, the key's user over HTTP."""
        request = _REQUEST.get()
        if request is None:
            return self.default_user
        principal = getattr(request, "scope", {}).get(PRINCIPAL_SCOPE_KEY)
        if not isinstance(principal, str):
            raise Unauthorized("this request carries no authenticated user")
        return principal

    async def run(self, call: Callable[[str], T], as_error: Callable[[MemosError], Exception] = tool_error) -> T:
        """Run ``call(actor)`` in a worker thread; a core error becomes ``as_error(error)``: a ToolError
        for tools, and for resources and prompts the error their managers pass on. Look the
        service's methods up inside ``call`` (``lambda actor: service.search(actor, ...)``): over stdio
        that lookup opens the stores (``core.lazy_service``), which may fail or take a while."""
        try:
            actor = self.principal()
            return await anyio.to_thread.run_sync(lambda: call(actor), limiter=self.threads)
        except MemosError as exc:
            raise as_error(exc) from exc

    @staticmethod
    def progress(ctx: Context[Any]) -> Callable[[int, int], None]:
        """A progress callback for the worker thread (the SDK drops it when nobody asked for progress)."""
        def report(done: int, total: int) -> None:
            anyio.from_thread.run(ctx.report_progress, float(done), float(total))
        return report

    @staticmethod
    def text_progress(ctx: Context[Any]) -> Callable[[str], None]:
        """A callback for text as it is written: each piece is a progress notification whose message is
        the piece and whose progress is the length written so far (no total)."""
        written = 0

        def report(text: str) -> None:
            nonlocal written
            written += len(text)
            anyio.from_thread.run(lambda: ctx.report_progress(float(written), None, text))
        return report


def _described(error: MemosError) -> str:
    return f"{error.code}: {error.message}"


def prompt_error(error: MemosError) -> Exception:
    """A prompt's error: ``-32602 Invalid params`` with the core's ``"<code>: <message>"``."""
    return MCPError(INVALID_PARAMS, _described(error))


def resource_error(error: MemosError) -> Exception:
    """A resource read's error, as the MCP specification (2026-07-28, SEP-2164) has them: ``NotFound``
    is the SDK's ``ResourceNotFoundError``, answered ``-32602 Invalid params`` with the URI in
    ``data.uri``; ``InvalidRequest`` (a bad cursor) is ``-32602`` as well; the rest stay the SDK's
    resource error (``-32603``). The message is the core's ``"<code>: <message>"``."""
    if isinstance(error, NotFound):
        return ResourceNotFoundError(_described(error))
    if isinstance(error, InvalidRequest):
        return MCPError(INVALID_PARAMS, _described(error))
    return ResourceError(_described(error))
