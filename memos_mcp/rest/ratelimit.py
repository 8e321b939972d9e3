"""Rate limits per API key for the REST dialects, with the ``limits`` library.

Moving window, not fixed window: "at most 20 in 10 s" then holds for every 10 s span. A fixed window
lets a caller spend 20 at the end of one window and 20 more at the start of the next (40 in a second);
the moving window's cost, one timestamp per hit kept for the window, is bounded by the limit
(120 per key with the defaults). Storage is in memory: one process, counters lost on restart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from memos_mcp.errors import RateLimited


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

    ``applies`` says, at each request, whether limiting is on at all: the default limits guard keyed
    callers, and a loopback server without any key (one person's own agent) is not throttled unless
    limits were configured (``rest.rate_limits`` set explicitly)."""

    def __init__(self, rates: Sequence[str], applies: Callable[[], bool] = lambda: True) -> None:
        self.items: list[RateLimitItem] = [parse(rate) for rate in rates]
        self.applies = applies
        self._strategy = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> Quota:
        """Counts one request of ``key``; raises ``RateLimited`` (carrying the headers) if over. When
        limiting does not apply, nothing is counted and the quota is reported as it stands.

        Called on the event loop: the in-memory test-then-hit below has no await between, so two
        requests cannot both take the last slot."""
        if not self.applies():
            return self.quota(key)
        refused = next((item for item in self.items if not self._strategy.test(item, key)), None)
        if refused is None:
            for item in self.items:
                self._strategy.hit(item, key)
        quota = self.quota(key)
        if refused is not None:
            reset = self._strategy.get_window_stats(refused, key).reset_time
            raise RateLimited(str(refused), max(1, math.ceil(reset - time.time())), quota.headers())
        return quota

    def quota(self, key: str) -> Quota:
        stats = [(item, self._strategy.get_window_stats(item, key)) for item in self.items]
        item, tightest = min(stats, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
        return Quota(item.amount, max(0, tightest.remaining), math.ceil(tightest.reset_time))
