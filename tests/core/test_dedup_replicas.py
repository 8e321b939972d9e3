"""De-duplication across replicas of one shared service (two services on one PostgreSQL: catalog and
pgvector, each with its own process state). An add that finds its text stored already answers that
memory as ``deduplicated`` and merges its tags and sources into it: the memory must then be one that
stays, and the merge must not race another replica's write of it. An outside tester found, on two
replicas: adds acknowledged as de-duplicated into the half-written memories of a replica that had died
(the clean-up then removed them: the acknowledged adds were lost), and merges that ran while another
replica updated or deleted the memory (the merge lost, or a false 507)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from memos_mcp.core.models import AddResult, HistoryEvent, MemoryStatus, utcnow
from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory
from tests.postgres import rows

TEXT = "The spare key of the boathouse hangs behind the red door."
WAIT = 20.0  # seconds, at most, for a thread to reach a lock or end on a loaded machine


@pytest.fixture
def backend() -> str:
    return "pgvector+postgresql"


@pytest.fixture
def replicas(make_service: ServiceFactory, tmp_path: Path) -> tuple[MemoryService, MemoryService]:
    first = make_service(tmp_path / "first")
    second = make_service(tmp_path / "second", database_of=tmp_path / "first")
    first.ensure_user("alice")
    for replica in (first, second):
        replica.ready()  # running already (the start's clean-up has run) when the other one dies
    return first, second


def _url(service: MemoryService) -> str:
    url = service.settings.catalog.url
    assert url is not None
    return url.get_secret_value()


def _died_before_acknowledging(service: MemoryService, memory_id: str) -> None:
    """The state a replica killed mid-add leaves: the memory's point stored, its ADD still pending, and
    no live process holding it (the process and its advisory locks are gone)."""
    rows(_url(service), "INSERT INTO pending_writes (history_seq, memory_id, cube_id, event) "
         "SELECT seq, memory_id, cube_id, event FROM history WHERE memory_id = %(id)s AND event = 'ADD' "
         "RETURNING history_seq", id=memory_id)


@pytest.mark.parametrize("how", ["memory_content", "messages"])
def test_an_add_is_never_acknowledged_as_a_duplicate_of_a_memory_a_dead_replica_left_unfinished(
        replicas: tuple[MemoryService, MemoryService], how: str) -> None:
    first, second = replicas

    def add(replica: MemoryService) -> AddResult:
        if how == "memory_content":
            return replica.add_memory("alice", memory_content=TEXT)
        return replica.add_memory("alice", messages=[{"role": "user", "content": TEXT}], conversation_id="chat-1",
                                  async_mode=False)

    dead = add(second).added[0]
    _died_before_acknowledging(second, dead)
    result = add(first)
    stored = [*result.added, *result.deduplicated]
    assert dead not in stored and result.added, result
    first.stores.roll_back_abandoned()  # the clean-up every replica runs: the dead replica's add goes
    assert TEXT in [first.get_memory("alice", i).memory for i in result.added]
    assert first.list_memories("alice").total == 1


def _waiting_for_an_advisory_lock(service: MemoryService) -> bool:
    return bool(rows(_url(service), "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))


@pytest.mark.parametrize("change", ["delete", "archive"])
def test_an_add_of_a_text_another_replica_is_writing_waits_for_that_write_and_reads_its_outcome(
        replicas: tuple[MemoryService, MemoryService], change: str) -> None:
    """The add's merge waits while another replica holds the memory's write (the per-memory lock its
    updates and deletes take), then reads the memory again: deleted, or no longer what the add says, it
    stores its own memory instead of merging into the old one (which lost the merge, or failed 507)."""
    first, second = replicas
    added = first.add_memory("alice", memory_content=TEXT, tags=["boathouse"])
    memory, cube = added.added[0], added.cube_id
    answers: list[object] = []
    adding = threading.Thread(target=lambda: answers.append(_add_again(first)))
    with second.catalog.in_flight([memory]):
        adding.start()
        deadline = time.monotonic() + WAIT
        while not _waiting_for_an_advisory_lock(first) and adding.is_alive():
            assert time.monotonic() < deadline, "the add neither waited nor ended"
            time.sleep(0.02)
        assert adding.is_alive(), f"the add merged into the memory while another replica wrote it: {answers}"
        if change == "delete":  # the other replica's delete, under its lock (``Stores.forget``)
            second.catalog.begin_writes([HistoryEvent(memory_id=memory, cube_id=cube, event="DELETE",
                                                      actor="alice", at=utcnow())])
            second.vectors.delete([memory])
            second.catalog.forget([memory])
        else:
            second.vectors.set_payload(memory, {"status": MemoryStatus.ARCHIVED.value})
    adding.join(WAIT)
    assert not adding.is_alive()
    result = answers[0]
    assert not isinstance(result, BaseException), result
    if change == "delete":
        assert result.added and result.deduplicated == [], result  # type: ignore[union-attr]
    else:  # the archived memory still holds the text: the merge lands on it, with the add's tag
        assert result.deduplicated == [memory], result  # type: ignore[union-attr]
        assert "pier" in first.get_memory("alice", memory).tags


def _add_again(service: MemoryService) -> object:
    try:
        return service.add_memory("alice", memory_content=TEXT, tags=["pier"])
    except BaseException as exc:  # the test judges what the add raised
        return exc


ROUNDS = 30  # racing pairs of adds: before the fix about a third lost one add's tags and sources


def test_two_replicas_adding_one_text_at_once_store_one_memory_holding_both_adds_tags_and_sources(
        replicas: tuple[MemoryService, MemoryService]) -> None:
    """The add that loses the race for the text's key waits for the winner's write and answers its
    memory: before, it answered it as it was, without its own tags and sources."""
    first, second = replicas
    lost: list[str] = []
    for number in range(ROUNDS):
        text = f"Round {number}: the ferry to the island leaves from pier {number + 3}."
        start = threading.Barrier(2, timeout=WAIT)
        answers: dict[str, object] = {}

        def add(replica: MemoryService, name: str, text: str = text, start: threading.Barrier = start,
                answers: dict[str, object] = answers, number: int = number) -> None:
            start.wait()
            answers[name] = replica.add_memory("alice", messages=[
                {"role": "user", "content": text, "message_id": f"{name}-{number}"}], conversation_id="ferry",
                tags=[name], async_mode=False)

        threads = [threading.Thread(target=add, args=(replica, name))
                   for replica, name in ((first, "first"), (second, "second"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in threads) and len(answers) == 2, answers
        ids = {i for a in answers.values() for i in [*a.added, *a.deduplicated]}  # type: ignore[attr-defined]
        assert len(ids) == 1, answers
        memory = first.get_memory("alice", ids.pop())
        if not {"first", "second"} <= set(memory.tags) or {s.message_id for s in memory.sources} != {
                f"first-{number}", f"second-{number}"}:
            lost.append(f"round {number}: tags {memory.tags}, sources {[s.message_id for s in memory.sources]}")
    assert lost == []
