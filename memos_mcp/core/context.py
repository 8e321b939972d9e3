"""What every room of the core shares: the stores, the settings, access control, the write lock
and the disk guard (``Stores``), and the base of a room (``Room``).

``Stores`` opens the vector store and the graph on first use and, at that first open, rolls back
the writes a stopped process left unfinished. Rooms receive the one ``Stores`` of the service:
never the service itself, so no room depends on the facade that composes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from memos_mcp.config import Settings
from memos_mcp.core.access import AccessControl
from memos_mcp.core.checks import MAX_KEY_CHARS, check_length, check_storable
from memos_mcp.core.diskspace import DiskGuard
from memos_mcp.core.embedder import Embedder
from memos_mcp.core.factory import build_language_model
from memos_mcp.core.graph.extract import ExtractedGraph
from memos_mcp.core.graph.memory import GraphMemory, MemoryGraph
from memos_mcp.core.graph.store import GraphStore
from memos_mcp.core.models import HistoryEvent, Memory, MessageIn, utcnow
from memos_mcp.core.payload import index_texts
from memos_mcp.core.relevance import window_payloads
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.vector import MemoryFilter, VectorStore
from memos_mcp.core.text import is_blank
from memos_mcp.core.write.ingest.extractor import Extractor, RuleExtractor
from memos_mcp.errors import ConfigError, InvalidRequest, MemosError, PayloadTooLarge

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel  # imports openai (slow): only when a model is configured

log = logging.getLogger(__name__)
FORGET_PART = 500  # memories a delete records, removes and ends at once (``Stores.forget``)


class Stores:
    """The service's stores and shared parts. ``extractor`` is the deterministic extractor (it may be
    replaced: the next add uses the new one); ``llm`` the one client of the configured language model
    (chat, suggestions, extraction), None without one. Writes hold ``write_lock``."""

    def __init__(self, settings: Settings, catalog: Catalog, vectors: VectorStore, embedder: Embedder,
                 extractor: Extractor | None = None, graph_store: GraphStore | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.extractor: Extractor = extractor or RuleExtractor(settings.search.context_turns)
        self.llm: LanguageModel | None = build_language_model(settings)
        self.access = AccessControl(catalog)
        self.write_lock = threading.RLock()
        self.disk = DiskGuard(settings.data_dir, settings.storage.min_free_bytes)
        self.graph_store = graph_store
        self._open = threading.RLock()  # re-entered by the start-up reconciliation (it opens the graph)
        self.vectors_ready = False
        self.opened_graph: GraphMemory | None = None
        self._check_model()

    @property
    def read_only(self) -> bool:
        """Whether the data directory was opened read-only (every write raises ``DataDirReadOnly``)."""
        return self.catalog.read_only

    def ready(self) -> VectorStore:
        """Load the embedder and open the vector store (once); the dimension comes from the model."""
        if not self.vectors_ready:
            with self._open:
                if not self.vectors_ready:
                    self.vectors.open(self.embedder.dimension)
                    if self.vectors.repaired:
                        log.warning("vector store repaired on open (a creation cut short, or a store made by "
                                    "an earlier release): made %s", ", ".join(self.vectors.repaired))
                    self._record_model()
                    self.roll_back_abandoned()
                    self.vectors_ready = True
        return self.vectors

    def graph(self) -> GraphMemory | None:
        """The graph memory, its store opened on first use; None when graph memory is turned off."""
        if self.graph_store is not None and self.opened_graph is None:
            with self._open:
                if self.opened_graph is None:
                    self.graph_store.open()
                    self.opened_graph = GraphMemory(self.graph_store, self.settings.graph.decay,
                                                    self.settings.graph.entity_links)
        return self.opened_graph

    def roll_back_abandoned(self) -> None:
        """Roll back the memory writes a stopped process left unfinished (never acknowledged): an add's
        points, graph and history go; an update's history event stays only if the point holds its text.
        On a catalog other processes share, only the writes of processes that are gone: never one that
        another replica has in flight (``Catalog.abandoned_writes``)."""
        try:
            with self.catalog.abandoned_writes() as pending:
                if pending:
                    self._roll_back(pending)
        except MemosError as exc:  # the next start tries again
            log.warning("unfinished writes could not be rolled back yet: %s", exc)

    def forget(self, by_cube: Mapping[str, Sequence[str]], actor: str, graph_too: bool = True) -> None:
        """Delete memories (ids by cube) whole or not at all across a crash, ``FORGET_PART`` at a time: a
        part's ``DELETE`` events are recorded pending and its de-duplication keys released (one catalog
        transaction), then its vectors, graph links (unless ``graph_too`` is False: the caller drops the
        cube's whole graph) and history text go and the pending delete ends. A process stopped part-way
        leaves one part pending, which the next start finishes (``roll_back_abandoned``: a delete goes
        forward, it cannot be taken back once a vector is gone). Parts bound what a delete holds at once
        (on PostgreSQL an advisory lock per memory)."""
        now = utcnow()
        for cube_id, ids in by_cube.items():
            for start in range(0, len(ids), FORGET_PART):
                part = list(ids[start:start + FORGET_PART])
                with self.catalog.in_flight(part):
                    self.catalog.begin_writes([HistoryEvent(memory_id=m, cube_id=cube_id, event="DELETE",
                                                            actor=actor, at=now) for m in part])
                    self._remove(cube_id, part, graph_too)

    def empty_cube(self, cube_id: str, actor: str) -> int:
        """Delete every memory of the cube, whole across a crash (``forget``), and the cube's whole graph
        (relations stated directly too); the caller holds the write lock. Returns how many memories went."""
        ids = [p.id for points in self.ready().walk(MemoryFilter(cube_ids=(cube_id,), status=()), 1000)
               for p in points]
        self.forget({cube_id: ids}, actor, graph_too=False)
        graph = self.graph()
        if graph is not None:
            graph.store.delete_cube(cube_id)
        return len(ids)

    def _remove(self, cube_id: str, ids: list[str], graph_too: bool = True) -> None:
        """The removal of a delete recorded pending (``forget``): vectors, graph links, history text."""
        self.vectors.delete(ids)
        graph = self.graph()
        if graph is not None and graph_too:
            graph.forget(cube_id, ids)
        self.catalog.forget(ids)

    def _roll_back(self, pending: list[HistoryEvent]) -> None:
        """Roll back abandoned writes (``roll_back_abandoned``) and finish abandoned deletes; raises
        ``MemosError`` when a store fails."""
        deleted: dict[str, list[str]] = {}
        for event in pending:
            if event.event == "DELETE":
                deleted.setdefault(event.cube_id, []).append(event.memory_id)
        if deleted:
            for cube_id, ids in deleted.items():
                self._remove(cube_id, ids)
            gone = {m for ids in deleted.values() for m in ids}
            pending = [e for e in pending if e.memory_id not in gone]
            log.warning("finished the unfinished deletes of %d memories", len(gone))
            if not pending:
                return
        added = {e.memory_id: e.cube_id for e in pending if e.event == "ADD"}
        points = {p.id: p for p in self.vectors.retrieve(list(dict.fromkeys(e.memory_id for e in pending)))}
        kept = [e.memory_id for e in pending if e.memory_id not in added and e.memory_id in points
                and points[e.memory_id].payload.get("memory") == e.new_memory
                and (e.event != "ARCHIVE" or points[e.memory_id].payload.get("status") == "archived")]
        if added:
            self.vectors.delete(list(added))
            graph = self.graph()
            for cube_id in set(added.values()):
                if graph is not None:
                    graph.forget(cube_id, [m for m, c in added.items() if c == cube_id])
        self.catalog.end_writes(kept)
        self.catalog.undo_writes([e.memory_id for e in pending if e.memory_id not in kept])
        log.warning("rolled back the unfinished writes of %d memories (%d kept)",
                    len({e.memory_id for e in pending}) - len(kept), len(kept))

    def _check_model(self) -> None:
        """At start-up, without loading anything: the data directory keeps the model it was made with."""
        stored = self.catalog.get_meta("embedding_model")
        if stored and stored != self.embedder.model_id:
            raise ConfigError(
                f"the vectors in {self.settings.data_dir} were made by embedding model '{stored}' (dimension "
                f"{self.catalog.get_meta('dimension')}) but '{self.embedder.model_id}' is configured; configure "
                "that model again, or move the data directory to the new one with memos-mcp reembed",
                stored=stored, configured=self.embedder.model_id)

    def _record_model(self) -> None:
        """Record the model at every open (not only the first: a first start may be killed before)."""
        if self.read_only or (self.catalog.get_meta("embedding_model") == self.embedder.model_id
                              and self.catalog.get_meta("dimension") == str(self.embedder.dimension)):
            return
        self.catalog.set_meta("embedding_model", self.embedder.model_id)
        self.catalog.set_meta("dimension", str(self.embedder.dimension))

    def check_text(self, text: str, field: str) -> None:
        """The one check of text that becomes memory or a query: not blank (only whitespace, control or
        format characters such as a zero-width space), storable (``checks.check_storable``: valid Unicode
        without NUL), at most max_memory_size characters."""
        if is_blank(text):
            raise InvalidRequest(f"{field} is empty (it has no visible character)", field=field)
        check_storable(text, field)
        if len(text) > self.settings.max_memory_size:
            raise PayloadTooLarge(f"{field} has {len(text)} characters; the limit is "
                                  f"{self.settings.max_memory_size} (max_memory_size)", field=field)

    def check_message(self, message: MessageIn, prefix: str = "") -> None:
        """The checks of a message an add (or an import) stores: its content as ``check_text``, its name
        and id storable and at most ``MAX_KEY_CHARS`` long; errors name the field after ``prefix``
        (``messages.0.``)."""
        self.check_text(message.content, f"{prefix}content")
        for name, value in (("name", message.name), ("message_id", message.message_id)):
            if value is not None:
                check_length(check_storable(value, f"{prefix}{name}"), f"{prefix}{name}", MAX_KEY_CHARS)

    def index_texts(self, text: str, speaker: str | None, context: str,
                    event_time: datetime | None) -> tuple[str, str]:
        """The dense and sparse index texts of a memory, as the search settings say."""
        return index_texts(text, speaker, context, event_time, self.settings.search.dense_context)

    def window_vectors(self, texts: Sequence[str]) -> dict[str, dict[str, str]]:
        """The payload form of each long text's window vectors, by text (``relevance.window_payloads``)."""
        return window_payloads(self.embedder.embed_for_comparison, texts)

    def ingest_graph(self, cube_id: str, items: Sequence[tuple[Memory, ExtractedGraph | None, str | None]]) -> None:
        """The graph of stored memories: the extraction's own, or the deterministic one of text and speaker."""
        graph = self.graph()
        if graph is not None:
            read = iter(graph.extract(cube_id, [(m.memory, speaker) for m, given, speaker in items if given is None]))
            graph.ingest(cube_id, [MemoryGraph(m.id, given if given is not None else next(read),
                                               (m.event_time or m.created_at).timestamp())
                                   for m, given, _ in items])


class Room:
    """A room of the core: one concern's operations over the shared ``Stores``."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.settings = stores.settings
        self.catalog = stores.catalog
        self.vectors = stores.vectors
        self.embedder = stores.embedder
        self.access = stores.access
        self.write_lock = stores.write_lock
        self.disk = stores.disk

    def ready(self) -> VectorStore:
        """The vector store, opened (see ``Stores.ready``)."""
        return self.stores.ready()

    def graph(self) -> GraphMemory | None:
        """The graph memory, or None when it is turned off."""
        return self.stores.graph()
