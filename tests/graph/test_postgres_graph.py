"""The graph on PostgreSQL, beyond the contract suite: replicas writing at the same moment store each
entity and each relation once, the schema is made once and checked on a read-only open, and the
catalog's configuration selects it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from memos_mcp.config import Settings
from memos_mcp.core.factory import build_graph_store
from memos_mcp.core.graph.graph_tables import HEAD
from memos_mcp.core.graph.postgres_store import PostgresGraphStore, missing_schema
from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
from memos_mcp.core.graph.store import Entity
from memos_mcp.core.stores.catalog_db import database_url
from memos_mcp.errors import DataDirReadOnly, StorageError


@contextmanager
def opened(url: str, read_only: bool = False) -> Iterator[PostgresGraphStore]:
    store = PostgresGraphStore(url, read_only)
    store.open()
    try:
        yield store
    finally:
        store.close()


WRITERS = 4
LINKS = 40
TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]

# One writer process: opens the store, says "ready", waits for "go" on stdin, then adds the same chain
# of relations as every other writer (Person 0 knows person 1, PERSON 1 knows Person 2, ...), each in
# its own call, from its own memory.
_WRITER = textwrap.dedent("""
    import sys, uuid
    from memos_mcp.core.graph.postgres_store import PostgresGraphStore
    from memos_mcp.core.graph.store import Relation

    url, memory, links = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = PostgresGraphStore(url)
    store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(links):
        store.store_relations("c", [Relation(id=uuid.uuid4().hex, cube_id="c", subject=f"Person {i}",
                                             predicate="knows", object=f"person {i + 1}", memory_ids=[memory])])
    store.close()
""")


@pytest.mark.parametrize("known", [False, True], ids=["new entities", "known entities"])
def test_writers_in_several_processes_at_once_store_each_entity_and_relation_once(
        postgres_url: str, known: bool) -> None:
    if known:  # nothing but the relation check itself keeps the writers apart then
        with opened(postgres_url) as store:
            store.upsert_entities("c", [Entity(f"person {i}") for i in range(LINKS + 1)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, postgres_url, f"m{i}", str(LINKS)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
               for i in range(WRITERS)]
    try:
        for writer in writers:  # every process connected and migrated before any writes
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            writer.stdin.close()  # type: ignore[union-attr]
            assert writer.wait(timeout=TIMEOUT) == 0
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait(timeout=TIMEOUT)
            writer.stdout.close()  # type: ignore[union-attr]

    with opened(postgres_url) as store:
        relations = store.relations("c", limit=10 * LINKS)
        assert sorted((r.subject.casefold(), r.object) for r in relations) == sorted(
            (f"person {i}", f"person {i + 1}") for i in range(LINKS))
        assert all(sorted(r.memory_ids) == [f"m{i}" for i in range(WRITERS)] for r in relations)
        assert len(store.entities("c", limit=10 * LINKS)) == LINKS + 1


def test_the_tables_are_made_once_by_the_graphs_own_migrations_beside_the_catalogs(postgres_url: str) -> None:
    with opened(postgres_url), opened(postgres_url):  # the second open finds them at the head revision
        pass
    engine = sa.create_engine(database_url(postgres_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM graph_alembic_version")).scalars().all() == [HEAD]
            assert missing_schema(conn) == []
            assert not sa.inspect(conn).has_table("alembic_version")  # the catalog's chain is not touched
    finally:
        engine.dispose()


def test_the_schema_check_names_a_dropped_table_with_its_indexes_and_a_dropped_index(postgres_url: str) -> None:
    with opened(postgres_url):
        pass
    engine = sa.create_engine(database_url(postgres_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE graph_relations"))
            conn.execute(sa.text("DROP INDEX graph_links_subject"))
            conn.execute(sa.text("ALTER TABLE graph_entities DROP COLUMN type"))
            assert missing_schema(conn) == [
                "column graph_entities.type", "index graph_links_subject", "table graph_relations",
                "index graph_relations_object", "index graph_relations_open", "index graph_relations_subject"]
    finally:
        engine.dispose()


def test_a_read_only_open_makes_nothing_and_refuses_writes(postgres_url: str) -> None:
    with pytest.raises(StorageError, match="lacks table graph_aliases, index graph_aliases_entity, "
                                           "table graph_entities, table graph_links, index graph_links_memory, "):
        PostgresGraphStore(postgres_url, read_only=True).open()
    with opened(postgres_url) as store:
        store.upsert_entities("c", [Entity("Alice")])
    with opened(postgres_url, read_only=True) as store:
        assert [e.name for e in store.entities("c")] == ["Alice"]
        with pytest.raises(DataDirReadOnly):
            store.upsert_entities("c", [Entity("Bob")])
    with opened(postgres_url) as store:
        assert [e.name for e in store.entities("c")] == ["Alice"]


def test_an_unreachable_database_is_a_storage_error_naming_it_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://memos:secret@/memos?host={tmp_path}&connect_timeout=2"  # no server on that socket
    with pytest.raises(StorageError, match="cannot open the graph store") as raised:
        PostgresGraphStore(url).open()
    assert "secret" not in str(raised.value)


def test_the_embedded_backend_follows_the_catalog_onto_postgresql(tmp_path: Path, postgres_url: str) -> None:
    assert isinstance(build_graph_store(Settings(data_dir=tmp_path)), SqliteGraphStore)
    on_postgres = build_graph_store(Settings(data_dir=tmp_path, catalog={"url": postgres_url}))
    assert isinstance(on_postgres, PostgresGraphStore)
    sqlite_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    assert isinstance(build_graph_store(Settings(data_dir=tmp_path, catalog={"url": sqlite_url})), SqliteGraphStore)


def test_doctor_names_the_catalogs_database_as_the_graphs(
        tmp_path: Path, postgres_url: str, clean_environment: None) -> None:
    from tests.test_cli import check_lines, memos, ok

    doctor = ok(memos(tmp_path, tmp_path / "data", "doctor", DATABASE_URL=postgres_url))
    verdict, detail = check_lines(doctor.stdout)["graph"]
    assert verdict == "ok"
    assert detail.startswith(f"postgresql at {database_url(postgres_url).render_as_string(hide_password=True)}")
    assert not (tmp_path / "data" / "graph.sqlite3").exists()
