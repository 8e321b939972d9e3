"""The lease a process holds on the background task it runs (``Catalog.claim_task``): renewed every
third of its length by a small thread while the task works, so that a live process keeps its task
and a dead one's task is claimed again by another once the lease lapses."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType
from typing import Any

from memos_mcp.core.models import Task, TaskStatus, utcnow
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.errors import StorageError

log = logging.getLogger(__name__)


def claimant() -> str:
    """An id naming this process among those sharing a catalog: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def outcome(task: Task, status: TaskStatus, error: str | None = None, **changes: Any) -> Task:
    """``task`` ended with ``status`` (and ``error``, and ``changes`` such as ``added``): its job gone."""
    return task.model_copy(update={**changes, "status": status, "error": error, "job": None, "updated_at": utcnow()})


class Lease:
    """``owner``'s lease on ``task_id``, renewed in the background while the ``with`` block runs.
    ``held`` turns False once a renewal finds the claim gone (another process took the task)."""

    def __init__(self, catalog: Catalog, task_id: str, owner: str, lease_s: float) -> None:
        self.catalog = catalog
        self.task_id = task_id
        self.owner = owner
        self.lease_s = lease_s
        self.held = True
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"memos-lease-{task_id[:8]}", daemon=True)

    def renew(self) -> bool:
        """Extend the lease now; False (for good) when the claim is no longer ours. A database
        that does not answer leaves ``held`` as it was: the next renewal tries again."""
        if self.held:
            try:
                self.held = self.catalog.renew_task(self.task_id, self.owner, self.lease_s)
            except StorageError as exc:
                log.warning("renewing the lease on task %s failed: %s", self.task_id, exc.message)
        return self.held

    def finish(self, done: Task) -> bool:
        """Store the task's outcome ``done`` and end this lease, in one transaction
        (``Catalog.finish_task``): the ``with`` block then has nothing left to release. False (nothing
        stored) when the claim is no longer ours."""
        stored = self.catalog.finish_task(done, self.owner)
        self._ended = True
        return stored

    def _keep(self) -> None:
        while not self._stop.wait(self.lease_s / 3) and self.renew():
            pass

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease_s)
        if self._ended:
            return
        try:  # a task left open (the process stops) is free for another at once
            self.catalog.release_task(self.task_id, self.owner)
        except StorageError as exc:  # closed meanwhile: the lease lapses instead
            log.info("the lease on task %s was not released: %s", self.task_id, exc.message)
