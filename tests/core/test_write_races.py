"""Adds that pass their checks, then wait for the write lock while the cube is deleted or the share
that let them write is revoked: they must write nothing (an outside tester found such adds stored in the
deleted cube, and read by the next user who made a cube of that id)."""

from __future__ import annotations

import linecache
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.core.context import FORGET_PART
from memos_mcp.core.models import HistoryEvent, Permission, utcnow
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import MemosError, NotFound
from tests.conftest import ServiceFactory

WAIT = 20.0  # seconds an add may take to reach the write lock on a loaded machine


def _waiting_for_the_write_lock(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename.endswith((".py",)) and "memos_mcp" in frame.f_code.co_filename:
            return "write_lock" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return False


def _held_at_the_lock(service: MemoryService, add: Callable[[], Any], meanwhile: Callable[[], None]) -> BaseException:
    """Run ``add`` in a thread while the test holds the write lock; once the add waits for it, run
    ``meanwhile`` (it may take the lock: it is re-entrant), release, and return what the add raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            add()
        except BaseException as exc:  # the add's outcome is the test's to judge
            raised.append(exc)

    worker = threading.Thread(target=run)
    with service.write_lock:
        worker.start()
        deadline = time.monotonic() + WAIT
        while not _waiting_for_the_write_lock(worker):
            assert time.monotonic() < deadline and worker.is_alive(), "the add never reached the write lock"
            time.sleep(0.01)
        meanwhile()
    worker.join(WAIT)
    assert not worker.is_alive() and raised, "the add wrote after its cube was deleted"
    return raised[0]


@pytest.mark.parametrize("how", ["memory_content", "messages"])
def test_an_add_waiting_while_its_cube_is_deleted_writes_nothing_there(service: MemoryService, how: str) -> None:
    service.ensure_user("alice")
    service.ensure_user("mallory")
    service.create_cube("alice", "Victim", cube_id="victim")
    service.add_memory("alice", cube_id="victim", memory_content="The first note stays until the cube goes.")
    given: dict[str, Any] = ({"memory_content": "alice secret: the bank PIN is 1025"} if how == "memory_content"
                             else {"messages": [{"role": "user", "content": "alice secret: the bank PIN is 1025"}]})
    error = _held_at_the_lock(service, lambda: service.add_memory("alice", cube_id="victim", **given),
                              lambda: service.delete_cube("alice", "victim"))
    assert isinstance(error, NotFound), error
    service.create_cube("mallory", "Mine", cube_id="victim")
    assert service.list_memories("mallory", cube_ids=["victim"]).memories == []
    assert service.get_messages("mallory", "default", cube_ids=["victim"]) == []
    assert "1025" not in str(service.search("mallory", "bank PIN", cube_ids=["victim"]).memories)


def test_an_add_waiting_while_its_write_share_is_revoked_writes_nothing(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.ensure_user("bob")
    service.create_cube("alice", "Shared", cube_id="shared1")
    service.share_cube("alice", "shared1", "bob", Permission.WRITE)
    service.accept_share("bob", "shared1")
    error = _held_at_the_lock(
        service, lambda: service.add_memory("bob", cube_id="shared1", memory_content="Bob was here."),
        lambda: service.unshare_cube("alice", "shared1", "bob"))
    assert isinstance(error, MemosError) and error.status in (403, 404), error
    assert service.list_memories("alice", cube_ids=["shared1"]).total == 0


@pytest.mark.parametrize("stopped_after", ["recorded", "vectors"])
def test_a_delete_stopped_part_way_is_finished_by_the_next_start(make_service: ServiceFactory, tmp_path: Path,
                                                                stopped_after: str) -> None:
    """A delete killed between removing the vectors and cleaning the catalog left the memories' keys and
    their text in the history: a retried delete found nothing to delete and cleaned nothing, and
    ``memory_history`` still gave the deleted text. The delete is now recorded first and finished at
    the next start, whichever step it stopped after."""
    data_dir = tmp_path / "kept"
    service = make_service(data_dir)
    service.ensure_user("alice")
    gone = service.add_memory("alice", memory_content="The safe code is 8812.").memories[0]
    kept = service.add_memory("alice", memory_content="The spare key is under the mat.").memories[0]
    # What a kill leaves: the delete recorded (as ``Stores.forget`` records it first), not finished.
    service.catalog.begin_writes([HistoryEvent(memory_id=gone.id, cube_id=gone.cube_id, event="DELETE",
                                               actor="alice", at=utcnow())])
    if stopped_after == "vectors":
        service.ready().delete([gone.id])
    service.close()

    looking = make_service(data_dir, read_only=True)  # cannot finish it: still never shows the text
    assert [(e.old_memory, e.new_memory) for e in looking.history("alice", gone.id)] == [(None, None), (None, None)]
    looking.close()
    again = make_service(data_dir)
    with pytest.raises(NotFound):
        again.get_memory("alice", gone.id)
    assert [(e.event, e.old_memory, e.new_memory) for e in again.catalog.history(gone.id)] == [
        ("ADD", None, None), ("DELETE", None, None)]
    assert again.catalog.pending_writes() == []
    assert again.get_memory("alice", kept.id).memory == "The spare key is under the mat."
    readded = again.add_memory("alice", memory_content="The safe code is 8812.")
    assert readded.added and again.get_memory("alice", readded.memories[0].id).memory == "The safe code is 8812."


def test_a_share_waiting_while_its_cube_is_deleted_is_not_found(service: MemoryService) -> None:
    """It was a 507 "catalog write failed: FOREIGN KEY constraint failed", which reads as a full disk."""
    service.ensure_user("alice")
    service.ensure_user("bob")
    service.create_cube("alice", "Going", cube_id="going")
    error = _held_at_the_lock(service, lambda: service.share_cube("alice", "going", "bob", Permission.WRITE),
                              lambda: service.delete_cube("alice", "going"))
    assert isinstance(error, NotFound), error
    assert service.list_shares("bob") == []


def test_deleting_more_memories_than_one_part_deletes_them_all_with_their_history_text(
        service: MemoryService) -> None:
    """A delete goes part by part (``FORGET_PART``: on PostgreSQL each memory of a part holds an advisory
    lock, of which the server keeps a few thousand): every part is deleted, keys and text included."""
    service.ensure_user("alice")
    service.create_cube("alice", "Big", cube_id="big")
    count = FORGET_PART * 2 + 1
    added = service.add_memory("alice", cube_id="big", messages=[
        {"role": "user", "content": f"Note number {i} of the big cube."} for i in range(count)]).added
    assert len(added) == count
    assert service.delete_all("alice", "big") == count
    assert service.list_memories("alice", cube_ids=["big"]).total == 0
    assert all(e.new_memory is None for m in added[::97] for e in service.catalog.history(m))
    again = service.add_memory("alice", cube_id="big", memory_content="Note number 7 of the big cube.")
    assert again.added  # its key was released
