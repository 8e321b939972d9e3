"""Rate limits per API key for the REST dialects and MCP over HTTP, with the ``limits`` library.

Moving window, not fixed window: "at most 20 in 10 s" then holds for every 10 s span. A fixed window
lets a caller spend 20 at the end of one window and 20 more at the start of the next (40 in a second);
the moving window's cost, one timestamp per hit kept for the window, is bounded by the limit
(120 per key with the defaults). The counts live where ``rest.rate_limit_storage`` says: in this
process (``memory://``, the default: lost on restart, not shared), or in Redis (``redis://host:6379/0``)
so that every replica behind a load balancer draws on the same counts. If Redis cannot be reached a
request is let through (logged, at most once a minute) rather than refused: an outage of the limiter
must not take the memory service down; ``/health`` and ``memos-mcp doctor`` report it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from memos_mcp.errors import BackendUnavailable, ConfigError, RateLimited

log = logging.getLogger(__name__)


EXPIRY_INTERVAL = 1.0  # seconds between two prunings of expired hits kept in this process


class _Memory(MemoryStorage):
    """``limits``' in-process storage, pruning expired hits at most once per ``EXPIRY_INTERVAL``. The
    library prunes 10 ms after a hit, on a timer thread it starts anew when the last one has ended: at
    any rate between 1 and 100 requests/s that is a new thread per request (0.6-0.8 ms of CPU per hit,
    measured). Pruning only frees memory, the moving window counts by the hits' timestamps: the counts
    and headers are the same, and the hits kept are bounded by the limits plus one interval's worth."""

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private hook, called by every hit
        if not self.timer.is_alive():
            self.timer = threading.Timer(EXPIRY_INTERVAL, self.timer.function)  # the library's pruning
            self.timer.daemon = True  # an exit does not wait for the next pruning
            self.timer.start()


@dataclass(frozen=True)
class Quota:
    """What is left of the tightest limit after a request: the ``X-RateLimit-*`` headers."""

    limit: int
    remaining: int
    reset: int  # Unix time (s) at which the tightest window frees a request

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class RateLimiter:
    """Every configured limit applies to each key; a request refused by one is counted by none.

    ``rates`` are ``limits`` strings ("100/minute"); ``storage`` a ``limits`` storage URI
    (``memory://``, ``redis://host:port/db``, ``rediss://...``). ``applies`` says, at each request,
    whether limiting is on at all: the default limits guard keyed callers, and a loopback server without
    any key (one person's own agent) is not throttled unless limits were configured
    (``rest.rate_limits`` set explicitly). Raises ``ConfigError`` for a storage URI ``limits`` cannot use
    (an unknown scheme, or Redis without the ``redis`` package)."""

    def __init__(self, rates: Sequence[str], applies: Callable[[], bool] = lambda: True,
                 storage: str = "memory://") -> None:
        self.items: list[RateLimitItem] = [parse(rate) for rate in rates]
        self.applies = applies
        # Bounded waits: the limiter runs on the event loop, and a stalled Redis must not stall the server.
        options = {"socket_connect_timeout": 0.25, "socket_timeout": 0.25} if storage.startswith("redis") else {}
        try:
            self.storage = _Memory() if storage == "memory://" else storage_from_string(storage, **options)
        except ConfigurationError as exc:
            raise ConfigError(f"rest.rate_limit_storage {storage!r}: {exc}", field="rest.rate_limit_storage") from exc
        self._strategy = MovingWindowRateLimiter(self.storage)
        self._shared = not storage.startswith("memory://")
        # What an outage of a shared storage raises (the driver's own errors, e.g. redis.RedisError);
        # nothing is caught in memory, where an error would be a bug.
        driver = self.storage.base_exceptions
        self._outage: tuple[type[BaseException], ...] = (
            (StorageError, OSError, *(driver if isinstance(driver, tuple) else (driver,))) if self._shared else ())
        self._warned = 0.0

    def hit(self, key: str) -> Quota:
        """Counts one request of ``key``; raises ``RateLimited`` (carrying the headers) if over. When
        limiting does not apply, nothing is counted and the quota is reported as it stands.

        Called on the event loop. In memory the test-then-hit below has no await between, so two requests
        cannot both take the last slot. With Redis each hit is atomic (a script), but the test of every
        limit and the hits are separate calls: requests arriving at the same instant at two replicas can
        overshoot a limit by the number of replicas, at most."""
        if not self.applies():
            return self._quota_or_unknown(key)
        try:
            refused = next((item for item in self.items if not self._strategy.test(item, key)), None)
            if refused is None:
                for item in self.items:
                    self._strategy.hit(item, key)
            quota = self.quota(key)
            if refused is not None:
                reset = self._strategy.get_window_stats(refused, key).reset_time
        except self._outage as exc:
            self._unreachable(exc)
            return self._unknown()
        if refused is not None:
            raise RateLimited(str(refused), max(1, math.ceil(reset - time.time())), quota.headers())
        return quota

    def quota(self, key: str) -> Quota:
        stats = [(item, self._strategy.get_window_stats(item, key)) for item in self.items]
        item, tightest = min(stats, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
        return Quota(item.amount, max(0, tightest.remaining), math.ceil(tightest.reset_time))

    def check(self) -> None:
        """Raises ``BackendUnavailable`` naming the storage if it does not answer (for /health, doctor)."""
        try:
            alive = self.storage.check()
        except self._outage as exc:
            raise BackendUnavailable(f"rate-limit storage does not answer: {exc}", backend="rate_limits") from exc
        if not alive:
            raise BackendUnavailable("rate-limit storage does not answer", backend="rate_limits")

    @property
    def shared(self) -> bool:
        """Whether the counts live outside this process (shared by the replicas)."""
        return self._shared

    def _quota_or_unknown(self, key: str) -> Quota:
        try:
            return self.quota(key)
        except self._outage as exc:
            self._unreachable(exc)
            return self._unknown()

    def _unknown(self) -> Quota:
        """The headers when the counts cannot be read: the tightest limit, nothing known to be spent."""
        item = min(self.items, key=lambda item: item.amount)
        return Quota(item.amount, item.amount, math.ceil(time.time() + item.get_expiry()))

    def _unreachable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            log.warning("rate-limit storage unreachable, requests are let through unlimited: %s", exc)
