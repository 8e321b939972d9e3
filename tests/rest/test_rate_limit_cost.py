"""The in-process rate limiter's cost per request: no thread is started per hit, whatever the rate,
and the counts stay those of the moving window."""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType
from typing import Any

import pytest

from memos_mcp.errors import RateLimited
from memos_mcp.rest.ratelimit import EXPIRY_INTERVAL, RateLimiter


def threads_started_during(action: Any) -> int:
    """How many threads the threading module started while ``action()`` ran: each reports itself once
    (counted, not collected by ident: an ended thread's ident is reused by the next one)."""
    started = 0
    main = threading.get_ident()

    def report(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal started
        if threading.get_ident() != main:
            started += 1
        sys.setprofile(None)  # once per thread

    threading.setprofile(report)
    try:
        action()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return started


def test_hits_spaced_wider_than_the_librarys_pruning_delay_do_not_start_a_thread_each() -> None:
    limiter = RateLimiter(["100/minute", "20/10 seconds"])
    limiter.hit("alice")

    def spaced_hits() -> None:
        for _ in range(10):
            time.sleep(0.03)  # wider than limits' own 10 ms pruning delay: a thread per hit before
            limiter.hit("alice")

    assert threads_started_during(spaced_hits) <= 1
    assert limiter.quota("alice").remaining == 9  # 20/10 s, 11 hits


def test_the_moving_window_refuses_and_frees_as_before_while_pruning_is_rarer() -> None:
    limiter = RateLimiter(["3/second"])
    for left in (2, 1, 0):
        assert limiter.hit("bob").remaining == left
    with pytest.raises(RateLimited):
        limiter.hit("bob")
    deadline = time.monotonic() + 3 + EXPIRY_INTERVAL
    while limiter.quota("bob").remaining == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert limiter.hit("bob").remaining == 2  # the refused hit was not counted
    assert limiter.hit("carol").remaining == 2  # each key its own window
