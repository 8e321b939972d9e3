"""Shared fixtures: one real local embedder per test session, and services over real stores in
temporary data directories, for both vector backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.config import ALIASES, Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService

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


def settings_for(data_dir: Path, backend: str = "edge", **overrides: Any) -> Settings:
    vector: dict[str, Any] = {"backend": backend}
    if backend == "qdrant":
        vector["path"] = data_dir / "qdrant-local"
    return Settings(data_dir=data_dir, vector=vector, **overrides)


@pytest.fixture(params=["edge", "qdrant"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_service(tmp_path: Path, embedder: LocalOnnxEmbedder, backend: str) -> Iterator[ServiceFactory]:
    """Opens services on the parametrised backend; each is closed at the end of the test."""
    opened: list[MemoryService] = []

    def make(data_dir: Path | None = None, **overrides: Any) -> MemoryService:
        service = MemoryService.open(settings_for(data_dir or tmp_path / "data", backend, **overrides),
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
