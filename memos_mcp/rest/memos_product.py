"""The MemOS product API (``/product``): register a user, add, search, list, suggest, chat (SSE).

Every answer is ``{"code": 200, "message": ..., "data": ...}``; every error is the same envelope
with ``code`` = the HTTP status and ``data: null``. Each body names a ``user_id``: the authenticated
caller acts for itself, and only an admin may name another user (the core refuses otherwise, 403).

Decisions where the MemOS documents leave room:

- ``POST /users/register`` is idempotent. Without ``user_id``, a plain user gets its own ids and an
  admin creates a new user with a random id; with the caller's own ``user_id``, the caller gets its
  existing ids; with another ``user_id``, an admin gets that user's ids, created first if new (a
  plain user: 403). ``interests``, when given for a user created by this call, are stored as its
  first memory. The message is "User registered successfully" in every case, as clients expect.
- ``POST /add`` treats empty strings and empty lists as absent (the seed example sends them);
  ``session_id`` is the conversation id; ``source`` is kept in the memory's metadata and reported as
  ``metadata.source``; ``user_profile`` is accepted and ignored.
- ``POST /suggestions``: ``message`` is accepted and ignored: the questions come from the user's
  recent memories (written by the language model when one is configured, else about the memories'
  keys); ``language: "zh"`` asks for them in Chinese.
- ``POST /get_all``: ``act_mem`` and ``para_mem`` answer one entry per cube with no memories (this
  server keeps text memories only).
- ``POST /chat`` streams the answer as the model writes it: ``status`` ("0"), ``reference`` (the
  memories and preferences the answer may cite, before any text), one ``text`` frame per piece of
  text, ``time`` (``total_time`` in seconds) and ``end``. Every error that can come before the answer
  (unknown cube 404, forbidden cube 403, no language model or the model unreachable 503) is an
  ordinary envelope; if the model fails mid-answer, an ``error`` frame (``{code, message}``) ends the
  stream, and nothing of that exchange is stored. A non-empty ``history`` (``[{role, content}]``)
  replaces the conversation window the server would otherwise use (its last ``max_turns_window``
  turns are kept); the exchange is stored in ``mem_cube_id`` when the user may write it, else in the
  user's default cube.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from memos_mcp.core.chat import ChatEvent, Delta, References
from memos_mcp.core.models import Cube, Memory, MessageIn, User
from memos_mcp.core.service import MemoryService
from memos_mcp.core.text import is_blank
from memos_mcp.errors import Conflict, NotFound
from memos_mcp.rest.base import Call, CodeEnvelope, Dialect, answer_frames

# --- the envelope (shared with the MemOS REST API dialect) --------------------------------------


DIALECT = Dialect("MemOS product API", "/product", CodeEnvelope())

# --- shapes shared by both MemOS dialects -------------------------------------------------------


class MemoryMetadata(BaseModel):
    """A memory's metadata as MemOS reports it (``visibility``, ``embedding``, ``usage`` and
    ``vector_sync`` are carried for shape only)."""

    user_id: str
    session_id: str | None = Field(description="the conversation the memory came from")
    status: str
    type: str = Field(description="fact, preference or document")
    key: str
    confidence: float
    source: str | None
    tags: list[str]
    visibility: str | None = None
    memory_type: str = Field(description="WorkingMemory, LongTermMemory or UserMemory")
    sources: list[dict[str, Any]]
    embedding: list[float] = Field(default_factory=list)
    created_at: str
    updated_at: str
    usage: list[str] = Field(default_factory=list)
    background: str
    relativity: float | None = Field(None, description="relevance to the query (searches only), 1 is best")
    vector_sync: str = "success"
    ref_id: str
    id: str
    memory: str


class MemoryItem(BaseModel):
    id: str
    memory: str
    ref_id: str = Field(description='"[" + the first 8 characters of the id + "]"')
    metadata: MemoryMetadata


class CubeMemories(BaseModel):
    cube_id: str
    memories: list[MemoryItem]


class SearchData(BaseModel):
    text_mem: list[CubeMemories]
    pref_mem: list[CubeMemories]
    act_mem: list[CubeMemories] = Field(default_factory=list)
    para_mem: list[CubeMemories] = Field(default_factory=list)


class CubeInfo(BaseModel):
    cube_id: str
    cube_name: str
    owner_id: str
    is_default: bool
    permission: str | None


class UserInfo(BaseModel):
    user_id: str
    user_name: str
    role: str
    created_at: str
    is_active: bool = True


class UserDetail(UserInfo):
    accessible_cubes: list[CubeInfo]


def item(memory: Memory) -> MemoryItem:
    source = memory.metadata.get("source")
    relativity = getattr(memory, "relativity", None)
    meta = MemoryMetadata(
        user_id=memory.user_id, session_id=memory.conversation_id, status=memory.status.value,
        type=memory.kind.value, key=memory.key, confidence=memory.confidence,
        source=source if isinstance(source, str) and source else memory.source.value, tags=memory.tags,
        memory_type=memory.memory_type.value,
        sources=[s.model_dump(mode="json", exclude_none=True) for s in memory.sources],
        created_at=memory.created_at.isoformat(), updated_at=memory.updated_at.isoformat(),
        background=memory.background, relativity=relativity, ref_id=memory.ref_id, id=memory.id,
        memory=memory.memory)
    return MemoryItem(id=memory.id, memory=memory.memory, ref_id=memory.ref_id, metadata=meta)


def by_cube(cube_ids: Sequence[str], memories: Sequence[Memory]) -> list[CubeMemories]:
    """One entry per cube, in ``cube_ids`` order, each with its memories in the given order."""
    groups: dict[str, list[MemoryItem]] = {c: [] for c in cube_ids}
    for memory in memories:
        groups.setdefault(memory.cube_id, []).append(item(memory))
    return [CubeMemories(cube_id=c, memories=m) for c, m in groups.items()]


def cube_info(cube: Cube) -> CubeInfo:
    return CubeInfo(cube_id=cube.cube_id, cube_name=cube.name, owner_id=cube.owner_id, is_default=cube.is_default,
                    permission=cube.permission)


def user_info(user: User) -> UserInfo:
    return UserInfo(user_id=user.user_id, user_name=user.user_name, role=user.role.value,
                    created_at=user.created_at.isoformat())


def user_detail(user: User, cubes: Sequence[Cube]) -> UserDetail:
    return UserDetail(**user_info(user).model_dump(), accessible_cubes=[cube_info(c) for c in cubes])


def blank(value: str | None) -> str | None:
    """Empty strings mean absent (the MemOS examples send ``""`` for unused fields)."""
    return value if value else None


def all_memories(service: MemoryService, actor: str, user_id: str | None, cube_ids: Sequence[str]) -> list[Memory]:
    """Every memory of the named cubes (each checked for read access), page by page."""
    found: list[Memory] = []
    for cube_id in cube_ids:
        page = 1
        while True:
            chunk = service.list_memories(actor, user_id=user_id, cube_ids=[cube_id], page=page, size=200)
            found.extend(chunk.memories)
            if page >= chunk.pages:
                break
            page += 1
    return found


def cubes_to_read(service: MemoryService, actor: str, user_id: str | None, named: Sequence[str] | None) -> list[str]:
    if named:
        return list(dict.fromkeys(named))
    return [c.cube_id for c in service.list_cubes(actor, user_id)]


def search_data(service: MemoryService, actor: str, query: str, *, user_id: str | None,
                cube_ids: Sequence[str] | None, top_k: int | None = None, conversation_id: str | None = None,
                include_preference: bool = True, pref_top_k: int | None = None,
                threshold: float | None = None) -> SearchData:
    found = service.search(actor, query, cube_ids=cube_ids or None, user_id=user_id, conversation_id=conversation_id,
                           top_k=top_k, include_preference=include_preference, pref_top_k=pref_top_k,
                           threshold=threshold)
    return SearchData(text_mem=by_cube(found.cube_ids, found.memories),
                      pref_mem=by_cube(found.cube_ids, found.preferences) if include_preference else [])


# --- users ----------------------------------------------------------------------------------------


class RegisterBody(BaseModel):
    user_id: str | None = Field(None, description="the user to register; default: yourself (admins: a new id)")
    user_name: str | None = None
    interests: str | None = Field(None, description="stored as the first memory of a user created now")


class RegisterData(BaseModel):
    user_id: str
    mem_cube_id: str = Field(description="the user's default cube")


def _default_cube(cubes: Sequence[Cube], user_id: str) -> str:
    for cube in cubes:
        if cube.is_default and cube.owner_id == user_id:
            return cube.cube_id
    owned = [c.cube_id for c in cubes if c.owner_id == user_id]
    if not owned:
        raise NotFound("default cube of user", user_id, "Create a cube first.")
    return owned[0]


def register(service: MemoryService, actor: str, user_id: str | None, user_name: str | None,
             interests: str | None) -> RegisterData:
    me = service.access.user(actor)
    if user_id == actor or (user_id is None and not me.is_admin):
        user, cubes = service.get_user(actor)
        return RegisterData(user_id=user.user_id, mem_cube_id=_default_cube(cubes, user.user_id))
    if user_id is not None:
        try:
            user, cubes = service.get_user(actor, user_id)  # 403 unless admin
            return RegisterData(user_id=user.user_id, mem_cube_id=_default_cube(cubes, user.user_id))
        except NotFound:
            pass
    try:
        user, cube = service.register_user(actor, user_id, user_name)
    except Conflict:  # registered meanwhile by another request
        user, cubes = service.get_user(actor, user_id)
        return RegisterData(user_id=user.user_id, mem_cube_id=_default_cube(cubes, user.user_id))
    if interests and not is_blank(interests):
        service.add_memory(actor, user_id=user.user_id, cube_id=cube.cube_id, memory_content=interests)
    return RegisterData(user_id=user.user_id, mem_cube_id=cube.cube_id)


@DIALECT.op("POST", "/users/register", "Register a user with a default cube (idempotent)", body=RegisterBody,
            response=RegisterData, message="User registered successfully")
async def register_user(call: Call[RegisterBody]) -> RegisterData:
    b = call.body
    return await call.run(lambda: register(call.service, call.actor, blank(b.user_id), blank(b.user_name),
                                           blank(b.interests)))


@DIALECT.op("GET", "/users", "List all users (admins)", response=list[UserInfo],
            message="Users retrieved successfully")
async def list_users(call: Call[Any]) -> list[UserInfo]:
    return [user_info(u) for u in await call.run(lambda: call.service.list_users(call.actor))]


@DIALECT.op("GET", "/users/{user_id}", "One user with the cubes it can use", response=UserDetail,
            message="User info retrieved successfully")
async def get_user(call: Call[Any]) -> UserDetail:
    user, cubes = await call.run(lambda: call.service.get_user(call.actor, call.path["user_id"]))
    return user_detail(user, cubes)


# --- suggestions ----------------------------------------------------------------------------------


class SuggestionsBody(BaseModel):
    user_id: str
    mem_cube_id: str | None = None
    language: Literal["en", "zh"] = "en"
    message: str | None = Field(None, description="accepted for compatibility; not used")


class SuggestionsData(BaseModel):
    query: list[str]


def suggestions(service: MemoryService, actor: str, user_id: str, cube_id: str | None,
                language: Literal["en", "zh"]) -> SuggestionsData:
    return SuggestionsData(query=service.suggestions(actor, user_id=user_id, cube_ids=[cube_id] if cube_id else None,
                                                     language=language))


@DIALECT.op("GET", "/suggestions/{user_id}", "Suggested questions from a user's recent memories",
            response=SuggestionsData, message="Suggestions retrieved successfully")
async def get_suggestions(call: Call[Any]) -> SuggestionsData:
    return await call.run(lambda: suggestions(call.service, call.actor, call.path["user_id"], None, "en"))


@DIALECT.op("POST", "/suggestions", "Suggested questions, in English or Chinese", body=SuggestionsBody,
            response=SuggestionsData, message="Suggestions retrieved successfully")
async def post_suggestions(call: Call[SuggestionsBody]) -> SuggestionsData:
    b = call.body
    return await call.run(lambda: suggestions(call.service, call.actor, b.user_id, blank(b.mem_cube_id),
                                              b.language))


# --- memories -------------------------------------------------------------------------------------


class GetAllBody(BaseModel):
    user_id: str
    memory_type: Literal["text_mem", "act_mem", "para_mem"]
    mem_cube_ids: list[str] | None = Field(None, description="default: every cube the user can read")


@DIALECT.op("POST", "/get_all", "Every memory of a user's cubes, by cube", body=GetAllBody,
            response=list[CubeMemories], message="Memories retrieved successfully")
async def get_all(call: Call[GetAllBody]) -> list[CubeMemories]:
    b = call.body

    def run() -> list[CubeMemories]:
        cube_ids = cubes_to_read(call.service, call.actor, b.user_id, [c for c in b.mem_cube_ids or [] if c])
        if b.memory_type != "text_mem":
            for cube_id in cube_ids:  # still checked: an unknown cube is 404, a foreign one 403
                call.service.list_memories(call.actor, user_id=b.user_id, cube_ids=[cube_id], size=1)
            return by_cube(cube_ids, [])
        return by_cube(cube_ids, all_memories(call.service, call.actor, b.user_id, cube_ids))

    return await call.run(run)


class AddBody(BaseModel):
    user_id: str
    mem_cube_id: str | None = Field(None, description="default: the user's default cube")
    messages: list[MessageIn] | None = None
    memory_content: str | None = None
    doc_path: str | None = Field(None, description="a file under the server's import roots")
    source: str | None = Field(None, description="kept in the memory's metadata")
    user_profile: bool | None = Field(None, description="accepted for compatibility; not used")
    session_id: str | None = Field(None, description="the conversation id")


@DIALECT.op("POST", "/add", "Add memories from messages, text or a document", body=AddBody,
            message="Memory created successfully")
async def add(call: Call[AddBody]) -> None:
    b = call.body
    source = blank(b.source)
    await call.run(lambda: call.service.add_memory(
        call.actor, user_id=b.user_id, cube_id=blank(b.mem_cube_id), messages=b.messages or None,
        memory_content=blank(b.memory_content), doc_path=blank(b.doc_path), conversation_id=blank(b.session_id),
        metadata={"source": source} if source else None))


class SearchBody(BaseModel):
    query: str
    user_id: str
    mem_cube_id: str | None = None
    readable_cube_ids: list[str] | None = Field(None, description="cubes to search with mem_cube_id; "
                                                "default: every cube the user can read")
    top_k: int | None = None
    session_id: str | None = Field(None, description="memories of this conversation rank higher")
    include_preference: bool = True
    pref_top_k: int | None = None
    relativity: float | None = Field(None, ge=0, le=1, description="the least relativity returned (MemOS clients "
                                     "send 0.45); default: the server's search.threshold")


@DIALECT.op("POST", "/search", "Search a user's memories", body=SearchBody, response=SearchData,
            message="Search completed successfully")
async def search(call: Call[SearchBody]) -> SearchData:
    b = call.body
    cubes = list(dict.fromkeys([*(c for c in b.readable_cube_ids or [] if c), *filter(None, [b.mem_cube_id])]))
    return await call.run(lambda: search_data(
        call.service, call.actor, b.query, user_id=b.user_id, cube_ids=cubes, top_k=b.top_k,
        conversation_id=blank(b.session_id), include_preference=b.include_preference, pref_top_k=b.pref_top_k,
        threshold=b.relativity))


# --- chat -----------------------------------------------------------------------------------------


class ChatBody(BaseModel):
    user_id: str
    query: str
    mem_cube_id: str | None = None
    history: list[dict[str, Any]] | None = Field(
        None, description="[{role, content}] turns that replace the stored conversation window")


class ChatFrame(BaseModel):
    """One SSE frame: ``data: {"type": ..., "data": ...}``."""

    type: Literal["status", "reference", "text", "time", "end", "error"]
    data: Any


def frame(kind: str, data: Any) -> dict[str, str]:
    return {"data": json.dumps({"type": kind, "data": data}, ensure_ascii=False)}


def chat_frames(event: ChatEvent) -> list[dict[str, str]]:
    """status and reference first, a text frame per piece of the answer, then time and end."""
    if isinstance(event, References):
        return [frame("status", "0"), frame("reference", [item(m).model_dump(mode="json") for m in event.all])]
    if isinstance(event, Delta):
        return [frame("text", event.text)]
    return [frame("time", {"total_time": event.seconds}), frame("end", None)]


@DIALECT.op("POST", "/chat", "Chat grounded in memory, as a text/event-stream of frames", body=ChatBody,
            response=ChatFrame, raw=True)
async def chat(call: Call[ChatBody]) -> Response:
    b = call.body
    cube = blank(b.mem_cube_id)
    stream = await call.run(lambda: call.service.chat_stream(
        call.actor, b.query, user_id=b.user_id, cube_ids=[cube] if cube else None, history=b.history or None))
    return EventSourceResponse(answer_frames(stream, chat_frames, lambda failure: frame(
        "error", {"code": failure.status, "message": failure.message})), ping=600)
