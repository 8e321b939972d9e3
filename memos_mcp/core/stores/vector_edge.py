"""Qdrant Edge backend: Qdrant's engine embedded in-process, one shard directory, no server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from memos_mcp.core.stores import edge_index
from memos_mcp.core.stores.edge_index import Gate
from memos_mcp.core.stores.qdrant_records import scored_point, stored_point, whole_point
from memos_mcp.core.stores.vector import (
    DENSE,
    ORDER_FIELD,
    PAYLOAD_INDEXES,
    SPARSE,
    HybridQuery,
    IndexConfig,
    MemoryFilter,
    ScoredPoint,
    StoredPoint,
    VectorPoint,
    VectorStore,
)
from memos_mcp.errors import ConfigError, MemosError, StorageError, StoreLocked

# Written by qdrant-edge when a shard is created; it has no API that reports a shard's vector sizes.
_CONFIG_FILE = "edge_config.json"
_KEY_PAGE = 1000  # (created_at, id) pairs per scroll when reading a group of points in full
_STOP_WAIT = 30.0  # seconds ``close`` waits for a build's thread once its child is stopped
# Seconds a background build waits before copying the shard: a one-shot command (stats, export) that
# opens an unindexed store and closes it at once does not pay for a copy it would throw away.
_START_DELAY = 1.0
log = logging.getLogger(__name__)


class EdgeVectorStore(VectorStore):
    name = "qdrant-edge"

    def __init__(self, path: Path, read_only: bool = False, index: IndexConfig | None = None) -> None:
        """``index``: the HNSW settings (defaults of ``IndexConfig``); a read-only store builds nothing."""
        self.path = path
        self.read_only = read_only
        self.index = index or IndexConfig()
        self._shard: qe.EdgeShard | None = None
        self._copy: Path | None = None  # the private working copy a read-only store opens
        self._dimension = 0
        self._gate = Gate()  # every shard call holds it shared; the swap of a built index, exclusive
        self._writing = threading.Lock()  # one update at a time (and none while a build copies or swaps)
        self._recorded: list[qe.UpdateOperation] | None = None  # the writes made while a build runs
        self._pending = 0  # points outside the index (an estimate: added since it was built)
        self._builder: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self.last_build: dict[str, Any] = {}

    def collection_exists(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def open(self, dimension: int) -> None:
        """Load the shard, or create it; then create every payload index it lacks. A shard whose
        creation was cut short (segments but no config file) is loaded with the config and finished.
        Read-only: qdrant-edge cannot load a shard from a read-only file system, so a private copy in
        a temporary directory is loaded (and removed at ``close``)."""
        if not self.read_only:
            with _driver("recover an index build cut short"):
                edge_index.recover(self.path)
        source = self._working_copy() if self.read_only else self.path
        try:
            shard, configured, fresh = self._load(source, dimension)
            try:
                with _driver("create the payload indexes"):
                    made = _ensure_indexes(shard)
            except MemosError:
                shard.close()
                raise
        except BaseException:
            self._drop_copy()
            raise
        self._shard = shard
        self._dimension = dimension
        self._stop.clear()
        # A fresh shard gets everything; a loaded one that lacked something was repaired.
        self.repaired = () if fresh else (*([] if configured else ["shard config"]), *made)
        with _driver("read shard info"):
            self._pending = max(0, shard.info().points_count - edge_index.indexed_points(source))
        self._maybe_build()

    def _load(self, source: Path, dimension: int) -> tuple[qe.EdgeShard, bool, bool]:
        """The shard at ``source``; whether it had its config file, whether it was created now."""
        configured = (source / _CONFIG_FILE).exists()
        if configured:
            _check_dimension(source, dimension)
        fresh = not configured and not _has_segments(source)
        try:
            if configured:
                return qe.EdgeShard.load(str(source)), configured, fresh
            if not fresh:  # segments but no config: a creation cut short; the config finishes it
                return qe.EdgeShard.load(str(source), _edge_config(dimension)), configured, fresh
            return qe.EdgeShard.create(str(source), _edge_config(dimension)), configured, fresh
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreLocked(
                    f"vector store at {self.path} is in use by another process", path=str(self.path)
                ) from exc
            raise StorageError(f"cannot open the vector store at {self.path}: {exc}") from exc

    def _working_copy(self) -> Path:
        source = edge_index.committed(self.path)
        if not (source / _CONFIG_FILE).exists() and not _has_segments(source):
            raise StorageError(f"the vector store at {self.path} does not exist and the data directory is "
                               "read-only", path=str(self.path))
        copy = Path(tempfile.mkdtemp(prefix="memos-vectors-"))
        self._copy = copy
        try:
            edge_index.copy_shard(source, copy / "shard")
        except OSError as exc:
            self._drop_copy()
            raise StorageError(f"cannot copy the read-only vector store at {self.path}: {exc}",
                               path=str(self.path)) from exc
        return copy / "shard"

    def _drop_copy(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def check(self) -> str:
        with self._use("read shard info") as shard:
            info = shard.info()
        missing = [f for f, kind in PAYLOAD_INDEXES.items()
                   if f not in info.payload_schema or info.payload_schema[f].data_type != _KINDS[kind]]
        if missing:
            raise StorageError(f"vector store at {self.path} lacks the payload index(es) {', '.join(missing)}",
                               missing=missing)
        self._probe()
        return f"{info.points_count} points, {len(PAYLOAD_INDEXES)} payload indexes, ordered scroll answers"

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        self._writable("upsert points")
        edge_points = [
            qe.Point(
                p.id,
                {DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                p.payload,
            )
            for p in points
        ]
        self._apply(qe.UpdateOperation.upsert_points(edge_points), "upsert points")
        self._pending += len(edge_points)
        self._maybe_build()

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self._writable("set a payload")
        self._apply(qe.UpdateOperation.set_payload([point_id], payload), "set a payload")

    def delete(self, ids: Sequence[str]) -> None:
        self._writable("delete points")
        self._apply(qe.UpdateOperation.delete_points(list(ids)), "delete points")

    def delete_where(self, flt: MemoryFilter) -> None:
        self._writable("delete points")
        self._apply(qe.UpdateOperation.delete_points_by_filter(edge_filter(flt)), "delete points by filter")

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        with self._use("retrieve points") as shard:
            records = shard.retrieve(list(ids), with_payload=True, with_vector=_vectors(with_vectors))
        found = {str(r.id): stored_point(r, with_vectors) for r in records}
        return [found[i] for i in ids if i in found]

    def whole_points(self, ids: Sequence[str]) -> list[VectorPoint]:
        with self._use("retrieve whole points") as shard:
            records = shard.retrieve(list(ids), with_payload=True, with_vector=[DENSE, SPARSE])
        found = {str(r.id): whole_point(r) for r in records}
        return [found[i] for i in ids if i in found]

    def _order_values(self, flt: MemoryFilter, limit: int, offset: int) -> list[float]:
        # A query (not ScrollRequest) because only QueryRequest takes a numeric offset with order_by.
        request = qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=qe.OrderBy(ORDER_FIELD, qe.Direction.Desc),
            filter=edge_filter(flt),
            with_payload=qe.PayloadSelector.Include([ORDER_FIELD]),
            with_vector=False,
        )
        with self._use("scroll points") as shard:
            hits = shard.query(request)
        return [float((h.payload or {})[ORDER_FIELD]) for h in hits]

    def _order_keys(self, flt: MemoryFilter) -> list[tuple[float, str]]:
        keys: list[tuple[float, str]] = []
        offset: Any = None
        with self._use("scroll points") as shard:
            while True:
                records, offset = shard.scroll(qe.ScrollRequest(
                    offset=offset, limit=_KEY_PAGE, filter=edge_filter(flt),
                    with_payload=qe.PayloadSelector.Include([ORDER_FIELD]), with_vector=False))
                keys += [(float((r.payload or {})[ORDER_FIELD]), str(r.id)) for r in records]
                if offset is None:
                    return keys

    def count(self, flt: MemoryFilter) -> int:
        with self._use("count points") as shard:
            return shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt)))

    def exists(self, flt: MemoryFilter) -> bool:
        with self._use("look for a point") as shard:
            records, _ = shard.scroll(qe.ScrollRequest(limit=1, filter=edge_filter(flt), with_payload=False,
                                                       with_vector=False))
        return bool(records)

    def hybrid_search(self, query: HybridQuery) -> list[ScoredPoint]:
        flt = edge_filter(query.filter)
        request = qe.QueryRequest(
            limit=query.limit,
            prefetches=[
                qe.Prefetch(
                    limit=query.candidates, query=qe.Query.Nearest(query.dense, using=DENSE), filter=flt,
                    params=self._search_params(),
                ),
                qe.Prefetch(
                    limit=query.candidates,
                    query=qe.Query.Nearest(
                        qe.SparseVector(query.sparse.indices, query.sparse.values), using=SPARSE
                    ),
                    filter=flt,
                ),
            ],
            # No filter here: the formula scores the prefetched points alone, which passed it already
            # (a second pass of the same filter cost a third of a query restricted to linked ids).
            query=qe.Formula(_formula(query), defaults={"$score[0]": 0.0, "$score[1]": 0.0}),
            with_payload=True if query.fields is None else qe.PayloadSelector.Include(list(query.fields)),
            with_vector=_vectors(query.with_dense),
        )
        with self._use("run a hybrid search") as shard:
            hits = shard.query(request)
        return [scored_point(h, h.score, query.with_dense) for h in hits]

    def dense_search(self, vector: list[float], flt: MemoryFilter, limit: int) -> list[ScoredPoint]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=DENSE),
            filter=edge_filter(flt),
            with_payload=True,
            with_vector=False,
            params=self._search_params(),
        )
        with self._use("run a dense search") as shard:
            hits = shard.query(request)
        return [ScoredPoint(str(h.id), h.score, h.payload or {}) for h in hits]

    def stats(self) -> dict[str, Any]:
        """Counts and paths; ``index``: the HNSW state (``indexed_vectors``: the engine's count of
        indexed dense and sparse vectors; ``pending``: points added since the index was built;
        ``building``: whether a build runs; ``last_build``: the last build's seconds and points)."""
        with self._use("read shard info") as shard:
            info = shard.info()
        return {
            "backend": self.name,
            "points": info.points_count,
            "segments": info.segments_count,
            "indexed_fields": sorted(info.payload_schema),
            "index": {"indexed_vectors": info.indexed_vectors_count, "pending": self._pending,
                      "threshold": self.index.threshold, "building": self._child is not None,
                      **({"last_build": self.last_build} if self.last_build else {})},
            "path": str(self.path),
            **({"read_only": True} if self.read_only else {}),
        }

    def flush(self) -> None:
        with self._use("flush") as shard:
            shard.flush()

    def close(self) -> None:
        """Stop a running index build (its child process is ended, its copy removed: the next open
        starts it again), then flush and close the shard."""
        self._stop.set()
        child, builder = self._child, self._builder
        if child is not None and child.poll() is None:
            child.kill()
        if builder is not None and builder is not threading.current_thread():
            builder.join(_STOP_WAIT)
        if self._shard is None:
            return
        with self._writing, self._gate.exclusive():
            shard, self._shard = self._shard, None
            with _driver("close"):
                try:
                    shard.flush()
                finally:
                    shard.close()
                    self._drop_copy()

    def build_index(self, timeout: float = 3600.0) -> bool:
        """Build the HNSW index over every point now, in the calling thread (after any build already
        running ends); True if one was built. ``timeout``: seconds the build's child may take."""
        builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join(timeout)
        if self.read_only or self._pending <= 0:
            return False
        return self._build(timeout)

    def _search_params(self) -> qe.SearchParams:
        return qe.SearchParams(hnsw_ef=self.index.ef)

    @contextmanager
    def _use(self, action: str) -> Iterator[qe.EdgeShard]:
        with self._gate.shared(), _driver(action):
            yield self.shard

    def _apply(self, operation: qe.UpdateOperation, action: str) -> None:
        with self._writing, self._use(action) as shard:
            shard.update(operation)
            if self._recorded is not None:
                self._recorded.append(operation)

    def _maybe_build(self) -> None:
        """Start a background build once ``index.threshold`` points are outside the index."""
        threshold = self.index.threshold
        if not threshold or self.read_only or self._pending < threshold or self._stop.is_set():
            return
        if self._builder is not None and self._builder.is_alive():
            return
        self._builder = threading.Thread(target=self._build_in_background, name="memos-hnsw-build", daemon=True)
        self._builder.start()

    def _build_in_background(self) -> None:
        if self._stop.wait(_START_DELAY):
            return
        try:
            self._build(None)
        except MemosError as exc:
            log.warning("the vector index was not built (searches scan in full until the next try): %s", exc)

    def _build(self, timeout: float | None) -> bool:
        """Copy the shard (writes wait; reads go on), build the index on the copy in a child process
        (reads and writes go on; writes are recorded), then swap the copy in and replay the recorded
        writes on it (reads and writes wait). False when stopped or failed (the copy is removed)."""
        target = edge_index.sibling(self.path, f"{edge_index.NEXT}{time.monotonic_ns()}")
        started = time.monotonic()
        with self._writing:
            if self._shard is None or self._stop.is_set():
                return False
            with self._use("flush before an index build") as shard:
                shard.flush()
                points = shard.info().points_count
            with _driver("copy the shard for an index build"):
                self._check_room()
                edge_index.copy_shard(self.path, target)
            self._recorded = []
        copied = time.monotonic()
        try:
            built = self._run_child(target, points, timeout)
            if built:
                child = time.monotonic()
                self._swap(target)
                done = time.monotonic()
                # copy: writes waited; swap: reads and writes waited; child: neither did
                self.last_build = {"seconds": round(done - started, 3), "points": points,
                                   "copy_seconds": round(copied - started, 3),
                                   "child_seconds": round(child - copied, 3), "swap_seconds": round(done - child, 3)}
            return built
        finally:
            with self._writing:
                self._recorded = None
            edge_index.discard(target)

    def _check_room(self) -> None:
        size = edge_index.shard_bytes(self.path)
        free = shutil.disk_usage(self.path.parent).free
        if free < 2 * size:
            raise StorageError(f"not enough free disk space to build the vector index ({free} bytes free, the "
                               f"shard takes {size})", path=str(self.path))

    def _run_child(self, target: Path, points: int, timeout: float | None) -> bool:
        pending = max(1, min(self.index.threshold or points, points))
        params = {"dimension": self._dimension, "m": self.index.m, "ef_construct": self.index.ef_construct,
                  "threads": self.index.threads, "threshold_kb": pending * self._dimension * 4 // 2048}
        with _driver("start the index build"):
            child = subprocess.Popen([sys.executable, "-m", edge_index.__name__, str(target), json.dumps(params)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._child = child
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    _, err = child.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                        child.kill()
                        child.communicate()
                        return False
        finally:
            self._child = None
        if self._stop.is_set():
            return False
        if child.returncode:
            raise StorageError(f"the vector index build failed (exit {child.returncode}): "
                               f"{err.decode(errors='replace')[-2000:]}")
        return True

    def _swap(self, target: Path) -> None:
        """Put the built copy in the shard's place and replay the writes recorded since it was copied.
        The commit is the rename of the replaced shard to trash; until then ``recover`` restores it."""
        old = edge_index.sibling(self.path, edge_index.OLD)
        trash = edge_index.sibling(self.path, edge_index.TRASH)
        with self._writing, self._gate.exclusive(), _driver("swap in the built vector index"):
            shard = self._shard
            if shard is None or self._stop.is_set():
                return
            recorded = self._recorded or []
            shard.close()  # no flush first: every acknowledged write is in its write-ahead log
            self._shard = None
            os.replace(self.path, old)
            built: qe.EdgeShard | None = None
            try:
                os.replace(target, self.path)
                built = qe.EdgeShard.load(str(self.path))
                for operation in recorded:
                    built.update(operation)
                if recorded:
                    built.flush()
                os.replace(old, trash)  # committed
            except BaseException:
                if built is not None:
                    built.close()
                edge_index.recover(self.path)
                self._shard = qe.EdgeShard.load(str(self.path))
                raise
            self._shard = built
            self._pending = max(0, built.info().points_count - edge_index.indexed_points(self.path))
        edge_index.discard(trash)

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StorageError(f"vector store at {self.path} is not open")
        return self._shard


def edge_filter(flt: MemoryFilter) -> qe.Filter:
    """``MemoryFilter`` as a qdrant-edge filter: every condition in ``must``."""
    must: list[Any] = [_any("cube_id", flt.cube_ids)]
    for key, values in (
        ("status", flt.status),
        ("memory_type", flt.memory_types),
        ("kind", flt.kinds),
        ("tags", flt.tags_any),
    ):
        if values:
            must.append(_any(key, values))
    for key, value in (
        ("conversation_id", flt.conversation_id),
        ("user_id", flt.user_id),
        ("content_hash", flt.content_hash),
    ):
        if value is not None:
            must.append(qe.FieldCondition(key=key, match=qe.MatchValue(value)))
    if flt.ids:
        must.append(qe.HasIdCondition(set(flt.ids)))
    for key, low, high in (("event_time", flt.event_time_from, flt.event_time_to),
                           (ORDER_FIELD, flt.created_from, flt.created_to)):
        if low is not None or high is not None:
            must.append(qe.FieldCondition(key=key, range=qe.RangeFloat(gte=low, lte=high)))
    for name, wanted in flt.metadata:
        key = f'metadata."{name}"'  # quoted so names with dots or spaces stay one key
        if isinstance(wanted, bool):
            # qdrant-edge 0.9 turns a Python bool into the integer 0/1, which never equals a
            # JSON boolean; a numpy bool is the one value its binding reads as a bool. (numpy is imported
            # here: at the top it would slow stdio's handshake, which opens this module.)
            import numpy as np

            must.append(qe.FieldCondition(key=key, match=qe.MatchValue(np.bool_(wanted))))  # type: ignore[arg-type]
        elif isinstance(wanted, float):
            must.append(qe.FieldCondition(key=key, range=qe.RangeFloat(gte=wanted, lte=wanted)))
        else:
            must.append(qe.FieldCondition(key=key, match=qe.MatchValue(wanted)))
    return qe.Filter(must=must)


def _any(key: str, values: tuple[str, ...]) -> qe.FieldCondition:
    # One value as a plain match: the engine checks it faster than a list of one (about 0.3 ms of a
    # hybrid query at 100,000 points); on an array field (tags) both match when any element is equal.
    if len(values) == 1:
        return qe.FieldCondition(key=key, match=qe.MatchValue(values[0]))
    return qe.FieldCondition(key=key, match=qe.MatchAny(list(values)))


def _formula(query: HybridQuery) -> qe.Expression:
    e = qe.Expression
    bm25 = e.Variable("$score[1]")
    terms = [
        e.Mult([e.Constant(query.dense_weight), e.Max([e.Variable("$score[0]"), e.Constant(0.0)])]),
        e.Mult([
            e.Constant(query.sparse_weight),
            e.Div(bm25, e.Sum([bm25, e.Constant(query.sparse_saturation)]), 0.0),
        ]),
    ]
    if query.boost_conversation_id is not None and query.conversation_boost:
        same_conversation = qe.FieldCondition(
            key="conversation_id", match=qe.MatchValue(query.boost_conversation_id)
        )
        terms.append(e.Mult([e.Constant(query.conversation_boost), e.Condition(same_conversation)]))
    return e.Sum(terms)


_KINDS = {"keyword": qe.PayloadSchemaType.Keyword, "float": qe.PayloadSchemaType.Float}


def _edge_config(dimension: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


def _has_segments(path: Path) -> bool:
    segments = path / "segments"
    return segments.is_dir() and any(segments.iterdir())


def _ensure_indexes(shard: qe.EdgeShard) -> list[str]:
    """Create each index of ``PAYLOAD_INDEXES`` the shard lacks (one of another type is made again);
    flushed, so that it survives a kill. The names of the indexes made."""
    present = shard.info().payload_schema
    made: list[str] = []
    for field, kind in PAYLOAD_INDEXES.items():
        if field in present and present[field].data_type == _KINDS[kind]:
            continue
        if field in present:
            shard.update(qe.UpdateOperation.delete_field_index(field))
        shard.update(qe.UpdateOperation.create_field_index(field, _KINDS[kind]))
        made.append(f"payload index {field}")
    if made:
        shard.flush()
    return made


def _check_dimension(path: Path, dimension: int) -> None:
    with _driver(f"read the shard config {path / _CONFIG_FILE}"):
        config = json.loads((path / _CONFIG_FILE).read_text(encoding="utf-8"))
        stored = int(config["vectors"][DENSE]["size"])
    if stored != dimension:
        raise ConfigError(
            f"vector collection at {path} has dimension {stored} but the embedding model produces "
            f"{dimension}; configure the model it was made with again, or move the data directory to this one "
            "with memos-mcp reembed",
            stored=stored,
            expected=dimension,
        )


def _vectors(with_vectors: bool) -> list[str] | bool:
    return [DENSE] if with_vectors else False


@contextmanager
def _driver(action: str) -> Iterator[None]:
    try:
        yield
    except MemosError:
        raise
    except Exception as exc:
        raise StorageError(f"qdrant-edge failed to {action}: {exc}") from exc
    except BaseException as exc:  # a Rust panic in the engine arrives as pyo3's PanicException
        if type(exc).__name__ != "PanicException":
            raise
        raise StorageError(f"qdrant-edge failed to {action}: the engine panicked ({exc})") from exc
