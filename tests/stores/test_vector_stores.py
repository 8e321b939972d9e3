"""One contract for every VectorStore backend, run against each on a temporary directory."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.core.stores.vector import (
    HybridQuery,
    MemoryFilter,
    SparseVector,
    VectorPoint,
    VectorStore,
)
from memos_mcp.core.stores.vector_client import QdrantClientVectorStore
from memos_mcp.core.stores.vector_edge import EdgeVectorStore
from memos_mcp.core.stores.vector_pg import PgVectorStore
from memos_mcp.errors import ConfigError, StorageError, StoreLocked

DIM = 8
CUBE = "cube-a"

Factory = Callable[[], VectorStore]


def _edge(path: Path) -> VectorStore:
    return EdgeVectorStore(path / "edge")


def _client(path: Path) -> VectorStore:
    return QdrantClientVectorStore("memories", path=str(path / "qdrant"))


@pytest.fixture(params=[_edge, _client, "pgvector"], ids=["edge", "client-local", "pgvector"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "pgvector":  # a fresh database on the session's PostgreSQL
        url: str = request.getfixturevalue("postgres_url")
        return lambda: PgVectorStore(url, "memories")
    make: Callable[[Path], VectorStore] = request.param
    return lambda: make(tmp_path)


@pytest.fixture
def store(factory: Factory) -> Iterator[VectorStore]:
    opened = factory()
    opened.open(DIM)
    yield opened
    opened.close()


def test_a_collection_exists_once_opened_and_asking_creates_nothing(factory: Factory, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert not factory().collection_exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nor in the database: the open below is fresh
    opened = factory()
    opened.open(DIM)
    try:
        assert opened.collection_exists() and factory().collection_exists()
        assert opened.repaired == ()  # the open made the collection whole: nothing was there half-made
    finally:
        opened.close()


def pid(n: int) -> str:
    return str(uuid.UUID(int=n))


def axis(i: int, sign: float = 1.0) -> list[float]:
    return [sign if j == i else 0.0 for j in range(DIM)]


def terms(*indices: int) -> SparseVector:
    return SparseVector(list(indices), [1.0] * len(indices))


def point(
    n: int, dense: list[float] | None = None, sparse: SparseVector | None = None, **payload: Any
) -> VectorPoint:
    base: dict[str, Any] = {
        "cube_id": CUBE,
        "status": "activated",
        "memory_type": "LongTermMemory",
        "kind": "fact",
        "tags": [],
        "conversation_id": "conv-1",
        "user_id": "alice",
        "created_at": float(n),
        "event_time": float(n),
        "content_hash": f"hash-{n}",
        "metadata": {},
    }
    return VectorPoint(pid(n), dense or axis(0), sparse or terms(n), base | payload)


def ids(points: Any) -> list[str]:
    return [p.id for p in points]


def hybrid(store: VectorStore, **overrides: Any) -> list[Any]:
    query: dict[str, Any] = {
        "dense": axis(0),
        "sparse": terms(1, 2),
        "filter": MemoryFilter(cube_ids=(CUBE,)),
        "limit": 10,
    }
    return store.hybrid_search(HybridQuery(**(query | overrides)))


def test_points_written_before_close_are_there_after_reopening(factory: Factory) -> None:
    first = factory()
    first.open(DIM)
    first.upsert([point(1), point(2)])
    first.flush()
    first.close()

    again = factory()
    again.open(DIM)
    try:
        assert ids(again.retrieve([pid(1), pid(2)])) == [pid(1), pid(2)]
        assert again.stats()["points"] == 2
    finally:
        again.close()


def test_reopening_with_another_dimension_raises_a_config_error_naming_both(factory: Factory) -> None:
    first = factory()
    first.open(DIM)
    first.close()

    with pytest.raises(ConfigError) as raised:
        factory().open(DIM * 2)
    assert str(DIM) in raised.value.message
    assert str(DIM * 2) in raised.value.message


def test_stats_name_the_backend_and_count_the_points(store: VectorStore) -> None:
    store.upsert([point(1), point(2), point(3)])

    stats = store.stats()

    assert stats["backend"] == store.name
    assert stats["points"] == 3


def test_retrieve_keeps_the_requested_order_and_skips_missing_ids(store: VectorStore) -> None:
    store.upsert([point(1), point(2), point(3)])

    found = store.retrieve([pid(3), pid(99), pid(1)])

    assert ids(found) == [pid(3), pid(1)]
    assert found[0].payload["content_hash"] == "hash-3"
    assert found[0].dense is None


def test_retrieve_with_vectors_returns_the_normalised_dense_vector(store: VectorStore) -> None:
    store.upsert([point(1, dense=[3.0, 4.0, 0, 0, 0, 0, 0, 0])])

    (found,) = store.retrieve([pid(1)], with_vectors=True)

    assert found.dense == pytest.approx([0.6, 0.8, 0, 0, 0, 0, 0, 0])


def test_upserting_an_existing_id_replaces_the_point(store: VectorStore) -> None:
    store.upsert([point(1, kind="fact")])
    store.upsert([point(1, kind="event")])

    (found,) = store.retrieve([pid(1)])

    assert found.payload["kind"] == "event"
    assert store.count(MemoryFilter(cube_ids=(CUBE,))) == 1


def test_set_payload_merges_keys_and_keeps_the_others(store: VectorStore) -> None:
    store.upsert([point(1)])

    store.set_payload(pid(1), {"status": "archived", "tags": ["new"]})

    (found,) = store.retrieve([pid(1)])
    assert found.payload["status"] == "archived"
    assert found.payload["tags"] == ["new"]
    assert found.payload["content_hash"] == "hash-1"


def test_a_payload_change_of_status_kind_or_cube_moves_the_point_between_filtered_searches(
    store: VectorStore,
) -> None:
    store.upsert([point(1), point(2)])

    def found(cube: str = CUBE, status: str = "activated", kinds: tuple[str, ...] = ("fact", "document")) -> list[str]:
        flt = MemoryFilter(cube_ids=(cube,), status=(status,), kinds=kinds)
        assert set(ids(store.scroll(flt, limit=10))) == set(ids(hybrid(store, sparse=terms(1, 2), filter=flt)))
        return sorted(ids(hybrid(store, sparse=terms(1, 2), filter=flt)))

    store.set_payload(pid(1), {"status": "archived"})
    assert (found(), found(status="archived")) == ([pid(2)], [pid(1)])
    store.set_payload(pid(1), {"kind": "preference", "tags": ["moved"]})
    assert (found(status="archived"), found(status="archived", kinds=("preference",))) == ([], [pid(1)])
    store.set_payload(pid(1), {"cube_id": "cube-b", "status": "activated"})
    assert (found(), found("cube-b", kinds=("preference",)), found("cube-b")) == ([pid(2)], [pid(1)], [])


def test_a_conditional_payload_change_applies_only_while_the_field_holds_what_was_read(store: VectorStore) -> None:
    store.upsert([point(1)])
    (read,) = store.retrieve([pid(1)])
    store.set_payload(pid(1), {"content_hash": "changed by another writer"})

    assert not store.set_payload_if(pid(1), {"status": "archived"}, "content_hash", read.payload["content_hash"])
    assert not store.set_payload_if(pid(42), {"status": "archived"}, "content_hash", "hash-42")  # no such point
    (kept,) = store.retrieve([pid(1)])
    assert kept.payload["status"] == "activated"
    assert store.set_payload_if(pid(1), {"status": "archived"}, "content_hash", "changed by another writer")
    (changed,) = store.retrieve([pid(1)])
    assert changed.payload["status"] == "archived" and changed.payload["tags"] == kept.payload["tags"]


def test_set_payload_on_a_missing_point_raises_a_storage_error(store: VectorStore) -> None:
    with pytest.raises(StorageError):
        store.set_payload(pid(42), {"status": "archived"})


def test_delete_removes_only_the_given_points(store: VectorStore) -> None:
    store.upsert([point(1), point(2), point(3)])

    store.delete([pid(1), pid(3), pid(99)])

    assert ids(store.retrieve([pid(1), pid(2), pid(3)])) == [pid(2)]


def test_upserting_or_deleting_nothing_changes_nothing(store: VectorStore) -> None:
    store.upsert([point(1)])

    store.upsert([])
    store.delete([])

    assert store.count(MemoryFilter(cube_ids=(CUBE,))) == 1


def test_delete_where_removes_only_matching_points(store: VectorStore) -> None:
    store.upsert([point(1), point(2, cube_id="cube-b"), point(3, conversation_id="conv-2")])

    store.delete_where(MemoryFilter(cube_ids=(CUBE,), conversation_id="conv-1"))

    assert ids(store.retrieve([pid(1), pid(2), pid(3)])) == [pid(2), pid(3)]


FILTER_POINTS = [
    point(1, status="activated", memory_type="LongTermMemory", kind="fact", tags=["work", "urgent"],
          conversation_id="c1", user_id="alice", event_time=100.0,
          metadata={"pinned": True, "priority": 1, "source": "chat", "weight": 0.5}),
    point(2, status="archived", memory_type="UserMemory", kind="preference", tags=["home"],
          conversation_id="c2", user_id="bob", event_time=200.0,
          metadata={"pinned": False, "priority": 2, "source": "doc", "weight": 1.5}),
    point(3, cube_id="cube-b", status="activated", memory_type="LongTermMemory", kind="fact", tags=[],
          conversation_id="c1", user_id="alice", event_time=300.0,
          metadata={"pinned": True, "priority": 2, "source": "chat"}),
    point(4, status="activated", memory_type="WorkingMemory", kind="event", tags=["work"],
          conversation_id="c2", user_id="bob", event_time=400.0,
          metadata={"priority": 3, "origin.kind": "import"}),
]
BOTH_CUBES = (CUBE, "cube-b")


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"cube_ids": (CUBE,), "status": ()}, {1, 2, 4}),
        ({"cube_ids": ("cube-b",), "status": ()}, {3}),
        ({"cube_ids": (CUBE,)}, {1, 4}),
        ({"cube_ids": BOTH_CUBES, "status": ("archived",)}, {2}),
        ({"cube_ids": BOTH_CUBES, "status": (), "memory_types": ("UserMemory", "WorkingMemory")}, {2, 4}),
        ({"cube_ids": BOTH_CUBES, "kinds": ("fact",)}, {1, 3}),
        ({"cube_ids": BOTH_CUBES, "status": (), "tags_any": ("urgent", "home")}, {1, 2}),
        ({"cube_ids": BOTH_CUBES, "status": (), "tags_any": ("work",)}, {1, 4}),  # one value in an array field
        ({"cube_ids": BOTH_CUBES, "status": (), "tags_any": ("nowhere",)}, set()),
        ({"cube_ids": BOTH_CUBES, "status": (), "conversation_id": "c2"}, {2, 4}),
        ({"cube_ids": BOTH_CUBES, "user_id": "alice"}, {1, 3}),
        ({"cube_ids": BOTH_CUBES, "content_hash": "hash-4"}, {4}),
        ({"cube_ids": BOTH_CUBES, "status": (), "event_time_from": 200.0, "event_time_to": 300.0}, {2, 3}),
        ({"cube_ids": BOTH_CUBES, "event_time_from": 300.0}, {3, 4}),
        ({"cube_ids": BOTH_CUBES, "event_time_to": 100.0}, {1}),
        # The kinds of a search's passes: facts and documents together, preferences apart, and others.
        ({"cube_ids": BOTH_CUBES, "kinds": ("fact", "document")}, {1, 3}),
        ({"cube_ids": BOTH_CUBES, "kinds": ("fact", "event")}, {1, 3, 4}),
        ({"cube_ids": BOTH_CUBES, "kinds": ("document",)}, set()),
        ({"cube_ids": BOTH_CUBES, "status": ("activated", "archived"), "kinds": ("preference",)}, {2}),
        ({"cube_ids": (CUBE,), "kinds": ("preference", "fact", "document", "event")}, {1, 4}),
    ],
    ids=["cube", "other-cube", "default-status", "status", "memory-types", "kinds", "tags-any",
         "one-tag", "unknown-tag", "conversation", "user", "content-hash", "time-range", "time-from", "time-to",
         "memory-pass", "part-of-the-pass-and-another-kind", "kind-absent", "preference-pass-any-status",
         "every-kind"],
)
def test_each_filter_condition_keeps_only_matching_points(
    store: VectorStore, conditions: dict[str, Any], expected: set[int]
) -> None:
    store.upsert(FILTER_POINTS)
    flt = MemoryFilter(**conditions)

    assert store.count(flt) == len(expected)
    assert set(ids(store.scroll(flt, limit=10))) == {pid(n) for n in expected}
    assert set(ids(store.dense_search(axis(0), flt, limit=10))) == {pid(n) for n in expected}
    # Every point matches the query's vectors, so the filter alone decides what the fused search returns.
    assert set(ids(hybrid(store, sparse=terms(1, 2, 3, 4), filter=flt))) == {pid(n) for n in expected}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("pinned", True),), {1, 3}),
        ((("pinned", False),), {2}),
        ((("priority", 2),), {2, 3}),
        ((("source", "chat"),), {1, 3}),
        ((("weight", 1.5),), {2}),
        ((("origin.kind", "import"),), {4}),
        ((("pinned", True), ("priority", 2)), {3}),
        ((("source", "nowhere"),), set()),
    ],
    ids=["bool-true", "bool-false", "int", "str", "float", "dotted-key", "two-pairs", "no-match"],
)
def test_a_metadata_filter_matches_only_equal_values(
    store: VectorStore, metadata: tuple[tuple[str, Any], ...], expected: set[int]
) -> None:
    store.upsert(FILTER_POINTS)
    flt = MemoryFilter(cube_ids=BOTH_CUBES, status=(), metadata=metadata)

    assert store.count(flt) == len(expected)
    assert set(ids(store.scroll(flt, limit=10))) == {pid(n) for n in expected}
    assert set(ids(hybrid(store, sparse=terms(1, 2, 3, 4), filter=flt))) == {pid(n) for n in expected}


def test_scroll_returns_newest_first_and_skips_the_offset(store: VectorStore) -> None:
    store.upsert([point(n, created_at=float(n * 10)) for n in (3, 1, 5, 2, 4)])
    flt = MemoryFilter(cube_ids=(CUBE,))

    assert ids(store.scroll(flt, limit=10)) == [pid(n) for n in (5, 4, 3, 2, 1)]
    assert ids(store.scroll(flt, limit=2, offset=1)) == [pid(4), pid(3)]
    assert store.scroll(flt, limit=2, offset=5) == []


def test_scroll_with_vectors_returns_the_dense_vector(store: VectorStore) -> None:
    store.upsert([point(1, dense=axis(2))])

    (found,) = store.scroll(MemoryFilter(cube_ids=(CUBE,)), limit=1, with_vectors=True)

    assert found.dense == pytest.approx(axis(2))


# Query: dense = axis 0, keywords {1, 2}. Each point matches one side, both, or neither.
BOTH, DENSE_ONLY, SPARSE_ONLY, NEITHER = 1, 2, 3, 4
RANKING_POINTS = [
    point(BOTH, dense=axis(0), sparse=terms(1, 2)),
    point(DENSE_ONLY, dense=axis(0), sparse=terms(50)),
    point(SPARSE_ONLY, dense=axis(1), sparse=terms(1, 2)),
    point(NEITHER, dense=axis(0, sign=-1.0), sparse=terms(60)),
]


def _bm25_idf(docs: int, with_term: int) -> float:
    return math.log(1 + (docs - with_term + 0.5) / (with_term + 0.5))


def test_hybrid_search_ranks_both_signals_over_one_and_one_over_none(store: VectorStore) -> None:
    store.upsert(RANKING_POINTS)

    found = hybrid(store)

    assert ids(found) == [pid(n) for n in (BOTH, DENSE_ONLY, SPARSE_ONLY, NEITHER)]
    assert all(0.0 <= hit.score <= 1.0 for hit in found)


def test_hybrid_search_scores_follow_the_documented_formula(store: VectorStore) -> None:
    store.upsert(RANKING_POINTS)
    bm25 = 2 * _bm25_idf(docs=4, with_term=2)
    keyword_part = bm25 / (bm25 + 8.0)

    scores = {hit.id: hit.score for hit in hybrid(store, dense_weight=0.7, sparse_weight=0.3)}

    assert scores[pid(BOTH)] == pytest.approx(0.7 + 0.3 * keyword_part, rel=1e-4)
    assert scores[pid(DENSE_ONLY)] == pytest.approx(0.7, rel=1e-4)
    assert scores[pid(SPARSE_ONLY)] == pytest.approx(0.3 * keyword_part, rel=1e-4)
    assert scores[pid(NEITHER)] == pytest.approx(0.0, abs=1e-6)


def test_the_keyword_score_weighs_each_shared_term_by_its_own_query_and_point_weights(store: VectorStore) -> None:
    # point 1 holds terms 7, 3, 9 (in that order) with distinct weights; point 2 only term 9; the query
    # asks 9, 3 and 5 (5 no point has) with distinct weights: each shared term counts its own pair
    store.upsert([point(1, sparse=SparseVector([7, 3, 9], [0.5, 2.0, 3.0])),
                  point(2, sparse=SparseVector([9], [1.5]))])
    query = SparseVector([9, 3, 5], [0.25, 4.0, 8.0])
    bm25_1 = 4.0 * _bm25_idf(docs=2, with_term=1) * 2.0 + 0.25 * _bm25_idf(docs=2, with_term=2) * 3.0
    bm25_2 = 0.25 * _bm25_idf(docs=2, with_term=2) * 1.5

    scores = {hit.id: hit.score for hit in hybrid(store, sparse=query, dense_weight=0.0, sparse_weight=1.0)}

    assert scores[pid(1)] == pytest.approx(bm25_1 / (bm25_1 + 8.0), rel=1e-4)
    assert scores[pid(2)] == pytest.approx(bm25_2 / (bm25_2 + 8.0), rel=1e-4)


def test_hybrid_search_with_only_keyword_weight_ranks_keyword_matches_first(store: VectorStore) -> None:
    store.upsert(RANKING_POINTS)

    found = hybrid(store, dense_weight=0.0, sparse_weight=1.0)

    assert set(ids(found[:2])) == {pid(BOTH), pid(SPARSE_ONLY)}
    assert found[0].score == pytest.approx(found[1].score)


def test_the_conversation_boost_lifts_that_conversation_above_an_equal_point(store: VectorStore) -> None:
    store.upsert([point(1, conversation_id="conv-1", sparse=terms(1)),
                  point(2, conversation_id="conv-2", sparse=terms(1))])

    plain = hybrid(store)
    boosted = hybrid(store, boost_conversation_id="conv-2", conversation_boost=0.1)

    assert plain[0].score == pytest.approx(plain[1].score)
    assert ids(boosted) == [pid(2), pid(1)]
    assert boosted[0].score == pytest.approx(boosted[1].score + 0.1, rel=1e-4)


def test_hybrid_search_returns_each_hits_stored_dense_vector(store: VectorStore) -> None:
    store.upsert(RANKING_POINTS)

    found = hybrid(store)

    vectors = {p.id: p.dense for p in RANKING_POINTS}
    assert found and all(hit.dense == pytest.approx(vectors[hit.id]) for hit in found)


def test_hybrid_search_honours_the_limit_and_the_filter(store: VectorStore) -> None:
    store.upsert([*RANKING_POINTS, point(9, dense=axis(0), sparse=terms(1, 2), cube_id="cube-b")])

    found = hybrid(store, limit=2)

    assert ids(found) == [pid(BOTH), pid(DENSE_ONLY)]


def test_hybrid_search_returns_the_payload(store: VectorStore) -> None:
    store.upsert(RANKING_POINTS)

    (top, *_) = hybrid(store, limit=1)

    assert top.payload["content_hash"] == f"hash-{BOTH}"


def test_a_hybrid_search_asking_for_some_fields_and_no_vector_ranks_and_scores_as_a_whole_one(
        store: VectorStore) -> None:
    store.upsert([VectorPoint(p.id, p.dense, p.sparse, p.payload | {"memory": f"text {p.id}"})
                  for p in RANKING_POINTS])

    whole = hybrid(store, dense_weight=0.7, sparse_weight=0.3)
    narrow = hybrid(store, dense_weight=0.7, sparse_weight=0.3, fields=("memory",), with_dense=False)

    assert [(p.id, p.score) for p in narrow] == [(p.id, pytest.approx(p.score)) for p in whole]
    assert [p.payload["memory"] for p in narrow] == [f"text {p.id}" for p in whole]
    assert all(p.dense is None for p in narrow) and all(p.dense is not None for p in whole)


def test_exists_tells_whether_any_point_matches_the_filter(store: VectorStore) -> None:
    preferences = MemoryFilter(cube_ids=(CUBE,), kinds=("preference",))
    store.upsert([point(1), point(2, kind="preference", status="archived"), point(3, kind="preference",
                                                                                   cube_id="cube-b")])

    assert store.exists(MemoryFilter(cube_ids=(CUBE,))) and not store.exists(preferences)
    assert store.exists(MemoryFilter(cube_ids=(CUBE, "cube-b"), kinds=("preference",)))
    assert store.exists(MemoryFilter(cube_ids=(CUBE,), kinds=("preference",), status=("archived",)))

    store.upsert([point(4, kind="preference")])
    assert store.exists(preferences)
    store.delete([pid(4)])
    assert not store.exists(preferences)


def test_dense_search_ranks_by_cosine_similarity(store: VectorStore) -> None:
    diagonal = [1.0, 1.0, 0, 0, 0, 0, 0, 0]
    store.upsert([point(1, dense=axis(1)), point(2, dense=diagonal), point(3, dense=axis(0))])

    found = store.dense_search(axis(0), MemoryFilter(cube_ids=(CUBE,)), limit=2)

    assert ids(found) == [pid(3), pid(2)]
    assert [hit.score for hit in found] == pytest.approx([1.0, math.sqrt(0.5)])


def test_a_second_edge_store_on_an_open_path_raises_store_locked(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path / "edge")
    first.open(DIM)
    try:
        with pytest.raises(StoreLocked):
            EdgeVectorStore(tmp_path / "edge").open(DIM)
    finally:
        first.close()


def _batch(store: VectorStore, count: int, created_at: float, first: int = 1) -> list[str]:
    """``count`` points written together: one ``created_at`` for all, as one add of many messages."""
    points = [point(n, created_at=created_at) for n in range(first, first + count)]
    store.upsert(points)
    return [p.id for p in points]


@pytest.mark.parametrize("size", [1, 7, 128, 200])
def test_offset_pages_visit_each_point_once_when_points_share_a_creation_time(
    store: VectorStore, size: int
) -> None:
    older = _batch(store, 5, 100.0, first=1000)
    batch = _batch(store, 150 if size < 100 else 600, 200.0)
    flt = MemoryFilter(cube_ids=(CUBE,))
    seen: list[str] = []
    for offset in range(0, len(batch) + len(older), size):
        seen += ids(store.scroll(flt, limit=size, offset=offset))
    assert seen == sorted(batch) + sorted(older)  # newest first, then by id


@pytest.mark.parametrize("size", [1, 7, 500])
def test_walking_a_filter_visits_each_point_once_in_the_same_order_as_offsets(store: VectorStore, size: int) -> None:
    _batch(store, 300, 200.0)
    _batch(store, 3, 100.0, first=3000)
    _batch(store, 40, 300.0, first=2000)
    store.upsert([point(5000, created_at=250.0, cube_id="cube-b")])
    flt = MemoryFilter(cube_ids=(CUBE,))
    walked = [p.id for page in store.walk(flt, size) for p in page]
    assert len(walked) == 343
    assert walked == ids(store.scroll(flt, limit=343))
    assert all(len(page) <= size for page in store.walk(flt, size))


def test_a_cursor_continues_after_its_key_although_newer_points_arrive(store: VectorStore) -> None:
    batch = _batch(store, 30, 200.0)
    _batch(store, 4, 100.0, first=100)
    flt = MemoryFilter(cube_ids=(CUBE,))
    first = store.scroll_after(flt, 7, None)
    _batch(store, 5, 300.0, first=200)  # newer: before the cursor, so it shifts nothing
    seen = [p.id for p in first]
    after = (float(first[-1].payload["created_at"]), first[-1].id)
    while page := store.scroll_after(flt, 7, after):
        seen += [p.id for p in page]
        after = (float(page[-1].payload["created_at"]), page[-1].id)
    assert seen == sorted(batch) + sorted(pid(n) for n in range(100, 104))


def test_whole_points_read_back_the_dense_and_keyword_vectors_and_payload_as_stored(store: VectorStore) -> None:
    stored = [point(1, dense=axis(1), sparse=SparseVector([7, 300_000_000], [0.25, 1.5]), tags=["a"]),
              point(2, dense=axis(2, -1.0), sparse=SparseVector([], []))]
    store.upsert(stored)
    found = store.whole_points([pid(2), pid(9), pid(1)])  # in the order asked, a missing id skipped
    assert [p.id for p in found] == [pid(2), pid(1)]
    for got, want in zip(found, reversed(stored), strict=True):
        assert got.payload == want.payload
        assert got.dense == pytest.approx(want.dense)
        assert got.sparse.indices == want.sparse.indices
        assert got.sparse.values == pytest.approx(want.sparse.values)
    assert store.whole_points([]) == []
