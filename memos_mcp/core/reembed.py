"""``memos-mcp reembed``: move an embedded data directory to another embedding model (the one
configured now: ``MEMOS_EMBEDDER__BACKEND``, ``__MODEL``, ``__BASE_URL``, the prefixes).

Every memory's dense vector is made again from its index text (``payload.index_texts``: the text as its
speaker said it, and the earlier turns when ``search.dense_context`` is on), and a long memory's
sentence-window vectors with it (``relevance.window_payloads``); ids, payloads, keyword vectors, the
catalog (history, messages, users, keys) and the graph are kept as they are. The new vectors go into a
store of their own beside the directory's (``stores.reembed_swap``), so the directory keeps its old
model, whole and usable, until every point has its new vector; the swap then replaces the store and
records the new model in one step that a stop cannot leave half done.

Resumable: a run that stops (killed, Ctrl-C) keeps the points it stored, and the next run with the same
model goes on from there, making again only the points changed since (a server may have run with the old
model in between) and dropping the ones deleted since. A run with another model starts afresh. Only the
embedded vector store (``vector.backend`` edge) is re-embedded here: on PostgreSQL or a Qdrant server,
export the cubes and import them into a store configured with the new model (``memos-mcp import``
re-embeds an export of another model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memos_mcp.config import Settings
from memos_mcp.core.diskspace import DiskGuard
from memos_mcp.core.embedder import Embedder
from memos_mcp.core.factory import build_embedder, open_catalog, require_existing
from memos_mcp.core.payload import from_point, index_texts
from memos_mcp.core.relevance import WINDOWS_FIELD, window_payloads
from memos_mcp.core.stores import edge_index, reembed_swap
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.data_dir import EDGE_DIR, claim_data_dir
from memos_mcp.core.stores.vector import IndexConfig, MemoryFilter, StoredPoint, VectorPoint
from memos_mcp.core.stores.vector_edge import EdgeVectorStore
from memos_mcp.errors import DataDirReadOnly, InvalidRequest, StorageError

BATCH = 256  # points read, embedded and stored per step (256 embedded at once: 1.5x the rate of 64)
Progress = Callable[[int, int], None]  # (points done, points in all)


class ReembedResult(BaseModel):
    """What a run did. ``previous_model`` / ``model``: the model ids (``Embedder.model_id``) the
    directory was made with and now has; ``dimension``: the new vectors'. ``memories``: points in the
    store; ``embedded``: given new vectors by this run; ``kept``: new vectors an earlier run stored, still
    right; ``dropped``: new vectors of memories deleted since an earlier run. ``swapped``: whether the
    directory now holds the new model (False when it had it already). ``index_built``: whether the new
    store's HNSW index was built before the swap (stores of at least ``vector.index_threshold`` points)."""

    previous_model: str | None
    model: str
    dimension: int
    memories: int
    embedded: int
    kept: int
    dropped: int
    swapped: bool
    index_built: bool


def reembed(settings: Settings, progress: Progress | None = None, embedder: Embedder | None = None) -> ReembedResult:
    """Re-embed the data directory of ``settings`` with its configured embedder (or ``embedder``), holding
    the directory's lock throughout; ``progress(done, total)`` after each batch of points.

    Raises ``InvalidRequest`` (field ``vector.backend``) for a store that is not the embedded one, and for
    a directory with no store (``factory.require_existing``); ``DataDirReadOnly`` for a read-only
    directory or ``settings.read_only``; ``StoreLocked`` while a server holds it; ``StorageError`` when a
    store fails, when the store holds points of no cube the catalog lists (they would be lost), or when
    the catalog records the directory's model without its dimension (open it once to record it);
    ``ConfigError`` / ``ModelError`` from the embedder. On any error the directory keeps its old model."""
    if settings.vector.backend != "edge":
        raise InvalidRequest(f"reembed moves the embedded vector store only (vector.backend edge), not "
                             f"{settings.vector.backend}: export the cubes and import them into a store configured "
                             "with the new model (import re-embeds an export made by another model)",
                             field="vector.backend")
    if settings.read_only:
        raise DataDirReadOnly.refused("the vector store (reembed writes new vectors)")
    require_existing(settings, "to re-embed")
    claim = claim_data_dir(settings)  # never read-only here: it raises instead (not writable, a full disk)
    try:
        catalog = open_catalog(settings)
        try:
            model = embedder or build_embedder(settings)
            try:
                return _Run(settings, catalog, model, progress).run()
            finally:
                if embedder is None:
                    model.close()
        finally:
            catalog.close()
    finally:
        claim.release()


class _Run:
    def __init__(self, settings: Settings, catalog: Catalog, embedder: Embedder, progress: Progress | None) -> None:
        self.settings, self.catalog, self.embedder, self.progress = settings, catalog, embedder, progress
        self.data_dir = settings.data_dir
        vector = settings.vector
        # No background builds while the points are copied: the new store's index is built once, at the end.
        self.index = IndexConfig(threshold=0, m=vector.hnsw_m, ef_construct=vector.hnsw_ef_construct,
                                 ef=vector.hnsw_ef, threads=vector.index_threads)
        self.embedded = 0  # points given new vectors by this run, so far

    def run(self) -> ReembedResult:
        reembed_swap.finish(self.data_dir, self.catalog)  # a swap an earlier run began
        model, dimension = self.embedder.model_id, self.embedder.dimension
        previous = self.catalog.get_meta("embedding_model")
        old_dimension = int(self.catalog.get_meta("dimension") or 0)
        target = reembed_swap.read_target(self.data_dir)
        if target is not None and (target.model, target.dimension) != (model, dimension):
            reembed_swap.abandon(self.data_dir)  # a run toward another model: its vectors are of no use
        if previous is None or (previous, old_dimension) == (model, dimension):  # no vectors yet, or these
            reembed_swap.abandon(self.data_dir)
            return ReembedResult(previous_model=previous, model=model, dimension=dimension,
                                 memories=self._count(old_dimension) if previous else 0, embedded=0, kept=0,
                                 dropped=0, swapped=False, index_built=False)
        if not old_dimension:
            raise StorageError(f"the catalog of {self.data_dir} records the model {previous} but not its dimension (a "
                               "first start stopped part-way): open the data directory once with that model "
                               "(memos-mcp doctor) to record it, then run reembed", model=previous)
        staged = edge_index.shard_bytes(reembed_swap.staging(self.data_dir))
        room = edge_index.shard_bytes(self.data_dir / EDGE_DIR) - staged
        DiskGuard(self.data_dir, self.settings.storage.min_free_bytes).check("re-embed the vectors", max(0, room))
        resuming = target is not None and (target.model, target.dimension) == (model, dimension)
        cubes = [cube.cube_id for cube in self.catalog.list_cubes()]
        try:
            reembed_swap.write_target(self.data_dir, reembed_swap.Target(model, dimension, "building"))
            with self._store(self.data_dir / EDGE_DIR, old_dimension) as old:
                with self._store(reembed_swap.staging(self.data_dir), dimension) as new:
                    foreign = self._foreign(new, cubes)
                if foreign:  # an earlier run's points of a cube deleted since: no filter reaches them, start afresh
                    reembed_swap.abandon(self.data_dir)
                    reembed_swap.write_target(self.data_dir, reembed_swap.Target(model, dimension, "building"))
                    resuming = False
                with self._store(reembed_swap.staging(self.data_dir), dimension) as new:
                    counts = self._copy(old, new, cubes)
                    indexed = self._build_index(new)
        except BaseException:
            if not resuming and not self.embedded:  # nothing to go on from: leave no trace of the run
                reembed_swap.abandon(self.data_dir)
            raise
        reembed_swap.write_target(self.data_dir, reembed_swap.Target(model, dimension, "swapping"))
        reembed_swap.finish(self.data_dir, self.catalog)
        return ReembedResult(previous_model=previous, model=model, dimension=dimension, swapped=True,
                             index_built=indexed, **counts)

    def _count(self, dimension: int) -> int:
        """The points of the directory's own store (0 when it has none yet)."""
        if not EdgeVectorStore(self.data_dir / EDGE_DIR).collection_exists():
            return 0
        with self._store(self.data_dir / EDGE_DIR, dimension) as store:
            return int(store.stats()["points"])

    @contextmanager
    def _store(self, path: Path, dimension: int) -> Iterator[EdgeVectorStore]:
        """The embedded store at ``path`` opened at ``dimension`` (no background index builds), closed after."""
        store = EdgeVectorStore(path, index=self.index)
        store.open(dimension)
        try:
            yield store
        finally:
            store.close()

    @staticmethod
    def _foreign(new: EdgeVectorStore, cubes: list[str]) -> bool:
        """Whether the new store holds points of no cube in ``cubes``."""
        held = sum(new.count(MemoryFilter(cube_ids=(c,), status=())) for c in cubes)
        return int(new.stats()["points"]) != held

    def _copy(self, old: EdgeVectorStore, new: EdgeVectorStore, cubes: list[str]) -> dict[str, int]:
        """Give the new store every point of the old one with a new dense vector; drop what it holds of
        points the old one no longer has. Returns the counts of ``ReembedResult``."""
        total = int(old.stats()["points"])
        seen: set[str] = set()
        kept = 0
        for cube in cubes:
            for points in old.walk(MemoryFilter(cube_ids=(cube,), status=()), BATCH):
                seen.update(p.id for p in points)
                staged = {p.id: p for p in new.retrieve([p.id for p in points])}
                stale = [p.id for p in points if p.id not in staged or not _same(staged[p.id], p)]
                kept += len(points) - len(stale)
                if stale:
                    new.upsert(self._points(old.whole_points(stale)))
                    self.embedded += len(stale)
                if self.progress is not None:
                    self.progress(len(seen), max(total, len(seen)))
        if len(seen) != total:
            raise StorageError(f"the vector store holds {total} points but the catalog's cubes hold {len(seen)}: "
                               "reembed would lose the others; nothing was changed (the directory keeps its model)",
                               points=total, in_cubes=len(seen))
        dropped = self._drop_unseen(new, cubes, seen)
        new.flush()
        return {"memories": total, "embedded": self.embedded, "kept": kept, "dropped": dropped}

    def _points(self, points: Sequence[VectorPoint]) -> list[VectorPoint]:
        """``points`` with this model's dense vectors and window vectors; ids, payloads otherwise and
        keyword vectors as they were."""
        memories = [from_point(StoredPoint(p.id, p.payload)) for p in points]
        dense = [index_texts(m.memory, p.payload.get("speaker"), str(p.payload.get("context") or ""), m.event_time,
                             self.settings.search.dense_context)[0] for m, p in zip(memories, points, strict=True)]
        vectors = self.embedder.embed(dense)
        windowed = window_payloads(self.embedder.embed_for_comparison, [m.memory for m in memories])
        made = []
        for memory, point, vector in zip(memories, points, vectors, strict=True):
            payload = {k: v for k, v in point.payload.items() if k != WINDOWS_FIELD}
            if memory.memory in windowed:
                payload[WINDOWS_FIELD] = windowed[memory.memory]
            made.append(VectorPoint(point.id, vector, point.sparse, payload))
        return made

    @staticmethod
    def _drop_unseen(new: EdgeVectorStore, cubes: list[str], seen: set[str]) -> int:
        """Delete from the new store the points the old one no longer holds (deleted since an earlier run)."""
        gone = [p.id for c in cubes for points in new.walk(MemoryFilter(cube_ids=(c,), status=()), 1000)
                for p in points if p.id not in seen]
        if gone:
            new.delete(gone)
        return len(gone)

    def _build_index(self, new: EdgeVectorStore) -> bool:
        """Build the new store's HNSW index now when the server would (``vector.index_threshold``)."""
        threshold = self.settings.vector.index_threshold
        if not threshold or int(new.stats()["points"]) < threshold:
            return False
        return new.build_index()


def _same(staged: StoredPoint, current: StoredPoint) -> bool:
    """Whether a point an earlier run stored is still right: the same payload apart from its window
    vectors (which are made from the text, which the payload holds)."""
    def strip(payload: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in payload.items() if k != WINDOWS_FIELD}

    return strip(staged.payload) == strip(current.payload)
