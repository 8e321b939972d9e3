"""Running one queued add, claimed with a lease (``lease``) so that processes sharing one database
share the queue: the model's extraction and merge, or the deterministic extractor when
no model answers usably. Nothing is lost either way: the messages were stored when the add was
acknowledged, and a failed extraction still stores the deterministic extractor's memories. An add by the
rule extractor, run before its answer by the process that took it, is a task only when that process
stopped part-way: it is finished here as that add would have finished.

Applying an extraction: decisions on existing memories first (an update rewrites the memory with its
old text kept in history; an archive retires it, also in history), then new memories, dropped when
they repeat an existing memory (same normalised text, or cosine similarity at or above
``add.duplicate_similarity``) or an earlier item of the same answer.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

from memos_mcp.core.context import Stores
from memos_mcp.core.models import (
    AddJob,
    Cube,
    Memory,
    MemoryKind,
    MemoryStatus,
    Message,
    Task,
    TaskStatus,
    User,
    utcnow,
)
from memos_mcp.core.payload import from_point
from memos_mcp.core.retrieval import Retrieval
from memos_mcp.core.stores.vector import MemoryFilter
from memos_mcp.core.text import sparse_query
from memos_mcp.core.write.add import Writes
from memos_mcp.core.write.change import Changes
from memos_mcp.core.write.ingest.extractor import Candidate, label
from memos_mcp.core.write.ingest.lease import Lease, claimant, outcome
from memos_mcp.core.write.ingest.llm_extractor import Decision, LLMExtractor
from memos_mcp.errors import BackendUnavailable, LLMNotConfigured, MemosError

log = logging.getLogger(__name__)


class TaskRunner:
    """Runs queued adds (the add worker's work function) through the write path's rooms; ``closing``
    is set while the worker stops."""

    def __init__(self, stores: Stores, writes: Writes, changes: Changes, retrieval: Retrieval,
                 closing: threading.Event) -> None:
        self.stores = stores
        self.owner = claimant()
        self.lease_s = stores.settings.add.task_lease
        self.writes = writes
        self.changes = changes
        self.retrieval = retrieval
        self.closing = closing

    def run(self, task_id: str) -> None:
        """Claim a queued (or interrupted, or abandoned) task and run it to done or failed, renewing
        the claim's lease while it works. A task another process holds is left to it; while the
        worker closes, the task is left open for the next start (or another process) instead."""
        task = self.stores.catalog.claim_task(task_id, self.owner, self.lease_s)
        if task is None:
            return
        if task.job is None:  # claimed, but nothing to run (an old row): close it
            self._finish(task, TaskStatus.DONE)
            return
        with Lease(self.stores.catalog, task_id, self.owner, self.lease_s) as lease:
            try:
                self._run(task, task.job, lease)
            except MemosError as exc:
                if not self.closing.is_set():
                    self._finish(task, TaskStatus.FAILED, error=exc.message, lease=lease)
            except Exception as exc:
                if not self.closing.is_set():
                    log.exception("add task %s failed", task.task_id)
                    self._finish(task, TaskStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}",
                                 lease=lease)

    def _run(self, task: Task, job: AddJob, lease: Lease) -> None:
        stores = self.stores
        author = stores.catalog.get_user(task.user_id)
        if author is None or stores.catalog.get_cube(task.cube_id) is None:
            self._finish(task, TaskStatus.FAILED, error="the cube or its user was deleted before extraction",
                         lease=lease)
            return
        cube = stores.access.writable(author, task.cube_id)  # still allowed? (Forbidden fails the task)
        rules = job.extractor == "rules"
        window = stores.settings.search.context_turns if rules else stores.settings.add.window_turns
        new, earlier = stores.catalog.messages_with_window(job.message_ids, window)
        if not new:
            self._finish(task, TaskStatus.DONE, error="the messages were deleted before extraction", lease=lease)
            return
        if rules:  # an add by the rule extractor that its process left part-way: made as it would have
            with stores.write_lock:
                if not self._still_ours(task, lease):
                    return
                result = self.writes.extract_by_rules(author, cube, job, new, earlier)
            self._finish(task.model_copy(update={"extractor": "rules", "added": result.added,
                                                 "deduplicated": result.deduplicated}), TaskStatus.DONE, lease=lease)
            return
        existing = self._similar(cube, new)
        error: str | None = None
        decisions: list[Decision] = []
        try:
            if stores.llm is None:
                raise LLMNotConfigured("extraction")
            extraction = LLMExtractor(stores.llm).extract(new, earlier, existing, utcnow())
            candidates, decisions, extractor = extraction.candidates, extraction.decisions, "llm"
        except BackendUnavailable as exc:
            if self.closing.is_set():
                return
            log.warning("extraction of task %s fell back to the rule extractor: %s", task.task_id, exc.message)
            candidates = stores.extractor.from_messages(new, earlier)
            error, extractor = f"{exc.code}: {exc.message}; the rule extractor's memories were stored", "rules"
        with stores.write_lock:
            if not self._still_ours(task, lease):
                return
            changes = self._apply(task.task_id, author, cube, job, candidates, decisions)
        self._finish(task.model_copy(update={"extractor": extractor, **changes}),
                     TaskStatus.FAILED if error else TaskStatus.DONE, error=error, lease=lease)

    def _still_ours(self, task: Task, lease: Lease) -> bool:
        """Under the write lock, before a task writes: False when the stores are closing (the task is
        left for the next start) or our claim lapsed (another process runs the task now)."""
        if self.closing.is_set():
            return False
        if not lease.renew():
            log.warning("add task %s was claimed by another process; its result is left to it", task.task_id)
            return False
        return True

    def _finish(self, task: Task, status: TaskStatus, error: str | None = None, lease: Lease | None = None) -> None:
        """Store the task's outcome, ending the lease it ran under (if any) in the same transaction."""
        done = outcome(task, status, error)
        if not (lease.finish(done) if lease is not None else self.stores.catalog.finish_task(done, self.owner)):
            log.warning("add task %s was claimed by another process before it finished here", task.task_id)

    def _similar(self, cube: Cube, new: Sequence[Message]) -> list[Memory]:
        """The active memories of the cube most like the new messages: what the model may merge with."""
        stores = self.stores
        if not stores.settings.add.similar_memories:
            return []
        text = "\n".join(m.content for m in new if m.role == "user")[-4000:] or new[-1].content[-4000:]
        query = self.retrieval.hybrid_query(stores.embedder.embed_query(text), sparse_query(text),
                                            MemoryFilter(cube_ids=(cube.cube_id,)),
                                            stores.settings.add.similar_memories)
        return [from_point(p) for p in stores.ready().hybrid_search(query)]

    def _apply(self, task_id: str, author: User, cube: Cube, job: AddJob, candidates: list[Candidate],
               decisions: Sequence[Decision]) -> dict[str, list[str]]:
        """Store the extraction. Each decision is a step of the task, made at most once whichever run
        of it (a takeover after its process died) comes to it; new memories repeat none stored before."""
        updated: list[str] = []
        archived: list[str] = []
        for decision in decisions:
            step = f"{task_id}:{decision.memory.id}"
            try:
                if decision.action == "update":
                    self.changes.update_memory(author.user_id, decision.memory.id, memory=decision.value,
                                               cube_id=cube.cube_id, step=step)
                    updated.append(decision.memory.id)
                else:
                    self.changes.update_memory(author.user_id, decision.memory.id, status=MemoryStatus.ARCHIVED,
                                               cube_id=cube.cube_id, step=step)
                    archived.append(decision.memory.id)
            except MemosError as exc:  # deleted meanwhile, or an unusable text: the decision lapses
                log.info("decision on memory %s skipped: %s", decision.memory.id, exc.message)
        kept, similar, embedded = self._novel(cube, candidates)
        label(kept, job.tags, job.memory_type)
        result = self.writes.store_candidates(author, cube, kept, job.conversation_id, job.metadata, embedded=embedded)
        return {"added": result.added, "deduplicated": list(dict.fromkeys([*similar, *result.deduplicated])),
                "updated": updated, "archived": archived}

    def _novel(self, cube: Cube, candidates: list[Candidate]
               ) -> tuple[list[Candidate], list[str], dict[str, list[float]]]:
        """Candidates that repeat no active memory of the cube nor an earlier candidate, the ids of the
        memories repeated, and the kept candidates' vectors by dense index text (for storing them)."""
        if not candidates:
            return [], [], {}
        stores = self.stores
        vectors = stores.ready()
        threshold = stores.settings.add.duplicate_similarity
        texts = [stores.index_texts(c.memory, c.speaker, c.context, c.event_time)[0] for c in candidates]
        dense = stores.embedder.embed(texts)  # as stored: comparable with the store's vectors
        kept: list[Candidate] = []
        kept_vectors: list[tuple[MemoryKind, list[float]]] = []
        embedded: dict[str, list[float]] = {}
        repeated: list[str] = []
        for candidate, text, vector in zip(candidates, texts, dense, strict=True):
            kinds = (MemoryKind.PREFERENCE.value,) if candidate.kind is MemoryKind.PREFERENCE else \
                (MemoryKind.FACT.value, MemoryKind.DOCUMENT.value)
            nearest = vectors.dense_search(vector, MemoryFilter(cube_ids=(cube.cube_id,), kinds=kinds), 1)
            twin = next((p for p in nearest if p.score >= threshold), None)
            if twin is not None:
                repeated.append(twin.id)
            elif not any(kind is candidate.kind and _cosine(vector, other) >= threshold
                         for kind, other in kept_vectors):
                kept.append(candidate)
                kept_vectors.append((candidate.kind, vector))
                embedded[text] = vector
        return kept, repeated, embedded


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
