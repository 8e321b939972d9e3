"""Request counts and latencies per route template, for ``/v1/metrics``.

A pure ASGI middleware, placed innermost so that it shares the router's scope and reads the route
the router matched (``scope["route"]``): the key is the template (``/v1/memories/{memory_id}``), never
the raw path, so ids do not explode the number of series. It times what the app does after
authentication; requests refused before (401, 421) are not counted. Latency percentiles are over the
last ``WINDOW`` requests of each route, so memory stays bounded however long the server runs.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW = 2048
QUANTILES = (50, 95, 99)


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
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.started = time.time()

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
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                key = (scope["method"], route)
                self.routes.setdefault(key, RouteStats()).record(status, time.perf_counter() - started)
        return timed

    def snapshot(self) -> dict[str, Any]:
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


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(snapshot: dict[str, Any], stores: dict[str, Any]) -> str:
    """The Prometheus text exposition format (0.0.4) of a snapshot and the store sizes."""
    lines = ["# HELP memos_http_requests_total Requests answered, by route template and status.",
             "# TYPE memos_http_requests_total counter"]
    for route in snapshot["routes"]:
        labels = f'method="{route["method"]}",route="{_label(route["route"])}"'
        lines += [f'memos_http_requests_total{{{labels},status="{status}"}} {count}'
                  for status, count in route["statuses"].items()]
    lines += ["# HELP memos_http_request_duration_seconds Latency over the recent requests of each route.",
              "# TYPE memos_http_request_duration_seconds summary"]
    for route in snapshot["routes"]:
        labels = f'method="{route["method"]}",route="{_label(route["route"])}"'
        lines += [f'memos_http_request_duration_seconds{{{labels},quantile="{q / 100}"}} '
                  f'{route["latency_ms"][f"p{q}"] / 1000}' for q in QUANTILES]
        lines += [f"memos_http_request_duration_seconds_sum{{{labels}}} {route['seconds_total']}",
                  f"memos_http_request_duration_seconds_count{{{labels}}} {route['count']}"]
    lines += ["# HELP memos_catalog_rows Rows of each catalog table.", "# TYPE memos_catalog_rows gauge"]
    lines += [f'memos_catalog_rows{{table="{_label(table)}"}} {n}' for table, n in stores["catalog"].items()]
    lines += ["# HELP memos_vector_points Points (memories) in the vector store.", "# TYPE memos_vector_points gauge",
              f"memos_vector_points {stores['vectors'].get('points') or 0}",
              "# HELP memos_uptime_seconds Seconds since the app was built.", "# TYPE memos_uptime_seconds gauge",
              f"memos_uptime_seconds {snapshot['uptime_seconds']}"]
    batches = stores.get("embedding_batches")
    if batches:  # the embedding batcher's counts (None when batching is off)
        lines += ["# HELP memos_embedding_requests_total Embedding requests (searches, adds) made to the batcher.",
                  "# TYPE memos_embedding_requests_total counter",
                  f"memos_embedding_requests_total {batches['requests']}",
                  "# HELP memos_embedding_model_calls_total Model calls that served them (shared when fewer).",
                  "# TYPE memos_embedding_model_calls_total counter",
                  f"memos_embedding_model_calls_total {batches['model_calls']}",
                  "# HELP memos_embedding_texts_total Texts embedded through the batcher.",
                  "# TYPE memos_embedding_texts_total counter",
                  f"memos_embedding_texts_total {batches['texts']}"]
    return "\n".join(lines) + "\n"
