"""``memos-mcp migrate --to URL``: the real executable in a subprocess copies a data directory built through
the public service (qdrant-edge or qdrant-client vectors, SQLite catalog and graph) into a real PostgreSQL
with pgvector; a service opened on that database then serves the same data."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import sqlalchemy as sa

from memos_mcp.config import ALIASES, Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.portability import FORMAT, import_lines
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.core.stores import catalog_tables
from memos_mcp.core.stores.vector import MemoryFilter, VectorPoint
from tests.conftest import settings_for
from tests.http.support import INITIALIZE, MCP_HEADERS, auth, running_app
from tests.postgres import PostgresServer

pytestmark = pytest.mark.usefixtures("clean_environment")

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 120.0
CONVERSATION = [
    {"role": "user", "content": "I adopted a corgi named Biscuit last spring."},
    {"role": "assistant", "content": "Lovely! How is Biscuit settling in?"},
    {"role": "user", "content": "He loves swimming in Lake Tahoe every summer."},
]
ALICE_FACTS = ["Alice's passport expires in March 2031.", "The spare house key is under the blue pot.",
               "Alice works with Bruno Diaz at the Lisbon observatory.", "Alice's dentist is Dr. Okafor in Porto."]
BOB_FACTS = ["Bob keeps bees on the roof of his flat in Ghent.", "Bob's sister Carla lives in Montreal."]
QUERIES = [("alice", "when does the passport expire"), ("alice", "where is the key"),
           ("alice", "Bruno Diaz"), ("alice", "bees on the roof"), ("bob", "sister in Montreal"),
           ("alice", "corgi swimming")]


def environment(backend: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}
    env["MEMOS_VECTOR__BACKEND"] = backend
    if backend == "qdrant":
        env["MEMOS_VECTOR__PATH"] = str(data_dir / "qdrant-local")
    return env | extra


def migrate_command(data_dir: Path, backend: str, *args: str) -> list[str]:
    return [str(MEMOS), "--data-dir", str(data_dir), "migrate", *args]


def migrate(data_dir: Path, backend: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(migrate_command(data_dir, backend, *args), env=environment(backend, data_dir),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def target_settings(data_dir: Path, url: str) -> Settings:
    return Settings(data_dir=data_dir, catalog={"url": url}, vector={"backend": "pgvector"},
                    server={"host": "127.0.0.1"})


@dataclass
class Source:
    data_dir: Path
    backend: str
    key: str  # alice's active API key
    revoked_key: str
    memory_ids: list[str]  # every memory ever added, deleted ones too (their history stays)


def build_source(data_dir: Path, backend: str, embedder: LocalOnnxEmbedder) -> Source:
    """Two users, bob's cube shared with alice, facts and a conversation, an update and a delete, two
    keys (one revoked), the graph on: every kind of data a data directory holds."""
    service = MemoryService.open(settings_for(data_dir, backend), embedder=embedder)
    try:
        for user in ("alice", "bob"):
            service.ensure_user(user)
        ids = [service.add_memory("alice", memory_content=f).memories[0].id for f in ALICE_FACTS]
        ids += [service.add_memory("bob", memory_content=f).memories[0].id for f in BOB_FACTS]
        ids += [m.id for m in service.add_memory("alice", messages=CONVERSATION, conversation_id="pets").memories]
        service.share_cube("bob", "bob_default_cube", "alice")
        service.accept_share("alice", "bob_default_cube")
        service.update_memory("alice", ids[1], memory="The spare house key is under the red pot now.")
        service.delete_memory("alice", ids[3])
        keys = KeyRing(service)
        key = keys.create(ROOT_USER, "alice").key
        revoked = keys.create(ROOT_USER, "bob")
        keys.revoke(ROOT_USER, revoked.key_id)
        graph = service.graph()
        assert graph is not None and graph.store.entities("alice_default_cube"), "the graph holds no entity"
    finally:
        service.close()
    return Source(data_dir, backend, key, revoked.key, ids)


def rows(engine: sa.Engine, table: sa.Table, cleared: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    key = list(table.primary_key.columns)
    with engine.connect() as conn:
        found = conn.execute(sa.select(table).order_by(*key)).all()
    names = [c.name for c in table.columns]
    return [tuple(None if n in cleared else v for n, v in zip(names, r, strict=True)) for r in found]


GRAPH_TABLES = {"entities": "graph_entities", "aliases": "graph_aliases", "relations": "graph_relations",
                "links": "graph_links"}


def graph_rows(source: Path, url: str) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """Every row of the graph's four tables in the SQLite file and in the PostgreSQL database."""
    from memos_mcp.core.graph import graph_tables

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    db = sqlite3.connect(source)
    try:
        here: dict[str, list[tuple[Any, ...]]] = {}
        there: dict[str, list[tuple[Any, ...]]] = {}
        for name, table_name in GRAPH_TABLES.items():
            table = graph_tables.metadata.tables[table_name]
            columns = ", ".join(c.name for c in table.columns)
            order = ", ".join(c.name for c in table.primary_key.columns)
            here[name] = [tuple(r) for r in db.execute(f"SELECT {columns} FROM {name} ORDER BY {order}")]
            there[name] = rows(engine, table)
        return here, there
    finally:
        db.close()
        engine.dispose()


def whole(service: MemoryService) -> dict[str, VectorPoint]:
    cubes = tuple(c.cube_id for c in service.catalog.list_cubes())
    flt = MemoryFilter(cube_ids=cubes, status=())
    ids = [p.id for page in service.ready().walk(flt, 200) for p in page]
    return {p.id: p for p in service.vectors.whole_points(ids)}


def assert_same_points(source: dict[str, VectorPoint], target: dict[str, VectorPoint]) -> None:
    assert sorted(source) == sorted(target)
    for point_id, point in source.items():
        other = target[point_id]
        assert other.payload == point.payload
        assert other.sparse.indices == point.sparse.indices
        assert other.sparse.values == pytest.approx(point.sparse.values, rel=1e-5)
        norm = math.sqrt(sum(x * x for x in point.dense))
        assert other.dense == pytest.approx([x / norm for x in point.dense], abs=1e-5)


def assert_same_data(source: Source, url: str, target_dir: Path, embedder: LocalOnnxEmbedder) -> None:
    """Every catalog row, graph row and point of the source is in the target, equal; searches, history and
    shares answer the same from a service on the target."""
    mine = MemoryService.open(settings_for(source.data_dir, source.backend), embedder=embedder)
    theirs = MemoryService.open(target_settings(target_dir, url), embedder=embedder)
    try:
        for table in catalog_tables.metadata.sorted_tables:
            cleared = ("lease_owner", "lease_until") if table.name == "tasks" else ()
            assert rows(theirs.catalog.engine, table, cleared) == rows(mine.catalog.engine, table, cleared), table.name
        assert_same_points(whole(mine), whole(theirs))
        for user, query in QUERIES:
            found = [(h.id, h.memory) for h in theirs.search(user, query, top_k=5).memories]
            assert found, query
            assert found == [(h.id, h.memory) for h in mine.search(user, query, top_k=5).memories], query
        for memory_id in source.memory_ids:
            assert theirs.history(ROOT_USER, memory_id) == mine.history(ROOT_USER, memory_id)
        for user in ("alice", "bob"):
            assert theirs.list_shares(user) == mine.list_shares(user)
            assert theirs.list_cubes(user) == mine.list_cubes(user)
        assert theirs.get_messages("alice", "pets") == mine.get_messages("alice", "pets")
    finally:
        mine.close()
        theirs.close()
    here, there = graph_rows(source.data_dir / "graph.sqlite3", url)
    assert there == here
    assert there["relations"] and there["links"]


@pytest.fixture(params=["edge", "qdrant"])
def source(request: pytest.FixtureRequest, tmp_path: Path, embedder: LocalOnnxEmbedder) -> Source:
    return build_source(tmp_path / "data", str(request.param), embedder)


def digests(data_dir: Path) -> dict[str, str]:
    """Each file of the data directory (its lock file apart) and a digest of its bytes."""
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_migrate_copies_every_kind_of_data_and_a_second_run_writes_nothing(
        source: Source, postgres_url: str, tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    before = digests(source.data_dir)
    first = ok(migrate(source.data_dir, source.backend, "--to", postgres_url, "--json"))
    assert digests(source.data_dir) == before  # the source is only read
    assert first["ok"] and first["differs"] == []
    kinds = first["kinds"]
    assert kinds["vectors"]["source"] == kinds["vectors"]["target"] == kinds["vectors"]["written"] > 0
    for name in ("users", "cubes", "shares", "api_keys", "messages", "history", "graph_relations", "graph_links"):
        assert kinds[name]["source"] == kinds[name]["target"] > 0, name
    assert first["embedding_model"] == embedder.model_id and first["dimension"] == embedder.dimension

    again = ok(migrate(source.data_dir, source.backend, "--to", postgres_url, "--json"))
    assert again["ok"]
    assert {n: (k["written"], k["unchanged"]) for n, k in again["kinds"].items()} == {
        n: (0, k["source"]) for n, k in first["kinds"].items()}

    assert_same_data(source, postgres_url, tmp_path / "served", embedder)

    # alice's key, as stored (its hash), lets her in over real HTTP; the revoked one does not
    with running_app(target_settings(tmp_path / "served", postgres_url), embedder) as app, \
            httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS | auth(source.revoked_key)).status_code == 401
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS | auth(source.key)).status_code == 200
        # a write on the target after the migration gets new sequence numbers, not the copied ones
        added = app.service.add_memory("alice", memory_content="Alice moved to Coimbra in 2026.").memories[0]
        assert [e.event for e in app.service.history("alice", added.id)] == ["ADD"]


def test_vectors_go_to_the_database_vector_url_names(tmp_path: Path, postgres: PostgresServer,
                                                     embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    catalog_url, vector_url = (postgres.url(postgres.create_database()) for _ in range(2))
    summary = ok(migrate(source.data_dir, "edge", "--to", catalog_url, "--vector-url", vector_url, "--json"))
    assert summary["kinds"]["vectors"]["target"] == summary["kinds"]["vectors"]["source"] > 0
    assert count_rows(catalog_url, "vectors_memos") == 0 and count_rows(vector_url, "users") == 0
    mine = MemoryService.open(settings_for(source.data_dir, "edge"), embedder=embedder)
    theirs = MemoryService.open(Settings(data_dir=tmp_path / "served", catalog={"url": catalog_url},
                                         vector={"backend": "pgvector", "url": vector_url}), embedder=embedder)
    try:
        assert_same_points(whole(mine), whole(theirs))
        for user, query in QUERIES:
            assert ([h.id for h in theirs.search(user, query, top_k=5).memories]
                    == [h.id for h in mine.search(user, query, top_k=5).memories]), query
    finally:
        mine.close()
        theirs.close()


def test_migrate_help_explains_the_command() -> None:
    result = subprocess.run([str(MEMOS), "migrate", "--help"], capture_output=True, text=True, timeout=TIMEOUT,
                            check=False, env=environment("edge", Path("unused")))
    assert result.returncode == 0
    for phrase in ("--to URL", "--vector-url URL", "--force", "--json", "MEMOS_CATALOG__URL=URL",
                   "MEMOS_VECTOR__BACKEND=pgvector", "exactly one copy", "lock"):
        assert phrase in result.stdout, phrase


def test_the_summary_is_the_only_output_on_stdout(tmp_path: Path, postgres_url: str,
                                                  embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    result = migrate(source.data_dir, "edge", "--to", postgres_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("meta: ") and "memories in" in lines[-1]
    assert all(" in the source, " in line for line in lines[:-1])


def import_source(data_dir: Path, embedder: LocalOnnxEmbedder, count: int) -> None:
    """``count`` memories imported with their embeddings (no model run), in one cube of alice's."""
    service = MemoryService.open(settings_for(data_dir, "edge"), embedder=embedder)
    try:
        service.ensure_user("alice")
        header = {"type": "header", "format": FORMAT, "embedding_model": embedder.model_id,
                  "dimension": embedder.dimension, "memories": count}
        lines = [json.dumps(header)]
        for i in range(count):
            vector = [math.sin(i * 7.0 + d) for d in range(embedder.dimension)]
            lines.append(json.dumps({"type": "memory", "id": str(uuid.UUID(int=i + 1)), "user_id": "alice",
                                     "memory": f"Note {i}: parcel {i} went to warehouse {i % 37} on aisle {i % 11}.",
                                     "created_at": 1_700_000_000 + i, "updated_at": 1_700_000_000 + i,
                                     "embedding": vector}))
        result = import_lines(service, "alice", lines)
        assert result.memories == count and not result.reembedded
    finally:
        service.close()


def count_rows(url: str, table: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            found = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(found[0]) if found else 0


def test_a_migration_killed_midway_is_finished_by_running_it_again(
        tmp_path: Path, postgres_url: str, embedder: LocalOnnxEmbedder) -> None:
    data = tmp_path / "data"
    import_source(data, embedder, 2000)
    process = subprocess.Popen(migrate_command(data, "edge", "--to", postgres_url, "--batch-size", "20", "--json"),
                               env=environment("edge", data), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    copied = 0
    while time.monotonic() < deadline and process.poll() is None:
        copied = count_rows(postgres_url, "vectors_memos")
        if 0 < copied < 2000:
            break
    assert process.poll() is None, "the migration ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert 0 < count_rows(postgres_url, "vectors_memos") < 2000

    summary = ok(migrate(data, "edge", "--to", postgres_url, "--json"))
    assert summary["kinds"]["vectors"]["target"] == 2000
    assert 0 < summary["kinds"]["vectors"]["unchanged"] < 2000
    ok(migrate(data, "edge", "--to", postgres_url, "--json"))

    mine = MemoryService.open(settings_for(data, "edge"), embedder=embedder)
    theirs = MemoryService.open(target_settings(tmp_path / "served", postgres_url), embedder=embedder)
    try:
        for table in catalog_tables.metadata.sorted_tables:
            assert rows(theirs.catalog.engine, table, ("lease_owner", "lease_until")) == rows(
                mine.catalog.engine, table, ("lease_owner", "lease_until")), table.name
        assert_same_points(whole(mine), whole(theirs))
    finally:
        mine.close()
        theirs.close()


def test_a_target_holding_other_data_is_refused_unless_forced(
        tmp_path: Path, postgres_url: str, embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    ok(migrate(source.data_dir, "edge", "--to", postgres_url, "--json"))
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE users SET user_name = 'Mallory' WHERE user_id = 'bob'")
        conn.execute("INSERT INTO users (user_id, user_name, role, created_at) VALUES ('zoe', 'zoe', 'user', 0)")
        before = conn.execute("SELECT user_id, user_name FROM users ORDER BY user_id").fetchall()

    refused = migrate(source.data_dir, "edge", "--to", postgres_url, "--json")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "error [conflict]" in refused.stderr
    assert "users: 1 differ under the same key (e.g. 'bob')" in refused.stderr
    assert "users: the target has 1 under keys the source lacks" in refused.stderr and "--force" in refused.stderr
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT user_id, user_name FROM users ORDER BY user_id").fetchall() == before

    forced = ok(migrate(source.data_dir, "edge", "--to", postgres_url, "--json", "--force"))
    assert forced["kinds"]["users"]["written"] == 1 and forced["kinds"]["users"]["kept"] == 1
    with psycopg.connect(postgres_url) as conn:
        names = dict(conn.execute("SELECT user_id, user_name FROM users").fetchall())
    assert names["bob"] == "bob" and names["zoe"] == "zoe"


def test_a_target_made_by_another_model_is_refused_even_when_forced(
        tmp_path: Path, postgres_url: str, embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    ok(migrate(source.data_dir, "edge", "--to", postgres_url, "--json"))
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE meta SET value = 'other/model' WHERE key = 'embedding_model'")
    refused = migrate(source.data_dir, "edge", "--to", postgres_url, "--force")
    assert refused.returncode == 2
    assert "error [config_error]" in refused.stderr and "'other/model'" in refused.stderr


@pytest.mark.parametrize("url", ["sqlite:///elsewhere.db", "not a url", "postgresql://user:secret@host:5432"])
def test_a_target_that_is_not_a_postgresql_url_is_refused_naming_the_flag(
        tmp_path: Path, embedder: LocalOnnxEmbedder, url: str) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    for flag in ("--to", "--vector-url"):
        args = ["--to", url] if flag == "--to" else ["--to", "postgresql://u@127.0.0.1:1/db", "--vector-url", url]
        refused = migrate(source.data_dir, "edge", *args)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"error [invalid_request]: {flag} must be a PostgreSQL URL" in refused.stderr
        assert "secret" not in refused.stderr


def test_an_unreachable_target_is_named_with_its_flag(tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    refused = migrate(source.data_dir, "edge", "--to", "postgresql://postgres:secret@127.0.0.1:1/memos")
    assert refused.returncode == 2
    assert "error [backend_unavailable]: cannot reach the PostgreSQL database of --to" in refused.stderr
    assert "secret" not in refused.stderr


def test_a_database_without_pgvector_is_refused_before_anything_is_written(
        tmp_path: Path, postgres: PostgresServer, embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    role = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
    url = postgres.url(role).replace("postgresql://postgres@", f"postgresql://{role}@")
    refused = migrate(source.data_dir, "edge", "--to", url)
    assert refused.returncode == 2
    assert "error [config_error]: cannot create the pgvector extension in the database of --to" in refused.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_a_source_in_use_is_refused_naming_its_lock(tmp_path: Path, postgres_url: str,
                                                    embedder: LocalOnnxEmbedder) -> None:
    source = build_source(tmp_path / "data", "edge", embedder)
    with open_service(source) as _:
        refused = migrate(source.data_dir, "edge", "--to", postgres_url)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "error [store_locked]" in refused.stderr and str(source.data_dir / ".lock") in refused.stderr
    assert count_rows(postgres_url, "users") == 0


def test_a_directory_without_a_catalog_is_refused(tmp_path: Path, postgres_url: str) -> None:
    refused = migrate(tmp_path / "nothing", "edge", "--to", postgres_url)
    assert refused.returncode == 2
    assert "is not a memos-mcp data directory" in refused.stderr and "--data-dir" in refused.stderr
    assert not (tmp_path / "nothing").exists()


@contextmanager
def open_service(source: Source) -> Iterator[MemoryService]:
    service = MemoryService.open(settings_for(source.data_dir, source.backend))
    try:
        yield service
    finally:
        service.close()
