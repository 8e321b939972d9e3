"""Turning what a caller adds into candidate memories.

``Extractor`` is the seam the language-model pipeline plugs into; ``RuleExtractor`` is the
deterministic default: every user turn becomes a fact memory with its source, and explicit
preference statements ("I love ...", "I can't stand ...") also become preference memories.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from memos_mcp.core.graph.extract import ExtractedGraph
from memos_mcp.core.models import (
    MemoryKind,
    MemorySource,
    MemoryType,
    Message,
    PreferenceType,
    SourceKind,
)
from memos_mcp.core.text import derive_key, derive_tags

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


class Extractor(Protocol):
    def from_messages(self, messages: Sequence[Message], earlier: Sequence[Message]) -> list[Candidate]:
        """Candidates from new ``messages``; ``earlier`` is the conversation just before them."""
        ...


def label(candidates: Sequence[Candidate], tags: Sequence[str], memory_type: MemoryType | None) -> None:
    """Add the caller's tags to every candidate and, when given, impose the caller's memory type."""
    for candidate in candidates:
        candidate.tags = list(dict.fromkeys([*candidate.tags, *tags]))
        candidate.memory_type = memory_type or candidate.memory_type


def message_source(message: Message, with_content: bool = False) -> MemorySource:
    return MemorySource(type=SourceKind.CHAT, message_id=message.message_id or message.id,
                        conversation_id=message.conversation_id, role=message.role, name=message.name,
                        chat_time=message.chat_time, content=message.content if with_content else None)


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
                key=derive_key(sentence), tags=[*derive_tags(sentence), "preference"], sources=[source],
                source=SourceKind.CHAT, event_time=message.chat_time, speaker=message.name,
                context=context_text, preference_type="explicit_preference",
                reasoning="Stated explicitly by the user in the conversation.", confidence=0.9))
        return found
