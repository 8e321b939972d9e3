"""Chat grounded in memory, against a real OpenAI-compatible server on 127.0.0.1; suggestions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memos_mcp.config import LLMSettings
from memos_mcp.errors import BackendUnavailable, LLMNotConfigured
from tests.conftest import ServiceFactory
from tests.openai_server import OpenAIServer


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    yield server
    server.stop()


def test_chat_without_a_model_is_a_clear_error(make_service: ServiceFactory) -> None:
    service = make_service()
    service.ensure_user("alice")
    with pytest.raises(LLMNotConfigured, match="No language model configured"):
        service.chat("alice", "hello")
    assert service.get_messages("alice", "default") == []


def test_chat_cites_memories_respects_preferences_and_stores_the_exchange(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model", temperature=0.2,
                                           max_tokens=64))
    service.ensure_user("alice")
    fact = service.add_memory("alice", memory_content="Alice's sister Mia lives in Porto.").memories[0]
    service.add_memory("alice", messages=[{"role": "user", "content": "I hate early flights."}])
    llm_server.replies.append(f"Mia lives in Porto {fact.ref_id}.")

    reply = service.chat("alice", "Where does my sister live?", conversation_id="c1")

    assert reply.answer == f"Mia lives in Porto {fact.ref_id}."
    assert fact.id in [m.id for m in reply.references]
    request = llm_server.requests[-1]
    assert (request["model"], request["temperature"], request["max_tokens"]) == ("scripted-model", 0.2, 64)
    system = request["messages"][0]["content"]
    assert f"{fact.ref_id} Alice's sister Mia lives in Porto." in system
    assert "I hate early flights." in system and "preferences" in system.lower()
    assert request["messages"][-1] == {"role": "user", "content": "Where does my sister live?"}
    stored = service.get_messages("alice", "c1")
    assert [(m.role, m.content) for m in stored] == [("user", "Where does my sister live?"),
                                                     ("assistant", reply.answer)]

    llm_server.replies.append("Still Porto.")
    service.chat("alice", "And again?", conversation_id="c1")
    window = llm_server.requests[-1]["messages"][1:-1]
    assert [m["content"] for m in window] == ["Where does my sister live?", reply.answer]


def test_an_unreachable_model_is_backend_unavailable(make_service: ServiceFactory,
                                                     llm_server: OpenAIServer) -> None:
    url = llm_server.url
    llm_server.stop()
    service = make_service(llm=LLMSettings(base_url=url, model="m", timeout=2))
    service.ensure_user("alice")
    with pytest.raises(BackendUnavailable, match="language model"):
        service.chat("alice", "hello")


def test_suggestions_come_from_recent_memories(make_service: ServiceFactory) -> None:
    service = make_service()
    service.ensure_user("alice")
    assert service.suggestions("alice") == []
    for text in ("Plan the garden layout.", "Book the dentist.", "Renew the passport.", "Call grandma."):
        service.add_memory("alice", memory_content=text)
    suggestions = service.suggestions("alice")
    assert len(suggestions) == 3
    assert all("?" in s for s in suggestions)
    assert any("Call grandma" in s for s in suggestions)
