"""Dynamic batching of embedding calls: texts that callers ask for at about the same time share one
model call.

Searches embed a few short texts each (the query and its variants), and the HTTP server runs each
search in its own worker thread: without batching, sixteen searches at once make sixteen model calls
that fight for the same cores. ``BatchedEmbedder`` sits in front of an ``Embedder`` and coalesces
them, with no thread of its own (leader and followers):

- a caller that finds no model call in flight leads: it waits up to ``max_wait`` seconds for other
  callers (not at all with the default 0, and no longer once ``max_texts`` texts are queued), takes the
  oldest queued request and, in arrival order, the queued requests of its kind (search queries or
  texts to store, which the model may embed another way: ``Embedder._embed_queries``) up to
  ``max_texts`` texts, makes one model call for all of them and hands each caller its vectors;
- callers that arrive while a call is in flight queue; when it ends, one of them leads the next call
  with what queued meanwhile. Under load every call so carries what arrived during the previous one;
  alone, a caller pays no wait.
- a request of more than ``max_texts`` texts (a bulk add) does not queue: it goes to the model at once,
  as without the batcher, so short queries never wait behind it.

The model sees every text of a call at once; the local embedder sorts them by token length and runs
sub-batches of ``embedder.batch_size`` (little padding), so mixing short queries with long sentence
windows costs no more than embedding them apart. Vectors are the same as from the embedder alone
(up to float rounding of the padded runs). An error of the model call reaches every caller whose
texts were in it; the other queued callers go on with the next call. Callers block: call from worker
threads (the HTTP server and the add worker run every core call in one).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from memos_mcp.core.embedder import Embedder


@dataclass
class BatchStats:
    """Counts since start: ``requests`` embed calls made to the batcher (of ``texts`` texts in all),
    ``model_calls`` calls made to the model for them (fewer than ``requests`` when calls were shared),
    ``largest`` the most texts of one model call, ``direct`` requests too large to batch."""

    requests: int = 0
    texts: int = 0
    model_calls: int = 0
    largest: int = 0
    direct: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "texts": self.texts, "model_calls": self.model_calls,
                "largest": self.largest, "direct": self.direct}


@dataclass(eq=False)  # requests are told apart by identity (the queue removes them)
class _Request:
    texts: list[str]
    query: bool  # search queries, which the model may embed another way (``Embedder._embed_queries``)
    vectors: list[list[float]] | None = None
    error: BaseException | None = None
    done: bool = False
    arrived: float = field(default_factory=time.monotonic)


class BatchedEmbedder(Embedder):
    """``inner`` behind a dynamic batcher (see the module docstring). ``max_texts`` (>= 1) bounds the
    texts of one shared model call; ``max_wait`` (seconds, >= 0) is how long a leader waits for company.
    Loading, ``dimension``, ``model_id`` and ``close`` are the inner embedder's."""

    def __init__(self, inner: Embedder, max_texts: int = 64, max_wait: float = 0.0) -> None:
        if max_texts < 1 or max_wait < 0:
            raise ValueError("max_texts >= 1 and max_wait >= 0")
        super().__init__(inner.query_prefix, inner.document_prefix)  # prefixes go on here, before batching
        self.inner = inner
        self.model_id = inner.model_id
        self.max_texts = max_texts
        self.max_wait = max_wait
        lock = threading.Lock()
        self._changed = threading.Condition(lock)  # a call ended: its callers have answers, another may lead
        self._arrived = threading.Condition(lock)  # a request queued: a collecting leader counts again
        self._queue: deque[_Request] = deque()
        self._busy = False  # a leader is collecting or calling the model
        self._stats = BatchStats()

    @property
    def stats(self) -> BatchStats:
        """A snapshot of the counts (see ``BatchStats``)."""
        with self._changed:
            return BatchStats(**self._stats.as_dict())

    def _load(self) -> int:
        return self.inner.dimension

    def query_model(self) -> str:
        return self.inner.query_model()

    def _release(self) -> None:
        self.inner.close()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._queued(texts, query=False)

    def _embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self._queued(texts, query=True)

    def _queued(self, texts: list[str], query: bool) -> list[list[float]]:
        if len(texts) > self.max_texts:
            with self._changed:
                self._stats.requests += 1
                self._stats.texts += len(texts)
                self._stats.direct += 1
            return self._model(texts, query)
        request = _Request(texts, query)
        with self._changed:
            self._stats.requests += 1
            self._stats.texts += len(texts)
            self._queue.append(request)
            if self.max_wait > 0:
                self._arrived.notify()  # only the leader waits on arrivals: no herd of followers wakes
        while True:
            with self._changed:
                while not request.done and self._busy:
                    self._changed.wait()
                if request.done:
                    return self._answer(request)
                self._busy = True  # lead the next call
            try:
                self._lead()
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _model(self, texts: list[str], query: bool) -> list[list[float]]:
        """One call of the inner model on texts as this embedder's ``embed`` or ``embed_queries``
        passed them on (the inner embedder's own are not called: texts are not prepared twice)."""
        self.inner.load()
        return self.inner._embed_queries(texts) if query else self.inner._embed(texts)

    @staticmethod
    def _answer(request: _Request) -> list[list[float]]:
        if request.error is not None:
            raise request.error
        assert request.vectors is not None, "a done request has vectors or an error"
        return request.vectors

    def _lead(self) -> None:
        """Collect (up to ``max_wait``), take a batch from the head of the queue, make one model call."""
        with self._changed:
            if self.max_wait > 0 and self._queue:
                until = self._queue[0].arrived + self.max_wait
                while sum(len(r.texts) for r in self._queue) < self.max_texts:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
            if not self._queue:
                return
            batch = [self._queue.popleft()]  # the oldest request, and queued ones of its kind that fit
            query, size = batch[0].query, len(batch[0].texts)
            for request in [r for r in self._queue if r.query == query]:
                if size + len(request.texts) > self.max_texts:
                    break
                self._queue.remove(request)
                batch.append(request)
                size += len(request.texts)
            self._stats.model_calls += 1
            self._stats.largest = max(self._stats.largest, size)
        texts = [text for request in batch for text in request.texts]
        try:
            vectors = self._model(texts, query)
        except BaseException as exc:  # every caller of this call gets the error: none waits forever
            with self._changed:
                for request in batch:
                    request.error, request.done = exc, True
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like stop the leading thread at once
            return
        start = 0
        with self._changed:
            for request in batch:
                request.vectors, request.done = vectors[start : start + len(request.texts)], True
                start += len(request.texts)


def batched(inner: Embedder, max_texts: int, max_wait_ms: float) -> Embedder:
    """``inner`` behind a ``BatchedEmbedder``, or ``inner`` itself when ``max_texts`` is 1 (batching off)."""
    return inner if max_texts <= 1 else BatchedEmbedder(inner, max_texts, max_wait_ms / 1000)
