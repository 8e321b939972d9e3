"""Errors reach the model as tool errors it can act on: flagged is_error, with a code and a message
that says what to do; never a traceback, never a success, and nothing changes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect, fail, remember

pytestmark = pytest.mark.anyio

ALICE_CUBE = "alice_default_cube"

UNKNOWN_CUBE: dict[str, dict[str, Any]] = {
    "search_memory": {"query": "anything", "cube_ids": ["no-such-cube"]},
    "list_memories": {"cube_id": "no-such-cube"},
    "add_memory": {"memory_content": "A note for nowhere.", "cube_id": "no-such-cube"},
    "export_cube": {"cube_id": "no-such-cube"},
    "delete_all_memories": {"cube_id": "no-such-cube"},
    "delete_cube": {"cube_id": "no-such-cube"},
    "share_cube": {"cube_id": "no-such-cube", "target_user_id": "bob"},
}


@pytest.mark.parametrize("tool", UNKNOWN_CUBE)
async def test_an_unknown_cube_is_named_and_list_cubes_is_suggested(people: MemoryService, tool: str) -> None:
    async with connect(people, "alice") as client:
        message = await fail(client, tool, **UNKNOWN_CUBE[tool])
    assert "not_found" in message and "cube 'no-such-cube' does not exist" in message
    assert "list_cubes" in message
    assert people.catalog.get_cube("no-such-cube") is None


@pytest.mark.parametrize("tool", ["get_memory", "update_memory", "delete_memory", "memory_history"])
@pytest.mark.parametrize("memory_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_an_unknown_memory_id_is_not_found_with_a_hint(people: MemoryService, tool: str, memory_id: str) -> None:
    arguments: dict[str, Any] = {"memory_id": memory_id}
    if tool == "update_memory":
        arguments["memory_content"] = "New text."
    async with connect(people, "alice") as client:
        message = await fail(client, tool, **arguments)
    assert "not_found" in message and f"memory '{memory_id}' does not exist" in message
    assert "Search or list memories" in message


async def test_a_memory_asked_for_in_the_wrong_cube_is_not_found(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "The bike lock code is 1234.")
        await call(client, "create_cube", name="Other", cube_id="alice-other")
        assert "not_found" in await fail(client, "get_memory", memory_id=memory["id"], cube_id="alice-other")
        assert "not_found" in await fail(client, "update_memory", memory_id=memory["id"], cube_id="alice-other",
                                         memory_content="Changed.")
        assert (await call(client, "get_memory", memory_id=memory["id"]))["memory"] == "The bike lock code is 1234."


MEMORY = "<the stored memory's id>"
BAD_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("search_memory", {"query": "garden", "top_k": "many"}, "top_k"),
    ("search_memory", {"query": "garden", "top_k": 0}, "top_k"),
    ("search_memory", {"query": "garden", "top_k": 5000}, "top_k"),
    ("search_memory", {}, "query"),
    ("search_memory", {"query": "   "}, "query is empty"),
    ("search_memory", {"query": "garden", "cube_ids": 7}, "cube_ids"),
    ("search_memory", {"query": "garden", "include_preference": "maybe"}, "include_preference"),
    ("search_memory", {"query": "garden", "filters": {"bogus": 1}}, "bogus"),
    ("search_memory", {"query": "garden", "filters": {"kind": ["nonsense"]}}, "kind"),
    ("search_memory", {"query": "garden", "filters": {"time_from": "not a date"}}, "time_from"),
    ("search_memory", {"query": "garden", "filters": {"time_from": "2025-02-01", "time_to": "2025-01-01"}},
     "time_from is after filters.time_to"),
    ("search_memory", {"query": "garden", "filters": "tags=garden"}, "filters"),
    ("list_memories", {"page": 0}, "page"),
    ("list_memories", {"size": 500}, "size"),
    ("list_memories", {"filters": {"status": ["gone"]}}, "status"),
    ("add_memory", {}, "give exactly one of messages, memory_content or doc_path"),
    ("add_memory", {"memory_content": "Two at once.", "messages": [{"role": "user", "content": "Hi."}]},
     "give exactly one"),
    ("add_memory", {"messages": "hello"}, "messages"),
    ("add_memory", {"messages": [{"role": "robot", "content": "Beep."}]}, "role"),
    ("add_memory", {"memory_content": "   "}, "memory_content is empty"),
    ("add_memory", {"memory_content": "x" * 20_001}, "payload_too_large"),
    ("add_memory", {"memory_content": "Tagged.", "tags": "garden"}, "tags"),
    ("add_memory", {"memory_content": "Keyed.", "metadata": {"bad key!": 1}}, "metadata key"),
    ("add_memory", {"memory_content": "Keyed.", "metadata": ["not", "an", "object"]}, "metadata"),
    ("add_memory", {"memory_content": "Talk.", "conversation_id": "has spaces"}, "conversation_id"),
    ("get_memory", {"memory_id": 42}, "memory_id"),
    ("get_memory", {}, "memory_id"),
    ("update_memory", {"memory_id": MEMORY}, "nothing to update"),
    ("update_memory", {"memory_id": MEMORY, "status": "deleted"}, "status"),
    ("update_memory", {"memory_id": MEMORY, "memory_type": "Forever"}, "memory_type"),
    ("create_cube", {"name": "   "}, "a cube needs a name"),
    ("create_cube", {"name": "Slashed", "cube_id": "a/b"}, "cube_id"),
    ("share_cube", {"cube_id": ALICE_CUBE, "target_user_id": "alice"}, "already owns"),
    ("share_cube", {"cube_id": ALICE_CUBE, "target_user_id": "a b"}, "target_user_id"),
    ("share_cube", {"cube_id": ALICE_CUBE, "target_user_id": "bob", "permission": "admin"}, "permission"),
    ("delete_all_memories", {}, "cube_id"),
    ("clear_chat_history", {"conversation_id": ["a", "b"]}, "conversation_id"),
    ("no_such_tool", {}, "no_such_tool"),
]


@pytest.mark.parametrize(("tool", "arguments", "expected"), BAD_ARGUMENTS,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_ARGUMENTS)])
async def test_bad_arguments_are_an_error_that_changes_nothing(people: MemoryService, tool: str,
                                                               arguments: dict[str, Any], expected: str) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "The garden hose is in the shed.")
        given = {k: memory["id"] if v == MEMORY else v for k, v in arguments.items()}
        message = await fail(client, tool, **given)
        assert expected in message
        assert "memos_mcp/" not in message and "File \"" not in message
        after = await call(client, "list_memories", filters={"status": ["activated", "archived"]})
    assert [(m["id"], m["memory"], m["status"]) for m in after["memories"]] == [
        (memory["id"], "The garden hose is in the shed.", "activated")]
    alice_cube = people.catalog.get_cube(ALICE_CUBE)
    assert alice_cube is not None and alice_cube.shared_with == {}
    assert people.catalog.get_cube("a/b") is None


async def test_a_server_whose_default_user_does_not_exist_says_so(people: MemoryService) -> None:
    async with connect(people, "ghost") as client:
        message = await fail(client, "get_user_info")
        assert "not_found" in message and "user 'ghost' does not exist" in message
        assert "not_found" in await fail(client, "add_memory", memory_content="Boo.")
    assert people.catalog.get_user("ghost") is None


EMPTY_NAME: dict[str, tuple[dict[str, Any], str]] = {
    "clear_chat_history": ({"conversation_id": ""}, "conversation_id"),
    "list_memories": ({"cube_id": ""}, "cube_id"),
    "search_memory": ({"query": "tea", "filters": {"conversation_id": ""}}, "filters.conversation_id"),
    "delete_all_memories": ({"cube_id": ""}, "cube_id"),
}


@pytest.mark.parametrize("tool", EMPTY_NAME)
async def test_an_empty_name_is_refused_never_read_as_every_one(people: MemoryService, tool: str) -> None:
    """``clear_chat_history(conversation_id="")`` deleted every conversation's messages."""
    arguments, field = EMPTY_NAME[tool]
    async with connect(people, "alice") as client:
        await call(client, "add_memory", messages=[{"role": "user", "content": "I drink green tea."}],
                   conversation_id="morning")
        message = await fail(client, tool, **arguments)
        assert "invalid_request:" in message and field in message, message
        listed = await call(client, "list_memories")
    assert listed["total"] >= 1
    assert len(people.catalog.recent_messages([ALICE_CUBE], "morning", 10)) == 1
