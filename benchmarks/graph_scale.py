"""Graph cost at scale: one add's graph write and one search's graph expansion, at 1k / 10k / 100k memories.

Builds the embedded graph (SQLite) of a cube from LoCoMo turns (the first sample's turns, repeated, so two
speakers each take part in about half of the memories, as in a real single-user store) with the calls an
add makes (``GraphMemory.extract`` then ``ingest``, 50 turns a batch for the build), then measures:

- add: one more memory's graph (extract + ingest), median and p95 of 200;
- expand: ``GraphMemory.expand`` for the sample's questions (most name a speaker), plus, where the
  expansion offers it, the exact weights of 40 hits (``Expansion.weights``: what fusion asks per search);
  median and p95, and the number of candidate links handed to fusion (the restricted query's id filter
  and the Python sorting grow with it).

The vectors are left out: the vector store's part of a search is the scale benchmark's. Run it under
any version of the code (``PYTHONPATH``) to compare before and after on the same machine and load:

    nice -n 10 python benchmarks/graph_scale.py --data locomo10_dev.json --dir /tmp/graph-scale --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from memos_mcp.bench.locomo import turn_text, turns_of
from memos_mcp.core.graph.memory import GraphMemory, MemoryGraph
from memos_mcp.core.graph.sqlite_store import SqliteGraphStore

CUBE = "scale"
BATCH = 50
T0 = 1_700_000_000.0


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def _add(graph: GraphMemory, items: list[tuple[str, str | None]], first: int) -> None:
    graphs = graph.extract(CUBE, items)
    graph.ingest(CUBE, [MemoryGraph(str(uuid.UUID(int=first + n)), g, T0 + first + n) for n, g in enumerate(graphs)])


def measure(graph: GraphMemory, turns: list[tuple[str, str]], questions: list[str], size: int) -> dict[str, Any]:
    rng = random.Random(size)
    adds = []
    for n in range(200):
        speaker, text = turns[rng.randrange(len(turns))]
        started = time.perf_counter()
        _add(graph, [(text, speaker)], 10 * size + n)
        adds.append((time.perf_counter() - started) * 1000)
    hits = [str(uuid.UUID(int=rng.randrange(size))) for _ in range(40)]
    expands, links = [], []
    for question in questions:
        started = time.perf_counter()
        found = graph.expand(CUBE, question, 1)
        weights = getattr(found, "weights", None)
        if weights is not None and found.links:
            weights(hits)
        expands.append((time.perf_counter() - started) * 1000)
        links.append(len(found.links))
    return {"memories": size, "add_ms_p50": statistics.median(adds), "add_ms_p95": _p95(adds),
            "expand_ms_p50": statistics.median(expands), "expand_ms_p95": _p95(expands),
            "links_max": max(links), "links_mean": statistics.mean(links), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a LoCoMo-format JSON file")
    parser.add_argument("--dir", type=Path, required=True, help="where the graph files go (one per size)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    args = parser.parse_args()
    sample = json.loads(args.data.read_text(encoding="utf-8"))[0]
    turns = [(t["speaker"], turn_text(t)) for _, session in turns_of(sample) for t in session]
    questions = [qa["question"] for qa in sample["qa"] if int(qa.get("category", 0)) in (1, 2, 3, 4)][:100]
    args.dir.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        path = args.dir / f"graph-{size}.sqlite3"
        for stale in args.dir.glob(f"graph-{size}.sqlite3*"):
            stale.unlink()
        store = SqliteGraphStore(path)
        store.open()
        graph = GraphMemory(store)
        started = time.perf_counter()
        for first in range(0, size, BATCH):
            _add(graph, [(turns[i % len(turns)][1], turns[i % len(turns)][0])
                         for i in range(first, min(size, first + BATCH))], first)
        built = time.perf_counter() - started
        print(json.dumps({**measure(graph, turns, questions, size), "build_s": round(built, 1)}), flush=True)
        store.close()


if __name__ == "__main__":
    main()
