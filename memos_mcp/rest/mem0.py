"""The mem0-style dialect: ``/v1/memories...`` and ``/status``, answers in
``{success: true, data, message, timestamp}``, errors in ``{success: false, error: {code, message, details},
timestamp}`` with the mem0 codes. ``/health`` (no auth) is the app's own; ``/v1/metrics`` is built elsewhere.

A memory is ``{id, content, user_id, agent_id?, run_id?, metadata {source, timestamp, entities, ...caller keys},
relationships}``: ``entities`` are the memory's tags, caller keys win over the three derived ones, and ``relationships``
are the currently valid graph relations extracted from the memory (``{type: predicate, entity: object,
confidence, source: subject}``; empty when graph memory is off). ``embedding`` is only sent with
``?include_embedding=true``. ``POST /v1/memories`` answers the memories stored: with a language model
it waits for the extraction, unless ``async_mode: true`` asks for an empty answer at once.

Scopes, as in mem0: besides ``user_id`` (whose memories: the caller by default, another user for an
admin), a memory may belong to an ``agent_id`` and a ``run_id`` (a session). Both are stored with the
memory (as the metadata keys ``agent_id`` and ``run_id``, the keys the memio dialect's facts use, so
that every face can filter by them), come back as top-level fields, and narrow search, listing and
``DELETE /v1/memories`` (which, as in mem0, needs at least one of user_id, agent_id and run_id) to the
memories having them. Unknown body fields and query parameters are refused, naming the right name.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from memos_mcp import __version__
from memos_mcp.core.checks import check_id
from memos_mcp.core.graph.service import GraphRelation, GraphService
from memos_mcp.core.models import Memory, MessageIn, SearchHit
from memos_mcp.core.service import MemoryService
from memos_mcp.core.timeparse import Time
from memos_mcp.errors import InvalidRequest, MemosError
from memos_mcp.rest.base import Call, Dialect

STARTED = time.monotonic()  # the app imports its dialects once, as it is built
_CODES = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "MEMORY_NOT_FOUND",
          409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
          503: "SERVICE_UNAVAILABLE", 507: "INSUFFICIENT_STORAGE"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Mem0Envelope:
    def ok(self, data: Any, message: str, status: int) -> Response:
        return JSONResponse({"success": True, "data": data, "message": message, "timestamp": _now()},
                            status_code=status)

    def error(self, exc: MemosError) -> Response:
        """The mem0 code of the HTTP status (any not-found is MEMORY_NOT_FOUND); the core's own code
        stays in ``details.type``."""
        code = _CODES.get(exc.status, "INTERNAL_ERROR" if exc.status >= 500 else "INVALID_REQUEST")
        error = {"code": code, "message": exc.message, "details": {"type": exc.code, **exc.details}}
        return JSONResponse({"success": False, "error": error, "timestamp": _now()}, status_code=exc.status)


DIALECT = Dialect("mem0", "", Mem0Envelope())
SCOPES = ("agent_id", "run_id")  # stored as metadata keys of these names
_LIST_PAGE = 200  # the core's largest page, used to collect the ids a delete selects


# --- shapes ------------------------------------------------------------------------------------------
class Relationship(BaseModel):
    type: str = Field(description="the predicate, e.g. mentions, works_at")
    entity: str = Field(description="the object of the relation")
    confidence: float
    source: str = Field(description="the subject of the relation")


class Mem0Memory(BaseModel):
    id: str
    content: str
    user_id: str
    agent_id: str | None = Field(None, description="the agent the memory belongs to, when it was added with one")
    run_id: str | None = Field(None, description="the run (session) the memory belongs to, when added with one")
    metadata: dict[str, Any] = Field(description="source, timestamp (ISO 8601), entities, and the caller's keys")
    relationships: list[Relationship] = Field(default_factory=list, description="graph relations from this memory")
    embedding: list[float] | None = Field(None, description="only with ?include_embedding=true")
    score: float | None = Field(None, description="relevance to the query, 1 is best (search only)")
    event: Literal["ADD", "NONE"] | None = Field(None, description="add only, as in mem0: ADD for a new memory, "
                                                 "NONE for one already stored (same text and metadata)")


class AddBody(BaseModel):
    messages: list[MessageIn] | None = Field(None, description="a conversation to extract memories from")
    content: str | None = Field(None, description="a memory to store as given")
    async_mode: bool = Field(False, description="with a language model: answer at once (an empty list) and "
                             "extract in the background; by default the answer waits for the memories")
    infer: bool = Field(True, description="false: store the messages as given (one memory each, no language "
                        "model), as mem0's infer=False")
    user_id: str | None = Field(None, description="default: the authenticated user")
    agent_id: str | None = Field(None, description="the agent the memories belong to")
    run_id: str | None = Field(None, description="the run (session) the memories belong to; a content add "
                               "is indexed with the run's earlier facts")
    timestamp: Time | None = Field(None, description="when the content was said or happened (Unix seconds or "
                                   "ISO 8601): its event time; messages carry their own")
    metadata: dict[str, Any] | None = None


class SearchQuery(BaseModel):
    query: str = Field(min_length=1)
    user_id: str | None = None
    agent_id: str | None = Field(None, description="only this agent's memories")
    run_id: str | None = Field(None, description="only this run's memories")
    limit: int | None = Field(None, ge=1, le=1000, description="default: the configured search top_k")
    threshold: float | None = Field(None, ge=0, le=1, description="the least score (relativity) returned; "
                                    "default: the server's search.threshold")


class GetQuery(BaseModel):
    include_embedding: bool = False


class UpdateBody(BaseModel):
    content: str | None = None
    metadata: dict[str, Any] | None = Field(None, description="replaces the caller's metadata")


class Deleted(BaseModel):
    id: str
    deleted: bool


class ListQuery(BaseModel):
    page: int = Field(1, ge=1)
    size: int = Field(50, ge=1, le=200)
    agent_id: str | None = Field(None, description="only this agent's memories")
    run_id: str | None = Field(None, description="only this run's memories")


class DeleteAllQuery(BaseModel):
    user_id: str | None = Field(None, description="default: the authenticated user")
    agent_id: str | None = Field(None, description="only this agent's memories")
    run_id: str | None = Field(None, description="only this run's memories")


class DeletedAll(BaseModel):
    deleted: int = Field(description="how many memories were deleted")


class MemoryList(BaseModel):
    memories: list[Mem0Memory]
    total: int
    page: int
    size: int


class Status(BaseModel):
    status: str
    version: str
    uptime_seconds: float
    counts: dict[str, int] = Field(description="what the caller can read: memories, cubes, conversations")


def to_mem0(m: Memory, relations: Sequence[GraphRelation] = (), with_embedding: bool = False) -> Mem0Memory:
    stamp = (m.event_time or m.created_at).isoformat().replace("+00:00", "Z")
    meta = {"source": m.source.value, "timestamp": stamp, "entities": m.tags,
            **{k: v for k, v in m.metadata.items() if k not in SCOPES}}
    scopes = {k: str(m.metadata[k]) for k in SCOPES if m.metadata.get(k) is not None}
    return Mem0Memory(id=m.id, content=m.memory, user_id=m.user_id, metadata=meta, **scopes,
                      relationships=[Relationship(type=r.predicate, entity=r.object, confidence=r.confidence,
                                                  source=r.subject) for r in relations],
                      embedding=m.embedding if with_embedding else None,
                      score=m.relativity if isinstance(m, SearchHit) else None)


def _out(memory: Mem0Memory) -> dict[str, Any]:
    """Without ``embedding`` and ``score`` where they do not apply."""
    return memory.model_dump(mode="json", exclude_none=True)


def _shaped(service: MemoryService, memories: Sequence[Memory], with_embedding: bool = False) -> list[dict[str, Any]]:
    """mem0 objects with their relationships (one graph read for them all)."""
    relations = GraphService(service).relationships(memories)
    return [_out(to_mem0(m, relations[m.id], with_embedding)) for m in memories]


def scoped(agent_id: str | None, run_id: str | None) -> dict[str, str]:
    """The scope keys given, each checked as an id."""
    return {name: check_id(name, value) for name, value in (("agent_id", agent_id), ("run_id", run_id))
            if value is not None}


def scope_filters(agent_id: str | None, run_id: str | None) -> dict[str, Any] | None:
    """The core filters selecting the memories of the scopes given (None: no narrowing)."""
    scopes = scoped(agent_id, run_id)
    return {"metadata": scopes} if scopes else None


def _caller_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's metadata; the scope keys are fields of their own, not metadata."""
    for name in SCOPES:
        if name in (metadata or {}):
            raise InvalidRequest(f"metadata.{name} is reserved: give {name} as a field of its own",
                                 field=f"metadata.{name}")
    return dict(metadata or {})


# --- operations --------------------------------------------------------------------------------------
@DIALECT.op("POST", "/v1/memories", "Add a memory, or the memories of a conversation", body=AddBody,
            response=list[Mem0Memory], status=201, message="Memory added successfully")
async def add(call: Call[AddBody]) -> list[dict[str, Any]]:
    b = call.body
    metadata = {**_caller_metadata(b.metadata), **scoped(b.agent_id, b.run_id)}
    if b.timestamp is not None and b.messages:
        raise InvalidRequest("timestamp goes with content; give each message its own timestamp", field="timestamp")

    def run() -> list[dict[str, Any]]:
        result = call.service.add_memory(call.actor, user_id=b.user_id, messages=b.messages,
                                         memory_content=b.content, metadata=metadata or None, async_mode=b.async_mode,
                                         infer=b.infer,
                                         conversation_id=b.run_id if b.content else None,  # a fact: in its run
                                         chat_time=b.timestamp)
        return [{**shaped, "event": "NONE" if shaped["id"] in result.deduplicated else "ADD"}
                for shaped in _shaped(call.service, result.memories)]
    return await call.run(run)


@DIALECT.op("GET", "/v1/memories/search", "Search memories", query=SearchQuery, response=list[Mem0Memory])
async def search(call: Call[SearchQuery]) -> list[dict[str, Any]]:
    q = call.body

    def run() -> list[dict[str, Any]]:
        found = call.service.search(call.actor, q.query, user_id=q.user_id, top_k=q.limit, pref_top_k=q.limit,
                                    filters=scope_filters(q.agent_id, q.run_id), threshold=q.threshold)
        # Each list keeps its ranking; the merge takes the head of higher relativity first.
        hits = list(heapq.merge(found.memories, found.preferences, key=lambda h: -h.relativity))
        return _shaped(call.service, hits[:q.limit or len(hits)])
    return await call.run(run)


@DIALECT.op("GET", "/v1/memories/user/{user_id}", "A page of a user's memories", query=ListQuery,
            response=MemoryList)
async def of_user(call: Call[ListQuery]) -> dict[str, Any]:
    return await call.run(lambda: _page(call.service, call.actor, call.path["user_id"], call.body))


class ScopedListQuery(ListQuery):
    user_id: str | None = Field(None, description="default: the authenticated user")


@DIALECT.op("GET", "/v1/memories", "A page of a user's memories, narrowed by agent_id and run_id",
            query=ScopedListQuery, response=MemoryList)
async def of_scope(call: Call[ScopedListQuery]) -> dict[str, Any]:
    return await call.run(lambda: _page(call.service, call.actor, call.body.user_id, call.body))


def _page(service: MemoryService, actor: str, user_id: str | None, q: ListQuery) -> dict[str, Any]:
    page = service.list_memories(actor, user_id=user_id, page=q.page, size=q.size,
                                 filters=scope_filters(q.agent_id, q.run_id))
    return {"memories": _shaped(service, page.memories), "total": page.total, "page": page.page, "size": page.size}


@DIALECT.op("GET", "/v1/memories/{memory_id}", "One memory", query=GetQuery, response=Mem0Memory)
async def get(call: Call[GetQuery]) -> dict[str, Any]:
    wanted = call.body.include_embedding
    found = await call.run(lambda: _shaped(call.service, [call.service.get_memory(
        call.actor, call.path["memory_id"], with_embedding=wanted)], wanted))
    return found[0]


@DIALECT.op("PUT", "/v1/memories/{memory_id}", "Change a memory's content or metadata", body=UpdateBody,
            response=Mem0Memory, message="Memory updated successfully")
async def update(call: Call[UpdateBody]) -> dict[str, Any]:
    b, memory_id = call.body, call.path["memory_id"]

    def run() -> list[dict[str, Any]]:
        metadata = None
        if b.metadata is not None:  # the caller's metadata is replaced; the memory keeps its scopes
            with call.service.write_lock:
                kept = call.service.get_memory(call.actor, memory_id).metadata
                metadata = {**_caller_metadata(b.metadata), **{k: kept[k] for k in SCOPES if k in kept}}
                return _shaped(call.service, [call.service.update_memory(
                    call.actor, memory_id, memory=b.content, metadata=metadata)])
        return _shaped(call.service, [call.service.update_memory(call.actor, memory_id, memory=b.content)])
    return (await call.run(run))[0]


@DIALECT.op("DELETE", "/v1/memories/{memory_id}", "Delete a memory", response=Deleted,
            message="Memory deleted successfully")
async def delete(call: Call[Any]) -> Deleted:
    memory_id = call.path["memory_id"]
    await call.run(lambda: call.service.delete_memory(call.actor, memory_id))
    return Deleted(id=memory_id, deleted=True)


@DIALECT.op("DELETE", "/v1/memories", "Delete every memory of a user, narrowed by agent_id and run_id",
            query=DeleteAllQuery, response=DeletedAll, message="Memories deleted successfully")
async def delete_all(call: Call[DeleteAllQuery]) -> DeletedAll:
    q = call.body
    if q.user_id is None and q.agent_id is None and q.run_id is None:  # as mem0: no wipe by an empty request
        raise InvalidRequest("give at least one of user_id, agent_id or run_id", field="user_id")

    def run() -> int:
        filters = scope_filters(q.agent_id, q.run_id)
        with call.service.write_lock:
            ids: list[str] = []
            page = 1
            while True:
                found = call.service.list_memories(call.actor, user_id=q.user_id, filters=filters, page=page,
                                                   size=_LIST_PAGE)
                ids += [m.id for m in found.memories if m.user_id == (q.user_id or call.actor)]
                if page >= found.pages:
                    break
                page += 1
            return call.service.delete_memories(call.actor, ids)  # all or none; a guest is refused
    return DeletedAll(deleted=await call.run(run))


@DIALECT.op("GET", "/status", "Version, uptime and the caller's counts", response=Status)
async def status(call: Call[Any]) -> Status:
    def counts() -> dict[str, int]:
        service = call.service
        return {"memories": service.list_memories(call.actor, size=1).total,
                "cubes": len(service.list_cubes(call.actor)),
                "conversations": len(service.list_conversations(call.actor))}
    return Status(status="ok", version=__version__, uptime_seconds=round(time.monotonic() - STARTED, 3),
                  counts=await call.run(counts))
