"""The bodies, queries and answers of the memio routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from memos_mcp.core.timeparse import Time
from memos_mcp.rest.memio.dialect import (
    ID_PATTERN,
)

# --- models --------------------------------------------------------------------------------------

Metadata = dict[str, Any]


# Deleted and MessageIn share their names with other dialects' models: /openapi.json tells them apart
# by module and keeps naming them by the module that first published them (each is then built here,
# with this module's names: ``model_rebuild`` after the class).
PUBLISHED_AS = "memos_mcp.rest.memio"


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
    deduplicated: bool | None = Field(None, description="create only: true when this fact was already stored "
                                      "(same text and metadata) and is returned instead of a new one")
    created_at: datetime
    updated_at: datetime


class Deleted(BaseModel):
    __module__ = PUBLISHED_AS

    deleted: int = Field(description="how many items were deleted")


Deleted.model_rebuild()


class MessageIn(BaseModel):
    __module__ = PUBLISHED_AS

    role: Literal["user", "assistant", "system", "tool"]
    content: str = Field(min_length=1)
    metadata: Metadata | None = Field(None, description="accepted, not stored")
    timestamp: Time | None = None
    name: str | None = None


MessageIn.model_rebuild()


class MessagesAdd(BaseModel):
    messages: list[MessageIn] = Field(min_length=1)
    user_id: str | None = None


class MessagesAdded(BaseModel):
    session_id: str
    message_ids: list[str]
    memory_ids: list[str] = Field(description="memories the core made from the messages")
    deduplicated_ids: list[str] = Field(default_factory=list, description="memories of this session already "
                                        "stored with the same text: nothing new was made for those messages")


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
