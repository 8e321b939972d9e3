"""Background tasks claimed with a lease (``Catalog.claim_task``) by processes sharing one
PostgreSQL catalog: each task is taken by one claimant; a task whose claimant died (its lease
lapsed) is taken over by exactly one other; the dead claimant can neither renew nor finish it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memos_mcp.core.models import AddJob, Cube, Role, Task, TaskStatus, User
from memos_mcp.core.stores.catalog import Catalog

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TASKS = 60
TIMEOUT = 20.0


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[list[Catalog]]:
    """Three catalogs (each its own connection pool, as in three processes) on one PostgreSQL."""
    catalogs = [Catalog(postgres_url) for _ in range(3)]
    catalogs[0].create_user_with_cube(User(user_id="alice", user_name="alice", role=Role.USER, created_at=T0),
                                      Cube(cube_id="c-alice", name="a", owner_id="alice", created_at=T0))
    yield catalogs
    for catalog in catalogs:
        catalog.close()


def queue(catalog: Catalog, count: int) -> list[str]:
    ids = [f"task-{n:03d}" for n in range(count)]
    for n, task_id in enumerate(ids):
        catalog.put_task(Task(task_id=task_id, user_id="alice", cube_id="c-alice", status=TaskStatus.QUEUED,
                              created_at=T0.replace(second=n % 60), updated_at=T0,
                              job=AddJob(message_ids=[f"m{n}"], conversation_id="talk")))
    return ids


def test_replicas_claiming_from_one_queue_at_once_never_take_the_same_task(replicas: list[Catalog]) -> None:
    ids = queue(replicas[0], TASKS)
    barrier = threading.Barrier(len(replicas))
    taken: list[list[str]] = [[] for _ in replicas]

    def work(index: int) -> None:
        catalog, owner = replicas[index], f"replica-{index}"
        barrier.wait(timeout=TIMEOUT)
        for task_id in ids:  # every replica walks the whole queue, as each one's resume does
            task = catalog.claim_task(task_id, owner, lease_s=60)
            if task is not None:
                taken[index].append(task_id)
                assert catalog.finish_task(task.model_copy(update={"status": TaskStatus.DONE, "job": None}), owner)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    claimed = [task_id for part in taken for task_id in part]
    assert sorted(claimed) == ids  # every task once, none twice
    assert all(replicas[0].get_task(t).status is TaskStatus.DONE for t in ids)  # type: ignore[union-attr]
    assert all(replicas[0].get_task(t).attempts == 1 for t in ids)  # type: ignore[union-attr]


def test_a_live_lease_keeps_a_task_from_other_replicas_until_it_is_released(replicas: list[Catalog]) -> None:
    (task_id,) = queue(replicas[0], 1)
    first, second, _ = replicas
    assert first.claim_task(task_id, "one", lease_s=60) is not None
    assert second.claim_task(task_id, "two", lease_s=60) is None
    assert first.renew_task(task_id, "one", lease_s=60) and not second.renew_task(task_id, "two", lease_s=60)
    first.release_task(task_id, "one")  # a stopping replica gives its open task up
    assert second.claim_task(task_id, "two", lease_s=60) is not None


def test_a_task_whose_lease_lapsed_is_taken_over_once_and_its_first_claimant_cannot_finish_it(
        replicas: list[Catalog]) -> None:
    (task_id,) = queue(replicas[0], 1)
    dead, *live = replicas
    assert dead.claim_task(task_id, "dead", lease_s=0.5) is not None  # then the replica dies
    winners: list[str] = []
    barrier = threading.Barrier(len(live))

    def take(catalog: Catalog, owner: str) -> None:
        barrier.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not winners:
            if catalog.claim_task(task_id, owner, lease_s=60) is not None:
                winners.append(owner)

    threads = [threading.Thread(target=take, args=(c, f"live-{i}")) for i, c in enumerate(live)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT + 5)
    assert len(winners) == 1, winners
    task = dead.get_task(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING and task.attempts == 2
    assert not dead.renew_task(task_id, "dead", lease_s=60)
    assert not dead.finish_task(task.model_copy(update={"status": TaskStatus.DONE, "added": ["twice"]}), "dead")
    assert live[0].finish_task(task.model_copy(update={"status": TaskStatus.DONE, "added": ["once"]}), winners[0])
    done = dead.get_task(task_id)
    assert done is not None and done.status is TaskStatus.DONE and done.added == ["once"]
    assert all(c.claim_task(task_id, "any", lease_s=60) is None for c in replicas)  # done: nobody takes it


def test_on_sqlite_the_one_process_resumes_a_task_its_previous_run_left_claimed(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    try:
        catalog.create_user_with_cube(User(user_id="alice", user_name="alice", role=Role.USER, created_at=T0),
                                      Cube(cube_id="c-alice", name="a", owner_id="alice", created_at=T0))
        (task_id,) = queue(catalog, 1)
        assert catalog.claim_task(task_id, "killed-run", lease_s=3600) is not None
        task = catalog.claim_task(task_id, "next-run", lease_s=60)
        assert task is not None and task.attempts == 2
    finally:
        catalog.close()
