"""The window-vector cache in front of the real local model (core.embed_cache)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memos_mcp.core.embed_cache import EmbeddingCache
from memos_mcp.core.embedder import LocalOnnxEmbedder

TEXTS = ["Caroline went to the LGBTQ support group on 7 May 2023.",
         "Melanie painted a sunrise over the lake last year.",
         "The passport number is X1234567 and it expires in 2031."]


class Counting:
    """The real model's ``embed``, counting the texts it is asked for."""

    def __init__(self, model: LocalOnnxEmbedder) -> None:
        self.model = model
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.asked.extend(texts)
        return self.model.embed(texts)


def test_cached_texts_are_not_embedded_again_and_keep_the_models_vectors(embedder: LocalOnnxEmbedder) -> None:
    model = Counting(embedder)
    cache = EmbeddingCache(model, capacity=8)
    first = cache.embed(TEXTS[:2])
    again = cache.embed([TEXTS[1], TEXTS[2], TEXTS[0], TEXTS[2]])
    assert model.asked == [*TEXTS[:2], TEXTS[2]]  # each text once; a repeated text in one call once
    expected = embedder.embed([TEXTS[1], TEXTS[2], TEXTS[0], TEXTS[2]])
    for got, want in zip(again, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    np.testing.assert_allclose(np.asarray(first[0]), np.asarray(again[2]))


def test_the_least_recently_used_text_leaves_first(embedder: LocalOnnxEmbedder) -> None:
    model = Counting(embedder)
    cache = EmbeddingCache(model, capacity=2)
    cache.embed(TEXTS[:2])
    cache.embed([TEXTS[0]])  # now TEXTS[1] is the least recently used
    cache.embed([TEXTS[2]])
    assert len(cache) == 2
    model.asked.clear()
    cache.embed(TEXTS)
    assert model.asked == [TEXTS[1]]


def test_threads_sharing_the_cache_get_every_vector_right(embedder: LocalOnnxEmbedder) -> None:
    cache = EmbeddingCache(Counting(embedder), capacity=2)  # smaller than the texts: evictions race lookups
    want = dict(zip(TEXTS, embedder.embed(TEXTS), strict=True))
    errors: list[str] = []

    def work(offset: int) -> None:
        for n in range(30):
            text = TEXTS[(n + offset) % len(TEXTS)]
            if not np.allclose(np.asarray(cache.embed([text])[0]), np.asarray(want[text]), atol=1e-6):
                errors.append(text)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert len(cache) <= 2


def test_capacity_is_at_least_one(embedder: LocalOnnxEmbedder) -> None:
    with pytest.raises(ValueError, match="capacity"):
        EmbeddingCache(embedder.embed, capacity=0)
