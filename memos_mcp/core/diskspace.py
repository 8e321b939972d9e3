"""Free space on the data directory's file system, checked before anything is written.

The embedded stores write through memory-mapped files (qdrant-edge's segments, SQLite's shared
memory index): on a full file system the kernel answers such a write with SIGBUS, which ends the
process instead of failing the request. So every write first asks ``DiskGuard.check`` whether the
file system keeps ``storage.min_free_bytes`` free after the write's estimated size, and is refused
with ``StorageError`` (507) before it touches a store; start-up on a file system already below the
reserve refuses with ``DiskGuard.check_startup``. Driver errors that still report a full disk
(ENOSPC, SQLite's "database or disk is full") are ``StorageError`` as well (``storage_failure``).
"""

from __future__ import annotations

import os
from pathlib import Path

from memos_mcp.errors import StorageError

MIB = 2**20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _mib(value: int) -> str:
    return f"{value / MIB:.1f} MiB"


class DiskGuard:
    """Refuses writes that would leave less than ``reserve`` bytes free under ``path``."""

    def __init__(self, path: Path, reserve: int) -> None:
        self.path = path
        self.reserve = reserve

    def check(self, action: str, size: int = 0) -> None:
        """Raise ``StorageError`` (507) unless ``size`` more bytes still leave the reserve free.
        ``action`` names the refused write in the message (``add memories``)."""
        if self.reserve <= 0:
            return
        free = free_bytes(self.path)
        if free - size < self.reserve:
            raise StorageError(
                f"cannot {action}: the file system of the data directory {self.path} has {_mib(free)} free, "
                f"below the {_mib(self.reserve)} kept free (storage.min_free_bytes); nothing was written. "
                "Free disk space, then retry",
                free_bytes=free, min_free_bytes=self.reserve, needed_bytes=size, data_dir=str(self.path))

    def check_startup(self) -> None:
        """Raise ``StorageError`` when the file system is already below the reserve: a server started
        there could not take a single write."""
        if self.reserve <= 0:
            return
        free = free_bytes(self.path)
        if free < self.reserve:
            raise StorageError(
                f"refusing to start: the data directory {self.path} has {_mib(free)} free, below the "
                f"{_mib(self.reserve)} kept free (storage.min_free_bytes, MEMOS_STORAGE__MIN_FREE_BYTES); "
                "free disk space or use another --data-dir",
                free_bytes=free, min_free_bytes=self.reserve, data_dir=str(self.path))

