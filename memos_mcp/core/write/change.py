"""Changing memories: update (a new text is re-embedded and re-linked in the graph), archive,
delete (by id, by filter, a whole cube) and the history every change leaves."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from memos_mcp.core.access import AccessControl
from memos_mcp.core.checks import MAX_KEY_CHARS, check_metadata, check_tags, id_key, is_uuid
from memos_mcp.core.context import Room, Stores
from memos_mcp.core.filters import SearchFilters, conditions, parse_filters, validated
from memos_mcp.core.models import (
    HistoryEvent,
    Memory,
    MemoryStatus,
    MemoryType,
    Permission,
    User,
    utcnow,
)
from memos_mcp.core.payload import from_point, to_payload
from memos_mcp.core.relevance import WINDOWS_FIELD
from memos_mcp.core.retrieval import Retrieval
from memos_mcp.core.stores.vector import StoredPoint, VectorPoint
from memos_mcp.core.text import content_hash, derive_key, is_blank, sparse_document
from memos_mcp.core.write.add import WRITE_OVERHEAD
from memos_mcp.core.write.ingest.extractor import derived
from memos_mcp.core.write.ingest.extractor import derived_tags as derived_tags_of
from memos_mcp.errors import InvalidRequest, MemosError, NotFound

log = logging.getLogger(__name__)


class Changes(Room):
    """Updates, archives, deletes and history of stored memories (found through ``retrieval``)."""

    def __init__(self, stores: Stores, retrieval: Retrieval) -> None:
        super().__init__(stores)
        self.retrieval = retrieval

    def history(self, actor_id: str, memory_id: str) -> list[HistoryEvent]:
        """The memory's events, oldest first, if ``user`` may read its cube (NotFound otherwise, and for an
        id without history). Its cube is the one holding it, or for a deleted memory the cube of its
        newest event; only that cube's events are answered: an id whose history names another cube as well
        (reused by an import of an earlier version after a delete) never shows one cube's events to the
        readers of the other."""
        user = self.access.user(actor_id)
        vectors = self.ready()  # unfinished writes of a stopped process are rolled back first
        key = id_key(memory_id)
        events = self.catalog.history(key)
        held = vectors.retrieve([key]) if events and is_uuid(key) else []
        cube_id = str(held[0].payload.get("cube_id")) if held else events[-1].cube_id if events else None
        cube = self.catalog.get_cube(cube_id) if cube_id is not None else None
        if cube is None or AccessControl.access(user, cube) is None:
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        return [e for e in events if e.cube_id == cube_id]


    def update_memory(
        self, actor_id: str, memory_id: str, *, memory: str | None = None, key: str | None = None,
        tags: Sequence[str] | None = None, metadata: dict[str, Any] | None = None,
        status: MemoryStatus | str | None = None, memory_type: MemoryType | str | None = None,
        confidence: float | None = None, cube_id: str | None = None, step: str | None = None,
    ) -> Memory:
        """Change a memory; its history records the old and new text. ``step`` names a background
        task's change (task id and memory id): a step recorded already (an earlier run of the task
        made it) changes nothing again, and the memory is returned as it is."""
        user = self.access.user(actor_id)
        changes: dict[str, Any] = {}
        if memory is not None:
            self.stores.check_text(memory, "memory")
            changes["memory"] = memory.strip()
        if key is not None:
            if is_blank(key):
                raise InvalidRequest("key is empty (nothing visible): leave it out to keep the key", field="key")
            changes["key"] = key.strip()[:MAX_KEY_CHARS]
        if tags is not None:
            changes["tags"] = check_tags(tags)
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
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
        memory_id = id_key(memory_id)
        with self.write_lock, self.catalog.in_flight([memory_id]):  # not rolled back by another's clean-up
            old = self.retrieval.readable_memory(user, memory_id, cube_id, need=Permission.WRITE)
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
            windows = (self.stores.window_vectors([new.memory]).get(new.memory) if new.memory != old.memory
                       else point.payload.get(WINDOWS_FIELD))
            payload = to_payload(new, digest, context, speaker, derived_tags, key_given, windows)
            archived = old.status is MemoryStatus.ACTIVATED and new.status is MemoryStatus.ARCHIVED
            # Recorded pending first: a start after a crash keeps it only if the point holds the new text.
            if self.catalog.begin_writes([HistoryEvent(
                    memory_id=new.id, cube_id=new.cube_id, event="ARCHIVE" if archived else "UPDATE",
                    actor=user.user_id, at=now, old_memory=old.memory, new_memory=new.memory, step=step)]):
                return old  # this step was made before (see ``Catalog.begin_writes``)
            try:
                if new.memory != old.memory:
                    dense, sparse = self.stores.index_texts(new.memory, speaker, context, new.event_time)
                    self.vectors.upsert([VectorPoint(new.id, self.embedder.embed([dense])[0], sparse_document(sparse),
                                                     payload)])
                    graph = self.graph()
                    if graph is not None:
                        graph.forget(new.cube_id, [new.id])
                        self.stores.ingest_graph(new.cube_id, [(new, None, speaker)])
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
                _, sparse = self.stores.index_texts(old.memory, point.payload.get("speaker"),
                                                    point.payload.get("context", ""), old.event_time)
                self.vectors.upsert([VectorPoint(old.id, point.dense, sparse_document(sparse), point.payload)])
            graph = self.graph()
            if graph is not None:
                graph.forget(old.cube_id, [old.id])
                self.stores.ingest_graph(old.cube_id, [(old, None, point.payload.get("speaker"))])
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
            memories = [self.retrieval.readable_memory(user, m, cube_id, need=Permission.WRITE)
                        for m in dict.fromkeys(id_key(i) for i in memory_ids)]
            self._forget(user, memories)
        return len(memories)

    def delete_matching(self, actor_id: str, filters: SearchFilters | dict[str, Any] | None, *,
                        user_id: str | None = None, field: str = "filters") -> tuple[int, list[str]]:
        """Delete the memories matching ``filters`` in every cube of the user's scope it may write. Cubes
        it may only read are skipped (nothing in them changes); returns how many were deleted and the
        cubes skipped that held matches. ``filters`` naming no condition is refused (``InvalidRequest``
        naming ``field``, the caller's name for it): it would match every memory of every such cube, which
        ``delete_all`` does per cube when it is meant."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.access.require_writer(user)
        filters = validated(filters)  # once: parse_filters below takes it as it is
        if not conditions(filters):
            raise InvalidRequest(f"{field} names no condition (every memory would match): give at least one "
                                 "condition, or delete a whole cube's memories", field=field)
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
        """Remove memories (already checked) from the vectors, the graph and the history's text, whole
        or not at all across a crash (``Stores.forget``)."""
        by_cube: dict[str, list[str]] = {}
        for memory in memories:
            by_cube.setdefault(memory.cube_id, []).append(memory.id)
        self.stores.forget(by_cube, user.user_id)

    def delete_all(self, actor_id: str, cube_id: str) -> int:
        user = self.access.user(actor_id)
        cube = self.access.cube(user, cube_id, Permission.WRITE)
        with self.write_lock:  # the relations stated directly go too: nothing of the cube is left
            return self.stores.empty_cube(cube.cube_id, user.user_id)
