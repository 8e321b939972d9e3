"""What every page of the web UI shares: who the visitor is (session or open loopback), the CSRF
check of every POST, calling the core off the event loop, rendering a template, and turning the
exception tree (``memos_mcp.errors``) into a page that says what went wrong.

The UI is a face like MCP and REST: each page makes the same ``MemoryService`` calls as the tools and
routes, as the signed-in user, so the core's access control decides what it may see and change.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote_plus, unquote_to_bytes, urlencode

import anyio.to_thread
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from memos_mcp import __version__
from memos_mcp.bodies import bounded
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.models import User
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import Forbidden, InvalidRequest, MemosError, NotFound, RateLimited
from memos_mcp.ui.session import COOKIE, Session, Sessions

if TYPE_CHECKING:
    from memos_mcp.rest.ratelimit import RateLimiter

T = TypeVar("T")
PREFIX = "/ui"
FORM_TYPE, MULTIPART_TYPE = "application/x-www-form-urlencoded", "multipart/form-data"
STATIC = files("memos_mcp.ui") / "static"
# Pages run only the package's own scripts, are never framed by another site (clickjacking) and post only
# to the server itself; nothing personal is kept in a cache.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass
class Visitor:
    """The signed-in person of a request: their session (CSRF token) and their user."""

    session: Session
    user: User

    @property
    def user_id(self) -> str:
        return self.user.user_id


Page = Callable[[Request, Visitor], Awaitable[Response]]


@dataclass(frozen=True)
class Bounds:
    """The largest body a POST may send, in bytes: ``form`` for every form (``rest.max_body_bytes``),
    ``upload`` for an export file imported (``server.ui_max_import_bytes``)."""

    form: int
    upload: int


class Face:
    """The UI's shared state: the service, the key ring, the sessions and the templates.
    ``open_access``: no sign-in while no key exists (loopback, or --allow-unauthenticated), as the API;
    ``rate``: the app's one limiter (None: none), which counts each page of a user with their API calls."""

    def __init__(self, service: MemoryService, keys: KeyRing, default_user: str, open_access: bool,
                 session_seconds: int, bounds: Bounds, rate: RateLimiter | None = None) -> None:
        self.service = service
        self.bounds = bounds
        self.rate = rate
        self.keys = keys
        self.default_user = default_user
        self.open_access = open_access
        self.sessions = Sessions(keys, session_seconds)
        self.templates = Environment(loader=PackageLoader("memos_mcp.ui"), autoescape=select_autoescape(),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.globals |= {"version": __version__, "url": url, "pretty": _pretty, "tags_text": tags_text}

    @property
    def open_mode(self) -> bool:
        """No sign-in: an open server without any key (requests act as the default user)."""
        return self.open_access and not self.keys.enabled

    async def run(self, call: Callable[[], T]) -> T:
        """A core call in a worker thread: the core is synchronous."""
        return await anyio.to_thread.run_sync(call)

    async def visitor(self, request: Request) -> tuple[Visitor | None, str | None]:
        """The visitor, and a new cookie to set when an open server made its session just now."""
        def find() -> tuple[Visitor | None, str | None]:
            session = self.sessions.find(request.cookies.get(COOKIE))
            cookie = None
            if session is None and self.open_mode:
                session, cookie = self.sessions.open(self.default_user, None)
            if session is None:
                return None, None
            try:
                user = self.service.access.user(session.user_id)
            except NotFound:  # the user is gone: so is the session
                self.sessions.close(request.cookies.get(COOKIE))
                return None, None
            return Visitor(session, user), cookie
        return await self.run(find)

    def page(self, handler: Page, limit: int | None = None, counted: bool = True,
             uploads: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint: signed in (else to the sign-in page), within the user's rate limit when ``counted``
        (else 429 with Retry-After), a POST body of at most ``limit`` bytes (``bounds.form`` when None;
        else 413) of percent-encoded UTF-8 text, or a ``multipart/form-data`` one where it takes
        ``uploads`` (else 400, ``check_form_text``), with a valid CSRF token (else 403), and a
        ``MemosError`` rendered as an error page with its status."""
        async def endpoint(request: Request) -> Response:
            visitor, cookie = await self.visitor(request)
            if visitor is None:  # back to this page after signing in (a form posted has no page to return to)
                back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(request, url("/signin", next=back if request.method == "GET" else None))
            try:
                if counted and self.rate is not None:
                    self.rate.hit(visitor.user_id)
                if request.method == "POST":
                    request = bounded(request, self.bounds.form if limit is None else limit)
                    await check_form_text(request, uploads)
                    await self.check_csrf(request, visitor.session)
                response = await handler(request, visitor)
            except RateLimited as exc:
                response = self.render(request, "error.html", {"error": exc}, visitor, status=exc.status)
                response.headers.update(exc.headers)
            except MemosError as exc:
                response = self.render(request, "error.html", {"error": exc}, visitor, status=exc.status)
            if cookie is not None:
                self.set_cookie(request, response, cookie)
            for name in ("Cache-Control", "X-Content-Type-Options"):  # downloads and JSON too, not only pages
                response.headers.setdefault(name, PAGE_HEADERS[name])
            return response
        return endpoint

    async def check_csrf(self, request: Request, session: Session) -> None:
        token = request.headers.get("x-csrf-token")
        if token is None:
            token = str((await request.form()).get("csrf") or "")
        if not self.sessions.csrf_valid(session, token):
            raise Forbidden("this form carried no valid CSRF token: reload the page and try again", field="csrf")

    def render(self, request: Request, template: str, context: Mapping[str, Any], visitor: Visitor | None,
               status: int = 200) -> HTMLResponse:
        body = self.templates.get_template(template).render(
            {"request": request, "visitor": visitor, "open_mode": self.open_mode, **context})
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    def set_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=self.sessions.lifetime, path=PREFIX, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    def route(self, path: str, handler: Page, methods: tuple[str, ...] = ("GET",), limit: int | None = None,
              counted: bool = True, uploads: bool = False) -> Route:
        return Route(path, self.page(handler, limit, counted, uploads), methods=list(methods))


async def check_form_text(request: Request, uploads: bool) -> None:
    """Refuses an ``application/x-www-form-urlencoded`` body whose names or values are not
    percent-encoded UTF-8 (the encoding of HTML's form submission): ``InvalidRequest`` (400) naming the
    field. Starlette would read such bytes as U+FFFD (escaped) or as Latin-1 (raw), and the text stored
    would differ from the text sent. A ``multipart/form-data`` body, whose text parts Starlette reads as
    Latin-1 when they are not UTF-8, is taken only where ``uploads`` (a file upload page: its file is read
    by its own reader); elsewhere it is refused (400, field ``content-type``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == MULTIPART_TYPE and not uploads:
        await request.body()  # a body over its bound is that first (413)
        raise InvalidRequest(f"this form is posted as {FORM_TYPE}; only a file upload takes {MULTIPART_TYPE}",
                             field="content-type")
    if media != FORM_TYPE:
        return
    for pair in (await request.body()).split(b"&"):
        name, _, value = pair.partition(b"=")
        field = unquote_plus(name.decode("latin-1"))
        for part in (name, value):
            try:
                part.decode("ascii")
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest(f"{field}: not percent-encoded UTF-8 text (byte {exc.object[exc.start]:#04x})",
                                     field=field) from exc


def url(path: str, **query: Any) -> str:
    """A UI address: ``path`` under /ui and the query parameters that are set."""
    kept = {k: v for k, v in query.items() if v not in (None, "", [])}
    return PREFIX + path + ("?" + urlencode(kept, doseq=True) if kept else "")


def redirect(request: Request, to: str) -> Response:
    """To another page after a POST (303), or for htmx a client-side navigation without a reload."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Location": json.dumps({"path": to, "target": "body"})})
    return RedirectResponse(to, status_code=303)


def text_field(form: FormData, name: str) -> str:
    """A text field of a posted form ('' when absent), its line breaks LF (``lf_lines``); a file where
    text belongs is refused."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name}: expected text", field=name)
    return lf_lines(value)


def lf_lines(text: str) -> str:
    """``text`` with every line break (CRLF, CR) a LF: a browser posts a textarea's line breaks as CRLF,
    and shows a stored CR as LF, so only LF comes back from a form as it was shown."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def tags_text(tags: list[str]) -> str:
    """Tags as the forms show them: one a line (a tag may hold a comma)."""
    return "\n".join(tags)


def tag_list(text: str) -> list[str]:
    """Tags typed one a line (``tags_text``); blank lines are none."""
    return [t.strip() for t in lf_lines(text).split("\n") if t.strip()]


def metadata_field(text: str) -> dict[str, Any]:
    """Metadata typed as a JSON object ('' is none)."""
    if not text.strip():
        return {}
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"metadata: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                             field="metadata") from exc
    except RecursionError as exc:
        raise InvalidRequest("metadata: nested too deeply", field="metadata") from exc
    except ValueError as exc:  # Python's limit on an integer's digits
        raise InvalidRequest(f"metadata: {exc}", field="metadata") from exc
    if not isinstance(found, dict):
        raise InvalidRequest("metadata: expected a JSON object such as {\"topic\": \"travel\"}", field="metadata")
    return found


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
