"""Chat grounded in memory, against a real OpenAI-compatible server on 127.0.0.1; suggestions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from memos_mcp.config import LLMSettings
from memos_mcp.core.chat import Delta, Done, References
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import BackendUnavailable, InvalidRequest, LLMNotConfigured
from tests.conftest import ServiceFactory
from tests.openai_server import OpenAIServer, Reply


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
    service.add_memory("alice", messages=[{"role": "user", "content": "I hate early flights."}], async_mode=False)
    llm_server.replies.append(f"Mia lives in Porto {fact.ref_id}.")

    reply = service.chat("alice", "Where does my sister live?", conversation_id="c1")

    assert reply.answer == f"Mia lives in Porto {fact.ref_id}."
    assert fact.id in [m.id for m in reply.references]
    request = llm_server.chat_requests[-1]
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
    window = llm_server.chat_requests[-1]["messages"][1:-1]
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


# --- streaming ------------------------------------------------------------------------------------

def chatty(make_service: ServiceFactory, server: OpenAIServer, **llm: Any) -> MemoryService:
    service = make_service(llm=LLMSettings(base_url=server.url, model="scripted-model", **llm))
    service.ensure_user("alice")
    return service


def test_a_stream_yields_references_then_the_text_piece_by_piece_then_the_reply(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server)
    fact = service.add_memory("alice", memory_content="Alice's cat is called Miso.").memories[0]
    llm_server.replies.append(f"Your cat is called Miso {fact.ref_id}, a fine name.")

    events = list(service.chat_stream("alice", "What is my cat called?", conversation_id="pets"))

    assert isinstance(events[0], References) and fact.id in [m.id for m in events[0].all]
    deltas = [e.text for e in events[1:-1] if isinstance(e, Delta)]
    assert len(deltas) == len(events) - 2 > 3  # a word at a time, as the model wrote them
    done = events[-1]
    assert isinstance(done, Done) and done.seconds >= 0
    assert "".join(deltas) == done.reply.answer == f"Your cat is called Miso {fact.ref_id}, a fine name."
    assert llm_server.chat_requests[-1]["stream"] is True
    assert fact.ref_id in llm_server.chat_requests[-1]["messages"][0]["content"]
    assert [m.content for m in service.get_messages("alice", "pets")] == ["What is my cat called?",
                                                                          done.reply.answer]


def test_the_window_keeps_the_last_turns_and_a_callers_history_replaces_it(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server, max_turns_window=2)
    for turn in range(4):
        llm_server.replies.append(f"Answer {turn}.")
        service.chat("alice", f"Question {turn}?", conversation_id="long")
    window = [m["content"] for m in llm_server.chat_requests[-1]["messages"][1:-1]]
    assert window == ["Question 1?", "Answer 1.", "Question 2?", "Answer 2."]

    llm_server.replies.append("Fine.")
    history = [{"role": "user", "content": "Earlier question?"}, {"role": "assistant", "content": "Earlier."}]
    service.chat("alice", "Next?", conversation_id="long", history=history)
    assert llm_server.chat_requests[-1]["messages"][1:] == [*history, {"role": "user", "content": "Next?"}]

    with pytest.raises(InvalidRequest, match="history"):
        service.chat("alice", "Next?", history=[{"role": "robot", "content": "?"}])


def test_a_callers_system_prompt_opens_the_system_message_before_the_memories(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server)
    service.add_memory("alice", messages=[{"role": "user", "content": "I prefer answers in French."}],
                       async_mode=False)
    llm_server.replies.append("D'accord.")
    service.chat("alice", "Say hello", system_prompt="You are Captain Terse. Use ten words at most.")
    system = llm_server.chat_requests[-1]["messages"][0]["content"]
    assert system.startswith("You are Captain Terse.")
    assert "respect" in system.lower() and "I prefer answers in French." in system.split("Preferences")[-1]


def test_a_stream_that_dies_mid_way_raises_and_stores_nothing(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server, max_retries=0)
    llm_server.replies.append(Reply(content="one two three four five six seven", die_after=4))
    stream = service.chat_stream("alice", "Count for me", conversation_id="broken")
    seen: list[str] = []
    with pytest.raises(BackendUnavailable, match="dropped the connection"):
        for event in stream:
            if isinstance(event, Delta):
                seen.append(event.text)
    assert seen == ["one ", "two ", "three "]
    assert service.get_messages("alice", "broken") == []
    assert service.list_memories("alice").total == 0


def test_rate_limits_are_retried_before_the_first_token(make_service: ServiceFactory,
                                                        llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server, max_retries=2)
    llm_server.replies += [Reply(status=429, headers={"retry-after": "0"}), "After a pause."]
    assert service.chat("alice", "Hello?").answer == "After a pause."
    assert len(llm_server.chat_requests) == 2


def test_a_model_that_keeps_rate_limiting_or_times_out_is_backend_unavailable(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server, max_retries=0, timeout=0.3)
    llm_server.replies += [Reply(status=429, headers={"retry-after": "0"}), Reply(content="late", delay=1.5)]
    with pytest.raises(BackendUnavailable, match="429"):
        service.chat_stream("alice", "Hello?")
    with pytest.raises(BackendUnavailable, match="timed out"):
        service.chat_stream("alice", "Hello?")
    assert service.get_messages("alice", "default") == []


# --- suggestions with a model -----------------------------------------------------------------------

def test_the_model_writes_three_suggestions_from_recent_memories(make_service: ServiceFactory,
                                                                 llm_server: OpenAIServer) -> None:
    service = chatty(make_service, llm_server)
    service.add_memory("alice", memory_content="Alice is training for the Berlin marathon.")
    questions = ["How should I taper?", "What pace suits me?", "When is the race?"]
    llm_server.replies.append(json.dumps({"questions": questions}))
    assert service.suggestions("alice") == questions
    request = llm_server.chat_requests[-1]
    assert request["response_format"] == {"type": "json_object"}
    assert "Berlin marathon" in request["messages"][0]["content"]

    llm_server.replies.append(json.dumps({"questions": ["我该如何调整？", "配速多少？", "比赛何时？"]}))
    service.suggestions("alice", language="zh")
    assert "Chinese" in llm_server.chat_requests[-1]["messages"][0]["content"]


@pytest.mark.parametrize("answer", ["not json at all", json.dumps({"questions": ["Only one?"]}),
                                    json.dumps({"questions": ["Same?", "Same?", "Same?"]}),
                                    Reply(status=500)])
def test_a_bad_or_failed_suggestion_answer_falls_back_to_memory_keys(
        make_service: ServiceFactory, llm_server: OpenAIServer, answer: str | Reply) -> None:
    service = chatty(make_service, llm_server, max_retries=0)
    service.add_memory("alice", memory_content="Renew the passport.")
    llm_server.replies.append(answer)
    assert service.suggestions("alice") == ["What else do you remember about “Renew the passport”?"]
    assert service.suggestions("alice", language="zh") == ["关于“Renew the passport”，你还记得什么？"]
