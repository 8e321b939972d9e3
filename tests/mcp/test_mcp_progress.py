"""add_memory reports progress while it stores a long text in many chunks."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from memos_mcp.core.service import MemoryService
from memos_mcp.core.write.add import WRITE_GROUP
from tests.conftest import ServiceFactory
from tests.mcp.support import connect

pytestmark = pytest.mark.anyio

# About 300 chunks of at most 150 characters: more than one write group (WRITE_GROUP memories).
LONG_NOTE = " ".join(f"Sentence number {i} is about topic {i} of the long note." for i in range(600))
SHORT_NOTE = " ".join(f"Step {i}: check the valve on floor {i}." for i in range(30))


@pytest.fixture
def chunky(make_service: ServiceFactory) -> MemoryService:
    service = make_service(chunk_size=150, max_memory_size=40_000)
    service.ensure_user("alice")
    return service


async def add_with_progress(client: Client, text: str) -> tuple[CallToolResult, list[tuple[float, float | None]]]:
    seen: list[tuple[float, float | None]] = []
    finished = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))
        if total is not None and progress >= total:
            finished.set()

    result = await client.call_tool("add_memory", {"memory_content": text}, progress_callback=on_progress)
    assert not result.is_error
    if seen or client.mode == "legacy":
        with anyio.fail_after(10):  # over JSON-RPC a notification may be handled just after the result
            await finished.wait()
    return result, seen


def assert_climbs_to(seen: list[tuple[float, float | None]], total: int) -> None:
    assert seen, "no progress notification arrived"
    progress = [p for p, _ in seen]
    assert progress == sorted(set(progress)), "progress must increase"
    assert {t for _, t in seen} == {float(total)}
    assert seen[-1] == (float(total), float(total))


async def test_add_memory_reports_increasing_progress_up_to_the_total(chunky: MemoryService) -> None:
    # mode="legacy": the JSON-RPC session that stdio and HTTP clients speak, with a progress token.
    async with connect(chunky, "alice", mode="legacy") as client:
        result, seen = await add_with_progress(client, LONG_NOTE)
    added = result.structured_content["added"] if result.structured_content else []
    assert len(added) > WRITE_GROUP
    assert len(seen) >= 2
    assert_climbs_to(seen, len(added))
    assert chunky.list_memories("alice").total == len(added)


async def test_a_few_chunks_still_report_progress_at_the_total(chunky: MemoryService) -> None:
    async with connect(chunky, "alice", mode="legacy") as client:
        result, seen = await add_with_progress(client, SHORT_NOTE)
    added = result.structured_content["added"] if result.structured_content else []
    assert 1 < len(added) < WRITE_GROUP
    assert_climbs_to(seen, len(added))


async def test_an_in_process_client_hears_progress_too(chunky: MemoryService) -> None:
    async with connect(chunky, "alice") as client:
        result, seen = await add_with_progress(client, SHORT_NOTE)
    added = result.structured_content["added"] if result.structured_content else []
    assert_climbs_to(seen, len(added))
