"""The embedder's query and document prefixes through the memory service, on a real data directory
and a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from memos_mcp.config import Settings
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import ConfigError
from tests.conftest import settings_for
from tests.openai_server import OpenAIServer

PREFIXES = {"query_prefix": "search_query: ", "document_prefix": "search_document: "}


@pytest.fixture(params=["edge", "qdrant"])
def backend(request: pytest.FixtureRequest) -> str:
    """The prefixes are the embedder's: the embedded stores suffice (this module builds its own settings)."""
    return str(request.param)


def _settings(data_dir: Path, backend: str, openai_server: OpenAIServer, **prefixes: str) -> Settings:
    return settings_for(data_dir, backend, embedder={"backend": "openai", "model": "embed",
                                                     "base_url": openai_server.url, "api_key": "k", **prefixes})


def _inputs(openai_server: OpenAIServer) -> list[str]:
    return [text for r in openai_server.requests if "input" in r
            for text in ([r["input"]] if isinstance(r["input"], str) else r["input"])]


def test_stored_memories_are_embedded_after_the_document_prefix_and_queries_after_the_query_prefix(
        tmp_path: Path, backend: str, openai_server: OpenAIServer) -> None:
    service = MemoryService.open(_settings(tmp_path / "data", backend, openai_server, **PREFIXES))
    try:
        service.ensure_user("alice")
        service.add_memory("alice", memory_content="The spare key is under the blue pot.")
        stored = _inputs(openai_server)
        hits = service.search("alice", "where is the spare key").memories
    finally:
        service.close()
    assert [h.memory for h in hits] == ["The spare key is under the blue pot."]
    assert any(t.startswith("search_document: ") and "spare key" in t for t in stored)
    assert not any(t.startswith("search_query: ") for t in stored)
    queries = _inputs(openai_server)[len(stored):]
    assert queries and all(t.startswith("search_query: ") for t in queries)
    assert "search_query: where is the spare key" in queries


def test_a_data_directory_made_without_prefixes_refuses_to_open_with_them(
        tmp_path: Path, backend: str, openai_server: OpenAIServer) -> None:
    first = MemoryService.open(_settings(tmp_path / "data", backend, openai_server))
    first.ensure_user("alice")
    first.add_memory("alice", memory_content="Made without prefixes.")
    first.close()
    calls = len(openai_server.requests)
    with pytest.raises(ConfigError) as caught:
        MemoryService.open(_settings(tmp_path / "data", backend, openai_server, **PREFIXES))
    assert f"openai:{openai_server.url}:embed'" in caught.value.message
    assert "search_query: " in caught.value.message
    assert len(openai_server.requests) == calls  # decided before the model is called
    reopened = MemoryService.open(_settings(tmp_path / "data", backend, openai_server))
    try:
        assert reopened.list_memories("alice").total == 1
    finally:
        reopened.close()
