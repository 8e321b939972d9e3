"""An SQLAlchemy engine that its store may close while calls in other threads still hold connections.

``Engine.dispose`` closes the connections in the pool and leaves those checked out alone: one that
comes back afterwards goes into the disposed pool, which nobody closes, and stays open until garbage
collection finds it (psycopg then warns, in whatever code runs at that moment). ``ClosingEngine``
closes such a connection as it comes back instead, and serialises checking in with ``close`` so that
none slips into the pool between the two."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine


class ClosingEngine:
    """``engine`` for a store whose ``close`` may run while its calls are in flight. ``connect`` and
    ``begin`` yield a ``Connection`` as the engine's own do; after ``close`` (the pool disposed), a
    connection a call still held, or opened just after, is closed when the call gives it back.
    Raises what SQLAlchemy raises (``sqlalchemy.exc.SQLAlchemyError``); the store says whether it is
    open before it asks for a connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.closed = False
        self._checkin = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection, given back (or closed, after ``close``) at the end of the block."""
        conn = self.engine.connect()
        try:
            yield conn
        finally:
            with self._checkin:
                if self.closed:
                    conn.invalidate()  # closes the driver's connection; nothing goes back to the pool
                conn.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction: committed at the end of the block, rolled back on an exception."""
        with self.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        """Close every pooled connection now, and each one still out when it comes back."""
        with self._checkin:
            self.closed = True
            self.engine.dispose()
