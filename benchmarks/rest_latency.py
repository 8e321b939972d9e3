"""REST latency benchmark: prints figures and writes benchmarks/rest/results.{md,json}.

    .venv/bin/python benchmarks/rest_latency.py [--memories 10000] [--requests 400] [--clients 8,32]
        [--locomo FILE] [--store DIR] [--variant NAME:VAR=VALUE,...]... [--rounds N] [--out benchmarks/rest]

Seeds N memories through the core (not timed), starts `memos-mcp serve` on loopback with rate limits
far above the load, and measures `POST /product/search` latency p50/p95 and throughput under each
number of concurrent clients (each its own keep-alive connection). Every loop is bounded in count and time.

- ``--locomo FILE`` seeds LoCoMo turns instead of synthetic facts (every sample's sessions in one cube,
  through ``add_memory``, again with a round mark until N memories) and asks LoCoMo's questions.
- ``--store DIR`` keeps the seeded data directory in DIR and reuses it when DIR already holds one.
- ``--variant`` (repeatable) measures servers that differ by environment settings A/B: each serves its
  own copy of the store, all run at once, and their loads are interleaved level by level for
  ``--rounds`` rounds, so the machine's noise falls on every variant alike. The load average is
  recorded with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).parent))
from mcp_latency import EXE, environment, free_port, query, seed, wait_healthy  # the sibling benchmark

from memos_mcp.bench.locomo import machine, percentile, publish, turn_text, turns_of
from memos_mcp.config import Settings
from memos_mcp.core.service import MemoryService

ROUTE = "/product/search"
LEVELS = (8, 32)
TIME_LIMIT = 180.0  # seconds per concurrency level, whatever the request count
Ask = Callable[[random.Random], str]


def seed_locomo(data_dir: Path, user: str, count: int, data: Path) -> None:
    """``count`` memories from LoCoMo's turns, one ``add_memory`` per session into the user's cube; the
    turns come again with a round mark (`` [round 2]``) until there are ``count``."""
    sessions = [(when, turns) for sample in json.loads(data.read_text(encoding="utf-8"))
                for when, turns in turns_of(sample)]
    service = MemoryService.open(Settings(data_dir=data_dir))
    try:
        service.ensure_user(user)
        added, rounds = 0, 0
        while added < count and rounds < 1000:
            rounds += 1
            for number, (when, turns) in enumerate(sessions):
                mark = f" [round {rounds}]" if rounds > 1 else ""
                part = turns[: count - added]
                service.add_memory(user, messages=[{"role": "user", "content": turn_text(t) + mark,
                                                    "name": t["speaker"], "chat_time": when or None} for t in part],
                                   conversation_id=f"r{rounds}-s{number}")
                added += len(part)
                if added >= count:
                    break
    finally:
        service.close()


def locomo_questions(data: Path) -> Ask:
    questions = [str(qa["question"]) for sample in json.loads(data.read_text(encoding="utf-8"))
                 for qa in sample["qa"]]
    return lambda rng: rng.choice(questions)


def load_average() -> float:
    return os.getloadavg()[0]


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, every thread) the process has used: Linux's /proc; 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, user: str, clients: int, total: int, ask: Ask = query,
               pid: int | None = None) -> dict[str, Any]:
    """``total`` searches spread over ``clients`` concurrent clients; latency per request, throughput,
    and the server's (process ``pid``) CPU time per search: what a search costs whatever else runs on
    the machine (on a busy shared machine throughput measures the scheduler's share as much as the server)."""
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
                answer = await http.post(ROUTE, json={"query": ask(rng), "user_id": user, "top_k": 10})
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                samples.append(elapsed)

    load_before = load_average()
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for i in range(clients):
            group.start_soon(client, 100 + i)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    if errors:
        raise RuntimeError(f"search failed: {errors[0]}")
    ordered = sorted(samples)
    return {"clients": clients, "n": len(samples), "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95), "throughput_rps": len(samples) / wall, "wall_s": wall,
            "cpu_ms_per_search": cpu * 1000 / max(1, len(samples)),
            "load_before": load_before, "load_after": load_average()}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:VAR=VALUE,VAR=VALUE`` (``NAME`` alone: the defaults)."""
    name, _, settings = text.partition(":")
    pairs = [item.split("=", 1) for item in settings.split(",") if item]
    if not name or any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"--variant {text!r}: write NAME or NAME:VAR=VALUE,VAR=VALUE")
    return name, {key: value for key, value in pairs}


def merge(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's rounds together: medians of the rounds' figures, their spread, the load average."""
    def median(key: str) -> float:
        return percentile([s[key] for s in samples], 50)
    return {"clients": samples[0]["clients"], "n": sum(s["n"] for s in samples), "rounds": len(samples),
            "p50_ms": median("p50_ms"), "p95_ms": median("p95_ms"), "throughput_rps": median("throughput_rps"),
            "cpu_ms_per_search": median("cpu_ms_per_search"),
            "throughput_range": [min(s["throughput_rps"] for s in samples), max(s["throughput_rps"] for s in samples)],
            "load_average": median("load_before"), "each": samples}


async def run(data_dir: Path, work: Path, user: str, requests: int, levels: tuple[int, ...],
              variants: dict[str, dict[str, str]], rounds: int, ask: Ask) -> dict[str, Any]:
    """Every variant's server at once (each on its own copy of the store, in ``work``), loads interleaved."""
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        for name, extra in variants.items():
            copy = work / f"variant-{name}"
            shutil.copytree(data_dir, copy)
            port = free_port()
            env = environment(copy, user) | {"MEMOS_REST__RATE_LIMITS": '["1000000/minute"]'} | extra
            # The server's log goes to a file: a pipe nobody reads fills up and blocks the server mid-run.
            with (work / f"serve-{name}.log").open("wb") as log:
                servers[name] = (f"http://127.0.0.1:{port}", subprocess.Popen(
                    [EXE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                    stdout=subprocess.DEVNULL, stderr=log))
        for url, _ in servers.values():
            await wait_healthy(url)
            await load(url, user, 4, 40, ask)  # warm-up: the model's first runs, the connection pools
        measured: dict[str, dict[int, list[dict[str, Any]]]] = {name: {c: [] for c in levels} for name in servers}
        for turn in range(rounds):
            for clients in levels:
                order = list(servers) if turn % 2 == 0 else list(reversed(servers))
                for name in order:
                    url, server = servers[name]
                    measured[name][clients].append(await load(url, user, clients, requests, ask, server.pid))
        return {name: {str(c): merge(samples) for c, samples in by_level.items()}
                for name, by_level in measured.items()}
    finally:
        for _, server in servers.values():
            server.terminate()
        for _, server in servers.values():
            server.wait(timeout=60)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# REST latency", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
             f"{report['memories']} memories in the cube ({report['seed']}); default embedded configuration "
             f"unless a variant says otherwise; `memos-mcp serve` on loopback, one process per variant; "
             f"`POST {ROUTE}` (top_k 10), rate limits on but far above the load. Figures are the median of "
             f"{report['rounds']} interleaved round(s); the load average (1 min) is taken before each load.", "",
             "| variant | concurrent clients | requests | p50 | p95 | throughput (range) | server CPU per search "
             "| load avg |", "|---|---|---|---|---|---|---|---|"]
    for name, levels in report["variants"].items():
        for level in levels.values():
            low, high = level["throughput_range"]
            lines.append(f"| {name} | {level['clients']} | {level['n']} | {level['p50_ms']:.1f} ms | "
                         f"{level['p95_ms']:.1f} ms | {level['throughput_rps']:.0f} req/s ({low:.0f}-{high:.0f}) | "
                         f"{level['cpu_ms_per_search']:.1f} ms | {level['load_average']:.2f} |")
    lines += ["", "Variants: " + "; ".join(f"{name}: {' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}"
                                          for name, env in report["settings"].items()),
              "", "Latency is per request as the client sees it, queueing included: the server runs each search "
              "(embedding, dense and sparse retrieval) in a worker thread, and the clients share the same two cores."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="searches per concurrency level and round")
    parser.add_argument("--clients", default=",".join(map(str, LEVELS)), help="concurrency levels, e.g. 1,4,16")
    parser.add_argument("--locomo", type=Path, help="seed LoCoMo turns and ask its questions")
    parser.add_argument("--store", type=Path, help="keep the seeded data directory here (reused if present)")
    parser.add_argument("--variant", action="append", default=[], help="NAME:VAR=VALUE,... (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    levels = tuple(int(c) for c in args.clients.split(","))
    variants = dict(parse_variant(v) for v in args.variant) or {"default": {}}
    work = Path(tempfile.mkdtemp(prefix="memos-mcp-rest-bench-", dir=args.store.parent if args.store else None))
    try:
        user = "bench"
        store = args.store or work / "data"
        if not (store / "catalog.sqlite3").exists():
            if args.locomo:
                seed_locomo(store, user, args.memories, args.locomo)
            else:
                seed(store, user, args.memories)
        ask = locomo_questions(args.locomo) if args.locomo else query
        report = {"memories": args.memories, "route": ROUTE, "machine": machine(), "rounds": args.rounds,
                  "seed": f"LoCoMo turns of {args.locomo.name}" if args.locomo else "synthetic facts",
                  "settings": variants,
                  "variants": anyio.run(run, store, work, user, args.requests, levels, variants, args.rounds, ask)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
