"""Two servers over the same service, one acting as alice and one as bob: bob reaches none of alice's
memories through any tool or resource until she shares her cube, and then exactly as far as the share."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect, fail, read_text, remember

pytestmark = pytest.mark.anyio

CUBE = "alice_default_cube"
SECRET = "Alice's bank PIN hint is her first cat."
MEMORY = "<alice's memory id>"


@pytest.fixture
def secret(people: MemoryService) -> str:
    """Alice's memory (its id) and a private conversation in her default cube."""
    memory_id = people.add_memory("alice", memory_content=SECRET, conversation_id="private").memories[0].id
    people.add_memory("alice", conversation_id="private",
                      messages=[{"role": "user", "content": "The surprise party is on the 9th."}])
    return memory_id


def alice_is_untouched(service: MemoryService, memory_id: str) -> None:
    memory = service.get_memory("alice", memory_id)
    assert (memory.memory, memory.status.value) == (SECRET, "activated")
    assert service.list_memories("alice").total == 2
    assert [m.content for m in service.get_messages("alice", "private")] == ["The surprise party is on the 9th."]
    cube = service.catalog.get_cube(CUBE)
    assert cube is not None and cube.shared_with == {}
    assert [e.event for e in service.history("alice", memory_id)] == ["ADD"]


REFUSED: dict[str, tuple[str, dict[str, Any]]] = {
    "search her cube": ("search_memory", {"query": "bank PIN hint", "cube_ids": [CUBE]}),
    "get": ("get_memory", {"memory_id": MEMORY}),
    "get in her cube": ("get_memory", {"memory_id": MEMORY, "cube_id": CUBE}),
    "update": ("update_memory", {"memory_id": MEMORY, "memory_content": "Bob was here."}),
    "archive": ("update_memory", {"memory_id": MEMORY, "status": "archived"}),
    "delete": ("delete_memory", {"memory_id": MEMORY}),
    "delete all": ("delete_all_memories", {"cube_id": CUBE}),
    "list her cube": ("list_memories", {"cube_id": CUBE}),
    "history": ("memory_history", {"memory_id": MEMORY}),
    "export": ("export_cube", {"cube_id": CUBE}),
    "add to her cube": ("add_memory", {"memory_content": "Bob was here.", "cube_id": CUBE}),
    "delete her cube": ("delete_cube", {"cube_id": CUBE}),
    "share her cube with himself": ("share_cube", {"cube_id": CUBE, "target_user_id": "bob", "permission": "write"}),
}


@pytest.mark.parametrize("operation", REFUSED)
async def test_every_tool_on_alices_cube_is_refused_to_bob(people: MemoryService, secret: str, operation: str) -> None:
    tool, arguments = REFUSED[operation]
    async with connect(people, "bob") as bob:
        message = await fail(bob, tool, **{k: secret if v == MEMORY else v for k, v in arguments.items()})
    assert "forbidden" in message or "not_found" in message
    assert "PIN" not in message
    alice_is_untouched(people, secret)


async def test_a_refused_memory_looks_exactly_like_one_that_does_not_exist(people: MemoryService, secret: str) -> None:
    invented = str(uuid.uuid4())
    async with connect(people, "bob") as bob:
        for tool in ("get_memory", "memory_history", "delete_memory"):
            real = await fail(bob, tool, memory_id=secret)
            made_up = await fail(bob, tool, memory_id=invented)
            assert real.replace(secret, "ID") == made_up.replace(invented, "ID"), tool


async def test_bob_sees_nothing_of_alice_in_his_own_searches_lists_and_cubes(people: MemoryService,
                                                                           secret: str) -> None:
    async with connect(people, "bob") as bob:
        found = await call(bob, "search_memory", query="bank PIN hint first cat", top_k=50)
        assert (found["memories"], found["preferences"], found["cube_ids"]) == ([], [], ["bob_default_cube"])
        assert (await call(bob, "list_memories"))["total"] == 0
        assert [c["cube_id"] for c in (await call(bob, "list_cubes"))["cubes"]] == ["bob_default_cube"]
        assert (await call(bob, "get_user_info"))["user"]["user_id"] == "bob"
        assert await call(bob, "get_suggestions") == {"suggestions": []}
        assert await call(bob, "clear_chat_history", conversation_id="private") == {"deleted": 0, "id": "private"}
        assert (await call(bob, "clear_chat_history"))["deleted"] == 0
    alice_is_untouched(people, secret)


async def test_bob_cannot_read_alices_memory_or_export_as_resources(people: MemoryService, secret: str) -> None:
    async with connect(people, "bob") as bob:
        for uri in (f"memory://cubes/{CUBE}/memories/{secret}", f"memory://cubes/{CUBE}/export"):
            with pytest.raises(MCPError) as refused:
                await bob.read_resource(uri)
            assert "PIN" not in str(refused.value)
        listed, _ = await read_text(bob, "memory://cubes")
        assert CUBE not in listed


async def test_a_read_share_lets_bob_search_and_read_but_not_change(people: MemoryService, secret: str) -> None:
    keys = KeyRing(people)
    async with connect(people, "alice", keys) as alice, connect(people, "bob", keys) as bob:
        await call(alice, "share_cube", cube_id=CUBE, target_user_id="bob", permission="read")
        await call(bob, "accept_share", cube_id=CUBE)

        assert (await call(bob, "search_memory", query="bank PIN hint"))["memories"][0]["id"] == secret
        named = await call(bob, "search_memory", query="bank PIN hint", cube_ids=[CUBE])
        assert named["memories"][0]["id"] == secret and named["cube_ids"] == [CUBE]
        assert (await call(bob, "get_memory", memory_id=secret))["memory"] == SECRET
        assert (await call(bob, "list_memories", cube_id=CUBE))["total"] == 2
        assert [e["event"] for e in (await call(bob, "memory_history", memory_id=secret))["events"]] == ["ADD"]
        assert (await bob.call_tool("export_cube", {"cube_id": CUBE})).is_error is False
        resource, _ = await read_text(bob, f"memory://cubes/{CUBE}/memories/{secret}")
        assert json.loads(resource)["memory"] == SECRET

        for tool, arguments in (("update_memory", {"memory_id": secret, "memory_content": "Bob was here."}),
                                ("update_memory", {"memory_id": secret, "status": "archived"}),
                                ("delete_memory", {"memory_id": secret}),
                                ("delete_all_memories", {"cube_id": CUBE}),
                                ("add_memory", {"memory_content": "Bob was here.", "cube_id": CUBE}),
                                ("delete_cube", {"cube_id": CUBE}),
                                ("share_cube", {"cube_id": CUBE, "target_user_id": "bob", "permission": "write"})):
            assert "forbidden" in await fail(bob, tool, **arguments), tool
    assert people.get_memory("alice", secret).memory == SECRET
    assert people.list_memories("alice").total == 2
    cube = people.catalog.get_cube(CUBE)
    assert cube is not None and cube.shared_with == {"bob": "read"}


async def test_a_write_share_lets_bob_add_and_edit_but_not_manage_the_cube(people: MemoryService,
                                                                         secret: str) -> None:
    async with connect(people, "alice") as alice, connect(people, "bob") as bob:
        await call(alice, "share_cube", cube_id=CUBE, target_user_id="bob", permission="write")

        added = await remember(bob, "Bob will bring the cake.", cube_id=CUBE)
        assert (added["cube_id"], added["user_id"]) == (CUBE, "bob")
        assert (await call(alice, "get_memory", memory_id=added["id"]))["memory"] == "Bob will bring the cake."
        edited = await call(bob, "update_memory", memory_id=secret, tags=["checked-by-bob"])
        assert edited["tags"] == ["checked-by-bob"] and edited["memory"] == SECRET
        assert "forbidden" in await fail(bob, "delete_cube", cube_id=CUBE)
        assert "forbidden" in await fail(bob, "share_cube", cube_id=CUBE, target_user_id="root")
        bobs_own = await remember(bob, "Bob's own note.")
        assert bobs_own["cube_id"] == "bob_default_cube"  # his default cube is still the one he writes to
    assert people.list_memories("alice", cube_ids=[CUBE]).total == 3
