"""Opening the SQLite files of the data directory (the catalog, the graph): read-write with WAL, or
read-only from a directory that may not be written (a read-only mount or snapshot); creating a
schema in one transaction; and finding which part of a schema a file lacks."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

Migration = Callable[[sqlite3.Connection], None]


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (``isolation_level=None``) with ``sqlite3.Row`` rows.

    Read-write: WAL journal, synchronous NORMAL. Read-only: nothing is ever written next to the
    file. With a ``-wal`` file beside it (a snapshot of a live database) the file is opened
    ``mode=ro``, which reads the WAL through the existing ``-shm``; without one, ``immutable=1``,
    which needs neither a ``-shm`` nor a lock. Raises ``sqlite3.Error`` or ``OSError``."""
    if read_only:
        wal = path.with_name(path.name + "-wal")
        mode = "mode=ro" if wal.exists() and wal.stat().st_size > 0 else "immutable=1"
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?{mode}", uri=True, check_same_thread=False,
                             isolation_level=None, timeout=5.0)
        db.row_factory = sqlite3.Row
        return db
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def statements(script: str) -> list[str]:
    """The statements of a schema script (one ``;`` ends each; the scripts hold no ``;`` in text)."""
    return [part.strip() for part in script.split(";") if part.strip()]


def migrate(db: sqlite3.Connection, migration: Migration) -> None:
    """Run ``migration`` (idempotent: ``IF NOT EXISTS``, columns added only when absent) in one
    transaction, so that a process killed while creating a schema leaves all of it or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        migration(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _shape(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Each table ("table NAME") with its columns, and each index ("index NAME") with nothing."""
    shape: dict[str, set[str]] = {}
    for kind, name in db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') "
                                 "AND name NOT LIKE 'sqlite_%'"):
        columns = {row[1] for row in db.execute(f'PRAGMA table_info("{name}")')} if kind == "table" else set()
        shape[f"{kind} {name}"] = columns
    return shape


@functools.cache
def _wanted(migration: Migration) -> dict[str, set[str]]:
    """The shape of the schema ``migration`` creates, read from an empty in-memory database."""
    reference = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migration(reference)
        return _shape(reference)
    finally:
        reference.close()


def missing_schema(db: sqlite3.Connection, migration: Migration) -> list[str]:
    """What ``db`` lacks of the schema ``migration`` creates: "table T", "column T.C", "index I"."""
    wanted = _wanted(migration)
    present = _shape(db)
    missing: list[str] = []
    for element, columns in wanted.items():
        if element not in present:
            missing.append(element)
            continue
        table = element.removeprefix("table ")
        missing += [f"column {table}.{c}" for c in sorted(columns - present[element])]
    return missing
