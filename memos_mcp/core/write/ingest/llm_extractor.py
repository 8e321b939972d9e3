"""Extraction and merge with a language model: one call per batch of new messages.

The model sees the new messages (numbered), a short window of the conversation before them, and
the most similar existing memories (numbered too, so it cannot invent ids). Its JSON answer is
validated item by item: an item that does not validate is dropped, never stored. An answer that is
not a JSON object of the expected shape is repaired (code fences and text around the object are
cut) or asked for once more; after that the batch fails with ``ModelOutputInvalid``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from memos_mcp.core.graph.extract import ExtractedGraph
from memos_mcp.core.graph.store import Entity, normalise
from memos_mcp.core.model_json import json_object
from memos_mcp.core.models import Memory, MemoryKind, MemoryType, Message, SourceKind
from memos_mcp.core.prompts import EXTRACTION_RETRY, EXTRACTION_SYSTEM, extraction_request
from memos_mcp.core.text import derive_key, derive_tags
from memos_mcp.core.write.ingest.extractor import Candidate, message_source, speaker_line
from memos_mcp.errors import ModelOutputInvalid

if TYPE_CHECKING:
    from memos_mcp.core.llm import Completion, LanguageModel

log = logging.getLogger(__name__)
_SECTIONS = ("facts", "preferences", "updates", "entities", "relations")
M = TypeVar("M", bound=BaseModel)


def _items(properties: dict[str, Any], required: list[str], most: int) -> dict[str, Any]:
    return {"type": "array", "maxItems": most,
            "items": {"type": "object", "properties": properties, "required": required}}


def answer_schema(new: int, existing: int) -> dict[str, Any]:
    """The JSON schema of an answer about ``new`` messages and ``existing`` memories, for endpoints
    that constrain output to it: message and memory numbers can only be those shown, and every list
    and text is bounded, so that a small model cannot ramble past its token limit."""
    text = {"type": "string", "maxLength": 300}
    name = {"type": "string", "maxLength": 60}
    sources = {"type": "array", "maxItems": new, "items": {"type": "integer", "minimum": 0, "maximum": new - 1}}
    return {
        "type": "object",
        "properties": {
            "facts": _items({"key": name, "value": text, "memory_type": {"enum": ["UserMemory", "LongTermMemory"]},
                             "tags": {"type": "array", "maxItems": 5, "items": name},
                             "confidence": {"type": "number"}, "sources": sources}, ["value"], 2 * new + 1),
            "preferences": _items({"preference": text, "type": {"enum": ["explicit", "implicit"]},
                                   "reasoning": text, "sources": sources}, ["preference"], new),
            "updates": _items({"memory": {"type": "integer", "minimum": 0, "maximum": max(existing - 1, 0)},
                               "action": {"enum": ["update", "archive"]}, "value": text, "reason": text},
                              ["memory", "action"], existing),
            "entities": _items({"name": name, "type": name}, ["name"], 3 * new),
            "relations": _items({"subject": name, "predicate": name, "object": name, "sources": sources,
                                 "replaces": {"type": "boolean"}}, ["subject", "predicate", "object"], 2 * new),
        },
        "required": ["facts", "preferences", "updates", "entities", "relations"],
    }


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _indices(value: Any) -> list[int]:
    """Whole numbers among the items (2, 2.0, "2"); anything else is dropped."""
    items = value if isinstance(value, list) else [value]
    found: list[int] = []
    for item in items:
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, int) and not isinstance(item, bool):
            found.append(item)
    return found


def _fraction(default: float) -> BeforeValidator:
    def read(value: Any) -> float:
        try:
            return min(1.0, max(0.0, float(value)))
        except (TypeError, ValueError):
            return default
    return BeforeValidator(read)


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value else []
    return [t for t in (_text(v)[:40] for v in items) if t][:10]


# What a model writes, read leniently: whitespace collapsed, numbers out of strings, bounded sizes.
Text = Annotated[str, BeforeValidator(_text)]
Name = Annotated[str, BeforeValidator(lambda v: _text(v)[:200])]
Predicate = Annotated[str, BeforeValidator(lambda v: "_".join(_text(v).lower().split())[:80])]
Sources = Annotated[list[int], BeforeValidator(_indices)]
Tags = Annotated[list[str], BeforeValidator(_strings)]


class FactOut(BaseModel):
    key: Text = ""
    value: Text
    memory_type: Annotated[MemoryType, BeforeValidator(
        lambda v: MemoryType.LONG_TERM if str(v) == MemoryType.LONG_TERM.value else MemoryType.USER)] = MemoryType.USER
    tags: Tags = []
    confidence: Annotated[float, _fraction(0.8)] = 0.8
    sources: Sources = []


class PreferenceOut(BaseModel):
    preference: Text
    type: Annotated[Literal["explicit", "implicit"], BeforeValidator(
        lambda v: "implicit" if "implicit" in str(v).lower() else "explicit")] = "explicit"
    reasoning: Text = ""
    sources: Sources = []


class UpdateOut(BaseModel):
    memory: int
    action: Literal["update", "archive"]
    value: Text = ""
    reason: Text = ""


class EntityOut(BaseModel):
    name: Name
    type: Annotated[str, BeforeValidator(lambda v: _text(v)[:60].casefold())] = ""  # "Person" is a person


class RelationOut(BaseModel):
    subject: Name
    predicate: Predicate
    object: Name
    confidence: Annotated[float, _fraction(0.9)] = 0.9
    replaces: bool = False
    sources: Sources = []


@dataclass(frozen=True)
class Decision:
    """The model's verdict on an existing memory: rewrite it (``update``) or retire it (``archive``)."""

    memory: Memory
    action: Literal["update", "archive"]
    value: str
    reason: str


@dataclass
class Extraction:
    candidates: list[Candidate]
    decisions: list[Decision]


def parse_answer(text: str) -> dict[str, Any]:
    """The extraction object in a model's answer; ValueError saying what is wrong."""
    found = json_object(text)
    if not any(key in found for key in _SECTIONS):
        raise ValueError(f"the answer has none of the keys {', '.join(_SECTIONS)}")
    for key in _SECTIONS:
        if key in found and not isinstance(found[key], list):
            raise ValueError(f"'{key}' must be a list")
    return found


def _valid(model: type[M], items: list[Any]) -> list[M]:
    """The items that validate; the others are dropped."""
    kept: list[M] = []
    for item in items:
        try:
            kept.append(model.model_validate(item))
        except ValidationError:
            continue
    return kept


def attach_graph(candidates: Sequence[Candidate], turns: Sequence[set[int]], entities: Sequence[EntityOut],
                 relations: Sequence[RelationOut]) -> None:
    """Give each memory the model's entities and relations it states: a relation goes to the memories
    that name its subject or object (the first memory from the same messages when none does); an
    entity to the memories that name it. Memories the model linked to nothing keep ``graph`` None (the
    deterministic graph extractor reads them)."""
    if not candidates:
        return
    types = {normalise(e.name): e.type for e in entities if e.name}
    texts = [c.memory.casefold() for c in candidates]
    graphs: dict[int, ExtractedGraph] = {}
    for rel in relations:
        if not (rel.subject and rel.predicate and rel.object):
            continue
        named = [i for i, text in enumerate(texts) if rel.subject.casefold() in text or rel.object.casefold() in text]
        same_turns = [i for i, used in enumerate(turns) if set(rel.sources) & used]
        for index in named or same_turns[:1] or [0]:
            graph = graphs.setdefault(index, ExtractedGraph())
            graph.relations.append((rel.subject, rel.predicate, rel.object, rel.confidence))
            if rel.replaces:
                graph.replaces.add(rel.predicate)
    for index, text in enumerate(texts):
        named_entities = [Entity(e.name, e.type) for e in entities if e.name and e.name.casefold() in text]
        if named_entities:
            graphs.setdefault(index, ExtractedGraph()).entities.extend(named_entities)
    for index, graph in graphs.items():  # relation ends are entities too, typed when the model typed them
        known = {e.key for e in graph.entities}
        for subject, _, obj, _ in graph.relations:
            for name in (subject, obj):
                if normalise(name) not in known:
                    known.add(normalise(name))
                    graph.entities.append(Entity(name, types.get(normalise(name), "")))
        candidates[index].graph = graph


class LLMExtractor:
    def __init__(self, llm: LanguageModel) -> None:
        self.llm = llm

    def extract(self, new: Sequence[Message], earlier: Sequence[Message], existing: Sequence[Memory],
                now: datetime) -> Extraction:
        """One call (two if the first answer is unusable). Raises ``BackendUnavailable`` when the
        model cannot be reached and ``ModelOutputInvalid`` when its answer stays unusable."""
        messages = [{"role": "system", "content": EXTRACTION_SYSTEM},
                    {"role": "user", "content": extraction_request(new, earlier, existing, now)}]
        schema = answer_schema(len(new), len(existing))
        first = self._ask(messages, schema)
        try:
            raw = parse_answer(first.text)
        except ValueError as problem:
            log.warning("extraction answer unusable (%s); asking once more", problem)
            retry = [*messages, {"role": "assistant", "content": first.text[:4000]},
                     {"role": "user", "content": EXTRACTION_RETRY.format(problem=problem)}]
            second = self._ask(retry, schema)
            try:
                raw = parse_answer(second.text)
            except ValueError as again:
                raise ModelOutputInvalid(f"the language model's answer was unusable twice: {again}",
                                         model=self.llm.model) from None
        return self._build(raw, new, existing)

    def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        settings = self.llm.settings
        return self.llm.complete(messages, json_schema=schema, temperature=settings.extraction_temperature,
                                 max_tokens=settings.extraction_max_tokens)

    def _build(self, raw: dict[str, Any], new: Sequence[Message], existing: Sequence[Memory]) -> Extraction:
        facts = _valid(FactOut, raw.get("facts", []))
        prefs = _valid(PreferenceOut, raw.get("preferences", []))
        updates = _valid(UpdateOut, raw.get("updates", []))
        entities = _valid(EntityOut, raw.get("entities", []))
        relations = _valid(RelationOut, raw.get("relations", []))
        candidates: list[Candidate] = []
        turns: list[set[int]] = []  # the new messages each candidate comes from
        for fact in (f for f in facts if f.value):
            candidates.append(self._candidate(fact.value, fact.sources, new, MemoryKind.FACT, fact.memory_type,
                                              fact.key, fact.tags, fact.confidence))
            turns.append(set(fact.sources))
        for pref in (p for p in prefs if p.preference):
            turns.append(set(pref.sources))
            candidate = self._candidate(pref.preference, pref.sources, new, MemoryKind.PREFERENCE,
                                        MemoryType.USER, "", ["preference"], 0.9)
            candidate.preference_type = f"{pref.type}_preference"  # type: ignore[assignment]
            candidate.reasoning = pref.reasoning or None
            candidates.append(candidate)
        # An invented memory number, or an update with no text, is dropped.
        decisions = [Decision(existing[u.memory], u.action, u.value, u.reason) for u in updates
                     if 0 <= u.memory < len(existing) and (u.action == "archive" or u.value)]
        if entities or relations:
            attach_graph(candidates, turns, entities, relations)
        return Extraction(candidates, decisions)

    @staticmethod
    def _candidate(text: str, indices: Sequence[int], new: Sequence[Message], kind: MemoryKind,
                   memory_type: MemoryType, key: str, tags: Sequence[str], confidence: float) -> Candidate:
        sources = [new[i] for i in dict.fromkeys(indices) if 0 <= i < len(new)]
        if not sources:  # no (valid) numbers given: the item comes from this batch as a whole
            sources = [m for m in new if m.role == "user"] or list(new)
        first = sources[0]
        return Candidate(
            memory=text, kind=kind, memory_type=memory_type, key=key[:200] or derive_key(text),
            tags=list(dict.fromkeys([*tags, *derive_tags(text)]))[:12], sources=[message_source(m) for m in sources],
            source=SourceKind.CHAT, confidence=confidence, event_time=first.chat_time or first.created_at,
            speaker=first.name if first.role == "user" else None,
            context="\n".join(speaker_line(m) for m in sources))
