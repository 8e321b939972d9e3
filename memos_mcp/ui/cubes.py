"""The cube pages: the cubes one may read and the shares offered, creating and deleting cubes,
sharing (read or write) and revoking, exporting a cube (a JSONL download) and importing one (an
upload whose progress the page polls), and the users (admins only)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from memos_mcp.core.models import Cube, Permission
from memos_mcp.core.portability import (
    ImportResult,
    check_export,
    export_cube,
    export_lines,
    import_lines,
    line_limit,
)
from memos_mcp.errors import Forbidden, InvalidRequest, MemosError
from memos_mcp.ui.face import Face, Visitor, redirect, text_field, url


@dataclass
class Import:
    """One import in progress: memories written so far of ``total`` (0 until the header is read)."""

    user_id: str
    done: int = 0
    total: int = 0
    result: ImportResult | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total


class CubePages:
    def __init__(self, face: Face) -> None:
        self.face = face
        self.imports: dict[str, Import] = {}

    def routes(self) -> list[Route]:
        face = self.face
        return [
            face.route("/cubes", self.index),
            face.route("/cubes", self.create, ("POST",)),
            face.route("/cubes/{cube_id}", self.show),
            face.route("/cubes/{cube_id}/share", self.share, ("POST",)),
            face.route("/cubes/{cube_id}/revoke", self.revoke, ("POST",)),
            face.route("/cubes/{cube_id}/accept", self.accept, ("POST",)),
            face.route("/cubes/{cube_id}/decline", self.decline, ("POST",)),
            face.route("/cubes/{cube_id}/delete", self.confirm_delete),
            face.route("/cubes/{cube_id}/delete", self.delete, ("POST",)),
            face.route("/cubes/{cube_id}/export", self.export),
            face.route("/cubes/{cube_id}/import", self.upload, ("POST",), face.bounds.upload, uploads=True),
            face.route("/imports/{job}", self.import_progress, counted=False),  # polled while an import runs
            face.route("/users", self.users),
        ]

    async def index(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        cubes, offers = await self.face.run(lambda: (service.list_cubes(actor), service.list_shares(actor)))
        pending = [s for s in offers if s.state == "pending"]
        return self.face.render(request, "cubes.html", {"cubes": cubes, "offers": pending,
                                                        "created": request.query_params.get("created")}, visitor)

    async def create(self, request: Request, visitor: Visitor) -> Response:
        name = text_field(await request.form(), "name")
        cube = await self.face.run(lambda: self.face.service.create_cube(visitor.user_id, name))
        return redirect(request, url(f"/cubes/{cube.cube_id}"))

    async def show(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        cube = await self.face.run(lambda: self.face.service.get_cube(visitor.user_id, cube_id))
        manage = cube.permission in ("owner", "admin") and visitor.user.role != "guest"
        return self.face.render(request, "cube.html", {
            "cube": cube, "manage": manage, "writable": cube.permission in ("owner", "write", "admin"),
            "job": secrets.token_urlsafe(12), "permissions": list(Permission)}, visitor)

    async def share(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        form = await request.form()
        target = text_field(form, "user_id").strip()
        if not target:
            raise InvalidRequest("user_id: name the user to share with", field="user_id")
        permission = text_field(form, "permission") or Permission.READ.value
        if permission not in {p.value for p in Permission}:
            raise InvalidRequest("permission: expected read or write", field="permission")
        await self.face.run(lambda: self.face.service.share_cube(visitor.user_id, cube_id, target,
                                                                 Permission(permission)))
        return redirect(request, url(f"/cubes/{cube_id}", shared=target))

    async def revoke(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        target = text_field(await request.form(), "user_id")
        await self.face.run(lambda: self.face.service.unshare_cube(visitor.user_id, cube_id, target))
        return redirect(request, url(f"/cubes/{cube_id}"))

    async def accept(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        await self.face.run(lambda: self.face.service.accept_share(visitor.user_id, cube_id))
        return redirect(request, url("/memories", cube=cube_id))

    async def decline(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        await self.face.run(lambda: self.face.service.decline_share(visitor.user_id, cube_id))
        return redirect(request, url("/cubes"))

    async def confirm_delete(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        cube = await self.face.run(lambda: self.face.service.get_cube(visitor.user_id, cube_id))
        return self.face.render(request, "confirm.html", {
            "title": "Delete this cube?", "subject": f"{cube.name} ({cube.cube_id})",
            "action": url(f"/cubes/{cube_id}/delete"), "back": url(f"/cubes/{cube_id}"),
            "warning": "Every memory, message and relation in it is removed for good."}, visitor)

    async def delete(self, request: Request, visitor: Visitor) -> Response:
        cube_id = request.path_params["cube_id"]
        await self.face.run(lambda: self.face.service.delete_cube(visitor.user_id, cube_id))
        return redirect(request, url("/cubes"))

    async def export(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        cube_id = request.path_params["cube_id"]
        await self.face.run(lambda: service.get_cube(actor, cube_id))  # refused before the download starts
        lines = (line + "\n" for line in export_cube(service, actor, cube_id))
        return StreamingResponse(lines, media_type="application/x-ndjson", headers={
            "Content-Disposition": f'attachment; filename="{cube_id}.jsonl"'})

    async def upload(self, request: Request, visitor: Visitor) -> Response:
        """Import an uploaded export; the page polls ``/imports/{job}`` meanwhile."""
        cube_id = request.path_params["cube_id"]
        async with request.form() as form:  # closes the spooled upload
            upload, job = form.get("file"), text_field(form, "job")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InvalidRequest("file: choose an export file (.jsonl) to import", field="file")
            state = Import(visitor.user_id)
            if job:
                self.imports[job] = state
            try:
                state.result = await self.face.run(lambda: self._import(upload.file, visitor.user_id, cube_id,
                                                                        state))
            finally:
                self.imports.pop(job, None)
        return self.face.render(request, "imported.html", {"result": state.result, "cube_id": cube_id}, visitor)

    def _import(self, upload: IO[bytes], actor: str, cube_id: str, state: Import) -> ImportResult:
        """The uploaded export, checked whole first (a bad line anywhere imports nothing), then imported;
        errors name the line (``file: line N ...``)."""
        service = self.face.service
        service.access.writable(service.access.user(actor), cube_id)  # a refusal before the file is read
        try:
            check_export(service, export_lines(upload, line_limit(service)))
            upload.seek(0)
            return import_lines(service, actor, export_lines(upload, line_limit(service)), cube_id, state.progress)
        except MemosError as exc:
            raise type(exc)(f"file: {exc.message}", **exc.details) from exc

    async def import_progress(self, request: Request, visitor: Visitor) -> Response:
        state = self.imports.get(request.path_params["job"])
        if state is None or state.user_id != visitor.user_id:
            return JSONResponse({"state": "idle", "done": 0, "total": 0})
        with state.lock:
            return JSONResponse({"state": "running", "done": state.done, "total": state.total})

    async def users(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id

        def read() -> dict[str, Any]:
            users = service.list_users(actor)  # Forbidden unless admin
            return {"users": [(u, cubes_of(u.user_id)) for u in users], "keys": self.face.keys.list(actor)}

        def cubes_of(user_id: str) -> list[Cube] | None:
            try:
                return service.list_cubes(actor, user_id)
            except Forbidden:  # a user of a higher role (root): an admin may not act as them
                return None
        context = await self.face.run(read)
        return self.face.render(request, "users.html", context, visitor)
