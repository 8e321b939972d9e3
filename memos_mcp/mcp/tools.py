"""The MCP tools: each parses its arguments, makes one core call through the gate, and returns a
typed result (its structured output). Descriptions are written for the model that calls them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import EmbeddedResource, ResourceLink, TextResourceContents, ToolAnnotations
from pydantic import BaseModel, Field

from memos_mcp.core import portability
from memos_mcp.core.filters import SearchFilters
from memos_mcp.core.keys import KeyRing, NewKey
from memos_mcp.core.models import (
    AddResult,
    Cube,
    HistoryEvent,
    Memory,
    MemoryPage,
    MemoryStatus,
    MemoryType,
    MessageIn,
    Permission,
    Role,
    SearchResult,
    Share,
    Task,
    User,
)
from memos_mcp.core.timeparse import Time
from memos_mcp.mcp.fit import Cuttable
from memos_mcp.mcp.gate import Gate
from memos_mcp.mcp.strict import ToolBox

if TYPE_CHECKING:  # imports the stores: stdio opens them after its handshake
    from memos_mcp.core.service import MemoryService

READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
IDEMPOTENT_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                   openWorldHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

CubeId = Annotated[str | None, Field(description="Cube (memory namespace) id; omit for your default cube. "
                                                 "list_cubes shows the cubes you can use.")]
MemoryId = Annotated[str, Field(description="Memory id (a UUID) from search_memory or list_memories")]


class CubeList(BaseModel):
    cubes: list[Cube]


class UserInfo(BaseModel):
    user: User
    cubes: list[Cube]


class Registered(BaseModel):
    user: User
    default_cube: Cube


class Deleted(BaseModel):
    deleted: int = Field(description="how many items were deleted")
    id: str | None = Field(None, description="what was deleted, when it was one thing")


class History(Cuttable):
    """A memory's history as one MCP message carries it: its events oldest first, of which the newest
    are kept. A history over 1 MiB leaves out its oldest events and counts them in ``omitted``. An event
    is never cut: an update carries its old and new text, up to max_memory_size characters each and up
    to 13 bytes a character on the wire (a control character, escaped in both copies of the answer), so
    with max_memory_size raised past about 39,000 even the newest event alone may not fit; the answer
    then has no event, and ``omitted`` counts them all."""

    cut_order = ("events",)
    keep = "tail"
    memory_id: str
    events: list[HistoryEvent]
    omitted: int = Field(0, ge=0, description="The oldest events left out to keep this answer within one MCP "
                                              "message (1 MiB); all of them when not even the newest fits")


class Suggestions(BaseModel):
    suggestions: list[str]


class ChatAnswer(Cuttable):
    """A chat's answer; the last references may be left out to keep it within one MCP message."""

    cut_order = ("references",)
    answer: str
    references: list[Memory]
    conversation_id: str


class SearchAnswer(SearchResult, Cuttable):
    """A search's result as one MCP message carries it: the lowest-ranked hits may be left out."""

    cut_order = ("memories", "preferences")
    omitted: int = Field(0, ge=0, description="Hits left out, the lowest-ranked first, to keep this answer "
                                              "within one MCP message (1 MiB): ask for a smaller top_k")


class PageAnswer(MemoryPage, Cuttable):
    """A listing page as one MCP message carries it: its last memories may be left out."""

    cut_order = ("memories",)
    omitted: int = Field(0, ge=0, description="Memories at the end of this page left out to keep this answer "
                                              "within one MCP message (1 MiB): ask for a smaller size")


class AddAnswer(AddResult, Cuttable):
    """An add's result as one MCP message carries it: all was stored, the last memories may be left out
    of the answer."""

    cut_order = ("memories",)
    omitted: int = Field(0, ge=0, description="Memories stored but left out of this answer (their ids are all "
                                              "in added or deduplicated) to keep it within one MCP message "
                                              "(1 MiB): get_memory or list_memories shows them")


class KeyList(BaseModel):
    keys: list[dict[str, Any]]


class ShareList(BaseModel):
    shares: list[Share]


def register_tools(server: ToolBox, service: MemoryService, keys: KeyRing, gate: Gate, read_only: bool) -> None:
    _register_reading(server, service, gate)
    if not read_only:
        _register_writing(server, service, gate)
        _register_admin(server, keys, gate)


def _register_reading(server: ToolBox, service: MemoryService, gate: Gate) -> None:
    @server.tool(annotations=READ)
    async def search_memory(
        query: Annotated[str, Field(description="What to recall, in natural language")],
        ctx: Context,
        cube_ids: Annotated[list[str] | None, Field(description="Cubes to search; omit for every cube you "
                                                                "can read")] = None,
        conversation_id: Annotated[str | None, Field(description="The current conversation: its memories "
                                                                 "rank higher, others still count")] = None,
        top_k: Annotated[int | None, Field(ge=1, le=1000, description="How many facts to return")] = None,
        include_preference: Annotated[bool, Field(description="Also return the user's preferences")] = True,
        filters: Annotated[SearchFilters | None, Field(description="Narrow by memory_type, kind, tags, "
                                                                   "time range or metadata keys")] = None,
        graph: Annotated[bool | None, Field(description="Also rank up memories linked to the people, places "
                                                        "and things the query names (omit: server default)")] = None,
        graph_depth: Annotated[Literal[1, 2] | None, Field(description="Graph hops: 1 direct links, 2 also "
                                                                       "their neighbours'")] = None,
        threshold: Annotated[float | None, Field(ge=0, le=1, description="Drop hits whose relativity is below "
                                                 "this (0.45 keeps clear matches; omit: server default)")] = None,
    ) -> SearchAnswer:
        """Search long-term memory. Returns facts ranked best first and, apart, the user's preferences;
        each hit's relativity (0-1, calibrated: 0.5 as likely relevant as not) says how relevant it is.
        Cite a memory by its ref_id, e.g. [1a2b3c4d]."""
        found = await gate.run(lambda actor: service.search(
            actor, query, cube_ids=cube_ids, conversation_id=conversation_id, top_k=top_k,
            include_preference=include_preference, filters=filters, graph=graph, graph_depth=graph_depth,
            threshold=threshold))
        return SearchAnswer.model_construct(**dict(found), omitted=0)

    @server.tool(annotations=READ)
    async def get_memory(memory_id: MemoryId, ctx: Context, cube_id: CubeId = None) -> Memory:
        """Fetch one memory with all its fields, metadata and sources."""
        return await gate.run(lambda actor: service.get_memory(actor, memory_id, cube_id))

    @server.tool(annotations=READ)
    async def list_memories(
        ctx: Context,
        cube_id: CubeId = None,
        page: Annotated[int, Field(ge=1, description="Page number, from 1")] = 1,
        size: Annotated[int, Field(ge=1, le=200, description="Memories per page")] = 20,
        filters: Annotated[SearchFilters | None, Field(description="Same filters as search_memory")] = None,
    ) -> PageAnswer:
        """List memories newest first, a page at a time (all your cubes unless cube_id is given)."""
        found = await gate.run(lambda actor: service.list_memories(
            actor, cube_ids=[cube_id] if cube_id is not None else None, page=page, size=size, filters=filters))
        return PageAnswer.model_construct(**dict(found), omitted=0)

    @server.tool(annotations=READ)
    async def memory_history(memory_id: MemoryId, ctx: Context) -> History:
        """Every add, update, archive and delete of a memory, oldest first, with who and when (of a
        history over 1 MiB, its newest events)."""
        events = await gate.run(lambda actor: service.history(actor, memory_id))
        return History(memory_id=memory_id, events=events)

    @server.tool(annotations=READ)
    async def list_cubes(ctx: Context) -> CubeList:
        """The cubes (memory namespaces) you own or that were shared with you, with your permission."""
        return CubeList(cubes=await gate.run(lambda actor: service.list_cubes(actor)))

    @server.tool(annotations=READ)
    async def list_shares(ctx: Context, state: Annotated[
            Literal["pending", "accepted"] | None, Field(description="Only offers (pending) or only accepted "
                                                                     "shares; omit for both")] = None) -> ShareList:
        """Cubes other users shared with you. A pending share is an offer: its memories stay out of your
        searches and lists until you accept_share it (name it in cube_ids to look first)."""
        return ShareList(shares=await gate.run(lambda actor: service.list_shares(actor, state)))

    @server.tool(annotations=READ)
    async def get_user_info(ctx: Context) -> UserInfo:
        """Who you are to the memory server, and your cubes."""
        user, cubes = await gate.run(lambda actor: service.get_user(actor))
        return UserInfo(user=user, cubes=cubes)

    @server.tool(annotations=READ)
    async def get_task_status(task_id: Annotated[str, Field(description="The task_id add_memory returned")],
                              ctx: Context) -> Task:
        """The status of an add: queued, running, done (with the memories added or de-duplicated) or
        failed (with the reason)."""
        return await gate.run(lambda actor: service.get_task(actor, task_id))

    @server.tool(annotations=READ)
    async def get_suggestions(ctx: Context, language: Annotated[
            Literal["en", "zh"], Field(description="en: English, zh: Chinese")] = "en") -> Suggestions:
        """Three follow-up questions drawn from what was recently remembered (written by the server's
        language model when it has one)."""
        return Suggestions(suggestions=await gate.run(lambda actor: service.suggestions(actor, language=language)))

    @server.tool(annotations=READ)
    async def export_cube(
        cube_id: Annotated[str, Field(description="The cube to export")],
        ctx: Context,
        cursor: Annotated[str | None, Field(description="Where to continue: the cursor of the previous "
                                                        "part's last line; omit for the first part")] = None,
        include_embeddings: Annotated[bool, Field(description="Include each memory's embedding (large; an "
                                                               "import re-embeds when they are absent)")] = False,
    ) -> list[EmbeddedResource | ResourceLink]:
        """Export a cube as JSONL (a header, memories with metadata, messages), part by part: the way to
        back up or move memories. Each part is at most about 256 KB; all but the last end with a line
        {"type": "next", "cursor": ...} and a link to the next part: call again with that cursor (or
        read the link) until a part has none. The parts joined are one importable export."""
        part = await gate.run(lambda actor: portability.export_part(
            service, actor, cube_id, cursor, include_embeddings=include_embeddings))
        here = f"memory://cubes/{cube_id}/export" + (f"/{cursor}" if cursor else "")
        found: list[EmbeddedResource | ResourceLink] = [EmbeddedResource(type="resource", resource=TextResourceContents(
            uri=here, mime_type="application/x-ndjson", text=part.text))]
        if part.cursor:
            found.append(ResourceLink(type="resource_link", name="cube-export-part", mime_type="application/x-ndjson",
                                      uri=f"memory://cubes/{cube_id}/export/{part.cursor}"))
        return found


def _register_writing(server: ToolBox, service: MemoryService, gate: Gate) -> None:
    @server.tool(annotations=WRITE)
    async def add_memory(
        ctx: Context,
        messages: Annotated[list[MessageIn] | None, Field(description="Conversation turns to remember: "
                                                                      "[{role, content, chat_time?, id?}]")] = None,
        memory_content: Annotated[str | None, Field(description="A fact or note to remember, as text")] = None,
        doc_path: Annotated[str | None, Field(description="A text, Markdown or JSON file under the server's "
                                                          "import roots")] = None,
        cube_id: CubeId = None,
        conversation_id: Annotated[str | None, Field(description="Conversation the messages or the fact "
                                                                 "belong to (a fact is indexed with its "
                                                                 "earlier adds)")] = None,
        chat_time: Annotated[Time | None, Field(description="When the fact (memory_content) was said or "
                                                           "happened: ISO 8601 or a date as people write it")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Your own keys (e.g. a message id); "
                                                                     "returned with the memory, filterable")] = None,
        tags: Annotated[list[str] | None, Field(description="Tags to attach")] = None,
        async_mode: Annotated[bool | None, Field(description="With a language model on the server, messages "
                                                 "are extracted in the background and the answer is the task "
                                                 "(status queued; see get_task_status). false waits for the "
                                                 "memories. Default: the server's add.async_mode")] = None,
    ) -> AddAnswer:
        """Store memories. Give exactly one of messages, memory_content or doc_path. Text that is already
        stored in the cube with the same metadata is not stored twice: the existing memory comes back in
        `deduplicated`, with your tags added. Long text is stored as pieces, each found on its own. With a
        language model, messages become clean facts and preferences merged with what is known (revised
        memories in `updated`, superseded ones in `archived`). A fact written "Name: what they said" has
        Name as its speaker (graph memory links it to that person)."""
        progress = gate.progress(ctx)
        added = await gate.run(lambda actor: service.add_memory(
            actor, cube_id=cube_id, messages=messages, memory_content=memory_content, doc_path=doc_path,
            conversation_id=conversation_id, metadata=metadata, tags=tags, progress=progress,
            async_mode=async_mode, chat_time=chat_time))
        return AddAnswer.model_construct(**dict(added), omitted=0)

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def update_memory(
        memory_id: MemoryId,
        ctx: Context,
        memory_content: Annotated[str | None, Field(description="The new text")] = None,
        key: Annotated[str | None, Field(description="A new short title")] = None,
        tags: Annotated[list[str] | None, Field(description="Replace the tags")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Replace the metadata")] = None,
        status: Annotated[MemoryStatus | None, Field(description="archived hides it from search")] = None,
        memory_type: Annotated[MemoryType | None, Field(description="Change the memory type")] = None,
        cube_id: CubeId = None,
    ) -> Memory:
        """Correct or archive a memory; the old text is kept in its history."""
        return await gate.run(lambda actor: service.update_memory(
            actor, memory_id, memory=memory_content, key=key, tags=tags, metadata=metadata, status=status,
            memory_type=memory_type, cube_id=cube_id))

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_memory(memory_id: MemoryId, ctx: Context) -> Deleted:
        """Forget one memory for good: its text leaves the store and the history."""
        await gate.run(lambda actor: service.delete_memory(actor, memory_id))
        return Deleted(deleted=1, id=memory_id)

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_all_memories(cube_id: Annotated[str, Field(description="The cube to empty")],
                                  ctx: Context) -> Deleted:
        """Forget every memory of one cube (the cube itself stays)."""
        return Deleted(deleted=await gate.run(lambda actor: service.delete_all(actor, cube_id)), id=cube_id)

    @server.tool(annotations=WRITE)
    async def create_cube(name: Annotated[str, Field(description="A name for the new cube")], ctx: Context,
                          cube_id: Annotated[str | None, Field(description="An id of your choice (letters, "
                                                                           "digits, - _ . : @)")] = None) -> Cube:
        """Create a cube (memory namespace) that you own; returns its cube_id."""
        return await gate.run(lambda actor: service.create_cube(actor, name, cube_id))

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_cube(cube_id: Annotated[str, Field(description="The cube to delete")], ctx: Context) -> Deleted:
        """Delete a cube you own with all its memories and conversations."""
        await gate.run(lambda actor: service.delete_cube(actor, cube_id))
        return Deleted(deleted=1, id=cube_id)

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def share_cube(cube_id: Annotated[str, Field(description="A cube you own")],
                         target_user_id: Annotated[str, Field(description="The user to share with")],
                         ctx: Context,
                         permission: Annotated[Permission, Field(description="read or write")] = Permission.READ,
                         ) -> Cube:
        """Offer a cube to another user for reading or writing; it reaches their searches once they
        accept it. The answer is the same whether or not the user exists."""
        return await gate.run(lambda actor: service.share_cube(actor, cube_id, target_user_id, permission))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def accept_share(cube_id: Annotated[str, Field(description="A cube list_shares shows as pending")],
                           ctx: Context) -> Cube:
        """Accept a cube shared with you: its memories join your searches and lists."""
        return await gate.run(lambda actor: service.accept_share(actor, cube_id))

    @server.tool(annotations=DESTRUCTIVE)
    async def decline_share(cube_id: Annotated[str, Field(description="A cube shared with you")],
                            ctx: Context) -> Deleted:
        """Decline a share offered to you, or leave one you accepted: you lose the access it gave."""
        await gate.run(lambda actor: service.decline_share(actor, cube_id))
        return Deleted(deleted=1, id=cube_id)

    @server.tool(annotations=DESTRUCTIVE)
    async def clear_chat_history(ctx: Context, conversation_id: Annotated[
            str | None, Field(description="One conversation; omit for all of yours")] = None) -> Deleted:
        """Delete stored conversation messages (memories made from them stay)."""
        return Deleted(deleted=await gate.run(lambda actor: service.clear_chat_history(actor, conversation_id)),
                       id=conversation_id)

    @server.tool(annotations=WRITE)
    async def chat(query: Annotated[str, Field(description="The user's message")], ctx: Context,
                   cube_ids: Annotated[list[str] | None, Field(description="Cubes to draw memories from")] = None,
                   conversation_id: Annotated[str | None, Field(description="The conversation to continue")] = None,
                   ) -> ChatAnswer:
        """Answer with the server's language model, grounded in memories (cited by ref_id) and respecting
        the user's preferences; the exchange is stored in the conversation and remembered. While the
        answer is written, progress notifications carry each new piece of text as their message."""
        on_delta = gate.text_progress(ctx)
        reply = await gate.run(lambda actor: service.chat(actor, query, cube_ids=cube_ids,
                                                          conversation_id=conversation_id, on_delta=on_delta))
        return ChatAnswer(answer=reply.answer, references=reply.references, conversation_id=reply.conversation_id)


def _register_admin(server: ToolBox, keys: KeyRing, gate: Gate) -> None:
    @server.tool(annotations=WRITE)
    async def register_user(ctx: Context,
                            user_id: Annotated[str | None, Field(description="Id of the new user")] = None,
                            user_name: Annotated[str | None, Field(description="Display name")] = None,
                            role: Annotated[Literal["admin", "user", "guest"], Field(description="Role")] = "user",
                            ) -> Registered:
        """Register a user with a default cube (admins only)."""
        user, cube = await gate.run(lambda actor: keys.service.register_user(actor, user_id, user_name,
                                                                                  Role(role)))
        return Registered(user=user, default_cube=cube)

    @server.tool(annotations=WRITE)
    async def create_api_key(user_id: Annotated[str, Field(description="The user the key acts as")],
                             ctx: Context) -> NewKey:
        """Create an API key for a user (admins only). The key is shown once."""
        return await gate.run(lambda actor: keys.create(actor, user_id))

    @server.tool(annotations=DESTRUCTIVE)
    async def revoke_api_key(key_id: Annotated[str, Field(description="The key_id to revoke")],
                             ctx: Context) -> Deleted:
        """Revoke an API key (admins only)."""
        await gate.run(lambda actor: keys.revoke(actor, key_id))
        return Deleted(deleted=1, id=key_id)

    @server.tool(annotations=READ)
    async def list_api_keys(ctx: Context) -> KeyList:
        """API keys with their users (never the keys themselves; admins only)."""
        return KeyList(keys=await gate.run(keys.list))
