"""The one ASGI app of ``memos-mcp serve``: MCP over streamable HTTP (``/mcp``) and legacy SSE
(``/sse``), ``/health``, the admin routes (keys, ``/v1/metrics``), the REST dialects with their
OpenAPI document (``/openapi.json``, rendered offline at ``/docs``), and optional CORS.

The lifespan owns the service handed in: it starts the embedder warm-up and the streamable HTTP
session manager, and closes the service (flushing the stores) once the requests in flight are
answered. Answers to MCP POSTs are SSE streams, and sse-starlette ends every stream the moment
uvicorn is asked to stop, answers in flight included; ``serve`` therefore ends the streams itself,
after those answers (``InFlight``, ``DrainingServer``).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Literal, TypeVar, cast

import anyio
import anyio.to_thread
import uvicorn
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_jsonable_python
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from memos_mcp import __version__, ui
from memos_mcp.auth import ApiKeyAuth, HostGuard, error_response, is_loopback, principal, transport_security
from memos_mcp.bodies import bounded
from memos_mcp.config import Settings
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.models import Role
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import (
    BackendUnavailable,
    InvalidRequest,
    MemosError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
)
from memos_mcp.mcp.server import build_server
from memos_mcp.mcp.sessions import SESSION_IDLE_SECONDS, OpenSessions, SessionGate
from memos_mcp.metrics import Metrics
from memos_mcp.rest import dialects
from memos_mcp.rest.base import Dialect, Guards
from memos_mcp.rest.openapi import RATE_HEADERS, Extra, docs_page, openapi_document, swagger_ui_assets
from memos_mcp.rest.ratelimit import RateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")
DRAIN_SECONDS = 30  # how long answers in flight may take once shutdown began


class InFlight:
    """Counts the POSTs being answered (MCP messages, admin calls), so that shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await app(scope, receive, send)
                return
            self.count += 1
            try:
                await app(scope, receive, send)
            finally:
                self.count -= 1
                if not self.count and self._idle is not None:
                    self._idle.set()
                    self._idle = None
        return counted

    async def finished(self) -> None:
        if self.count:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()


class BareMount(Mount):
    """A Mount that also answers its bare path: MCP clients are configured with ``.../mcp`` and
    POST there, while a plain Mount only matches ``/mcp/...`` and would answer with a redirect
    (a second round trip per message, and not every client follows a 307 on POST)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"] == scope.get("root_path", "") + self.path:
            scope = {**scope, "path": scope["path"] + "/"}
            match, child = super().matches(scope)
            return match, {**child, "path": scope["path"]}
        return super().matches(scope)


class KeyRequest(BaseModel):
    user_id: str = Field(description="the user the key acts as (created with a default cube if new)")
    role: Literal["admin", "user", "guest"] | None = Field(
        None, description="role of the user if created (default user); another than an existing user's is 409")


class Endpoints:
    """The app's own routes. Each core call runs in a worker thread: the core is synchronous."""

    def __init__(self, settings: Settings, service: MemoryService, keys: KeyRing, metrics: Metrics,
                 rest: Sequence[Dialect], rate: RateLimiter | None = None) -> None:
        self.settings = settings
        self.rate = rate
        self.rest = rest
        self.service = service
        self.keys = keys
        self.metrics = metrics
        self.warm_up: threading.Thread | None = None
        self._openapi: JSONResponse | None = None

    async def health(self, request: Request) -> JSONResponse:
        backends = {"catalog": await self._probe(self._catalog)}
        if self.warm_up is not None and self.warm_up.is_alive():
            backends |= {"vectors": "not yet", "embedder": "loading"}
        else:  # warmed up (both answer at once) or the warm-up failed (this retries and says why)
            backends["embedder"] = await self._probe(self._embedder)
            backends["vectors"] = await self._probe(self._vectors)
        backends["llm"] = "configured" if self.settings.llm.configured else "not configured"
        if self.rate is not None and self.rate.shared:
            backends["rate_limits"] = await self._rate_limits()
        failed = any(str(state).startswith("error") for state in backends.values())
        status = "error" if failed else "starting" if backends["embedder"] == "loading" else "ok"
        # "stores" is memio's name for the same report (its clients read /health that way).
        stores = dict.fromkeys(("facts", "history", "documents"), "ok" if not failed else status)
        body: dict[str, object] = {"status": status, "version": __version__, "backends": backends, "stores": stores}
        if failed:
            body["failed"] = [name for name, state in backends.items() if str(state).startswith("error")]
        return JSONResponse(body, status_code=503 if failed else 200)

    async def _rate_limits(self) -> str:
        """Shared counts (Redis): "ok", or "unreachable: ..." without failing the health check, since
        requests are then let through unlimited rather than refused."""
        assert self.rate is not None
        try:
            await anyio.to_thread.run_sync(self.rate.check)
        except BackendUnavailable as exc:
            return f"unreachable (requests not limited): {exc.message}"
        return "ok"

    def _catalog(self) -> str:
        self.service.catalog.check()  # every table, column and index, and a read
        return "ok"

    def _embedder(self) -> str:
        self.service.embedder.load()
        return "loaded"

    def _vectors(self) -> str:
        self.service.ready().check()  # the collection, every payload index, an ordered filtered scroll
        return "open"

    @staticmethod
    async def _probe(check: Callable[[], str]) -> str:
        try:
            return await anyio.to_thread.run_sync(check)
        except Exception as exc:  # health reports every failure, whatever raised it
            return f"error: {exc}"

    async def _admin(self, request: Request, what: str) -> None:
        """The key routes' guard: the request counts against the caller's rate limit (``RateLimited``,
        429) as on every other face, and a caller who is not an admin is refused (``Forbidden``, 403)."""
        actor = principal(request.scope)
        if self.rate is not None:
            self.rate.hit(actor)  # on the event loop, as the limiter requires
        await anyio.to_thread.run_sync(lambda: self.service.access.require_admin(self.service.access.user(actor),
                                                                                 what))

    async def _as_principal(self, request: Request, call: Callable[[str], T]) -> T:
        actor = principal(request.scope)
        return await anyio.to_thread.run_sync(lambda: call(actor))

    async def list_keys(self, request: Request) -> JSONResponse:
        await self._admin(request, "list API keys")
        return JSONResponse(to_jsonable_python({"keys": await self._as_principal(request, self.keys.list)}))

    async def create_key(self, request: Request) -> JSONResponse:
        await self._admin(request, "create API keys")  # before a byte of the body is read
        try:
            wanted = KeyRequest.model_validate_json(
                await bounded(request, self.settings.rest.max_body_bytes).body())
        except ValidationError as exc:
            raise InvalidRequest.naming_field(exc, hint='; send {"user_id": ..., "role"?: ...}') from exc
        role = Role(wanted.role) if wanted.role else None
        created = await self._as_principal(request, lambda actor: self.keys.create(actor, wanted.user_id, role))
        return JSONResponse(created.model_dump(mode="json"), status_code=201)

    async def revoke_key(self, request: Request) -> JSONResponse:
        await self._admin(request, "revoke API keys")
        key_id = request.path_params["key_id"]
        await self._as_principal(request, lambda actor: self.keys.revoke(actor, key_id))
        return JSONResponse({"deleted": 1, "id": key_id})

    async def read_metrics(self, request: Request) -> Response:
        """Admins only. JSON, or the Prometheus text format for ``Accept: text/plain`` (OpenMetrics for
        ``application/openmetrics-text``), as scrapers send."""
        stores = await self._as_principal(request, self._stores)
        accept = request.headers.get("accept", "")
        if ("text/plain" in accept or "application/openmetrics-text" in accept) and "application/json" not in accept:
            body, content_type = self.metrics.exposition(stores, accept)
            return Response(body, headers={"Content-Type": content_type})
        return JSONResponse(to_jsonable_python({**self.metrics.snapshot(), "stores": stores}))

    def _stores(self, actor: str) -> dict[str, object]:
        self.service.access.require_admin(self.service.access.user(actor), "read metrics")
        stats = self.service.stats()
        return {"catalog": stats["catalog"], "vectors": {k: v for k, v in stats["vectors"].items() if k != "path"},
                "embedding_batches": stats["embedding_batches"]}

    async def openapi(self, request: Request) -> JSONResponse:
        # Built on first use: a dialect model that cannot be described breaks this route, not the server.
        if self._openapi is None:
            self._openapi = JSONResponse(openapi_document(self.rest, EXTRAS, __version__))
        return self._openapi

    async def docs(self, request: Request) -> Response:
        return docs_page()


_OBJECT = {"type": "object"}
EXTRAS = [
    Extra("GET", "/health", "Liveness and the state of each backend (no authentication)", "server",
          response=_OBJECT, public=True),
    Extra("GET", "/openapi.json", "This document (no authentication)", "server", response=_OBJECT, public=True),
    Extra("GET", "/docs", "Interactive documentation, served offline (no authentication)", "server",
          response={"type": "string"}, public=True, media_types=("text/html",)),
    Extra("GET", "/admin/keys", "List API keys (admins)", "admin", response=_OBJECT),
    Extra("POST", "/admin/keys", "Create an API key, and its user if new (admins); the key is shown once",
          "admin", body=KeyRequest, response=_OBJECT, status=201),
    Extra("DELETE", "/admin/keys/{key_id}", "Revoke an API key (admins)", "admin", response=_OBJECT),
    Extra("GET", "/v1/metrics", "Request counts, latency percentiles per route, store sizes (admins); "
          "Prometheus text with Accept: text/plain", "admin", response=_OBJECT,
          media_types=("application/json", "text/plain")),
]


async def _memos_error(request: Request, exc: Exception) -> Response:
    error = cast(MemosError, exc)  # registered for MemosError and its subclasses
    return error_response(error, error.headers if isinstance(error, RateLimited) else None)


def _route_error(rest: Sequence[Dialect]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The router's own answers (no route for the path: 404; not for this method: 405) as core errors, in
    the envelope of the REST dialect whose paths the request's path starts like (the longest such
    start of an operation's path, else of a dialect's prefix: ``/product/nope`` is the product API's),
    else in the app's JSON error envelope; a 405 keeps its ``Allow`` header."""
    starts = [*sorted(((start, dialect) for dialect in rest for start in dialect.path_prefixes()),
                      key=lambda pair: -len(pair[0])),
              *sorted(((d.prefix + "/", d) for d in rest if d.prefix), key=lambda pair: -len(pair[0]))]

    async def answer(request: Request, exc: Exception) -> Response:
        http = cast(HTTPException, exc)
        path = request.url.path
        error = (MethodNotAllowed(f"{request.method} is not an operation of {path}; see /openapi.json")
                 if http.status_code == 405 else NotFound("route", path, "See /openapi.json for the routes.")
                 if http.status_code == 404 else MemosError(str(http.detail)))
        error.status = http.status_code
        dialect = next((d for start, d in starts if path.startswith(start)), None)
        response = dialect.envelope.error(error) if dialect is not None else error_response(error)
        response.headers.update(http.headers or {})
        return response
    return answer


def build_app(settings: Settings, service: MemoryService, keys: KeyRing,
              rest: Sequence[Dialect] | None = None) -> Starlette:
    """The app; ``rest`` are its REST dialects (by default every module of ``memos_mcp.rest``)."""
    rest = dialects() if rest is None else list(rest)
    options = settings.server
    limits = settings.rest
    # One limiter for every face (REST and MCP). The default limits guard keyed callers; an open loopback
    # server (no key at all: one person's agent) is limited only when limits are configured.
    configured = "rest" in settings.model_fields_set and "rate_limits" in limits.model_fields_set
    open_loopback = is_loopback(options.host)
    rate = RateLimiter(limits.rate_limits, applies=lambda: configured or not open_loopback or keys.enabled,
                       storage=limits.rate_limit_storage) if limits.rate_limits else None
    # One bound for the core calls of every face: a search is CPU-bound, and on a small machine a few at
    # once answer more per second, and sooner, than every request's search at once.
    threads = anyio.CapacityLimiter(options.core_threads)
    server = build_server(service, keys, settings.default_user_id, settings.read_only, rate, threads=threads)
    # A browser origin allowed by CORS must get past the Origin check too.
    security = transport_security(options.model_copy(update={"allowed_origins": [
        *options.allowed_origins, *(origin for origin in settings.rest.cors_origins if origin != "*")]}))
    mcp_app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/", stateless_http=options.stateless_http, json_response=options.json_response,
        transport_security=security, session_idle_timeout=SESSION_IDLE_SECONDS)
    sessions = OpenSessions(SESSION_IDLE_SECONDS)

    def key_valid(key: str) -> bool:
        return keys.authenticate(key) is not None

    if not options.stateless_http:  # stateless: no session to open, each request counted as it comes
        mcp_app = SessionGate(mcp_app, sessions, rate, options.max_sessions_per_user, key_valid)
    # The client learns the message endpoint from the stream: /sse/messages/?session_id=...
    sse_app = SessionGate(server.sse_app(sse_path="/", message_path="/messages/", transport_security=security),
                          sessions, rate, options.max_sessions_per_user, key_valid, stream_opens=True)
    metrics = Metrics()
    endpoints = Endpoints(settings, service, keys, metrics, rest, rate)
    in_flight = InFlight()
    guards = Guards(rate, limits.max_body_bytes, threads)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        endpoints.warm_up = service.warm_up()
        try:
            async with server.session_manager.run():
                log.info("serving MCP at /mcp (%s) and /sse", "stateless" if options.stateless_http else "sessions")
                yield
        finally:
            # A model still loading must not race the stores being closed.
            await anyio.to_thread.run_sync(endpoints.warm_up.join)
            await anyio.to_thread.run_sync(service.close)
            log.info("memory service closed")

    app = Starlette(
        routes=[
            Route("/health", endpoints.health, methods=["GET"]),
            Route("/admin/keys", endpoints.list_keys, methods=["GET"]),
            Route("/admin/keys", endpoints.create_key, methods=["POST"]),
            Route("/admin/keys/{key_id}", endpoints.revoke_key, methods=["DELETE"]),
            Route("/v1/metrics", endpoints.read_metrics, methods=["GET"]),
            Route("/openapi.json", endpoints.openapi, methods=["GET"]),
            Route("/docs", endpoints.docs, methods=["GET"]),
            Mount("/docs/static", app=StaticFiles(directory=swagger_ui_assets())),
            *(route for dialect in rest for route in dialect.routes(service, keys, guards)),
            BareMount("/mcp", app=mcp_app),
            BareMount("/sse", app=sse_app),
            # The web UI signs its visitors in itself (a session cookie), with the same rule for open servers.
            *ui.mount(service, keys, settings.default_user_id,
                     is_loopback(options.host) or options.allow_unauthenticated, options.ui_session_seconds,
                     ui.Bounds(limits.max_body_bytes, options.ui_max_import_bytes), rate),
        ],
        middleware=[
            Middleware(in_flight.middleware),
            Middleware(HostGuard, security=security),
            *cors(settings.rest.cors_origins),
            Middleware(ApiKeyAuth, keys=keys, default_user=settings.default_user_id,
                       open_access=is_loopback(options.host) or options.allow_unauthenticated,
                       enveloped=tuple(p for dialect in rest for p in dialect.path_prefixes())),
            Middleware(metrics.middleware),  # innermost: it reads the route the router matched
        ],
        exception_handlers={MemosError: _memos_error, HTTPException: _route_error(rest)},
        lifespan=lifespan,
    )
    # No redirect from a path with or without its trailing slash: clients follow a 307 keeping the
    # method, so DELETE /api/memories/{cube}/ (an empty id) became DELETE /api/memories/{cube}, the
    # whole cube. A path that is not a route is a 404.
    app.router.redirect_slashes = False
    app.state.in_flight = in_flight
    return app


def cors(origins: list[str]) -> list[Middleware]:
    """CORS answers (preflights before authentication: they carry no key), only if origins are set."""
    if not origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                       allow_headers=["Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version"],
                       expose_headers=[*RATE_HEADERS, "Retry-After", "Mcp-Session-Id"])]


class DrainingServer(uvicorn.Server):
    """uvicorn, except that on shutdown (SIGTERM, Ctrl-C) it stops accepting connections, lets the
    answers in flight finish (up to ``DRAIN_SECONDS``), and only then ends the SSE streams."""

    def __init__(self, config: uvicorn.Config, in_flight: InFlight) -> None:
        super().__init__(config)
        self.in_flight = in_flight
        AppStatus.enable_automatic_graceful_drain = False  # process-wide: this server ends the streams

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        if self.in_flight.count:
            log.info("letting %d request(s) in flight finish", self.in_flight.count)
            with anyio.move_on_after(DRAIN_SECONDS):
                await self.in_flight.finished()
        AppStatus.should_exit = True
        await super().shutdown(sockets)


def serve(app: Starlette, settings: Settings) -> None:
    """Run ``app`` under uvicorn on the configured host and port until SIGTERM or Ctrl-C. Logs go
    through our stderr handlers (uvicorn's own configuration sends the access log to stdout)."""
    if settings.server.host in ("", "0.0.0.0", "::") and not settings.server.allowed_hosts:
        log.warning("listening on every interface, but only loopback Host headers are accepted: list the "
                    "names clients use in server.allowed_hosts (MEMOS_SERVER__ALLOWED_HOSTS='[\"name\"]')")
    sys.setswitchinterval(settings.server.switch_interval)
    log.info("thread switch interval %g ms (server.switch_interval)", sys.getswitchinterval() * 1000)
    config = uvicorn.Config(app, host=settings.server.host, port=settings.server.port, log_config=None,
                            lifespan="on", server_header=False, timeout_graceful_shutdown=DRAIN_SECONDS)
    DrainingServer(config, app.state.in_flight).run()
