"""Listings, exports and deletes visit each memory exactly once, although the memories of one add
share one creation time (the store orders by it alone)."""

from __future__ import annotations

import json

import pytest

from memos_mcp.core.portability import export_cube, export_part
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest

COUNT = 600


def batch(service: MemoryService, count: int = COUNT) -> set[str]:
    """One add of ``count`` user messages: ``count`` memories with one ``created_at``."""
    service.ensure_user("alice")
    messages = [{"role": "user", "content": f"Reminder {n}: shelf {n * 7 % 997} holds box {n}."}
                for n in range(count)]
    added = service.add_memory("alice", messages=messages)
    ids = {m.id for m in added.memories}
    assert len(ids) == count
    return ids


def test_pages_of_any_size_list_each_memory_of_one_batch_once(service: MemoryService) -> None:
    ids = batch(service)
    for size in (7, 128, 200):
        seen = []
        for page in range(1, COUNT // size + 2):
            found = service.list_memories("alice", page=page, size=size)
            assert found.total == COUNT
            seen += [m.id for m in found.memories]
        assert len(seen) == COUNT and set(seen) == ids, size


def test_pages_of_one_memory_list_each_memory_of_one_batch_once(service: MemoryService) -> None:
    ids = batch(service, 120)
    seen = [m.id for page in range(1, 122) for m in service.list_memories("alice", page=page, size=1).memories]
    assert len(seen) == 120 and set(seen) == ids


def test_the_export_holds_each_memory_of_one_batch_once(service: MemoryService) -> None:
    ids = batch(service)
    cube = service.get_user("alice")[1][0].cube_id
    records = [json.loads(line) for line in export_cube(service, "alice", cube)]
    memories = [r["id"] for r in records if r["type"] == "memory"]
    assert len(memories) == COUNT and set(memories) == ids
    assert sum(r["type"] == "message" for r in records) == COUNT


def test_export_parts_joined_hold_each_record_once_and_fit_their_size(service: MemoryService) -> None:
    ids = batch(service)
    cube = service.get_user("alice")[1][0].cube_id
    lines: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        part = export_part(service, "alice", cube, cursor, max_bytes=64 * 1024)
        assert len(part.text.encode()) < 64 * 1024 + 4096
        lines += part.text.splitlines()
        cursor = part.cursor
        if cursor is None:
            break
    records = [json.loads(line) for line in lines]
    assert cursor is None and records[0]["type"] == "header"
    memories = [r for r in records if r["type"] == "memory"]
    assert [r["id"] for r in memories] == [json.loads(x)["id"] for x in export_cube(service, "alice", cube)
                                           if json.loads(x)["type"] == "memory"]
    assert set(r["id"] for r in memories) == ids and all("embedding" not in r for r in memories)
    assert sum(r["type"] == "message" for r in records) == COUNT
    assert sum(r["type"] == "next" for r in records) >= 2


def test_deleting_a_cube_s_memories_forgets_every_one_of_a_batch(service: MemoryService) -> None:
    ids = batch(service)
    cube = service.get_user("alice")[1][0].cube_id
    assert service.delete_all("alice", cube) == COUNT
    assert service.list_memories("alice", size=10).total == 0
    assert all(service.history("alice", memory_id)[-1].event == "DELETE" for memory_id in sorted(ids)[::50])


@pytest.mark.parametrize("cursor", ["nonsense", "e30=", "W10="])
def test_an_export_cursor_that_was_not_returned_is_refused_naming_the_field(service: MemoryService,
                                                                           cursor: str) -> None:
    service.ensure_user("alice")
    cube = service.get_user("alice")[1][0].cube_id
    with pytest.raises(InvalidRequest) as refused:
        export_part(service, "alice", cube, cursor)
    assert refused.value.details["field"] == "cursor"
