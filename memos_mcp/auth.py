"""Who may reach the HTTP app: Host/Origin validation (DNS-rebinding protection), API-key
authentication, and the start-up refusal to expose an unauthenticated server beyond loopback.

Both checks are pure ASGI middleware around the whole app, so the MCP transports, the admin routes
and the REST mirror see the same rules. The MCP sub-apps are handed the same
``TransportSecuritySettings`` and re-check with the SDK's own code: the two cannot disagree.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from memos_mcp.config import ServerSettings
from memos_mcp.core.keys import KeyRing
from memos_mcp.errors import ConfigError, MemosError, Unauthorized
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY

PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/docs/static/",)  # Swagger UI's own files
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SCHEMES = ("bearer", "token")


def error_response(exc: MemosError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON envelope every non-MCP HTTP error uses: ``{"error": {"code", "message", ...}}``."""
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)


# --- start-up ----------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def check_exposure(host: str, auth_enabled: bool, allow_unauthenticated: bool) -> None:
    """Refuse to serve anything but loopback without API keys: anyone who can reach the port
    would act as the default user."""
    if auth_enabled or allow_unauthenticated or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host} without authentication: anyone who reaches it would act as the "
        "default user. Set MEMOS_ADMIN_KEY or create a key (memos-mcp keys create --user NAME), bind "
        "127.0.0.1, or pass --allow-unauthenticated if a proxy in front authenticates.", host=host)


# --- Host and Origin ---------------------------------------------------------------------------

def _with_any_port(value: str, url: str) -> list[str]:
    """``value`` as given, and with any port unless it names one (the SDK matches exactly or
    ``base:*``)."""
    try:
        port = urlsplit(url).port
    except ValueError as exc:
        raise ConfigError(f"allowed host or origin {value!r} is not valid: {exc}", value=value) from exc
    return [value] if port is not None else [value, f"{value}:*"]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def transport_security(server: ServerSettings) -> TransportSecuritySettings:
    """Allowed Host headers: loopback, the bound host (unless a wildcard address) and the configured
    ones; allowed browser Origins: loopback and the configured ones."""
    hosts = [*LOOPBACK_HOSTS, *server.allowed_hosts]
    if server.host not in ("", "0.0.0.0", "::"):
        hosts.append(_bracketed(server.host))
    allowed_hosts = [h for host in hosts for h in _with_any_port(host, f"//{host}")]
    origins = [f"{scheme}://{host}" for scheme in ("http", "https") for host in LOOPBACK_HOSTS]
    allowed_origins = [o for origin in [*origins, *server.allowed_origins]
                       for o in _with_any_port(origin.rstrip("/"), origin)]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=list(dict.fromkeys(allowed_hosts)),
                                     allowed_origins=list(dict.fromkeys(allowed_origins)))


class HostGuard:
    """Refuses requests for other Host names (421) or from foreign browser Origins (403), with the
    SDK's own validator so that this check and the MCP transports' agree."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.validator = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = await self.validator.validate_request(Request(scope), is_post=False)
            if refused is not None:
                headers = Headers(scope=scope)
                if refused.status_code == 403:
                    code, message = "forbidden_origin", f"Origin {headers.get('origin')!r} is not allowed"
                else:
                    host = headers.get("host")
                    code, message = "misdirected_request", f"this server does not answer to Host {host!r}"
                response = JSONResponse({"error": {"code": code, "message": message}}, refused.status_code)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- API keys ----------------------------------------------------------------------------------

def presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer KEY`` or ``Authorization: Token KEY``."""
    scheme, _, key = headers.get("authorization", "").strip().partition(" ")
    return (key.strip() or None) if scheme.lower() in SCHEMES else None


AUTH_FAILURE_SCOPE_KEY = "memos.auth_failure"  # why a REST request has no principal, for its dialect to say
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="memos-mcp"'}


class ApiKeyAuth:
    """Resolves the presented key to a user and records it in the scope, under
    ``PRINCIPAL_SCOPE_KEY`` for our handlers and as ``scope["user"]`` for the SDK, which binds each
    MCP session to the user that opened it. Without any key configured, and where ``open_access``
    allows it (loopback or --allow-unauthenticated), requests act as the default user."""

    def __init__(self, app: ASGIApp, keys: KeyRing, default_user: str, open_access: bool,
                 enveloped: tuple[str, ...] = ()) -> None:
        self.app = app
        self.keys = keys
        self.default_user = default_user
        self.open_access = open_access
        self.enveloped = enveloped  # path prefixes of REST dialects, which answer 401 in their own envelope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes one: refuse rather than pass it on unchecked
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        # The catalog is synchronous SQLite and may wait on a writer: keep it off the event loop.
        user_id = await anyio.to_thread.run_sync(self._user, key)
        if user_id is None:
            reason = "unknown API key" if key else "an API key is required (Authorization: Bearer KEY)"
            if self.enveloped and scope["path"].startswith(self.enveloped):
                await self.app({**scope, AUTH_FAILURE_SCOPE_KEY: reason}, receive, send)
                return
            await error_response(Unauthorized(reason), CHALLENGE)(
                scope, receive, send)
            return
        token = AccessToken(token="", client_id=user_id, scopes=[], subject=user_id)
        scope = {**scope, PRINCIPAL_SCOPE_KEY: user_id, "user": AuthenticatedUser(token)}
        await self.app(scope, receive, send)

    def _user(self, key: str | None) -> str | None:
        if key is not None:
            return self.keys.authenticate(key)
        if self.open_access and not self.keys.enabled:
            return self.default_user
        return None


def principal(scope: Scope) -> str:
    """The authenticated user of a request that went through ``ApiKeyAuth``."""
    found = scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(found, str):
        raise Unauthorized("this request carries no authenticated user")
    return found
