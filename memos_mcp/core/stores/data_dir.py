"""The data directory itself: whether it may be written, and the lock that keeps it to one process."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from memos_mcp.errors import DataDirReadOnly, StoreLocked


def writable(data_dir: Path) -> bool:
    """Whether ``data_dir`` may be written (created first if missing). False on a read-only mount,
    or without write permission. A directory that is missing and cannot be created raises
    ``DataDirReadOnly`` naming it and the reason: there is nothing to read either."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if data_dir.is_dir():  # exists (mkdir on a read-only mount says so before checking)
            return False
        raise DataDirReadOnly(f"cannot create the data directory {data_dir}: {exc.strerror or exc}",
                              data_dir=str(data_dir)) from exc
    return os.access(data_dir, os.W_OK)


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
