"""Chat grounded in memory, and follow-up suggestions.

A chat retrieves facts and preferences, lays them out with their ref_ids in one system message (after
the caller's own system prompt, if any), adds a window of the conversation's recent turns (or the
caller's ``history`` instead) and streams the configured model's answer. ``MemoryService.chat_stream``
does everything that can fail early (access, search, the model's first token) before it hands back a
``ChatStream``; iterating it yields ``References``, then ``Delta`` after ``Delta``, then ``Done``.

Only a complete answer is remembered: if the model's stream dies mid-way, iteration raises
``BackendUnavailable`` and nothing of the exchange is stored (neither the messages nor memories), so
that the conversation never holds a truncated answer as if it were whole; the caller may ask again.

Suggestions are three follow-up questions: with a model, one JSON-mode call over the user's recent
memories; without one, or when the model fails or answers badly, questions about their keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from memos_mcp.core import prompts
from memos_mcp.core.model_json import json_object
from memos_mcp.core.models import Memory, SearchResult
from memos_mcp.errors import InvalidRequest

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel

Language = Literal["en", "zh"]
CHAT_ROLES = ("user", "assistant", "system")


class ChatReply(BaseModel):
    answer: str
    references: list[Memory]
    conversation_id: str


@dataclass(frozen=True)
class References:
    """The memories the answer may cite: facts, then preferences."""

    memories: Sequence[Memory]
    preferences: Sequence[Memory]

    @property
    def all(self) -> list[Memory]:
        return [*self.memories, *self.preferences]


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Done:
    reply: ChatReply
    seconds: float  # from the start of the chat to the last token


ChatEvent = References | Delta | Done


class ChatStream:
    """An answer being generated, its first token already received. Iterate it once; ``close`` it to
    abandon the answer (nothing is stored then)."""

    def __init__(self, references: References, conversation_id: str, first: str | None, rest: Iterator[str],
                 remember: Callable[[str], None], started: float) -> None:
        self.references = references
        self.conversation_id = conversation_id
        self._first, self._rest = first, rest
        self._remember = remember
        self._started = started
        self._events = self._run()

    def __iter__(self) -> Iterator[ChatEvent]:
        return self._events

    def close(self) -> None:
        self._events.close()
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()

    def _run(self) -> Generator[ChatEvent]:
        yield self.references
        parts: list[str] = []
        if self._first is not None:
            parts.append(self._first)
            yield Delta(self._first)
            for text in self._rest:  # BackendUnavailable here: nothing below runs, nothing is stored
                parts.append(text)
                yield Delta(text)
        answer = "".join(parts).strip()
        self._remember(answer)
        yield Done(ChatReply(answer=answer, references=self.references.all, conversation_id=self.conversation_id),
                   round(time.perf_counter() - self._started, 3))


def collect(stream: ChatStream, on_delta: Callable[[str], None] | None = None) -> ChatReply:
    """The whole reply of a stream, each delta handed to ``on_delta`` on the way."""
    try:
        for event in stream:
            if isinstance(event, Delta) and on_delta is not None:
                on_delta(event.text)
            elif isinstance(event, Done):
                return event.reply
    finally:
        stream.close()
    raise RuntimeError("a chat stream ended without its answer")  # unreachable: _run always ends with Done


# --- prompts ----------------------------------------------------------------------------------------


def _lines(memories: Sequence[Memory]) -> str:
    return "\n".join(f"{m.ref_id} {m.memory}" for m in memories) or prompts.NO_MEMORIES


def system_message(found: SearchResult, system_prompt: str | None = None) -> str:
    """The caller's instructions (or the default persona), then the memories to cite and respect."""
    opening = system_prompt.strip() if system_prompt and system_prompt.strip() else prompts.CHAT_PERSONA
    return f"{opening}\n\n" + prompts.CHAT_MEMORY.format(facts=_lines(found.memories),
                                                          preferences=_lines(found.preferences))


def check_history(history: Sequence[Mapping[str, Any]], turns: int) -> list[dict[str, str]]:
    """A caller's ``[{role, content}]`` turns, checked; the last ``turns`` turns (two messages each) kept."""
    checked: list[dict[str, str]] = []
    for i, message in enumerate(history):
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES or not isinstance(content, str):
            raise InvalidRequest(f"history[{i}] must be {{role: user|assistant|system, content: text}}",
                                 field="history")
        checked.append({"role": role, "content": content})
    return checked[-2 * turns:]


def build_messages(query: str, found: SearchResult, window: Sequence[Mapping[str, str]],
                   system_prompt: str | None = None) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_message(found, system_prompt)},
            *({"role": m["role"], "content": m["content"]} for m in window),
            {"role": "user", "content": query}]


# --- suggestions ------------------------------------------------------------------------------------


class Suggested(BaseModel):
    """What the model must answer: exactly ``count`` non-empty questions."""

    questions: list[str] = Field(min_length=3, max_length=3)

    @field_validator("questions")
    @classmethod
    def _not_blank(cls, questions: list[str]) -> list[str]:
        cleaned = [q.strip() for q in questions]
        if not all(cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("questions must be distinct and not blank")
        return cleaned


SUGGESTIONS_SCHEMA = {"type": "object", "required": ["questions"], "properties": {
    "questions": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}}}


def suggestion_messages(memories: Sequence[Memory], language: Language = "en") -> list[dict[str, str]]:
    lines = "\n".join(f"- {m.memory[:300]}" for m in memories)
    return [{"role": "user", "content": prompts.SUGGESTIONS.format(count=3, language=prompts.LANGUAGES[language],
                                                                  memories=lines)}]


def suggest_with_model(llm: LanguageModel, memories: Sequence[Memory], language: Language = "en") -> list[str]:
    """Three questions from the model; ``BackendUnavailable`` or ``ValidationError`` when it fails."""
    answer = llm.complete(suggestion_messages(memories, language), json_schema=SUGGESTIONS_SCHEMA)
    return Suggested.model_validate(json_object(answer.text)).questions


def suggest(memories: Sequence[Memory], count: int = 3, language: Language = "en") -> list[str]:
    """Follow-up questions from the keys of the most recent memories (no model needed)."""
    keys = list(dict.fromkeys(m.key.rstrip("….") for m in memories if m.key))[:count]
    return [prompts.KEY_QUESTION[language].format(key=key) for key in keys]
