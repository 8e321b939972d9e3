"""Embedders against the real local model and a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from memos_mcp.core.embedder import LocalOnnxEmbedder, OpenAIEmbedder
from memos_mcp.errors import BackendUnavailable, ConfigError
from tests.openai_server import OpenAIServer, fake_vector

FAKE_DIMENSION = 12


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(vector: list[float]) -> float:
    return math.sqrt(_dot(vector, vector))


# --- local model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> Iterator[LocalOnnxEmbedder]:
    # A small sub-batch size, so that a handful of texts already spans several sub-batches.
    embedder = LocalOnnxEmbedder(threads=2, batch_size=3)
    embedder.load()
    yield embedder
    embedder.close()


def test_dimension_comes_from_the_model(local: LocalOnnxEmbedder) -> None:
    assert local.dimension == 384
    assert len(local.embed_query("hello")) == local.dimension


def test_vectors_are_unit_length(local: LocalOnnxEmbedder) -> None:
    for vector in local.embed(["a", "The quick brown fox jumps over the lazy dog.", "", "12345 !!"]):
        assert _norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_close_sentences_score_higher_than_unrelated_ones(local: LocalOnnxEmbedder) -> None:
    fact, question, unrelated = local.embed(
        ["I like strawberries", "What fruit do I like?", "The stock market crashed"]
    )
    assert _dot(fact, question) > _dot(fact, unrelated) + 0.1
    assert _dot(question, fact) > _dot(question, unrelated) + 0.1


def test_batch_order_is_preserved_across_lengths(local: LocalOnnxEmbedder) -> None:
    texts = [
        "A much longer sentence about a hiking trip in the Alps last summer with three old friends.",
        "ok",
        "Where did Caroline go on Friday evening?",
        "yes",
        "Melanie painted a sunrise over the lake and signed up for a pottery class in the spring.",
        "I adopted a dog named Max.",
        "hm",
    ]
    batched = local.embed(texts)
    for text, vector in zip(texts, batched, strict=True):
        single = local.embed([text])[0]
        assert max(abs(x - y) for x, y in zip(vector, single, strict=True)) < 1e-4


def test_long_text_is_truncated(local: LocalOnnxEmbedder) -> None:
    long_text = " ".join(f"word{i % 50}" for i in range(2000))
    (vector,) = local.embed([long_text])
    assert len(vector) == 384
    assert _norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_empty_input(local: LocalOnnxEmbedder) -> None:
    assert local.embed([]) == []


def test_model_id_is_known_before_loading() -> None:
    assert LocalOnnxEmbedder().model_id == "local:all-MiniLM-L6-v2-int8"


def test_import_and_embedding_print_nothing() -> None:
    code = (
        "from memos_mcp.core.embedder import LocalOnnxEmbedder\n"
        "e = LocalOnnxEmbedder(threads=1)\n"
        "assert len(e.embed(['hello world', 'x' * 3000])) == 2\n"
        "e.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


# --- OpenAI-compatible endpoint -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    fake = OpenAIServer(dimension=FAKE_DIMENSION)
    yield fake
    fake.stop()


@pytest.fixture
def remote(server: OpenAIServer) -> Iterator[OpenAIEmbedder]:
    embedder = OpenAIEmbedder("fake-embed", base_url=server.url, api_key="k", timeout=10, batch_size=3,
                              max_retries=0)
    yield embedder
    embedder.close()


def test_remote_dimension_is_probed(server: OpenAIServer, remote: OpenAIEmbedder) -> None:
    assert remote.model_id == f"openai:{server.url}:fake-embed"
    assert server.requests == []
    assert remote.dimension == FAKE_DIMENSION
    assert remote.dimension == FAKE_DIMENSION
    assert [r["input"] for r in server.requests] == [["dimension probe"]]
    assert server.requests[0]["encoding_format"] == "float"


def test_remote_load_is_done_once_under_concurrency(
    server: OpenAIServer, remote: OpenAIEmbedder
) -> None:
    dimensions: list[int] = []
    threads = [threading.Thread(target=lambda: dimensions.append(remote.dimension)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert dimensions == [FAKE_DIMENSION] * 8
    assert len(server.requests) == 1


def test_remote_vectors_are_normalised_ordered_and_batched(
    server: OpenAIServer, remote: OpenAIEmbedder
) -> None:
    texts = [f"text number {i}" for i in range(7)]
    vectors = remote.embed(texts)
    assert [len(r["input"]) for r in server.requests] == [1, 3, 3, 1]
    for text, vector in zip(texts, vectors, strict=True):
        assert _norm(vector) == pytest.approx(1.0, abs=1e-6)
        expected = fake_vector(text, FAKE_DIMENSION)
        assert _dot(vector, expected) / _norm(expected) == pytest.approx(1.0, abs=1e-6)
    assert remote.embed_query(texts[4]) == pytest.approx(vectors[4])
    assert remote.embed([]) == []


def test_remote_requested_dimensions_are_sent_and_verified(server: OpenAIServer) -> None:
    embedder = OpenAIEmbedder("fake-embed", base_url=server.url, api_key="k", dimensions=8, max_retries=0)
    try:
        assert embedder.dimension == 8
        assert len(embedder.embed_query("hello")) == 8
        assert all(r["dimensions"] == 8 for r in server.requests)
    finally:
        embedder.close()


def test_remote_ignored_dimensions_is_a_config_error(server: OpenAIServer) -> None:
    server.ignore_dimensions = True
    embedder = OpenAIEmbedder("fake-embed", base_url=server.url, api_key="k", dimensions=8, max_retries=0)
    try:
        with pytest.raises(ConfigError, match="ignores 'dimensions'"):
            embedder.load()
    finally:
        embedder.close()


def test_remote_server_error_is_backend_unavailable(
    server: OpenAIServer, remote: OpenAIEmbedder
) -> None:
    remote.load()
    server.fail_with = 500
    with pytest.raises(BackendUnavailable, match="500") as caught:
        remote.embed(["hello"])
    assert server.url in caught.value.message
    assert "fake-embed" in caught.value.message


@pytest.mark.parametrize("broken", ["nan", "inf", "ragged", "resized"])
def test_an_endpoint_answering_unusable_vectors_is_backend_unavailable(server: OpenAIServer, remote: OpenAIEmbedder,
                                                                       broken: str) -> None:
    remote.load()
    server.broken_vectors = broken
    with pytest.raises(BackendUnavailable, match="unusable vectors") as caught:
        remote.embed(["hello", "world"])
    assert server.url in caught.value.message and caught.value.details["model"] == "fake-embed"
    server.broken_vectors = None
    assert len(remote.embed(["hello", "world"])[1]) == FAKE_DIMENSION


def test_dead_server_is_backend_unavailable(server: OpenAIServer, remote: OpenAIEmbedder) -> None:
    server.stop()
    with pytest.raises(BackendUnavailable) as caught:
        remote.load()
    assert server.url in caught.value.message
    assert caught.value.details == {"base_url": server.url, "model": "fake-embed"}


# --- Prefixes of asymmetric models ---------------------------------------------------------------


def test_local_prefixes_are_put_before_queries_and_stored_texts(local: LocalOnnxEmbedder) -> None:
    prefixed = LocalOnnxEmbedder(threads=1, query_prefix="query: ", document_prefix="passage: ")
    try:
        assert prefixed.embed_queries(["where is the cat"]) == local.embed_queries(["query: where is the cat"])
        assert prefixed.embed_query("where is the cat") == local.embed_queries(["query: where is the cat"])[0]
        assert prefixed.embed(["the cat sleeps"]) == local.embed(["passage: the cat sleeps"])
        assert prefixed.embed_queries([]) == []
    finally:
        prefixed.close()


def test_prefixes_are_part_of_the_model_id_only_when_given(server: OpenAIServer) -> None:
    assert LocalOnnxEmbedder().model_id == "local:all-MiniLM-L6-v2-int8"
    assert LocalOnnxEmbedder(query_prefix="query: ").model_id == "local:all-MiniLM-L6-v2-int8|query='query: '"
    remote = OpenAIEmbedder("fake-embed", base_url=server.url, query_prefix="search_query: ",
                            document_prefix="search_document: ")
    assert remote.model_id == (f"openai:{server.url}:fake-embed|query='search_query: '"
                               "|document='search_document: '")


def test_remote_requests_carry_the_query_and_document_prefixes(server: OpenAIServer) -> None:
    remote = OpenAIEmbedder("fake-embed", base_url=server.url, api_key="k", max_retries=0,
                            query_prefix="search_query: ", document_prefix="search_document: ")
    try:
        remote.embed(["Ann likes tea", "Bob likes coffee"])
        remote.embed_queries(["who likes tea?"])
    finally:
        remote.close()
    inputs = [r["input"] for r in server.requests]
    assert inputs[1:] == [["search_document: Ann likes tea", "search_document: Bob likes coffee"],
                          ["search_query: who likes tea?"]]
