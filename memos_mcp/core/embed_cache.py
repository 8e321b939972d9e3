"""A bounded cache of vectors by text, for texts that search embeds again and again.

A search judges a long hit by its sentence windows (``core.relevance``), which are embedded at query
time; in a person's store the same long memories come back for many queries, and each time their
windows cost a model call of up to ``MAX_WINDOWS`` texts (tens of milliseconds: most of a search's cost
when it happens). The cache keeps the vectors of the most recently used texts, least recently used out
first, as 32-bit floats (``capacity`` x dimension x 4 bytes: 6 MiB for 4,096 vectors of 384).
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence


class EmbeddingCache:
    """``embed(texts)`` in front of a model's ``embed``: cached texts are answered from the cache, the
    others are embedded in one call (in their order) and kept. Thread-safe; the model call is made
    outside the lock (two threads missing the same text both embed it, and the later one is kept).

    ``embed``: texts -> one vector per text, in order. ``capacity``: texts kept, at least 1."""

    def __init__(self, embed: Callable[[list[str]], list[list[float]]], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity is at least 1")
        self._embed = embed
        self.capacity = capacity
        self._vectors: OrderedDict[str, array[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        """One vector per text, in order (each a sequence of floats, equal to the model's to 32-bit
        precision)."""
        found: dict[str, array[float]] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get(text)
                if vector is not None:
                    self._vectors.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = {text: array("f", vector) for text, vector in zip(missing, self._embed(missing), strict=True)}
            found.update(fresh)
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self.capacity:
                    self._vectors.popitem(last=False)
        return [found[text] for text in texts]
