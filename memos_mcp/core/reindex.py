"""``memos-mcp reindex``: give the memories an earlier version stored what this version's index keeps
beside them: a long memory's sentence-window vectors (``relevance.stored_windows``), without which a
search that finds it embeds its windows then (``relevance.relativities``).

Idempotent and resumable: a memory whose vectors are in place and made for its text is skipped, so a
run that stopped half way is finished by running it again. Vectors are made outside the write lock and
stored under it only for a memory whose text is still the one they were made for
(``VectorStore.set_payload_if``), so a memory changed meanwhile keeps what its change made: by this
process, and on PostgreSQL or a Qdrant server by the replicas of a shared service too (an embedded data
directory is locked by the one process that opens it), whose writes it does not lock out; a memory
another replica deletes meanwhile is skipped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from memos_mcp.core.relevance import WINDOWS_FIELD, read_windows, windows
from memos_mcp.core.stores.vector import MemoryFilter
from memos_mcp.errors import DataDirReadOnly, StorageError

if TYPE_CHECKING:  # the service imports the write path
    from memos_mcp.core.service import MemoryService
    from memos_mcp.core.write.add import Progress

BATCH = 64  # memories read, and their windows embedded, per step


class ReindexResult(BaseModel):
    """What a run found: ``memories`` read (every status, every cube the catalog lists), ``long`` of them
    judged by their windows, ``windowed`` of those given window vectors by this run (the others had them
    already)."""

    memories: int
    long: int
    windowed: int


def fill_window_vectors(service: MemoryService, progress: Progress | None = None) -> ReindexResult:
    """Make and store the window vectors of every long memory that lacks them (or holds ones made for
    another text or damaged: ``read_windows``); ``progress(done, total)`` after each batch. Raises
    ``DataDirReadOnly`` before any work when the service was opened read-only."""
    if service.read_only:
        raise DataDirReadOnly.refused("the vector store (reindex stores window vectors)")
    vectors = service.ready()
    dimension = service.embedder.dimension
    cubes = [(cube.cube_id,) for cube in service.catalog.list_cubes()]
    total = sum(vectors.count(MemoryFilter(cube_ids=c, status=())) for c in cubes)
    result = ReindexResult(memories=0, long=0, windowed=0)
    for cube in cubes:
        for points in vectors.walk(MemoryFilter(cube_ids=cube, status=()), BATCH):
            texts = {p.id: str(p.payload.get("memory", "")) for p in points}
            long = [p for p in points if windows(texts[p.id])]
            lacking = [p.id for p in long if read_windows(texts[p.id], p.payload.get(WINDOWS_FIELD), dimension) is None]
            made = service.stores.window_vectors([texts[i] for i in lacking])
            with service.write_lock:
                for memory_id in lacking:
                    try:
                        stored = vectors.set_payload_if(memory_id, {WINDOWS_FIELD: made[texts[memory_id]]},
                                                        "memory", texts[memory_id])
                    except StorageError:
                        if vectors.retrieve([memory_id]):
                            raise
                        continue  # deleted by another replica between the check and the write
                    result.windowed += int(stored)
            result.memories += len(points)
            result.long += len(long)
            if progress is not None:
                progress(result.memories, max(total, result.memories))
    return result
