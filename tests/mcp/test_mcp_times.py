"""Times over MCP: one that no store can hold is a tool error naming the field and stores nothing; a
bare-date upper bound in the filters includes that whole day."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import MemoryService
from tests.mcp.support import call, connect, fail

pytestmark = pytest.mark.anyio


async def test_a_message_time_beyond_the_storable_range_is_a_tool_error_naming_it(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        message = await fail(client, "add_memory", conversation_id="c1", messages=[
            {"role": "user", "content": "The boiler was serviced.", "chat_time": "9999-12-31T23:59:59-05:00"}])
        assert "chat_time" in message
        listed = await call(client, "list_memories")
    assert listed["total"] == 0 and people.get_messages("alice", "c1") == []


async def test_a_bare_date_upper_bound_includes_the_evening_of_that_day(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        await call(client, "add_memory", conversation_id="c1", messages=[
            {"role": "user", "content": "The late ferry left the harbour.", "chat_time": 1772492400}])  # 23:00Z
        found = await call(client, "list_memories", filters={"time_from": "2026-03-02", "time_to": "2026-03-02"})
        before = await call(client, "list_memories", filters={"time_to": "2026-03-01"})
    assert [m["memory"] for m in found["memories"]] == ["The late ferry left the harbour."]
    assert before["total"] == 0
