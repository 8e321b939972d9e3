"""LoCoMo evidence-retrieval benchmark: ``memos-mcp bench locomo --data FILE``.

Each turn is added as one memory (through the normal ``add_memory`` path, one call per session)
carrying its ``dia_id`` as the source message id; each sample gets its own cube and a question
searches only that cube. A hit's sources give the dia_ids it stands for. Categories (original
evaluation code): 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial (skipped).
A plain BM25 over the same turns (bm25s, no stemming) runs in the same process as the baseline.
With graph memory on, every question is also asked with and without graph expansion (same store,
same run): recall per category and the search latency of each, so the expansion's gain and cost
are measured side by side. ``--audit FILE`` scores against an audit's corrected evidence instead of
the evidence the answer key cites, for the questions the audit corrects.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from memos_mcp.config import Settings
from memos_mcp.core.models import Memory
from memos_mcp.core.service import ROOT_USER, MemoryService

MODES = ("conversations", "facts")  # one add per session with its messages; one memory_content add per turn
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10, 20)
THRESHOLD = 0.45  # MemOS clients' default least relativity
_DIA = re.compile(r"D:?(\d+):0*(\d+)")
_TOKEN = re.compile(r"\w+")


def evidence_ids(raw: Iterable[str], known: set[str]) -> list[str]:
    """Normalised evidence ids; malformed strings ("D8:6; D9:17", "D:11:26", "D30:05") are repaired,
    ids that do not exist in the conversation are dropped."""
    found = [f"D{a}:{b}" for item in raw for a, b in _DIA.findall(str(item))]
    return [e for e in dict.fromkeys(found) if e in known]


def turns_of(sample: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    conversation = sample["conversation"]
    sessions = sorted((int(k.split("_")[1]), k) for k, v in conversation.items()
                      if re.fullmatch(r"session_\d+", k) and isinstance(v, list))
    return [(conversation.get(f"{key}_date_time", ""), conversation[key]) for _, key in sessions]


def turn_text(turn: dict[str, Any]) -> str:
    caption = turn.get("blip_caption")
    return f"{turn['text']} [shares a photo: {caption}]" if caption else str(turn["text"])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]  # nearest rank


class Relevance:
    """How the hits' calibrated ``relativity`` sorts the returned top 20 at ``THRESHOLD``: the share of
    evidence hits and of other hits it keeps, and hit@10 of the list a thresholded search returns."""

    def __init__(self) -> None:
        self.evidence = [0, 0]  # kept, seen
        self.other = [0, 0]
        self.questions = [0, 0, 0, 0]  # hit@10 without, hit@10 with the threshold, nothing kept, questions

    def add(self, evidence: list[str], hits: list[tuple[list[str], float]]) -> None:
        kept = []
        for ids, relativity in hits:
            side = self.evidence if set(ids) & set(evidence) else self.other
            side[0] += relativity >= THRESHOLD
            side[1] += 1
            if relativity >= THRESHOLD:
                kept.append(ids)
        self.questions[0] += any(set(ids) & set(evidence) for ids, _ in hits[:10])
        self.questions[1] += any(set(ids) & set(evidence) for ids in kept[:10])
        self.questions[2] += not kept
        self.questions[3] += 1

    def summary(self) -> dict[str, float]:
        n = self.questions[3] or 1
        return {"threshold": THRESHOLD, "evidence_kept": self.evidence[0] / (self.evidence[1] or 1),
                "other_kept": self.other[0] / (self.other[1] or 1), "hit@10": self.questions[0] / n,
                "hit@10_thresholded": self.questions[1] / n, "nothing_kept": self.questions[2] / n,
                "evidence_hits": float(self.evidence[1]), "other_hits": float(self.other[1])}


class Scores:
    def __init__(self) -> None:
        self.rows: list[tuple[int, list[float], float, float]] = []  # category, recall@k, hit@10, rr

    def add(self, category: int, evidence: list[str], ranked: list[str]) -> None:
        recalls = [len(set(evidence) & set(ranked[:k])) / len(evidence) for k in KS]
        rank = next((i for i, d in enumerate(ranked[:max(KS)], start=1) if d in evidence), 0)
        self.rows.append((category, recalls, float(any(d in evidence for d in ranked[:10])),
                          1 / rank if rank else 0.0))

    def summary(self, categories: Iterable[int]) -> dict[str, float]:
        chosen = [r for r in self.rows if r[0] in set(categories)]
        n = len(chosen) or 1
        result = {f"recall@{k}": sum(r[1][i] for r in chosen) / n for i, k in enumerate(KS)}
        result.update({"hit@10": sum(r[2] for r in chosen) / n, "mrr": sum(r[3] for r in chosen) / n,
                       "questions": float(len(chosen))})
        return result


def corrected_evidence(audit: Path) -> dict[tuple[int, int], list[str]]:
    """An audit of the answer key (records with ``question_id`` = ``locomo_<sample>_qa<question>``, both
    0-based, and ``correct_evidence``): the evidence each corrected question should cite."""
    found: dict[tuple[int, int], list[str]] = {}
    for record in json.loads(audit.read_text(encoding="utf-8")):
        ident = re.fullmatch(r"locomo_(\d+)_qa(\d+)", str(record.get("question_id", "")))
        if ident and isinstance(record.get("correct_evidence"), list):
            found[int(ident.group(1)), int(ident.group(2))] = [str(e) for e in record["correct_evidence"]]
    return found


def run_locomo(settings: Settings, data: Path, out: Path | None, samples: int | None = None,
               audit: Path | None = None, modes: Sequence[str] = ("conversations",)) -> int:
    """Run the benchmark in each of ``modes`` (``MODES``), each over a store of its own; the first
    mode's figures are the report's, the others' under ``modes``. Returns the exit code (0)."""
    dataset = json.loads(data.read_text(encoding="utf-8"))[:samples]
    corrections = corrected_evidence(audit) if audit else {}
    reports: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(modes):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        with tempfile.TemporaryDirectory(prefix="memos-bench-") as tmp:
            bench_settings = settings.model_copy(update={"data_dir": Path(tmp)})
            service = MemoryService.open(bench_settings)
            try:
                reports[mode] = {"mode": mode, **_measure(service, dataset, corrections, mode)}
            finally:
                service.close()
    first, *others = reports
    report = reports[first]
    if others:
        report["modes"] = {mode: {k: v for k, v in reports[mode].items() if k != "corrected"} for mode in others}
    report["load_average"] = list(os.getloadavg())
    report["machine"] = machine()
    report["data"] = {"file": data.name, "samples": len(dataset)}
    corrected = report.pop("corrected")
    if audit:
        report["data"]["audit"] = {"file": audit.name, "corrected": corrected}
    report["config"] = settings.search.model_dump()
    report["graph_config"] = settings.graph.model_dump(include={"enabled", "backend", "search", "depth", "weight",
                                                                "dense_weight", "decay", "entity_links"})
    publish(report, markdown(report), out)
    return 0


def publish(report: dict[str, Any], text: str, out: Path | None) -> None:
    """Print a benchmark's Markdown and, given a folder, write it there with the JSON beside it."""
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "results.md").write_text(text + "\n", encoding="utf-8")


def _ingest(service: MemoryService, cube_id: str, sample: dict[str, Any], mode: str) -> dict[str, list[str]]:
    """Add a sample's turns to its cube as ``mode`` says; for ``facts``, the dia_ids each memory stands
    for (a turn said twice in a session is one memory), else nothing (the sources name them)."""
    stands_for: dict[str, list[str]] = {}
    for number, (when, turns) in enumerate(turns_of(sample), start=1):
        if mode == "conversations":
            messages = [{"role": "user", "content": turn_text(t), "name": t["speaker"], "message_id": t["dia_id"],
                         "chat_time": when or None} for t in turns]
            service.add_memory(ROOT_USER, cube_id=cube_id, messages=messages,
                               conversation_id=f"session-{number}", async_mode=False)
            continue
        for turn in turns:
            result = service.add_memory(ROOT_USER, cube_id=cube_id, memory_content=f"{turn['speaker']}: "
                                        f"{turn_text(turn)}", conversation_id=f"session-{number}",
                                        chat_time=when or None)
            for memory_id in [*result.added, *result.deduplicated]:
                stands_for.setdefault(memory_id, []).append(turn["dia_id"])
    return stands_for


def _measure(service: MemoryService, dataset: list[dict[str, Any]],
             corrections: dict[tuple[int, int], list[str]], mode: str = "conversations") -> dict[str, Any]:
    service.ready()
    ours, baseline, relevance = Scores(), Scores(), Relevance()
    latencies: list[float] = []
    graph_on = service.graph() is not None
    by_graph: dict[bool, Scores] = {False: Scores(), True: Scores()}
    graph_ms: dict[bool, list[float]] = {False: [], True: []}
    turns_total, ingest_seconds, corrected = 0, 0.0, 0
    for index, sample in enumerate(dataset):
        cube = service.create_cube(ROOT_USER, sample["sample_id"], cube_id=f"locomo-{sample['sample_id']}")
        started = time.perf_counter()
        stands_for = _ingest(service, cube.cube_id, sample, mode)
        ingest_seconds += time.perf_counter() - started
        corpus = [(t["dia_id"], f"{t['speaker']}: {turn_text(t)}") for _, turns in turns_of(sample) for t in turns]
        turns_total += len(corpus)
        rank_bm25 = _bm25(corpus)
        known = {d for d, _ in corpus}
        for number, qa in enumerate(sample["qa"]):
            category = int(qa.get("category", 0))
            cited = corrections.get((index, number), qa.get("evidence", []))
            corrected += cited != qa.get("evidence", [])
            evidence = evidence_ids(cited, known)
            if category not in CATEGORIES or not evidence:
                continue
            for expand in (False, True) if graph_on else (None,):
                started = time.perf_counter()
                result = service.search(ROOT_USER, qa["question"], cube_ids=[cube.cube_id], top_k=max(KS),
                                        include_preference=False, graph=expand)
                elapsed = (time.perf_counter() - started) * 1000
                ranked = list(dict.fromkeys(d for h in result.memories for d in _dia_ids(h, stands_for)))
                if expand is not None:
                    by_graph[expand].add(category, evidence, ranked)
                    graph_ms[expand].append(elapsed)
                if expand is None or expand == service.settings.graph.search:
                    latencies.append(elapsed)
                    ours.add(category, evidence, ranked)
                    relevance.add(evidence, [(_dia_ids(h, stands_for), h.relativity) for h in result.memories])
            baseline.add(category, evidence, rank_bm25(qa["question"]))
    every = tuple(CATEGORIES)
    return {
        "overall": ours.summary(every),
        "per_category": {CATEGORIES[c]: ours.summary([c]) for c in CATEGORIES},
        "bm25_baseline": {"overall": baseline.summary(every),
                          "per_category": {CATEGORIES[c]: baseline.summary([c]) for c in CATEGORIES}},
        "ingest": {"turns": turns_total, "seconds": ingest_seconds,
                   "turns_per_second": turns_total / ingest_seconds if ingest_seconds else 0.0},
        "search_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                      "p99": percentile(latencies, 99), "queries": len(latencies)},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "relativity": relevance.summary(),
        **({"graph": _graph_report(by_graph, graph_ms)} if graph_on else {}),
        "corrected": corrected,
    }


def _dia_ids(hit: Memory, stands_for: dict[str, list[str]]) -> list[str]:
    """The turns a hit stands for: the facts mode's record, else its sources' message ids."""
    return stands_for.get(hit.id) or [s.message_id for s in hit.sources if s.message_id]


def _graph_report(scores: dict[bool, Scores], ms: dict[bool, list[float]]) -> dict[str, Any]:
    """The same questions with and without graph expansion: recall and latency, and the differences."""
    every = tuple(CATEGORIES)
    sides: dict[str, dict[str, Any]] = {name: {"overall": scores[on].summary(every),
                    "per_category": {CATEGORIES[c]: scores[on].summary([c]) for c in CATEGORIES},
                    "search_ms": {"p50": percentile(ms[on], 50), "p95": percentile(ms[on], 95)}}
             for name, on in (("without", False), ("with", True))}
    return {**sides, "gain": {
        "multi_hop_recall@10": sides["with"]["per_category"]["multi-hop"]["recall@10"]
        - sides["without"]["per_category"]["multi-hop"]["recall@10"],
        "overall_recall@10": sides["with"]["overall"]["recall@10"] - sides["without"]["overall"]["recall@10"],
        "p50_ms": sides["with"]["search_ms"]["p50"] - sides["without"]["search_ms"]["p50"],
        "p95_ms": sides["with"]["search_ms"]["p95"] - sides["without"]["search_ms"]["p95"]}}


def _bm25(corpus: list[tuple[str, str]]) -> Any:
    import bm25s

    ids = [d for d, _ in corpus]
    retriever = bm25s.BM25()
    retriever.index([_TOKEN.findall(text.lower()) for _, text in corpus], show_progress=False)

    def rank(query: str) -> list[str]:
        tokens = [t for t in _TOKEN.findall(query.lower()) if t in retriever.vocab_dict]
        if not tokens:
            return []
        docs, _ = retriever.retrieve([tokens], k=min(max(KS), len(ids)), show_progress=False)
        return [ids[i] for i in docs[0]]
    return rank


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": sys.version.split()[0],
            "platform": platform.platform()}


def _audit_line(audit: dict[str, Any] | None) -> str:
    return "" if not audit else f" Evidence as corrected by {audit['file']} ({audit['corrected']} questions)."


def markdown(report: dict[str, Any]) -> str:
    def row(name: str, s: dict[str, float]) -> str:
        cells = " | ".join(f"{s[f'recall@{k}']:.3f}" for k in KS)
        return f"| {name} | {int(s['questions'])} | {cells} | {s['hit@10']:.3f} | {s['mrr']:.3f} |"

    head = ("| set | questions | R@1 | R@5 | R@10 | R@20 | hit@10 | MRR |\n"
            "|---|---|---|---|---|---|---|---|")
    ours, base = report["overall"], report["bm25_baseline"]["overall"]
    m, ingest, lat = report.get("machine", {}), report["ingest"], report["search_ms"]
    graph = report.get("graph_config", {})
    expansion = "with graph expansion" if graph.get("enabled") and graph.get("search") else "without graph expansion"
    lines = [
        "# LoCoMo evidence retrieval", "",
        f"Data: {report.get('data', {}).get('file', '?')}, {report.get('data', {}).get('samples', '?')} samples, "
        "categories 1-4 (category 5 skipped)." + _audit_line(report.get("data", {}).get("audit")),
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}.", "",
        f"## memos-mcp (hybrid search {expansion}, default local embedder, no LLM)"
        + (f": {report.get('mode')} path" if report.get("modes") or report.get("mode", "conversations")
           != "conversations" else ""), head,
        row("categories 1-4", ours),
        *(row(name, s) for name, s in report["per_category"].items()), "",
        "## plain BM25 baseline (same turns, same run)", head, row("categories 1-4", base),
        *(row(name, s) for name, s in report["bm25_baseline"]["per_category"].items()), "",
        f"Ratio memos-mcp / BM25 at recall@10: {ours['recall@10'] / base['recall@10']:.2f}" if base["recall@10"]
        else "Ratio: BM25 found nothing", "",
        f"Ingest: {ingest['turns']} turns in {ingest['seconds']:.1f} s = {ingest['turns_per_second']:.0f} turns/s",
        f"Search (in-process): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms "
        f"over {lat['queries']} queries",
        f"Peak RSS: {report['peak_rss_mb']:.0f} MB",
    ]
    if "relativity" in report:
        rel = report["relativity"]
        lines += [
            "", f"## relativity at MemOS's default threshold {rel['threshold']} (the top 20 hits of each question)",
            f"Evidence hits kept: {rel['evidence_kept']:.3f} of {int(rel['evidence_hits'])}; other hits kept: "
            f"{rel['other_kept']:.3f} of {int(rel['other_hits'])}.",
            f"hit@10 {rel['hit@10']:.3f} without the threshold, {rel['hit@10_thresholded']:.3f} with it; "
            f"questions left with no hit: {rel['nothing_kept']:.3f}. The ranking is the same either way "
            "(relativity is a calibrated relevance apart from the ranking score; see "
            "benchmarks/relevance/results.md).",
        ]
    if "graph" in report:
        graph, gain = report["graph"], report["graph"]["gain"]
        lines += [
            "", "## graph expansion (the same questions with and without it, same store, same run)", head,
            *(row(f"{name} {side}", graph[side]["per_category"][name] if name != "categories 1-4"
                  else graph[side]["overall"])
              for name in ("categories 1-4", "multi-hop") for side in ("without", "with")), "",
            f"Multi-hop recall@10: {gain['multi_hop_recall@10']:+.3f}; categories 1-4 recall@10: "
            f"{gain['overall_recall@10']:+.3f}",
            f"Search latency without / with: p50 {graph['without']['search_ms']['p50']:.1f} / "
            f"{graph['with']['search_ms']['p50']:.1f} ms, p95 {graph['without']['search_ms']['p95']:.1f} / "
            f"{graph['with']['search_ms']['p95']:.1f} ms (p95 cost {gain['p95_ms']:+.1f} ms)",
            f"Graph settings: {report.get('graph_config', {})}",
        ]
    for mode, other in report.get("modes", {}).items():
        lines += ["", *_mode_section(mode, other, row, head)]
    if "load_average" in report:
        lines += ["", "Load average at the end of the run (1, 5, 15 min): "
                  + ", ".join(f"{v:.1f}" for v in report["load_average"])]
    return "\n".join(lines)


MODE_TITLES = {
    "conversations": "one add per session: its turns as messages, speaker as name, the session date as chat_time",
    "facts": 'one add per turn: memory_content="Speaker: text", the session as conversation_id, its date as '
             "chat_time",
}


def _mode_section(mode: str, report: dict[str, Any], row: Any, head: str) -> list[str]:
    """The Markdown of a further mode's figures: recall, ingest, latency and the graph's part."""
    ingest, lat = report["ingest"], report["search_ms"]
    lines = [f"## {mode} path (`--as {mode}`: {MODE_TITLES[mode]}; same settings, a store of its own)", head,
             row("categories 1-4", report["overall"]),
             *(row(name, s) for name, s in report["per_category"].items()), "",
             f"Ingest: {ingest['turns']} turns in {ingest['seconds']:.1f} s = {ingest['turns_per_second']:.0f} "
             f"turns/s",
             f"Search (in-process): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms "
             f"over {lat['queries']} queries"]
    if "graph" in report:
        graph, gain = report["graph"], report["graph"]["gain"]
        lines += ["", f"Graph expansion, {mode} path:", head,
                  *(row(f"{name} {side}", graph[side]["per_category"][name] if name != "categories 1-4"
                        else graph[side]["overall"])
                    for name in ("categories 1-4", "multi-hop") for side in ("without", "with")), "",
                  f"Multi-hop recall@10: {gain['multi_hop_recall@10']:+.3f}; categories 1-4 recall@10: "
                  f"{gain['overall_recall@10']:+.3f}"]
    return lines
