"""The dynamic embedding batcher over the real local model: concurrent callers share model calls (seen
in the batcher's own counts), each gets the vectors the model gives its texts alone, errors reach
every caller of the failed call and nobody else, and nothing waits forever.

``GatedModel`` is a test embedder (the abstract ``Embedder`` implemented here, over the real model):
its calls can be held at a gate, so a test knows that a model call is in flight while others arrive,
and it fails on a chosen text. Every wait is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest

from memos_mcp.config import Settings
from memos_mcp.core.embed_batch import BatchedEmbedder
from memos_mcp.core.embedder import Embedder, LocalOnnxEmbedder
from memos_mcp.core.factory import build_embedder
from memos_mcp.core.models import AddResult
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.errors import BackendUnavailable
from tests.conftest import settings_for
from tests.http.support import ADMIN_KEY, TIMEOUT, auth, running_app

BOUND = 60.0  # seconds any wait of these tests may take at most
QUERIES = ["When did Caroline go to the LGBTQ support group?", "What is my dog called", "hi",
           "Where did Melanie paint a sunset with her family after the long charity race in May?",
           "the user's favourite book", "Which instrument does Jon play?", "12345 !!", "Did I visit Porto?"]


class GatedModel(Embedder):
    """The real model behind a gate: each call records its texts, says it entered, and waits for
    ``gate`` when ``hold`` is set; a text equal to ``fail_on`` makes the call fail."""

    def __init__(self, model: LocalOnnxEmbedder, fail_on: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.model_id = model.model_id
        self.fail_on = fail_on
        self.calls: list[list[str]] = []
        self.kinds: list[bool] = []  # whether each call embedded search queries
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.hold = False

    def _load(self) -> int:
        return self.model.dimension

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._call(texts, self.model.embed, query=False)

    def _embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self._call(texts, self.model.embed_queries, query=True)

    def _call(self, texts: list[str], embed: Callable[[list[str]], list[list[float]]],
              query: bool) -> list[list[float]]:
        self.calls.append(texts)
        self.kinds.append(query)
        self.entered.set()
        if self.hold:
            assert self.gate.wait(BOUND), "the test never opened the gate"
        if self.fail_on in texts:
            raise BackendUnavailable(f"the model refused {self.fail_on!r}")
        return embed(texts)

    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def model() -> Iterator[LocalOnnxEmbedder]:
    embedder = LocalOnnxEmbedder(threads=2, batch_size=4)  # several sub-batches for a dozen texts
    embedder.load()
    yield embedder
    embedder.close()


def run_threads(calls: list[Callable[[], object]]) -> list[object]:
    """Each call in its own thread, released together; what each returned or raised, in order."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait(BOUND)
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a caller is still waiting"
    return results


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def same(a: object, b: list[list[float]]) -> bool:
    assert isinstance(a, list)
    return bool(np.allclose(np.asarray(a), np.asarray(b), atol=1e-5))


def test_callers_that_arrive_together_share_one_model_call_and_get_their_own_vectors(
        model: LocalOnnxEmbedder) -> None:
    texts = [[q, q.upper()] for q in QUERIES]  # 8 callers, 16 texts
    batcher = BatchedEmbedder(model, max_texts=16, max_wait=BOUND / 4)  # the 16th text ends the wait
    batcher.load()
    results = run_threads([lambda t=t: batcher.embed(t) for t in texts])
    stats = batcher.stats
    assert stats.requests == 8 and stats.texts == 16
    assert stats.model_calls < stats.requests
    assert stats.largest > 2
    for result, own in zip(results, texts, strict=True):
        assert same(result, model.embed(own))


def test_without_a_wait_callers_arriving_during_a_model_call_join_the_next_one(model: LocalOnnxEmbedder) -> None:
    inner = GatedModel(model)
    batcher = BatchedEmbedder(inner, max_texts=64, max_wait=0)
    batcher.load()
    inner.hold = True
    first: list[object] = []
    leader = threading.Thread(target=lambda: first.append(batcher.embed([QUERIES[0]])), daemon=True)
    leader.start()
    assert inner.entered.wait(BOUND)
    later: list[object] = [None] * 5
    followers = [threading.Thread(target=lambda i=i: later.__setitem__(i, batcher.embed([QUERIES[i + 1]])),
                                  daemon=True) for i in range(5)]
    for thread in followers:
        thread.start()
    wait_until(lambda: batcher.stats.requests == 6)
    inner.gate.set()
    for thread in [leader, *followers]:
        thread.join(BOUND)
        assert not thread.is_alive()
    assert inner.calls[0] == [QUERIES[0]]
    assert sorted(inner.calls[1]) == sorted(QUERIES[1:6])  # the five that waited: one call
    assert batcher.stats.model_calls == 2
    assert same(first[0], model.embed([QUERIES[0]]))
    for i, vectors in enumerate(later):
        assert same(vectors, model.embed([QUERIES[i + 1]]))


def test_a_caller_alone_pays_no_wait_and_gets_the_unbatched_vectors(model: LocalOnnxEmbedder) -> None:
    batcher = BatchedEmbedder(model, max_texts=64, max_wait=0)
    for query in QUERIES:
        assert same(batcher.embed([query, query.lower()]), model.embed([query, query.lower()]))
    assert batcher.embed([]) == []
    assert batcher.stats.model_calls == len(QUERIES)
    assert same([batcher.embed_query(QUERIES[0])], model.embed_queries([QUERIES[0]]))


def test_queued_queries_and_texts_to_store_never_share_a_model_call(model: LocalOnnxEmbedder) -> None:
    """The model embeds search queries another way (its int8 query model): a call takes the oldest
    request and the queued ones of its kind; the others wait for the next call."""
    inner = GatedModel(model)
    batcher = BatchedEmbedder(inner, max_texts=64, max_wait=0)
    batcher.load()
    inner.hold = True
    leader = threading.Thread(target=lambda: batcher.embed([QUERIES[0]]), daemon=True)
    leader.start()
    assert inner.entered.wait(BOUND)
    kinds = [True, False, True, False, True]  # whether each later caller searches (else it stores)
    later: list[object] = [None] * len(kinds)

    def call(i: int) -> None:
        text = [QUERIES[i + 1]]
        later[i] = batcher.embed_queries(text) if kinds[i] else batcher.embed(text)

    followers = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(kinds))]
    for thread in followers:
        thread.start()
    wait_until(lambda: batcher.stats.requests == 1 + len(kinds))
    inner.gate.set()
    for thread in [leader, *followers]:
        thread.join(BOUND)
        assert not thread.is_alive()
    assert inner.kinds in ([False, True, False], [False, False, True])
    assert sorted(len(c) for c in inner.calls[1:]) == [2, 3]  # the two texts to store, the three queries
    for i, vectors in enumerate(later):
        text = [QUERIES[i + 1]]
        assert same(vectors, model.embed_queries(text) if kinds[i] else model.embed(text))


def test_a_request_larger_than_a_batch_goes_to_the_model_at_once(model: LocalOnnxEmbedder) -> None:
    batcher = BatchedEmbedder(model, max_texts=4, max_wait=0)
    vectors = batcher.embed(QUERIES)
    assert same(vectors, model.embed(QUERIES))
    assert batcher.stats.direct == 1 and batcher.stats.model_calls == 0


def test_queued_requests_beyond_max_texts_wait_for_the_next_call(model: LocalOnnxEmbedder) -> None:
    inner = GatedModel(model)
    batcher = BatchedEmbedder(inner, max_texts=4, max_wait=0)
    batcher.load()
    inner.hold = True
    results: list[object] = [None] * 7
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.embed([QUERIES[i], "x"])),
                                daemon=True) for i in range(7)]
    threads[0].start()
    assert inner.entered.wait(BOUND)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: batcher.stats.requests == 7)
    inner.gate.set()
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive()
    assert all(len(call) <= 4 for call in inner.calls)
    assert batcher.stats.model_calls == 4  # 1, then the six others two by two
    for i, vectors in enumerate(results):
        assert same(vectors, model.embed([QUERIES[i], "x"]))


def test_a_failed_model_call_fails_every_caller_in_it_and_no_other(model: LocalOnnxEmbedder) -> None:
    inner = GatedModel(model, fail_on="boom")
    batcher = BatchedEmbedder(inner, max_texts=3, max_wait=0)
    batcher.load()
    inner.hold = True
    results: list[object] = [None] * 4
    texts = [[QUERIES[0]], ["boom"], [QUERIES[1]], [QUERIES[2], QUERIES[3]]]

    def call(i: int) -> None:
        try:
            results[i] = batcher.embed(texts[i])
        except BackendUnavailable as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(4)]
    threads[0].start()
    assert inner.entered.wait(BOUND)
    for arrived, thread in enumerate(threads[1:], start=2):
        thread.start()
        wait_until(lambda n=arrived: batcher.stats.requests == n)  # in this order
    inner.gate.set()
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a caller waits forever after a failed call"
    assert same(results[0], model.embed(texts[0]))
    assert inner.calls[1] == ["boom", QUERIES[1]]  # one call for the next two, the third did not fit
    assert isinstance(results[1], BackendUnavailable) and isinstance(results[2], BackendUnavailable)
    assert "boom" in str(results[2])
    assert same(results[3], model.embed(texts[3]))
    assert same(batcher.embed([QUERIES[4]]), model.embed([QUERIES[4]]))  # and the batcher still works


def test_the_leaders_own_failure_reaches_it_and_the_queue_goes_on(model: LocalOnnxEmbedder) -> None:
    inner = GatedModel(model, fail_on="boom")
    batcher = BatchedEmbedder(inner, max_texts=8, max_wait=0)
    results = run_threads([lambda: batcher.embed(["boom"]), *(lambda q=q: batcher.embed([q]) for q in QUERIES[:5])])
    assert isinstance(results[0], BackendUnavailable)
    for result, query in zip(results[1:], QUERIES[:5], strict=True):
        if isinstance(result, BackendUnavailable):  # it shared the failed call
            assert any("boom" in call and query in call for call in inner.calls)
        else:
            assert same(result, model.embed([query]))


def test_a_closed_batcher_loads_the_model_again_on_the_next_call(model: LocalOnnxEmbedder) -> None:
    inner = LocalOnnxEmbedder(threads=1)
    batcher = BatchedEmbedder(inner, max_texts=8)
    before = batcher.embed([QUERIES[0]])
    batcher.close()
    assert same(batcher.embed([QUERIES[0]]), before)
    assert batcher.dimension == 384 and batcher.model_id == inner.model_id
    batcher.close()


def test_the_configured_embedder_batches_unless_turned_off(clean_environment: None) -> None:
    default = build_embedder(Settings())
    assert isinstance(default, BatchedEmbedder) and default.max_texts == 64 and default.max_wait == 0
    assert isinstance(default.inner, LocalOnnxEmbedder) and default.inner.spin is False
    tuned = build_embedder(Settings(embedder={"batch_max_texts": 16, "batch_wait_ms": 2, "threads": 1,
                                              "inter_threads": 2, "parallel": True, "spin": True}))
    assert isinstance(tuned, BatchedEmbedder) and tuned.max_texts == 16 and tuned.max_wait == pytest.approx(0.002)
    assert isinstance(tuned.inner, LocalOnnxEmbedder)
    onnx = tuned.inner
    assert (onnx.threads, onnx.inter_threads, onnx.parallel, onnx.spin) == (1, 2, True, True)
    assert len(tuned.embed([QUERIES[0]])[0]) == 384  # the session takes these options
    tuned.close()
    assert isinstance(build_embedder(Settings(embedder={"batch_max_texts": 1})), LocalOnnxEmbedder)


def test_concurrent_rest_searches_share_model_calls_and_answer_as_searches_one_by_one(
        tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> None:
    facts = ["Ana lives in Porto with her cat Miso.", "Ben bought a red bicycle at the market.",
             "Chloe read 'The Left Hand of Darkness' twice.", "Dev fixed the kitchen sink on Sunday."]
    batcher = BatchedEmbedder(embedder, max_texts=256, max_wait=0.2)  # a wait: arrivals within it share
    answers: dict[str, list[Any]] = {}
    for name, model in (("alone", embedder), ("batched", batcher)):
        settings = Settings(data_dir=tmp_path / name, server={"host": "127.0.0.1", "admin_key": ADMIN_KEY},
                            rest={"rate_limits": []})
        with running_app(settings, model) as app:
            for fact in facts:
                app.service.add_memory(ROOT_USER, user_id="default", memory_content=fact)
            with httpx2.Client(base_url=app.url, headers=auth(ADMIN_KEY), timeout=TIMEOUT) as http:
                def search(query: str, http: httpx2.Client = http) -> list[tuple[str, float]]:
                    answer = http.post("/product/search", json={"query": query, "user_id": "default"})
                    assert answer.status_code == 200, answer.text
                    hits = answer.json()["data"]["text_mem"][0]["memories"]
                    return [(hit["memory"], hit["metadata"]["relativity"]) for hit in hits]
                answers[name] = run_threads([lambda q=q: search(q) for q in QUERIES])
                metrics = http.get("/v1/metrics").json()["stores"]["embedding_batches"]
                text = http.get("/v1/metrics", headers={"Accept": "text/plain"}).text
        if name == "batched":
            assert metrics["requests"] >= len(QUERIES) and metrics["model_calls"] < metrics["requests"]
            assert f"memos_embedding_model_calls_total {float(metrics['model_calls'])}" in text
        else:
            assert metrics is None
    for alone, batched in zip(answers["alone"], answers["batched"], strict=True):
        assert [m for m, _ in alone] == [m for m, _ in batched]
        assert np.allclose([r for _, r in alone], [r for _, r in batched], atol=1e-5)


@pytest.mark.parametrize("backend", ["edge", "qdrant"])  # the embedded stores: batching is the embedder's
def test_concurrent_adds_share_model_calls_and_store_the_vectors_of_adds_one_by_one(
        tmp_path: Path, embedder: LocalOnnxEmbedder, backend: str) -> None:
    facts = [f"{name} keeps {thing} in the {place}." for name, thing, place in (
        ("Ana", "a red kite", "attic"), ("Ben", "two chess sets", "garage"), ("Chloe", "her violin", "hall"),
        ("Dev", "old maps", "study"), ("Ema", "a sourdough starter", "fridge"), ("Farid", "the tent", "shed"))]
    batcher = BatchedEmbedder(embedder, max_texts=256, max_wait=0.3)  # adds that arrive together share
    service = MemoryService.open(settings_for(tmp_path / "data", backend), embedder=batcher)
    try:
        service.ready()
        before = batcher.stats.model_calls
        results = run_threads([lambda f=f: service.add_memory(ROOT_USER, memory_content=f) for f in facts])
        assert batcher.stats.model_calls - before < len(facts)
        for fact, result in zip(facts, results, strict=True):
            assert isinstance(result, AddResult) and len(result.added) == 1
            [point] = service.vectors.retrieve(result.added, with_vectors=True)
            [alone] = embedder.embed([service.index_texts(fact, None, "", None)[0]])
            assert point.dense is not None and np.allclose(point.dense, alone, atol=1e-5)
        again = service.add_memory(ROOT_USER, memory_content=facts[0])  # still de-duplicated
        assert again.deduplicated and not again.added
    finally:
        service.close()
