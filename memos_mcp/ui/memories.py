"""The memory pages: a cube's memories (paged, filtered) or the hybrid search over them, one memory
(text, key, tags, metadata, sources, history, graph links), and editing, archiving and deleting it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from memos_mcp.core.checks import same_json
from memos_mcp.core.graph.service import GraphService
from memos_mcp.core.models import Cube, MemoryKind, MemoryStatus, MemoryType
from memos_mcp.errors import InvalidRequest
from memos_mcp.ui.face import Face, Visitor, lf_lines, metadata_field, redirect, tag_list, tags_text, text_field, url

PAGE_SIZE = 20
FILTERS = ("kind", "memory_type", "tags", "status", "time_from", "time_to")


def chosen_cube(cubes: list[Cube], wanted: str | None) -> str | None:
    """The cube asked for, else the default cube, else the first one."""
    if wanted:
        return wanted
    default = next((c for c in cubes if c.is_default), cubes[0] if cubes else None)
    return default.cube_id if default is not None else None


def filters_of(query: dict[str, str]) -> dict[str, Any]:
    """The core's search filters from the list page's query parameters (the core checks them)."""
    found: dict[str, Any] = {}
    for name in FILTERS:
        value = query.get(name, "").strip()
        if value:
            found[name] = tag_list(value) if name == "tags" else value
    return found


class MemoryPages:
    def __init__(self, face: Face) -> None:
        self.face = face

    def routes(self) -> list[Route]:
        face = self.face
        return [
            face.route("/", self.index),
            face.route("/memories", self.index),
            face.route("/memories", self.add, ("POST",)),
            face.route("/memories/{memory_id}", self.show),
            face.route("/memories/{memory_id}/edit", self.edit, ("POST",)),
            face.route("/memories/{memory_id}/status", self.status, ("POST",)),
            face.route("/memories/{memory_id}/delete", self.confirm_delete),
            face.route("/memories/{memory_id}/delete", self.delete, ("POST",)),
        ]

    async def index(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        query = dict(request.query_params)
        cubes = await self.face.run(lambda: service.list_cubes(actor))
        cube_id = chosen_cube(cubes, query.get("cube"))
        words = query.get("q", "").strip()
        try:
            page = max(1, int(query.get("page") or 1))
        except ValueError as exc:
            raise InvalidRequest("page: expected a whole number", field="page") from exc
        flt = filters_of(query)
        context: dict[str, Any] = {"cubes": cubes, "cube_id": cube_id, "q": words, "query": query,
                                   "kinds": list(MemoryKind), "types": list(MemoryType),
                                   "statuses": list(MemoryStatus), "page": page, "size": PAGE_SIZE}
        if cube_id is None:
            return self.face.render(request, "memories.html", {**context, "memories": [], "total": 0}, visitor)
        cube = await self.face.run(lambda: service.get_cube(actor, cube_id))
        context["cube"] = cube
        if words:
            found = await self.face.run(lambda: service.search(actor, words, cube_ids=[cube_id], top_k=PAGE_SIZE,
                                                               filters=flt or None))
            hits = sorted([*found.memories, *found.preferences], key=lambda h: -h.relativity)
            context |= {"memories": hits, "total": len(hits), "searched": True}
        else:
            listed = await self.face.run(lambda: service.list_memories(actor, cube_ids=[cube_id], page=page,
                                                                       size=PAGE_SIZE, filters=flt or None))
            context |= {"memories": listed.memories, "total": listed.total, "searched": False,
                        "pages": max(1, -(-listed.total // PAGE_SIZE))}
        return self.face.render(request, "memories.html", context, visitor)

    async def add(self, request: Request, visitor: Visitor) -> Response:
        """Remember a text in a cube (the same add as the tools: de-duplicated, extracted into the graph)."""
        form = await request.form()
        cube_id, text = text_field(form, "cube"), text_field(form, "memory")
        tags = tag_list(text_field(form, "tags"))
        added = await self.face.run(lambda: self.face.service.add_memory(
            visitor.user_id, cube_id=cube_id or None, memory_content=text, tags=tags or None))
        first = added.memories[0].id if added.memories else None
        return redirect(request, url(f"/memories/{first}") if first else url("/memories", cube=cube_id))

    async def show(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        memory_id = request.path_params["memory_id"]

        def read() -> dict[str, Any]:
            memory = service.get_memory(actor, memory_id)
            cube = service.get_cube(actor, memory.cube_id)
            history = service.history(actor, memory_id)
            relations = GraphService(service).relationships([memory], include_archived=True)[memory.id]
            return {"memory": memory, "cube": cube, "history": history, "relations": relations,
                    "writable": cube.permission in ("owner", "write", "admin")}
        context = await self.face.run(read)
        return self.face.render(request, "memory.html", context, visitor)

    async def edit(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        memory_id = request.path_params["memory_id"]
        form = await request.form()
        text = text_field(form, "memory")
        if not text.strip():
            raise InvalidRequest("memory: the text may not be empty", field="memory")
        tags = tag_list(text_field(form, "tags"))
        metadata = metadata_field(text_field(form, "metadata"))

        def save() -> bool:
            """Only what the form changed is sent: tags the text gave stay derived from it unless edited. A
            field is compared as the form showed it, so one left alone changes nothing even where a form
            cannot carry the stored value (a CR in the text, a line break in a tag)."""
            old = service.get_memory(actor, memory_id)
            new_text = text if text.strip() != lf_lines(old.memory) else None
            new_tags = tags if tags != tag_list(tags_text(old.tags)) else None
            new_metadata = None if same_json(metadata, old.metadata) else metadata
            if new_text is None and new_tags is None and new_metadata is None:
                return False
            service.update_memory(actor, memory_id, memory=new_text, tags=new_tags, metadata=new_metadata)
            return True
        saved = await self.face.run(save)
        return redirect(request, url(f"/memories/{memory_id}", saved=1 if saved else None,
                                     unchanged=None if saved else 1))

    async def status(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        memory_id = request.path_params["memory_id"]
        wanted = text_field(await request.form(), "status")
        if wanted not in {s.value for s in MemoryStatus}:
            raise InvalidRequest("status: expected activated or archived", field="status")
        await self.face.run(lambda: service.update_memory(actor, memory_id, status=wanted))
        return redirect(request, url(f"/memories/{memory_id}"))

    async def confirm_delete(self, request: Request, visitor: Visitor) -> Response:
        memory_id = request.path_params["memory_id"]
        memory = await self.face.run(lambda: self.face.service.get_memory(visitor.user_id, memory_id))
        return self.face.render(request, "confirm.html", {
            "title": "Delete this memory?", "subject": memory.memory, "action": url(f"/memories/{memory_id}/delete"),
            "back": url(f"/memories/{memory_id}"),
            "warning": "It is removed for good (its history keeps a DELETE entry)."}, visitor)

    async def delete(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        memory_id = request.path_params["memory_id"]

        def remove() -> str:
            memory = service.get_memory(actor, memory_id)
            service.delete_memory(actor, memory_id)
            return memory.cube_id
        cube_id = await self.face.run(remove)
        return redirect(request, url("/memories", cube=cube_id, deleted=1))
