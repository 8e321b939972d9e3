"""The web UI at ``/ui``: a fourth thin face over the memory core, beside MCP, REST and the CLI.

Server-rendered Jinja2 pages, made lively by htmx (boosted links and forms swap the page without a
reload) and a small stylesheet; the graph is drawn by cytoscape.js. Every asset is a file of this
package (``static/``): the UI works offline. Pages call the same ``MemoryService`` methods as the
other faces, as the signed-in user (``face.Face``); signing in takes an API key and opens a
session (``session.Sessions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from memos_mcp.bodies import bounded
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import PayloadTooLarge
from memos_mcp.ui.browse import BrowsePages
from memos_mcp.ui.cubes import CubePages
from memos_mcp.ui.face import PREFIX, STATIC, Bounds, Face, redirect, url
from memos_mcp.ui.memories import MemoryPages
from memos_mcp.ui.session import COOKIE

if TYPE_CHECKING:
    from memos_mcp.rest.ratelimit import RateLimiter

__all__ = ["PREFIX", "Bounds", "mount"]


class SignIn:
    """The sign-in page (an API key in, a session cookie out) and signing out."""

    def __init__(self, face: Face) -> None:
        self.face = face

    def routes(self) -> list[Route]:
        return [Route("/signin", self.form, methods=["GET"]), Route("/signin", self.sign_in, methods=["POST"]),
                Route("/signout", self.sign_out, methods=["POST"])]

    def _form(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        return self.face.render(request, "signin.html", {
            "token": self.face.sessions.sign_in_token(), "error": error,
            "next": _local(request.query_params.get("next"))}, None, status)

    async def form(self, request: Request) -> Response:
        if self.face.open_mode:
            return redirect(request, url("/"))
        return self._form(request)

    async def sign_in(self, request: Request) -> Response:
        try:
            form = await bounded(request, self.face.bounds.form).form()
        except PayloadTooLarge as exc:
            return self._form(request, exc.message, exc.status)
        token, key = str(form.get("csrf") or ""), str(form.get("key") or "").strip()
        if not self.face.sessions.sign_in_token_valid(token):
            return self._form(request, "This form has expired or did not come from this page: try again.", 403)
        user_id = await self.face.run(lambda: self.face.keys.authenticate(key)) if key else None
        if user_id is None:
            return self._form(request, "This API key is not valid (unknown or revoked).", 401)
        _, cookie = self.face.sessions.open(user_id, key)
        response = redirect(request, _local(str(form.get("next") or "")) or url("/"))
        self.face.set_cookie(request, response, cookie)
        return response

    async def sign_out(self, request: Request) -> Response:
        cookie = request.cookies.get(COOKIE)
        session = await self.face.run(lambda: self.face.sessions.find(cookie))
        try:
            form = await bounded(request, self.face.bounds.form).form()
        except PayloadTooLarge as exc:
            return Response(exc.message, status_code=exc.status)
        if session is not None and not self.face.sessions.csrf_valid(session, str(form.get("csrf") or "")):
            return Response("this form carried no valid CSRF token", status_code=403)
        self.face.sessions.close(cookie)
        response = redirect(request, url("/signin", signed_out=1))
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response


def _local(target: str | None) -> str:
    """A page to return to after signing in: only a path of the UI itself (no open redirect)."""
    return target if target and target.startswith(PREFIX + "/") and not target.startswith("//") else ""


def mount(service: MemoryService, keys: KeyRing, default_user: str, open_access: bool,
          session_seconds: int, bounds: Bounds, rate: RateLimiter | None = None) -> list[BaseRoute]:
    """The UI's routes and static files, mounted at ``/ui`` (and the bare ``/ui``, which leads there:
    the app redirects no other path); ``bounds`` caps the bodies posted, ``rate`` (the app's limiter)
    counts each page against its user's limit."""
    face = Face(service, keys, default_user, open_access, session_seconds, bounds, rate)
    routes = [
        *SignIn(face).routes(),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        *MemoryPages(face).routes(),
        *CubePages(face).routes(),
        *BrowsePages(face).routes(),
    ]
    return [Route(PREFIX, lambda request: RedirectResponse(PREFIX + "/"), methods=["GET"]),
            Mount(PREFIX, app=Router(routes, redirect_slashes=False))]
