"""Checks of the values every room takes from a caller: ids, metadata, times, counts. Each raises
``InvalidRequest`` naming the field."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memos_mcp.core.text import is_blank
from memos_mcp.core.timeparse import parse_time
from memos_mcp.errors import InvalidRequest, PayloadTooLarge

MAX_TOP_K = 1000
MAX_METADATA_BYTES = 16_384  # a memory's metadata as JSON, at most
MAX_KEY_CHARS = 200  # a memory's key (its title), a message's name or id, a speaker: characters, at most
MAX_TAGS = 100  # tags a memory carries, at most
MAX_TAG_CHARS = 200  # characters of one tag, at most
MAX_SOURCES = 50  # sources a memory keeps (a de-duplicated one gathers those of the adds it met), at most
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@")


def is_metadata_key(key: object) -> bool:
    """Whether ``key`` may name metadata (stored, or filtered on): 1-64 letters, digits or ``- _ . : @``,
    which no store's filter syntax needs quoted."""
    return isinstance(key, str) and 0 < len(key) <= 64 and set(key) <= _ID_CHARS


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a usable id of ``kind`` (cube_id, user_id, ...): 1-128 letters, digits or
    ``- _ . : @``, not only dots (``.`` and ``..`` are path segments that URLs and resource URIs
    normalise away, so such an id could never be addressed). Raises InvalidRequest naming ``kind``."""
    if not value or len(value) > 128 or not set(value) <= _ID_CHARS:
        raise InvalidRequest(f"{kind} {value!r} is not valid: use 1-128 letters, digits or - _ . : @",
                             field=kind)
    if not value.strip("."):
        raise InvalidRequest(f"{kind} {value!r} is not valid: an id made only of dots cannot be addressed in "
                             "a URL; use at least one letter, digit or - _ : @", field=kind)
    return value


def bounded(name: str, value: int | None, default: int, minimum: int = 1) -> int:
    """``value`` (``default`` when None) if it is a whole number in ``minimum..MAX_TOP_K``."""
    chosen = default if value is None else value
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not minimum <= chosen <= MAX_TOP_K:
        raise InvalidRequest(f"{name} must be a whole number in {minimum}..{MAX_TOP_K}", field=name)
    return chosen


def threshold(value: float) -> float:
    """A search's least relativity: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequest("threshold (the least relativity) is a number in [0, 1]", field="threshold")
    return float(value)


def event_time(value: Any) -> datetime | None:
    """A ``chat_time`` as a UTC time (None when not given)."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequest(f"chat_time: {exc}", field="chat_time") from exc


def id_key(value: str) -> str:
    """An id the server made (a UUID, or hex digits: keys, relations) in the lower case it is stored in:
    given in upper or mixed case it is the same id. Anything else is returned unchanged (found nowhere)."""
    if isinstance(value, str) and len(value) == 36 and is_uuid(value):
        return str(uuid.UUID(value))
    if isinstance(value, str) and _HEX.fullmatch(value):
        return value.lower()
    return value


_HEX = re.compile(r"[0-9A-Fa-f]{1,64}")


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID (the only form a memory id takes)."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def storable_problem(text: str) -> str | None:
    """Why no store can keep ``text`` on every backend alike, or None: a NUL character (U+0000, which
    PostgreSQL's text and jsonb refuse) or a lone surrogate (JSON's ``"\\ud800"`` decodes to one; no valid
    UTF-8 encodes it)."""
    if "\x00" in text:
        return "holds a NUL character (U+0000), which no store keeps"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def check_storable(text: str, field: str) -> str:
    """``text`` if a store can keep it (``storable_problem``), else ``InvalidRequest`` naming ``field``."""
    problem = storable_problem(text)
    if problem is not None:
        raise InvalidRequest(f"{field} {problem}", field=field)
    return text


def check_length(text: str, field: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else ``PayloadTooLarge`` naming ``field``."""
    if len(text) > limit:
        raise PayloadTooLarge(f"{field} has {len(text)} characters; the limit is {limit}", field=field, limit=limit)
    return text


def check_tags(tags: Sequence[str] | None) -> list[str]:
    """The caller's tags as text; a tag with nothing visible in it, or one no store keeps
    (``check_storable``), is refused naming it (``tags.<index>``); more than ``MAX_TAGS`` tags, or one
    longer than ``MAX_TAG_CHARS``, is ``PayloadTooLarge``."""
    checked = [str(tag).strip() for tag in tags or ()]
    if len(checked) > MAX_TAGS:
        raise PayloadTooLarge(f"tags holds {len(checked)} tags; the limit is {MAX_TAGS}", field="tags",
                              limit=MAX_TAGS)
    for index, tag in enumerate(checked):
        if is_blank(tag):
            raise InvalidRequest(f"tags.{index} is empty (nothing visible)", field=f"tags.{index}")
        check_length(check_storable(tag, f"tags.{index}"), f"tags.{index}", MAX_TAG_CHARS)
    return checked


def json_bytes(value: Any) -> int:
    """The bytes ``value`` takes as JSON in UTF-8, non-ASCII characters unescaped: as answers carry it
    (a text is measured with its quotes and escapes, as a JSON string)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the caller's metadata: keys like ids (at most 64 characters), values JSON whose every text a
    store keeps (``unstorable_in``: no NUL, no lone surrogate), at most
    ``MAX_METADATA_BYTES`` as JSON (PayloadTooLarge beyond)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object of keys to values", field="metadata")
    for key, value in metadata.items():
        if not is_metadata_key(key):
            raise InvalidRequest(f"metadata key {key!r} is not valid: use 1-64 letters, digits or - _ . : @",
                                 field="metadata")
        if not is_json_value(value):
            raise InvalidRequest(f"metadata value of {key!r} must be JSON: text, a finite number (integers within "
                                 "64 bits), boolean, list or object",
                                 field=f"metadata.{key}")
        found = unstorable_in(value)
        if found is not None:  # PostgreSQL's jsonb cannot keep it: refused on every backend alike
            place, problem = found
            field = ".".join(("metadata", key, *place))
            raise InvalidRequest(f"metadata value {field} {problem}", field=f"metadata.{key}")
    size = json_bytes(metadata)
    if size > MAX_METADATA_BYTES:  # every answer carries it: one memory must not fill a client's message
        raise PayloadTooLarge(f"metadata takes {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}",
                              field="metadata", limit=MAX_METADATA_BYTES)
    return dict(metadata)


def unstorable_in(value: Any) -> tuple[tuple[str, ...], str] | None:
    """The first text in a JSON value (object keys too) that no store keeps (``storable_problem``), as
    its place (keys and list indexes, outermost first) and the problem; None when every text is fine."""
    if isinstance(value, str):
        problem = storable_problem(value)
        return None if problem is None else ((), problem)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        problem = storable_problem(key) if isinstance(key, str) else None
        if problem is not None:
            return (str(key),), problem
        found = unstorable_in(inner)
        if found is not None:
            return (str(key), *found[0]), found[1]
    return None


def is_json_value(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is JSON a store keeps exactly: text, a finite number (an integer within 64 bits),
    a boolean, null, or lists and objects of these at most 8 deep."""
    if depth > 8:
        return False
    if isinstance(value, float):  # NaN and infinities are not JSON: a store would keep them as null
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -2**63 <= value < 2**63  # what the stores keep exactly
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, list):
        return all(is_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v, depth + 1) for k, v in value.items())
    return False


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are one value: a boolean is never a number (in Python ``True == 1``),
    numbers compare by value (``1`` and ``1.0``, as a store may give either back), strings, arrays and
    objects member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
