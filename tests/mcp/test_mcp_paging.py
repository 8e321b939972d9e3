"""list_memories over MCP visits each memory once at any page size, although one add wrote them all
at one time."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect

pytestmark = pytest.mark.anyio

COUNT = 600


async def test_list_memories_pages_of_any_size_hold_each_memory_of_one_batch_once(people: MemoryService) -> None:
    messages = [{"role": "user", "content": f"Log {n}: the parcel {n} went to bay {n % 17}."} for n in range(COUNT)]
    ids = {m.id for m in people.add_memory("alice", messages=messages).memories}
    async with connect(people, "alice") as client:
        for size in (7, 128, 200):
            seen: list[str] = []
            for page in range(1, COUNT // size + 2):
                found = await call(client, "list_memories", page=page, size=size)
                assert found["total"] == COUNT
                seen += [m["id"] for m in found["memories"]]
            assert len(seen) == COUNT and set(seen) == ids, size
