"""qdrant-client backend: a Qdrant server or cluster, or qdrant-client's local mode on disk."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as m

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

_KEY_PAGE = 1000  # (created_at, id) pairs per scroll when reading a group of points in full


class QdrantClientVectorStore(VectorStore):
    name = "qdrant"

    def __init__(
        self,
        collection: str,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        timeout: float = 10.0,
        read_only: bool = False,
        index: IndexConfig | None = None,
    ) -> None:
        """``index``: the HNSW settings, given to a collection this store creates (and to an existing one
        on a server when they differ); local mode searches exactly and ignores them."""
        self.collection = collection
        self.index = index or IndexConfig()
        self.url = url
        self._api_key = api_key
        self.path = path
        self.timeout = timeout
        self.read_only = read_only
        self._client: QdrantClient | None = None
        self._copy: str | None = None  # the private working copy a read-only local store opens

    @property
    def location(self) -> str:
        return self.url or self.path or ":memory:"

    def collection_exists(self) -> bool:
        if not self.url:  # local mode keeps a collection in a folder of its own (in memory: nothing yet)
            return bool(self.path) and (Path(str(self.path)) / "collection" / self.collection).is_dir()
        client = QdrantClient(url=self.url, api_key=self._api_key, timeout=math.ceil(self.timeout))
        try:
            with _driver("read the collections"):
                return bool(client.collection_exists(self.collection))
        finally:
            client.close()

    def open(self, dimension: int) -> None:
        """Open the collection, or create it; on a server, then create every payload index it lacks
        (a creation cut short is finished by the next open). Read-only: nothing is created; local
        mode, which cannot open a read-only folder, opens a private copy in a temporary directory."""
        try:
            if self.url:
                client = QdrantClient(url=self.url, api_key=self._api_key, timeout=math.ceil(self.timeout))
            elif self.path:
                # The service calls the store from worker threads, one at a time; without this, local
                # mode's sqlite connection refuses use from any thread but its creator (on macOS).
                client = QdrantClient(path=self._working_copy() if self.read_only else self.path,
                                      force_disable_check_same_thread=True)
            else:
                client = QdrantClient(location=":memory:")
        except Exception as exc:
            self._drop_copy()
            # Local mode holds an exclusive file lock on its folder and says so in a RuntimeError.
            if "already accessed" in str(exc):
                raise StoreLocked(
                    f"vector store at {self.path} is in use by another process", path=self.path
                ) from exc
            raise StorageError(f"cannot open the vector store at {self.location}: {exc}") from exc
        self._client = client
        try:
            with _driver("open the collection"):
                exists = client.collection_exists(self.collection)
                if exists:
                    self._check_dimension(dimension)
                elif self.read_only:
                    raise StorageError(f"vector collection {self.collection} does not exist at {self.location} "
                                       "and the store is read-only", collection=self.collection)
                else:
                    self._create(dimension)
                made = self._ensure_indexes() if self.url and not self.read_only else []
                if exists and self.url and not self.read_only:
                    self._tune_index(dimension)
        except MemosError:
            self.close()
            raise
        self.repaired = tuple(made) if exists else ()

    def _working_copy(self) -> str:
        assert self.path is not None
        copy = tempfile.mkdtemp(prefix="memos-qdrant-")
        self._copy = copy
        try:
            shutil.copytree(self.path, f"{copy}/local", ignore=shutil.ignore_patterns(".lock"))
        except OSError as exc:
            self._drop_copy()
            raise StorageError(f"cannot copy the read-only vector store at {self.path}: {exc}",
                               path=self.path) from exc
        return f"{copy}/local"

    def _drop_copy(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def _check_dimension(self, dimension: int) -> None:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        stored = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
        if stored != dimension:
            raise ConfigError(
                f"vector collection at {self.location}/{self.collection} has dimension {stored} but the "
                f"embedding model produces {dimension}",
                stored=stored,
                expected=dimension,
            )

    def _create(self, dimension: int) -> None:
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=dimension, distance=m.Distance.COSINE)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            hnsw_config=m.HnswConfigDiff(m=self.index.m, ef_construct=self.index.ef_construct,
                                         max_indexing_threads=self.index.threads),
            optimizers_config=m.OptimizersConfigDiff(indexing_threshold=self._threshold_kb(dimension)),
        )

    def _threshold_kb(self, dimension: int) -> int:
        """``index.threshold`` points as Qdrant's indexing threshold (KB of dense vectors; 0 = never)."""
        return max(1, self.index.threshold * dimension * 4 // 1024) if self.index.threshold else 0

    def _tune_index(self, dimension: int) -> None:
        """Give an existing server collection the configured HNSW settings where they differ."""
        config = self.client.get_collection(self.collection).config
        hnsw, threshold = config.hnsw_config, self._threshold_kb(dimension)
        if (hnsw.m, hnsw.ef_construct) != (self.index.m, self.index.ef_construct) or \
                config.optimizer_config.indexing_threshold != threshold:
            self.client.update_collection(
                self.collection, hnsw_config=m.HnswConfigDiff(m=self.index.m, ef_construct=self.index.ef_construct),
                optimizers_config=m.OptimizersConfigDiff(indexing_threshold=threshold))

    def _search_params(self) -> m.SearchParams | None:
        # Local mode searches exactly, and warns at every search that is given parameters.
        return m.SearchParams(hnsw_ef=self.index.ef) if self.url else None

    def _missing_indexes(self) -> list[str]:
        """The fields of ``PAYLOAD_INDEXES`` without an index of their kind (a server only: local mode
        has no payload indexes, and orders and filters without them)."""
        if not self.url:
            return []
        present = self.client.get_collection(self.collection).payload_schema
        return [f for f, kind in PAYLOAD_INDEXES.items()
                if f not in present or present[f].data_type != _KINDS[kind]]

    def _ensure_indexes(self) -> list[str]:
        made = []
        for field in self._missing_indexes():
            self.client.create_payload_index(self.collection, field, _KINDS[PAYLOAD_INDEXES[field]], wait=True)
            made.append(f"payload index {field}")
        return made

    def check(self) -> str:
        with _driver("read the collection"):
            if not self.client.collection_exists(self.collection):
                raise StorageError(f"vector collection {self.collection} is missing at {self.location}",
                                   collection=self.collection)
            params = self.client.get_collection(self.collection).config.params
            missing = self._missing_indexes()
        if not isinstance(params.vectors, dict) or DENSE not in params.vectors or SPARSE not in (
                params.sparse_vectors or {}):
            raise StorageError(f"vector collection {self.location}/{self.collection} lacks its '{DENSE}' or "
                               f"'{SPARSE}' vectors", collection=self.collection)
        if missing:
            raise StorageError(f"vector collection {self.location}/{self.collection} lacks the payload "
                               f"index(es) {', '.join(missing)}", missing=missing)
        points = self._probe()
        return f"collection {self.collection}, ordered scroll answers ({points} probe points)"

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        self._writable("upsert points")
        if not points:  # qdrant rejects an empty update request
            return
        structs = [
            m.PointStruct(
                id=p.id,
                vector={
                    DENSE: p.dense,
                    SPARSE: m.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                },
                payload=p.payload,
            )
            for p in points
        ]
        with _driver("upsert points"):
            self.client.upsert(self.collection, structs, wait=True)

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self._writable("set a payload")
        with _driver("set a payload"):
            self.client.set_payload(self.collection, payload, points=[point_id], wait=True)

    def set_payload_if(self, point_id: str, payload: dict[str, Any], field: str, expected: str) -> bool:
        """The write selects the point by its id and ``field`` in one operation (a Qdrant server shared by
        replicas never overwrites one that changed it meanwhile); read back to tell whether it applied."""
        self._writable("set a payload")
        selector = m.Filter(must=[m.HasIdCondition(has_id=[point_id]),
                                  m.FieldCondition(key=field, match=m.MatchValue(value=expected))])
        with _driver("set a payload"):
            self.client.set_payload(self.collection, payload, points=selector, wait=True)
        found = self.retrieve([point_id])
        return bool(found) and found[0].payload.get(field) == expected and \
            all(found[0].payload.get(key) == value for key, value in payload.items())

    def delete(self, ids: Sequence[str]) -> None:
        self._writable("delete points")
        if not ids:
            return
        with _driver("delete points"):
            self.client.delete(self.collection, m.PointIdsList(points=list(ids)), wait=True)

    def delete_where(self, flt: MemoryFilter) -> None:
        self._writable("delete points")
        with _driver("delete points by filter"):
            self.client.delete(self.collection, m.FilterSelector(filter=client_filter(flt)), wait=True)

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        with _driver("retrieve points"):
            records = self.client.retrieve(
                self.collection, list(ids), with_payload=True, with_vectors=_vectors(with_vectors)
            )
        found = {str(r.id): stored_point(r, with_vectors) for r in records}
        return [found[i] for i in ids if i in found]

    def whole_points(self, ids: Sequence[str]) -> list[VectorPoint]:
        with _driver("retrieve whole points"):
            records = self.client.retrieve(self.collection, list(ids), with_payload=True,
                                           with_vectors=[DENSE, SPARSE])
        found = {str(r.id): whole_point(r) for r in records}
        return [found[i] for i in ids if i in found]

    def _order_values(self, flt: MemoryFilter, limit: int, offset: int) -> list[float]:
        # query_points, not scroll: scroll's offset is a point id and cannot be combined with order_by.
        with _driver("scroll points"):
            hits = self.client.query_points(
                self.collection,
                query=m.OrderByQuery(order_by=m.OrderBy(key=ORDER_FIELD, direction=m.Direction.DESC)),
                query_filter=client_filter(flt),
                limit=limit,
                offset=offset,
                with_payload=[ORDER_FIELD],
                with_vectors=False,
            ).points
        return [float((h.payload or {})[ORDER_FIELD]) for h in hits]

    def _order_keys(self, flt: MemoryFilter) -> list[tuple[float, str]]:
        keys: list[tuple[float, str]] = []
        offset: Any = None
        with _driver("scroll points"):
            while True:
                records, offset = self.client.scroll(
                    self.collection, scroll_filter=client_filter(flt), limit=_KEY_PAGE, offset=offset,
                    with_payload=[ORDER_FIELD], with_vectors=False)
                keys += [(float((r.payload or {})[ORDER_FIELD]), str(r.id)) for r in records]
                if offset is None:
                    return keys

    def count(self, flt: MemoryFilter) -> int:
        with _driver("count points"):
            return self.client.count(self.collection, count_filter=client_filter(flt), exact=True).count

    def exists(self, flt: MemoryFilter) -> bool:
        with _driver("look for a point"):
            records, _ = self.client.scroll(self.collection, scroll_filter=client_filter(flt), limit=1,
                                            with_payload=False, with_vectors=False)
        return bool(records)

    def hybrid_search(self, query: HybridQuery) -> list[ScoredPoint]:
        flt = client_filter(query.filter)
        sparse = m.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
        with _driver("run a hybrid search"):
            hits = self.client.query_points(
                self.collection,
                prefetch=[
                    m.Prefetch(query=query.dense, using=DENSE, filter=flt, limit=query.candidates,
                               params=self._search_params()),
                    m.Prefetch(query=sparse, using=SPARSE, filter=flt, limit=query.candidates),
                ],
                # The formula scores the prefetched points alone, which passed the filter already.
                query=m.FormulaQuery(formula=_formula(query), defaults={"$score[0]": 0.0, "$score[1]": 0.0}),
                limit=query.limit,
                with_payload=True if query.fields is None else list(query.fields),
                with_vectors=[DENSE] if query.with_dense else False,
            ).points
        return [scored_point(h, h.score, query.with_dense) for h in hits]

    def dense_search(self, vector: list[float], flt: MemoryFilter, limit: int) -> list[ScoredPoint]:
        with _driver("run a dense search"):
            hits = self.client.query_points(
                self.collection,
                query=vector,
                using=DENSE,
                query_filter=client_filter(flt),
                limit=limit,
                with_payload=True,
                search_params=self._search_params(),
            ).points
        return [ScoredPoint(str(h.id), h.score, h.payload or {}) for h in hits]

    def stats(self) -> dict[str, Any]:
        with _driver("read collection info"):
            points = self.client.count(self.collection, exact=True).count
        return {
            "backend": self.name,
            "points": points,
            "collection": self.collection,
            "path": self.location,
            "mode": "server" if self.url else "local",
        }

    def flush(self) -> None:
        """Nothing to do: a server persists each acknowledged write, local mode writes as it goes."""

    def close(self) -> None:
        if self._client is None:
            return
        client, self._client = self._client, None
        with _driver("close"):
            try:
                client.close()
            finally:
                self._drop_copy()

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise StorageError(f"vector store at {self.location} is not open")
        return self._client


def client_filter(flt: MemoryFilter) -> m.Filter:
    """``MemoryFilter`` as a qdrant-client filter: every condition in ``must``."""
    must: list[m.Condition] = [_any("cube_id", flt.cube_ids)]
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
            must.append(m.FieldCondition(key=key, match=m.MatchValue(value=value)))
    if flt.ids:
        must.append(m.HasIdCondition(has_id=list(flt.ids)))
    for key, low, high in (("event_time", flt.event_time_from, flt.event_time_to),
                           (ORDER_FIELD, flt.created_from, flt.created_to)):
        if low is not None or high is not None:
            must.append(m.FieldCondition(key=key, range=m.Range(gte=low, lte=high)))
    for name, wanted in flt.metadata:
        key = f'metadata."{name}"'  # quoted so names with dots or spaces stay one key
        if isinstance(wanted, float):
            must.append(m.FieldCondition(key=key, range=m.Range(gte=wanted, lte=wanted)))
        else:
            must.append(m.FieldCondition(key=key, match=m.MatchValue(value=wanted)))
    return m.Filter(must=must)


def _any(key: str, values: tuple[str, ...]) -> m.FieldCondition:
    return m.FieldCondition(key=key, match=m.MatchAny(any=list(values)))


def _formula(query: HybridQuery) -> m.Expression:
    bm25 = "$score[1]"
    terms: list[m.Expression] = [
        m.MultExpression(mult=[query.dense_weight, m.MaxExpression(max=["$score[0]", 0.0])]),
        m.MultExpression(mult=[
            query.sparse_weight,
            m.DivExpression(
                div=m.DivParams(
                    left=bm25, right=m.SumExpression(sum=[bm25, query.sparse_saturation]), by_zero_default=0.0
                )
            ),
        ]),
    ]
    if query.boost_conversation_id is not None and query.conversation_boost:
        same_conversation = m.FieldCondition(
            key="conversation_id", match=m.MatchValue(value=query.boost_conversation_id)
        )
        terms.append(m.MultExpression(mult=[query.conversation_boost, same_conversation]))
    return m.SumExpression(sum=terms)


_KINDS = {"keyword": m.PayloadSchemaType.KEYWORD, "float": m.PayloadSchemaType.FLOAT}


def _vectors(with_vectors: bool) -> list[str] | bool:
    return [DENSE] if with_vectors else False


@contextmanager
def _driver(action: str) -> Iterator[None]:
    try:
        yield
    except MemosError:
        raise
    except Exception as exc:
        raise StorageError(f"qdrant-client failed to {action}: {exc}") from exc
