"""The whole language-model path against a real inference server: llama.cpp's OpenAI-compatible server
running Gemma 3 270M (a small base model: its memories are poor, but every protocol path is real)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memos_mcp.config import LLMSettings
from memos_mcp.core.chat import Delta, Done
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.models import TaskStatus
from memos_mcp.core.service import MemoryService
from tests.conftest import settings_for
from tests.llama_server import LlamaServer


@pytest.fixture
def real(tmp_path: Path, embedder: LocalOnnxEmbedder, llama_server: LlamaServer) -> Iterator[MemoryService]:
    llm = LLMSettings(base_url=llama_server.url, model=llama_server.model, json_mode="json_object_schema",
                      fold_system=True, extraction_max_tokens=1024, max_tokens=48, temperature=0.0, timeout=120)
    service = MemoryService.open(settings_for(tmp_path / "data", llm=llm), embedder=embedder)
    service.ensure_user("caroline")
    yield service
    service.close()


def test_an_add_is_extracted_by_the_real_model_in_one_call(real: MemoryService) -> None:
    assert real.llm is not None
    ack = real.add_memory("caroline", conversation_id="s1", messages=[
        {"role": "user", "name": "Caroline", "content": "I went to an LGBTQ support group yesterday.",
         "chat_time": "2023-05-08T13:56:00Z"},
        {"role": "user", "name": "Caroline", "content": "I am studying to become a counselor."}])
    assert ack.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)  # answered before the model did
    result = real.add_memory("caroline", conversation_id="s1", async_mode=False, messages=[
        {"role": "user", "name": "Caroline", "content": "My friend Zofia recommended a book on adoption."}])
    first, second = real.get_task("caroline", str(ack.task_id)), real.get_task("caroline", str(result.task_id))
    assert (first.status, first.extractor, second.status, second.extractor) == (TaskStatus.DONE, "llm",) * 2
    usage = real.llm.usage  # exactly one call per batch, each with the instructions and the messages
    assert (usage.calls, usage.failures) == (2, 0) and usage.prompt_tokens > 2 * 400
    assert real.get_messages("caroline", "s1")[0].content.startswith("I went to an LGBTQ")


def test_chat_streams_the_real_models_tokens(real: MemoryService) -> None:
    real.add_memory("caroline", memory_content="Caroline's friend Zofia recommended a book on adoption.")
    events = list(real.chat_stream("caroline", "What did Zofia recommend?", conversation_id="chat"))
    deltas = [e.text for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Done) and len(deltas) > 3 and "".join(deltas).strip() == done.reply.answer.strip()
    assert [m.role for m in real.get_messages("caroline", "chat")] == ["user", "assistant"]
