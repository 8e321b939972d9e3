"""Qdrant Edge backend: Qdrant's engine embedded in-process, one shard directory, no server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import qdrant_edge as qe

from memos_mcp.core.stores.vector import (
    DENSE,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    ORDER_FIELD,
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

    def __init__(self, path: Path) -> None:
        self.path = path
        self._shard: qe.EdgeShard | None = None

    def open(self, dimension: int) -> None:
        exists = (self.path / _CONFIG_FILE).exists()
        if exists:
            _check_dimension(self.path, dimension)
        try:
            self._shard = qe.EdgeShard.load(str(self.path)) if exists else _create_shard(self.path, dimension)
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreLocked(
                    f"vector store at {self.path} is in use by another process", path=str(self.path)
                ) from exc
            raise StorageError(f"cannot open the vector store at {self.path}: {exc}") from exc

    def upsert(self, points: Sequence[VectorPoint]) -> None:
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
        with _driver("set a payload"):
            self.shard.update(qe.UpdateOperation.set_payload([point_id], payload))

    def delete(self, ids: Sequence[str]) -> None:
        with _driver("delete points"):
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, flt: MemoryFilter) -> None:
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
            score_threshold=query.score_threshold,
            with_payload=True,
            with_vector=False,
        )
        with _driver("run a hybrid search"):
            hits = self.shard.query(request)
        return [ScoredPoint(str(h.id), h.score, h.payload or {}) for h in hits]

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
            # JSON boolean; a numpy bool is the one value its binding reads as a bool.
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


def _create_shard(path: Path, dimension: int) -> qe.EdgeShard:
    config = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    shard = qe.EdgeShard.create(str(path), config)
    for field in KEYWORD_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    for field in FLOAT_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Float))
    return shard


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
