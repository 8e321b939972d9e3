"""A memory service opened on first use.

``memos-mcp stdio`` answers the MCP handshake before it opens the stores: importing SQLAlchemy and
opening the catalog held the ``initialize`` reply up. It claims the data directory first
(``stores.data_dir.claim_data_dir``: a locked, read-only or full data directory still fails the
start in one line), builds its tools over a ``LazyService`` and starts opening it once the handshake
is answered (``warm_up``). Any attribute of the service, looked up by a tool call in its worker
thread, waits for the open; an open that failed raises its error there (a tool error naming it) and
the next call tries again, so a catalog server that comes up later is found without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memos_mcp.errors import BackendUnavailable, MemosError

if TYPE_CHECKING:
    from memos_mcp.core.service import MemoryService
    from memos_mcp.core.stores.data_dir import DataDirClaim

log = logging.getLogger(__name__)

OPEN_WAIT = 60.0  # seconds a call waits for another thread's open before it is told to try again
_POLL = 0.1  # seconds between looks at whether the service is stopping, while waiting for the lock


class LazyService:
    """Stands for the ``MemoryService`` that ``open_service`` returns, opened at the first attribute
    looked up (or by ``warm_up``) and then delegated to; ``prepare`` then runs on it once (say, making
    the default user), tried again by the next lookup until it succeeds. Both run under a lock, once at
    a time. Until the service is open the data directory's ``claim`` is this object's to release.

    A call that waits for another thread's open longer than ``OPEN_WAIT`` seconds, or while ``stop``
    has been called, gets ``BackendUnavailable`` instead of waiting on (an open can hang on a database
    server that does not answer until its connect timeout)."""

    def __init__(self, open_service: Callable[[], MemoryService], claim: DataDirClaim,
                 prepare: Callable[[MemoryService], None] = lambda service: None) -> None:
        self._open = open_service
        self._claim = claim
        self._prepare: Callable[[MemoryService], None] | None = prepare
        self._service: MemoryService | None = None
        self._warm_up: threading.Thread | None = None
        self._closed = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def _acquire(self, seconds: float, *, after_stop: bool = False) -> bool:
        """The lock, waited for at most ``seconds`` and, unless ``after_stop``, only until ``stop``;
        whether it was taken."""
        deadline = time.monotonic() + seconds
        while not self._lock.acquire(timeout=min(_POLL, max(0.0, deadline - time.monotonic()))):
            if (self._stopping.is_set() and not after_stop) or time.monotonic() >= deadline:
                return False
        return True

    def opened(self) -> MemoryService:
        """The service, opened now if it is not yet. Raises what opening raises (``MemosError``s such as
        ``StorageError`` for a catalog that cannot be opened), or ``BackendUnavailable`` after ``stop`` or
        ``close``, or when another thread's open takes longer than ``OPEN_WAIT``."""
        if not self._acquire(OPEN_WAIT):
            if self._stopping.is_set():
                raise BackendUnavailable("the memory service is shutting down")
            raise BackendUnavailable(f"the data directory's stores are still opening after {OPEN_WAIT:.0f} s; "
                                     "try again")
        try:
            if self._closed or self._stopping.is_set():
                raise BackendUnavailable("the memory service is shutting down")
            if self._service is None:
                self._service = self._open()
            if self._prepare is not None:
                self._prepare(self._service)
                self._prepare = None
            return self._service
        finally:
            self._lock.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.opened(), name)

    def warm_up(self) -> threading.Thread:
        """Open the service, then load the model and open the vector store, in a background thread
        (``MemoryService.warm_up``). A failure is logged in one line; the next call reports it again."""
        def run() -> None:
            try:
                service = self.opened()
            except MemosError as exc:
                log.error("cannot open the data directory yet: [%s] %s (each call that needs it tries again)",
                          exc.code, exc.message)
                return
            except Exception as exc:  # reported again, with its type, on the first call that needs it
                log.error("cannot open the data directory yet: %s", exc)
                return
            try:
                service.ready()
            except Exception as exc:  # reported again, with its type, on the first call that needs it
                log.warning("background warm-up failed: %s", exc)
        self._warm_up = threading.Thread(target=run, name="memos-warm-up", daemon=True)
        self._warm_up.start()
        return self._warm_up

    def stop(self) -> None:
        """From now on calls get ``BackendUnavailable`` at once, and those waiting for an open stop
        waiting (within ``_POLL`` seconds). Safe from a signal handler's callback."""
        self._stopping.set()

    def close(self, wait: float = OPEN_WAIT) -> bool:
        """``stop``, wait for ``warm_up`` (a model still loading must not race the stores being closed),
        then close the service if it was opened, else release the data directory's claim; whether that
        was done. An open or warm-up still under way after ``wait`` seconds in all (a hung connect) is
        left as it is, logged: the process's exit releases the data directory then."""
        self.stop()
        deadline = time.monotonic() + wait
        if self._warm_up is not None:
            self._warm_up.join(wait)
        if (self._warm_up is not None and self._warm_up.is_alive()) or \
                not self._acquire(max(0.0, deadline - time.monotonic()), after_stop=True):
            log.warning("the stores were still opening after %.0f s; leaving them to the process's exit", wait)
            return False
        try:
            if not self._closed:
                self._closed = True
                if self._service is not None:
                    self._service.close()
                else:
                    self._claim.release()
            return True
        finally:
            self._lock.release()
