"""The memory service: every operation of the product, each made by an acting user.

Transports parse their input, make one call here and shape the answer. Writes are serialised by
one lock so that de-duplication and history stay exact; reads run concurrently.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from pydantic import ValidationError

from memos_mcp.config import Settings
from memos_mcp.core.access import AccessControl
from memos_mcp.core.chat import (
    ChatReply,
    ChatStream,
    Language,
    References,
    build_messages,
    check_history,
    collect,
    suggest,
    suggest_with_model,
)
from memos_mcp.core.diskspace import DiskGuard
from memos_mcp.core.documents import confine, read_document
from memos_mcp.core.embedder import Embedder
from memos_mcp.core.extractor import Candidate, Extractor, RuleExtractor, derived, label, split, text_pieces
from memos_mcp.core.extractor import derived_tags as derived_tags_of
from memos_mcp.core.factory import build_embedder, build_graph_store, build_language_model, build_vector_store
from memos_mcp.core.filters import SearchFilters, parse_filters
from memos_mcp.core.graph.extract import ExtractedGraph, without_names
from memos_mcp.core.graph.fusion import fuse_graph
from memos_mcp.core.graph.memory import Expansion, GraphMemory, MemoryGraph
from memos_mcp.core.graph.store import GraphStore
from memos_mcp.core.models import (
    AddJob,
    AddResult,
    Cube,
    HistoryEvent,
    Memory,
    MemoryKind,
    MemoryPage,
    MemorySource,
    MemoryStatus,
    MemoryType,
    Message,
    MessageIn,
    Permission,
    Role,
    SearchHit,
    SearchResult,
    Share,
    ShareState,
    SourceKind,
    Task,
    TaskStatus,
    User,
    utcnow,
)
from memos_mcp.core.payload import from_point, index_texts, to_payload
from memos_mcp.core.pipeline import AddWorker
from memos_mcp.core.relevance import query_variants, relativities
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.data_dir import lock_data_dir, writable
from memos_mcp.core.stores.vector import (
    HybridQuery,
    MemoryFilter,
    SparseVector,
    StoredPoint,
    VectorPoint,
    VectorStore,
)
from memos_mcp.core.tasks import TaskRunner
from memos_mcp.core.text import content_hash, derive_key, is_blank, sparse_document, sparse_query, terms
from memos_mcp.core.timeparse import parse_time
from memos_mcp.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    DataDirReadOnly,
    InvalidRequest,
    LLMNotConfigured,
    MemosError,
    NotFound,
    PayloadTooLarge,
    StorageError,
)

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
ROOT_USER = "root"
MAX_TOP_K = 1000
MAX_PAGE = 1_000_000  # keeps (page - 1) * size a 64-bit offset for the vector stores
MAX_SOURCES = 50  # sources a de-duplicated memory gathers from the adds it met
DEDUP_SCAN = 100  # stored memories with one text compared for the same metadata
MAX_METADATA_BYTES = 16_384  # a memory's metadata as JSON, at most
WRITE_GROUP = 256  # memories embedded together: the embedder sorts them by length to pad little
WRITE_OVERHEAD = 16_384  # bytes a stored memory or message may take on disk beyond its text, at most
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@")


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a usable id of ``kind`` (cube_id, user_id, ...): 1-128 letters, digits or
    ``- _ . : @``, not only dots (``.`` and ``..`` are path segments that URLs and resource URIs
    normalise away, so such an id could never be addressed). Raises InvalidRequest naming ``kind``."""
    if not value or len(value) > 128 or not set(value) <= _ID_CHARS:
        raise InvalidRequest(f"{kind} {value!r} is not valid: use 1-128 letters, digits or - _ . : @",
                             field=kind)
    if not value.strip("."):
        raise InvalidRequest(f"{kind} {value!r} is not valid: an id made only of dots cannot be addressed in "
                             "a URL; use at least one letter, digit or - _ : @", field=kind)
    return value


class MemoryService:
    def __init__(self, settings: Settings, catalog: Catalog, vectors: VectorStore, embedder: Embedder,
                 extractor: Extractor | None = None, lock: FileLock | None = None,
                 owns_embedder: bool = True, graph_store: GraphStore | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.extractor: Extractor = extractor or RuleExtractor(settings.search.context_turns)
        # The one client of the configured language model (chat, suggestions, extraction); None without one.
        self.llm: LanguageModel | None = build_language_model(settings)
        self.access = AccessControl(catalog)
        self._lock = lock
        self._owns_embedder = owns_embedder
        self.write_lock = threading.RLock()
        self.disk = DiskGuard(settings.data_dir, settings.storage.min_free_bytes)
        self._open = threading.RLock()  # re-entered by the start-up reconciliation (it opens the graph)
        self._vectors_ready = False
        self.graph_store = graph_store
        self._graph: GraphMemory | None = None
        self._check_model()
        if not self.read_only:
            self._ensure_user(ROOT_USER, Role.ROOT)
        self._worker = AddWorker(self._run_task, settings.add.concurrency)
        self._tasks = TaskRunner(self, self._worker.closing)
        if self.llm is not None:
            self._worker.start()  # its event loop is ready before the first add
        # Queued or interrupted before the last stop (a read-only data directory keeps them for later).
        for task in [] if self.read_only else self.catalog.open_tasks():
            self._worker.submit(task.task_id, _chain(task.cube_id, task.conversation_id))

    # --- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, extractor: Extractor | None = None,
             embedder: Embedder | None = None, allow_read_only: bool = False) -> MemoryService:
        """Open the data directory (exclusively), the catalog and the configured backends; an
        already loaded ``embedder`` may be handed in to share one model between services.

        A data directory that cannot be written (a read-only mount or snapshot) raises
        ``DataDirReadOnly`` naming it, unless ``allow_read_only``: then it is opened read-only and
        unlocked (nothing is written there: no lock file, no WAL, no recorded model, no resumed
        task) and every write raises ``DataDirReadOnly``. A file system below ``storage.min_free_bytes``
        raises ``StorageError``, or with ``allow_read_only`` is opened read-only the same way."""
        read_only = not writable(settings.data_dir)
        if read_only and not allow_read_only:
            raise DataDirReadOnly(f"data directory {settings.data_dir} is not writable; give a writable "
                                  "--data-dir, or read it with serve --read-only, stdio --read-only or export",
                                  data_dir=str(settings.data_dir))
        if not read_only:
            try:
                DiskGuard(settings.data_dir, settings.storage.min_free_bytes).check_startup()
            except StorageError:
                if not allow_read_only:
                    raise
                read_only = True  # a command that only reads gets the data off a full disk, writing nothing there
        lock = None if read_only else lock_data_dir(settings.data_dir)
        try:
            catalog = Catalog(settings.data_dir / "catalog.sqlite3", read_only)
            try:
                return cls(settings, catalog, build_vector_store(settings, read_only),
                           embedder or build_embedder(settings), extractor, lock, owns_embedder=embedder is None,
                           graph_store=build_graph_store(settings, read_only) if settings.graph.enabled else None)
            except BaseException:
                catalog.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @property
    def read_only(self) -> bool:
        """Whether the data directory was opened read-only (every write raises ``DataDirReadOnly``)."""
        return self.catalog.read_only

    def ready(self) -> VectorStore:
        """Load the embedder and open the vector store (once); the dimension comes from the model."""
        if not self._vectors_ready:
            with self._open:
                if not self._vectors_ready:
                    self.vectors.open(self.embedder.dimension)
                    if self.vectors.repaired:
                        log.warning("vector store repaired on open (a creation was cut short): made %s",
                                    ", ".join(self.vectors.repaired))
                    self._record_model()
                    self._reconcile()
                    self._vectors_ready = True
        return self.vectors

    def _reconcile(self) -> None:
        """Roll back the memory writes a stopped process left unfinished (never acknowledged): an add's
        points, graph and history go; an update's history event stays only if the point holds its text."""
        try:
            pending = self.catalog.pending_writes()
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
        except MemosError as exc:  # the next start tries again
            log.warning("unfinished writes could not be rolled back yet: %s", exc)
            return
        log.warning("rolled back the unfinished writes of %d memories (%d kept)",
                    len({e.memory_id for e in pending}) - len(kept), len(kept))

    def graph(self) -> GraphMemory | None:
        """The graph memory, its store opened on first use; None when graph memory is turned off."""
        if self.graph_store is not None and self._graph is None:
            with self._open:
                if self._graph is None:
                    self.graph_store.open()
                    self._graph = GraphMemory(self.graph_store, self.settings.graph.decay)
        return self._graph

    def _check_model(self) -> None:
        """At start-up, without loading anything: the data directory keeps the model it was made with."""
        stored = self.catalog.get_meta("embedding_model")
        if stored and stored != self.embedder.model_id:
            raise ConfigError(
                f"the vectors in {self.settings.data_dir} were made by embedding model '{stored}' (dimension "
                f"{self.catalog.get_meta('dimension')}) but '{self.embedder.model_id}' is configured; configure "
                "that model again, or export the cubes and import them into a new data directory to re-embed",
                stored=stored, configured=self.embedder.model_id)

    def _record_model(self) -> None:
        """Record the model at every open (not only the first: a first start may be killed before)."""
        if self.read_only or (self.catalog.get_meta("embedding_model") == self.embedder.model_id
                              and self.catalog.get_meta("dimension") == str(self.embedder.dimension)):
            return
        self.catalog.set_meta("embedding_model", self.embedder.model_id)
        self.catalog.set_meta("dimension", str(self.embedder.dimension))

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
            if self._vectors_ready:
                self.vectors.flush()
            self.vectors.close()
            if self._graph is not None:
                self._graph.store.close()
            if self._owns_embedder:
                self.embedder.close()
            if self.llm is not None:
                self.llm.close()
            self.catalog.close()
            if self._lock is not None:
                self._lock.release()

    # --- users ---------------------------------------------------------------------------------
    def _new_user(self, user_id: str, user_name: str | None, role: Role) -> tuple[User, Cube]:
        now = utcnow()
        user = User(user_id=user_id, user_name=user_name or user_id, role=role, created_at=now)
        cube_id = f"{user_id}_default_cube"
        if self.catalog.get_cube(cube_id) is not None:
            cube_id = f"{cube_id}_{uuid.uuid4().hex[:8]}"
        cube = Cube(cube_id=cube_id, name=f"{user.user_name}'s memories", owner_id=user_id,
                    created_at=now, is_default=True)
        self.catalog.create_user_with_cube(user, cube)
        return user, cube

    def _ensure_user(self, user_id: str, role: Role = Role.USER) -> User:
        with self.write_lock:
            user = self.catalog.get_user(check_id("user_id", user_id))
            return user if user is not None else self._new_user(user_id, None, role)[0]

    def ensure_user(self, user_id: str, role: Role = Role.USER) -> User:
        """The user, created with its default cube on first use (the operator's own entry points:
        the CLI and the stdio server's configured user)."""
        return self._ensure_user(user_id, role)

    def register_user(self, actor_id: str, user_id: str | None = None, user_name: str | None = None,
                      role: Role = Role.USER) -> tuple[User, Cube]:
        actor = self.access.user(actor_id)
        self.access.require_admin(actor, "register users")
        self.access.require_rank(actor, role, f"register a user with the {role.value} role")
        user_id = check_id("user_id", user_id or str(uuid.uuid4()))
        with self.write_lock:
            if self.catalog.get_user(user_id) is not None:
                raise Conflict(f"user '{user_id}' already exists", user_id=user_id)
            return self._new_user(user_id, user_name, role)

    def get_user(self, actor_id: str, user_id: str | None = None) -> tuple[User, list[Cube]]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        return user, self.list_cubes(user.user_id)

    def list_users(self, actor_id: str) -> list[User]:
        self.access.require_admin(self.access.user(actor_id), "list users")
        return self.catalog.list_users()

    # --- cubes ---------------------------------------------------------------------------------
    def create_cube(self, actor_id: str, name: str, cube_id: str | None = None,
                    owner_id: str | None = None) -> Cube:
        owner = self.access.acting_as(self.access.user(actor_id), owner_id)
        self.access.require_writer(owner)
        if is_blank(name):
            raise InvalidRequest("a cube needs a name", field="name")
        cube = Cube(cube_id=check_id("cube_id", cube_id or str(uuid.uuid4())), name=name.strip()[:200],
                    owner_id=owner.user_id, created_at=utcnow(), permission="owner")
        with self.write_lock:
            if self.catalog.get_cube(cube.cube_id) is not None:
                raise Conflict(f"cube '{cube.cube_id}' already exists", cube_id=cube.cube_id)
            self.catalog.create_cube(cube)
        return cube

    def list_cubes(self, actor_id: str, user_id: str | None = None) -> list[Cube]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        return [c.model_copy(update={"permission": AccessControl.access(user, c)})
                for c in self.catalog.cubes_of(user.user_id)]

    def get_cube(self, actor_id: str, cube_id: str) -> Cube:
        return self.access.cube(self.access.user(actor_id), cube_id, Permission.READ)

    def delete_cube(self, actor_id: str, cube_id: str) -> None:
        actor = self.access.user(actor_id)
        cube = self.access.manage(actor, cube_id)
        with self.write_lock:
            self.ready().delete_where(MemoryFilter(cube_ids=(cube.cube_id,), status=()))
            graph = self.graph()
            if graph is not None:
                graph.store.delete_cube(cube.cube_id)
            self.catalog.delete_cube(cube.cube_id)

    def share_cube(self, actor_id: str, cube_id: str, target_user_id: str,
                   permission: Permission = Permission.READ) -> Cube:
        """Offer the cube to another user (or change the permission of a share). The share stays
        ``pending`` until the recipient accepts it: until then it reaches only the recipient's calls
        that name the cube, never their default scope. The answer (the cube, with its accepted
        shares) is the same whether or not ``target_user_id`` exists: sharing cannot probe user ids."""
        cube = self.access.manage(self.access.user(actor_id), cube_id)
        check_id("target_user_id", target_user_id)
        if target_user_id == cube.owner_id:
            raise InvalidRequest(f"user '{target_user_id}' already owns cube '{cube_id}'", field="target_user_id")
        with self.write_lock:
            if self.catalog.get_user(target_user_id) is not None:
                self.catalog.share_cube(cube.cube_id, target_user_id, permission, utcnow())
        return self.access.cube(self.access.user(actor_id), cube_id, Permission.READ)

    def unshare_cube(self, actor_id: str, cube_id: str, target_user_id: str) -> None:
        cube = self.access.manage(self.access.user(actor_id), cube_id)
        self.catalog.unshare_cube(cube.cube_id, target_user_id)

    def list_shares(self, actor_id: str, state: ShareState | None = None) -> list[Share]:
        """The cubes offered to (``pending``) or shared with (``accepted``) the actor."""
        return self.catalog.shares_of(self.access.user(actor_id).user_id, state)

    def accept_share(self, actor_id: str, cube_id: str) -> Cube:
        """Accept a share offered to the actor: the cube joins its default scope (searches, lists)."""
        user = self.access.user(actor_id)
        if not self.catalog.accept_share(cube_id, user.user_id):
            raise NotFound("share of cube", cube_id, "List the shares offered to you with list_shares.")
        return self.access.cube(user, cube_id, Permission.READ)

    def decline_share(self, actor_id: str, cube_id: str) -> None:
        """Decline (or leave) a share: the actor loses all access the share gave."""
        user = self.access.user(actor_id)
        if not self.catalog.unshare_cube(cube_id, user.user_id):
            raise NotFound("share of cube", cube_id, "List the shares offered to you with list_shares.")

    # --- adding --------------------------------------------------------------------------------
    def add_memory(
        self, actor_id: str, *, cube_id: str | None = None, user_id: str | None = None,
        messages: Sequence[MessageIn | dict[str, Any]] | None = None, memory_content: str | None = None,
        doc_path: str | None = None, conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None, tags: Sequence[str] | None = None,
        chat_time: Any = None, memory_type: MemoryType | str | None = None, progress: Progress | None = None,
        async_mode: bool | None = None, message_ids: Sequence[str] | None = None,
    ) -> AddResult:
        """Add messages, a text or a document. With a language model, messages are stored at once and
        extracted in the background (the answer carries the task, ``queued``); ``async_mode=False``
        waits for the memories. Without one, the deterministic extractor runs before the answer.

        ``message_ids`` (one per message: an import's stable ids) store the messages under those ids;
        one already stored is not stored again. An add that fails leaves nothing behind (no memory,
        history or message); a file system below ``storage.min_free_bytes`` refuses it with
        ``StorageError`` (507) before anything is written."""
        author = self.access.acting_as(self.access.user(actor_id), user_id)
        cube = self.access.writable(author, cube_id)
        given = [name for name, value in (("messages", messages), ("memory_content", memory_content),
                                          ("doc_path", doc_path)) if value]
        if len(given) != 1:
            raise InvalidRequest("give exactly one of messages, memory_content or doc_path"
                                 + (f" (got {', '.join(given)})" if given else ""))
        conversation = check_id("conversation_id", conversation_id) if conversation_id else None
        meta = _check_metadata(metadata)
        tags = _check_tags(tags)
        kind_type = MemoryType(memory_type) if memory_type else None
        self.disk.check("add memories", WRITE_OVERHEAD * (len(messages or ()) + 1)
                        + 8 * len(memory_content or "") + sum(8 * len(str(m)) for m in messages or ()))
        if messages and self.llm is not None:
            return self._queue(author, cube, messages, conversation or "default", meta, list(tags or []), kind_type,
                               self.settings.add.async_mode if async_mode is None else async_mode, message_ids)
        if messages:
            conversation = conversation or "default"
            earlier = self.catalog.recent_messages([cube.cube_id], conversation, self.settings.search.context_turns)
            stored, new = self._messages(author, cube, messages, conversation, message_ids)
            self.catalog.add_messages(new)
            added: list[str] = []
            try:
                candidates = self.extractor.from_messages(stored, earlier)
                label(candidates, tags or [], kind_type)
                result = self.store_candidates(author, cube, candidates, conversation, meta, progress)
                added = result.added
                result.message_ids = [m.id for m in stored]
                result.task_id = self._record_task(author, cube, result)
            except BaseException:
                self._undo_add(cube.cube_id, added, [m.id for m in new])
                raise
            return result
        elif memory_content:
            self._check_size(memory_content, "memory_content")
            candidates = self._from_text(memory_content, MemoryKind.FACT, SourceKind.API,
                                         lambda i: MemorySource(type=SourceKind.API, chunk_index=i),
                                         _event_time(chat_time))
        else:
            candidates = self._from_document(confine(str(doc_path), self.settings.effective_import_roots))
        label(candidates, tags or [], kind_type)
        result = self.store_candidates(author, cube, candidates, conversation, meta, progress)
        try:
            result.task_id = self._record_task(author, cube, result)
        except BaseException:
            self._undo_add(cube.cube_id, result.added, [])
            raise
        return result

    def _undo_add(self, cube_id: str, memory_ids: Sequence[str], message_ids: Sequence[str]) -> None:
        """Take back what a failed add stored; what cannot be taken back now (the store failing again)
        is left to the start-up reconciliation (memories) or stays (messages), and logged."""
        try:
            with self.write_lock:
                if memory_ids:
                    self.vectors.delete(list(memory_ids))
                    graph = self.graph()
                    if graph is not None:
                        graph.forget(cube_id, list(memory_ids))
                    self.catalog.discard_memories(memory_ids)
                if message_ids:
                    self.catalog.delete_message_ids(message_ids)
        except MemosError as exc:
            log.error("a failed add could not be taken back (%d memories, %d messages): %s", len(memory_ids),
                      len(message_ids), exc)

    def _record_task(self, author: User, cube: Cube, result: AddResult) -> str:
        now = utcnow()
        task = Task(task_id=str(uuid.uuid4()), user_id=author.user_id, cube_id=cube.cube_id, status=TaskStatus.DONE,
                    created_at=now, updated_at=now, added=result.added, deduplicated=result.deduplicated,
                    extractor="rules")
        self.catalog.put_task(task)
        return task.task_id

    def _queue(self, author: User, cube: Cube, messages: Sequence[MessageIn | dict[str, Any]], conversation: str,
               metadata: dict[str, Any], tags: list[str], memory_type: MemoryType | None,
               async_mode: bool, message_ids: Sequence[str] | None = None) -> AddResult:
        """Store the messages and queue their extraction, in one transaction (a restart resumes it)."""
        stored, new = self._messages(author, cube, messages, conversation, message_ids)
        now = utcnow()
        task = Task(task_id=str(uuid.uuid4()), user_id=author.user_id, cube_id=cube.cube_id, status=TaskStatus.QUEUED,
                    created_at=now, updated_at=now, conversation_id=conversation,
                    job=AddJob(message_ids=[m.id for m in stored], conversation_id=conversation, metadata=metadata,
                               tags=tags, memory_type=memory_type))
        self.catalog.add_messages(new, task)
        done = self._worker.submit(task.task_id, _chain(cube.cube_id, conversation))
        if not async_mode:
            try:
                done.result(timeout=self.settings.add.sync_timeout)
            except FutureTimeout:
                log.warning("add task %s still running after %.0f s; answering with its status", task.task_id,
                            self.settings.add.sync_timeout)
        return self._task_result(task.task_id, [m.id for m in stored])

    def _task_result(self, task_id: str, message_ids: list[str]) -> AddResult:
        task = self.catalog.get_task(task_id)
        assert task is not None
        memories = [from_point(p) for p in self.ready().retrieve([*task.added, *task.deduplicated])] \
            if task.added or task.deduplicated else []
        return AddResult(memories=memories, added=task.added, deduplicated=task.deduplicated,
                         updated=task.updated, archived=task.archived, message_ids=message_ids, task_id=task_id,
                         status=task.status, cube_id=task.cube_id)

    def _run_task(self, task_id: str) -> None:
        self._tasks.run(task_id)

    def get_task(self, actor_id: str, task_id: str) -> Task:
        """The status of an add; another user's task is not found unless the actor is admin."""
        actor = self.access.user(actor_id)
        task = self.catalog.get_task(task_id)
        if task is None or (task.user_id != actor.user_id and not actor.is_admin):
            raise NotFound("task", task_id)
        return task

    def add_document(self, actor_id: str, path: Path, *, cube_id: str | None = None,
                     progress: Progress | None = None) -> AddResult:
        """Import a file the operator named (the CLI): no import-root confinement applies."""
        author = self.access.user(actor_id)
        cube = self.access.writable(author, cube_id)
        self.disk.check("import a document", 8 * path.stat().st_size if path.is_file() else 0)
        return self.store_candidates(author, cube, self._from_document(path.resolve()), None, {}, progress)

    def _from_document(self, path: Path) -> list[Candidate]:
        return self._from_text(read_document(path), MemoryKind.DOCUMENT, SourceKind.DOCUMENT,
                               lambda i: MemorySource(type=SourceKind.DOCUMENT, doc_path=str(path), chunk_index=i),
                               None)

    def _check_size(self, text: str, field: str) -> None:
        """The one check of text that becomes memory or a query: not blank (only whitespace, control or
        format characters such as a zero-width space), valid Unicode, at most max_memory_size characters."""
        if is_blank(text):
            raise InvalidRequest(f"{field} is empty (it has no visible character)", field=field)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"{field} is not valid Unicode (a lone surrogate)", field=field) from exc
        if len(text) > self.settings.max_memory_size:
            raise PayloadTooLarge(f"{field} has {len(text)} characters; the limit is "
                                  f"{self.settings.max_memory_size} (max_memory_size)", field=field)

    def _messages(self, author: User, cube: Cube, raw: Sequence[MessageIn | dict[str, Any]], conversation: str,
                  ids: Sequence[str] | None) -> tuple[list[Message], list[Message]]:
        """The validated messages, and those of them not stored yet (under ``ids`` when given, else new
        ids): the caller stores them (not under the write lock: an acknowledgement must not wait for a
        background extraction's writes)."""
        try:
            parsed = [m if isinstance(m, MessageIn) else MessageIn.model_validate(m) for m in raw]
        except ValidationError as exc:
            raise InvalidRequest.naming_field(exc, prefix="messages") from exc
        for index, message in enumerate(parsed):
            self._check_size(message.content, f"messages.{index}.content")
        if ids is not None and len(ids) != len(parsed):
            raise InvalidRequest(f"{len(ids)} message ids for {len(parsed)} messages", field="message_ids")
        now = utcnow()
        given = [check_id("message_ids", i) for i in ids] if ids is not None else [str(uuid.uuid4()) for _ in parsed]
        stored = [Message(id=i, cube_id=cube.cube_id, conversation_id=conversation,
                          user_id=author.user_id, role=m.role, content=m.content, name=m.name,
                          message_id=m.message_id, chat_time=m.chat_time, created_at=now)
                  for i, m in zip(given, parsed, strict=True)]
        known = self.catalog.message_cubes(given) if ids is not None else {}
        if any(cube_of != cube.cube_id for cube_of in known.values()):
            raise Conflict("a message id is already used in another cube", field="message_ids")
        return stored, [m for m in stored if m.id not in known]

    def _from_text(self, text: str, kind: MemoryKind, source: SourceKind,
                   source_of: Callable[[int], MemorySource], when: datetime | None) -> list[Candidate]:
        pieces = text_pieces(text, self.settings.chunk_size, kind, source, source_of, when)
        if not pieces:
            raise InvalidRequest("the text to add is empty")
        return pieces

    def store_candidates(self, author: User, cube: Cube, candidates: Sequence[Candidate], conversation: str | None,
                         metadata: dict[str, Any], progress: Progress | None = None,
                         embedded: Mapping[str, list[float]] | None = None) -> AddResult:
        """Write new candidates as memories; a candidate longer than ``chunk_size`` is stored as its
        pieces (``split``). A memory already stored in the cube with the same text and the same metadata
        is reported as de-duplicated instead (the caller's tags and sources are merged into it); the
        pieces of a longer text only ever match the same piece of the same text with the same metadata,
        so texts that share a passage keep a copy each. ``embedded`` holds vectors already made for
        dense index texts. All
        or nothing: on a failure (``StorageError`` 507 on a full disk) no memory of the call stays."""
        vectors = self.ready()
        result = AddResult(memories=[], cube_id=cube.cube_id)
        self.disk.check("add memories", sum(WRITE_OVERHEAD + 8 * len(c.memory) for c in candidates))
        with self.write_lock:
            fresh: list[tuple[Candidate, str]] = []
            seen: dict[str, Candidate] = {}
            for candidate in (p for c in candidates for p in split(c, self.settings.chunk_size)):
                digest = content_hash(f"{candidate.kind}:{candidate.part_of or ''}:{candidate.memory}"
                                      if candidate.part_of else f"{candidate.kind}:{candidate.memory}")
                if digest in seen:  # said twice in one add: one memory, from both places
                    first = seen[digest]
                    first.sources = [*first.sources, *(s for s in candidate.sources
                                                       if s not in first.sources)][:MAX_SOURCES]
                    continue
                seen[digest] = candidate
                same = [p for p in vectors.scroll(MemoryFilter(cube_ids=(cube.cube_id,), content_hash=digest),
                                                  DEDUP_SCAN)
                        if p.payload.get("metadata", {}) == metadata  # one conversation's: found through it
                        and p.payload.get("conversation_id") == conversation]
                if same:
                    merged = self._merge_into(same[0], candidate)
                    result.memories.append(merged)
                    result.deduplicated.append(merged.id)
                else:
                    fresh.append((candidate, digest))
            try:
                for start in range(0, len(fresh), WRITE_GROUP):
                    part = fresh[start:start + WRITE_GROUP]
                    memories = self._write_points(author, cube, part, conversation, metadata, embedded or {})
                    result.memories.extend(memories)
                    result.added.extend(m.id for m in memories)
                    if progress is not None:
                        progress(min(start + WRITE_GROUP, len(fresh)), len(fresh))
            except BaseException:
                self._undo_add(cube.cube_id, result.added, [])
                raise
        return result

    def _merge_into(self, point: StoredPoint, candidate: Candidate) -> Memory:
        """The stored memory a duplicate add lands on, with the add's tags and sources (the first
        ``MAX_SOURCES``: a phrase said over and over keeps where it was first said) merged in."""
        memory = from_point(point)
        tags = list(dict.fromkeys([*memory.tags, *candidate.given_tags]))
        sources = [*memory.sources, *(s for s in candidate.sources if s not in memory.sources)][:MAX_SOURCES]
        if tags == memory.tags and sources == memory.sources:
            return memory
        memory = memory.model_copy(update={"tags": tags, "sources": sources})
        self.vectors.set_payload(memory.id, {"tags": tags, "sources": [
            s.model_dump(mode="json") for s in sources]})
        return memory

    def _write_points(self, author: User, cube: Cube, part: Sequence[tuple[Candidate, str]],
                      conversation: str | None, metadata: dict[str, Any],
                      embedded: Mapping[str, list[float]]) -> list[Memory]:
        now = utcnow()
        memories = [Memory(
            id=str(uuid.uuid4()), cube_id=cube.cube_id, user_id=author.user_id, memory=c.memory, key=c.key,
            memory_type=c.memory_type, kind=c.kind, preference_type=c.preference_type, reasoning=c.reasoning,
            tags=c.tags, confidence=c.confidence, background=c.background, source=c.source, sources=c.sources,
            conversation_id=conversation, event_time=c.event_time, created_at=now, updated_at=now,
            metadata=dict(metadata)) for c, _ in part]
        texts = [self.index_texts(m.memory, c.speaker, c.context, c.event_time) for m, (c, _) in zip(
            memories, part, strict=True)]
        # A turn and its preference share one vector; vectors made already (de-duplication) are reused.
        unique = [d for d in dict.fromkeys(d for d, _ in texts) if d not in embedded]
        vectors = {**embedded, **dict(zip(unique, self.embedder.embed(unique), strict=True))}
        dense = [vectors[d] for d, _ in texts]
        self.commit_points(cube.cube_id, [
            VectorPoint(m.id, vec, sparse_document(sparse), to_payload(
                m, digest, c.context, c.speaker, [t for t in c.tags if t not in c.given_tags], key_given=False))
            for m, (c, digest), vec, (_, sparse) in zip(memories, part, dense, texts, strict=True)],
            [HistoryEvent(memory_id=m.id, cube_id=cube.cube_id, event="ADD", actor=author.user_id, at=now,
                          new_memory=m.memory) for m in memories],
            lambda: self._ingest_graph(cube.cube_id, [(m, c.graph, c.speaker)
                                                      for m, (c, _) in zip(memories, part, strict=True)]))
        return memories

    def commit_points(self, cube_id: str, points: Sequence[VectorPoint], events: Sequence[HistoryEvent],
                      then: Callable[[], None] | None = None) -> None:
        """Store new memories' points and their history (``ADD`` events) all or nothing, under the write
        lock: the history is recorded as pending first (one catalog transaction), then the points and
        ``then`` (the graph) are written, then the history is marked complete. A failure takes the points
        and history back and raises; a process killed before the end leaves pending history, which the
        next start rolls back with the points (the write was never acknowledged)."""
        if not points:
            return
        with self.write_lock:
            self.catalog.begin_writes(events)
            try:
                self.vectors.upsert(points)
                if then is not None:
                    then()
                self.catalog.end_writes([e.memory_id for e in events])
            except BaseException:
                self._undo_add(cube_id, [p.id for p in points], [])
                raise

    def _ingest_graph(self, cube_id: str, items: Sequence[tuple[Memory, ExtractedGraph | None, str | None]]) -> None:
        """The graph of stored memories: the extraction's own, or the deterministic one of text and speaker."""
        graph = self.graph()
        if graph is not None:
            read = iter(graph.extract(cube_id, [(m.memory, speaker) for m, given, speaker in items if given is None]))
            graph.ingest(cube_id, [MemoryGraph(m.id, given if given is not None else next(read),
                                               (m.event_time or m.created_at).timestamp())
                                   for m, given, _ in items])

    def index_texts(self, text: str, speaker: str | None, context: str,
                     event_time: datetime | None) -> tuple[str, str]:
        return index_texts(text, speaker, context, event_time, self.settings.search.dense_context)

    # --- reading -------------------------------------------------------------------------------
    def search(
        self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None, user_id: str | None = None,
        conversation_id: str | None = None, top_k: int | None = None, include_preference: bool = True,
        pref_top_k: int | None = None, filters: SearchFilters | dict[str, Any] | None = None,
        threshold: float | None = None, graph: bool | None = None, graph_depth: int | None = None,
    ) -> SearchResult:
        """Hybrid search, ranked by the fused score; with the graph on, memories linked to the entities the
        query names (within ``graph_depth`` hops) gain up to ``graph.weight`` of it, and join the hits if
        they were not among them. The names of people the graph resolves leave the text query (the links
        carry them), which is then weighted ``graph.dense_weight`` dense. Each hit's ``relativity`` is apart
        from the ranking: the calibrated relevance of ``core.relevance`` (the whole query against the
        memory), and hits below ``threshold`` (default ``search.threshold``) are dropped."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self._check_size(query or "", "query")
        search = self.settings.search
        top_k = _bounded("top_k", top_k, search.top_k)
        pref_top_k = _bounded("pref_top_k", pref_top_k, search.pref_top_k, minimum=0)
        depth = self.settings.graph.depth if graph_depth is None else graph_depth
        if depth not in (1, 2) or isinstance(depth, bool):
            raise InvalidRequest("graph_depth is 1 or 2", field="graph_depth")
        cubes = self.access.readable(user, cube_ids)
        if not cubes:
            return SearchResult(memories=[], preferences=[], cube_ids=[])
        expansion = self._graph_expansion(cubes, query, depth) if (self.settings.graph.search if graph is None
                                                                   else graph) else Expansion({})
        flt = parse_filters(filters, cubes)
        vectors = self.ready()
        text = without_names(query, expansion.people) if expansion.people else query
        text = text if terms(text) else query
        variants = query_variants(query)
        # One model call for the ranking query and the relevance judges (the variants of the query).
        embedded = dict(zip(texts := list(dict.fromkeys([text, *variants])), self.embedder.embed(texts), strict=True))
        dense = embedded[text]
        judges = [embedded[v] for v in variants]
        least = search.threshold if threshold is None else _threshold(threshold)
        sparse = sparse_query(text)
        dense_weight = self.settings.graph.dense_weight if text != query else None

        def run(kinds: tuple[str, ...], limit: int) -> list[SearchHit]:
            if not kinds or limit == 0:
                return []
            hq = self.hybrid_query(dense, sparse, _with_kinds(flt, kinds), limit, boost_conversation_id=conversation_id,
                                   conversation_boost=search.conversation_boost if conversation_id else 0.0,
                                   dense_weight=dense_weight)
            points = fuse_graph(vectors, hq, expansion.links, self.settings.graph.weight) if expansion.links else \
                vectors.hybrid_search(hq)
            memories = [from_point(p) for p in points]
            scores = relativities(judges, [(p.dense, m.memory) for p, m in zip(points, memories, strict=True)],
                                  self.embedder.embed)
            return [SearchHit.model_validate({**m.model_dump(), "relativity": r})
                    for m, r in zip(memories, scores, strict=True) if r >= least]

        wanted = flt.kinds or tuple(k.value for k in MemoryKind)
        facts = tuple(k for k in wanted if k != MemoryKind.PREFERENCE)
        prefs = tuple(k for k in wanted if k == MemoryKind.PREFERENCE) if include_preference else ()
        return SearchResult(memories=run(facts, top_k), preferences=run(prefs, pref_top_k), cube_ids=cubes)

    def hybrid_query(self, dense: list[float], sparse: SparseVector, flt: MemoryFilter, limit: int,
                     dense_weight: float | None = None, **options: Any) -> HybridQuery:
        """A fused query weighted as the search settings say, or with another ``dense_weight`` (the
        keyword weight then takes the rest of the settings' sum); ``options`` add boosts and a threshold."""
        search = self.settings.search
        dense_weight = search.dense_weight if dense_weight is None else dense_weight
        sparse_weight = max(0.0, search.dense_weight + search.sparse_weight - dense_weight)
        return HybridQuery(dense=dense, sparse=sparse, filter=flt, limit=limit, dense_weight=dense_weight,
                           sparse_weight=sparse_weight, sparse_saturation=search.sparse_saturation,
                           candidates=max(search.candidates, limit), **options)

    def _graph_expansion(self, cubes: Sequence[str], query: str, depth: int) -> Expansion:
        graph = self.graph()
        if graph is None:
            return Expansion({})
        links: dict[str, float] = {}
        people: list[str] = []
        for cube_id in cubes:
            found = graph.expand(cube_id, query, depth)
            links.update(found.links)
            people += found.people
        return Expansion(links, tuple(dict.fromkeys(people)))

    def get_memory(self, actor_id: str, memory_id: str, cube_id: str | None = None,
                   with_embedding: bool = False) -> Memory:
        user = self.access.user(actor_id)
        return self._readable_memory(user, memory_id, cube_id, with_embedding)

    def _readable_memory(self, user: User, memory_id: str, cube_id: str | None, with_embedding: bool = False,
                         need: Permission = Permission.READ) -> Memory:
        points = self.ready().retrieve([memory_id], with_vectors=with_embedding) if _is_uuid(memory_id) else []
        memory = from_point(points[0]) if points else None
        if memory is None or (cube_id and memory.cube_id != cube_id):
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        cube = self.catalog.get_cube(memory.cube_id)
        level = AccessControl.access(user, cube) if cube else None
        if level is None:
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        if need is Permission.WRITE:
            self.access.cube(user, memory.cube_id, Permission.WRITE)
        return memory

    def list_memories(self, actor_id: str, *, cube_ids: Sequence[str] | None = None,
                      user_id: str | None = None, page: int = 1, size: int = 20,
                      filters: SearchFilters | dict[str, Any] | None = None) -> MemoryPage:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= page <= MAX_PAGE or not 1 <= size <= 200:
            raise InvalidRequest(f"page lies in 1..{MAX_PAGE} and size in 1..200", page=page, size=size)
        cubes = self.access.readable(user, cube_ids)
        if not cubes:
            return MemoryPage(memories=[], total=0, page=page, size=size)
        flt = parse_filters(filters, cubes)
        vectors = self.ready()
        points = vectors.scroll(flt, size, offset=(page - 1) * size)
        return MemoryPage(memories=[from_point(p) for p in points], total=vectors.count(flt), page=page, size=size)

    def history(self, actor_id: str, memory_id: str) -> list[HistoryEvent]:
        user = self.access.user(actor_id)
        self.ready()  # unfinished writes of a stopped process are rolled back first
        events = self.catalog.history(memory_id)
        if not events:
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        cube = self.catalog.get_cube(events[0].cube_id)
        if cube is None or AccessControl.access(user, cube) is None:
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        return events

    # --- changing ------------------------------------------------------------------------------
    def update_memory(
        self, actor_id: str, memory_id: str, *, memory: str | None = None, key: str | None = None,
        tags: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
        status: MemoryStatus | str | None = None, memory_type: MemoryType | str | None = None,
        confidence: float | None = None, cube_id: str | None = None,
    ) -> Memory:
        user = self.access.user(actor_id)
        changes: dict[str, Any] = {}
        if memory is not None:
            self._check_size(memory, "memory")
            changes["memory"] = memory.strip()
        if key is not None:
            if is_blank(key):
                raise InvalidRequest("key is empty (nothing visible): leave it out to keep the key", field="key")
            changes["key"] = key.strip()[:200]
        if tags is not None:
            changes["tags"] = _check_tags(tags)
        if metadata is not None:
            changes["metadata"] = _check_metadata(metadata)
        try:
            if status is not None:
                changes["status"] = MemoryStatus(status)
            if memory_type is not None:
                changes["memory_type"] = MemoryType(memory_type)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if confidence is not None:
            if not 0 <= confidence <= 1:
                raise InvalidRequest("confidence lies in [0, 1]", field="confidence")
            changes["confidence"] = confidence
        if not changes:
            raise InvalidRequest("nothing to update: give memory, key, tags, metadata, status, memory_type "
                                 "or confidence")
        self.disk.check("update a memory", WRITE_OVERHEAD + 8 * len(memory or ""))
        with self.write_lock:
            old = self._readable_memory(user, memory_id, cube_id, need=Permission.WRITE)
            now = utcnow()
            point = self.vectors.retrieve([memory_id], with_vectors=True)[0]
            context, speaker = point.payload.get("context", ""), point.payload.get("speaker")
            derived_tags, key_derived = derived(old, point.payload)
            key_given = "key" in changes or not key_derived
            if changes.get("memory", old.memory) != old.memory:  # what the old text gave gives way to the new's
                fresh = derived_tags_of(changes["memory"], old.kind)
                kept = changes.get("tags", [t for t in old.tags if t not in derived_tags])
                changes["tags"] = kept if "tags" in changes else list(dict.fromkeys([*kept, *fresh]))
                derived_tags = [t for t in changes["tags"] if t in fresh and t not in kept]
                if not key_given:
                    changes["key"] = derive_key(changes["memory"])
            elif "tags" in changes:  # the caller's list: every tag in it is the caller's now
                derived_tags = []
            new = old.model_copy(update={**changes, "updated_at": now})
            digest = content_hash(f"{new.kind}:{new.memory}") if new.memory != old.memory else \
                str(point.payload.get("content_hash") or content_hash(f"{new.kind}:{new.memory}"))
            payload = to_payload(new, digest, context, speaker, derived_tags, key_given)
            archived = old.status is MemoryStatus.ACTIVATED and new.status is MemoryStatus.ARCHIVED
            # Recorded pending first: a start after a crash keeps it only if the point holds the new text.
            self.catalog.begin_writes([HistoryEvent(
                memory_id=new.id, cube_id=new.cube_id, event="ARCHIVE" if archived else "UPDATE",
                actor=user.user_id, at=now, old_memory=old.memory, new_memory=new.memory)])
            try:
                if new.memory != old.memory:
                    dense, sparse = self.index_texts(new.memory, speaker, context, new.event_time)
                    self.vectors.upsert([VectorPoint(new.id, self.embedder.embed([dense])[0], sparse_document(sparse),
                                                     payload)])
                    graph = self.graph()
                    if graph is not None:
                        graph.forget(new.cube_id, [new.id])
                        self._ingest_graph(new.cube_id, [(new, None, speaker)])
                else:
                    self.vectors.set_payload(new.id, payload)
                self.catalog.end_writes([new.id])
            except BaseException:
                self._undo_update(old, point)
                raise
        return new

    def _undo_update(self, old: Memory, point: StoredPoint) -> None:
        """Put a memory whose update failed back as it was (point, graph) and drop the update's history."""
        try:
            if point.dense is not None:
                _, sparse = self.index_texts(old.memory, point.payload.get("speaker"), point.payload.get("context", ""),
                                             old.event_time)
                self.vectors.upsert([VectorPoint(old.id, point.dense, sparse_document(sparse), point.payload)])
            graph = self.graph()
            if graph is not None:
                graph.forget(old.cube_id, [old.id])
                self._ingest_graph(old.cube_id, [(old, None, point.payload.get("speaker"))])
            self.catalog.undo_writes([old.id])
        except MemosError as exc:
            log.error("a failed update of memory %s could not be taken back: %s", old.id, exc)

    def delete_memory(self, actor_id: str, memory_id: str, cube_id: str | None = None) -> None:
        self.delete_memories(actor_id, [memory_id], cube_id)

    def delete_memories(self, actor_id: str, memory_ids: Sequence[str], cube_id: str | None = None) -> int:
        """Delete memories all or none: every id is checked (found, and in a cube the actor may write)
        before the first is deleted, so an error never follows a partial change. Returns how many. A
        guest is refused even when there is nothing to delete (no answer says a guest deleted)."""
        user = self.access.user(actor_id)
        self.access.require_writer(user)
        with self.write_lock:
            memories = [self._readable_memory(user, m, cube_id, need=Permission.WRITE)
                        for m in dict.fromkeys(memory_ids)]
            self._forget(user, memories)
        return len(memories)

    def delete_matching(self, actor_id: str, filters: SearchFilters | dict[str, Any] | None, *,
                        user_id: str | None = None) -> tuple[int, list[str]]:
        """Delete the memories matching ``filters`` in every cube of the user's scope it may write. Cubes
        it may only read are skipped (nothing in them changes); returns how many were deleted and the
        cubes skipped that held matches."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.access.require_writer(user)
        scope = self.catalog.cubes_of(user.user_id)
        writable = [c.cube_id for c in scope if AccessControl.may_write(user, c)]
        readonly = [c.cube_id for c in scope if c.cube_id not in writable]
        with self.write_lock:
            vectors = self.ready()
            skipped = [c for c in readonly if vectors.count(parse_filters(filters, [c]))]
            if not writable:
                parse_filters(filters, [])  # a bad filter is still an error
                return 0, skipped
            flt = parse_filters(filters, writable)
            memories = [from_point(p) for p in vectors.scroll(flt, max(1, vectors.count(flt)))]
            self._forget(user, memories)
        return len(memories), skipped

    def _forget(self, user: User, memories: Sequence[Memory]) -> None:
        """Remove memories (already checked) from the vectors, the graph and the history's text."""
        if not memories:
            return
        self.vectors.delete([m.id for m in memories])
        graph = self.graph()
        by_cube: dict[str, list[str]] = {}
        for memory in memories:
            by_cube.setdefault(memory.cube_id, []).append(memory.id)
        now = utcnow()
        for cube_id, ids in by_cube.items():
            if graph is not None:
                graph.forget(cube_id, ids)
            self.catalog.forget(ids, cube_id, user.user_id, now)

    def delete_all(self, actor_id: str, cube_id: str) -> int:
        user = self.access.user(actor_id)
        cube = self.access.cube(user, cube_id, Permission.WRITE)
        flt = MemoryFilter(cube_ids=(cube.cube_id,), status=())
        with self.write_lock:
            vectors = self.ready()
            ids = [p.id for points in vectors.walk(flt, 1000) for p in points]
            vectors.delete_where(flt)
            graph = self.graph()
            if graph is not None:  # the relations stated directly go too: nothing of the cube is left
                graph.store.delete_cube(cube.cube_id)
            self.catalog.forget(ids, cube.cube_id, user.user_id, utcnow())
        return len(ids)

    # --- conversations -------------------------------------------------------------------------
    def get_messages(self, actor_id: str, conversation_id: str, *, cube_ids: Sequence[str] | None = None,
                     user_id: str | None = None, limit: int = 100) -> list[Message]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit lies in 1..10000", field="limit")
        cubes = self.access.readable(user, cube_ids)
        return self.catalog.recent_messages(cubes, conversation_id, limit) if cubes else []

    def list_conversations(self, actor_id: str, *, cube_ids: Sequence[str] | None = None,
                           user_id: str | None = None) -> list[dict[str, Any]]:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        cubes = self.access.readable(user, cube_ids)
        return self.catalog.conversations(cubes) if cubes else []

    def clear_chat_history(self, actor_id: str, conversation_id: str | None = None, *,
                           cube_id: str | None = None, user_id: str | None = None) -> int:
        """Delete stored messages (memories made from them stay) of one conversation or all."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.access.require_writer(user)
        cubes = ([self.access.cube(user, cube_id, Permission.WRITE).cube_id] if cube_id else
                 [c.cube_id for c in self.catalog.cubes_of(user.user_id) if c.owner_id == user.user_id])
        with self.write_lock:
            return self.catalog.delete_messages(cubes, conversation_id) if cubes else 0

    # --- chat ----------------------------------------------------------------------------------
    def chat_stream(
        self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None,
        conversation_id: str | None = None, user_id: str | None = None,
        history: Sequence[Mapping[str, Any]] | None = None, system_prompt: str | None = None,
        top_k: int | None = None, include_preference: bool = True, pref_top_k: int | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
    ) -> ChatStream:
        """Start an answer grounded in memory. Everything that can fail before the first token does so
        here (no model, unknown or forbidden cube, the model unreachable, timing out or rate limiting
        through its retries); the returned stream yields the references, the answer's text as it comes,
        and the reply. A complete exchange is stored in the conversation and remembered.

        The exchange lives in the first of ``cube_ids`` the user may write, else the default cube; the
        window is that conversation's last ``llm.max_turns_window`` turns there, unless ``history`` (the
        caller's own ``[{role, content}]`` turns) is given, which replaces it. ``temperature`` and
        ``max_tokens`` override the model settings for this answer."""
        llm = self._language_model("chat")
        started = time.perf_counter()
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        conversation = check_id("conversation_id", conversation_id or "default")
        turns = self.settings.llm.max_turns_window
        window = check_history(history, turns) if history is not None else None
        found = self.search(user.user_id, query, cube_ids=cube_ids, conversation_id=conversation, top_k=top_k,
                            include_preference=include_preference, pref_top_k=pref_top_k)
        home = self._chat_home(user, found.cube_ids if cube_ids else [])
        if window is None:
            window = [{"role": m.role, "content": m.content}
                      for m in self.catalog.recent_messages([home.cube_id], conversation, 2 * turns)
                      if m.role in ("user", "assistant")]
        deltas = llm.stream(build_messages(query, found, window, system_prompt), temperature=temperature,
                            max_tokens=max_tokens)
        first = next(deltas, None)  # the request is made, and retried, before the caller sees a frame
        return ChatStream(References(found.memories, found.preferences), conversation, first, deltas,
                          lambda answer: self._remember_exchange(user, home, conversation, query, answer),
                          started)

    def chat(self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None,
             conversation_id: str | None = None, user_id: str | None = None,
             history: Sequence[Mapping[str, Any]] | None = None, system_prompt: str | None = None,
             top_k: int | None = None, include_preference: bool = True, pref_top_k: int | None = None,
             on_delta: Callable[[str], None] | None = None, temperature: float | None = None,
             max_tokens: int | None = None) -> ChatReply:
        """The whole answer of ``chat_stream``; ``on_delta`` hears each piece of text as it arrives."""
        return collect(self.chat_stream(
            actor_id, query, cube_ids=cube_ids, conversation_id=conversation_id, user_id=user_id, history=history,
            system_prompt=system_prompt, top_k=top_k, include_preference=include_preference,
            pref_top_k=pref_top_k, temperature=temperature, max_tokens=max_tokens), on_delta)

    def _language_model(self, operation: str) -> LanguageModel:
        if self.llm is None:
            raise LLMNotConfigured(operation)
        return self.llm

    def _chat_home(self, user: User, cube_ids: Sequence[str]) -> Cube:
        """Where a chat's exchange is stored: the first named cube the user may write, else the default."""
        for cube_id in cube_ids:
            cube = self.catalog.get_cube(cube_id)
            if cube is not None and AccessControl.may_write(user, cube):
                return cube
        return self.access.writable(user, None)

    def _remember_exchange(self, user: User, cube: Cube, conversation_id: str, query: str, answer: str) -> None:
        """Store a complete exchange in its conversation and add it to memory (in the background: chat has a
        model, so the add is queued whatever ``add.async_mode`` says)."""
        self.add_memory(user.user_id, cube_id=cube.cube_id, conversation_id=conversation_id, async_mode=True,
                        messages=[MessageIn(role="user", content=query),
                                  MessageIn(role="assistant", content=answer or "(no answer)")])

    def suggestions(self, actor_id: str, user_id: str | None = None, cube_ids: Sequence[str] | None = None,
                    language: Language = "en") -> list[str]:
        """Three follow-up questions from the user's most recent memories: written by the model when one
        is configured, else (and whenever the model fails or answers badly) about the memories' keys."""
        memories = self.list_memories(actor_id, user_id=user_id, cube_ids=cube_ids, size=20).memories
        if self.llm is not None and memories:
            try:
                return suggest_with_model(self.llm, memories, language)
            except (BackendUnavailable, ValueError) as exc:  # unusable JSON included
                log.warning("suggestions fall back to memory keys: %s", exc)
        return suggest(memories, language=language)

    def stats(self) -> dict[str, Any]:
        return {"catalog": self.catalog.counts(), "vectors": self.ready().stats(),
                "embedding_model": self.embedder.model_id}


def _chain(cube_id: str, conversation_id: str | None) -> str:
    """Tasks of one conversation run one after the other."""
    return f"{cube_id}/{conversation_id or ''}"


def _bounded(name: str, value: int | None, default: int, minimum: int = 1) -> int:
    chosen = default if value is None else value
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not minimum <= chosen <= MAX_TOP_K:
        raise InvalidRequest(f"{name} must be a whole number in {minimum}..{MAX_TOP_K}", field=name)
    return chosen


def _threshold(value: float) -> float:
    """A search's least relativity: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequest("threshold (the least relativity) is a number in [0, 1]", field="threshold")
    return float(value)


def _event_time(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequest(f"chat_time: {exc}", field="chat_time") from exc


def _with_kinds(flt: MemoryFilter, kinds: tuple[str, ...]) -> MemoryFilter:
    return replace(flt, kinds=kinds)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    """The caller's tags as text; a tag with nothing visible in it is refused naming it."""
    checked = [str(tag).strip() for tag in tags or ()]
    for index, tag in enumerate(checked):
        if is_blank(tag):
            raise InvalidRequest(f"tags.{index} is empty (nothing visible)", field=f"tags.{index}")
    return checked


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object of keys to values", field="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > 64 or not set(key) <= _ID_CHARS:
            raise InvalidRequest(f"metadata key {key!r} is not valid: use 1-64 letters, digits or - _ . : @",
                                 field="metadata")
        if not _json_value(value):
            raise InvalidRequest(f"metadata value of {key!r} must be JSON: text, a finite number (integers within "
                                 "64 bits), boolean, list or object",
                                 field=f"metadata.{key}")
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:  # every answer carries it: one memory must not fill a client's message
        raise PayloadTooLarge(f"metadata takes {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}",
                              field="metadata", limit=MAX_METADATA_BYTES)
    return dict(metadata)


def _json_value(value: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if isinstance(value, float):  # NaN and infinities are not JSON: a store would keep them as null
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -2**63 <= value < 2**63  # what the stores keep exactly
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, list):
        return all(_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v, depth + 1) for k, v in value.items())
    return False
