"""Chat grounded in memory, and follow-up suggestions.

A chat retrieves facts and preferences, lays them out with their ref_ids in one system message (after
the caller's own system prompt, if any), adds a window of the conversation's recent turns (or the
caller's ``history`` instead) and streams the configured model's answer. ``Chat.chat_stream``
does everything that can fail early (access, search, the model's first token) before it hands back a
``ChatStream``; iterating it yields ``References``, then ``Delta`` after ``Delta``, then ``Done``.

Only a complete answer is remembered: if the model's stream dies mid-way, iteration raises
``BackendUnavailable`` and nothing of the exchange is stored (neither the messages nor memories), so
that the conversation never holds a truncated answer as if it were whole; the caller may ask again.

Suggestions are three follow-up questions: with a model, one JSON-mode call over the user's recent
memories; without one, or when the model fails or answers badly, questions about their keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from memos_mcp.core import prompts
from memos_mcp.core.access import AccessControl
from memos_mcp.core.checks import bounded, check_id
from memos_mcp.core.context import Room, Stores
from memos_mcp.core.model_json import json_object
from memos_mcp.core.models import Cube, Memory, MessageIn, SearchResult, User
from memos_mcp.core.retrieval import Retrieval
from memos_mcp.core.write.add import Writes
from memos_mcp.errors import BackendUnavailable, InvalidRequest, LLMNotConfigured, PayloadTooLarge

if TYPE_CHECKING:
    from memos_mcp.core.llm import LanguageModel

log = logging.getLogger(__name__)

Language = Literal["en", "zh"]
CHAT_ROLES = ("user", "assistant", "system")
MAX_HISTORY = 1000  # messages a chat's history may hold (only the last turns are read)


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


def check_history(history: Sequence[Mapping[str, Any]], turns: int,
                  check_text: Callable[[str, str], None]) -> list[dict[str, str]]:
    """A caller's ``[{role, content}]`` turns, checked (at most ``MAX_HISTORY`` of them, each with a
    chat role and a content that ``check_text`` passes, no other field); the last ``turns`` turns (two
    messages each) kept. ``InvalidRequest`` naming the message (``history.3.content``), or
    ``PayloadTooLarge``."""
    if len(history) > MAX_HISTORY:
        raise PayloadTooLarge(f"history holds {len(history)} messages; the limit is {MAX_HISTORY}",
                              field="history", limit=MAX_HISTORY)
    checked: list[dict[str, str]] = []
    for i, message in enumerate(history):
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES or not isinstance(content, str):
            raise InvalidRequest(f"history.{i} must be {{role: user|assistant|system, content: text}}",
                                 field=f"history.{i}")
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            raise InvalidRequest(f"unknown field 'history.{i}.{unknown[0]}' (a message has role and content)",
                                 field=f"history.{i}.{unknown[0]}")
        check_text(content, f"history.{i}.content")
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


class Chat(Room):
    """Chat grounded in memory (search, then the model; the exchange is added to memory) and
    suggestions."""

    def __init__(self, stores: Stores, retrieval: Retrieval, writes: Writes) -> None:
        super().__init__(stores)
        self.retrieval = retrieval
        self.writes = writes

    def chat_stream(
        self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None,
        conversation_id: str | None = None, user_id: str | None = None,
        history: Sequence[Mapping[str, Any]] | None = None, system_prompt: str | None = None,
        top_k: int | None = None, include_preference: bool = True, pref_top_k: int | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
    ) -> ChatStream:
        """Start an answer grounded in memory. Everything that can fail before the first token does so
        here (no model, unknown or forbidden cube, the model unreachable, timing out or rate limiting
        through its retries); the returned stream yields the references, the answer's text as it comes,
        and the reply. A complete exchange is stored in the conversation and remembered.

        The exchange lives in the first of ``cube_ids`` the user may write, else the default cube; the
        window is that conversation's last ``llm.max_turns_window`` turns there, unless ``history`` (the
        caller's own ``[{role, content}]`` turns) is given, which replaces it. ``temperature`` and
        ``max_tokens`` override the model settings for this answer.

        The request is checked before the model is needed, so that a chat the server could never answer
        for this caller says why (``Forbidden``, ``NotFound``, ``InvalidRequest`` naming the field) on a
        server without a model too; ``LLMNotConfigured`` (503) comes only after every check passed."""
        started = time.perf_counter()
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.stores.check_text(query or "", "query")
        bounded("top_k", top_k, self.settings.search.top_k)
        bounded("pref_top_k", pref_top_k, self.settings.search.pref_top_k, minimum=0)
        conversation = check_id("conversation_id", conversation_id or "default")
        turns = self.settings.llm.max_turns_window
        window = check_history(history, turns, self.stores.check_text) if history is not None else None
        home = self._chat_home(user, self.access.readable(user, cube_ids) if cube_ids else [])
        llm = self._language_model("chat")
        found = self.retrieval.search(user.user_id, query, cube_ids=cube_ids, conversation_id=conversation, top_k=top_k,
                            include_preference=include_preference, pref_top_k=pref_top_k)
        if window is None:
            window = [{"role": m.role, "content": m.content}
                      for m in self.catalog.recent_messages([home.cube_id], conversation, 2 * turns)
                      if m.role in ("user", "assistant")]
        deltas = llm.stream(build_messages(query, found, window, system_prompt), temperature=temperature,
                            max_tokens=max_tokens)
        first = next(deltas, None)  # the request is made, and retried, before the caller sees a frame
        return ChatStream(References(found.memories, found.preferences), conversation, first, deltas,
                          lambda answer: self._remember_exchange(user, home, conversation, query, answer),
                          started)

    def chat(self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None,
             conversation_id: str | None = None, user_id: str | None = None,
             history: Sequence[Mapping[str, Any]] | None = None, system_prompt: str | None = None,
             top_k: int | None = None, include_preference: bool = True, pref_top_k: int | None = None,
             on_delta: Callable[[str], None] | None = None, temperature: float | None = None,
             max_tokens: int | None = None) -> ChatReply:
        """The whole answer of ``chat_stream``; ``on_delta`` hears each piece of text as it arrives."""
        return collect(self.chat_stream(
            actor_id, query, cube_ids=cube_ids, conversation_id=conversation_id, user_id=user_id, history=history,
            system_prompt=system_prompt, top_k=top_k, include_preference=include_preference,
            pref_top_k=pref_top_k, temperature=temperature, max_tokens=max_tokens), on_delta)

    def _language_model(self, operation: str) -> LanguageModel:
        if self.stores.llm is None:
            raise LLMNotConfigured(operation)
        return self.stores.llm

    def _chat_home(self, user: User, cube_ids: Sequence[str]) -> Cube:
        """Where a chat's exchange is stored: the first named cube the user may write, else the default."""
        for cube_id in cube_ids:
            cube = self.catalog.get_cube(cube_id)
            if cube is not None and AccessControl.may_write(user, cube):
                return cube
        return self.access.writable(user, None)

    def _remember_exchange(self, user: User, cube: Cube, conversation_id: str, query: str, answer: str) -> None:
        """Store a complete exchange in its conversation and add it to memory (in the background: chat has a
        model, so the add is queued whatever ``add.async_mode`` says)."""
        self.writes.add_memory(user.user_id, cube_id=cube.cube_id, conversation_id=conversation_id, async_mode=True,
                        messages=[MessageIn(role="user", content=query),
                                  MessageIn(role="assistant", content=answer or "(no answer)")])

    def suggestions(self, actor_id: str, user_id: str | None = None, cube_ids: Sequence[str] | None = None,
                    language: Language = "en") -> list[str]:
        """Three follow-up questions from the user's most recent memories: written by the model when one
        is configured, else (and whenever the model fails or answers badly) about the memories' keys."""
        memories = self.retrieval.list_memories(actor_id, user_id=user_id, cube_ids=cube_ids, size=20).memories
        if self.stores.llm is not None and memories:
            try:
                return suggest_with_model(self.stores.llm, memories, language)
            except (BackendUnavailable, ValueError) as exc:  # unusable JSON included
                log.warning("suggestions fall back to memory keys: %s", exc)
        return suggest(memories, language=language)
