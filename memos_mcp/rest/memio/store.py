"""How memio's facts and documents map onto core memories: filters, scans, reassembly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memos_mcp.core.models import Memory
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, NotFound
from memos_mcp.rest.memio.dialect import (
    AGENT_ID,
    DOC_ID,
    DOC_MARK,
    PAGE,
)
from memos_mcp.rest.memio.models import (
    Document,
    Fact,
    Metadata,
)


def is_document(memory: Memory) -> bool:
    """Whether the memory is a chunk of a memio document."""
    return memory.metadata.get(DOC_MARK) == "document"


def is_fact(memory: Memory) -> bool:
    """Whether the memory is a memio fact (a core fact that is no document chunk)."""
    return memory.kind == "fact" and not is_document(memory)


def fact_of(memory: Memory, score: float | None = None) -> Fact:
    """The memory as a memio fact (``agent_id`` lifted out of its metadata)."""
    meta = {k: v for k, v in memory.metadata.items() if k != AGENT_ID}
    agent = memory.metadata.get(AGENT_ID)
    return Fact(id=memory.id, content=memory.memory, user_id=memory.user_id,
                agent_id=None if agent is None else str(agent), metadata=meta, score=score,
                created_at=memory.created_at, updated_at=memory.updated_at)


def metadata_filter(filters: dict[str, Any]) -> dict[str, Any]:
    """The caller's ``filters.metadata`` (an object), to which a dialect adds its own keys."""
    given = filters.get("metadata") or {}
    if not isinstance(given, dict):
        raise InvalidRequest("filters.metadata must be an object of keys to values", field="filters.metadata")
    return dict(given)


def fact_filters(agent_id: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Core filters of the facts (of one agent, when given) with the caller's ``extra`` filters."""
    filters = dict(extra or {})
    metadata = metadata_filter(filters)
    if agent_id is not None:
        metadata[AGENT_ID] = agent_id
    filters["kind"] = ["fact"]
    if metadata:
        filters["metadata"] = metadata
    return filters


def doc_filters(doc_id: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Core filters of the chunks of every document (or of one) with the caller's ``extra`` filters."""
    filters = dict(extra or {})
    metadata = {**metadata_filter(filters), DOC_MARK: "document"}
    if doc_id is not None:
        metadata[DOC_ID] = doc_id
    return {**filters, "metadata": metadata}


def scan(service: MemoryService, actor: str, filters: dict[str, Any], *, user_id: str | None = None,
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


def own_cubes(service: MemoryService, actor: str, user_id: str | None) -> list[str]:
    """The cubes the user owns (those memio's deletes of everything reach)."""
    return [c.cube_id for c in service.list_cubes(actor, user_id) if c.permission == "owner"]


def chunk_index(memory: Memory) -> int:
    """The position of a chunk in its document."""
    index = memory.sources[0].chunk_index if memory.sources else None
    return index or 0


def document_text(ordered: Sequence[Memory]) -> str:
    """A document's exact text from its chunks in order: each chunk's source keeps the whitespace
    before it and, for the last, after it (chunks stored before that kept nothing: one space)."""
    parts: list[str] = []
    for index, memory in enumerate(ordered):
        source = memory.sources[0] if memory.sources else None
        gap = source.gap if source is not None else None
        parts += [(" " if index else "") if gap is None else gap, memory.memory]
    last = ordered[-1].sources[0].tail if ordered[-1].sources else None
    return "".join(parts) + (last or "")


def document_of(doc_id: str, chunks: Sequence[Memory], score: float | None = None,
              passage: str | None = None) -> Document:
    """The document of its chunks (any order): its exact text, or ``passage`` for a search hit."""
    ordered = sorted(chunks, key=chunk_index)
    meta = {k: v for k, v in ordered[0].metadata.items() if k not in (DOC_MARK, DOC_ID)}
    return Document(id=doc_id, content=passage if passage is not None else document_text(ordered),
                    metadata=meta, chunks=len(ordered), score=score,
                    created_at=min(m.created_at for m in ordered), updated_at=max(m.updated_at for m in ordered))


def doc_chunks(service: MemoryService, actor: str, doc_id: str, user_id: str | None) -> list[Memory]:
    """The chunks of one document, all from one cube (the first that holds the id), or NotFound."""
    chunks = scan(service, actor, doc_filters(doc_id), user_id=user_id)
    if not chunks:
        raise NotFound("document", doc_id, "List documents with GET /v1/documents.")
    return [m for m in chunks if m.cube_id == chunks[0].cube_id]


def user_metadata(metadata: Metadata | None, *reserved: str) -> Metadata:
    """The caller's metadata without the keys memio keeps for itself."""
    return {k: v for k, v in (metadata or {}).items() if k not in reserved}


def check_fact_size(service: MemoryService, content: str) -> None:
    """Refuse (InvalidRequest naming ``content``) a fact longer than one memory holds."""
    if len(content.strip()) > service.settings.chunk_size:
        raise InvalidRequest(f"content: a fact holds at most {service.settings.chunk_size} characters; "
                             "store long text as a document (POST /v1/documents)", field="content")


def store_document(service: MemoryService, actor: str, doc_id: str, content: str, metadata: Metadata,
                    user_id: str | None) -> list[Memory]:
    """Adds the document's chunks: memories of its own (the core never shares a chunk of one text
    with another memory, and metadata with another doc_id is never the same)."""
    meta = {**user_metadata(metadata, DOC_MARK, DOC_ID), DOC_MARK: "document", DOC_ID: doc_id}
    return service.add_memory(actor, user_id=user_id, memory_content=content, metadata=meta).memories
