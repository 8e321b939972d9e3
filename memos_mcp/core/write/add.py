"""Adding memories: messages (extracted at once by the rule extractor, or queued for the language
model), a text or a document; de-duplication against the cube; the all-or-nothing write of new
memories with their history and graph."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from memos_mcp.core.checks import (
    MAX_SOURCES,
    check_id,
    check_metadata,
    check_tags,
    event_time,
    id_key,
    same_json,
)
from memos_mcp.core.context import Room, Stores
from memos_mcp.core.graph.store import normalise
from memos_mcp.core.models import (
    AddJob,
    AddResult,
    Cube,
    HistoryEvent,
    Memory,
    MemoryKind,
    MemorySource,
    MemoryType,
    Message,
    MessageIn,
    Permission,
    SourceKind,
    Task,
    TaskStatus,
    User,
    utcnow,
)
from memos_mcp.core.payload import from_point, to_payload
from memos_mcp.core.stores.vector import MemoryFilter, StoredPoint, VectorPoint
from memos_mcp.core.text import content_hash, exact_hash, sparse_document
from memos_mcp.core.write.facts import conversation_context, speaker_of, split_speaker
from memos_mcp.core.write.ingest.documents import confine, read_document
from memos_mcp.core.write.ingest.extractor import Candidate, label, split, text_pieces
from memos_mcp.core.write.ingest.lease import Lease, claimant, outcome
from memos_mcp.core.write.ingest.pipeline import AddWorker
from memos_mcp.errors import Conflict, InvalidRequest, MemosError, NotFound

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
DEDUP_SCAN = 100  # stored memories with one text compared for the same metadata
WRITE_GROUP = 256  # memories embedded together: the embedder sorts them by length to pad little
WRITE_OVERHEAD = 16_384  # bytes a stored memory or message may take on disk beyond its text, at most


class Writes(Room):
    """The add path. Queued adds go to ``worker`` (its work function runs them: ``ingest.tasks``)."""

    def __init__(self, stores: Stores, worker: AddWorker) -> None:
        super().__init__(stores)
        self.worker = worker
        self._submitted: set[str] = set()  # tasks handed to the worker and not yet over
        self._submitted_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self.owner = claimant()  # this process, as the holder of the tasks of the adds it runs itself

    def resume(self) -> None:
        """Submit the tasks queued or interrupted before the last stop (a read-only data directory keeps
        them for later). On a catalog other processes share (PostgreSQL), keep taking over, every half
        lease, the tasks of processes that died (``Catalog.lapsed_tasks``) and rolling back the memory
        writes they left unfinished (``Stores.roll_back_abandoned``) until the worker closes."""
        if self.stores.read_only:
            return
        for task in self.catalog.open_tasks():
            self._submit(task)
        if self.catalog.backend != "sqlite" and self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="memos-task-sweep", daemon=True)
            self._sweeper.start()

    def _sweep(self) -> None:
        lease = self.settings.add.task_lease
        while not self.worker.closing.wait(lease / 2):
            try:
                for task in self.catalog.lapsed_tasks(unclaimed_s=5 * lease):
                    self._submit(task)
                if self.stores.vectors_ready:  # the writes of processes that died mid-write (none may restart)
                    self.stores.roll_back_abandoned()
            except MemosError as exc:  # the database is away for a while: look again next time
                log.warning("looking for abandoned add tasks failed: %s", exc.message)
            except RuntimeError:  # the worker closed meanwhile
                return

    def _submit(self, task: Task) -> Future[None] | None:
        """Hand a task to the worker (its future), unless this process already has it in hand (None)."""
        with self._submitted_lock:
            if task.task_id in self._submitted:
                return None
            self._submitted.add(task.task_id)
        done = self.worker.submit(task.task_id, chain(task.cube_id, task.conversation_id))
        done.add_done_callback(lambda _: self._over(task.task_id))
        return done

    def _over(self, task_id: str) -> None:
        with self._submitted_lock:
            self._submitted.discard(task_id)

    def add_memory(
        self, actor_id: str, *, cube_id: str | None = None, user_id: str | None = None,
        messages: Sequence[MessageIn | dict[str, Any]] | None = None, memory_content: str | None = None,
        doc_path: str | None = None, conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None, tags: Sequence[str] | None = None,
        chat_time: Any = None, memory_type: MemoryType | str | None = None, progress: Progress | None = None,
        async_mode: bool | None = None, message_ids: Sequence[str] | None = None, infer: bool = True,
    ) -> AddResult:
        """Add messages, a text or a document. With a language model, messages are stored at once and
        extracted in the background (the answer carries the task, ``queued``); ``async_mode=False``
        waits for the memories. Without one, or with ``infer=False`` (mem0's name: store the messages
        as given), the deterministic extractor runs before the answer.

        A ``memory_content`` is a fact timed by ``chat_time``; with a ``conversation_id`` it is indexed
        with the conversation's earlier facts, and "Name: ..." can name its speaker (``facts``).

        ``message_ids`` (one per message: an import's stable ids) store the messages under those ids;
        one already stored is not stored again. An add that fails leaves nothing behind (no memory,
        history or message); one of messages whose process stopped part-way is finished by the next start
        (``_extract_now``); a file system below ``storage.min_free_bytes`` refuses it with
        ``StorageError`` (507) before anything is written."""
        author = self.access.acting_as(self.access.user(actor_id), user_id)
        cube = self.access.writable(author, cube_id)
        given = [name for name, value in (("messages", messages), ("memory_content", memory_content),
                                          ("doc_path", doc_path)) if value]
        if len(given) != 1:
            raise InvalidRequest("give exactly one of messages, memory_content or doc_path"
                                 + (f" (got {', '.join(given)})" if given else ""))
        conversation = check_id("conversation_id", conversation_id) if conversation_id else None
        meta = check_metadata(metadata)
        tags = check_tags(tags)
        kind_type = MemoryType(memory_type) if memory_type else None
        self.disk.check("add memories", WRITE_OVERHEAD * (len(messages or ()) + 1)
                        + 8 * len(memory_content or "") + sum(8 * len(str(m)) for m in messages or ()))
        if messages and infer and self.stores.llm is not None:
            return self._queue(author, cube, messages, conversation or "default", meta, list(tags or []), kind_type,
                               self.settings.add.async_mode if async_mode is None else async_mode, message_ids)
        if messages:
            return self._extract_now(author, cube, messages, conversation or "default", meta, list(tags or []),
                                     kind_type, message_ids, progress)
        if memory_content:
            self.stores.check_text(memory_content, "memory_content")
            candidates = self._from_text(memory_content, MemoryKind.FACT, SourceKind.API,
                                         lambda i: MemorySource(type=SourceKind.API, chunk_index=i),
                                         event_time(chat_time))
            self._as_said(cube, candidates, memory_content, conversation)
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

    def _as_said(self, cube: Cube, candidates: Sequence[Candidate], text: str, conversation: str | None) -> None:
        """Index a fact as a turn of its conversation (its earlier facts as context) and give it the
        speaker its text names ("Caroline: ...", see ``facts.speaker_of``)."""
        context, known = conversation_context(self.ready(), cube.cube_id, conversation,
                                              self.settings.search.context_turns) if conversation else ("", set())
        found = split_speaker(text)
        graph = self.graph()
        if found is not None and graph is not None and normalise(found[0]) not in known:
            known |= graph.people(cube.cube_id, [found[0]])
        speaker = speaker_of(text, known) if found is not None else None
        for candidate in candidates:
            candidate.context, candidate.speaker = context, speaker

    def _still_writable(self, author: User, cube: Cube) -> None:
        """Under ``write_lock``, just before an add writes: the cube still exists and ``author`` may still
        write to it (``NotFound``, ``Forbidden``). An add checks this when it starts too, but a delete of
        the cube, or a revoked share, may have come between: its memories then landed in a deleted cube,
        and whoever made a cube of that id next read them."""
        self.access.cube(self.access.user(author.user_id), cube.cube_id, Permission.WRITE)

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
        with self.write_lock:
            self._still_writable(author, cube)
            self.catalog.add_messages(new, task)
        done = self._submit(task)
        if not async_mode and done is not None:
            try:
                done.result(timeout=self.settings.add.sync_timeout)
            except FutureTimeout:
                log.warning("add task %s still running after %.0f s; answering with its status", task.task_id,
                            self.settings.add.sync_timeout)
        return self._task_result(task.task_id, [m.id for m in stored])

    def _extract_now(self, author: User, cube: Cube, messages: Sequence[MessageIn | dict[str, Any]],
                     conversation: str, metadata: dict[str, Any], tags: list[str], memory_type: MemoryType | None,
                     message_ids: Sequence[str] | None, progress: Progress | None) -> AddResult:
        """An add of messages by the rule extractor, done before the answer. The messages are stored with
        a task that holds the add's job, claimed by this process (one transaction); the memories are
        written, then the task is done. A process stopped in between leaves the task open: the next start
        (or, on a shared catalog, another process once the lease lapses) makes the memories from the stored
        messages as this add would have (``ingest.tasks``), so no message stays without its memories. A
        failure takes the messages back and fails the task, then raises."""
        earlier = self.catalog.recent_messages([cube.cube_id], conversation, self.settings.search.context_turns)
        stored, new = self._messages(author, cube, messages, conversation, message_ids)
        now = utcnow()
        job = AddJob(message_ids=[m.id for m in stored], conversation_id=conversation, metadata=metadata, tags=tags,
                     memory_type=memory_type, extractor="rules")
        task = Task(task_id=str(uuid.uuid4()), user_id=author.user_id, cube_id=cube.cube_id, status=TaskStatus.RUNNING,
                    created_at=now, updated_at=now, conversation_id=conversation, extractor="rules", attempts=1,
                    job=job)
        lease_s = self.settings.add.task_lease
        with self.write_lock:
            self._still_writable(author, cube)
            self.catalog.add_messages(new, task, claim=(self.owner, lease_s))
        with Lease(self.catalog, task.task_id, self.owner, lease_s) as lease:
            try:
                result = self.extract_by_rules(author, cube, job, stored, earlier, progress)
            except BaseException as exc:
                self._undo_add(cube.cube_id, [], [m.id for m in new])
                lease.finish(outcome(task, TaskStatus.FAILED, str(exc)[:500]))
                raise
            lease.finish(outcome(task, TaskStatus.DONE, added=result.added, deduplicated=result.deduplicated))
        result.message_ids, result.task_id = [m.id for m in stored], task.task_id
        return result

    def extract_by_rules(self, author: User, cube: Cube, job: AddJob, messages: Sequence[Message],
                         earlier: Sequence[Message], progress: Progress | None = None) -> AddResult:
        """Store what the rule extractor makes of ``messages`` (``earlier``: the turns before them, indexed
        as their context), labelled as ``job`` says: an add without a language model, and the same add
        resumed after a stop."""
        candidates = self.stores.extractor.from_messages(list(messages), list(earlier))
        label(candidates, job.tags, job.memory_type)
        return self.store_candidates(author, cube, candidates, job.conversation_id, job.metadata, progress)

    def _task_result(self, task_id: str, message_ids: list[str]) -> AddResult:
        task = self.catalog.get_task(task_id)
        assert task is not None
        memories = [from_point(p) for p in self.ready().retrieve([*task.added, *task.deduplicated])] \
            if task.added or task.deduplicated else []
        return AddResult(memories=memories, added=task.added, deduplicated=task.deduplicated,
                         updated=task.updated, archived=task.archived, message_ids=message_ids, task_id=task_id,
                         status=task.status, cube_id=task.cube_id)

    def get_task(self, actor_id: str, task_id: str) -> Task:
        """The status of an add; another user's task is not found unless the actor is admin."""
        actor = self.access.user(actor_id)
        task = self.catalog.get_task(id_key(task_id))
        if task is None or (task.user_id != actor.user_id and not actor.is_admin):
            raise NotFound("task", task_id)
        return task

    def list_tasks(self, actor_id: str, limit: int = 100) -> list[Task]:
        """The actor's newest tasks (every user's for an admin), newest first; ``limit`` in 1..1000."""
        actor = self.access.user(actor_id)
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit lies in 1..1000", field="limit")
        return self.catalog.recent_tasks(None if actor.is_admin else actor.user_id, limit)

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

    def check_messages(self, raw: Sequence[MessageIn | dict[str, Any]]) -> list[MessageIn]:
        """``raw`` validated as ``add_memory`` takes messages: ``InvalidRequest`` naming the field of the
        first bad one (``messages.<index>.content``; a name or message id no store keeps too),
        ``PayloadTooLarge`` for one beyond max_memory_size."""
        try:
            parsed = [m if isinstance(m, MessageIn) else MessageIn.model_validate(m) for m in raw]
        except ValidationError as exc:
            raise InvalidRequest.naming_field(exc, prefix="messages") from exc
        for index, message in enumerate(parsed):
            self.stores.check_message(message, f"messages.{index}.")
        return parsed

    def _messages(self, author: User, cube: Cube, raw: Sequence[MessageIn | dict[str, Any]], conversation: str,
                  ids: Sequence[str] | None) -> tuple[list[Message], list[Message]]:
        """The validated messages, and those of them not stored yet (under ``ids`` when given, else new
        ids): the caller stores them (not under the write lock: an acknowledgement must not wait for a
        background extraction's writes)."""
        parsed = self.check_messages(raw)
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
        pieces = [p for c in candidates for p in split(c, self.settings.chunk_size)]
        windowed: dict[str, dict[str, str]] | None = None
        if len(pieces) <= WRITE_GROUP:  # a small add embeds before the lock: concurrent adds share model calls
            embedded = self._embedded(pieces, embedded or {})
            windowed = self.stores.window_vectors([p.memory for p in pieces])
        with self.write_lock:
            self._still_writable(author, cube)
            fresh: list[tuple[Candidate, str]] = []
            seen: dict[str, Candidate] = {}  # by _label
            for candidate in pieces:
                label = _label(candidate)
                if label in seen:  # said twice in one add: one memory, from both places
                    first = seen[label]
                    first.sources = [*first.sources, *(s for s in candidate.sources
                                                       if s not in first.sources)][:MAX_SOURCES]
                    continue
                seen[label] = candidate
                digest = content_hash(label)
                same = [p.id for p in vectors.scroll(MemoryFilter(cube_ids=(cube.cube_id,), content_hash=digest),
                                                     DEDUP_SCAN) if _holds(p, candidate, metadata, conversation)]
                merged = self._merge_into(same, candidate, metadata, conversation) if same else None
                if merged is not None:
                    result.memories.append(merged)
                    result.deduplicated.append(merged.id)
                else:
                    fresh.append((candidate, digest))
            try:
                for start in range(0, len(fresh), WRITE_GROUP):
                    part = fresh[start:start + WRITE_GROUP]
                    memories, held = self._write_points(author, cube, part, conversation, metadata, embedded or {},
                                                        windowed)
                    result.memories.extend([*memories, *held])
                    result.added.extend(m.id for m in memories)
                    result.deduplicated.extend(m.id for m in held)
                    if progress is not None:
                        progress(min(start + WRITE_GROUP, len(fresh)), len(fresh))
            except BaseException:
                self._undo_add(cube.cube_id, result.added, [])
                raise
        return result

    def _embedded(self, pieces: Sequence[Candidate], embedded: Mapping[str, list[float]]) -> dict[str, list[float]]:
        """``embedded`` and the vectors of the pieces' dense index texts it lacks (one embedding call)."""
        texts = (self.stores.index_texts(c.memory, c.speaker, c.context, c.event_time)[0] for c in pieces)
        missing = [d for d in dict.fromkeys(texts) if d not in embedded]
        return {**embedded, **dict(zip(missing, self.embedder.embed(missing), strict=True))}

    def _merge_into(self, ids: Sequence[str], candidate: Candidate, metadata: dict[str, Any],
                    conversation: str | None) -> Memory | None:
        """The stored memory a duplicate add lands on, with the add's tags and sources (the first
        ``MAX_SOURCES``: a phrase said over and over keeps where it was first said) merged in: the first
        of ``ids`` (memories found holding the add's text) that a live process acknowledged (a dead
        replica's unfinished add is rolled back by the next clean-up: an add answered as its duplicate
        would be lost) and that still holds the text once its write is held (``Catalog.in_flight``:
        another replica's update or delete of it under way is waited for, and its next one waits for the
        merge). None when none is: the add stores its own memory."""
        gone = self.catalog.unacknowledged(ids)
        for memory_id in (i for i in ids if i not in gone):
            with self.catalog.in_flight([memory_id]):
                now = self.vectors.retrieve([memory_id])
                if not now or not _holds(now[0], candidate, metadata, conversation):
                    continue
                memory = from_point(now[0])
                tags = list(dict.fromkeys([*memory.tags, *candidate.given_tags]))
                sources = [*memory.sources, *(s for s in candidate.sources if s not in memory.sources)][:MAX_SOURCES]
                if tags == memory.tags and sources == memory.sources:
                    return memory
                self.vectors.set_payload(memory.id, {"tags": tags, "sources": [
                    s.model_dump(mode="json") for s in sources]})
                return memory.model_copy(update={"tags": tags, "sources": sources})
        return None

    def _write_points(self, author: User, cube: Cube, part: Sequence[tuple[Candidate, str]],
                      conversation: str | None, metadata: dict[str, Any], embedded: Mapping[str, list[float]],
                      windowed: Mapping[str, dict[str, str]] | None) -> tuple[list[Memory], list[Memory]]:
        """Embed and store new memories: those stored, and those another memory of the cube already
        held the key of (another process on the same catalog stored it first), each as that holder with
        this add's tags and sources merged in (``_merge_into``).
        ``windowed``: the long texts' window vectors made already (``Stores.window_vectors``), or None."""
        now = utcnow()
        memories = [Memory(
            id=str(uuid.uuid4()), cube_id=cube.cube_id, user_id=author.user_id, memory=c.memory, key=c.key,
            memory_type=c.memory_type, kind=c.kind, preference_type=c.preference_type, reasoning=c.reasoning,
            tags=c.tags, confidence=c.confidence, background=c.background, source=c.source, sources=c.sources,
            conversation_id=conversation, event_time=c.event_time, created_at=now, updated_at=now,
            metadata=dict(metadata)) for c, _ in part]
        texts = [self.stores.index_texts(m.memory, c.speaker, c.context, c.event_time) for m, (c, _) in zip(
            memories, part, strict=True)]
        # A turn and its preference share one vector; vectors made already (de-duplication) are reused.
        unique = [d for d in dict.fromkeys(d for d, _ in texts) if d not in embedded]
        vectors = {**embedded, **dict(zip(unique, self.embedder.embed(unique), strict=True))}
        dense = [vectors[d] for d, _ in texts]
        if windowed is None:  # a large add: the long memories' window vectors are made here, group by group
            windowed = self.stores.window_vectors([m.memory for m in memories])
        points = {m.id: VectorPoint(m.id, vec, sparse_document(sparse), to_payload(
            m, digest, c.context, c.speaker, [t for t in c.tags if t not in c.given_tags], key_given=False,
            windows=windowed.get(m.memory)))
            for m, (c, digest), vec, (_, sparse) in zip(memories, part, dense, texts, strict=True)}
        keys = {m.id: dedup_key(_label(c), metadata, conversation) for m, (c, _) in zip(memories, part, strict=True)}
        graphs = {m.id: (m, c.graph, c.speaker) for m, (c, _) in zip(memories, part, strict=True)}
        texts_of = {m.id: m.memory for m in memories}

        def commit(ids: Sequence[str]) -> dict[str, str]:
            return self.commit_points(
                cube.cube_id, [points[i] for i in ids],
                [HistoryEvent(memory_id=i, cube_id=cube.cube_id, event="ADD", actor=author.user_id, at=now,
                              new_memory=texts_of[i]) for i in ids],
                lambda stored: self.stores.ingest_graph(cube.cube_id, [graphs[i] for i in ids if i in stored]),
                keys={i: keys[i] for i in ids})

        held = commit(list(points))
        holders = self._holders(set(held.values()))
        unstored = [i for i, holder in held.items() if holder not in holders]
        if unstored:
            # Another process claimed these texts' keys and has not stored them: its write is in flight
            # (wait for its end), or it died mid-write (roll that back, freeing the keys, and store ours).
            with self.catalog.in_flight(sorted({held[i] for i in unstored})):
                pass
            holders |= self._holders({held[i] for i in unstored})
            if any(held[i] not in holders for i in unstored):
                self.stores.roll_back_abandoned()
                again = commit([i for i in unstored if held[i] not in holders])
                held = {i: h for i, h in held.items() if i in again or held[i] in holders} | again
                holders |= self._holders(set(again.values()))
        # The holders take this add's tags and sources, as a duplicate found before the write does.
        merged = {m.id: self._merge_into([held[m.id]], c, metadata, conversation)
                  for m, (c, _) in zip(memories, part, strict=True) if m.id in held}
        return ([m for m in memories if m.id not in held],
                [merged[m.id] or holders.get(held[m.id]) or m.model_copy(update={"id": held[m.id]})
                 for m in memories if m.id in held])

    def _holders(self, ids: set[str]) -> dict[str, Memory]:
        """The stored memories among ``ids`` (the holders of keys an add found claimed) whose add a live
        process acknowledged: a dead replica's unfinished one is no holder (the clean-up removes it)."""
        if not ids:
            return {}
        gone = self.catalog.unacknowledged(list(ids))
        return {p.id: from_point(p) for p in self.vectors.retrieve([i for i in ids if i not in gone])}

    def commit_points(self, cube_id: str, points: Sequence[VectorPoint], events: Sequence[HistoryEvent],
                      then: Callable[[set[str]], None] | None = None,
                      keys: Mapping[str, str] | None = None) -> dict[str, str]:
        """Store new memories' points and their history (``ADD`` events) all or nothing, under the write
        lock: the history is recorded as pending first (one catalog transaction), then the points and
        ``then`` (the graph) are written, then the history is marked complete. A failure takes the points
        and history back and raises; a process killed before the end leaves pending history, which the
        next start rolls back with the points (the write was never acknowledged).

        ``keys`` (memory id to ``dedup_key``) claims each new memory's key in the catalog: a memory whose
        key another memory of the cube holds (another process on a shared catalog stored the same text
        first) is not stored; the answer maps its id to the holder's. ``then`` gets the ids stored."""
        if not points:
            return {}
        with self.write_lock, self.catalog.in_flight([e.memory_id for e in events]):
            held = self.catalog.begin_writes(events, keys)
            points = [p for p in points if p.id not in held]
            try:
                if points:
                    self.vectors.upsert(points)
                if then is not None:
                    then({p.id for p in points})
                self.catalog.end_writes([e.memory_id for e in events])
            except BaseException:
                self._undo_add(cube_id, [p.id for p in points], [])
                raise
        return held



def _holds(point: StoredPoint, candidate: Candidate, metadata: Mapping[str, Any], conversation: str | None) -> bool:
    """Whether the stored ``point`` is the memory an add of ``candidate`` would make: the same text (the
    key, with the piece's place), metadata and conversation."""
    return (point.payload.get("memory") == candidate.memory and same_json(point.payload.get("metadata", {}), metadata)
            and point.payload.get("conversation_id") == conversation)


def _label(candidate: Candidate) -> str:
    """What a candidate's text is compared by: its kind, the text it is a piece of, and its text."""
    return (f"{candidate.kind}:{candidate.part_of}:{candidate.memory}" if candidate.part_of
            else f"{candidate.kind}:{candidate.memory}")


def dedup_key(label: str, metadata: Mapping[str, Any], conversation: str | None) -> str:
    """What makes two added memories one (``store_candidates``): the same ``_label`` (kind, text),
    metadata and conversation, each equal character for character (JSON types kept: ``true`` is not
    ``1``); the key a new memory claims in the catalog."""
    return exact_hash(json.dumps([label, metadata, conversation or ""], sort_keys=True, ensure_ascii=False))


def chain(cube_id: str, conversation_id: str | None) -> str:
    """Tasks of one conversation run one after the other."""
    return f"{cube_id}/{conversation_id or ''}"
