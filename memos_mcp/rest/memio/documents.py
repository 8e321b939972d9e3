"""``/v1/documents``: a document is the chunk memories marked with its ``doc_id``."""

from __future__ import annotations

import uuid

from memos_mcp.core.checks import check_id
from memos_mcp.core.models import Memory, SearchHit
from memos_mcp.core.text import is_blank
from memos_mcp.errors import Conflict, InvalidRequest, PayloadTooLarge
from memos_mcp.rest.base import Call
from memos_mcp.rest.memio.dialect import (
    DIALECT,
    DOC_ID,
)
from memos_mcp.rest.memio.models import (
    Deleted,
    Document,
    DocumentCreate,
    DocumentQuery,
    DocumentSearch,
    DocumentUpdate,
    UserQuery,
)
from memos_mcp.rest.memio.store import (
    doc_chunks,
    doc_filters,
    document_of,
    own_cubes,
    scan,
    store_document,
)

# --- documents -----------------------------------------------------------------------------------

@DIALECT.op("POST", "/documents", "Create a document", body=DocumentCreate, response=Document, status=201)
async def create_document(call: Call[DocumentCreate]) -> Document:
    body = call.body
    doc_id = body.doc_id or str(uuid.uuid4())

    def run() -> list[Memory]:
        check_id("doc_id", doc_id)
        with call.service.write_lock:  # the id check and the write, together
            if scan(call.service, call.actor, doc_filters(doc_id), user_id=body.user_id, limit=1):
                raise Conflict(f"document '{doc_id}' already exists; replace it with PUT /v1/documents/{doc_id}",
                               doc_id=doc_id)
            return store_document(call.service, call.actor, doc_id, body.content, body.metadata or {},
                                   body.user_id)

    return document_of(doc_id, await call.run(run))


@DIALECT.op("GET", "/documents", "List documents", query=DocumentQuery, response=list[Document])
async def list_documents(call: Call[DocumentQuery]) -> list[Document]:
    q = call.body

    def run() -> list[Document]:
        groups: dict[tuple[str, str], list[Memory]] = {}
        for memory in scan(call.service, call.actor, doc_filters(), user_id=q.user_id):
            groups.setdefault((memory.cube_id, str(memory.metadata.get(DOC_ID))), []).append(memory)
        return [document_of(doc_id, chunks) for (_, doc_id), chunks in groups.items()][:q.limit]

    return await call.run(run)


@DIALECT.op("POST", "/documents/search", "Semantic search", body=DocumentSearch, response=list[Document])
async def search_documents(call: Call[DocumentSearch]) -> list[Document]:
    body = call.body

    def run() -> list[Document]:
        found = call.service.search(call.actor, body.query, user_id=body.user_id, top_k=min(1000, body.limit * 5),
                                    include_preference=False, filters=doc_filters(extra=body.filters))
        best: dict[tuple[str, str], SearchHit] = {}
        for hit in found.memories:  # best first: keep each document's best chunk
            best.setdefault((hit.cube_id, str(hit.metadata.get(DOC_ID))), hit)
        return [document_of(doc_id, [hit], hit.relativity, hit.memory)
                for (_, doc_id), hit in list(best.items())[:body.limit]]

    return await call.run(run)


@DIALECT.op("GET", "/documents/{doc_id}", "Get a document", query=UserQuery, response=Document)
async def get_document(call: Call[UserQuery]) -> Document:
    doc_id = call.path["doc_id"]
    return document_of(doc_id, await call.run(lambda: doc_chunks(call.service, call.actor, doc_id,
                                                                call.body.user_id)))


@DIALECT.op("PUT", "/documents/{doc_id}", "Update a document", body=DocumentUpdate, response=Document)
async def update_document(call: Call[DocumentUpdate]) -> Document:
    doc_id, body = call.path["doc_id"], call.body

    def run() -> list[Memory]:
        with call.service.write_lock:
            old = doc_chunks(call.service, call.actor, doc_id, body.user_id)
            if is_blank(body.content):
                raise InvalidRequest("content is empty (it has no visible character)", field="content")
            limit = call.service.settings.max_memory_size
            if len(body.content) > limit:
                raise PayloadTooLarge(f"content has {len(body.content)} characters; the limit is {limit} "
                                      "(max_memory_size)", field="content")
            before = document_of(doc_id, old)
            metadata = body.metadata if body.metadata is not None else before.metadata
            # first: unchanged chunks are then written again, not shared
            call.service.delete_memories(call.actor, [m.id for m in old])
            return store_document(call.service, call.actor, doc_id, body.content, metadata, body.user_id)

    return document_of(doc_id, await call.run(run))


@DIALECT.op("DELETE", "/documents/{doc_id}", "Delete a document", query=UserQuery, response=Deleted)
async def delete_document(call: Call[UserQuery]) -> Deleted:
    doc_id = call.path["doc_id"]

    def run() -> int:
        with call.service.write_lock:
            chunks = doc_chunks(call.service, call.actor, doc_id, call.body.user_id)
            return call.service.delete_memories(call.actor, [m.id for m in chunks])

    return Deleted(deleted=await call.run(run))


@DIALECT.op("DELETE", "/documents", "Delete all documents", query=UserQuery, response=Deleted)
async def delete_documents(call: Call[UserQuery]) -> Deleted:
    def run() -> int:
        cubes = own_cubes(call.service, call.actor, call.body.user_id)
        if not cubes:
            return 0
        with call.service.write_lock:
            found = scan(call.service, call.actor, doc_filters(), user_id=call.body.user_id, cube_ids=cubes)
            call.service.delete_memories(call.actor, [m.id for m in found])
        return len({(m.cube_id, m.metadata.get(DOC_ID)) for m in found})

    return Deleted(deleted=await call.run(run))
