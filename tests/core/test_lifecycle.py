"""History and forgetting, updates, export/import, restart persistence, the data-directory lock,
and crash safety."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.models import MemoryStatus, Permission, Role
from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.errors import ConfigError, InvalidRequest, StoreLocked
from tests.conftest import ServiceFactory, settings_for
from tests.openai_server import OpenAIServer


def test_history_records_add_update_archive_and_delete_really_forgets(service: MemoryService) -> None:
    service.ensure_user("alice")
    memory = service.add_memory("alice", memory_content="My locker code is 4512.").memories[0]
    service.update_memory("alice", memory.id, memory="My locker code is 9931.", tags=["locker"])
    service.update_memory("alice", memory.id, status=MemoryStatus.ARCHIVED)
    events = service.history("alice", memory.id)
    assert [e.event for e in events] == ["ADD", "UPDATE", "ARCHIVE"]
    assert (events[1].old_memory, events[1].new_memory) == ("My locker code is 4512.", "My locker code is 9931.")
    assert all(e.actor == "alice" for e in events)

    service.delete_memory("alice", memory.id)
    events = service.history("alice", memory.id)
    assert [e.event for e in events] == ["ADD", "UPDATE", "ARCHIVE", "DELETE"]
    assert all(e.old_memory is None and e.new_memory is None for e in events)
    assert service.search("alice", "locker code", filters={"status": ["activated", "archived"]}).memories == []
    raw = service.catalog._rows(sa.text("SELECT old_memory, new_memory FROM history"))
    assert not any("locker" in str(value) for row in raw for value in tuple(row))


def test_a_memory_id_written_in_upper_case_is_the_same_memory_everywhere(service: MemoryService) -> None:
    """A UUID is case-insensitive: get, history, update and delete of the upper-case form answered not found."""
    service.ensure_user("alice")
    first, second = (service.add_memory("alice", memory_content=text).memories[0]
                     for text in ("The gate code is 4512.", "The bins go out on Tuesday."))
    shouted = first.id.upper()
    assert service.get_memory("alice", shouted).id == first.id
    assert [e.event for e in service.history("alice", shouted)] == ["ADD"]
    assert service.update_memory("alice", shouted, memory="The gate code is 4513.").id == first.id
    assert service.get_memory("alice", first.id).memory == "The gate code is 4513."
    assert service.delete_memories("alice", [shouted, first.id, second.id.upper()]) == 2
    assert service.list_memories("alice").total == 0
    task = service.add_memory("alice", memory_content="The boiler is serviced in May.").task_id
    assert task is not None and service.get_task("alice", task.upper()).task_id == task
    keys = KeyRing(service)
    made = keys.create(ROOT_USER, "alice", Role.USER)
    keys.revoke(ROOT_USER, made.key_id.upper())  # key ids are hex: the same key in any case
    assert [k["revoked"] for k in keys.list(ROOT_USER) if k["key_id"] == made.key_id] == [True]


def test_an_update_re_embeds_the_text_so_search_follows_it(service: MemoryService) -> None:
    service.ensure_user("alice")
    memory = service.add_memory("alice", memory_content="The car is parked on level 2.").memories[0]
    updated = service.update_memory("alice", memory.id, memory="The bicycle is locked at the train station.",
                                    metadata={"checked": True})
    assert updated.updated_at > memory.updated_at and updated.created_at == memory.created_at
    hit = service.search("alice", "where is my bike").memories[0]
    assert hit.id == memory.id and hit.metadata == {"checked": True}
    with pytest.raises(InvalidRequest):
        service.update_memory("alice", memory.id)
    with pytest.raises(InvalidRequest):
        service.update_memory("alice", memory.id, status="forgotten")


def test_delete_all_empties_one_cube_only(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.create_cube("alice", "work", cube_id="work")
    for i in range(5):
        service.add_memory("alice", memory_content=f"Home fact number {i}.")
    service.add_memory("alice", cube_id="work", memory_content="Work fact.")
    home = service.catalog.default_cube_of("alice")
    assert home is not None
    assert service.delete_all("alice", home.cube_id) == 5
    assert service.list_memories("alice").total == 1


def test_export_then_import_into_a_new_data_directory_keeps_everything(make_service: ServiceFactory,
                                                                        tmp_path: Path) -> None:
    source = make_service(tmp_path / "one")
    source.ensure_user("alice")
    source.add_memory("alice", conversation_id="c", messages=[
        {"role": "user", "content": "I prefer window seats on flights.", "id": "msg-7",
         "chat_time": "2024-01-02T03:04:05Z"}], metadata={"app": "travel"})
    source.add_memory("alice", memory_content="Passport expires in 2031.", metadata={"doc": 1})
    cube = source.catalog.default_cube_of("alice")
    assert cube is not None
    lines = list(export_cube(source, "alice", cube.cube_id))
    assert json.loads(lines[0])["type"] == "header" and len(lines) == 1 + 3 + 1
    originals = {m.id: m for m in source.list_memories("alice", size=50).memories}

    target = make_service(tmp_path / "two")
    target.ensure_user("bob")
    result = import_lines(target, "bob", lines)
    assert (result.memories, result.messages, result.reembedded, result.renamed) == (3, 1, False, 0)
    imported = {m.id: m for m in target.list_memories("bob", size=50).memories}
    assert imported.keys() == originals.keys()
    for memory_id, old in originals.items():
        new = imported[memory_id]
        assert (new.memory, new.metadata, new.created_at, new.sources, new.kind, new.event_time) == (
            old.memory, old.metadata, old.created_at, old.sources, old.kind, old.event_time)
    assert target.search("bob", "which seat do I like on a plane").preferences[0].memory.startswith("I prefer")
    assert [m.message_id for m in target.get_messages("bob", "c")] == ["msg-7"]
    again = import_lines(target, "bob", lines)
    assert (again.memories, again.kept) == (0, 3) and target.list_memories("bob").total == 3


def test_import_re_embeds_when_the_export_came_from_another_model(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.ensure_user("bob")
    service.add_memory("alice", memory_content="The spare key is under the flower pot.")
    cube = service.catalog.default_cube_of("alice")
    assert cube is not None
    lines = list(export_cube(service, "alice", cube.cube_id))
    header = json.loads(lines[0])
    header["embedding_model"] = "openai:https://example.invalid/v1:other-model"
    record = json.loads(lines[1])
    record["embedding"] = [0.0] * 7  # vectors of another model: unusable here
    result = import_lines(service, "bob", [json.dumps(header), json.dumps(record)])
    assert result.reembedded and result.renamed == 1
    assert service.search("bob", "where is the spare key").memories[0].memory.startswith("The spare key")


@pytest.mark.parametrize("embedding, message", [
    (lambda v: [float("nan")] * len(v), "line 3: embedding: not a finite number at 0"),
    (lambda v: [*v[:-1], float("inf")], "line 3: embedding: not a finite number at 383"),
    (lambda v: v[:-1], "line 3: embedding: 383 numbers, where the model's vectors have 384"),
    (lambda v: [*v, 0.5], "line 3: embedding: 385 numbers, where the model's vectors have 384"),
    (lambda v: [0.0] * len(v), "line 3: embedding: all zeros"),
])
def test_an_import_of_an_unusable_embedding_is_refused_naming_the_line(service: MemoryService, embedding: Any,
                                                                      message: str) -> None:
    # The same model as the store's, so the file's vectors would be stored as they are.
    service.ensure_user("alice")
    service.ensure_user("bob")
    for text in ("The spare key is under the flower pot.", "The boiler was serviced in May."):
        service.add_memory("alice", memory_content=text)
    cube = service.catalog.default_cube_of("alice")
    assert cube is not None
    lines = list(export_cube(service, "alice", cube.cube_id))
    record = json.loads(lines[2])
    record["embedding"] = embedding(record["embedding"])
    with pytest.raises(InvalidRequest, match=re.escape(message)) as refused:
        import_lines(service, "bob", [lines[0], lines[1], json.dumps(record)])
    assert refused.value.code == "invalid_request" and refused.value.details.get("field") == "embedding"
    assert service.list_memories("bob").total == 0


@pytest.mark.parametrize("lines, message", [
    ([], "not a memos-mcp export"),
    (['{"type": "memory"}'], "not a memos-mcp export"),
    (['{"type": "header", "format": "memos-mcp/export-v1"}', "{broken"], "line 2 is not valid JSON"),
    (['{"type": "header", "format": "memos-mcp/export-v1"}', '{"type": "memory", "id": "x"}'], "line 2"),
    (['{"type": "header", "format": "memos-mcp/export-v1"}', '{"type": "alien"}'], "unknown record type"),
])
def test_a_broken_import_is_rejected_with_the_line_and_changes_nothing(service: MemoryService, lines: list[str],
                                                                      message: str) -> None:
    service.ensure_user("alice")
    with pytest.raises(InvalidRequest, match=message):
        import_lines(service, "alice", lines)
    assert service.list_memories("alice").total == 0


def test_everything_is_there_after_close_and_reopen(make_service: ServiceFactory, tmp_path: Path) -> None:
    first = make_service(tmp_path / "data")
    first.ensure_user("alice")
    first.ensure_user("bob")
    first.create_cube("alice", "shared", cube_id="shared")
    first.share_cube("alice", "shared", "bob", Permission.WRITE)
    first.accept_share("bob", "shared")
    memory = first.add_memory("alice", cube_id="shared", conversation_id="c",
                              messages=[{"role": "user", "content": "The boiler was serviced in May."}]).memories[0]
    first.close()

    second = make_service(tmp_path / "data")
    assert second.get_memory("bob", memory.id).memory == "The boiler was serviced in May."
    assert second.search("bob", "boiler service").memories[0].id == memory.id
    assert [e.event for e in second.history("alice", memory.id)] == ["ADD"]
    assert [m.content for m in second.get_messages("alice", "c")] == ["The boiler was serviced in May."]
    assert {c.cube_id: c.permission for c in second.list_cubes("bob")}["shared"] == "write"


def test_another_embedding_model_on_an_existing_data_directory_fails_at_start_up(
        make_service: ServiceFactory, tmp_path: Path) -> None:
    first = make_service(tmp_path / "data")
    first.ensure_user("alice")
    first.add_memory("alice", memory_content="Made with the local model.")
    first.close()
    server = OpenAIServer(dimension=12)
    try:
        settings = settings_for(tmp_path / "data", first.settings.vector.backend, first.settings.vector.url,
                                catalog=first.settings.catalog,
                                embedder={"backend": "openai", "model": "other", "base_url": server.url})
        with pytest.raises(ConfigError) as caught:
            MemoryService.open(settings)
        assert "local:all-MiniLM-L6-v2-int8" in caught.value.message and "dimension 384" in caught.value.message
        assert f"openai:{server.url}:other" in caught.value.message
        assert server.requests == []  # decided before any model is loaded or called
    finally:
        server.stop()
    reopened = make_service(tmp_path / "data")  # the lock was released by the failed open
    assert reopened.list_memories("alice").total == 1


def _open_script(data_dir: Path, body: str) -> list[str]:
    code = textwrap.dedent(f"""
        from memos_mcp.config import Settings
        from memos_mcp.core.service import MemoryService
        service = MemoryService.open(Settings(data_dir={str(data_dir)!r}))
    """) + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def test_a_second_process_on_the_same_data_directory_gets_a_clear_error_at_once(service: MemoryService) -> None:
    done = subprocess.run(_open_script(service.settings.data_dir, ""), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "StoreLocked" in done.stderr and "in use by another memos-mcp process" in done.stderr
    with pytest.raises(StoreLocked):
        MemoryService.open(service.settings)


def test_a_process_killed_mid_write_loses_at_most_the_write_in_flight(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = _open_script(data_dir, """
        service.ensure_user("alice")
        for i in range(100000):
            service.add_memory("alice", memory_content=f"Note {i} about item {i * 7}.")
            print(i, flush=True)
    """)
    acknowledged = -1
    with subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as writer:
        assert writer.stdout is not None
        for line in writer.stdout:
            acknowledged = int(line)
            if acknowledged >= 30:
                break
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert acknowledged >= 30
    reopened = MemoryService.open(settings_for(data_dir))
    try:
        page = reopened.list_memories("alice", size=200)
        texts = {m.memory for m in page.memories}
        assert all(f"Note {i} about item {i * 7}." in texts for i in range(acknowledged + 1))
        assert page.total == len(page.memories) == len(texts) <= acknowledged + 2
        reopened.add_memory("alice", memory_content="Written after the crash.")
        assert reopened.search("alice", "written after the crash").memories[0].memory == "Written after the crash."
    finally:
        reopened.close()
