"""What a client sees before calling anything: tools described for the model, with input and output
schemas and honest annotations; a read-only server offers only the reading tools."""

from __future__ import annotations

from typing import Any

import pytest

from memos_mcp.core.service import MemoryService
from tests.mcp.support import connect

pytestmark = pytest.mark.anyio

READING = {"search_memory", "get_memory", "list_memories", "memory_history", "list_cubes", "get_user_info",
           "get_suggestions", "export_cube", "get_task_status", "search_graph", "list_entities", "list_shares"}
WRITING = {"add_memory", "update_memory", "delete_memory", "delete_all_memories", "create_cube", "delete_cube",
           "share_cube", "accept_share", "decline_share", "clear_chat_history", "chat", "add_relations",
           "delete_relation"}
ADMIN = {"register_user", "create_api_key", "revoke_api_key", "list_api_keys"}
DESTRUCTIVE = {"delete_memory", "delete_all_memories", "delete_cube", "clear_chat_history", "revoke_api_key",
               "delete_relation", "decline_share"}
READ_ONLY_HINTED = READING | {"list_api_keys"}


@pytest.fixture
def backend() -> str:
    """Listing does not touch the vectors: one backend is enough."""
    return "edge"


async def tools_of(service: MemoryService, read_only: bool = False) -> dict[str, Any]:
    async with connect(service, "alice", read_only=read_only) as client:
        return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_the_server_offers_all_29_tools(people: MemoryService) -> None:
    assert set(await tools_of(people)) == READING | WRITING | ADMIN
    assert len(READING | WRITING | ADMIN) == 29


async def test_every_tool_and_every_parameter_is_described_for_the_model(people: MemoryService) -> None:
    for name, tool in (await tools_of(people)).items():
        assert tool.description and len(tool.description) > 20, name
        schema = tool.input_schema
        assert schema["type"] == "object", name
        assert "ctx" not in schema.get("properties", {}), name
        for parameter, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{parameter} has no description"


async def test_every_tool_but_export_cube_declares_its_structured_output(people: MemoryService) -> None:
    tools = await tools_of(people)
    for name, tool in tools.items():
        if name == "export_cube":
            continue
        assert tool.output_schema is not None, name
        assert tool.output_schema["type"] == "object" and tool.output_schema["properties"], name
    assert tools["export_cube"].output_schema is None  # it returns an embedded JSONL resource


async def test_reading_tools_are_marked_read_only_and_deleting_tools_destructive(people: MemoryService) -> None:
    for name, tool in (await tools_of(people)).items():
        hints = tool.annotations
        assert hints is not None, name
        assert hints.read_only_hint is (name in READ_ONLY_HINTED), name
        assert hints.destructive_hint is (name in DESTRUCTIVE), name
        assert hints.open_world_hint is False, name


async def test_a_read_only_server_offers_only_the_twelve_reading_tools(people: MemoryService) -> None:
    offered = set(await tools_of(people, read_only=True))
    assert offered == READING
    assert offered == {"search_memory", "get_memory", "list_memories", "memory_history", "list_cubes",
                       "get_user_info", "get_suggestions", "export_cube", "get_task_status", "search_graph",
                       "list_entities", "list_shares"}


async def test_a_read_only_server_refuses_a_writing_tool_by_name(people: MemoryService) -> None:
    async with connect(people, "alice", read_only=True) as client:
        result = await client.call_tool("add_memory", {"memory_content": "Should not be stored."})
        assert result.is_error is True
    assert people.list_memories("alice").total == 0


async def test_the_server_introduces_itself_and_says_how_to_use_memory(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        assert client.server_info.name == "memos-mcp"
        assert client.instructions is not None
        assert "search_memory" in client.instructions and "add_memory" in client.instructions
        assert {p.name for p in (await client.list_prompts()).prompts} == {"recall", "remember"}
