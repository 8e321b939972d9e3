"""What both MemOS dialects (``memos_product``: ``/product``, ``memos_api``: ``/api``) share: the
shapes of memories, cubes and users as MemOS reports them, and the reads both make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from memos_mcp.core.models import Cube, Memory, User
from memos_mcp.core.service import MemoryService


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
    # The MemOS cloud dialect has a SearchData too: /openapi.json tells the two apart by module, and
    # keeps naming this one by the module it was first published from (it is then built here, with
    # this module's names: ``model_rebuild`` after the class).
    __module__ = "memos_mcp.rest.memos_product"

    text_mem: list[CubeMemories]
    pref_mem: list[CubeMemories]
    act_mem: list[CubeMemories] = Field(default_factory=list)
    para_mem: list[CubeMemories] = Field(default_factory=list)


SearchData.model_rebuild()


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
