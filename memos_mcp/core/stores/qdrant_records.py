"""Points as the two Qdrant backends read them back: qdrant-edge's and qdrant-client's records share one
shape (``id``, ``payload``, ``vector``: the named vectors as a dict, when asked for)."""

from __future__ import annotations

from typing import Any, Protocol, cast

from memos_mcp.core.stores.vector import DENSE, SPARSE, ScoredPoint, SparseVector, StoredPoint, VectorPoint


class QdrantRecord(Protocol):
    """A record or scored point of either Qdrant library."""

    @property
    def id(self) -> Any: ...

    @property
    def payload(self) -> Any: ...

    @property
    def vector(self) -> Any: ...


def stored_point(record: QdrantRecord, with_vectors: bool) -> StoredPoint:
    """The point with its payload and, when ``with_vectors`` and the record carries them, its dense vector."""
    vectors = record.vector if with_vectors else None
    dense = cast(list[float], vectors[DENSE]) if isinstance(vectors, dict) else None
    return StoredPoint(str(record.id), record.payload or {}, dense)


def scored_point(record: QdrantRecord, score: float, with_vectors: bool) -> ScoredPoint:
    """The found point with ``score``, its payload and, as for ``stored_point``, its dense vector (each of the
    record's properties is read once: the engine's binding converts it anew on every read)."""
    point = stored_point(record, with_vectors)
    return ScoredPoint(point.id, score, point.payload, point.dense)


def whole_point(record: QdrantRecord) -> VectorPoint:
    """The point as written: payload, dense and keyword vectors (empty where the record lacks one)."""
    vectors = record.vector if isinstance(record.vector, dict) else {}
    sparse = vectors.get(SPARSE)
    return VectorPoint(str(record.id), cast(list[float], vectors.get(DENSE) or []),
                       SparseVector(list(getattr(sparse, "indices", None) or []),
                                    list(getattr(sparse, "values", None) or [])), record.payload or {})
