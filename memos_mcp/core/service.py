"""The memory service: every operation of the product, each made by an acting user.

Transports parse their input, make one call here and shape the answer. ``MemoryService`` is a thin
facade: it opens the stores (``context.Stores``) and composes the rooms that do the work, each over
those stores and never over the facade (so no room imports this module):

- ``directory.Directory``: users, cubes and shares;
- ``write.add.Writes``: adding memories, de-duplication, tasks; ``write.change.Changes``: update,
  archive, delete and history; ``write.ingest``: extractors, documents, the add queue and worker;
- ``retrieval.Retrieval``: search and reading memories;
- ``conversations.Conversations``: stored messages; ``chat.Chat``: chat and suggestions.

Each operation keeps one verb on every face: the facade's ``add_memory`` is the ``Writes`` room's own
method, bound here, and the MCP tool and REST routes call it. Writes are serialised by one lock so
that de-duplication and history stay exact; reads run concurrently.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from memos_mcp.config import Settings
from memos_mcp.core.chat import Chat
from memos_mcp.core.context import Stores
from memos_mcp.core.conversations import Conversations
from memos_mcp.core.directory import ROOT_USER, Directory
from memos_mcp.core.diskspace import DiskGuard
from memos_mcp.core.embed_batch import BatchedEmbedder
from memos_mcp.core.embedder import Embedder
from memos_mcp.core.factory import build_embedder, build_graph_store, build_vector_store, open_catalog
from memos_mcp.core.graph.memory import GraphMemory
from memos_mcp.core.graph.store import GraphStore
from memos_mcp.core.models import Role
from memos_mcp.core.retrieval import Retrieval
from memos_mcp.core.stores import reembed_swap
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.data_dir import CATALOG_FILE, DataDirClaim, claim_data_dir
from memos_mcp.core.stores.vector import VectorStore
from memos_mcp.core.write.add import Writes
from memos_mcp.core.write.change import Changes
from memos_mcp.core.write.ingest.extractor import Extractor
from memos_mcp.core.write.ingest.pipeline import AddWorker
from memos_mcp.core.write.ingest.tasks import TaskRunner

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel

__all__ = ["ROOT_USER", "MemoryService"]

log = logging.getLogger(__name__)


class MemoryService:
    """The rooms over one data directory's stores; see the module's docstring."""

    def __init__(self, settings: Settings, catalog: Catalog, vectors: VectorStore, embedder: Embedder,
                 extractor: Extractor | None = None, lock: FileLock | None = None,
                 owns_embedder: bool = True, graph_store: GraphStore | None = None) -> None:
        self.stores = stores = Stores(settings, catalog, vectors, embedder, extractor, graph_store)
        self.settings = settings
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.llm: LanguageModel | None = stores.llm
        self.access = stores.access
        self.write_lock = stores.write_lock
        self.disk = stores.disk
        self.graph_store = graph_store
        self._lock = lock
        self._owns_embedder = owns_embedder
        self.directory = Directory(stores)
        if not self.read_only:
            self.directory.ensure_user(ROOT_USER, Role.ROOT)
        self._worker = AddWorker(self._run_task, settings.add.concurrency)
        self.retrieval = Retrieval(stores)
        self.writes = Writes(stores, self._worker)
        self.changes = Changes(stores, self.retrieval)
        self.conversations = Conversations(stores)
        self.chats = Chat(stores, self.retrieval, self.writes)
        self._tasks = TaskRunner(stores, self.writes, self.changes, self.retrieval, self._worker.closing)
        # users, cubes and shares
        self.ensure_user = self.directory.ensure_user
        self.register_user = self.directory.register_user
        self.get_user = self.directory.get_user
        self.list_users = self.directory.list_users
        self.create_cube = self.directory.create_cube
        self.list_cubes = self.directory.list_cubes
        self.get_cube = self.directory.get_cube
        self.delete_cube = self.directory.delete_cube
        self.share_cube = self.directory.share_cube
        self.unshare_cube = self.directory.unshare_cube
        self.list_shares = self.directory.list_shares
        self.accept_share = self.directory.accept_share
        self.decline_share = self.directory.decline_share
        # the write path
        self.add_memory = self.writes.add_memory
        self.add_document = self.writes.add_document
        self.check_messages = self.writes.check_messages
        self.get_task = self.writes.get_task
        self.list_tasks = self.writes.list_tasks
        self.store_candidates = self.writes.store_candidates
        self.commit_points = self.writes.commit_points
        self.update_memory = self.changes.update_memory
        self.delete_memory = self.changes.delete_memory
        self.delete_memories = self.changes.delete_memories
        self.delete_matching = self.changes.delete_matching
        self.delete_all = self.changes.delete_all
        self.history = self.changes.history
        # retrieval
        self.search = self.retrieval.search
        self.hybrid_query = self.retrieval.hybrid_query
        self.get_memory = self.retrieval.get_memory
        self.list_memories = self.retrieval.list_memories
        self.index_texts = stores.index_texts
        # conversations and chat
        self.get_messages = self.conversations.get_messages
        self.list_conversations = self.conversations.list_conversations
        self.clear_chat_history = self.conversations.clear_chat_history
        self.chat_stream = self.chats.chat_stream
        self.chat = self.chats.chat
        self.suggestions = self.chats.suggestions
        if self.llm is not None:
            self._worker.start()  # its event loop is ready before the first add
        self.writes.resume()

    # --- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, extractor: Extractor | None = None,
             embedder: Embedder | None = None, allow_read_only: bool = False,
             claim: DataDirClaim | None = None) -> MemoryService:
        """Open the data directory (exclusively), the catalog and the configured backends; an
        already loaded ``embedder`` may be handed in to share one model between services.

        A data directory that cannot be written (a read-only mount or snapshot) raises
        ``DataDirReadOnly`` naming it, unless ``allow_read_only``: then it is opened read-only and
        unlocked (nothing is written there: no lock file, no WAL, no recorded model, no resumed
        task) and every write raises ``DataDirReadOnly``. A file system below ``storage.min_free_bytes``
        raises ``StorageError``, or with ``allow_read_only`` is opened read-only the same way.
        ``settings.read_only`` (``serve``/``stdio --read-only``) opens every store read-only even where
        the directory could be written, so that no face writes; the lock is still taken there.
        ``claim``: the directory as ``claim_data_dir`` already checked and locked it; the service
        opened over it releases its lock at close (after a failed open the caller still holds it)."""
        owned = claim is None
        claim = claim or claim_data_dir(settings, allow_read_only)
        try:
            if (settings.read_only and claim.lock is not None and settings.catalog.url is None
                    and not (settings.data_dir / CATALOG_FILE).exists()):
                # a new data directory served read-only: its (empty) stores are made once, then read (a
                # catalog in PostgreSQL is another's to make: read-only, it must be there already)
                DiskGuard(settings.data_dir, settings.storage.min_free_bytes).check_startup()
                made = cls.open(settings.model_copy(update={"read_only": False}), extractor, embedder,
                                claim=DataDirClaim(read_only=False))  # under this claim's lock
                try:
                    made.ready()
                finally:
                    made.close()
            catalog = open_catalog(settings, claim.read_only)
            try:
                if settings.vector.backend == "edge":
                    reembed_swap.finish(settings.data_dir, catalog)  # a re-embedding's swap cut short
                return cls(settings, catalog, build_vector_store(settings, claim.read_only),
                           embedder or build_embedder(settings), extractor, claim.lock,
                           owns_embedder=embedder is None,
                           graph_store=build_graph_store(settings, claim.read_only) if settings.graph.enabled else None)
            except BaseException:
                catalog.close()
                raise
        except BaseException:
            if owned:
                claim.release()
            raise

    @property
    def read_only(self) -> bool:
        """Whether the data directory was opened read-only (every write raises ``DataDirReadOnly``)."""
        return self.stores.read_only

    @property
    def extractor(self) -> Extractor:
        """The deterministic extractor of adds without a model (and of a model's failures)."""
        return self.stores.extractor

    @extractor.setter
    def extractor(self, extractor: Extractor) -> None:
        self.stores.extractor = extractor

    def ready(self) -> VectorStore:
        """Load the embedder and open the vector store (once); the dimension comes from the model."""
        return self.stores.ready()

    def graph(self) -> GraphMemory | None:
        """The graph memory, its store opened on first use; None when graph memory is turned off."""
        return self.stores.graph()

    def _run_task(self, task_id: str) -> None:
        self._tasks.run(task_id)

    def warm_up(self) -> threading.Thread:
        """Load the model and open the stores in the background so that start-up is not held up."""
        def run() -> None:
            try:
                self.ready()
            except Exception as exc:  # reported again, with its type, on the first call that needs it
                log.warning("background warm-up failed: %s", exc)
        thread = threading.Thread(target=run, name="memos-warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop the add worker (open tasks resume at the next start), then close the stores."""
        self._worker.close()
        with self.write_lock:
            if self.stores.vectors_ready:
                self.vectors.flush()
            self.vectors.close()
            if self.stores.opened_graph is not None:
                self.stores.opened_graph.store.close()
            if self._owns_embedder:
                self.embedder.close()
            if self.llm is not None:
                self.llm.close()
            self.catalog.close()
            if self._lock is not None:
                self._lock.release()

    def stats(self) -> dict[str, Any]:
        """Counts of the catalog and the vector store, the embedding model, and the embedding batcher's
        counts (``embed_batch.BatchStats``; None when batching is off)."""
        batches = self.embedder.stats.as_dict() if isinstance(self.embedder, BatchedEmbedder) else None
        return {"catalog": self.catalog.counts(), "vectors": self.ready().stats(),
                "embedding_model": self.embedder.model_id, "embedding_batches": batches}
