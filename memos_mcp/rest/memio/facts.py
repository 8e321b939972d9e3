"""``/v1/facts``: facts are core memories of kind ``fact``."""

from __future__ import annotations

from typing import Any

from memos_mcp.core.checks import check_id
from memos_mcp.core.models import Memory, SearchHit
from memos_mcp.errors import Conflict, NotFound
from memos_mcp.rest.base import Call
from memos_mcp.rest.memio.dialect import (
    AGENT_ID,
    DIALECT,
)
from memos_mcp.rest.memio.models import (
    Deleted,
    Fact,
    FactCreate,
    FactDeleteQuery,
    FactQuery,
    FactSearch,
    FactUpdate,
    Metadata,
)
from memos_mcp.rest.memio.store import (
    check_fact_size,
    doc_filters,
    fact_filters,
    fact_of,
    is_fact,
    own_cubes,
    scan,
    user_metadata,
)

# --- facts ---------------------------------------------------------------------------------------

@DIALECT.op("POST", "/facts", "Create a fact", body=FactCreate, response=Fact, status=201)
async def create_fact(call: Call[FactCreate]) -> Fact:
    body = call.body
    check_fact_size(call.service, body.content)
    meta = user_metadata(body.metadata, AGENT_ID)
    agent = body.agent_id if body.agent_id is not None else (body.metadata or {}).get(AGENT_ID)
    if agent is not None:
        meta[AGENT_ID] = check_id(AGENT_ID, str(agent))
    result = await call.run(lambda: call.service.add_memory(call.actor, user_id=body.user_id,
                                                            memory_content=body.content, metadata=meta))
    memory = result.memories[0]
    if not is_fact(memory):
        raise Conflict(f"this text is already stored as memory '{memory.id}', which is not a fact",
                       memory_id=memory.id)
    return fact_of(memory).model_copy(update={"deduplicated": memory.id in result.deduplicated})


@DIALECT.op("GET", "/facts", "List facts", query=FactQuery, response=list[Fact])
async def list_facts(call: Call[FactQuery]) -> list[Fact]:
    q = call.body
    found = await call.run(lambda: scan(call.service, call.actor, fact_filters(q.agent_id), user_id=q.user_id,
                                         keep=is_fact, limit=q.limit))
    return [fact_of(m) for m in found]


@DIALECT.op("POST", "/facts/search", "Semantic search", body=FactSearch, response=list[Fact])
async def search_facts(call: Call[FactSearch]) -> list[Fact]:
    body = call.body

    def run() -> list[SearchHit]:
        # Documents share the core kind of facts: ask for enough to fill the limit without them.
        documents = call.service.list_memories(call.actor, user_id=body.user_id, size=1,
                                               filters=doc_filters()).total
        found = call.service.search(call.actor, body.query, user_id=body.user_id,
                                    top_k=min(1000, body.limit + documents), include_preference=False,
                                    filters=fact_filters(body.agent_id, body.filters))
        return [h for h in found.memories if is_fact(h)][:body.limit]

    return [fact_of(h, h.relativity) for h in await call.run(run)]


async def _fact_of(call: Call[Any]) -> Memory:
    fact_id = call.path["fact_id"]
    try:
        memory = await call.run(lambda: call.service.get_memory(call.actor, fact_id))
    except NotFound:
        memory = None
    if memory is None or not is_fact(memory):
        raise NotFound("fact", fact_id, "List facts with GET /v1/facts.")
    return memory


@DIALECT.op("GET", "/facts/{fact_id}", "Get a fact", response=Fact)
async def get_fact(call: Call[Any]) -> Fact:
    return fact_of(await _fact_of(call))


@DIALECT.op("PUT", "/facts/{fact_id}", "Update a fact", body=FactUpdate, response=Fact)
async def update_fact(call: Call[FactUpdate]) -> Fact:
    body = call.body
    old = await _fact_of(call)
    if body.content is not None:
        check_fact_size(call.service, body.content)
    metadata: Metadata | None = None
    if body.metadata is not None or body.agent_id is not None:
        metadata = (user_metadata(body.metadata, AGENT_ID) if body.metadata is not None
                    else user_metadata(old.metadata, AGENT_ID))
        agent = body.agent_id if body.agent_id is not None else old.metadata.get(AGENT_ID)
        if agent is not None:
            metadata[AGENT_ID] = agent
    return fact_of(await call.run(lambda: call.service.update_memory(call.actor, old.id, memory=body.content,
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
        cubes = own_cubes(call.service, call.actor, q.user_id)
        if not cubes:
            return 0
        found = scan(call.service, call.actor, fact_filters(q.agent_id), user_id=q.user_id, cube_ids=cubes,
                      keep=is_fact)
        return call.service.delete_memories(call.actor, [m.id for m in found])

    return Deleted(deleted=await call.run(run))
