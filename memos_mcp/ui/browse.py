"""The pages that only read: conversations (the stored messages), tasks (adds queued, running, done
or failed, with their changes and errors) and the graph (an entity's neighbourhood, drawn)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from memos_mcp.core.graph.service import GraphRelation, GraphService
from memos_mcp.core.models import TaskStatus
from memos_mcp.core.timeparse import parse_time
from memos_mcp.errors import InvalidRequest
from memos_mcp.ui.face import Face, Visitor, url
from memos_mcp.ui.memories import chosen_cube

MESSAGES = 1000  # the newest messages a conversation's page shows
TASKS = 200


def graph_elements(relations: list[GraphRelation]) -> list[dict[str, Any]]:
    """Cytoscape elements of relations: a node per entity, an edge per relation (``invalid`` set on
    relations a newer fact ended)."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[str, dict[str, Any]] = {}
    for rel in relations:
        for name in (rel.subject, rel.object):
            nodes.setdefault(name, {"data": {"id": "n:" + name, "label": name}})
        edges.setdefault(rel.id, {"data": {
            "id": "e:" + rel.id, "source": "n:" + rel.subject, "target": "n:" + rel.object,
            "label": rel.predicate, "invalid": rel.invalid_at is not None}})
    return [*nodes.values(), *edges.values()]


class BrowsePages:
    def __init__(self, face: Face) -> None:
        self.face = face

    def routes(self) -> list[Route]:
        face = self.face
        return [
            face.route("/conversations", self.conversations),
            face.route("/conversations/{conversation_id}", self.conversation),
            face.route("/tasks", self.tasks),
            face.route("/graph", self.graph),
        ]

    async def conversations(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        cubes = await self.face.run(lambda: service.list_cubes(actor))
        cube_id = chosen_cube(cubes, request.query_params.get("cube"))
        found = await self.face.run(lambda: service.list_conversations(actor, cube_ids=[cube_id])) \
            if cube_id else []
        return self.face.render(request, "conversations.html", {"cubes": cubes, "cube_id": cube_id,
                                                                "conversations": found}, visitor)

    async def conversation(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        conversation_id = request.path_params["conversation_id"]
        cube_id = request.query_params.get("cube") or None
        messages = await self.face.run(lambda: service.get_messages(
            actor, conversation_id, cube_ids=[cube_id] if cube_id else None, limit=MESSAGES))
        return self.face.render(request, "conversation.html", {
            "conversation_id": conversation_id, "cube_id": cube_id, "messages": messages,
            "highlight": request.query_params.get("message")}, visitor)

    async def tasks(self, request: Request, visitor: Visitor) -> Response:
        tasks = await self.face.run(lambda: self.face.service.list_tasks(visitor.user_id, TASKS))
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in {s.value for s in TaskStatus}:
            raise InvalidRequest("status: expected queued, running, done or failed", field="status")
        shown = [t for t in tasks if wanted is None or t.status == wanted]
        return self.face.render(request, "tasks.html", {"tasks": shown, "status": wanted}, visitor)

    async def graph(self, request: Request, visitor: Visitor) -> Response:
        service, actor = self.face.service, visitor.user_id
        query = request.query_params
        cubes = await self.face.run(lambda: service.list_cubes(actor))
        cube_id = chosen_cube(cubes, query.get("cube"))
        entity = (query.get("entity") or "").strip()
        depth_text = query.get("depth") or "1"
        if depth_text not in ("1", "2"):
            raise InvalidRequest("depth: expected 1 or 2", field="depth")
        at: datetime | None = None
        if query.get("at"):
            try:
                at = parse_time(query["at"])
            except ValueError as exc:
                raise InvalidRequest(f"at: {exc}", field="at") from exc
        graphs = GraphService(service)

        def read() -> dict[str, Any]:
            entities = graphs.entities(actor, cube_id=cube_id, limit=500) if cube_id else []
            relations: list[GraphRelation] = []
            if entity and cube_id:
                relations = graphs.search(actor, entity=entity, depth=int(depth_text), cube_id=cube_id).relations
                if at is not None:  # what held then and a newer fact ended since: drawn as invalidated
                    known = {r.id for r in relations}
                    relations += [r for r in graphs.search(actor, entity=entity, depth=int(depth_text),
                                                           cube_id=cube_id, at=at).relations if r.id not in known]
            return {"entities": entities, "relations": relations}
        context = await self.face.run(read)
        return self.face.render(request, "graph.html", {
            **context, "cubes": cubes, "cube_id": cube_id, "entity": entity, "depth": depth_text,
            "at": query.get("at") or "", "elements": graph_elements(context["relations"]),
            "search_url": url("/graph")}, visitor)
