"""Request counts and latencies per route template, for ``/v1/metrics``.

A pure ASGI middleware, placed innermost so that it shares the router's scope and reads the route
the router matched (``scope["route"]``): the key is the template (``/v1/memories/{memory_id}``), never
the raw path, so ids do not explode the number of series. It times what the app does after
authentication; requests refused before (401, 421) are not counted.

Two views of the same requests: the Prometheus exposition (``prometheus_client``, one registry per
app, so per replica: a counter by route and status, a latency histogram by route, the store sizes as
gauges set at each scrape, and the standard ``process_*`` metrics), and a JSON snapshot whose latency
percentiles are over the last ``WINDOW`` requests of each route, so memory stays bounded however long
the server runs.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, ProcessCollector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW = 2048
QUANTILES = (50, 95, 99)
BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds


@dataclass
class RouteStats:
    count: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def record(self, status: int, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.recent.append(seconds)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Metrics:
    """One app's request metrics. ``middleware`` wraps the router; ``snapshot`` is the JSON view and
    ``exposition`` the Prometheus one."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.started = time.time()
        self.registry = CollectorRegistry()
        self._requests = Counter("memos_http_requests", "Requests answered, by route template and status.",
                                 ["method", "route", "status"], registry=self.registry)
        self._latency = Histogram("memos_http_request_duration_seconds", "Time to answer, by route template.",
                                  ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self._catalog_rows = Gauge("memos_catalog_rows", "Rows of each catalog table.", ["table"],
                                   registry=self.registry)
        self._vector_points = Gauge("memos_vector_points", "Points (memories) in the vector store.",
                                    registry=self.registry)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, start time
        self._batches = _BatchCounts()
        self.registry.register(self._batches)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # if the app raises before answering, the server answers 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                self.record(scope["method"], getattr(scope.get("route"), "path", None) or "unmatched", status,
                            time.perf_counter() - started)
        return timed

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Counts one answered request of ``route`` (a template) that took ``seconds``."""
        self.routes.setdefault((method, route), RouteStats()).record(status, seconds)
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """The JSON view: per route, counts by status and latency percentiles (ms) over the recent window."""
        routes = []
        for (method, route), stats in sorted(self.routes.items(), key=lambda item: (item[0][1], item[0][0])):
            ordered = sorted(stats.recent)
            routes.append({
                "method": method, "route": route, "count": stats.count,
                "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
                "latency_ms": {f"p{q}": round(percentile(ordered, q) * 1000, 3) for q in QUANTILES},
                "latency_window": len(ordered), "seconds_total": round(stats.seconds, 6),
            })
        return {"uptime_seconds": round(time.time() - self.started, 3), "routes": routes}

    def exposition(self, stores: dict[str, Any], accept: str) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (Prometheus text 0.0.4, or OpenMetrics), after
        setting the store gauges from ``stores`` (``{"catalog": {table: rows}, "vectors": {"points": n},
        "embedding_batches": {"requests": n, "texts": n, "model_calls": n, ...} or None}``); returns the
        body and its content type."""
        for table, rows in stores["catalog"].items():
            self._catalog_rows.labels(table).set(rows)
        self._vector_points.set(stores["vectors"].get("points") or 0)
        self._batches.counts = stores.get("embedding_batches")
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _BatchCounts(Collector):
    """The embedding batcher's running totals as counters (None when batching is off: no series)."""

    FAMILIES = (("memos_embedding_requests", "requests", "Embedding requests (searches, adds) made to the batcher."),
                ("memos_embedding_model_calls", "model_calls", "Model calls that served them (shared when fewer)."),
                ("memos_embedding_texts", "texts", "Texts embedded through the batcher."))

    def __init__(self) -> None:
        self.counts: dict[str, Any] | None = None

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        if counts:
            for name, key, documentation in self.FAMILIES:
                yield CounterMetricFamily(name, documentation, value=counts[key])
