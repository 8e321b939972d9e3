"""Which unfinished memory writes of a shared catalog are abandoned. A write records its history as
pending before it writes the vectors and clears the marks at its end (``Catalog.begin_writes``); marks
left behind are a process that died mid-write, rolled back by the next clean-up (``Stores``). On SQLite
one process holds the data directory, so every mark its start finds is abandoned. On PostgreSQL other
live processes share the marks: a write holds a session advisory lock per memory id (on a connection of
its own) from before its marks are recorded until after they are cleared, and the server drops the locks
of a process that dies with its connection; a clean-up takes only the marks whose lock it can get, and
holds those locks until it has rolled them back."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

import sqlalchemy as sa

# hashtextextended: a memory id's 64-bit lock key; a collision only makes a clean-up wait for a later look
_LOCK = sa.text("SELECT pg_advisory_lock(hashtextextended(id, 0)) "
                "FROM unnest(CAST(:ids AS text[])) AS id ORDER BY id")
_TRY = sa.text("SELECT id FROM unnest(CAST(:ids AS text[])) AS id "
               "WHERE pg_try_advisory_lock(hashtextextended(id, 0)) ORDER BY id")
_UNLOCK_ALL = sa.text("SELECT pg_advisory_unlock_all()")
# shared and for one transaction: readers never wait for each other, a writer's lock makes the try fail
_FREE = sa.text("SELECT id FROM unnest(CAST(:ids AS text[])) AS id "
                "WHERE pg_try_advisory_xact_lock_shared(hashtextextended(id, 0))")


@contextmanager
def writing(engine: sa.Engine, memory_ids: Sequence[str]) -> Iterator[None]:
    """Hold the write locks of ``memory_ids`` (PostgreSQL) for the block: a write in flight. Waits while
    another process writes one of them (two updates of one memory: the second waits for the first)."""
    if engine.dialect.name == "sqlite" or not memory_ids:
        yield
        return
    with engine.connect() as conn:
        conn.execute(_LOCK, {"ids": sorted(set(memory_ids))})
        conn.commit()  # session locks outlive the transaction; no transaction stays open meanwhile
        try:
            yield
        finally:
            _unlock(conn)


@contextmanager
def abandoned(engine: sa.Engine, pending: Callable[[], list[str]]) -> Iterator[set[str]]:
    """The memory ids among ``pending()`` whose write is abandoned, their locks held for the block (so
    that no process can begin writing them meanwhile). ``pending`` is read again once the locks are held:
    a write that ended between the two reads is not abandoned."""
    if engine.dialect.name == "sqlite":
        yield set(pending())
        return
    candidates = sorted(set(pending()))
    if not candidates:
        yield set()
        return
    with engine.connect() as conn:
        got = set(conn.execute(_TRY, {"ids": candidates}).scalars())
        conn.commit()
        try:
            yield got & set(pending())
        finally:
            _unlock(conn)


def ownerless(engine: sa.Engine, marked: Sequence[str], still_marked: Callable[[list[str]], set[str]]) -> set[str]:
    """The memory ids among ``marked`` (each with a pending write mark when read) that no live process is
    writing: on PostgreSQL those whose write lock is free (its writer died, and no clean-up holds it yet)
    and that ``still_marked`` (read while the free locks are held shared: no write can begin meanwhile)
    finds marked still; a write that ended between the two reads is no abandoned one. On SQLite none (the
    one process that holds the data directory wrote them, and its start rolled back what a stopped one
    left)."""
    if engine.dialect.name == "sqlite" or not marked:
        return set()
    with engine.connect() as conn:
        free = sorted(conn.execute(_FREE, {"ids": sorted(set(marked))}).scalars())
        try:
            return still_marked(free) if free else set()
        finally:
            conn.rollback()  # ends the transaction, and the shared locks with it


def _unlock(conn: sa.Connection) -> None:
    # A connection that broke has lost its locks with its session; the pool drops it.
    with suppress(sa.exc.DBAPIError):
        conn.execute(_UNLOCK_ALL)
        conn.commit()
