"""The REST dialects' rate limiter applied to MCP over HTTP: one limiter for every face, so a user's
MCP requests and REST requests draw on the same counts.

A server middleware counts each MCP request (tool calls, listings, reads; not notifications, nor the
``initialize`` that ``sessions.SessionGate`` counted as it opened its session) of the authenticated
user; over the limit, the request gets a JSON-RPC error whose message says ``rate_limit_exceeded: ...
retry in N s`` and whose data carries ``retry_after`` (seconds). stdio and in-process sessions have no
HTTP request and are not limited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from memos_mcp.errors import RateLimited
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY

if TYPE_CHECKING:
    from memos_mcp.rest.ratelimit import RateLimiter  # imports the limits library: not on stdio's start

RATE_LIMITED = -32029  # an implementation-defined JSON-RPC server error code (-32000..-32099)


class RateLimit:
    """The server middleware; ``limiter`` is the app's one ``RateLimiter``."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        principal = getattr(ctx.request, "scope", {}).get(PRINCIPAL_SCOPE_KEY)
        # An initialize was counted as the request that opened its session (``sessions.SessionGate``).
        if ctx.request_id is not None and isinstance(principal, str) and ctx.method != "initialize":
            try:
                self.limiter.hit(principal)  # on the event loop, as the limiter requires
            except RateLimited as exc:
                raise MCPError(RATE_LIMITED, f"{exc.code}: {exc.message}",
                               {"retry_after": exc.retry_after, "limit": exc.limit}) from exc
        return await call_next(ctx)
