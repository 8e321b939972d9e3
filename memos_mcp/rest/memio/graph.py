"""``/v1/graph``: the core's graph memory as triples."""

from __future__ import annotations

from memos_mcp.core.graph.service import GraphEntity, GraphRelation, GraphService, TripleIn
from memos_mcp.errors import InvalidRequest
from memos_mcp.rest.base import Call
from memos_mcp.rest.memio.dialect import (
    DIALECT,
)
from memos_mcp.rest.memio.models import (
    Deleted,
    EntityTriples,
    GraphFound,
    GraphSearch,
    Node,
    Triple,
    TripleOut,
    TripleQuery,
    Triples,
    TriplesAdd,
    UserQuery,
)
from memos_mcp.rest.memio.store import (
    own_cubes,
)

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


@DIALECT.op("GET", "/graph/entities/{entity:path}", "Get entity triples", query=UserQuery, response=EntityTriples)
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


@DIALECT.op("DELETE", "/graph/entities/{entity:path}", "Delete by entity", query=UserQuery, response=Deleted)
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
        cubes = own_cubes(call.service, call.actor, call.body.user_id)
        return sum(graphs.clear(call.actor, cube_id=c, user_id=call.body.user_id) for c in cubes)
    return Deleted(deleted=await call.run(run))


def _node(entity: GraphEntity) -> Node:
    return Node(name=entity.name, type=entity.type, aliases=entity.aliases)
