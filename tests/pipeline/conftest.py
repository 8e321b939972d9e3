"""The language-model add pipeline against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.config import LLMSettings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.models import Task, TaskStatus
from memos_mcp.core.service import MemoryService
from tests.conftest import settings_for
from tests.openai_server import OpenAIServer

Open = Callable[..., MemoryService]


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    yield server
    server.stop()


@pytest.fixture
def open_service(tmp_path: Path, embedder: LocalOnnxEmbedder, llm_server: OpenAIServer) -> Iterator[Open]:
    """Services on embedded Qdrant whose model is the scripted server (no retries unless asked)."""
    opened: list[MemoryService] = []

    def make(data_dir: Path | None = None, **llm: Any) -> MemoryService:
        options = {"base_url": llm_server.url, "model": "scripted-model", "timeout": 5.0, "max_retries": 0, **llm}
        service = MemoryService.open(settings_for(data_dir or tmp_path / "data", llm=LLMSettings(**options)),
                                     embedder=embedder)
        opened.append(service)
        return service

    yield make
    for service in opened:
        if service._lock is None or service._lock.is_locked:
            service.close()


def answer(**sections: Any) -> str:
    """A model answer in the extraction format."""
    return json.dumps({"facts": [], "preferences": [], "updates": [], "entities": [], "relations": [], **sections})


def settle(service: MemoryService, actor: str, task_id: str, timeout: float = 20.0) -> Task:
    """The task once it is done or failed (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = service.get_task(actor, task_id)
        if task.status in (TaskStatus.DONE, TaskStatus.FAILED):
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} still {service.get_task(actor, task_id).status} after {timeout} s")
