"""MCP resources and prompts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from memos_mcp.core import portability
from memos_mcp.core.checks import json_bytes
from memos_mcp.errors import ResponseTooLarge
from memos_mcp.mcp.fit import ANSWER_BYTES, check_text, lines_within
from memos_mcp.mcp.gate import Gate, prompt_error, resource_error

if TYPE_CHECKING:  # imports the stores: stdio opens them after its handshake
    from memos_mcp.core.service import MemoryService


def register_resources(server: MCPServer, service: MemoryService, gate: Gate) -> None:
    @server.resource("memory://cubes", name="cubes", mime_type="application/json",
                     description="The cubes (memory namespaces) you can use, with your permission on each")
    async def cubes() -> str:
        found = await gate.run(lambda actor: service.list_cubes(actor), resource_error)
        return fitting(json.dumps([c.model_dump(mode="json") for c in found], ensure_ascii=False))

    @server.resource("memory://cubes/{cube_id}/memories/{memory_id}", name="memory",
                     mime_type="application/json", description="One memory with its metadata and sources")
    async def memory(cube_id: str, memory_id: str) -> str:
        found = await gate.run(lambda actor: service.get_memory(actor, memory_id, cube_id), resource_error)
        return fitting(found.model_dump_json(exclude={"embedding"}))

    @server.resource("memory://cubes/{cube_id}/export", name="cube-export", mime_type="application/x-ndjson",
                     description="A cube as JSONL (header, memories without embeddings, messages), first part: "
                                 "a part ends with a {\"type\": \"next\", \"cursor\": C} line when there is "
                                 "more; read memory://cubes/{cube_id}/export/C next")
    async def export(cube_id: str) -> str:
        part = await gate.run(lambda actor: portability.export_part(service, actor, cube_id), resource_error)
        return fitting(part.text)

    @server.resource("memory://cubes/{cube_id}/export/{cursor}", name="cube-export-part",
                     mime_type="application/x-ndjson",
                     description="The part of a cube's JSONL export that starts at the cursor a part ended with")
    async def export_part(cube_id: str, cursor: str) -> str:
        part = await gate.run(lambda actor: portability.export_part(service, actor, cube_id, cursor), resource_error)
        return fitting(part.text)


def _listed(lines: list[str], left: int, empty: str) -> str:
    note = [f"- ({left} more left out: one MCP message carries at most 1 MiB; search_memory shows them)"] \
        if left else []
    return "\n".join([*lines, *note]) or empty


def fitting(text: str) -> str:
    """A resource's text if one MCP message carries it (``fit.check_text``), else the resource error."""
    try:
        return check_text(text)
    except ResponseTooLarge as exc:
        raise resource_error(exc) from exc


def register_prompts(server: MCPServer, service: MemoryService, gate: Gate) -> None:
    @server.prompt(name="recall", description="Recall what is known about a topic, with citable ref_ids")
    async def recall(topic: Annotated[str, Field(description="What to recall")]) -> str:
        found = await gate.run(lambda actor: service.search(actor, topic, top_k=10), prompt_error)
        head = f"Here is what long-term memory holds about “{topic}”.\n\nFacts:\n"
        middle = "\n\nPreferences:\n"
        tail = "\n\nUse these in your answer, cite the ones you use by their ref_id, and respect the preferences."
        room = ANSWER_BYTES - json_bytes(head + middle + tail) - 200  # one MCP message; 200: the notes
        facts, left, room = lines_within([f"- {m.ref_id} {m.memory} (relevance {m.relativity:.2f})"
                                          for m in found.memories], room)
        prefs, left_prefs, _ = lines_within([f"- {m.ref_id} {m.memory}" for m in found.preferences], room)
        return (head + _listed(facts, left, "- nothing stored yet") + middle
                + _listed(prefs, left_prefs, "- none recorded") + tail)

    @server.prompt(name="remember", description="Ask the model to store what it learnt in this conversation")
    async def remember(focus: Annotated[str | None, Field(description="What to focus on (optional)")] = None,
                       ) -> list[dict[str, Any]]:
        target = f", especially about {focus}" if focus else ""
        text = (f"Review this conversation and store what is worth remembering about the user{target}: facts "
                "about them and their world, decisions, plans with dates, and preferences (likes, dislikes, "
                "how they want things done). Call add_memory once with memory_content for each durable fact, "
                "written as a short standalone sentence in the user's language with absolute dates. Skip "
                "small talk and anything already stored (search_memory first when unsure).")
        return [{"role": "user", "content": text}]
