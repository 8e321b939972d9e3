"""Shared fixtures: one real local embedder per test session, and services over real stores in
temporary data directories, for both vector backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from memos_mcp.config import ALIASES, Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService
from tests.llama_server import LLAMA_PYTHON, LlamaServer
from tests.openai_server import OpenAIServer
from tests.postgres import PostgresServer

ServiceFactory = Callable[..., MemoryService]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No inherited MEMOS_* or seed-alias variable; the working directory (and its .env) in tmp_path."""
    for name in list(os.environ):
        if name.startswith("MEMOS_") or name in ALIASES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder() -> Iterator[LocalOnnxEmbedder]:
    model = LocalOnnxEmbedder()
    model.load()
    yield model
    model.close()


def settings_for(data_dir: Path, backend: str = "edge", vector_url: str | None = None,
                 **overrides: Any) -> Settings:
    """Settings on ``data_dir`` for the vector ``backend`` ("edge", "qdrant" in local mode, or
    "pgvector" on the database at ``vector_url``)."""
    vector: dict[str, Any] = {"backend": backend}
    if backend == "qdrant":
        vector["path"] = data_dir / "qdrant-local"
    if backend == "pgvector":
        vector["url"] = vector_url
    return Settings(data_dir=data_dir, vector=vector, **overrides)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 (``tests.openai_server``; 12-dimensional vectors)."""
    server = OpenAIServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server with pgvector for the session (see ``tests.postgres``)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    return postgres.url(postgres.create_database())


@pytest.fixture(params=["edge", "qdrant", "pgvector"])
def backend(request: pytest.FixtureRequest) -> str:
    """The vector backend; a suite may add "+postgresql" (the catalog on PostgreSQL too, as tests/core does)."""
    return str(request.param)


@pytest.fixture
def make_service(tmp_path: Path, embedder: LocalOnnxEmbedder, backend: str,
                 request: pytest.FixtureRequest) -> Iterator[ServiceFactory]:
    """Opens services on the parametrised backend; each is closed at the end of the test. Each data
    directory of the test gets a new PostgreSQL database where the backend needs one: "pgvector" keeps
    its vectors there, "edge+postgresql" its catalog; ``database_of`` names another data directory
    of the test whose database this one shares (replicas of one service)."""
    opened: list[MemoryService] = []
    vector, _, catalog = backend.partition("+")
    databases: dict[Path, str] = {}

    def make(data_dir: Path | None = None, database_of: Path | None = None, **overrides: Any) -> MemoryService:
        data_dir = data_dir or tmp_path / "data"
        if database_of is not None:
            databases[data_dir] = databases[database_of]
        if (vector == "pgvector" or catalog == "postgresql") and data_dir not in databases:
            server: PostgresServer = request.getfixturevalue("postgres")
            databases[data_dir] = server.url(server.create_database())
        if catalog == "postgresql":
            overrides.setdefault("catalog", {"url": databases[data_dir]})
        service = MemoryService.open(settings_for(data_dir, vector, databases.get(data_dir), **overrides),
                                     embedder=embedder)
        opened.append(service)
        return service

    yield make
    for service in opened:
        if service._lock is None or service._lock.is_locked:
            service.close()


@pytest.fixture
def service(make_service: ServiceFactory) -> MemoryService:
    return make_service()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real llama.cpp OpenAI-compatible server (Gemma 3 270M), started once per session and warmed up
    by one short request, so that no test pays for the first one. Skipped only when .venv-llama is
    absent; scripts/setup.sh test (and so CI) always installs it, and a broken install fails."""
    venv = LLAMA_PYTHON.parents[1]
    if not venv.is_dir():
        pytest.skip(f"{venv} is absent: scripts/setup.sh test installs llama-cpp-python's server there")
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    try:
        with OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120) as client:
            client.chat.completions.create(model=server.model, max_tokens=4,
                                           messages=[{"role": "user", "content": "Hello"}])
        yield server
    finally:
        server.stop()
