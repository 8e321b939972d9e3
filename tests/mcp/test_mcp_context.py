"""Resources and prompts: the caller's cubes, one memory, a cube's export, and the recall and
remember prompts, each acting for the calling user."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmbeddedResource, PromptMessage, TextContent, TextResourceContents

from memos_mcp.core.models import Permission
from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect, read_text, remember

pytestmark = pytest.mark.anyio

CUBE = "alice_default_cube"


async def test_the_cubes_resource_lists_the_callers_cubes_and_only_those(people: MemoryService) -> None:
    people.create_cube("bob", "Bob's work", cube_id="bob-work")
    async with connect(people, "alice") as alice:
        await call(alice, "create_cube", name="Alice's work", cube_id="alice-work")
        listed = (await alice.list_resources()).resources
        assert [(str(r.uri), r.mime_type) for r in listed] == [("memory://cubes", "application/json")]

        text, mime = await read_text(alice, "memory://cubes")
        assert mime == "application/json"
        assert [(c["cube_id"], c["permission"]) for c in json.loads(text)] == [(CUBE, "owner"), ("alice-work", "owner")]

        people.share_cube("bob", "bob-work", "alice", Permission.READ)
        text, _ = await read_text(alice, "memory://cubes")
        assert "bob-work" not in [c["cube_id"] for c in json.loads(text)]  # offered, not yet accepted
        await call(alice, "accept_share", cube_id="bob-work")
        text, _ = await read_text(alice, "memory://cubes")
        assert [(c["cube_id"], c["permission"]) for c in json.loads(text)] == [
            (CUBE, "owner"), ("bob-work", "read"), ("alice-work", "owner")]
    async with connect(people, "bob") as bob:
        text, _ = await read_text(bob, "memory://cubes")
        assert [c["cube_id"] for c in json.loads(text)] == ["bob_default_cube", "bob-work"]


async def test_the_memory_and_export_templates_are_listed(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        templates = {t.name: t for t in (await client.list_resource_templates()).resource_templates}
    assert set(templates) == {"memory", "cube-export", "cube-export-part"}
    assert templates["memory"].uri_template == "memory://cubes/{cube_id}/memories/{memory_id}"
    assert templates["memory"].mime_type == "application/json"
    assert templates["cube-export"].uri_template == "memory://cubes/{cube_id}/export"
    assert templates["cube-export"].mime_type == "application/x-ndjson"
    assert all(t.description for t in templates.values())


async def test_the_memory_template_returns_the_memory_as_json_with_its_metadata(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "The spare tyre is in the garage loft.", tags=["car"],
                                metadata={"message_id": "m-7", "pinned": True})
        text, mime = await read_text(client, f"memory://cubes/{CUBE}/memories/{memory['id']}")
        fetched = await call(client, "get_memory", memory_id=memory["id"])
    assert mime == "application/json"
    found = json.loads(text)
    assert found["metadata"] == {"message_id": "m-7", "pinned": True}
    assert (found["id"], found["memory"], found["ref_id"]) == (memory["id"], memory["memory"], memory["ref_id"])
    assert "embedding" not in found
    assert found == {k: v for k, v in fetched.items() if k != "embedding"}


async def test_the_export_template_returns_the_cube_as_jsonl(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        for text in ("The recycling goes out on Tuesdays.", "The piano tuner calls in spring."):
            await remember(client, text)
        exported, mime = await read_text(client, f"memory://cubes/{CUBE}/export")
        tool = await client.call_tool("export_cube", {"cube_id": CUBE})
    assert mime == "application/x-ndjson" and exported.endswith("\n")
    lines = exported.splitlines()
    header = json.loads(lines[0])
    assert (header["type"], header["cube"]["cube_id"], header["memories"]) == ("header", CUBE, 2)
    assert sorted(json.loads(line)["memory"] for line in lines[1:]) == [
        "The piano tuner calls in spring.", "The recycling goes out on Tuesdays."]
    part = tool.content[0]
    assert isinstance(part, EmbeddedResource) and isinstance(part.resource, TextResourceContents)
    assert part.resource.text.splitlines()[1:] == lines[1:]  # the same records as the export_cube tool


async def test_a_memory_that_does_not_exist_cannot_be_read_as_a_resource(people: MemoryService) -> None:
    """-32602 Invalid params for a resource that does not exist (with its URI in ``data.uri``) and for
    a bad cursor, as the MCP specification has them since SEP-2164 (2026-07-28; before: -32002); an
    unknown URI pattern is answered the same way by the SDK. All three were -32603, an internal error."""
    missing_memory = f"memory://cubes/{CUBE}/memories/00000000-0000-4000-8000-000000000000"
    async with connect(people, "alice") as client:
        for uri, data in ((missing_memory, {"uri": missing_memory}),
                          ("memory://cubes/no-such-cube/export", {"uri": "memory://cubes/no-such-cube/export"}),
                          ("memory://nothing", {"uri": "memory://nothing"}),
                          (f"memory://cubes/{CUBE}/export/not-a-cursor", None)):
            with pytest.raises(MCPError) as refused:
                await read_text(client, uri)
            assert refused.value.error.code == INVALID_PARAMS, (uri, refused.value.error)
            assert refused.value.error.data == data, (uri, refused.value.error)


async def test_a_resource_that_cannot_be_read_says_why(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        with pytest.raises(MCPError) as missing:
            await read_text(client, "memory://cubes/no-such-cube/export")
    assert "cube 'no-such-cube' does not exist" in str(missing.value)


async def test_the_recall_prompt_lays_out_memories_and_preferences_with_their_ref_ids(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert [(a.name, a.required) for a in prompts["recall"].arguments or []] == [("topic", True)]
        fact = await remember(client, "My sister Ana lives in Porto.")
        prefs = await call(client, "add_memory", messages=[{"role": "user", "content": "I can't stand loud bars."}])
        preference = next(m for m in prefs["memories"] if m["kind"] == "preference")

        recalled = await client.get_prompt("recall", {"topic": "my sister"})
        text = prompt_text(recalled.messages)
        assert f"- {fact['ref_id']} My sister Ana lives in Porto. (relevance " in text
        assert "my sister" in text and "cite" in text and "ref_id" in text

        bars = prompt_text((await client.get_prompt("recall", {"topic": "loud bars"})).messages)
        assert f"Preferences:\n- {preference['ref_id']} I can't stand loud bars." in bars


async def test_the_recall_prompt_says_when_nothing_is_stored_and_acts_for_the_caller(people: MemoryService) -> None:
    async with connect(people, "alice") as alice:
        await remember(alice, "Alice's locker is number 12.")
    async with connect(people, "bob") as bob:
        text = prompt_text((await bob.get_prompt("recall", {"topic": "locker number"})).messages)
    assert "- nothing stored yet" in text and "- none recorded" in text and "Alice" not in text


async def test_the_remember_prompt_asks_for_add_memory_with_an_optional_focus(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert [(a.name, a.required) for a in prompts["remember"].arguments or []] == [("focus", False)]
        plain = await client.get_prompt("remember", {})
        focused = await client.get_prompt("remember", {"focus": "travel plans"})
    assert [m.role for m in plain.messages] == ["user"]
    assert "add_memory" in prompt_text(plain.messages) and "especially" not in prompt_text(plain.messages)
    assert "especially about travel plans" in prompt_text(focused.messages)


def prompt_text(messages: Sequence[PromptMessage]) -> str:
    parts = [m.content for m in messages]
    assert all(isinstance(p, TextContent) for p in parts)
    return "\n".join(p.text for p in parts)


@pytest.mark.parametrize(("name", "arguments", "field"), [
    ("recall", {}, "topic"), ("recall", {"focus": "x"}, "topic"), ("recall", {"topic": "x", "extra": "y"}, "extra"),
    ("remember", {"topic": "x"}, "topic"), ("recal", {"topic": "x"}, "name")])
async def test_a_prompt_with_a_missing_or_unknown_argument_is_invalid_params_naming_it(
        people: MemoryService, name: str, arguments: dict[str, str], field: str) -> None:
    """The SDK answered error code 0, "Error rendering prompt recall", naming nothing (and logged a traceback)."""
    async with connect(people, "alice") as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt(name, arguments)
    assert refused.value.error.code == INVALID_PARAMS
    assert f"{field}:" in refused.value.error.message and name in refused.value.error.message
