"""Closing a store on PostgreSQL (the catalog, the graph store, a whole service with catalog, vectors
and graph there) while calls in other threads still hold its connections: each call finishes, and
no connection is left open afterwards (none waits in a disposed pool for garbage collection, which
would close it with a ResourceWarning in whatever test runs then)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence

import psycopg
import pytest

from memos_mcp.core.graph.postgres_store import PostgresGraphStore
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.errors import StorageError
from tests.conftest import ServiceFactory
from tests.postgres import rows

TIMEOUT = 30.0


def wait_until(condition: Callable[[], bool], what: str, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {seconds} s"
        time.sleep(0.05)


def sessions(url: str, waiting: bool = False) -> int:
    """Connections to the database of ``url`` other than the one asking (only those waiting for a lock)."""
    where = " AND wait_event_type = 'Lock'" if waiting else ""
    return int(rows(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         f"AND pid <> pg_backend_pid(){where}")[0][0])


def close_while_in_flight(url: str, tables: Sequence[str], calls: Sequence[Callable[[], object]],
                          close: Callable[[], None]) -> list[object]:
    """Locks ``tables``, starts each call in a thread, waits until every one is blocked on the lock
    (holding a connection), runs ``close``, then unlocks; what each call returned or raised."""
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported to the test as the call's result
            results[index] = exc

    with psycopg.connect(url) as blocker:
        for table in tables:
            blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        wait_until(lambda: sessions(url, waiting=True) >= len(calls), "every call waiting for the lock")
        close()
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
        assert not thread.is_alive()
    return results


def assert_nothing_left_open(url: str) -> None:
    """Every connection to the database ends without a garbage collection; one then finds nothing
    (a connection it closed would warn, and pytest would report that warning here)."""
    wait_until(lambda: sessions(url) == 0, "every connection closed", seconds=10)
    gc.collect()
    assert sessions(url) == 0


def test_a_catalog_closed_while_a_read_and_a_write_are_in_flight_leaves_no_connection_open(
        postgres_url: str) -> None:
    catalog = Catalog(postgres_url)
    results = close_while_in_flight(postgres_url, ["users", "meta"],
                                    [lambda: catalog.get_user("nobody"), lambda: catalog.set_meta("k", "v")],
                                    catalog.close)
    assert results == [None, None]
    assert_nothing_left_open(postgres_url)
    assert rows(postgres_url, "SELECT value FROM meta WHERE key = 'k'") == [("v",)]


def test_a_graph_store_closed_while_a_read_and_a_write_are_in_flight_leaves_no_connection_open(
        postgres_url: str) -> None:
    store = PostgresGraphStore(postgres_url)
    store.open()
    results = close_while_in_flight(postgres_url, ["graph_entities"],
                                    [lambda: store.entity("cube", "Alice"), lambda: store.delete_cube("cube")],
                                    store.close)
    # the read makes several statements: those after the close answer that the store is closed
    assert all(r is None or isinstance(r, StorageError) for r in results), results
    assert_nothing_left_open(postgres_url)


@pytest.fixture
def backend() -> str:
    return "pgvector+postgresql"  # the catalog, the vectors and the graph in one PostgreSQL database


def test_a_service_closed_while_calls_hold_each_of_its_stores_leaves_no_connection_open(
        make_service: ServiceFactory) -> None:
    service = make_service()
    assert service.settings.catalog.url is not None
    url = service.settings.catalog.url.get_secret_value()
    service.ensure_user("alice")
    service.add_memory("alice", memory_content="Alice met Bob in Porto.")
    graph = service.graph_store
    assert isinstance(graph, PostgresGraphStore)
    results = close_while_in_flight(
        url, ["messages", "vectors_memos", "graph_entities"],
        [lambda: service.get_messages("alice", "c1"), lambda: service.list_memories("alice"),
         lambda: graph.entity("alice", "Bob")],
        service.close)
    assert len(results) == 3
    assert_nothing_left_open(url)
