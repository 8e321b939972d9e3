"""Queued adds on a catalog two services share (PostgreSQL; each service with its own data directory
and vector store, as replicas are): a task is run by the replica that claims it, never by a second
one while the first holds its lease; a task whose replica died after storing its memories but before
marking it done is taken over by another and its memories are not stored twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from memos_mcp.config import AddSettings, LLMSettings
from memos_mcp.core.models import AddJob, Message, Task, TaskStatus, utcnow
from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory
from tests.openai_server import OpenAIServer, Reply
from tests.pipeline.conftest import answer, settle
from tests.postgres import PostgresServer

FACT = "Alice keeps her bicycle in the shed behind the bakery."


@pytest.fixture
def backend() -> str:
    return "edge"


@pytest.fixture
def replica(make_service: ServiceFactory, llm_server: OpenAIServer, postgres: PostgresServer,
            tmp_path: Path) -> ServiceFactory:
    """Replicas on one new PostgreSQL database: each call opens another data directory on it."""
    url = postgres.url(postgres.create_database())
    count = iter(range(100))

    def make(task_lease: float = 60.0) -> MemoryService:
        llm = LLMSettings(base_url=llm_server.url, model="scripted-model", timeout=10.0, max_retries=0)
        return make_service(tmp_path / f"replica-{next(count)}", catalog={"url": url}, llm=llm,
                            add=AddSettings(task_lease=task_lease))

    return make


def test_a_replica_starting_while_another_runs_a_task_leaves_the_task_to_it(
        replica: ServiceFactory, llm_server: OpenAIServer) -> None:
    first = replica()
    first.ensure_user("alice")
    llm_server.extraction_replies += [Reply(delay=2.0, content=answer(facts=[{"value": FACT}])),
                                      answer(facts=[{"value": FACT}])]
    ack = first.add_memory("alice", messages=[{"role": "user", "content": "My bike lives in the bakery shed."}],
                           conversation_id="c1")
    assert ack.task_id
    second = replica()  # resumes open tasks at start: this one is the first replica's
    task = settle(first, "alice", ack.task_id)
    assert (task.status, task.attempts, len(task.added)) == (TaskStatus.DONE, 1, 1)
    assert len(llm_server.chats) == 1  # the second replica never ran it
    assert [m.memory for m in second.list_memories("alice").memories] in ([FACT], [])  # its own vector store


def test_a_task_applied_by_a_replica_that_died_before_marking_it_done_is_not_applied_twice(
        replica: ServiceFactory, llm_server: OpenAIServer) -> None:
    first = replica()
    first.ensure_user("alice")
    llm_server.extraction_replies += [answer(facts=[{"value": FACT}]), answer(facts=[{"value": FACT}])]
    ack = first.add_memory("alice", messages=[{"role": "user", "content": "My bike lives in the bakery shed."}],
                           conversation_id="c1")
    assert ack.task_id
    done = settle(first, "alice", ack.task_id)
    (memory_id,) = done.added
    # The first replica stored the memory, then died before its "done" reached the catalog: the task
    # is still running under its lease, which lapses.
    job = AddJob(message_ids=ack.message_ids, conversation_id="c1")
    first.catalog.put_task(done.model_copy(update={"status": TaskStatus.QUEUED, "added": [], "job": job,
                                                   "attempts": 0}))
    assert first.catalog.claim_task(ack.task_id, "dead-replica", lease_s=0.0) is not None

    second = replica()  # takes the task over at start
    task = settle(second, "alice", ack.task_id)
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    assert task.added == [] and task.deduplicated == [memory_id]
    assert len(llm_server.chats) == 2
    adds = [e for e in second.catalog.history(memory_id) if e.event == "ADD"]
    assert len(adds) == 1
    assert second.catalog.counts()["history"] == 1  # no second memory anywhere


def test_a_running_replica_takes_over_the_task_of_a_replica_that_died_once_its_lease_lapses(
        replica: ServiceFactory, llm_server: OpenAIServer) -> None:
    live = replica(task_lease=1.0)
    live.ensure_user("alice")
    llm_server.extraction_replies.append(answer(facts=[{"value": FACT}]))
    # A replica that has since died stored the messages and queued their extraction, claimed the task
    # and was killed before its model answered: its lease lapses a second later.
    now = utcnow()
    message = Message(id="m-dead-1", cube_id="alice_default_cube", conversation_id="c1", user_id="alice",
                      role="user", content="My bike lives in the bakery shed.", created_at=now)
    task = Task(task_id="task-of-the-dead", user_id="alice", cube_id="alice_default_cube", status=TaskStatus.QUEUED,
                created_at=now, updated_at=now, conversation_id="c1",
                job=AddJob(message_ids=[message.id], conversation_id="c1"))
    live.catalog.add_messages([message], task)
    assert live.catalog.claim_task(task.task_id, "dead-replica", lease_s=1.0) is not None

    done = settle(live, "alice", task.task_id, timeout=30.0)  # the sweep looks every half lease
    assert (done.status, done.attempts, len(done.added)) == (TaskStatus.DONE, 2, 1)
    assert len(llm_server.chats) == 1
    assert [m.memory for m in live.list_memories("alice").memories] == [FACT]


LISBON = "Alice lives in Lisbon since May 2026."


@pytest.mark.parametrize("backend", ["edge", "pgvector+postgresql"])
def test_a_task_taken_over_after_its_first_run_applied_the_models_update_updates_the_memory_once(
        make_service: ServiceFactory, llm_server: OpenAIServer, tmp_path: Path, backend: str) -> None:
    """On SQLite the takeover is the next start of the same data directory; on PostgreSQL (catalog
    and vectors shared) another replica's."""
    llm = LLMSettings(base_url=llm_server.url, model="scripted-model", timeout=10.0, max_retries=0)
    first = make_service(tmp_path / "replica-0", llm=llm)
    first.ensure_user("alice")
    old = first.add_memory("alice", memory_content="Alice lives in Porto.").memories[0]
    update = answer(updates=[{"memory": 0, "action": "update", "value": LISBON, "reason": "moved"}])
    llm_server.extraction_replies += [update, update]  # the model says the same to the second run
    ack = first.add_memory("alice", messages=[{"role": "user", "content": "I live in Lisbon now."}],
                           conversation_id="c1")
    assert ack.task_id
    done = settle(first, "alice", ack.task_id)
    assert done.updated == [old.id]
    # The first run applied the update, then its process died before "done" reached the catalog.
    job = AddJob(message_ids=ack.message_ids, conversation_id="c1")
    first.catalog.put_task(done.model_copy(update={"status": TaskStatus.QUEUED, "updated": [], "job": job}))
    first.close()

    second = (make_service(tmp_path / "replica-1", database_of=tmp_path / "replica-0", llm=llm)
              if backend == "pgvector+postgresql" else make_service(tmp_path / "replica-0", llm=llm))
    task = settle(second, "alice", ack.task_id)
    assert (task.status, task.attempts, task.updated) == (TaskStatus.DONE, 2, [old.id])
    assert len(llm_server.chats) == 2
    assert [(e.event, e.new_memory) for e in second.history("alice", old.id)] == [
        ("ADD", "Alice lives in Porto."), ("UPDATE", LISBON)]
    assert second.get_memory("alice", old.id).memory == LISBON
