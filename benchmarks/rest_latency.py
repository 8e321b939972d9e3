"""REST latency benchmark: prints figures and writes benchmarks/rest/results.{md,json}.

    .venv/bin/python benchmarks/rest_latency.py [--memories 10000] [--requests 400] [--out benchmarks/rest]

Seeds N memories through the core (not timed), starts `memos-mcp serve` on loopback with rate limits
far above the load, and measures `POST /product/search` latency p50/p95 and throughput under 8 and
32 concurrent clients (each its own keep-alive connection). Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).parent))
from mcp_latency import EXE, environment, free_port, query, seed, wait_healthy  # the sibling benchmark

from memos_mcp.bench.locomo import machine, percentile, publish

ROUTE = "/product/search"
LEVELS = (8, 32)
TIME_LIMIT = 180.0  # seconds per concurrency level, whatever the request count


async def load(url: str, user: str, clients: int, total: int) -> dict[str, Any]:
    """``total`` searches spread over ``clients`` concurrent clients; latency per request, throughput."""
    samples: list[float] = []
    errors: list[str] = []
    remaining = total
    deadline = time.perf_counter() + TIME_LIMIT

    async def client(seed_value: int) -> None:
        nonlocal remaining
        rng = random.Random(seed_value)
        async with httpx2.AsyncClient(base_url=url, timeout=60) as http:
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                answer = await http.post(ROUTE, json={"query": query(rng), "user_id": user, "top_k": 10})
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                samples.append(elapsed)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for i in range(clients):
            group.start_soon(client, 100 + i)
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"search failed: {errors[0]}")
    ordered = sorted(samples)
    return {"clients": clients, "n": len(samples), "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95), "throughput_rps": len(samples) / wall, "wall_s": wall}


async def run(data_dir: Path, user: str, requests: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = environment(data_dir, user) | {"MEMOS_REST__RATE_LIMITS": '["1000000/minute"]'}
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server mid-run.
    with (data_dir.parent / "serve.log").open("wb") as log:
        server = subprocess.Popen([EXE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
    try:
        await wait_healthy(url)
        await load(url, user, 4, 40)  # warm-up: the model's first runs, the connection pools
        return {str(clients): await load(url, user, clients, requests) for clients in LEVELS}
    finally:
        server.terminate()
        server.wait(timeout=60)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# REST latency", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
             f"{report['memories']} memories in the cube; default embedded configuration; `memos-mcp serve` "
             f"on loopback, one process; `POST {ROUTE}` (top_k 10), rate limits on but far above the load.", "",
             "| concurrent clients | requests | p50 | p95 | throughput |", "|---|---|---|---|---|"]
    for level in report["levels"].values():
        lines.append(f"| {level['clients']} | {level['n']} | {level['p50_ms']:.1f} ms | {level['p95_ms']:.1f} ms | "
                     f"{level['throughput_rps']:.0f} req/s |")
    lines += ["", "Latency is per request as the client sees it, queueing included: the server runs each search "
              "(embedding, dense and sparse retrieval) in a worker thread, and the clients share the same two cores."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="searches per concurrency level")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memos-mcp-rest-bench-"))
    try:
        user = "bench"
        seed(work / "data", user, args.memories)
        report = {"memories": args.memories, "route": ROUTE, "machine": machine(),
                  "levels": anyio.run(run, work / "data", user, args.requests)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
