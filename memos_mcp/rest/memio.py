"""memio-style stores under ``/v1``: facts, history, documents and graph, thin over the memory core.

Mapping onto the core (one store, the same data every transport sees):

* **Facts** (``/v1/facts``) are the core memories of kind ``fact`` (added as ``memory_content``,
  so a fact added here is found by every other dialect and by MCP, and facts extracted from
  conversations show up here). ``agent_id`` lives in ``metadata.agent_id`` and filters on it.
  A fact is one memory: content longer than the core's ``chunk_size`` is refused (store long text
  as a document). Adding text already stored with the same metadata (agent_id included) returns the
  existing fact (the core de-duplicates); other metadata makes a fact of its own.
* **History** (``/v1/history``): a session is a core conversation; its messages are stored and
  turned into memories by the core before the answer (with a language model too: the answer lists
  the memory ids, so it waits for the extraction). Session search is the core search restricted to memories of
  that conversation. Deleting a session deletes its stored messages; memories made from them stay.
* **Documents** (``/v1/documents``): a document is the set of core memories whose metadata carry
  ``memio_store: "document"`` and its ``doc_id``; the core chunks long content, each chunk being one
  memory with the same metadata and its position in ``sources[0].chunk_index`` (with the whitespace
  around it in ``gap`` and ``tail``). GET reassembles the exact text posted, DELETE removes every chunk,
  PUT replaces them all. A document's chunks are its own: two documents may share text, and deleting
  one leaves the other whole.
  These memories are of core kind ``fact`` (the core adds ``memory_content`` as facts), so the
  facts routes leave out anything marked as a document.
* **Graph** (``/v1/graph``): the core's graph memory. A triple is a relation; its ``metadata`` carries
  its ``confidence`` (the only key accepted on input), the ``memory_ids`` it was extracted from, its
  ``cube_id`` and ``valid_at``. Reads cover every cube the user can read, triples are added to the
  user's default cube, ``DELETE /v1/graph`` clears the graphs of the cubes the user owns. With
  ``graph.enabled`` false every route answers 501 ``not_supported``.

Errors, whatever the route: ``{"error", "detail", "provider": "memos-mcp", "operation"}`` with
404, 422 (any invalid input), 401, 403, 409, 413, 429, 501 and 502 (a store or backend failure).
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from memos_mcp.core.checks import check_id
from memos_mcp.core.graph.service import GraphEntity, GraphRelation, GraphService, TripleIn
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.models import Memory, SearchHit
from memos_mcp.core.service import MemoryService
from memos_mcp.core.text import is_blank
from memos_mcp.core.timeparse import Time
from memos_mcp.errors import Conflict, InvalidRequest, MemosError, NotFound, PayloadTooLarge
from memos_mcp.rest.base import Call, Dialect

PROVIDER = "memos-mcp"
DOC_MARK = "memio_store"  # metadata key marking the chunks of a document
DOC_ID = "doc_id"
AGENT_ID = "agent_id"
PAGE = 200  # the core lists at most 200 memories a page
ID_PATTERN = r"^[A-Za-z0-9\-_.:@]{1,128}$"

_operation: ContextVar[str] = ContextVar("memio_operation", default="unknown")


# --- envelope ------------------------------------------------------------------------------------

class ErrorBody(BaseModel):
    error: str = Field(description="not_found, invalid_request, not_supported, provider_error, unauthorized, "
                                   "forbidden, conflict, payload_too_large, rate_limited, storage_error")
    detail: str
    provider: str = PROVIDER
    operation: str = Field(description="the operation that failed")


def error_status(exc: MemosError) -> tuple[int, str]:
    """memio's status and code of a core error: invalid input is 422, backend failures are 502, a
    storage failure (full disk) is 507 ``storage_error``."""
    if exc.status == 400:
        return 422, exc.code
    if exc.status in (501, 507):
        return exc.status, exc.code
    if exc.status >= 500:
        return 502, "provider_error"
    return exc.status, "rate_limited" if exc.status == 429 else exc.code


class MemioEnvelope:
    """Success: the result itself; errors: memio's flat error object naming the operation."""

    def ok(self, data: Any, message: str, status: int) -> Response:
        return JSONResponse(data, status_code=status)

    def error(self, exc: MemosError) -> Response:
        status, code = error_status(exc)
        body = ErrorBody(error=code, detail=exc.message, operation=_operation.get())
        return JSONResponse(body.model_dump(), status_code=status)


class _Named:
    """An operation's ASGI app, run with the operation's name recorded for the error envelope."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _operation.set(self.name)
        try:
            await self.app(scope, receive, send)
        finally:
            _operation.reset(token)


class MemioDialect(Dialect):
    """A dialect whose errors name the operation (its handler's name): each route's app records it
    before anything, parsing included, can fail."""

    def routes(self, service: MemoryService, keys: KeyRing, *args: Any, **kwargs: Any) -> list[Route]:
        return [Route(route.path, _Named(route.app, op.handler.__name__), methods=[op.method], name=route.name)
                for op, route in zip(self.operations, super().routes(service, keys, *args, **kwargs), strict=True)]


DIALECT = MemioDialect("memio", "/v1", MemioEnvelope())


# --- models --------------------------------------------------------------------------------------

Metadata = dict[str, Any]


class FactCreate(BaseModel):
    content: str = Field(min_length=1, description="the fact, one short statement")
    user_id: str | None = Field(None, description="the user it belongs to (admin keys only; default: the caller)")
    agent_id: str | None = Field(None, description="kept in metadata.agent_id")
    metadata: Metadata | None = None


class FactUpdate(BaseModel):
    content: str | None = Field(None, min_length=1)
    agent_id: str | None = None
    metadata: Metadata | None = Field(None, description="replaces the fact's metadata (agent_id is kept)")


class FactQuery(BaseModel):
    user_id: str | None = None
    agent_id: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class FactDeleteQuery(BaseModel):
    user_id: str | None = None
    agent_id: str | None = None


class FactSearch(BaseModel):
    query: str = Field(min_length=1)
    user_id: str | None = None
    agent_id: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    filters: dict[str, Any] | None = Field(None, description="core search filters (memory_type, tags, "
                                                             "time_from, time_to, metadata, ...)")


class Fact(BaseModel):
    id: str
    content: str
    user_id: str
    agent_id: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    score: float | None = Field(None, description="relevance to the query (search only), 1 is best")
    created_at: datetime
    updated_at: datetime


class Deleted(BaseModel):
    deleted: int = Field(description="how many items were deleted")


class MessageIn(BaseModel):
    role: Literal["user", "assistant", "system", "tool"]
    content: str = Field(min_length=1)
    metadata: Metadata | None = Field(None, description="accepted, not stored")
    timestamp: Time | None = None
    name: str | None = None


class MessagesAdd(BaseModel):
    messages: list[MessageIn] = Field(min_length=1)
    user_id: str | None = None


class MessagesAdded(BaseModel):
    session_id: str
    message_ids: list[str]
    memory_ids: list[str] = Field(description="memories the core made from the messages")


class MessageOut(BaseModel):
    id: str
    role: str
    content: str
    name: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    timestamp: datetime


class SessionMessages(BaseModel):
    session_id: str
    messages: list[MessageOut]


class MessagesQuery(BaseModel):
    user_id: str | None = None
    limit: int = Field(100, ge=1, le=10_000)


class UserQuery(BaseModel):
    user_id: str | None = None


class Sessions(BaseModel):
    sessions: list[str]


class SessionSearch(BaseModel):
    query: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=1000)
    user_id: str | None = None


class SessionHit(BaseModel):
    id: str = Field(description="the memory made from the session")
    content: str
    role: str | None = None
    score: float
    timestamp: datetime


class SessionResults(BaseModel):
    session_id: str
    results: list[SessionHit]


class DocumentCreate(BaseModel):
    content: str = Field(min_length=1)
    doc_id: str | None = Field(None, pattern=ID_PATTERN, description="default: a new UUID")
    metadata: Metadata | None = None
    user_id: str | None = None


class DocumentUpdate(BaseModel):
    content: str = Field(min_length=1)
    metadata: Metadata | None = Field(None, description="default: the document's metadata is kept")
    user_id: str | None = None


class DocumentQuery(BaseModel):
    user_id: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class DocumentSearch(BaseModel):
    query: str = Field(min_length=1)
    user_id: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    filters: dict[str, Any] | None = None


class Document(BaseModel):
    id: str = Field(description="the doc_id")
    content: str = Field(description="the whole document (search: the best matching chunk)")
    metadata: Metadata = Field(default_factory=dict)
    chunks: int = Field(description="how many core memories hold it")
    score: float | None = None
    created_at: datetime
    updated_at: datetime


class Triple(BaseModel):
    subject: str = Field(min_length=1, max_length=200)
    predicate: str = Field(min_length=1, max_length=200)
    object: str = Field(min_length=1, max_length=200)
    metadata: Metadata | None = Field(None, description="only confidence (0-1) is kept")


class TriplesAdd(BaseModel):
    triples: list[Triple] = Field(min_length=1, max_length=1000)
    user_id: str | None = None


class GraphSearch(BaseModel):
    query: str = Field(min_length=1)
    user_id: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    depth: Literal[1, 2] = Field(1, description="hops from the entities the query names")


class TripleQuery(BaseModel):
    user_id: str | None = None
    limit: int = Field(100, ge=1, le=10000)


class TripleOut(BaseModel):
    id: str
    subject: str
    predicate: str
    object: str
    metadata: Metadata = Field(description="confidence, the memory_ids it came from, cube_id, valid_at")
    score: float | None = Field(None, description="search only: confidence, halved per extra hop")


class Triples(BaseModel):
    triples: list[TripleOut]


class Node(BaseModel):
    name: str
    type: str
    aliases: list[str]


class EntityTriples(BaseModel):
    entity: str
    nodes: list[Node]
    triples: list[TripleOut]


class GraphFound(BaseModel):
    triples: list[TripleOut]
    nodes: list[Node]
    scores: list[float] = Field(description="one per triple")


# --- helpers -------------------------------------------------------------------------------------

def _is_document(memory: Memory) -> bool:
    return memory.metadata.get(DOC_MARK) == "document"


def _is_fact(memory: Memory) -> bool:
    return memory.kind == "fact" and not _is_document(memory)


def _fact(memory: Memory, score: float | None = None) -> Fact:
    meta = {k: v for k, v in memory.metadata.items() if k != AGENT_ID}
    agent = memory.metadata.get(AGENT_ID)
    return Fact(id=memory.id, content=memory.memory, user_id=memory.user_id,
                agent_id=None if agent is None else str(agent), metadata=meta, score=score,
                created_at=memory.created_at, updated_at=memory.updated_at)


def _metadata_filter(filters: dict[str, Any]) -> dict[str, Any]:
    """The caller's ``filters.metadata`` (an object), to which a dialect adds its own keys."""
    given = filters.get("metadata") or {}
    if not isinstance(given, dict):
        raise InvalidRequest("filters.metadata must be an object of keys to values", field="filters.metadata")
    return dict(given)


def _fact_filters(agent_id: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    filters = dict(extra or {})
    metadata = _metadata_filter(filters)
    if agent_id is not None:
        metadata[AGENT_ID] = agent_id
    filters["kind"] = ["fact"]
    if metadata:
        filters["metadata"] = metadata
    return filters


def _doc_filters(doc_id: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    filters = dict(extra or {})
    metadata = {**_metadata_filter(filters), DOC_MARK: "document"}
    if doc_id is not None:
        metadata[DOC_ID] = doc_id
    return {**filters, "metadata": metadata}


def _scan(service: MemoryService, actor: str, filters: dict[str, Any], *, user_id: str | None = None,
          cube_ids: Sequence[str] | None = None, keep: Callable[[Memory], bool] = lambda m: True,
          limit: int | None = None) -> list[Memory]:
    """Every memory (or the first ``limit``) matching ``filters`` and ``keep``, page by page."""
    found: list[Memory] = []
    page = 1
    while True:
        batch = service.list_memories(actor, user_id=user_id, cube_ids=cube_ids, page=page, size=PAGE,
                                      filters=filters)
        found.extend(m for m in batch.memories if keep(m))
        if limit is not None and len(found) >= limit:
            return found[:limit]
        if page >= batch.pages or not batch.memories:
            return found
        page += 1


def _own_cubes(service: MemoryService, actor: str, user_id: str | None) -> list[str]:
    return [c.cube_id for c in service.list_cubes(actor, user_id) if c.permission == "owner"]


def _chunk_index(memory: Memory) -> int:
    index = memory.sources[0].chunk_index if memory.sources else None
    return index or 0


def _text(ordered: Sequence[Memory]) -> str:
    """A document's exact text from its chunks in order: each chunk's source keeps the whitespace
    before it and, for the last, after it (chunks stored before that kept nothing: one space)."""
    parts: list[str] = []
    for index, memory in enumerate(ordered):
        source = memory.sources[0] if memory.sources else None
        gap = source.gap if source is not None else None
        parts += [(" " if index else "") if gap is None else gap, memory.memory]
    last = ordered[-1].sources[0].tail if ordered[-1].sources else None
    return "".join(parts) + (last or "")


def _document(doc_id: str, chunks: Sequence[Memory], score: float | None = None,
              passage: str | None = None) -> Document:
    ordered = sorted(chunks, key=_chunk_index)
    meta = {k: v for k, v in ordered[0].metadata.items() if k not in (DOC_MARK, DOC_ID)}
    return Document(id=doc_id, content=passage if passage is not None else _text(ordered),
                    metadata=meta, chunks=len(ordered), score=score,
                    created_at=min(m.created_at for m in ordered), updated_at=max(m.updated_at for m in ordered))


def _doc_chunks(service: MemoryService, actor: str, doc_id: str, user_id: str | None) -> list[Memory]:
    """The chunks of one document, all from one cube (the first that holds the id), or NotFound."""
    chunks = _scan(service, actor, _doc_filters(doc_id), user_id=user_id)
    if not chunks:
        raise NotFound("document", doc_id, "List documents with GET /v1/documents.")
    return [m for m in chunks if m.cube_id == chunks[0].cube_id]


def _user_metadata(metadata: Metadata | None, *reserved: str) -> Metadata:
    return {k: v for k, v in (metadata or {}).items() if k not in reserved}


def _check_fact_size(service: MemoryService, content: str) -> None:
    if len(content.strip()) > service.settings.chunk_size:
        raise InvalidRequest(f"content: a fact holds at most {service.settings.chunk_size} characters; "
                             "store long text as a document (POST /v1/documents)", field="content")


def _store_document(service: MemoryService, actor: str, doc_id: str, content: str, metadata: Metadata,
                    user_id: str | None) -> list[Memory]:
    """Adds the document's chunks: memories of its own (the core never shares a chunk of one text
    with another memory, and metadata with another doc_id is never the same)."""
    meta = {**_user_metadata(metadata, DOC_MARK, DOC_ID), DOC_MARK: "document", DOC_ID: doc_id}
    return service.add_memory(actor, user_id=user_id, memory_content=content, metadata=meta).memories


# --- facts ---------------------------------------------------------------------------------------

@DIALECT.op("POST", "/facts", "Create a fact", body=FactCreate, response=Fact, status=201)
async def create_fact(call: Call[FactCreate]) -> Fact:
    body = call.body
    _check_fact_size(call.service, body.content)
    meta = _user_metadata(body.metadata, AGENT_ID)
    agent = body.agent_id if body.agent_id is not None else (body.metadata or {}).get(AGENT_ID)
    if agent is not None:
        meta[AGENT_ID] = agent
    result = await call.run(lambda: call.service.add_memory(call.actor, user_id=body.user_id,
                                                            memory_content=body.content, metadata=meta))
    memory = result.memories[0]
    if not _is_fact(memory):
        raise Conflict(f"this text is already stored as memory '{memory.id}', which is not a fact",
                       memory_id=memory.id)
    return _fact(memory)


@DIALECT.op("GET", "/facts", "List facts", query=FactQuery, response=list[Fact])
async def list_facts(call: Call[FactQuery]) -> list[Fact]:
    q = call.body
    found = await call.run(lambda: _scan(call.service, call.actor, _fact_filters(q.agent_id), user_id=q.user_id,
                                         keep=_is_fact, limit=q.limit))
    return [_fact(m) for m in found]


@DIALECT.op("POST", "/facts/search", "Semantic search", body=FactSearch, response=list[Fact])
async def search_facts(call: Call[FactSearch]) -> list[Fact]:
    body = call.body

    def run() -> list[SearchHit]:
        # Documents share the core kind of facts: ask for enough to fill the limit without them.
        documents = call.service.list_memories(call.actor, user_id=body.user_id, size=1,
                                               filters=_doc_filters()).total
        found = call.service.search(call.actor, body.query, user_id=body.user_id,
                                    top_k=min(1000, body.limit + documents), include_preference=False,
                                    filters=_fact_filters(body.agent_id, body.filters))
        return [h for h in found.memories if _is_fact(h)][:body.limit]

    return [_fact(h, h.relativity) for h in await call.run(run)]


async def _fact_of(call: Call[Any]) -> Memory:
    fact_id = call.path["fact_id"]
    try:
        memory = await call.run(lambda: call.service.get_memory(call.actor, fact_id))
    except NotFound:
        memory = None
    if memory is None or not _is_fact(memory):
        raise NotFound("fact", fact_id, "List facts with GET /v1/facts.")
    return memory


@DIALECT.op("GET", "/facts/{fact_id}", "Get a fact", response=Fact)
async def get_fact(call: Call[Any]) -> Fact:
    return _fact(await _fact_of(call))


@DIALECT.op("PUT", "/facts/{fact_id}", "Update a fact", body=FactUpdate, response=Fact)
async def update_fact(call: Call[FactUpdate]) -> Fact:
    body = call.body
    old = await _fact_of(call)
    if body.content is not None:
        _check_fact_size(call.service, body.content)
    metadata: Metadata | None = None
    if body.metadata is not None or body.agent_id is not None:
        metadata = (_user_metadata(body.metadata, AGENT_ID) if body.metadata is not None
                    else _user_metadata(old.metadata, AGENT_ID))
        agent = body.agent_id if body.agent_id is not None else old.metadata.get(AGENT_ID)
        if agent is not None:
            metadata[AGENT_ID] = agent
    return _fact(await call.run(lambda: call.service.update_memory(call.actor, old.id, memory=body.content,
                                                                   metadata=metadata)))


@DIALECT.op("DELETE", "/facts/{fact_id}", "Delete a fact", response=Deleted)
async def delete_fact(call: Call[Any]) -> Deleted:
    memory = await _fact_of(call)
    await call.run(lambda: call.service.delete_memory(call.actor, memory.id))
    return Deleted(deleted=1)


@DIALECT.op("DELETE", "/facts", "Delete all facts", query=FactDeleteQuery, response=Deleted)
async def delete_facts(call: Call[FactDeleteQuery]) -> Deleted:
    q = call.body

    def run() -> int:
        cubes = _own_cubes(call.service, call.actor, q.user_id)
        if not cubes:
            return 0
        found = _scan(call.service, call.actor, _fact_filters(q.agent_id), user_id=q.user_id, cube_ids=cubes,
                      keep=_is_fact)
        return call.service.delete_memories(call.actor, [m.id for m in found])

    return Deleted(deleted=await call.run(run))


# --- history -------------------------------------------------------------------------------------

@DIALECT.op("POST", "/history/sessions/{sid}/messages", "Add messages", body=MessagesAdd,
            response=MessagesAdded, status=201)
async def add_messages(call: Call[MessagesAdd]) -> MessagesAdded:
    sid = call.path["sid"]
    messages = [{"role": m.role, "content": m.content, "name": m.name, "timestamp": m.timestamp}
                for m in call.body.messages]
    result = await call.run(lambda: call.service.add_memory(call.actor, user_id=call.body.user_id,
                                                            messages=messages, conversation_id=sid,
                                                            async_mode=False))
    return MessagesAdded(session_id=sid, message_ids=result.message_ids, memory_ids=result.added)


@DIALECT.op("GET", "/history/sessions/{sid}/messages", "Get messages", query=MessagesQuery,
            response=SessionMessages)
async def get_messages(call: Call[MessagesQuery]) -> SessionMessages:
    sid = call.path["sid"]
    found = await call.run(lambda: call.service.get_messages(call.actor, sid, user_id=call.body.user_id,
                                                             limit=call.body.limit))
    if not found:
        raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
    return SessionMessages(session_id=sid, messages=[
        MessageOut(id=m.id, role=m.role, content=m.content, name=m.name, timestamp=m.chat_time or m.created_at)
        for m in found])


@DIALECT.op("GET", "/history/sessions", "List sessions", query=UserQuery, response=Sessions)
async def list_sessions(call: Call[UserQuery]) -> Sessions:
    found = await call.run(lambda: call.service.list_conversations(call.actor, user_id=call.body.user_id))
    return Sessions(sessions=list(dict.fromkeys(str(c["conversation_id"]) for c in found)))


@DIALECT.op("POST", "/history/sessions/{sid}/search", "Search session", body=SessionSearch,
            response=SessionResults)
async def search_session(call: Call[SessionSearch]) -> SessionResults:
    sid, body = call.path["sid"], call.body

    def run() -> list[SearchHit]:
        if not call.service.get_messages(call.actor, sid, user_id=body.user_id, limit=1):
            raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
        found = call.service.search(call.actor, body.query, user_id=body.user_id, top_k=body.limit,
                                    pref_top_k=body.limit, filters={"conversation_id": sid})
        # Each list keeps its ranking; the merge takes the head of higher relativity first.
        return list(heapq.merge(found.memories, found.preferences, key=lambda h: -h.relativity))[:body.limit]

    return SessionResults(session_id=sid, results=[
        SessionHit(id=h.id, content=h.memory, role=h.sources[0].role if h.sources else None, score=h.relativity,
                   timestamp=h.event_time or h.created_at) for h in await call.run(run)])


@DIALECT.op("DELETE", "/history/sessions/{sid}", "Delete session", query=UserQuery, response=Deleted)
async def delete_session(call: Call[UserQuery]) -> Deleted:
    sid = call.path["sid"]
    count = await call.run(lambda: call.service.clear_chat_history(call.actor, sid, user_id=call.body.user_id))
    if not count:
        raise NotFound("session", sid, "List sessions with GET /v1/history/sessions.")
    return Deleted(deleted=count)


@DIALECT.op("DELETE", "/history/sessions", "Delete all sessions", query=UserQuery, response=Deleted)
async def delete_sessions(call: Call[UserQuery]) -> Deleted:
    return Deleted(deleted=await call.run(lambda: call.service.clear_chat_history(call.actor,
                                                                                  user_id=call.body.user_id)))


# --- documents -----------------------------------------------------------------------------------

@DIALECT.op("POST", "/documents", "Create a document", body=DocumentCreate, response=Document, status=201)
async def create_document(call: Call[DocumentCreate]) -> Document:
    body = call.body
    doc_id = body.doc_id or str(uuid.uuid4())

    def run() -> list[Memory]:
        check_id("doc_id", doc_id)
        with call.service.write_lock:  # the id check and the write, together
            if _scan(call.service, call.actor, _doc_filters(doc_id), user_id=body.user_id, limit=1):
                raise Conflict(f"document '{doc_id}' already exists; replace it with PUT /v1/documents/{doc_id}",
                               doc_id=doc_id)
            return _store_document(call.service, call.actor, doc_id, body.content, body.metadata or {},
                                   body.user_id)

    return _document(doc_id, await call.run(run))


@DIALECT.op("GET", "/documents", "List documents", query=DocumentQuery, response=list[Document])
async def list_documents(call: Call[DocumentQuery]) -> list[Document]:
    q = call.body

    def run() -> list[Document]:
        groups: dict[tuple[str, str], list[Memory]] = {}
        for memory in _scan(call.service, call.actor, _doc_filters(), user_id=q.user_id):
            groups.setdefault((memory.cube_id, str(memory.metadata.get(DOC_ID))), []).append(memory)
        return [_document(doc_id, chunks) for (_, doc_id), chunks in groups.items()][:q.limit]

    return await call.run(run)


@DIALECT.op("POST", "/documents/search", "Semantic search", body=DocumentSearch, response=list[Document])
async def search_documents(call: Call[DocumentSearch]) -> list[Document]:
    body = call.body

    def run() -> list[Document]:
        found = call.service.search(call.actor, body.query, user_id=body.user_id, top_k=min(1000, body.limit * 5),
                                    include_preference=False, filters=_doc_filters(extra=body.filters))
        best: dict[tuple[str, str], SearchHit] = {}
        for hit in found.memories:  # best first: keep each document's best chunk
            best.setdefault((hit.cube_id, str(hit.metadata.get(DOC_ID))), hit)
        return [_document(doc_id, [hit], hit.relativity, hit.memory)
                for (_, doc_id), hit in list(best.items())[:body.limit]]

    return await call.run(run)


@DIALECT.op("GET", "/documents/{doc_id}", "Get a document", query=UserQuery, response=Document)
async def get_document(call: Call[UserQuery]) -> Document:
    doc_id = call.path["doc_id"]
    return _document(doc_id, await call.run(lambda: _doc_chunks(call.service, call.actor, doc_id,
                                                                call.body.user_id)))


@DIALECT.op("PUT", "/documents/{doc_id}", "Update a document", body=DocumentUpdate, response=Document)
async def update_document(call: Call[DocumentUpdate]) -> Document:
    doc_id, body = call.path["doc_id"], call.body

    def run() -> list[Memory]:
        with call.service.write_lock:
            old = _doc_chunks(call.service, call.actor, doc_id, body.user_id)
            if is_blank(body.content):
                raise InvalidRequest("content is empty (it has no visible character)", field="content")
            limit = call.service.settings.max_memory_size
            if len(body.content) > limit:
                raise PayloadTooLarge(f"content has {len(body.content)} characters; the limit is {limit} "
                                      "(max_memory_size)", field="content")
            before = _document(doc_id, old)
            metadata = body.metadata if body.metadata is not None else before.metadata
            # first: unchanged chunks are then written again, not shared
            call.service.delete_memories(call.actor, [m.id for m in old])
            return _store_document(call.service, call.actor, doc_id, body.content, metadata, body.user_id)

    return _document(doc_id, await call.run(run))


@DIALECT.op("DELETE", "/documents/{doc_id}", "Delete a document", query=UserQuery, response=Deleted)
async def delete_document(call: Call[UserQuery]) -> Deleted:
    doc_id = call.path["doc_id"]

    def run() -> int:
        with call.service.write_lock:
            chunks = _doc_chunks(call.service, call.actor, doc_id, call.body.user_id)
            return call.service.delete_memories(call.actor, [m.id for m in chunks])

    return Deleted(deleted=await call.run(run))


@DIALECT.op("DELETE", "/documents", "Delete all documents", query=UserQuery, response=Deleted)
async def delete_documents(call: Call[UserQuery]) -> Deleted:
    def run() -> int:
        cubes = _own_cubes(call.service, call.actor, call.body.user_id)
        if not cubes:
            return 0
        with call.service.write_lock:
            found = _scan(call.service, call.actor, _doc_filters(), user_id=call.body.user_id, cube_ids=cubes)
            call.service.delete_memories(call.actor, [m.id for m in found])
        return len({(m.cube_id, m.metadata.get(DOC_ID)) for m in found})

    return Deleted(deleted=await call.run(run))


# --- graph ---------------------------------------------------------------------------------------

def _triple_out(rel: GraphRelation, score: float | None = None) -> TripleOut:
    return TripleOut(id=rel.id, subject=rel.subject, predicate=rel.predicate, object=rel.object,
                     metadata={"confidence": rel.confidence, "memory_ids": rel.memory_ids, "cube_id": rel.cube_id,
                               "valid_at": rel.valid_at.isoformat() if rel.valid_at else None}, score=score)


def _confidence(triple: Triple, index: int) -> float:
    meta = triple.metadata or {}
    unknown = sorted(set(meta) - {"confidence"})
    if unknown:
        raise InvalidRequest(f"triples.{index}.metadata: only 'confidence' is kept with a triple, not "
                             f"{', '.join(unknown)}", field=f"triples.{index}.metadata")
    value = meta.get("confidence", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequest(f"triples.{index}.metadata.confidence lies in [0, 1]",
                             field=f"triples.{index}.metadata.confidence")
    return float(value)


@DIALECT.op("POST", "/graph/triples", "Add triples", body=TriplesAdd, response=Triples, status=201)
async def graph_add_triples(call: Call[TriplesAdd]) -> Triples:
    body = call.body
    rows = [TripleIn(subject=t.subject, predicate=t.predicate, object=t.object, confidence=_confidence(t, i))
            for i, t in enumerate(body.triples)]
    stored = await call.run(lambda: GraphService(call.service).add_relations(call.actor, rows, user_id=body.user_id))
    return Triples(triples=[_triple_out(r) for r in stored])


@DIALECT.op("GET", "/graph/triples", "List all triples", query=TripleQuery, response=Triples)
async def graph_list_triples(call: Call[TripleQuery]) -> Triples:
    q = call.body
    found = await call.run(lambda: GraphService(call.service).relations(call.actor, user_id=q.user_id, limit=q.limit))
    return Triples(triples=[_triple_out(r) for r in found])


@DIALECT.op("GET", "/graph/entities/{entity}", "Get entity triples", query=UserQuery, response=EntityTriples)
async def graph_get_entity(call: Call[UserQuery]) -> EntityTriples:
    name = call.path["entity"]
    nodes, rels = await call.run(lambda: GraphService(call.service).entity(call.actor, name, user_id=call.body.user_id))
    return EntityTriples(entity=nodes[0].name, nodes=[_node(n) for n in nodes], triples=[_triple_out(r) for r in rels])


@DIALECT.op("POST", "/graph/search", "Semantic search", body=GraphSearch, response=GraphFound)
async def graph_search(call: Call[GraphSearch]) -> GraphFound:
    body = call.body
    view = await call.run(lambda: GraphService(call.service).search(
        call.actor, query=body.query, user_id=body.user_id, depth=body.depth, limit=body.limit))
    decay = call.service.settings.graph.decay
    scores = [round(r.confidence * decay ** ((r.hop or 1) - 1), 6) for r in view.relations]
    return GraphFound(triples=[_triple_out(r, score) for r, score in zip(view.relations, scores, strict=True)],
                      nodes=[_node(n) for n in view.entities], scores=scores)


@DIALECT.op("DELETE", "/graph/entities/{entity}", "Delete by entity", query=UserQuery, response=Deleted)
async def graph_delete_entity(call: Call[UserQuery]) -> Deleted:
    name = call.path["entity"]
    await call.run(lambda: GraphService(call.service).delete_entity(call.actor, name, user_id=call.body.user_id))
    return Deleted(deleted=1)


@DIALECT.op("DELETE", "/graph/triples/{triple_id}", "Delete by triple ID", query=UserQuery, response=Deleted)
async def graph_delete_triple(call: Call[UserQuery]) -> Deleted:
    triple_id = call.path["triple_id"]
    await call.run(lambda: GraphService(call.service).delete_relation(call.actor, triple_id,
                                                                       user_id=call.body.user_id))
    return Deleted(deleted=1)


@DIALECT.op("DELETE", "/graph", "Delete all graph data", query=UserQuery, response=Deleted)
async def graph_delete_all(call: Call[UserQuery]) -> Deleted:
    def run() -> int:
        graphs = GraphService(call.service)
        cubes = _own_cubes(call.service, call.actor, call.body.user_id)
        return sum(graphs.clear(call.actor, cube_id=c, user_id=call.body.user_id) for c in cubes)
    return Deleted(deleted=await call.run(run))


def _node(entity: GraphEntity) -> Node:
    return Node(name=entity.name, type=entity.type, aliases=entity.aliases)
