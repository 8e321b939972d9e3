"""The language-model add pipeline against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.config import LLMSettings
from memos_mcp.core.models import Task, TaskStatus
from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory
from tests.openai_server import OpenAIServer

Open = Callable[..., MemoryService]


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    yield server
    server.stop()


@pytest.fixture
def open_service(make_service: ServiceFactory, llm_server: OpenAIServer) -> Open:
    """Services (on both vector backends) whose model is the scripted server, with no retries unless asked."""

    def make(data_dir: Path | None = None, **llm: Any) -> MemoryService:
        options = {"base_url": llm_server.url, "model": "scripted-model", "timeout": 5.0, "max_retries": 0, **llm}
        return make_service(data_dir, llm=LLMSettings(**options))

    return make


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
