"""The HNSW index of the embedded vector store (qdrant-edge), built in a separate process.

qdrant-edge keeps new points in an appendable segment that every dense search scans in full, until
``EdgeShard.optimize()`` turns it into an HNSW-indexed segment. That call holds Python's GIL for its
whole run (tens of seconds at 100k points), which would stall every thread of the server. So the index is
built on a COPY of the shard in a child process (``python -m memos_mcp.core.stores.edge_index``), while
the live shard keeps answering reads and taking writes (each write is recorded); the built copy is then
swapped in and the recorded writes are replayed on it (see ``EdgeVectorStore``).

Directories beside the shard (``<shard>`` is e.g. ``data/vectors``):
``<shard>.index-next-*``  a copy being built (removed at open: a build cut short is started again);
``<shard>.index-old``     the shard being replaced during a swap: while it exists, the swap has not
                          committed, and the next open restores it (the built copy lacks the writes made
                          meanwhile);
``<shard>.index-trash``   a replaced shard being removed (the swap committed; removed at open);
``<shard>.index-*.doomed-*`` one of these being removed (``discard`` renames before it removes; a removal
                          cut short is finished at open).
``memos_index.json`` inside a shard records how many points its index was built over.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MARKER = "memos_index.json"
NEXT, OLD, TRASH, DOOMED = ".index-next-", ".index-old", ".index-trash", ".doomed-"


def sibling(shard: Path, suffix: str) -> Path:
    return shard.with_name(shard.name + suffix)


def recover(shard: Path) -> None:
    """Finish what a stopped process left beside ``shard`` (see the module doc); idempotent."""
    old, trash = sibling(shard, OLD), sibling(shard, TRASH)
    if old.exists():  # a swap that did not commit: the old shard holds every acknowledged write
        if shard.exists():
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(shard, trash)
        os.replace(old, shard)
    for doomed in shard.parent.glob(f"{shard.name}.index-*{DOOMED}*"):
        shutil.rmtree(doomed, ignore_errors=True)
    for leftover in (trash, *shard.parent.glob(shard.name + NEXT + "*")):
        discard(leftover)


def committed(shard: Path) -> Path:
    """The directory that holds the shard's acknowledged writes (the old one during a swap cut short)."""
    old = sibling(shard, OLD)
    return old if old.exists() else shard


def discard(path: Path) -> None:
    """Remove a directory; renamed first, so that a process still writing there (a build's child
    orphaned by a kill) cannot write into a directory of the same name made later."""
    if not path.exists():
        return
    doomed = path.with_name(f"{path.name}{DOOMED}{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.replace(path, doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def indexed_points(shard: Path) -> int:
    """How many points the shard's index was built over (0 when none was)."""
    try:
        return int(json.loads((shard / MARKER).read_text(encoding="utf-8"))["points"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def shard_bytes(shard: Path) -> int:
    """Bytes of the files of the shard at ``shard`` (their apparent sizes: a copy takes that much); 0 when
    it does not exist."""
    return sum(f.stat().st_size for f in shard.rglob("*") if f.is_file()) if shard.is_dir() else 0


def copy_shard(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"))


class Gate:
    """Many readers or one exclusive holder (the swap); an exclusive request holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _die_with_parent() -> None:
    """Linux: end this process when its parent dies (a killed server leaves no build running)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


def build(shard: Path, params: dict[str, Any]) -> int:
    """The child's work: load the copy at ``shard`` with the HNSW settings, optimize it, record the
    marker. ``params``: dimension, m, ef_construct, threads, threshold_kb. Returns an exit status."""
    import qdrant_edge as qe

    from memos_mcp.core.stores.vector import DENSE, SPARSE

    _die_with_parent()
    os.nice(10)
    started = time.monotonic()
    config = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=int(params["dimension"]), distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=hnsw_config(params),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=max(1, int(params["threshold_kb"]))),
    )
    edge = qe.EdgeShard.load(str(shard), config)
    try:
        edge.optimize()
        points = edge.info().points_count
        edge.flush()
    finally:
        edge.close()
    (shard / MARKER).write_text(json.dumps({"points": points, "seconds": time.monotonic() - started}),
                                encoding="utf-8")
    return 0


def hnsw_config(params: dict[str, Any]) -> Any:
    import qdrant_edge as qe

    return qe.HnswIndexConfig(m=int(params["m"]), ef_construct=int(params["ef_construct"]),
                              full_scan_threshold=10000, max_indexing_threads=int(params["threads"]))


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1]), json.loads(sys.argv[2])))
