"""A memory as a vector-store point payload, and back. Times are epoch seconds in the payload so
that the store can filter ranges on them; pydantic reads them back as UTC datetimes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memos_mcp.core.models import Memory, SearchHit
from memos_mcp.core.relevance import WINDOWS_FIELD
from memos_mcp.core.stores.vector import ScoredPoint, StoredPoint
from memos_mcp.core.timeparse import from_epoch, to_epoch

INDEX_ONLY = ("content_hash", "context", "speaker", "derived_tags", "key_given", WINDOWS_FIELD)
_EPOCH_FIELDS = ("created_at", "updated_at", "event_time")


def index_texts(text: str, speaker: str | None, context: str, event_time: datetime | None,
                dense_context: bool) -> tuple[str, str]:
    """What the dense and the keyword vectors are made from. The memory's own text stays as given;
    the speaker, the earlier turns and the date live only in the index."""
    own = spoken(text, speaker)
    dense = f"{context}\n{own}" if dense_context and context else own
    when = event_time.strftime("%d %B %Y") if event_time else ""
    return dense, "\n".join(p for p in (when, context, own) if p)


def spoken(text: str, speaker: str | None) -> str:
    """``text`` as said by ``speaker``: "speaker: text", or the text alone when it has no speaker or
    already opens with "speaker:" (a fact added as "Caroline: ...")."""
    if not speaker or re.match(re.escape(speaker) + r"\s*:", text.lstrip()):
        return text
    return f"{speaker}: {text}"


def to_payload(memory: Memory, content_hash: str, context: str, speaker: str | None,
               derived_tags: Sequence[str] | None = None, key_given: bool | None = None,
               windows: dict[str, str] | None = None) -> dict[str, Any]:
    """The point payload of ``memory``. ``derived_tags`` are the tags its text gave it (the others are
    the caller's), ``key_given`` says whether a caller set its key (None for either: not known, see
    ``extractor.derived``): an update of the text derives the derived ones again. ``windows``: a long
    memory's window vectors (``relevance.stored_windows``), never part of the memory a reader gets."""
    payload = memory.model_dump(mode="json", exclude={"id", "embedding", "ref_id"})
    payload.update(created_at=to_epoch(memory.created_at), updated_at=to_epoch(memory.updated_at),
                   event_time=to_epoch(memory.event_time or memory.created_at),
                   content_hash=content_hash, context=context, speaker=speaker)
    if derived_tags is not None:
        payload["derived_tags"] = list(derived_tags)
    if key_given is not None:
        payload["key_given"] = key_given
    if windows is not None:
        payload[WINDOWS_FIELD] = windows
    return payload

def from_point(point: StoredPoint | ScoredPoint) -> Memory:
    """The memory a stored point holds (its dense vector as ``embedding`` when the point carries one)."""
    dense = point.dense if isinstance(point, StoredPoint) else None
    return Memory.model_validate({**_fields(point), "embedding": dense})


def hit_from_point(point: ScoredPoint, relativity: float) -> SearchHit:
    """The search hit a scored point holds, with its ``relativity`` in [0, 1] (no embedding)."""
    return SearchHit.model_validate({**_fields(point), "relativity": relativity})


def _fields(point: StoredPoint | ScoredPoint) -> dict[str, Any]:
    fields = {k: v for k, v in point.payload.items() if k not in INDEX_ONLY}
    for key in _EPOCH_FIELDS:  # read as seconds here: pydantic takes numbers above 2e10 as milliseconds
        if isinstance(fields.get(key), int | float):
            fields[key] = from_epoch(fields[key])
    fields["id"] = point.id
    return fields
