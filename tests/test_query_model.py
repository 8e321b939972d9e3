"""The local embedder's int8 query model (``core.query_model``) over the real packaged model: query
vectors close to the packaged model's and independent of the texts embedded with them, stored texts
untouched, the quantized file made once per cache folder and made again when damaged or unwritable."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memos_mcp.config import Settings
from memos_mcp.core.embed_batch import BatchedEmbedder
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.factory import build_embedder

QUESTIONS = ["When did Caroline go to the LGBTQ support group?", "What is my dog called", "hi",
             "Where did Melanie paint a sunset with her family after the long charity race in May?",
             "Which instrument does Jon play?", "12345 !!"]
STORED = ["Caroline went to the LGBTQ support group on 7 May 2023.", "My dog is called Max.",
          "Melanie painted a sunset at the lake with her kids after the charity race.",
          "Jon plays the violin in a jazz trio.", "Hello there!"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("query-model-cache")


@pytest.fixture(scope="module")
def quantized(cache: Path) -> Iterator[LocalOnnxEmbedder]:
    embedder = LocalOnnxEmbedder(cache_dir=cache)
    embedder.load()
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def packaged(cache: Path) -> Iterator[LocalOnnxEmbedder]:
    embedder = LocalOnnxEmbedder(query_int8=False, cache_dir=cache)
    embedder.load()
    yield embedder
    embedder.close()


def cached_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("query-int8-*.onnx"))


def test_query_vectors_lie_close_to_the_packaged_models_and_find_the_same_texts(
        quantized: LocalOnnxEmbedder, packaged: LocalOnnxEmbedder) -> None:
    fast, exact = np.asarray(quantized.embed_queries(QUESTIONS)), np.asarray(packaged.embed_queries(QUESTIONS))
    cosines = (fast * exact).sum(axis=1)
    assert cosines.min() > 0.97, cosines
    assert not np.allclose(fast, exact, atol=1e-4)  # they are the quantized model's, not the packaged one's
    stored = np.asarray(packaged.embed(STORED))
    assert ((fast @ stored.T).argmax(axis=1) == (exact @ stored.T).argmax(axis=1)).all()


def test_stored_texts_keep_the_packaged_model(quantized: LocalOnnxEmbedder, packaged: LocalOnnxEmbedder) -> None:
    assert quantized.model_id == packaged.model_id  # a data directory's vectors are the same either way
    assert quantized.embed(STORED) == packaged.embed(STORED)
    assert packaged.embed_queries(QUESTIONS) == packaged.embed(QUESTIONS)


def test_texts_compared_with_queries_go_through_the_query_model_with_the_document_prefix(
        quantized: LocalOnnxEmbedder, cache: Path) -> None:
    """A long hit's sentence windows are compared with the query and never stored: the fast model."""
    assert quantized.embed_for_comparison(STORED) == quantized.embed_queries(STORED)
    prefixed = LocalOnnxEmbedder(cache_dir=cache, query_prefix="query: ", document_prefix="passage: ")
    try:
        assert prefixed.embed_for_comparison(STORED) == quantized.embed_queries([f"passage: {t}" for t in STORED])
    finally:
        prefixed.close()


def test_a_query_vector_does_not_depend_on_the_texts_embedded_with_it(quantized: LocalOnnxEmbedder) -> None:
    together = quantized.embed_queries(QUESTIONS)
    alone = [quantized.embed_query(q) for q in QUESTIONS]
    reversed_order = quantized.embed_queries(QUESTIONS[::-1])[::-1]
    assert together == alone == reversed_order
    batcher = BatchedEmbedder(quantized, max_texts=64)
    assert batcher.embed_queries(QUESTIONS) == alone


def test_the_quantized_model_is_made_once_per_cache_folder_and_then_loaded(
        quantized: LocalOnnxEmbedder, cache: Path) -> None:
    [made] = cached_files(cache)
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]  # written whole, then renamed
    before = made.stat()
    again = LocalOnnxEmbedder(cache_dir=cache)
    try:
        assert again.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
    finally:
        again.close()
    after = made.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_a_damaged_cached_model_is_made_again(quantized: LocalOnnxEmbedder, tmp_path: Path) -> None:
    first = LocalOnnxEmbedder(cache_dir=tmp_path)
    first.load()
    first.close()
    [made] = cached_files(tmp_path)
    size = made.stat().st_size
    with made.open("r+b") as damaged:
        damaged.truncate(size // 3)
    again = LocalOnnxEmbedder(cache_dir=tmp_path)
    try:
        assert again.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
    finally:
        again.close()
    assert cached_files(tmp_path) == [made] and made.stat().st_size == size
    assert stat.S_IMODE(made.stat().st_mode) & 0o044 == 0o044  # readable by the other users (an image's server)


def onnx_model(width: int, path: Path) -> None:
    """A valid ONNX model with the embedder's inputs whose last_hidden_state is each token id times a
    fixed vector of ``width``: loads and runs, but is not all-MiniLM-L6-v2."""
    from onnx import TensorProto, helper, save

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
              for name in ("input_ids", "attention_mask", "token_type_ids")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", width])
    direction = helper.make_tensor("direction", TensorProto.FLOAT, [width], [1.0 + i % 3 for i in range(width)])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["ids", "axes"], ["column"]),
             helper.make_node("Mul", ["column", "direction"], ["last_hidden_state"])]
    graph = helper.make_graph(nodes, "not-minilm", inputs, [output], [direction, axes])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("width", [10, 384])
def test_another_model_put_in_the_cache_is_found_out_and_made_again(
        quantized: LocalOnnxEmbedder, tmp_path: Path, width: int) -> None:
    first = LocalOnnxEmbedder(cache_dir=tmp_path)
    first.load()
    first.close()
    [made] = cached_files(tmp_path)
    onnx_model(width, made)
    again = LocalOnnxEmbedder(cache_dir=tmp_path)
    try:
        assert again.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
        assert again.query_model() == f"int8, cached in {made}"
    finally:
        again.close()
    later = LocalOnnxEmbedder(cache_dir=tmp_path)  # the file made again serves the next load as it is
    try:
        assert later.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
    finally:
        later.close()


def test_without_a_home_directory_the_query_model_is_made_in_memory(
        quantized: LocalOnnxEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")  # as pathlib says: no HOME, no passwd entry

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    embedder = LocalOnnxEmbedder()
    try:
        assert embedder.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
        assert embedder.query_model().startswith("int8, made in memory")
    finally:
        embedder.close()


def test_when_the_query_model_cannot_be_made_queries_use_the_packaged_model(
        packaged: LocalOnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))  # the quantizer's work folder cannot be made
    embedder = LocalOnnxEmbedder(cache_dir=tmp_path / "cache")
    try:
        with caplog.at_level(logging.WARNING, logger="memos_mcp.core.query_model"):
            assert embedder.embed_queries(QUESTIONS) == packaged.embed_queries(QUESTIONS)
        assert embedder.embed(STORED) == packaged.embed(STORED)
        assert embedder.query_model().startswith("off: cannot be made")
    finally:
        embedder.close()
    assert "queries use the packaged model" in caplog.text


def test_a_cache_folder_that_cannot_be_written_still_serves_quantized_queries(
        quantized: LocalOnnxEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    embedder = LocalOnnxEmbedder(cache_dir=blocked / "cache")  # its parent is a file: no folder can be made
    try:
        with caplog.at_level(logging.WARNING, logger="memos_mcp.core.query_model"):
            assert embedder.embed_queries(QUESTIONS) == quantized.embed_queries(QUESTIONS)
    finally:
        embedder.close()
    assert "cannot be cached" in caplog.text
    assert os.listdir(tmp_path) == ["a-file"]


def test_the_configured_local_embedder_uses_the_query_model_unless_turned_off(
        clean_environment: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_EMBEDDER__CACHE_DIR", str(tmp_path))
    on = build_embedder(Settings())
    monkeypatch.setenv("MEMOS_EMBEDDER__QUERY_INT8", "false")
    off = build_embedder(Settings())
    try:
        assert on.embed_queries(QUESTIONS) != on.embed(QUESTIONS)
        assert off.embed_queries(QUESTIONS) == off.embed(QUESTIONS) == on.embed(QUESTIONS)
    finally:
        on.close()
        off.close()
    assert len(cached_files(tmp_path)) == 1
