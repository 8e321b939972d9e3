"""The vector store port: what the memory service needs from a vector database.

Each memory is one point: id = memory id (UUID string), a dense vector named "dense", a sparse
keyword vector named "sparse" (BM25 term weights; the store applies IDF), and the memory as payload.
Backends: ``vector_edge`` (Qdrant's embedded engine, the default) and ``vector_client``
(qdrant-client: a Qdrant server or cluster, or its local mode).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memos_mcp.errors import DataDirReadOnly

DENSE = "dense"
SPARSE = "sparse"

# Payload fields that get an index, by kind. Time fields are epoch seconds (float).
KEYWORD_FIELDS = ("cube_id", "user_id", "conversation_id", "memory_type", "kind", "status", "tags",
                  "content_hash")
FLOAT_FIELDS = ("event_time", "created_at")
# Every index the queries need, field -> kind ("keyword" or "float"). Each open creates whichever is
# missing: a first start killed half-way through creating them must not leave a store whose ordered
# scroll ("No range index for 'order_by' key") fails forever.
PAYLOAD_INDEXES: dict[str, str] = {**dict.fromkeys(KEYWORD_FIELDS, "keyword"), **dict.fromkeys(FLOAT_FIELDS, "float")}
# Listings are ordered newest ``created_at`` first, then by id (ascending, as strings): a total order,
# so that offsets and cursors visit each point once although a batch of points shares one time.
ORDER_FIELD = "created_at"

Scalar = str | int | float | bool


@dataclass(frozen=True)
class IndexConfig:
    """How the HNSW index of the dense vectors is built and searched (both backends). ``threshold``:
    points outside the index past which it is built (qdrant-edge: in the background; a Qdrant server:
    its indexing threshold; 0 = never, every dense search is an exact full scan); ``m`` edges per node;
    ``ef_construct`` candidates while building; ``ef`` candidates per search; ``threads`` building (0 =
    every core). qdrant-client's local mode ignores all of it (it always searches exactly)."""

    threshold: int = 5000
    m: int = 16
    ef_construct: int = 100
    ef: int = 128
    threads: int = 0


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class VectorPoint:
    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredPoint:
    id: str
    payload: dict[str, Any]
    dense: list[float] | None = None


@dataclass(frozen=True)
class ScoredPoint:
    """A found point: ``score`` is the query's own score (fused, or cosine for a dense search);
    ``dense`` is the point's stored unit vector, returned by ``hybrid_search`` when the query asks for it
    (None elsewhere)."""

    id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None


@dataclass(frozen=True)
class MemoryFilter:
    """Conditions on the payload; every given condition must hold.

    ``cube_ids`` is required and non-empty: a query never spans the whole store.
    ``tags_any`` matches points with at least one of the tags; ``metadata`` matches
    ``payload["metadata"][key] == value`` for every pair; times are epoch seconds, inclusive
    (``created_from``/``created_to`` bound ``created_at``, the listing order's key).
    """

    cube_ids: tuple[str, ...]
    status: tuple[str, ...] = ("activated",)
    memory_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    conversation_id: str | None = None
    user_id: str | None = None
    event_time_from: float | None = None
    event_time_to: float | None = None
    metadata: tuple[tuple[str, Scalar], ...] = ()
    content_hash: str | None = None
    ids: tuple[str, ...] = ()  # only these points (memory ids), when given
    created_from: float | None = None
    created_to: float | None = None

    def __post_init__(self) -> None:
        if not self.cube_ids:
            raise ValueError("MemoryFilter needs at least one cube id")


@dataclass(frozen=True)
class HybridQuery:
    """One fused dense + keyword query, scored inside the store.

    score = dense_weight * max(cosine, 0)
          + sparse_weight * bm25 / (bm25 + sparse_saturation)
          + conversation_boost * [conversation_id == boost_conversation_id]
    so that with weights summing to 1 (boost apart) the score lies in [0, 1].
    Each of the two prefetches keeps ``candidates`` points. Relevance thresholds are the service's
    (on the calibrated ``relativity``, see ``core.relevance``), not the store's.
    ``fields``: the payload keys each hit must carry (None: the whole payload; a backend may return more
    than asked); ``with_dense``: whether each hit carries its dense vector. A ranking that reads few
    fields asks for those alone and reads the few points it keeps whole afterwards (``retrieve``):
    reading and decoding every candidate's payload and vector is most of a query's cost.
    """

    dense: list[float]
    sparse: SparseVector
    filter: MemoryFilter
    limit: int
    dense_weight: float = 0.5
    sparse_weight: float = 0.5
    sparse_saturation: float = 8.0
    candidates: int = 100
    boost_conversation_id: str | None = None
    conversation_boost: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] | None = None
    with_dense: bool = True


class VectorStore(ABC):
    """A collection of memory points. Methods are synchronous and thread-safe enough to be
    called from worker threads one at a time (the service serialises writes).

    A store built with ``read_only=True`` opens a data directory it may not write (a read-only mount
    or snapshot): it never writes where it reads from, and every write method raises
    ``DataDirReadOnly``."""

    name: str
    read_only: bool = False
    # What the last ``open`` had to make again (an index or a collection setting a crash had cut short).
    repaired: tuple[str, ...] = ()

    @abstractmethod
    def open(self, dimension: int) -> None:
        """Create the collection (dense size ``dimension``, cosine; sparse with IDF; payload indexes)
        or open the existing one, creating whatever part of it is missing (``repaired`` names it), so
        that a creation cut short by a crash is finished by the next open. An existing collection of
        another dimension raises ``ConfigError`` naming both dimensions."""

    @abstractmethod
    def collection_exists(self) -> bool:
        """Whether the collection exists where this store looks (before ``open``), read without creating
        or changing anything; ``StorageError`` when that cannot be read (an unreachable server)."""

    @abstractmethod
    def check(self) -> str:
        """Prove the store serves what the service needs: the collection with its dense and sparse
        vectors, every index of ``PAYLOAD_INDEXES``, and a filtered, ``created_at``-ordered scroll and
        a count that answer. A one-line summary; ``StorageError`` naming what is missing or failing."""

    def _probe(self) -> int:
        """What ``check`` proves answers: a filtered, ``created_at``-ordered scroll and a count, over a
        cube no memory lies in (``PROBE_CUBE``); the count."""
        probe = MemoryFilter(cube_ids=(PROBE_CUBE,))
        self.scroll(probe, limit=1)
        return self.count(probe)

    @abstractmethod
    def upsert(self, points: Sequence[VectorPoint]) -> None: ...

    @abstractmethod
    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """Merge ``payload`` keys into the point's payload (keys not given are kept)."""

    def set_payload_if(self, point_id: str, payload: dict[str, Any], field: str, expected: str) -> bool:
        """``set_payload`` only while the point's ``field`` holds ``expected`` (a string, such as the text a
        value was derived from); True when it did, False when the point is gone or its field changed.
        Here a read, then the write: exact against this process's writers when the caller holds the
        service's write lock. Stores that processes share check and write in one operation."""
        found = self.retrieve([point_id])
        if not found or found[0].payload.get(field) != expected:
            return False
        self.set_payload(point_id, payload)
        return True

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def delete_where(self, flt: MemoryFilter) -> None: ...

    @abstractmethod
    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """The points that exist among ``ids`` (missing ids are skipped), in the given order."""

    @abstractmethod
    def whole_points(self, ids: Sequence[str]) -> list[VectorPoint]:
        """The points that exist among ``ids`` whole, as stored (dense, keyword vector, payload), in the
        given order (missing ids are skipped): what copying a store into another needs (``memos-mcp migrate``)."""

    def scroll(
        self, flt: MemoryFilter, limit: int, offset: int = 0, with_vectors: bool = False
    ) -> list[StoredPoint]:
        """Points matching ``flt`` in the listing order (newest ``created_at`` first, then by id),
        skipping exactly ``offset`` of them: pages of any size visit each point once."""
        return self.retrieve(self._page_ids(flt, limit, offset), with_vectors)

    def walk(self, flt: MemoryFilter, size: int, with_vectors: bool = False) -> Iterator[list[StoredPoint]]:
        """Every point matching ``flt`` in the listing order, in pages of ``size`` (the last may be
        shorter). Each read continues below the last ``created_at`` read, whole groups of points
        sharing a time at once: no offset to skip, so a walk over n points reads each once."""
        below = flt
        pending: list[str] = []
        while True:
            values = self._order_values(below, size, 0)
            if values:
                keys = sorted(self._order_keys(replace(below, created_from=values[-1], created_to=values[0])),
                              key=lambda key: (-key[0], key[1]))
                pending += [point_id for _, point_id in keys]
                below = replace(below, created_to=math.nextafter(values[-1], -math.inf))
            while len(pending) >= size or (pending and not values):
                chunk, pending = pending[:size], pending[size:]
                yield self.retrieve(chunk, with_vectors)
            if not values:
                return

    def scroll_after(self, flt: MemoryFilter, limit: int, after: tuple[float, str] | None,
                     with_vectors: bool = False) -> list[StoredPoint]:
        """The first ``limit`` points matching ``flt`` that come after the key ``after`` =
        (created_at, id) in the listing order (None: from the start): a cursor that points written
        meanwhile (newer, so earlier in the order) never shift."""
        if after is None:
            return self.scroll(flt, limit, with_vectors=with_vectors)
        time, last_id = after
        same = sorted(i for _, i in self._order_keys(replace(flt, created_from=time, created_to=time))
                      if i > last_id)[:limit]
        older = replace(flt, created_to=math.nextafter(time, -math.inf))
        rest = self._page_ids(older, limit - len(same)) if len(same) < limit else []
        return self.retrieve(same + rest, with_vectors)

    def _page_ids(self, flt: MemoryFilter, limit: int, offset: int = 0) -> list[str]:
        # The store orders by created_at alone, which places each time at the right positions but
        # not which of the points sharing a time fill them; those are read whole and sorted by id.
        values = self._order_values(flt, limit, offset)
        if not values:
            return []
        top, bottom = values[0], values[-1]
        above = self.count(replace(flt, created_from=math.nextafter(top, math.inf))) if offset else 0
        keys = sorted(self._order_keys(replace(flt, created_from=bottom, created_to=top)),
                      key=lambda key: (-key[0], key[1]))
        start = offset - above
        return [point_id for _, point_id in keys[start:start + limit]]

    @abstractmethod
    def _order_values(self, flt: MemoryFilter, limit: int, offset: int) -> list[float]:
        """The ``created_at`` of the points at positions ``offset`` .. ``offset + limit - 1`` of
        ``flt`` ordered by ``created_at`` descending (the values; which of equal points is free)."""

    @abstractmethod
    def _order_keys(self, flt: MemoryFilter) -> list[tuple[float, str]]:
        """(created_at, id) of every point matching ``flt``, in no particular order."""

    @abstractmethod
    def count(self, flt: MemoryFilter) -> int: ...

    @abstractmethod
    def exists(self, flt: MemoryFilter) -> bool:
        """Whether any point matches ``flt``: a read of the store itself (another replica's write counts
        at once) that stops at the first match, so that it costs little however many points match."""

    @abstractmethod
    def hybrid_search(self, query: HybridQuery) -> list[ScoredPoint]:
        """Best points first by the fused score of ``HybridQuery``, each with the payload keys it asks for
        (``fields``) and its dense vector unless ``with_dense`` is False."""

    @abstractmethod
    def dense_search(self, vector: list[float], flt: MemoryFilter, limit: int) -> list[ScoredPoint]:
        """Nearest points by cosine similarity alone (for de-duplication and merge candidates)."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Backend name, point count and whatever else helps ``doctor``."""

    @abstractmethod
    def flush(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def build_index(self, timeout: float = 3600.0) -> bool:
        """Build the dense vectors' HNSW index over every point now and wait (at most ``timeout``
        seconds); True if one was built. Backends that index by themselves (a Qdrant server) or never
        (qdrant-client's local mode) build nothing here."""
        return False

    def _writable(self, action: str) -> None:
        """Raise ``DataDirReadOnly`` if this store was opened read-only."""
        if self.read_only:
            raise DataDirReadOnly(f"cannot {action}: the vector store was opened read-only (its data directory "
                                  "is not writable)", action=action)


# The scroll ``check`` makes: a cube id no memory has, so that it reads nothing but runs every part of
# the query the service makes (a keyword filter, a range index ordering).
PROBE_CUBE = "memos-health-probe"
