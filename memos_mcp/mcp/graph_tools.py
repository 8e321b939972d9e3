"""The MCP graph tools: entities and the relations between them, over the core's GraphService."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from memos_mcp.core.graph.service import GraphEntity, GraphRelation, GraphService, GraphView, TripleIn
from memos_mcp.mcp.fit import Cuttable
from memos_mcp.mcp.gate import Gate
from memos_mcp.mcp.strict import ToolBox
from memos_mcp.mcp.tools import DESTRUCTIVE, READ, WRITE, CubeId, Deleted


class GraphAnswer(GraphView, Cuttable):
    """A graph view as one MCP message carries it: the last memories behind its relations may be left
    out (the relations keep their ids)."""

    cut_order = ("memories",)


class RelationList(BaseModel):
    relations: list[GraphRelation]


class EntityList(BaseModel):
    entities: list[GraphEntity]


def register_graph_tools(server: ToolBox, graphs: GraphService, gate: Gate, read_only: bool) -> None:
    @server.tool(annotations=READ)
    async def search_graph(
        ctx: Context,
        query: Annotated[str | None, Field(description="A question or text; the entities it names are the "
                                                       "starting points")] = None,
        entity: Annotated[str | None, Field(description="One entity name (or alias) to start from")] = None,
        depth: Annotated[Literal[1, 2], Field(description="1: direct relations; 2: also their neighbours'")] = 1,
        cube_id: Annotated[str | None, Field(description="One cube; omit for every cube you can read")] = None,
        include_memories: Annotated[bool, Field(description="Also return the memories behind the "
                                                            "relations")] = False,
        include_archived: Annotated[bool, Field(description="Also relations known only from archived "
                                                            "memories, and those memories")] = False,
    ) -> GraphAnswer:
        """Explore the knowledge graph: the entities and relations (currently valid) around an entity or
        the entities a query names, each relation with the ids of the memories it came from. Good for
        multi-hop questions ("what did the friend Caroline met recommend?"). Give query or entity."""
        view = await gate.run(lambda actor: graphs.search(actor, query=query, entity=entity, depth=depth,
                                                          cube_id=cube_id, with_memories=include_memories,
                                                          include_archived=include_archived))
        return GraphAnswer.model_construct(**dict(view), omitted=0)

    @server.tool(annotations=READ)
    async def list_entities(
        ctx: Context,
        cube_id: Annotated[str | None, Field(description="One cube; omit for every cube you can read")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="How many")] = 100,
        offset: Annotated[int, Field(ge=0, description="How many to skip")] = 0,
        include_archived: Annotated[bool, Field(description="Also entities known only from archived "
                                                            "memories")] = False,
    ) -> EntityList:
        """The entities (people, places, things, dates) memory knows, in name order."""
        return EntityList(entities=await gate.run(lambda actor: graphs.entities(
            actor, cube_id=cube_id, limit=limit, offset=offset, include_archived=include_archived)))

    if read_only:
        return

    @server.tool(annotations=WRITE)
    async def add_relations(
        triples: Annotated[list[TripleIn], Field(min_length=1, max_length=1000, description=(
            "Statements [{subject, predicate, object, confidence?}], e.g. {subject: 'Alice', predicate: "
            "'works_at', object: 'Acme'}"))],
        ctx: Context,
        cube_id: CubeId = None,
    ) -> RelationList:
        """Record relations between entities. A single-valued predicate (lives_in, works_at, married_to,
        is, age, job...) ends the subject's earlier relation with another object (kept as history)."""
        return RelationList(relations=await gate.run(lambda actor: graphs.add_relations(actor, triples,
                                                                                        cube_id=cube_id)))

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_relation(
        relation_id: Annotated[str, Field(description="A relation id from search_graph")],
        ctx: Context,
        cube_id: CubeId = None,
    ) -> Deleted:
        """Delete a wrong relation for good. When a fact merely changed, add the new one instead: the old
        one is then kept as no longer valid."""
        await gate.run(lambda actor: graphs.delete_relation(actor, relation_id, cube_id=cube_id))
        return Deleted(deleted=1, id=relation_id)
