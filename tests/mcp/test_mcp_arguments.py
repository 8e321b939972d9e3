"""What a client sends is what the server acts on: a misnamed argument is refused by name (with the
right name) instead of being dropped, which would widen a read or send a write elsewhere; blank
text and unaddressable ids are refused too; and nothing is stored when a call is refused."""

from __future__ import annotations

from typing import Any

import pytest

from memos_mcp.core.graph.service import GraphService
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.mcp.gate import Gate
from memos_mcp.mcp.graph_tools import register_graph_tools
from memos_mcp.mcp.strict import ToolBox
from memos_mcp.mcp.tools import register_tools
from tests.mcp.support import call, connect, fail, remember

pytestmark = pytest.mark.anyio

ALICE_CUBE = "alice_default_cube"

# (tool, arguments with one misnamed argument, the misnamed argument, the name it should have been)
MISNAMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("list_memories", {"cube_ids": ["work"]}, "cube_ids", "cube_id"),
    ("search_memory", {"query": "office", "cube_id": "work"}, "cube_id", "cube_ids"),
    ("add_memory", {"memory_content": "Desk 12 is mine.", "cube_ids": ["work"]}, "cube_ids", "cube_id"),
    ("add_memory", {"content": "Desk 12 is mine.", "cube_id": "work"}, "content", "memory_content"),
    ("update_memory", {"memory_id": "m", "memory": "New text."}, "memory", "memory_id"),
    ("get_memory", {"memoryId": "m"}, "memoryId", "memory_id"),
    ("delete_all_memories", {"cube_id": "work", "cube": "work"}, "cube", "cube_id"),
    ("chat", {"query": "hi", "cube_id": "work"}, "cube_id", "cube_ids"),
    ("search_graph", {"query": "Alice", "cube_ids": ["work"]}, "cube_ids", "cube_id"),
    ("list_entities", {"cube_ids": ["work"]}, "cube_ids", "cube_id"),
    ("add_relations", {"triples": [{"subject": "A", "predicate": "knows", "object": "B"}], "cube": "work"},
     "cube", "cube_id"),
    ("create_cube", {"name": "Work", "cubeid": "w2"}, "cubeid", "cube_id"),
]


def stored(service: MemoryService, cube_id: str) -> int:
    return service.list_memories("alice", cube_ids=[cube_id]).total


@pytest.fixture
def work(people: MemoryService) -> MemoryService:
    """alice with a second cube, work, holding one memory the default cube does not."""
    people.create_cube("alice", "Work", "work")
    people.add_memory("alice", cube_id="work", memory_content="The office is on the fourth floor.")
    return people


@pytest.mark.parametrize(("tool", "arguments", "wrong", "right"), MISNAMED)
async def test_a_misnamed_argument_is_refused_naming_it_and_the_right_name(
        work: MemoryService, tool: str, arguments: dict[str, Any], wrong: str, right: str) -> None:
    before = {cube: stored(work, cube) for cube in (ALICE_CUBE, "work")}
    async with connect(work, "alice") as client:
        message = await fail(client, tool, **arguments)
    assert f"unknown argument '{wrong}'; did you mean '{right}'?" in message
    assert {cube: stored(work, cube) for cube in (ALICE_CUBE, "work")} == before
    assert work.catalog.get_cube("w2") is None


async def test_an_argument_like_no_other_is_refused_with_the_list_of_known_names(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        message = await fail(client, "list_cubes", verbose=True)
    assert "unknown argument 'verbose'; none is accepted here" in message
    async with connect(work, "alice") as client:
        message = await fail(client, "delete_memory", memory_id="m", zzzz_qqqq=1)
    assert "unknown argument 'zzzz_qqqq'; the known names are memory_id" in message


async def test_every_unknown_argument_of_a_call_is_named(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        message = await fail(client, "list_memories", cube_ids=["work"], pages=2, ctx="x")
    for name in ("cube_ids", "pages", "ctx"):
        assert f"unknown argument '{name}'" in message


async def test_an_error_about_unknown_arguments_stays_small_however_many_are_sent(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        text = await fail(client, "list_memories", cube_id="work", **{f"arg_{i}": "x" * 20 for i in range(5_000)})
    assert "'arg_0'" in text and "and 4995 more unknown arguments" in text and len(text) < 4_000


async def test_argument_errors_read_like_every_other_tool_error(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        unknown = await fail(client, "list_memories", cube_ids=["work"])
        wrong_type = await fail(client, "search_memory", query="office", top_k="many")
    assert unknown.startswith("invalid_request: unknown argument 'cube_ids'; did you mean 'cube_id'?"), unknown
    assert wrong_type.startswith("invalid_request: top_k: "), wrong_type
    assert "validation error" not in unknown + wrong_type and "input_value" not in unknown + wrong_type


@pytest.mark.parametrize(("tool", "arguments", "field"), [
    ("search_memory", {"query": "office", "top_k": True}, "top_k"),
    ("search_memory", {"query": "office", "threshold": False}, "threshold"),
    ("list_memories", {"page": True}, "page"), ("list_memories", {"size": True}, "size"),
    ("search_memory", {"query": "office", "graph_depth": True}, "graph_depth"),
    ("search_memory", {"query": "office", "include_preference": 1}, "include_preference")])
async def test_a_boolean_where_a_number_belongs_or_a_number_for_a_boolean_is_refused_naming_the_argument(
        work: MemoryService, tool: str, arguments: dict[str, Any], field: str) -> None:
    """JSON's true was read as 1 (top_k: true searched for one hit), and 1 as true."""
    async with connect(work, "alice") as client:
        message = await fail(client, tool, **arguments)
    assert message.startswith(f"invalid_request: {field}: "), message
    assert "boolean" in message or "true or false" in message, message


@pytest.mark.parametrize(("tool", "arguments", "field"), [
    ("add_memory", {"memory_content": "Lunch is at noon.", "cube_id": ""}, "cube_id"),
    ("add_memory", {"messages": [{"role": "user", "content": "Lunch is at noon."}], "cube_id": ""}, "cube_id")])
async def test_an_empty_id_is_refused_not_read_as_the_default(work: MemoryService, tool: str,
                                                              arguments: dict[str, Any], field: str) -> None:
    """cube_id "" wrote into the default cube: a client's slip became a write somewhere it did not name."""
    before = stored(work, ALICE_CUBE)
    async with connect(work, "alice") as client:
        message = await fail(client, tool, **arguments)
    assert f"invalid_request: {field} is empty" in message, message
    assert stored(work, ALICE_CUBE) == before


async def test_an_unknown_key_inside_an_argument_is_refused_by_its_path(work: MemoryService) -> None:
    before = stored(work, ALICE_CUBE)
    async with connect(work, "alice") as client:
        message = await fail(client, "add_memory", messages=[{"role": "user", "text": "I live in Oslo."}])
        assert "unknown field 'messages.0.text'" in message
        message = await fail(client, "search_memory", query="office", filters={"memory_typ": "UserMemory"})
        assert "unknown field 'filters.memory_typ'; did you mean 'memory_type'?" in message
        message = await fail(client, "add_relations", triples=[{"subject": "A", "predicat": "knows", "object": "B"}])
        assert "unknown field 'triples.0.predicat'; did you mean 'predicate'?" in message
    assert stored(work, ALICE_CUBE) == before


@pytest.mark.parametrize("message, names", [
    ({"chat_time": "2024-01-01T00:00:00Z", "timestamp": "2020-01-01T00:00:00Z"}, "chat_time and timestamp"),
    ({"time": "2024-01-01T00:00:00Z", "created_at": "2024-01-01T00:00:00Z"}, "time and created_at"),
    ({"message_id": "m-a", "id": "m-b"}, "message_id and id"),
    ({"id": "m-b", "dia_id": "D1:3"}, "id and dia_id"),
])
async def test_two_names_of_one_message_field_are_refused_not_one_of_them_dropped(
        work: MemoryService, message: dict[str, Any], names: str) -> None:
    """A message's ``chat_time`` and ``timestamp`` (or ``message_id`` and ``id``) given together kept one
    value and dropped the other without a word."""
    before = stored(work, ALICE_CUBE)
    async with connect(work, "alice") as client:
        problem = await fail(client, "add_memory", messages=[{"role": "user", "content": "We met Ana.", **message}])
    assert "messages.0" in problem and f"{names} name the same field" in problem
    assert stored(work, ALICE_CUBE) == before


async def test_the_right_names_still_narrow_reads_and_direct_writes(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        await remember(client, "Lunch is at noon.")
        listed = await call(client, "list_memories", cube_id="work")
        assert [m["memory"] for m in listed["memories"]] == ["The office is on the fourth floor."]
        found = await call(client, "search_memory", query="lunch noon office", cube_ids=["work"])
        assert {m["cube_id"] for m in found["memories"]} == {"work"}
        added = await call(client, "add_memory", memory_content="Desk 12 is mine.", cube_id="work")
        assert added["cube_id"] == "work"


async def test_every_tool_schema_forbids_additional_properties(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        tools = (await client.list_tools()).tools
    assert len(tools) > 20
    for tool in tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.input_schema["title"] == f"{tool.name}Arguments"
        assert "ctx" not in tool.input_schema.get("properties", {})


def test_each_tool_schema_is_the_schema_of_the_argument_model_that_checks_its_calls(work: MemoryService) -> None:
    # ToolBox derives the strict schema from the SDK's rather than generating it again: they must agree
    tools = ToolBox()
    register_tools(tools, work, KeyRing(work), Gate("alice"), read_only=False)
    register_graph_tools(tools, GraphService(work), Gate("alice"), read_only=False)
    assert len(tools.tools) > 20
    for tool in tools.tools:
        assert tool.parameters == tool.fn_metadata.arg_model.model_json_schema(by_alias=True), tool.name


async def test_a_json_string_for_a_list_argument_is_still_accepted(work: MemoryService) -> None:
    """The SDK's leniency for clients that send lists as JSON text is kept."""
    async with connect(work, "alice") as client:
        found = await call(client, "search_memory", query="office", cube_ids='["work"]')
    assert {m["cube_id"] for m in found["memories"]} == {"work"}


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\u200b\u200c\u200d\u2060", " \u00ad\n\t", "\u3000\u2028",
                                  "\u3164", "\u2800\ufe0f", "\x00\x07",
                                  # unassigned but default-ignorable, lone combining marks, the object
                                  # replacement character
                                  "\u2065", "\ufff0\u0301", "\U000e0080", "\U000e0002", "\u3164\u2065",
                                  "\u200b\u0301", "\u0301", "\u17d2", "\ufffc", "\u20dd"])
async def test_text_that_shows_nothing_is_empty_everywhere_it_enters(work: MemoryService, text: str) -> None:
    before = stored(work, ALICE_CUBE)
    async with connect(work, "alice") as client:
        assert "memory_content is empty" in await fail(client, "add_memory", memory_content=text)
        assert "messages.0.content is empty" in await fail(
            client, "add_memory", messages=[{"role": "user", "content": text}])
        assert "query is empty" in await fail(client, "search_memory", query=text)
        memory = await remember(client, "The printer is by the window.")
        assert "memory is empty" in await fail(client, "update_memory", memory_id=memory["id"],
                                               memory_content=text)
        assert "cube needs a name" in await fail(client, "create_cube", name=text)
        assert (await call(client, "get_memory", memory_id=memory["id"]))["memory"] == \
            "The printer is by the window."
    assert stored(work, ALICE_CUBE) == before + 1


async def test_invisible_characters_inside_real_text_are_kept_as_text(work: MemoryService) -> None:
    async with connect(work, "alice") as client:
        memory = await remember(client, "Zoë\u200bSmith likes tea.")
    assert memory["memory"] == "Zoë\u200bSmith likes tea."


@pytest.mark.parametrize("cube_id", [".", "..", "...", "." * 128])
async def test_a_cube_id_made_only_of_dots_is_refused(work: MemoryService, cube_id: str) -> None:
    async with connect(work, "alice") as client:
        message = await fail(client, "create_cube", name="Dots", cube_id=cube_id)
        assert "cube_id" in message and "only of dots" in message
        assert "only of dots" in await fail(client, "add_memory", memory_content="A note.", conversation_id=cube_id)
    assert work.catalog.get_cube(cube_id) is None


@pytest.mark.parametrize("cube_id", [".hidden", "a..b", "v1.2", "..a", "@.", ":"])
async def test_a_cube_id_with_dots_and_something_else_is_addressable(work: MemoryService, cube_id: str) -> None:
    async with connect(work, "alice") as client:
        assert (await call(client, "create_cube", name="Dotted", cube_id=cube_id))["cube_id"] == cube_id
        memory = await remember(client, "A dotted note.", cube_id=cube_id)
        exported = await client.read_resource(f"memory://cubes/{cube_id}/export")
        one = await client.read_resource(f"memory://cubes/{cube_id}/memories/{memory['id']}")
    assert "A dotted note." in str(exported.contents[0]) and "A dotted note." in str(one.contents[0])


@pytest.mark.parametrize("user_id", [".", "..", "...."])
async def test_a_user_id_made_only_of_dots_is_refused(work: MemoryService, user_id: str) -> None:
    async with connect(work, ROOT_USER) as root:
        message = await fail(root, "register_user", user_id=user_id)
    assert "user_id" in message and "only of dots" in message
    assert work.catalog.get_user(user_id) is None
