"""The HNSW index of the vector stores: built past the threshold in a child process while the store
keeps answering, kept across restarts, stopped cleanly at close, recovered after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.core.stores import edge_index
from memos_mcp.core.stores.vector import (
    HybridQuery,
    IndexConfig,
    MemoryFilter,
    SparseVector,
    VectorPoint,
    VectorStore,
)
from memos_mcp.core.stores.vector_client import QdrantClientVectorStore
from memos_mcp.core.stores.vector_edge import EdgeVectorStore
from tests.conftest import ServiceFactory

DIM = 16
CUBE = "cube-a"
EVERYTHING = MemoryFilter(cube_ids=(CUBE,))
WAIT = 300.0  # seconds any wait for a build may take on a loaded machine


def point(n: int, rng: np.random.Generator) -> VectorPoint:
    dense = rng.standard_normal(DIM)
    return VectorPoint(str(uuid.UUID(int=n + 1)), (dense / np.linalg.norm(dense)).tolist(),
                       SparseVector([n % 40, 40 + n % 7], [1.0, 1.0]),
                       {"cube_id": CUBE, "status": "activated", "created_at": float(n), "memory": f"m{n}"})


def fill(store: VectorStore, start: int, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed + start)
    for first in range(start, start + count, 50):
        store.upsert([point(n, rng) for n in range(first, min(start + count, first + 50))])


def until(condition: Callable[[], bool], what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def dense_indexed(store: EdgeVectorStore) -> int:
    """Dense vectors in an HNSW segment: the engine counts indexed dense and sparse vectors together,
    and every point here has a non-empty sparse vector (always indexed)."""
    stats = store.stats()
    return int(stats["index"]["indexed_vectors"]) - int(stats["points"])


def idle(store: EdgeVectorStore) -> bool:
    builder = store._builder
    return builder is None or not builder.is_alive()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Callable[..., EdgeVectorStore]]:
    opened: list[EdgeVectorStore] = []

    def make(threshold: int = 0) -> EdgeVectorStore:
        store = EdgeVectorStore(tmp_path / "vectors", index=IndexConfig(threshold=threshold))
        store.open(DIM)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_the_index_is_built_in_the_background_past_the_threshold_and_a_restart_keeps_it(
        edge: Callable[..., EdgeVectorStore]) -> None:
    store = edge(threshold=200)
    fill(store, 0, 150)
    assert dense_indexed(store) == 0 and idle(store), "below the threshold nothing is built"
    fill(store, 150, 100)
    until(lambda: idle(store) and dense_indexed(store) > 0, "the background build ends")
    indexed, pending = dense_indexed(store), store.stats()["index"]["pending"]
    assert indexed >= 200 and indexed + pending == 250, "points written during the build wait for the next one"
    assert store.count(EVERYTHING) == 250
    store.close()

    again = edge(threshold=200)
    assert idle(again), "a reopened store does not build its index again"
    assert dense_indexed(again) == indexed and again.stats()["index"]["pending"] == pending
    assert again.count(EVERYTHING) == 250


def test_searches_find_the_same_points_before_and_after_the_index_is_built(
        edge: Callable[..., EdgeVectorStore]) -> None:
    store = edge()
    fill(store, 0, 400)
    rng = np.random.default_rng(7)
    queries = [(rng.standard_normal(DIM) / 4).tolist() for _ in range(20)]

    def answers() -> list[list[str]]:
        found = []
        for n, q in enumerate(queries):
            found.append([h.id for h in store.dense_search(q, EVERYTHING, 10)])
            hybrid = HybridQuery(dense=q, sparse=SparseVector([n % 40], [1.0]), filter=EVERYTHING, limit=10)
            found.append([h.id for h in store.hybrid_search(hybrid)])
        return found

    before = answers()
    assert dense_indexed(store) == 0
    assert store.build_index(WAIT)
    assert dense_indexed(store) == 400
    assert answers() == before


def test_reads_and_writes_go_on_while_the_index_is_built_and_the_writes_are_kept(
        edge: Callable[..., EdgeVectorStore]) -> None:
    store = edge(threshold=300)
    fill(store, 0, 250)
    rng = np.random.default_rng(3)
    fill(store, 250, 50)  # past the threshold: the build starts in the background
    until(lambda: store.stats()["index"]["building"], "the build's child process runs")
    searched, written = 0, 300
    deadline = time.monotonic() + WAIT
    while store.stats()["index"]["building"] and time.monotonic() < deadline:
        assert len(store.dense_search(rng.standard_normal(DIM).tolist(), EVERYTHING, 5)) == 5
        searched += 1
        store.upsert([point(written, rng)])
        store.set_payload(str(uuid.UUID(int=written + 1)), {"memory": f"changed {written}"})
        written += 1
    until(lambda: idle(store), "the build ends")
    assert searched >= 3 and written >= 303, "searches and writes were answered while the index was built"
    assert dense_indexed(store) >= 300, "the copy built was swapped in"
    assert store.count(EVERYTHING) == written, "every write made during the build is in the built store"
    last = store.retrieve([str(uuid.UUID(int=written))])
    assert last[0].payload["memory"] == f"changed {written - 1}"


def test_close_during_a_build_stops_it_and_the_store_reopens_whole(
        edge: Callable[..., EdgeVectorStore], tmp_path: Path) -> None:
    store = edge(threshold=100)
    fill(store, 0, 400)
    until(lambda: store.stats()["index"]["building"], "the build's child process runs")
    store.close()
    assert idle(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors"], "no copy is left beside the shard"
    again = edge()
    assert again.count(EVERYTHING) == 400


def test_a_swap_cut_short_is_rolled_back_at_open_and_nothing_acknowledged_is_lost(
        edge: Callable[..., EdgeVectorStore], tmp_path: Path) -> None:
    store = edge()
    fill(store, 0, 120)
    store.close()
    shard = tmp_path / "vectors"
    copy = tmp_path / "copy"
    edge_index.copy_shard(shard, copy)  # what a build copied...
    again = edge()
    fill(again, 120, 30)  # ...before these writes were acknowledged
    again.close()
    # Killed in the swap: the old shard moved aside, the built copy (without the last writes) in place.
    os.replace(shard, edge_index.sibling(shard, edge_index.OLD))
    os.replace(copy, shard)
    (tmp_path / "vectors.index-next-1").mkdir()  # and a build's copy cut short
    # and removals cut short after their rename (``edge_index.discard``): left for ever before
    for doomed in ("vectors.index-trash.doomed-25366-83564321183146", "vectors.index-next-7.doomed-1-2"):
        (tmp_path / doomed / "segments").mkdir(parents=True)
    reopened = edge()
    assert reopened.count(EVERYTHING) == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors"]


KILLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from memos_mcp.core.stores.vector import IndexConfig
    from memos_mcp.core.stores.vector_edge import EdgeVectorStore
    from tests.stores.test_vector_index import DIM, fill
    store = EdgeVectorStore(Path(sys.argv[1]), index=IndexConfig(threshold=100))
    store.open(DIM)
    fill(store, 0, 400)
    deadline = time.monotonic() + 300
    while not store.stats()["index"]["building"] and time.monotonic() < deadline:
        time.sleep(0.02)
    print("building", store._child.pid if store._child else 0, flush=True)
    time.sleep(600)
""")


def test_a_store_killed_during_a_build_opens_with_every_point_and_no_build_left_running(
        edge: Callable[..., EdgeVectorStore], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "vectors")], stdout=subprocess.PIPE,
                               text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[:1] == ["building"] and int(line[1]) > 0
        child = int(line[1])
        os.kill(process.pid, signal.SIGKILL)
        process.wait(WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    until(lambda: not _running(child), "the build's child process ends with its parent", 30)
    store = edge()
    assert store.count(EVERYTHING) == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors"]
    assert len(store.dense_search([1.0] + [0.0] * (DIM - 1), EVERYTHING, 5)) == 5


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_qdrant_client_local_mode_searches_exactly_without_warnings(tmp_path: Path) -> None:
    store = QdrantClientVectorStore("memories", path=str(tmp_path / "qdrant"), index=IndexConfig(threshold=10))
    store.open(DIM)
    try:
        fill(store, 0, 60)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # local mode warns at every search given search parameters
            hits = store.dense_search([1.0] + [0.0] * (DIM - 1), EVERYTHING, 5)
            hybrid = store.hybrid_search(HybridQuery(dense=[0.0, 1.0] + [0.0] * (DIM - 2),
                                                     sparse=SparseVector([3], [1.0]), filter=EVERYTHING, limit=5))
        assert len(hits) == 5 and len(hybrid) == 5
        assert not store.build_index()
    finally:
        store.close()


def test_service_searches_answer_the_same_once_the_index_is_built(make_service: ServiceFactory) -> None:
    service: MemoryService = make_service()  # 30 memories: far below the default threshold
    cube = service.create_cube(ROOT_USER, "notes", cube_id="notes")
    topics = ["pottery class", "hiking trip", "new puppy", "job interview", "piano lessons", "garden tomatoes"]
    service.add_memory(ROOT_USER, cube_id=cube.cube_id, messages=[
        {"role": "user", "content": f"I told Mia about my {topic} on day {day}.", "name": "Caroline"}
        for topic in topics for day in range(5)], async_mode=False)
    questions = [f"What about the {topic}?" for topic in topics]

    def answers() -> list[list[str]]:
        return [[h.id for h in service.search(ROOT_USER, q, cube_ids=["notes"], top_k=5,
                                              include_preference=False).memories] for q in questions]

    before = answers()
    vectors = service.ready()
    built = vectors.build_index(WAIT)
    assert built == (vectors.name == "qdrant-edge")
    assert answers() == before
