"""LLM add-pipeline benchmark: prints figures and writes benchmarks/llm/results.{md,json}.

    .venv/bin/python benchmarks/llm_pipeline.py [--batches 24] [--data ../shared/data/locomo/locomo10_dev.json]

Against a real local inference server (llama-cpp-python with Gemma 3 270M, installed by
``scripts/setup.sh test``) it measures, on embedded defaults:
- add acknowledgement latency p50/p95 of ``add_memory`` with ``async_mode`` while the model is busy:
  ``--probes`` adds, 20 ms apart, after the measured batches are done (the model starts on the first
  probe at once, so every later one is acknowledged while it works); the probes are left queued;
- language-model calls and prompt tokens per added batch (one batch = one add of a LoCoMo session's
  next two turns);
- end-to-end extraction throughput: batches and messages per second from the first add until every
  task is done or failed, and how the tasks ended. The endpoint constrains the answer to the extraction
  schema (``llm.json_mode: json_object_schema``); an answer still unusable (cut at the token limit) is
  asked for once more, then the rule extractor takes over: such batches count two calls.
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memos_mcp.bench.locomo import machine, percentile, publish, turn_text, turns_of  # noqa: E402
from memos_mcp.config import AddSettings, LLMSettings, Settings  # noqa: E402
from memos_mcp.core.models import TaskStatus  # noqa: E402
from memos_mcp.core.service import MemoryService  # noqa: E402
from tests.llama_server import LlamaServer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo10_dev.json"


def batches_from(data: Path, count: int) -> list[list[dict[str, Any]]]:
    """Consecutive pairs of turns of the LoCoMo conversations, in order."""
    pairs: list[list[dict[str, Any]]] = []
    for sample in json.loads(data.read_text()):
        for _, turns in turns_of(sample):
            for start in range(0, len(turns) - 1, 2):
                pairs.append([{"role": "user", "name": t["speaker"], "content": turn_text(t),
                               "message_id": t["dia_id"]} for t in turns[start:start + 2]])
                if len(pairs) == count:
                    return pairs
    return pairs


def run(batches: int, probes: int, data: Path, max_tokens: int, deadline_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="memos-llm-bench-"))
    server = LlamaServer(work / "llama.log")
    try:
        settings = Settings(data_dir=work / "data", llm=LLMSettings(
            base_url=server.url, model=server.model, timeout=120, max_retries=1, extraction_max_tokens=max_tokens,
            json_mode="json_object_schema", fold_system=True),
            add=AddSettings(concurrency=1))
        service = MemoryService.open(settings)
        try:
            pairs = batches_from(data, batches + probes)
            report = _measure(service, pairs[:batches], deadline_s)
            report["ack_ms"] = _acks(service, pairs[batches:])
            return report
        finally:
            service.close()
    finally:
        server.stop()


def _measure(service: MemoryService, batches: list[list[dict[str, Any]]], deadline_s: float) -> dict[str, Any]:
    service.ensure_user("bench")
    service.ready()
    assert service.llm is not None
    tasks: list[str] = []
    started = time.perf_counter()
    for batch in batches:  # the first add starts the model; the rest arrive while it is busy
        tasks.append(str(service.add_memory("bench", messages=batch, conversation_id="locomo-0").task_id))
    end = time.monotonic() + deadline_s
    statuses: dict[str, int] = {}
    while time.monotonic() < end:
        states = [service.get_task("bench", t) for t in tasks]
        if all(s.status in (TaskStatus.DONE, TaskStatus.FAILED) for s in states):
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    states = [service.get_task("bench", t) for t in tasks]
    for state in states:
        key = f"{state.status.value}/{state.extractor}"
        statuses[key] = statuses.get(key, 0) + 1
    finished = sum(s.status in (TaskStatus.DONE, TaskStatus.FAILED) for s in states)
    usage = service.llm.usage
    messages = sum(len(b) for b in batches[:finished])
    return {
        "batches": len(batches), "messages_per_batch": 2, "finished": finished, "task_outcomes": statuses,
        "llm_calls": usage.calls, "llm_failures": usage.failures,
        "calls_per_batch": round(usage.calls / max(finished, 1), 2),
        "first_try_batches": sum(1 for s in states if s.extractor == "llm"),
        "prompt_tokens_per_call": round(usage.prompt_tokens / max(usage.calls, 1), 1),
        "completion_tokens_per_call": round(usage.completion_tokens / max(usage.calls, 1), 1),
        "elapsed_s": round(elapsed, 1),
        "throughput": {"batches_per_s": round(finished / elapsed, 3), "messages_per_s": round(messages / elapsed, 3)},
        "memories": service.list_memories("bench", size=1).total,
        "machine": machine(),
    }


def _acks(service: MemoryService, probes: list[list[dict[str, Any]]]) -> dict[str, float]:
    """Acknowledgement latency of adds arriving while the model extracts the ones before them."""
    acks: list[float] = []
    for batch in probes:
        t0 = time.perf_counter()
        service.add_memory("bench", messages=batch, conversation_id="locomo-probes")
        acks.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    return {"adds": len(acks), "p50": round(percentile(acks, 50), 2), "p95": round(percentile(acks, 95), 2),
            "max": round(max(acks), 2)}


def markdown(r: dict[str, Any]) -> str:
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(r["task_outcomes"].items()))
    return "\n".join([
        "# LLM add pipeline (llama-cpp-python server, Gemma 3 270M Q4_K_M, 2 threads)", "",
        f"{r['batches']} adds of {r['messages_per_batch']} LoCoMo turns each, queued at once and extracted one at "
        "a time (add.concurrency 1: the model has the 2 cores), the endpoint constraining answers to the "
        "extraction schema; then adds timed while the model works on the ones before them.", "",
        "| figure | value |", "|---|---|",
        f"| add acknowledgement p50 / p95 / max, model busy ({r['ack_ms']['adds']} adds) | {r['ack_ms']['p50']} / "
        f"{r['ack_ms']['p95']} / {r['ack_ms']['max']} ms |",
        f"| LLM calls per batch | {r['calls_per_batch']} ({r['llm_calls']} calls for {r['finished']} batches; "
        f"{r['first_try_batches']} batches used the model's answer) |",
        f"| prompt tokens per call | {r['prompt_tokens_per_call']} |",
        f"| completion tokens per call | {r['completion_tokens_per_call']} |",
        f"| end-to-end throughput | {r['throughput']['batches_per_s']} batches/s, "
        f"{r['throughput']['messages_per_s']} messages/s ({r['elapsed_s']} s) |",
        f"| task outcomes (status/extractor) | {outcomes} |",
        f"| memories stored | {r['memories']} |", "",
        f"Machine: {r['machine']}.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--probes", type=int, default=200, help="adds timed for the acknowledgement latency")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-tokens", type=int, default=1024, help="extraction answer limit")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds to wait for the tasks")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "llm")
    args = parser.parse_args()
    report = run(args.batches, args.probes, args.data, args.max_tokens, args.deadline)
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
