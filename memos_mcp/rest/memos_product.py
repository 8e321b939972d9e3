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
from memos_mcp.core.models import Cube, MessageIn
from memos_mcp.core.service import MemoryService
from memos_mcp.core.text import is_blank
from memos_mcp.errors import Conflict, NotFound
from memos_mcp.rest.base import Call, CodeEnvelope, Dialect, answer_frames
from memos_mcp.rest.memos_shared import (
    CubeMemories,
    SearchData,
    UserDetail,
    UserInfo,
    all_memories,
    blank,
    by_cube,
    cubes_to_read,
    item,
    search_data,
    user_detail,
    user_info,
)

# --- the envelope (a base.CodeEnvelope, as in the MemOS REST API dialect) ---------------------


DIALECT = Dialect("MemOS product API", "/product", CodeEnvelope())

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
    interests = interests if interests and not is_blank(interests) else None
    if interests is not None:  # checked before the user is made: a refusal registers nobody
        service.stores.check_text(interests, "interests")
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
    if interests is not None:
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
