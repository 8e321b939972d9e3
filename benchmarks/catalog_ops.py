"""Catalog latency benchmark: per-operation µs of the catalog on SQLite, A/B between source trees.

    .venv/bin/python benchmarks/catalog_ops.py [--tree NAME=DIR]... [--rounds 3] [--ops 200]
        [--adds 20] [--out benchmarks/catalog/results.md]

Each ``--tree`` is a directory holding a ``memos_mcp`` package (the worktree by default, as "this";
e.g. ``git archive da43266 memos_mcp | tar -x -C /tmp/old`` for the sqlite3 catalog). Every round
runs one worker subprocess per tree, in turn, so the machine's noise falls on every tree alike; the
median over rounds is reported with the load average. A worker times, on a fresh data directory:
``begin_writes`` + ``end_writes`` of one memory (with its de-duplication key where the tree takes
keys), ``get_cube`` + ``get_user``, ``list_cubes`` (20 cubes), ``history`` of one memory, and
``MemoryService.add_memory`` (one short ``memory_content``, edge vectors, the local embedder) and
``search`` end to end. Every loop is bounded by its count.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPS = ("begin+end write", "get_cube+get_user", "list_cubes (20)", "history", "add_memory", "search")


def _per_call_us(fn: Callable[[int], Any], count: int) -> float:
    """Median µs of ``count`` calls of ``fn(i)``."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def worker(ops: int, adds: int) -> dict[str, float]:
    """Times the catalog of the ``memos_mcp`` on ``sys.path`` (see the module's docstring)."""
    from memos_mcp.config import Settings
    from memos_mcp.core.models import Cube, HistoryEvent, Role, User
    from memos_mcp.core.service import MemoryService
    from memos_mcp.core.stores.catalog import Catalog

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog.db")
        now = datetime.now(UTC)
        catalog.create_user_with_cube(User(user_id="u", user_name="u", role=Role.USER, created_at=now),
                                      Cube(cube_id="c", name="c", owner_id="u", created_at=now, is_default=True))
        for i in range(19):
            catalog.create_cube(Cube(cube_id=f"c{i}", name=f"c{i}", owner_id="u", created_at=now))
        takes_keys = "keys" in inspect.signature(catalog.begin_writes).parameters

        def write(i: int) -> None:
            event = HistoryEvent(memory_id=f"m{i}", cube_id="c", event="ADD", actor="u", at=now, new_memory="text")
            if takes_keys:
                catalog.begin_writes([event], {f"m{i}": f"key{i}"})
            else:
                catalog.begin_writes([event])
            catalog.end_writes([f"m{i}"])

        figures["begin+end write"] = _per_call_us(write, ops)
        figures["get_cube+get_user"] = _per_call_us(lambda i: (catalog.get_cube("c"), catalog.get_user("u")), ops)
        figures["list_cubes (20)"] = _per_call_us(lambda i: catalog.list_cubes(), ops)
        figures["history"] = _per_call_us(lambda i: catalog.history(f"m{i}"), ops)
        catalog.close()
        service = MemoryService.open(Settings(data_dir=Path(tmp) / "data", vector={"backend": "edge"}))
        try:
            service.ensure_user("alice")
            service.add_memory("alice", memory_content="warm-up: the embedder loads here.")
            figures["add_memory"] = _per_call_us(lambda i: service.add_memory(
                "alice", memory_content=f"Note {i}: the team meets on day {i} in room {i % 7}."), adds)
            figures["search"] = _per_call_us(lambda i: service.search("alice", f"when does the team meet {i}"), adds)
        finally:
            service.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR holding a memos_mcp package")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--adds", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.ops, args.adds)))
        return
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(ROOT)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    loads: list[float] = []
    for _ in range(args.rounds):
        for name, tree in trees.items():
            loads.append(os.getloadavg()[0])
            env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
            out = subprocess.run([sys.executable, __file__, "--worker", "--ops", str(args.ops), "--adds",
                                  str(args.adds)], env=env, capture_output=True, text=True, check=False,
                                 timeout=900, cwd=ROOT)
            if out.returncode:
                sys.exit(f"the worker of {name} failed:\n{out.stderr}")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [f"Median µs per operation over {args.rounds} rounds (ops={args.ops}, adds={args.adds}); "
             f"1-min load average during the run {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores.", "",
             "| operation | " + " | ".join(trees) + " |", "|---|" + "---:|" * len(trees)]
    for op in OPS:
        cells = [f"{statistics.median(r[op] for r in runs[name]):,.0f}" for name in trees]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
