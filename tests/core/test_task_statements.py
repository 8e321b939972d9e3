"""The catalog statements an add of messages without a language model makes on its task: the task is
stored claimed with the messages, and its outcome is stored with its lease ended, in one statement.
Before, the end of the lease block released the lease again: one more transaction per add that
changed nothing. Counted with SQLAlchemy's own statement events on the catalog's engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.service import MemoryService


@contextmanager
def task_writes(service: MemoryService) -> Iterator[list[str]]:
    """The INSERT/UPDATE statements on the tasks table made meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        words = statement.split()
        if words and words[0].upper() in ("INSERT", "UPDATE") and "tasks" in statement.split("(")[0].lower():
            seen.append(statement)

    engine = service.catalog.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_an_add_of_messages_writes_its_task_in_two_transactions_stored_and_finished(service: MemoryService) -> None:
    with task_writes(service) as seen:
        added = service.add_memory(ROOT_USER, messages=[{"role": "user", "content": "I keep bees in the garden."}])
    task = service.get_task(ROOT_USER, added.task_id or "")
    assert task.status == "done" and task.added == added.added
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(inserts) == 2, seen  # the task stored with the messages; its outcome
    assert len(updates) == 2, seen  # its claim (with the messages); its lease ended (with the outcome)
