"""Turning what a caller adds into candidate memories.

``Extractor`` is the seam the language-model pipeline plugs into; ``RuleExtractor`` is the
deterministic default: every user turn becomes a fact memory with its source, and explicit
preference statements ("I love ...", "I can't stand ...") also become preference memories.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from memos_mcp.core.graph.extract import ExtractedGraph
from memos_mcp.core.models import (
    Memory,
    MemoryKind,
    MemorySource,
    MemoryType,
    Message,
    PreferenceType,
    SourceKind,
)
from memos_mcp.core.text import chunk_spans, derive_key, derive_tags, exact_hash

_PREFERENCE = re.compile(
    r"\b(?:i|we)\s+(?:really\s+|absolutely\s+|truly\s+|do\s+not\s+|don't\s+|do\s+)?"
    r"(?:like|love|prefer|enjoy|adore|hate|dislike|detest|can't\s+stand|cannot\s+stand|always|never|"
    r"am\s+(?:a\s+(?:big\s+)?fan\s+of|into|allergic\s+to|vegan|vegetarian))\b"
    r"|\bmy\s+(?:favou?rite|preferred)\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+|\n+")


@dataclass
class Candidate:
    """A memory about to be stored; ``context`` feeds the index only, never the memory text."""

    memory: str
    kind: MemoryKind
    memory_type: MemoryType
    key: str
    tags: list[str]
    sources: list[MemorySource]
    source: SourceKind
    confidence: float = 1.0
    event_time: datetime | None = None
    speaker: str | None = None
    context: str = ""
    preference_type: PreferenceType | None = None
    reasoning: str | None = None
    background: str = ""
    extra_tags: list[str] = field(default_factory=list)
    graph: ExtractedGraph | None = None  # None: the deterministic graph extractor reads memory and speaker
    given_tags: list[str] = field(default_factory=list)  # the caller's tags; the rest of ``tags`` is derived
    part_of: str | None = None  # a piece of a longer text: that text's hash and the piece's place in it


class Extractor(Protocol):
    def from_messages(self, messages: Sequence[Message], earlier: Sequence[Message]) -> list[Candidate]:
        """Candidates from new ``messages``; ``earlier`` is the conversation just before them."""
        ...


def label(candidates: Sequence[Candidate], tags: Sequence[str], memory_type: MemoryType | None) -> None:
    """Add the caller's tags to every candidate and, when given, impose the caller's memory type."""
    for candidate in candidates:
        candidate.tags = list(dict.fromkeys([*candidate.tags, *tags]))
        candidate.given_tags = list(dict.fromkeys([*candidate.given_tags, *tags]))
        candidate.memory_type = memory_type or candidate.memory_type


def derived_tags(text: str, kind: MemoryKind) -> list[str]:
    """The tags a memory's text gives it (a preference is also tagged ``preference``)."""
    return [*derive_tags(text), *(["preference"] if kind is MemoryKind.PREFERENCE else [])]


def derived(memory: Memory, payload: Mapping[str, Any]) -> tuple[list[str], bool]:
    """What of a stored memory (``payload``: its point's) its text gave it: the derived tags, and
    whether its key was derived. A memory stored before this was recorded counts a tag or its key as
    derived when its text derives it."""
    recorded = payload.get("derived_tags")
    tags = [t for t in recorded if t in memory.tags] if isinstance(recorded, list) else \
        [t for t in derived_tags(memory.memory, memory.kind) if t in memory.tags]
    given = payload.get("key_given")
    return tags, (not given) if isinstance(given, bool) else memory.key == derive_key(memory.memory)


def split(candidate: Candidate, size: int) -> list[Candidate]:
    """A candidate longer than ``size`` characters as pieces that each are a memory (cut by
    ``chunk_spans``), so that a fact anywhere in a long text is matched by its own piece: each piece
    has its own key and derived tags, keeps the caller's tags, and its sources say which piece it is
    (the whole turn stays in the conversation's messages). Pieces rather than several vectors behind
    one memory: every store, filter, count, page and graph link keeps one point per memory.
    The graph a model gave the whole goes with the first piece."""
    spans = chunk_spans(candidate.memory, size)
    if len(spans) <= 1:
        return [candidate]
    whole = exact_hash(candidate.memory)
    pieces: list[Candidate] = []
    for index, (start, end) in enumerate(spans):
        text = candidate.memory[start:end]
        sources = [s.model_copy(update={"chunk_index": index}) for s in candidate.sources] or \
            [MemorySource(type=candidate.source, chunk_index=index)]
        pieces.append(replace(
            candidate, memory=text, key=derive_key(text), sources=sources, part_of=f"{whole}#{index}",
            tags=list(dict.fromkeys([*derived_tags(text, candidate.kind), *candidate.given_tags])),
            graph=candidate.graph if index == 0 else None))
    return pieces


def text_pieces(text: str, size: int, kind: MemoryKind, source: SourceKind,
                source_of: Callable[[int], MemorySource], when: datetime | None) -> list[Candidate]:
    """A caller's text (``memory_content``, a document) as memories of at most ``size`` characters.
    The pieces of a text cut in several are kept apart from other memories (``part_of``); each
    piece's source holds the whitespace before it (``gap``) and the last one's what follows it
    (``tail``), so that the pieces give back the exact text."""
    spans = chunk_spans(text, size)
    whole = exact_hash(text) if len(spans) > 1 else None
    pieces: list[Candidate] = []
    for index, (start, end) in enumerate(spans):
        piece = text[start:end]
        gap = text[spans[index - 1][1] if index else 0:start]
        tail = text[end:] if index == len(spans) - 1 else ""
        around = {"gap": gap, "tail": tail if index == len(spans) - 1 else None} if len(spans) > 1 else \
            {"gap": gap or None, "tail": tail or None}
        sources = [source_of(index).model_copy(update=around)] \
            if len(spans) > 1 or kind is MemoryKind.DOCUMENT or gap or tail else []
        pieces.append(Candidate(memory=piece, kind=kind, memory_type=MemoryType.LONG_TERM, key=derive_key(piece),
                                tags=derive_tags(piece), sources=sources, source=source, event_time=when,
                                part_of=None if whole is None else f"{whole}#{index}"))
    return pieces


def message_source(message: Message) -> MemorySource:
    """A memory's source that points at the stored message it came from (its text stays in the messages)."""
    return MemorySource(type=SourceKind.CHAT, message_id=message.message_id or message.id,
                        conversation_id=message.conversation_id, role=message.role, name=message.name,
                        chat_time=message.chat_time)


def preference_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.split(text) if s.strip() and _PREFERENCE.search(s)]


def speaker_line(message: Message) -> str:
    return f"{message.name}: {message.content}" if message.name else message.content


class RuleExtractor:
    """Deterministic extraction; ``context_turns`` earlier turns are indexed with each turn."""

    def __init__(self, context_turns: int = 1) -> None:
        self.context_turns = context_turns

    def from_messages(self, messages: Sequence[Message], earlier: Sequence[Message]) -> list[Candidate]:
        window = list(earlier)
        candidates: list[Candidate] = []
        for message in messages:
            if message.role == "user" and message.content.strip():
                candidates.extend(self._from_turn(message, window[-self.context_turns:] if self.context_turns else []))
            window.append(message)
        return candidates

    def _from_turn(self, message: Message, context: Sequence[Message]) -> list[Candidate]:
        source = message_source(message)
        context_text = "\n".join(speaker_line(m) for m in context)
        fact = Candidate(
            memory=message.content.strip(), kind=MemoryKind.FACT, memory_type=MemoryType.USER,
            key=derive_key(message.content), tags=derive_tags(message.content), sources=[source],
            source=SourceKind.CHAT, event_time=message.chat_time, speaker=message.name, context=context_text)
        found = [fact]
        for sentence in preference_sentences(message.content):
            found.append(Candidate(
                memory=sentence, kind=MemoryKind.PREFERENCE, memory_type=MemoryType.USER,
                key=derive_key(sentence), tags=derived_tags(sentence, MemoryKind.PREFERENCE), sources=[source],
                source=SourceKind.CHAT, event_time=message.chat_time, speaker=message.name,
                context=context_text, preference_type="explicit_preference",
                reasoning="Stated explicitly by the user in the conversation.", confidence=0.9))
        return found
