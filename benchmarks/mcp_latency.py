"""MCP latency benchmark: prints figures and writes benchmarks/mcp/results.{md,json}.

    .venv/bin/python benchmarks/mcp_latency.py [--memories 10000] [--queries 200] [--out benchmarks/mcp]

Measures, against real `memos-mcp` processes on this machine:
- cold start of `memos-mcp stdio` to the `initialize` reply, and to the first `search_memory` answer;
- `search_memory` tool-call latency p50/p95 over stdio and over streamable HTTP with N memories;
- `add_memory` tool-call latency p50/p95 over stdio.
The data directory is seeded through the core first (not timed). Every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from memos_mcp.bench.locomo import machine, percentile, publish
from memos_mcp.config import Settings
from memos_mcp.core.service import MemoryService

EXE = str(Path(sys.executable).parent / "memos-mcp")
PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Ema", "Farid", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"]
VERBS = ["visited", "bought", "painted", "fixed", "booked", "cooked", "planned", "sold", "found", "read"]
THINGS = ["a red bicycle", "the old piano", "a trip to Lisbon", "a sourdough loaf", "the garden shed",
          "a pottery class", "two concert tickets", "a used camera", "the kitchen sink", "a chess set",
          "a mountain cabin", "a vintage lamp", "the team offsite", "a birthday cake", "a yoga mat"]
PLACES = ["in Porto", "at the market", "near the lake", "downtown", "at work", "in the village", "online"]


def fact(rng: random.Random, i: int) -> str:
    return (f"{rng.choice(PEOPLE)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(PLACES)} "
            f"on day {i % 365 + 1} of year {2015 + i % 11}.")


def query(rng: random.Random) -> str:
    return f"What did {rng.choice(PEOPLE)} do with {rng.choice(THINGS)}?"


def seed(data_dir: Path, user: str, count: int) -> None:
    service = MemoryService.open(Settings(data_dir=data_dir))
    try:
        service.ensure_user(user)
        rng = random.Random(7)
        for start in range(0, count, 500):
            text = "\n".join(fact(rng, i) for i in range(start, min(count, start + 500)))
            service.add_memory(user, messages=[{"role": "user", "content": line} for line in text.splitlines()],
                               conversation_id=f"seed-{start // 500}")
    finally:
        service.close()


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    samples: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
        if getattr(result, "is_error", False):
            raise RuntimeError(f"tool call failed: {result.content}")
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "n": len(samples)}


def environment(data_dir: Path, user: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    # the rate limits count MCP over HTTP too: a latency benchmark measures the server, not the limiter
    env.update(MEMOS_DATA_DIR=str(data_dir), MEMOS_USER_ID=user, MEMOS_REST__RATE_LIMITS="[]")
    return env


async def stdio_run(data_dir: Path, user: str, queries: int, adds: int) -> dict[str, Any]:
    params = StdioServerParameters(command=EXE, args=["stdio"], env=environment(data_dir, user))
    rng = random.Random(11)
    started = time.perf_counter()
    with anyio.fail_after(300):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            initialized = (time.perf_counter() - started) * 1000
            await session.call_tool("search_memory", {"query": query(rng)})
            first_search = (time.perf_counter() - started) * 1000
            search = await timed(lambda: session.call_tool("search_memory", {"query": query(rng)}), queries)
            counter = iter(range(10**9))
            add = await timed(lambda: session.call_tool("add_memory", {
                "memory_content": f"Benchmark note {next(counter)}: {fact(rng, rng.randrange(10**6))}"}), adds)
    return {"cold_start_initialize_ms": initialized, "cold_start_first_search_ms": first_search,
            "search_ms": summary(search), "add_ms": summary(add)}


async def cold_starts(data_dir: Path, user: str, runs: int) -> dict[str, float]:
    """Fresh `memos-mcp stdio` processes, timed from spawn to the initialize reply."""
    params = StdioServerParameters(command=EXE, args=["stdio"], env=environment(data_dir, user))
    samples: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        with anyio.fail_after(120):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                samples.append((time.perf_counter() - started) * 1000)
    return {"median": percentile(samples, 50), "max": max(samples), "n": len(samples)}


def raw_request(request_id: int, text: str) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                        "params": {"name": "search_memory", "arguments": {"query": text}}}) + "\n").encode()


INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


def raw_stdio_search(data_dir: Path, user: str, queries: int) -> dict[str, float]:
    """search_memory over stdio with a bare JSON-RPC client: the server's own latency."""
    rng = random.Random(17)
    process = subprocess.Popen([EXE, "stdio"], env=environment(data_dir, user), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        process.stdin.flush()
        process.stdout.readline()
        samples: list[float] = []
        for request_id in range(1, queries + 11):
            started = time.perf_counter()
            process.stdin.write(raw_request(request_id, query(rng)))
            process.stdin.flush()
            reply = json.loads(process.stdout.readline())
            if reply.get("error") or reply["result"].get("isError"):
                raise RuntimeError(f"search failed: {reply}")
            if request_id > 10:  # the first calls warm the model
                samples.append((time.perf_counter() - started) * 1000)
        return summary(samples)
    finally:
        process.stdin.close()
        process.wait(timeout=60)


async def raw_http_search(url: str, queries: int) -> dict[str, float]:
    """search_memory over streamable HTTP with a bare JSON-RPC client (one keep-alive connection)."""
    rng = random.Random(19)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(timeout=30, headers=headers) as client:
        opened = await client.post(url, content=json.dumps(INITIALIZE))
        session = opened.headers.get("mcp-session-id")
        if session:
            client.headers["mcp-session-id"] = session
            client.headers["mcp-protocol-version"] = "2025-06-18"
        await client.post(url, content='{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        samples: list[float] = []
        for request_id in range(1, queries + 11):
            started = time.perf_counter()
            response = await client.post(url, content=raw_request(request_id, query(rng)))
            body = response.text
            payload = json.loads(body.split("data:", 1)[1]) if body.startswith(("event:", "data:")) else response.json()
            if payload.get("error") or payload["result"].get("isError"):
                raise RuntimeError(f"search failed: {payload}")
            if request_id > 10:
                samples.append((time.perf_counter() - started) * 1000)
        return summary(samples)


async def wait_healthy(url: str) -> None:
    """Until the server at ``url`` answers /health with 200 (two minutes at most)."""
    async with httpx2.AsyncClient(timeout=30) as probe:
        with anyio.fail_after(120):
            while True:
                try:
                    if (await probe.get(f"{url}/health")).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def http_run(data_dir: Path, user: str, queries: int) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([EXE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=environment(data_dir, user), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        rng = random.Random(13)
        with anyio.fail_after(300):
            async with httpx2.AsyncClient(timeout=30) as client, \
                    streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=client) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                await session.call_tool("search_memory", {"query": query(rng)})
                search = await timed(lambda: session.call_tool("search_memory", {"query": query(rng)}), queries)
            raw = await raw_http_search(f"http://127.0.0.1:{port}/mcp", queries)
        return {"search_ms": summary(search), "raw_search_ms": raw}
    finally:
        server.terminate()
        server.wait(timeout=60)


def markdown(report: dict[str, Any]) -> str:
    s, h, m = report["stdio"], report["http"], report["machine"]
    return "\n".join([
        "# MCP latency", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
        f"{report['memories']} memories in the cube; default embedded configuration.", "",
        "| measure | value | target |", "|---|---|---|",
        f"| cold start of `memos-mcp stdio` to the initialize reply, median / max of "
        f"{report['cold_start_initialize_ms']['n']} | {report['cold_start_initialize_ms']['median']:.0f} / "
        f"{report['cold_start_initialize_ms']['max']:.0f} ms | <= 1000 ms |",
        f"| cold start to the first search_memory answer | {s['cold_start_first_search_ms']:.0f} ms | |",
        f"| search_memory over stdio, bare JSON-RPC client, p50 / p95 | {s['raw_search_ms']['p50']:.1f} / "
        f"{s['raw_search_ms']['p95']:.1f} ms | p95 <= 25 ms |",
        f"| search_memory over streamable HTTP, bare JSON-RPC client, p50 / p95 | {h['raw_search_ms']['p50']:.1f} / "
        f"{h['raw_search_ms']['p95']:.1f} ms | p95 <= 25 ms |",
        f"| search_memory over stdio, MCP SDK client, p50 / p95 | {s['search_ms']['p50']:.1f} / "
        f"{s['search_ms']['p95']:.1f} ms | |",
        f"| search_memory over streamable HTTP, MCP SDK client, p50 / p95 | {h['search_ms']['p50']:.1f} / "
        f"{h['search_ms']['p95']:.1f} ms | |",
        f"| add_memory over stdio, MCP SDK client, p50 / p95 | {s['add_ms']['p50']:.1f} / "
        f"{s['add_ms']['p95']:.1f} ms | |",
        "",
        "The MCP SDK client validates every structured result against the tool's output schema (jsonschema, in",
        "Python, on the same two cores as the server); the bare client measures the server alone.",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memos-mcp-bench-"))
    try:
        user = "bench"
        seed(work / "data", user, args.memories)
        report = {"memories": args.memories, "machine": machine(),
                  "cold_start_initialize_ms": anyio.run(cold_starts, work / "data", user, 5),
                  "stdio": anyio.run(stdio_run, work / "data", user, args.queries, args.adds),
                  "http": anyio.run(http_run, work / "data", user, args.queries)}
        report["stdio"]["raw_search_ms"] = raw_stdio_search(work / "data", user, args.queries)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
