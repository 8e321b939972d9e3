"""The data directory itself: whether it may be written, the lock that keeps it to one process, and
the file that marks it as holding a store (the catalog, when it is on SQLite)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from memos_mcp.config import Settings
from memos_mcp.core.diskspace import DiskGuard
from memos_mcp.core.stores import edge_index
from memos_mcp.errors import ConfigError, DataDirReadOnly, InvalidRequest, StorageError, StoreLocked

CATALOG_FILE = "catalog.sqlite3"  # the catalog in the data directory, unless catalog.url names PostgreSQL
EDGE_DIR = "vectors"  # qdrant-edge's shard in the data directory (vector.backend edge)


def require_store(data_dir: Path, which: str) -> None:
    """Raise InvalidRequest (field ``--data-dir``) unless ``data_dir`` holds a store's ``CATALOG_FILE``:
    for a command that works on a store (``which`` says which one, for the hint), before anything
    would make a new one there."""
    if not (data_dir / CATALOG_FILE).is_file():
        raise InvalidRequest(f"{data_dir} is not a memos-mcp data directory (it has no {CATALOG_FILE}; serve, "
                             f"stdio, import and doctor make a new one): name the one {which} with --data-dir "
                             "(or MEMOS_DATA_DIR)", field="--data-dir")


def writable(data_dir: Path) -> bool:
    """Whether ``data_dir`` may be written (created first if missing). False on a read-only mount,
    or without write permission. A path that exists and is not a directory (or lies under a file)
    raises ``ConfigError``; a directory that is missing and cannot be created raises
    ``DataDirReadOnly`` naming it and the reason: there is nothing to read either."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if data_dir.is_dir():  # exists (mkdir on a read-only mount says so before checking)
            return False
        if data_dir.exists() or exc.errno == errno.ENOTDIR:
            raise ConfigError(f"the data directory {data_dir} is not a directory: {exc.strerror or exc} "
                              "(give --data-dir a directory, or a path where one can be made)",
                              data_dir=str(data_dir)) from exc
        raise DataDirReadOnly(f"cannot create the data directory {data_dir}: {exc.strerror or exc}",
                              data_dir=str(data_dir)) from exc
    return os.access(data_dir, os.W_OK)


def discard_doomed(data_dir: Path) -> None:
    """Finish the removals a stop cut short beside the vector store: directories renamed
    ``vectors.<...>.doomed-*`` to be removed (``edge_index.discard``: an index build's copy or trash, a
    re-embedding's replaced or abandoned store), which nothing reads or writes again. Safe without the
    lock: a process removing one at the same time ignores what is gone."""
    for doomed in data_dir.glob(f"{EDGE_DIR}.*{edge_index.DOOMED}*"):
        edge_index.discard(doomed)


def lock_data_dir(data_dir: Path) -> FileLock:
    """The acquired exclusive lock of ``data_dir`` (its ``.lock`` file). ``StoreLocked`` if another
    process holds it; ``DataDirReadOnly`` if the lock file cannot be written."""
    # Not thread-local: the HTTP server opens the service in one thread and closes it in another.
    lock = FileLock(data_dir / ".lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise StoreLocked(f"data directory {data_dir} is in use by another memos-mcp process; "
                          "stop it or use another --data-dir", data_dir=str(data_dir)) from exc
    except OSError as exc:
        raise DataDirReadOnly(f"data directory {data_dir} is not writable: cannot take its lock file "
                              f"({exc.strerror or exc})", data_dir=str(data_dir)) from exc
    return lock


@dataclass(frozen=True)
class DataDirClaim:
    """A data directory as this process holds it: whether it is opened ``read_only`` (nothing is
    written there), and its acquired lock (None where nothing may be written)."""

    read_only: bool
    lock: FileLock | None = None

    def release(self) -> None:
        """Release the lock, if one is held."""
        if self.lock is not None:
            self.lock.release()


def claim_data_dir(settings: Settings, allow_read_only: bool = False) -> DataDirClaim:
    """Check ``settings.data_dir`` and take its lock, before any store is opened (this needs neither
    the catalog nor the vector store, so ``stdio`` claims before its handshake and opens the stores
    after it). Raises what ``MemoryService.open`` documents: ``DataDirReadOnly`` for a directory that
    cannot be written (unless ``allow_read_only`` or ``settings.read_only``; then it is claimed
    read-only, unlocked), ``StorageError`` for a file system below ``storage.min_free_bytes`` (claimed
    read-only instead with ``allow_read_only``), ``StoreLocked`` when another process holds it.
    ``settings.read_only`` claims it read-only but still locked where it could be written."""
    can_write = writable(settings.data_dir)
    read_only = settings.read_only or not can_write
    if not read_only:  # before the disk check: on a full disk they may be what fills it
        discard_doomed(settings.data_dir)
    if not can_write and not (allow_read_only or settings.read_only):
        raise DataDirReadOnly(f"data directory {settings.data_dir} is not writable; give a writable "
                              "--data-dir, or read it with serve --read-only, stdio --read-only or export",
                              data_dir=str(settings.data_dir))
    if can_write and not read_only:
        try:
            DiskGuard(settings.data_dir, settings.storage.min_free_bytes).check_startup()
        except StorageError:
            if not allow_read_only:
                raise
            read_only = True  # a command that only reads gets the data off a full disk, writing nothing there
    lock = lock_data_dir(settings.data_dir) if can_write and (settings.read_only or not read_only) else None
    return DataDirClaim(read_only, lock)
