"""The MemOS REST API (``/api``): users, cubes, memories, search and chat, in the same
``{"code", "message", "data"}`` envelope as the product API (errors: ``code`` = HTTP status,
``data: null``). The MemOS cloud API lives under ``/api/openmem/v1``: no route here is below it.

Decisions where the MemOS documents leave room:

- ``POST /configure`` cannot change a running server (its stores, embedder and model are opened at
  start-up): admins only; an empty object answers 200 ("nothing to change"), any setting answers
  400 naming the settings and where to set them (config file or ``MEMOS_*`` variables, then restart).
- ``user_id`` is optional in every body and query: the authenticated caller by default; naming
  another user needs an admin (403 otherwise). ``GET /memories`` without ``mem_cube_id`` lists every
  cube the user can read.
- ``POST /mem_cubes`` creates an empty cube owned by ``user_id`` (default: the caller). ``path`` is
  accepted but nothing is loaded from it: without ``name`` its last component names the cube.
  ``DELETE /mem_cubes/{id}`` deletes the cube and its memories (owner or admin).
- ``GET /memories`` and ``POST /search`` answer ``{text_mem: [{cube_id, memories}], pref_mem,
  act_mem: [], para_mem: []}`` with the product API's memory items, preferences in ``pref_mem`` in
  both; ``POST /memories`` answers the cube and the memories stored (or found already stored), so
  with a language model it waits for the extraction;
  ``DELETE /memories/{cube}`` the count deleted.
- ``POST /chat`` answers ``data`` = the whole answer text (the API documents no stream, history or
  system prompt: the conversation is ``default`` and its stored window is used); 503 without a
  language model or when the model fails, even mid-answer (nothing is stored then).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from memos_mcp.core.models import MemoryKind, MessageIn, Permission, Role, Share
from memos_mcp.errors import InvalidRequest
from memos_mcp.rest.base import Call, CodeEnvelope, Dialect
from memos_mcp.rest.memos_shared import (
    CubeInfo,
    MemoryItem,
    SearchData,
    UserDetail,
    UserInfo,
    all_memories,
    blank,
    by_cube,
    cube_info,
    cubes_to_read,
    item,
    search_data,
    user_detail,
    user_info,
)

DIALECT = Dialect("MemOS REST API", "/api", CodeEnvelope())


# --- configuration ----------------------------------------------------------------------------


class ConfigureBody(BaseModel):
    """A MemOS configuration object (``llm``, ``mem_reader``, ``mem_scheduler``, ``user_manager``...)."""

    model_config = ConfigDict(extra="allow")


@DIALECT.op("POST", "/configure", "Change the configuration (refused: a running server cannot apply it)",
            body=ConfigureBody, message="Configuration unchanged: nothing to apply")
async def configure(call: Call[ConfigureBody]) -> None:
    def run() -> None:
        call.service.access.require_admin(call.service.access.user(call.actor), "configure the server")
        given = sorted(call.body.model_extra or {})
        if given:
            raise InvalidRequest(
                f"this server cannot change {', '.join(given)} while running: set them in its config file or "
                "MEMOS_* environment variables and restart it", field=given[0], settings=given)

    await call.run(run)


# --- users ------------------------------------------------------------------------------------


class UsersData(BaseModel):
    users: list[UserInfo]


@DIALECT.op("GET", "/users", "List all users (admins)", response=UsersData, message="Users retrieved successfully")
async def list_users(call: Call[Any]) -> UsersData:
    return UsersData(users=[user_info(u) for u in await call.run(lambda: call.service.list_users(call.actor))])


class CreateUserBody(BaseModel):
    user_id: str
    user_name: str
    role: Literal["root", "admin", "user", "guest"]

    @field_validator("role", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # MemOS sends ROOT, ADMIN, USER, GUEST


class CreatedUser(UserInfo):
    mem_cube_id: str = Field(description="the user's default cube")


@DIALECT.op("POST", "/users", "Create a user with a default cube (admins)", body=CreateUserBody,
            response=CreatedUser, message="User created successfully")
async def create_user(call: Call[CreateUserBody]) -> CreatedUser:
    b = call.body
    user, cube = await call.run(lambda: call.service.register_user(call.actor, b.user_id, b.user_name, Role(b.role)))
    return CreatedUser(**user_info(user).model_dump(), mem_cube_id=cube.cube_id)


@DIALECT.op("GET", "/users/me", "The calling user and the cubes it can use", response=UserDetail,
            message="User info retrieved successfully")
async def me(call: Call[Any]) -> UserDetail:
    user, cubes = await call.run(lambda: call.service.get_user(call.actor))
    return user_detail(user, cubes)


# --- cubes ------------------------------------------------------------------------------------


class CubeBody(BaseModel):
    name: str | None = Field(None, validation_alias=AliasChoices("name", "mem_cube_name_or_path"))
    path: str | None = Field(None, description="accepted; nothing is loaded from it")
    mem_cube_id: str | None = Field(None, description="default: a random id")
    user_id: str | None = Field(None, description="the owner; default: you (another user: admins)")


@DIALECT.op("POST", "/mem_cubes", "Create (register) a cube", body=CubeBody, response=CubeInfo,
            message="MemCube registered successfully")
async def create_cube(call: Call[CubeBody]) -> CubeInfo:
    b = call.body
    name = blank(b.name) or (PurePath(b.path).name if b.path else None)
    if not name:
        raise InvalidRequest("name: give the cube a name (or a path whose last part names it)", field="name")
    cube = await call.run(lambda: call.service.create_cube(call.actor, name, blank(b.mem_cube_id), blank(b.user_id)))
    return cube_info(cube)


@DIALECT.op("DELETE", "/mem_cubes/{mem_cube_id}", "Delete a cube and its memories (owner or admin)",
            message="MemCube unregistered successfully")
async def delete_cube(call: Call[Any]) -> None:
    await call.run(lambda: call.service.delete_cube(call.actor, call.path["mem_cube_id"]))


class ShareBody(BaseModel):
    target_user_id: str
    permission: Literal["read", "write"] = "read"


@DIALECT.op("POST", "/mem_cubes/{cube_id}/share", "Share a cube with another user (owner or admin)",
            body=ShareBody, response=CubeInfo, message="Cube shared successfully")
async def share_cube(call: Call[ShareBody]) -> CubeInfo:
    b = call.body
    cube = await call.run(lambda: call.service.share_cube(call.actor, call.path["cube_id"], b.target_user_id,
                                                           Permission(b.permission)))
    return cube_info(cube)


class SharesData(BaseModel):
    shares: list[Share]


@DIALECT.op("GET", "/mem_cubes/shares", "The cubes shared with the caller: pending offers and accepted shares",
            response=SharesData, message="Shares retrieved successfully")
async def list_shares(call: Call[Any]) -> SharesData:
    return SharesData(shares=await call.run(lambda: call.service.list_shares(call.actor)))


@DIALECT.op("POST", "/mem_cubes/{cube_id}/share/accept", "Accept a cube shared with the caller: it joins "
            "the caller's searches and lists", response=CubeInfo, message="Share accepted successfully")
async def accept_share(call: Call[Any]) -> CubeInfo:
    return cube_info(await call.run(lambda: call.service.accept_share(call.actor, call.path["cube_id"])))


@DIALECT.op("POST", "/mem_cubes/{cube_id}/share/decline", "Decline (or leave) a cube shared with the caller",
            message="Share declined successfully")
async def decline_share(call: Call[Any]) -> None:
    await call.run(lambda: call.service.decline_share(call.actor, call.path["cube_id"]))


# --- memories ---------------------------------------------------------------------------------


class AddBody(BaseModel):
    user_id: str | None = None
    mem_cube_id: str | None = Field(None, description="default: the user's default cube")
    messages: list[MessageIn] | None = None
    memory_content: str | None = None
    doc_path: str | None = Field(None, description="a file under the server's import roots")


class Added(BaseModel):
    cube_id: str
    memories: list[MemoryItem] = Field(description="stored, or found already stored")
    added: list[str] = Field(default_factory=list, description="ids of the memories stored by this add")
    deduplicated: list[str] = Field(default_factory=list, description="ids of memories found already stored "
                                                                      "(same text and metadata)")


@DIALECT.op("POST", "/memories", "Add memories from messages, text or a document", body=AddBody, response=Added,
            message="Memories added successfully")
async def add_memories(call: Call[AddBody]) -> Added:
    b = call.body
    result = await call.run(lambda: call.service.add_memory(
        call.actor, user_id=blank(b.user_id), cube_id=blank(b.mem_cube_id), messages=b.messages or None,
        memory_content=blank(b.memory_content), doc_path=blank(b.doc_path), async_mode=False))
    return Added(cube_id=result.cube_id, memories=[item(m) for m in result.memories], added=result.added,
                 deduplicated=result.deduplicated)


class ListQuery(BaseModel):
    mem_cube_id: str | None = Field(None, description="default: every cube the user can read")
    user_id: str | None = None


@DIALECT.op("GET", "/memories", "Every memory of a cube", query=ListQuery, response=SearchData,
            message="Memories retrieved successfully")
async def list_memories(call: Call[ListQuery]) -> SearchData:
    q = call.body

    def run() -> SearchData:
        user = blank(q.user_id)
        cube_ids = cubes_to_read(call.service, call.actor, user, [q.mem_cube_id] if q.mem_cube_id else None)
        memories = all_memories(call.service, call.actor, user, cube_ids)
        return SearchData(text_mem=by_cube(cube_ids, [m for m in memories if m.kind is not MemoryKind.PREFERENCE]),
                          pref_mem=by_cube(cube_ids, [m for m in memories if m.kind is MemoryKind.PREFERENCE]))

    return await call.run(run)


@DIALECT.op("GET", "/memories/{mem_cube_id}/{memory_id}", "One memory", response=MemoryItem,
            message="Memory retrieved successfully")
async def get_memory(call: Call[Any]) -> MemoryItem:
    p = call.path
    return item(await call.run(lambda: call.service.get_memory(call.actor, p["memory_id"], p["mem_cube_id"])))


class UpdateBody(BaseModel):
    memory_content: str


@DIALECT.op("PUT", "/memories/{mem_cube_id}/{memory_id}", "Replace a memory's text", body=UpdateBody,
            response=MemoryItem, message="Memory updated successfully")
async def update_memory(call: Call[UpdateBody]) -> MemoryItem:
    p = call.path
    return item(await call.run(lambda: call.service.update_memory(
        call.actor, p["memory_id"], memory=call.body.memory_content, cube_id=p["mem_cube_id"])))


@DIALECT.op("DELETE", "/memories/{mem_cube_id}/{memory_id}", "Delete one memory",
            message="Memory deleted successfully")
async def delete_memory(call: Call[Any]) -> None:
    p = call.path
    await call.run(lambda: call.service.delete_memory(call.actor, p["memory_id"], p["mem_cube_id"]))


class Deleted(BaseModel):
    deleted: int


@DIALECT.op("DELETE", "/memories/{mem_cube_id}", "Delete every memory of a cube", response=Deleted,
            message="All memories deleted successfully")
async def delete_all(call: Call[Any]) -> Deleted:
    return Deleted(deleted=await call.run(lambda: call.service.delete_all(call.actor, call.path["mem_cube_id"])))


# --- search and chat --------------------------------------------------------------------------


class SearchBody(BaseModel):
    user_id: str | None = None
    query: str
    install_cube_ids: list[str] | None = Field(None, description="default: every cube the user can read")
    limit: int | None = Field(None, description="at most this many memories")


@DIALECT.op("POST", "/search", "Search memories across cubes", body=SearchBody, response=SearchData,
            message="Search completed successfully")
async def search(call: Call[SearchBody]) -> SearchData:
    b = call.body
    return await call.run(lambda: search_data(call.service, call.actor, b.query, user_id=blank(b.user_id),
                                              cube_ids=[c for c in b.install_cube_ids or [] if c], top_k=b.limit))


class ChatBody(BaseModel):
    user_id: str | None = None
    message: str
    install_cube_ids: list[str] | None = None


@DIALECT.op("POST", "/chat", "Chat grounded in memory (the answer text)", body=ChatBody, response=str,
            message="Chat response generated")
async def chat(call: Call[ChatBody]) -> str:
    b = call.body
    reply = await call.run(lambda: call.service.chat(call.actor, b.message, user_id=blank(b.user_id),
                                                     cube_ids=[c for c in b.install_cube_ids or [] if c] or None))
    return reply.answer
