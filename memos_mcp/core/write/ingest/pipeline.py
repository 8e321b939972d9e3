"""The background add worker: an anyio event loop on its own thread runs queued extraction tasks.

At most ``concurrency`` tasks run at once and tasks of one conversation run one at a time, in the
order they were queued, so that each sees what the one before it stored. The queue itself lives in
the catalog (a task is written before it is submitted here), so work queued or running when the
process stops is resumed at the next start. The work function is synchronous (model calls,
embedding, stores) and runs in a worker thread of the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

log = logging.getLogger(__name__)


class AddWorker:
    def __init__(self, work: Callable[[str], None], concurrency: int) -> None:
        self._work = work
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._chains: dict[str, tuple[anyio.Lock, int]] = {}  # touched by the loop's thread only
        self.closing = threading.Event()

    def start(self) -> BlockingPortal:
        """Start the event loop's thread (once); ``submit`` starts it when needed."""
        with self._lock:
            if self.closing.is_set():
                raise RuntimeError("the add worker is closed")
            if self._portal is None:
                self._portal_cm = start_blocking_portal(name="memos-add-worker")
                self._portal = self._portal_cm.__enter__()
                self._limiter = self._portal.call(anyio.CapacityLimiter, self._concurrency)
            return self._portal

    def submit(self, task_id: str, chain: str) -> Future[None]:
        """Run ``work(task_id)`` in the background after the earlier tasks of ``chain``."""
        return self.start().start_task_soon(self._run, task_id, chain)

    async def _run(self, task_id: str, chain: str) -> None:
        assert self._limiter is not None
        lock, users = self._chains.get(chain) or (anyio.Lock(), 0)
        self._chains[chain] = (lock, users + 1)
        try:
            async with lock, self._limiter:
                if not self.closing.is_set():
                    await anyio.to_thread.run_sync(self._guarded, task_id, abandon_on_cancel=True)
        finally:
            lock, users = self._chains[chain]
            if users == 1:
                del self._chains[chain]
            else:
                self._chains[chain] = (lock, users - 1)

    def _guarded(self, task_id: str) -> None:
        try:
            self._work(task_id)
        except Exception:  # the work records its own failures; this is the last line
            if not self.closing.is_set():
                log.exception("add task %s failed", task_id)

    def close(self) -> None:
        """Stop taking work and leave: tasks not finished stay open in the catalog for the next start.
        A task whose model call is in flight is abandoned; it checks ``closing`` before it writes."""
        with self._lock:
            self.closing.set()
            portal, portal_cm, self._portal = self._portal, self._portal_cm, None
        if portal is not None and portal_cm is not None:  # not under the lock: the loop's tasks take it
            portal.call(portal.stop, True)  # cancel what waits; abandon what runs
            portal_cm.__exit__(None, None, None)  # joins the loop's thread
