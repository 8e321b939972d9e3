"""Who may reach the HTTP app: Host/Origin validation (DNS-rebinding protection), API-key
authentication, and the start-up refusal to expose an unauthenticated server beyond loopback.

Both checks are pure ASGI middleware around the whole app, so the MCP transports, the admin routes
and the REST mirror see the same rules. The MCP sub-apps are handed the same
``TransportSecuritySettings`` and re-check with the SDK's own code: the two cannot disagree.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from memos_mcp.config import ServerSettings
from memos_mcp.core.keys import KeyRing
from memos_mcp.errors import ConfigError, MemosError, Unauthorized
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY

PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/ui"})
PUBLIC_PREFIXES = ("/docs/static/", "/ui/")  # Swagger UI's own files; the web UI (its own sign-in: memos_mcp.ui)
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

# A Host header: a DNS name, an IPv4 address or a bracketed IPv6 address, and an optional port; nothing
# else (no user info, path or second host), so that "localhost:1@evil.com" is not read as localhost.
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
                   r"(?::(?P<port>[0-9]{1,5}))?")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``(name lower-cased, port or None)`` of a Host header, or None when it is not one."""
    found = _HOST.fullmatch(value.strip())
    if found is None:
        return None
    port = int(found["port"]) if found["port"] else None
    return (found["name"].lower(), port) if port is None or 0 < port < 65536 else None


def _split_origin(value: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port or None)`` of an Origin header (``scheme://host[:port]``), or None."""
    scheme, sep, rest = value.strip().partition("://")
    host = _split_host(rest) if sep and scheme.lower() in ("http", "https") else None
    return None if host is None else (scheme.lower(), *host)


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
    ones; allowed browser Origins: only the configured ones (a page of the server itself, same-origin,
    needs no listing: ``HostGuard`` passes it on without its Origin). Names are lower-cased."""
    hosts = [*LOOPBACK_HOSTS, *server.allowed_hosts]
    if server.host not in ("", "0.0.0.0", "::"):
        hosts.append(_bracketed(server.host))
    allowed_hosts = [h.lower() for host in hosts for h in _with_any_port(host, f"//{host}")]
    allowed_origins = [o.lower() for origin in server.allowed_origins
                       for o in _with_any_port(origin.rstrip("/"), origin)]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=list(dict.fromkeys(allowed_hosts)),
                                     allowed_origins=list(dict.fromkeys(allowed_origins)))


class HostGuard:
    """Refuses requests for other Host names (421) or from foreign browser Origins (403). Host and Origin
    are parsed whole (a name, an optional port; case does not matter) and passed on in canonical form, an
    Origin of the server's own page (same origin) dropped: the MCP transports then re-check them with
    the SDK's own validator, which compares text, and agree with this check."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.hosts = [h for h in (_split_host(a.removesuffix(":*")) for a in security.allowed_hosts) if h]
        self.origins = [o for o in (_split_origin(a.removesuffix(":*")) for a in security.allowed_origins) if o]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw_host, raw_origin = headers.get("host"), headers.get("origin")
        host = _split_host(raw_host) if raw_host else None
        if host is None or not any(_matches(host, allowed) for allowed in self.hosts):
            refusal = JSONResponse({"error": {"code": "misdirected_request",
                                              "message": f"this server does not answer to Host {raw_host!r}"}}, 421)
            await refusal(scope, receive, send)
            return
        origin = _split_origin(raw_origin) if raw_origin else None
        same_origin = origin is not None and origin[1:] == host
        if raw_origin and not same_origin and (origin is None or not any(
                origin[0] == allowed[0] and _matches(origin[1:], allowed[1:]) for allowed in self.origins)):
            refusal = JSONResponse({"error": {"code": "forbidden_origin",
                                              "message": f"Origin {raw_origin!r} is not allowed"}}, 403)
            await refusal(scope, receive, send)
            return
        canonical = (host[0] if host[1] is None else f"{host[0]}:{host[1]}").encode("latin-1")
        kept = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"origin")]
        kept.append((b"host", canonical))
        if raw_origin and not same_origin and origin is not None:
            port = "" if origin[2] is None else f":{origin[2]}"
            kept.append((b"origin", f"{origin[0]}://{origin[1]}{port}".encode("latin-1")))
        await self.app({**scope, "headers": kept}, receive, send)


def _matches(given: tuple[str, int | None], allowed: tuple[str, int | None]) -> bool:
    """A name and port against an allowed one (an allowed name without a port takes any port)."""
    return given[0] == allowed[0] and (allowed[1] is None or given[1] == allowed[1])


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
