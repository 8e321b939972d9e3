"""MCP answers that fit one server-sent event: the SDK clients (streamable HTTP and the legacy SSE
transport) refuse an event over 1 MiB, so a search with a large top_k, a listing page or an add of many
long memories must not answer with more. A tool whose list does not fit answers the head of it and says
how many items it left out (``omitted``); an answer that cannot be cut is a tool error naming the
cause, never a broken transport."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from memos_mcp.config import Settings
from memos_mcp.core import portability
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService
from memos_mcp.mcp.fit import ANSWER_BYTES
from tests.http.conftest import Serve
from tests.http.support import TIMEOUT, legacy_sse, running_app, streamable, text_of

COUNT = 240
PAD = "x" * 7_000  # metadata a caller may attach (16 KB of JSON is allowed): 240 of them are about 3.5 MB


CLIENTS = {"streamable": streamable, "sse": legacy_sse}  # both with the SDK's default limit per event
Client = Callable[[str], AbstractAsyncContextManager[ClientSession]]


def fill(service: MemoryService) -> str:
    user = service.settings.default_user_id
    for n in range(COUNT):
        service.add_memory(user, memory_content=f"Ledger entry {n}: crate {n} of the blue shipment went to "
                                                f"dock {n % 17} on pallet {n * 7 % 101}.",
                           metadata={"pad": PAD, "n": n})
    return user


def run(client: Client, url: str, scenario: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with anyio.fail_after(TIMEOUT * 3):
            async with client(url) as session:
                return await scenario(session)
    return anyio.run(main)


def wire_size(result: Any) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


@pytest.mark.parametrize("transport", sorted(CLIENTS))
def test_a_search_with_a_large_top_k_answers_its_best_hits_and_counts_the_rest(serve: Serve, transport: str) -> None:
    app = serve()
    user = fill(app.service)
    whole = app.service.search(user, "which dock did the blue shipment crate go to", top_k=COUNT)
    assert len(whole.memories) == COUNT

    result = run(CLIENTS[transport], app.url, lambda s: s.call_tool(
        "search_memory", {"query": "which dock did the blue shipment crate go to", "top_k": COUNT}))
    assert not result.is_error, text_of(result)
    found = result.structured_content
    assert 0 < len(found["memories"]) < COUNT
    assert found["omitted"] == COUNT - len(found["memories"])
    assert [m["id"] for m in found["memories"]] == [m.id for m in whole.memories[:len(found["memories"])]]
    assert json.loads(result.content[0].text) == found  # the text copy says the same
    assert wire_size(result) <= 1024 * 1024


def test_a_listing_page_that_does_not_fit_answers_its_head_and_counts_the_rest(serve: Serve) -> None:
    app = serve()
    user = fill(app.service)
    whole = app.service.list_memories(user, page=1, size=200)
    result = run(streamable, app.url, lambda s: s.call_tool("list_memories", {"size": 200}))
    assert not result.is_error, text_of(result)
    page = result.structured_content
    assert 0 < len(page["memories"]) < 200 and page["omitted"] == 200 - len(page["memories"])
    assert (page["total"], page["page"], page["size"]) == (COUNT, 1, 200)
    assert [m["id"] for m in page["memories"]] == [m.id for m in whole.memories[:len(page["memories"])]]

    small = run(streamable, app.url, lambda s: s.call_tool("list_memories", {"size": 20, "page": 2}))
    assert small.structured_content["omitted"] == 0
    assert [m["id"] for m in small.structured_content["memories"]] == \
        [m.id for m in app.service.list_memories(user, page=2, size=20).memories]


def test_an_add_of_many_memories_stores_them_all_and_answers_what_fits(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    messages = [{"role": "user", "content": f"Turn {n}: the green van number {n} parks at bay {n % 9}."}
                for n in range(COUNT)]
    result = run(streamable, app.url, lambda s: s.call_tool(
        "add_memory", {"messages": messages, "metadata": {"pad": PAD}, "conversation_id": "vans"}))
    assert not result.is_error, text_of(result)
    added = result.structured_content
    stored = app.service.list_memories(user, page=1, size=200).total
    assert stored >= COUNT
    assert len(added["memories"]) > 0 and added["omitted"] == stored - len(added["memories"])
    assert wire_size(result) <= 1024 * 1024


def test_a_memory_too_large_for_one_answer_is_a_tool_error_naming_the_cause(serve: Serve) -> None:
    app = serve()
    user = app.service.settings.default_user_id
    cube = app.service.get_user(user)[1][0].cube_id
    ident = "0b6d5e0e-54c3-4c52-9b4a-4d7f0b1c2d3e"
    big = "€uro " * 3_900  # 19,500 characters (27,300 bytes): each source within the bounds an import checks
    header = next(portability.export_cube(app.service, user, cube, include_embeddings=False))
    memory = {"type": "memory", "id": ident, "cube_id": cube, "user_id": user, "memory": "the fat ledger",
              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
              "sources": [{"type": "chat", "content": big, "message_id": f"m{n}"} for n in range(50)]}
    portability.import_lines(app.service, user, [header, json.dumps(memory)], cube)

    result = run(streamable, app.url, lambda s: s.call_tool("get_memory", {"memory_id": ident}))
    assert result.is_error and text_of(result).startswith("response_too_large:"), text_of(result)
    first = run(streamable, app.url, lambda s: s.call_tool("export_cube", {"cube_id": cube}))
    assert not first.is_error  # the header alone: the fat memory's line starts the next part
    cursor = json.loads(first.content[0].resource.text.splitlines()[-1])["cursor"]
    second = run(streamable, app.url, lambda s: s.call_tool("export_cube", {"cube_id": cube, "cursor": cursor}))
    assert second.is_error and text_of(second).startswith("response_too_large:"), text_of(second)

    async def read(session: ClientSession) -> str:
        with pytest.raises(MCPError) as refused:
            await session.read_resource(f"memory://cubes/{cube}/memories/{ident}")
        return refused.value.error.message
    assert "response_too_large:" in run(legacy_sse, app.url, read)
    searched = run(streamable, app.url, lambda s: s.call_tool(
        "search_memory", {"query": "the fat ledger"}))
    assert not searched.is_error, text_of(searched)
    assert ident not in [m["id"] for m in searched.structured_content["memories"]]
    assert searched.structured_content["omitted"] >= 1


def _imported(app: Any, records: list[dict[str, Any]]) -> str:
    """Memories put in through an import (an add would store pieces of 1,200 characters); the cube."""
    user = app.service.settings.default_user_id
    cube = app.service.get_user(user)[1][0].cube_id
    header = next(portability.export_cube(app.service, user, cube, include_embeddings=False))
    lines = [json.dumps({"type": "memory", "id": str(uuid.uuid4()), "cube_id": cube, "user_id": user,
                         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", **r})
             for r in records]
    portability.import_lines(app.service, user, [header, *lines], cube)
    return cube


FILL = "\x01" * 19_900  # a storable control character: six bytes each once escaped as JSON


def test_the_recall_prompt_and_a_search_of_long_facts_and_preferences_keep_the_best_fact(serve: Serve) -> None:
    """The recall prompt was not fitted at all (2 MB: the SDK clients lost their session), and a search
    emptied its facts before cutting its preferences (the best fact was lost)."""
    app = serve()
    _imported(app, [{"memory": f"The blue whale ledger note {n}. {FILL}"} for n in range(10)]
              + [{"memory": f"I prefer blue whale ledger notes, style {n}. {FILL}", "kind": "preference"}
                 for n in range(6)])
    user = app.service.settings.default_user_id
    best = app.service.search(user, "blue whale ledger note", top_k=10).memories[0]

    async def scenario(session: ClientSession) -> tuple[Any, Any]:
        prompt = await session.get_prompt("recall", {"topic": "blue whale ledger note"})
        found = await session.call_tool("search_memory", {"query": "blue whale ledger note", "top_k": 10})
        return prompt, found
    for client in (streamable, legacy_sse):
        prompt, found = run(client, app.url, scenario)
        text = prompt.messages[0].content.text
        assert best.ref_id in text and "more left out" in text
        assert not found.is_error, text_of(found)
        assert [m["id"] for m in found.structured_content["memories"]][:1] == [best.id]
        assert found.structured_content["omitted"] > 0


def test_errors_quoting_a_megabyte_of_input_are_cut_and_the_session_goes_on(serve: Serve) -> None:
    """An unknown tool, resource or memory id of 1.2 million characters was quoted whole: an error over
    1 MiB, and the SDK client lost its session."""
    app = serve()
    big = "k" * 1_200_000

    async def scenario(session: ClientSession) -> list[str]:
        texts = [text_of(await session.call_tool(name, arguments)) for name, arguments in
                 ((big, {}), ("get_memory", {"memory_id": big}), ("add_memory", {"memory_content": "x",
                                                                                   "metadata": {big: 1}}))]
        with pytest.raises(MCPError) as refused:
            await session.read_resource(f"memory://cubes/{big}/export")
        texts.append(refused.value.error.message)
        assert not (await session.call_tool("list_cubes", {})).is_error  # the same session, still usable
        return texts
    texts = run(streamable, app.url, scenario)
    assert all(0 < len(text) < 2_200 and "characters cut" in text for text in texts), [t[:80] for t in texts]


def test_an_export_part_ends_before_a_line_that_would_take_it_past_its_size(serve: Serve) -> None:
    """A part closed only once it was full, after a line of any size: 130 small memories and one whose
    line fits a part alone made a first part over 1 MiB, refused at the same cursor for ever."""
    app = serve()
    small = [{"memory": f"Small note {n}: " + "s" * 1350, "created_at": f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}Z"}
             for n in range(130)]
    fat = {"memory": "The fat memory", "created_at": "2024-06-01T00:00:00Z",
           "sources": [{"type": "chat", "content": "f" * 19_990, "message_id": f"m{n}"} for n in range(42)]}
    cube = _imported(app, [*small, fat])
    user = app.service.settings.default_user_id
    parts, cursor = [], None
    for _ in range(20):
        part = portability.export_part(app.service, user, cube, cursor)
        parts.append(part.text)
        cursor = part.cursor
        if cursor is None:
            break
    sizes = [len(json.dumps(text, ensure_ascii=False).encode()) for text in parts]
    assert len(parts) >= 2 and max(sizes) < ANSWER_BYTES, sizes
    assert sum(text.count('"type":"memory"') for text in parts) == 131

    async def scenario(session: ClientSession) -> list[bool]:
        errors, at = [], None
        for _ in range(20):
            result = await session.call_tool("export_cube", {"cube_id": cube, **({"cursor": at} if at else {})})
            errors.append(result.is_error)
            lines = result.content[0].resource.text.splitlines()
            last = json.loads(lines[-1])
            at = last.get("cursor") if last["type"] == "next" else None
            if at is None:
                return errors
        raise AssertionError("the export did not end")
    assert not any(run(streamable, app.url, scenario))


def _revised(service: MemoryService, texts: list[str]) -> str:
    """A memory added with a short text, then updated to each of ``texts`` in turn; its id."""
    user = service.settings.default_user_id
    memory_id = service.add_memory(user, memory_content="The lighthouse log.").memories[0].id
    for text in texts:
        service.update_memory(user, memory_id, memory=text)
    return memory_id


def test_a_history_over_one_message_answers_its_newest_events_oldest_first_and_counts_the_rest(
        serve: Serve) -> None:
    """A memory updated often with long texts had a history over 1 MiB: memory_history answered
    response_too_large for ever, and the history could not be read over MCP."""
    app = serve()
    longest = app.service.settings.max_memory_size  # 20,000 characters
    memory_id = _revised(app.service, [f"Lighthouse log, revision {n}: " + "€" * (longest - 40) for n in range(12)])
    whole = app.service.history(app.service.settings.default_user_id, memory_id)  # oldest first
    assert len(whole) == 13

    for client in (streamable, legacy_sse):
        result = run(client, app.url, lambda s: s.call_tool("memory_history", {"memory_id": memory_id}))
        assert not result.is_error, text_of(result)
        history = result.structured_content
        kept = len(history["events"])
        assert 0 < kept < len(whole) and history["omitted"] == len(whole) - kept
        assert [(e["event"], e["old_memory"], e["new_memory"]) for e in history["events"]] == \
            [(e.event, e.old_memory, e.new_memory) for e in whole[-kept:]]  # the newest, oldest first
        assert history["events"][-1]["new_memory"].startswith("Lighthouse log, revision 11:")
        assert json.loads(result.content[0].text) == history
        assert wire_size(result) <= 1024 * 1024


def test_a_history_whose_newest_event_alone_does_not_fit_answers_no_event_and_counts_them_all(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    """With max_memory_size raised, one update (old and new text) can be over 1 MiB by itself."""
    settings = Settings(data_dir=tmp_path / "data", max_memory_size=300_000, server={"host": "127.0.0.1"})
    with running_app(settings, embedder) as app:
        memory_id = _revised(app.service, ["A short revision.", "b" * 290_000, "c" * 290_000])
        result = run(streamable, app.url, lambda s: s.call_tool("memory_history", {"memory_id": memory_id}))
        assert not result.is_error, text_of(result)
        assert result.structured_content == {"memory_id": memory_id, "events": [], "omitted": 4}
        assert wire_size(result) <= 1024 * 1024
