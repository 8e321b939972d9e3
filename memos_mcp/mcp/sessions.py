"""Opening MCP sessions over HTTP: counted and bounded per user before the SDK makes them.

The SDK makes a session for every request that opens one (a streamable-HTTP POST without
``Mcp-Session-Id``, the GET of a legacy SSE stream) and keeps it until the client ends it or it has been
idle for ``idle_timeout`` seconds, up to one limit for the whole server. So one user's key could fill
that limit and lock every other user out for half an hour, even while its own requests were refused
by the rate limit (the refusal came inside a session already made). ``SessionGate`` wraps both
transports:

- a request that would open a session counts against the caller's rate limit first; over it, it is
  answered ``429`` with ``Retry-After`` and no session is made (its ``initialize`` is then not counted
  a second time: ``RateLimit`` skips it);
- each user holds at most ``per_user`` open sessions; one more is answered ``429`` naming the limit
  until one ends (``DELETE /mcp``, the SSE stream closed) or has been idle for ``idle_timeout``.

A session is open from the answer that carries its id until a ``DELETE`` of it succeeds or, with no
request of it in flight, ``idle_timeout`` passes: the SDK's own rule (``StreamableHTTPSessionManager``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memos_mcp.auth import presented_key
from memos_mcp.errors import RateLimited, TooManySessions
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY
from memos_mcp.mcp.limits import RATE_LIMITED

if TYPE_CHECKING:
    from memos_mcp.rest.ratelimit import RateLimiter

SESSION_HEADER = "mcp-session-id"
RETRY_AFTER = 60  # seconds a user over its session bound is told to wait
SESSION_IDLE_SECONDS = 30 * 60  # the SDK closes a streamable-HTTP session idle this long (its default)


@dataclass
class _Session:
    last_seen: float
    key: str | None  # the API key that opened it: a session of a revoked key no longer counts
    in_flight: int = 0


@dataclass
class OpenSessions:
    """Each user's open sessions by id, over both transports; ``idle_timeout``: seconds after which the
    SDK closes a streamable-HTTP session with no request in flight (None: never)."""

    idle_timeout: float | None
    by_user: dict[str, dict[str, _Session]] = field(default_factory=dict)

    def open_count(self, user: str, now: float) -> int:
        sessions = self.by_user.get(user, {})
        if self.idle_timeout is not None:
            for sid in [s for s, v in sessions.items() if not v.in_flight and now - v.last_seen > self.idle_timeout]:
                del sessions[sid]
        return len(sessions)

    def find(self, user: str, sid: str) -> _Session | None:
        return self.by_user.get(user, {}).get(sid)


class SessionGate:
    """ASGI wrapper of an MCP transport app (``stream_opens``: whether a GET opens a session, as on the
    legacy SSE transport; else a POST without ``Mcp-Session-Id`` does). ``sessions``: the open sessions
    of every transport (one table, so that the bound covers both); ``rate``: the app's one limiter (None:
    no rate limit); ``per_user``: open sessions a user may hold; ``key_valid``: whether an API key still
    authenticates (called in a worker thread, only when a user is at its bound: the sessions a revoked
    key opened then stop counting, so a leaked key cannot keep its user locked out)."""

    def __init__(self, app: ASGIApp, sessions: OpenSessions, rate: RateLimiter | None, per_user: int,
                 key_valid: Callable[[str], bool], stream_opens: bool = False) -> None:
        self.app, self.sessions, self.rate, self.per_user = app, sessions, rate, per_user
        self.key_valid, self.stream_opens = key_valid, stream_opens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get(PRINCIPAL_SCOPE_KEY)
        if scope["type"] != "http" or not isinstance(user, str):
            await self.app(scope, receive, send)
            return
        method, sid = scope["method"], Headers(scope=scope).get(SESSION_HEADER)
        opens = method == "GET" if self.stream_opens else method == "POST" and sid is None
        if opens:
            await self._open(user, scope, receive, send)
        elif sid is not None and (session := self.sessions.find(user, sid)) is not None:
            await self._within(user, sid, session, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _at_bound(self, user: str) -> bool:
        if self.sessions.open_count(user, time.monotonic()) < self.per_user:
            return False
        held = self.sessions.by_user.get(user, {})
        keys = {s.key for s in held.values() if s.key is not None}
        valid = await anyio.to_thread.run_sync(lambda: {k for k in keys if self.key_valid(k)})
        for sid in [sid for sid, s in held.items() if s.key is not None and s.key not in valid]:
            del held[sid]
        return len(held) >= self.per_user

    async def _open(self, user: str, scope: Scope, receive: Receive, send: Send) -> None:
        if await self._at_bound(user):
            await _refused(TooManySessions(self.per_user, RETRY_AFTER), scope, receive, send)
            return
        if self.rate is not None:
            try:
                self.rate.hit(user)  # on the event loop, as the limiter requires
            except RateLimited as exc:
                await _refused(exc, scope, receive, send)
                return
        session = _Session(last_seen=time.monotonic(), key=presented_key(Headers(scope=scope)), in_flight=1)
        held = self.sessions.by_user.setdefault(user, {})
        opening = f"opening:{id(session)}"  # counted from now on: opens at once cannot pass the bound together
        held[opening] = session

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start" and not self.stream_opens and message["status"] < 400:
                sid = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
                if sid is not None:
                    held[sid] = session
                    held.pop(opening, None)
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            session.in_flight -= 1
            session.last_seen = time.monotonic()
            held.pop(opening, None)  # an SSE stream is its session: open while its GET is

    async def _within(self, user: str, sid: str, session: _Session, scope: Scope, receive: Receive,
                      send: Send) -> None:
        status = 0

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        session.in_flight += 1
        try:
            await self.app(scope, receive, noting)
        finally:
            session.in_flight -= 1
            session.last_seen = time.monotonic()
            # Ended by the client, or unknown to the SDK (expired): only an answer of the endpoint itself
            # says so, not a 404 of another path that happens to carry the session's id.
            endpoint = scope["path"] in (scope.get("root_path", ""), scope.get("root_path", "") + "/")
            if endpoint and ((scope["method"] == "DELETE" and 200 <= status < 300) or status == 404):
                self.sessions.by_user.get(user, {}).pop(sid, None)


async def _refused(exc: RateLimited, scope: Scope, receive: Receive, send: Send) -> None:
    """A JSON-RPC error (no id: no request was read) in a 429 answer with ``Retry-After``."""
    body = {"jsonrpc": "2.0", "id": None, "error": {
        "code": RATE_LIMITED, "message": f"{exc.code}: {exc.message}",
        "data": {"retry_after": exc.retry_after, "limit": exc.limit}}}
    await JSONResponse(body, status_code=429, headers=exc.headers)(scope, receive, send)
