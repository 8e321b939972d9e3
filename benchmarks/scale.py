"""Scale benchmark: stores of 1k/10k/100k memories built through the public add path, and what search,
add, memory and disk cost at each size. Prints figures and writes benchmarks/scale/results.{md,json}.

    .venv/bin/python benchmarks/scale.py build   --cache /work/benchdata/scale [--sizes 1000,10000,100000]
    .venv/bin/python benchmarks/scale.py measure --cache /work/benchdata/scale [--sizes ...] [--out benchmarks/scale]

``build`` adds LoCoMo-derived turns (``--data``, default /work/shared/data/locomo/locomo10_dev.json, read,
never copied) with ``MemoryService.add_memory`` (one call per session, the deterministic extractor, as
``bench locomo``) into ONE cube of one user (a person's store: the speakers' entities link to most of it),
default embedded configuration. The 2,760 turns are cycled to reach 100k: cycle 0 is the turns as they
are; cycle k > 0 appends to each turn a second turn of the same sample picked by a permutation seeded by
k, so that every memory is distinct text (nothing is de-duplicated away) in the same vocabulary and
speakers. Progress is kept in ``<cache>/build/progress.json`` after every call: a build stopped at any
point resumes where it was. Each size, once reached, is copied to ``<cache>/<size>``.

``measure`` takes each size in a fresh subprocess (so RSS is that store's), on a private copy of the
cached store: opens it (default configuration), searches the LoCoMo questions with graph expansion on
and off BEFORE the vector index is built (a full scan, as before indexing existed), builds the index
(optimize time), searches again, measures the dense recall@10 of the HNSW index against an exact search
for the same queries, times single-message adds, and reports RSS, disk size and the load average.
Every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memos_mcp.bench.locomo import machine, percentile, publish, turn_text, turns_of
from memos_mcp.config import Settings, load_settings
from memos_mcp.core.service import ROOT_USER, MemoryService

DATA = Path("/work/shared/data/locomo/locomo10_dev.json")
SIZES = (1000, 10000, 100000)
CUBE = "scale"
QUERIES = 200  # questions searched per mode (graph on / off; before / after the index)
ADDS = 30  # single-message adds timed per size
RECALL_K = 10
EFS = (16, 32, 64, 128, 256)  # search ef values whose recall and latency are measured (128 is the default)


def sessions(dataset: list[dict[str, Any]]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Every (conversation id, chat time, messages) of cycle 0, 1, 2, ... (endless; see the module doc)."""
    cycle = 0
    while True:
        for sample in dataset:
            every = [t for _, turns in turns_of(sample) for t in turns]
            partner = list(range(len(every)))
            random.Random(cycle * 7919 + len(every)).shuffle(partner)
            position = 0
            for number, (when, turns) in enumerate(turns_of(sample), start=1):
                messages = []
                for turn in turns:
                    text = turn_text(turn)
                    if cycle:
                        text = f"{text} {turn_text(every[partner[position]])}"
                    messages.append({"role": "user", "content": text, "name": turn["speaker"],
                                     "message_id": f"c{cycle}-{turn['dia_id']}", "chat_time": when or None})
                    position += 1
                yield f"{sample['sample_id']}-c{cycle}-s{number}", when, messages
        cycle += 1


def settings_for(data_dir: Path) -> Settings:
    return load_settings().model_copy(update={"data_dir": data_dir})


def build(cache: Path, sizes: list[int], data: Path, deadline: float) -> int:
    """Add sessions until the largest size is reached (or ``deadline`` seconds pass); resumable."""
    dataset = json.loads(data.read_text(encoding="utf-8"))
    work = cache / "build"
    progress_file = cache / "progress.json"
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {"calls": 0, "memories": 0,
                                                                                      "seconds": 0.0}
    service = MemoryService.open(settings_for(work))
    started = time.monotonic()
    try:
        if progress["calls"] == 0:
            service.create_cube(ROOT_USER, "scale", cube_id=CUBE)
        service.ready()
        feed = sessions(dataset)
        for _ in range(progress["calls"]):
            next(feed)
        while progress["memories"] < max(sizes) and time.monotonic() - started < deadline:
            conversation, _, messages = next(feed)
            t0 = time.perf_counter()
            result = service.add_memory(ROOT_USER, cube_id=CUBE, messages=messages, conversation_id=conversation,
                                        async_mode=False)
            progress["seconds"] += time.perf_counter() - t0
            progress["calls"] += 1
            progress["memories"] += len(result.added)
            _write_json(progress_file, progress)
            for size in sizes:
                target = cache / str(size)
                if progress["memories"] >= size and not (target / "done.json").exists():
                    service.close()
                    _snapshot(work, target, progress)
                    service = MemoryService.open(settings_for(work))
                    service.ready()
            if progress["calls"] % 50 == 0:
                print(f"{progress['memories']} memories, {progress['calls']} calls, "
                      f"{progress['seconds']:.0f} s adding, load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        service.close()
    print(json.dumps(progress))
    return 0


def _snapshot(work: Path, target: Path, progress: dict[str, Any]) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(work, target / "data", ignore=shutil.ignore_patterns("*.lock", "lock"))
    _write_json(target / "done.json", {**progress, "loadavg": os.getloadavg()})
    print(f"snapshot {target}: {progress['memories']} memories", flush=True)


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _disk_mb(path: Path) -> float:
    """Space used on disk (allocated blocks: the WAL's preallocated files count for what they hold)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def _searches(service: MemoryService, questions: list[str], graph: bool,
              preferences: bool = False) -> dict[str, float]:
    """Latency p50/p95 (ms) of one search per question, and the process's CPU ms per search."""
    elapsed = []
    cpu = time.process_time()
    for question in questions:
        t0 = time.perf_counter()
        service.search(ROOT_USER, question, cube_ids=[CUBE], top_k=10, include_preference=preferences, graph=graph)
        elapsed.append((time.perf_counter() - t0) * 1000)
    return {"p50": percentile(elapsed, 50), "p95": percentile(elapsed, 95), "queries": len(elapsed),
            "cpu_ms": (time.process_time() - cpu) * 1000 / len(elapsed), "loadavg": os.getloadavg()[0]}


def measure_one(cache: Path, size: int, data: Path) -> dict[str, Any]:
    """The figures of one cached size (run in its own process)."""
    from memos_mcp.core.stores.vector import MemoryFilter

    dataset = json.loads(data.read_text(encoding="utf-8"))
    questions = [qa["question"] for sample in dataset for qa in sample["qa"] if qa.get("category") in (1, 2, 3, 4)]
    questions = questions[:QUERIES]
    source = cache / str(size) / "data"
    work = cache / "work" / str(size)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    report: dict[str, Any] = {"size": size, "built": json.loads((cache / str(size) / "done.json").read_text())}
    settings = settings_for(work)
    # No automatic index build while measuring the store as it was: the build is timed on its own below.
    settings = settings.model_copy(update={"vector": settings.vector.model_copy(update={"index_threshold": 0})})
    t0 = time.perf_counter()
    service = MemoryService.open(settings)
    vectors = service.ready()
    report["open_s"] = time.perf_counter() - t0
    try:
        report["points"] = vectors.stats()["points"]
        _searches(service, questions[:10], False)  # warm-up
        report["before_index"] = {"graph_off": _searches(service, questions, False),
                                  "graph_on": _searches(service, questions, True)}
        report["rss_before_index_mb"] = _rss_mb()
        t0 = time.perf_counter()
        vectors.build_index()
        report["optimize_s"] = time.perf_counter() - t0
        report["index"] = vectors.stats().get("index", {})
        _searches(service, questions[:10], False)
        report["after_index"] = {"graph_off": _searches(service, questions, False),
                                 "graph_on": _searches(service, questions, True),
                                 "default": _searches(service, questions, True, preferences=True)}
        report["recall"] = _recall(service, questions, MemoryFilter(cube_ids=(CUBE,)))
        adds = []
        for number in range(ADDS):
            t0 = time.perf_counter()
            service.add_memory(ROOT_USER, cube_id=CUBE, memory_content=f"Probe note {number} for the scale "
                               f"benchmark: Caroline mentioned her pottery class number {number * 37 % 101}.")
            adds.append((time.perf_counter() - t0) * 1000)
        report["single_add_ms"] = {"p50": percentile(adds, 50), "p95": percentile(adds, 95),
                                   "mean": sum(adds) / len(adds), "loadavg": os.getloadavg()[0]}
        report["rss_mb"] = _rss_mb()
    finally:
        service.close()
    report["disk_mb"] = _disk_mb(work)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _recall(service: MemoryService, questions: list[str], flt: Any) -> dict[str, Any]:
    """Dense recall@10 of the index against an exact search, and the latency of each (qdrant-edge)."""
    import qdrant_edge as qe

    from memos_mcp.core.stores.vector_edge import edge_filter

    shard = service.ready().shard  # type: ignore[attr-defined]
    vectors = [service.embedder.embed_query(q) for q in questions]
    qflt = edge_filter(flt)
    exact, exact_ms = _query_all(shard, vectors, qflt, qe.SearchParams(exact=True))
    report: dict[str, Any] = {"queries": len(vectors), "exact_ms": {"p50": percentile(exact_ms, 50),
                                                                     "p95": percentile(exact_ms, 95)}}
    for ef in EFS:
        found, ms = _query_all(shard, vectors, qflt, qe.SearchParams(hnsw_ef=ef))
        report[f"ef={ef}"] = {f"recall@{RECALL_K}": sum(len(a & b) for a, b in zip(exact, found, strict=True))
                              / (RECALL_K * len(vectors)), "p50": percentile(ms, 50), "p95": percentile(ms, 95)}
    return report


def _query_all(shard: Any, vectors: list[list[float]], flt: Any, params: Any) -> tuple[list[set[str]], list[float]]:
    """The top-10 ids of a dense query per vector on a qdrant-edge shard, and each query's milliseconds."""
    import qdrant_edge as qe

    from memos_mcp.core.stores.vector import DENSE

    found, ms = [], []
    for vector in vectors:
        request = qe.QueryRequest(limit=RECALL_K, query=qe.Query.Nearest(list(vector), using=DENSE), filter=flt,
                                  with_payload=False, with_vector=False, params=params)
        started = time.perf_counter()
        found.append({str(h.id) for h in shard.query(request)})
        ms.append((time.perf_counter() - started) * 1000)
    return found, ms


def tune(cache: Path, size: int, data: Path, settings: list[tuple[int, int]]) -> dict[str, Any]:
    """Build the index of the cached ``size`` store (its vectors only) with each (m, ef_construct) and
    measure its dense recall@10 against an exact search, by search ef; build seconds and disk size."""
    import qdrant_edge as qe

    from memos_mcp.core.embedder import LocalOnnxEmbedder
    from memos_mcp.core.stores import edge_index
    from memos_mcp.core.stores.vector import MemoryFilter
    from memos_mcp.core.stores.vector_edge import edge_filter

    dataset = json.loads(data.read_text(encoding="utf-8"))
    questions = [qa["question"] for sample in dataset for qa in sample["qa"]
                 if qa.get("category") in (1, 2, 3, 4)][:QUERIES]
    embedder = LocalOnnxEmbedder()
    vectors = [embedder.embed_query(q) for q in questions]
    flt = edge_filter(MemoryFilter(cube_ids=(CUBE,)))
    results: dict[str, Any] = {"size": size, "loadavg_start": os.getloadavg()[0], "by_setting": {}}
    for m, ef_construct in settings:
        work = cache / "work" / f"tune-{size}"
        edge_index.discard(work)
        edge_index.copy_shard(cache / str(size) / "data" / "vectors", work)
        params = {"dimension": embedder.dimension, "m": m, "ef_construct": ef_construct, "threads": 0,
                  "threshold_kb": 1}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", edge_index.__name__, str(work), json.dumps(params)], check=True)
        seconds = time.perf_counter() - t0
        shard = qe.EdgeShard.load(str(work))
        try:
            exact, exact_ms = _query_all(shard, vectors, flt, qe.SearchParams(exact=True))
            row: dict[str, Any] = {"build_s": seconds, "disk_mb": _disk_mb(work),
                                   "exact_p50": percentile(exact_ms, 50), "loadavg": os.getloadavg()[0]}
            for ef in EFS:
                found, ms = _query_all(shard, vectors, flt, qe.SearchParams(hnsw_ef=ef))
                row[f"ef={ef}"] = {f"recall@{RECALL_K}": sum(len(a & b) for a, b in zip(exact, found, strict=True))
                                   / (RECALL_K * len(vectors)), "p50": percentile(ms, 50), "p95": percentile(ms, 95)}
        finally:
            shard.close()
        edge_index.discard(work)
        results["by_setting"][f"m={m},ef_construct={ef_construct}"] = row
        print(json.dumps({f"m={m},ef_construct={ef_construct}": row}), flush=True)
    return results


def measure(cache: Path, sizes: list[int], data: Path, out: Path | None) -> int:
    results = []
    for size in sizes:
        if not (cache / str(size) / "done.json").exists():
            print(f"size {size} is not built yet (run build)", file=sys.stderr)
            continue
        done = subprocess.run([sys.executable, __file__, "measure-one", "--cache", str(cache), "--sizes", str(size),
                               "--data", str(data)], capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    report = {"machine": machine(), "sizes": results}
    publish(report, markdown(report), out)
    return 0


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# Scale: search, add, memory and disk at 1k / 10k / 100k memories", "",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}; "
             "shared with other work (the 1-minute load average is given with each figure).", "",
             "Store: LoCoMo-derived turns added through `add_memory` into one cube (see benchmarks/scale.py), "
             "default embedded configuration (qdrant-edge, SQLite graph, local ONNX embedder).", "",
             "| memories | search p50 / p95, graph off, no index | graph on, no index | graph off, HNSW | "
             "graph on, HNSW | default search, HNSW | index build | dense recall@10 HNSW vs exact | "
             "dense exact / HNSW p50 | single add p50 | RSS | disk |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["sizes"]:
        b, a, rec = r["before_index"], r["after_index"], r["recall"]["ef=128"]

        def cell(s: dict[str, float] | None) -> str:
            if s is None:
                return "not measured"
            cpu = f", {s['cpu_ms']:.1f} ms CPU" if "cpu_ms" in s else ""
            return f"{s['p50']:.1f} / {s['p95']:.1f} ms{cpu} (load {s['loadavg']:.1f})"
        lines.append(f"| {r['points']:,} | {cell(b['graph_off'])} | {cell(b['graph_on'])} | {cell(a['graph_off'])} | "
                     f"{cell(a['graph_on'])} | {cell(a.get('default'))} | {r['optimize_s']:.1f} s | "
                     f"{rec[f'recall@{RECALL_K}']:.3f} | "
                     f"{r['recall']['exact_ms']['p50']:.2f} / {rec['p50']:.2f} ms | "
                     f"{r['single_add_ms']['p50']:.1f} ms (load {r['single_add_ms']['loadavg']:.1f}) | "
                     f"{r['rss_mb']:.0f} MB | {r['disk_mb']:.0f} MB |")
    lines += ["", "Columns: *no index* is the store as `add_memory` left it (qdrant-edge's one appendable segment, "
              "scanned in full by every dense search: the behaviour before the index existed), measured with "
              "`vector.index_threshold` 0; *HNSW* the same store after `build_index()` (timed: *index build*). "
              "Search is `MemoryService.search` in-process, top_k 10, LoCoMo questions, graph expansion off / on, "
              "without the preference pass; *default search* is graph on with the preference pass "
              "(`include_preference`, the default of every face); CPU: the process's CPU time per search "
              "(the embedder uses both cores, so it can exceed the latency). "
              "Single add: one `add_memory(memory_content=...)` after the index was built. RSS: the measuring "
              "process at the end; disk: the data directory's allocated blocks after the build.", ""]
    for r in report["sizes"]:
        build = r["index"].get("last_build", {})
        if build:
            lines.append(f"- {r['points']:,} memories, index build {build['seconds']:.1f} s: copying the shard "
                         f"{build['copy_seconds']:.2f} s (writes wait, reads go on), the child process "
                         f"{build['child_seconds']:.1f} s (reads and writes go on), the swap "
                         f"{build['swap_seconds']:.2f} s (reads and writes wait).")
    lines += ["", "Dense recall@10 of the HNSW index against an exact search (same store, same queries), by search ef "
              "(`vector.hnsw_ef`, default 128; m 16, ef_construct 100), with the dense query's p50 / p95:", "",
              "| memories | exact p50 / p95 | " + " | ".join(f"ef {ef}" for ef in EFS) + " |",
              "|---|---|" + "---|" * len(EFS)]
    for r in report["sizes"]:
        rec = r["recall"]
        cells = [f"{rec[f'ef={ef}'][f'recall@{RECALL_K}']:.3f} ({rec[f'ef={ef}']['p50']:.2f} / "
                 f"{rec[f'ef={ef}']['p95']:.2f} ms)" for ef in EFS]
        lines.append(f"| {r['points']:,} | {rec['exact_ms']['p50']:.2f} / {rec['exact_ms']['p95']:.2f} ms | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def tuning_markdown(tuned: dict[str, Any]) -> str:
    """The ``tune`` step's comparison of HNSW settings as a Markdown table."""
    lines = [f"## HNSW settings compared on the {tuned['size']:,} store (vectors only, same queries)", "",
             "Dense recall@10 against an exact search and the query's p50 / p95, by build setting and search ef; "
             "build seconds in a child process with every core.", "",
             "| m, ef_construct | build | " + " | ".join(f"ef {ef}" for ef in EFS) + " |",
             "|---|---|" + "---|" * len(EFS)]
    for name, row in tuned["by_setting"].items():
        cells = [f"{row[f'ef={ef}'][f'recall@{RECALL_K}']:.3f} ({row[f'ef={ef}']['p50']:.2f} / "
                 f"{row[f'ef={ef}']['p95']:.2f} ms)" for ef in EFS]
        lines.append(f"| {name.replace('m=', '').replace(',ef_construct=', ', ')} | {row['build_s']:.1f} s "
                     f"(load {row['loadavg']:.1f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(out: Path) -> int:
    """Write ``out``/results.md again from results.json, any tune-<size>.json and notes.md beside it."""
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    text = markdown(report)
    for tuned in sorted(out.glob("tune-*.json")):
        text += "\n\n" + tuning_markdown(json.loads(tuned.read_text(encoding="utf-8")))
    if (out / "notes.md").exists():  # observations written by hand beside the figures
        text += "\n\n" + (out / "notes.md").read_text(encoding="utf-8").strip()
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("build", "measure", "measure-one", "tune", "render"))
    parser.add_argument("--cache", type=Path, default=Path("/work/benchdata/scale"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.md and results.json")
    parser.add_argument("--deadline", type=float, default=3600.0, help="build: stop after this many seconds")
    parser.add_argument("--hnsw", default="8:64,16:100,32:200", help="tune: m:ef_construct settings to compare")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.step == "build":
        return build(args.cache, sizes, args.data, args.deadline)
    if args.step == "render":
        return render(args.out or Path(__file__).parent / "scale")
    if args.step == "tune":
        settings = [(int(m), int(e)) for m, e in (pair.split(":") for pair in args.hnsw.split(","))]
        report = tune(args.cache, sizes[0], args.data, settings)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"tune-{sizes[0]}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return 0
    if args.step == "measure-one":
        print(json.dumps(measure_one(args.cache, sizes[0], args.data)))
        return 0
    return measure(args.cache, sizes, args.data, args.out)


if __name__ == "__main__":
    sys.exit(main())
