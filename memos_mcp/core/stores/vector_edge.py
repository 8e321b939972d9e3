"""Qdrant Edge backend: Qdrant's engine embedded in-process, one shard directory, no server."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import qdrant_edge as qe

from memos_mcp.core.stores.vector import (
    DENSE,
    ORDER_FIELD,
    PAYLOAD_INDEXES,
    PROBE_CUBE,
    SPARSE,
    HybridQuery,
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


class EdgeVectorStore(VectorStore):
    name = "qdrant-edge"

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._shard: qe.EdgeShard | None = None
        self._copy: Path | None = None  # the private working copy a read-only store opens

    def open(self, dimension: int) -> None:
        """Load the shard, or create it; then create every payload index it lacks. A shard whose
        creation was cut short (segments but no config file) is loaded with the config and finished.
        Read-only: qdrant-edge cannot load a shard from a read-only file system, so a private copy in
        a temporary directory is loaded (and removed at ``close``)."""
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
        # A fresh shard gets everything; a loaded one that lacked something was repaired.
        self.repaired = () if fresh else (*([] if configured else ["shard config"]), *made)

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
        if not (self.path / _CONFIG_FILE).exists() and not _has_segments(self.path):
            raise StorageError(f"the vector store at {self.path} does not exist and the data directory is "
                               "read-only", path=str(self.path))
        copy = Path(tempfile.mkdtemp(prefix="memos-vectors-"))
        self._copy = copy
        try:
            shutil.copytree(self.path, copy / "shard", ignore=shutil.ignore_patterns("*.lock"))
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
        with _driver("read shard info"):
            info = self.shard.info()
        missing = [f for f, kind in PAYLOAD_INDEXES.items()
                   if f not in info.payload_schema or info.payload_schema[f].data_type != _KINDS[kind]]
        if missing:
            raise StorageError(f"vector store at {self.path} lacks the payload index(es) {', '.join(missing)}",
                               missing=missing)
        probe = MemoryFilter(cube_ids=(PROBE_CUBE,))
        self.scroll(probe, limit=1)
        self.count(probe)
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
        with _driver("upsert points"):
            self.shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self._writable("set a payload")
        with _driver("set a payload"):
            self.shard.update(qe.UpdateOperation.set_payload([point_id], payload))

    def delete(self, ids: Sequence[str]) -> None:
        self._writable("delete points")
        with _driver("delete points"):
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, flt: MemoryFilter) -> None:
        self._writable("delete points")
        with _driver("delete points by filter"):
            self.shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(flt)))

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        with _driver("retrieve points"):
            records = self.shard.retrieve(list(ids), with_payload=True, with_vector=_vectors(with_vectors))
        found = {str(r.id): _stored(r, with_vectors) for r in records}
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
        with _driver("scroll points"):
            hits = self.shard.query(request)
        return [float((h.payload or {})[ORDER_FIELD]) for h in hits]

    def _order_keys(self, flt: MemoryFilter) -> list[tuple[float, str]]:
        keys: list[tuple[float, str]] = []
        offset: Any = None
        with _driver("scroll points"):
            while True:
                records, offset = self.shard.scroll(qe.ScrollRequest(
                    offset=offset, limit=_KEY_PAGE, filter=edge_filter(flt),
                    with_payload=qe.PayloadSelector.Include([ORDER_FIELD]), with_vector=False))
                keys += [(float((r.payload or {})[ORDER_FIELD]), str(r.id)) for r in records]
                if offset is None:
                    return keys

    def count(self, flt: MemoryFilter) -> int:
        with _driver("count points"):
            return self.shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt)))

    def hybrid_search(self, query: HybridQuery) -> list[ScoredPoint]:
        flt = edge_filter(query.filter)
        request = qe.QueryRequest(
            limit=query.limit,
            prefetches=[
                qe.Prefetch(
                    limit=query.candidates, query=qe.Query.Nearest(query.dense, using=DENSE), filter=flt
                ),
                qe.Prefetch(
                    limit=query.candidates,
                    query=qe.Query.Nearest(
                        qe.SparseVector(query.sparse.indices, query.sparse.values), using=SPARSE
                    ),
                    filter=flt,
                ),
            ],
            query=qe.Formula(_formula(query), defaults={"$score[0]": 0.0, "$score[1]": 0.0}),
            filter=flt,
            with_payload=True,
            with_vector=[DENSE],
        )
        with _driver("run a hybrid search"):
            hits = self.shard.query(request)
        return [ScoredPoint(str(h.id), h.score, h.payload or {}, _stored(h, True).dense) for h in hits]

    def dense_search(self, vector: list[float], flt: MemoryFilter, limit: int) -> list[ScoredPoint]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=DENSE),
            filter=edge_filter(flt),
            with_payload=True,
            with_vector=False,
        )
        with _driver("run a dense search"):
            hits = self.shard.query(request)
        return [ScoredPoint(str(h.id), h.score, h.payload or {}) for h in hits]

    def stats(self) -> dict[str, Any]:
        with _driver("read shard info"):
            info = self.shard.info()
        return {
            "backend": self.name,
            "points": info.points_count,
            "segments": info.segments_count,
            "indexed_fields": sorted(info.payload_schema),
            "path": str(self.path),
            **({"read_only": True} if self.read_only else {}),
        }

    def flush(self) -> None:
        with _driver("flush"):
            self.shard.flush()

    def close(self) -> None:
        if self._shard is None:
            return
        shard, self._shard = self._shard, None
        with _driver("close"):
            try:
                shard.flush()
            finally:
                shard.close()
                self._drop_copy()

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
    with _driver("read the shard config"):
        config = json.loads((path / _CONFIG_FILE).read_text(encoding="utf-8"))
        stored = int(config["vectors"][DENSE]["size"])
    if stored != dimension:
        raise ConfigError(
            f"vector collection at {path} has dimension {stored} but the embedding model produces "
            f"{dimension}",
            stored=stored,
            expected=dimension,
        )


def _vectors(with_vectors: bool) -> list[str] | bool:
    return [DENSE] if with_vectors else False


def _stored(record: qe.Record | qe.ScoredPoint, with_vectors: bool) -> StoredPoint:
    vectors = record.vector if with_vectors else None
    dense = cast(list[float], vectors[DENSE]) if isinstance(vectors, dict) else None
    return StoredPoint(str(record.id), record.payload or {}, dense)


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
