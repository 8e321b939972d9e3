"""MCP answers within one message of the MCP SDK's HTTP clients.

Over streamable HTTP and the legacy SSE transport an answer is one server-sent event, and the SDK's
clients refuse an event over 1 MiB (``DEFAULT_MAX_SSE_EVENT_SIZE`` of ``mcp.client.streamable_http``,
``httpx``'s SSE default): the call fails in the client's transport, with no tool result. A tool
answer carries its output twice (the structured content and its indented JSON text), so 300 memories
of 1,200 characters are already too many. Every answer is therefore measured as it goes on the wire
(the ``CallToolResult`` as JSON, in UTF-8 bytes), on every transport alike:

- an answer with lists that may be cut (``Cuttable``: search hits, a listing page, the memories an
  add stored, a chat's references) keeps the longest head of them that fits, and counts what it left
  out in ``omitted``; a memory's history (oldest first) keeps the longest tail instead, its newest
  events;
- any other answer over the bound is the tool error ``response_too_large`` (``ResponseTooLarge``).

Resources are plain text: ``check_text`` refuses one over the bound the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from memos_mcp.core.checks import json_bytes
from memos_mcp.errors import ResponseTooLarge

SSE_EVENT_BYTES = 1024 * 1024  # the SDK clients' default limit per server-sent event
ANSWER_BYTES = SSE_EVENT_BYTES - 16 * 1024  # the JSON-RPC envelope and the event's own lines fit in the rest
_ELSEWHERE = "read it over the REST API, or export the cube with `memos-mcp export`"


class Cuttable(BaseModel):
    """A mixin for answers whose lists may be cut: ``cut_order`` names them, the first cut first;
    ``keep`` says which part of each list is kept, its ``head`` (its last items are cut: a ranking) or
    its ``tail`` (its first items are cut: a list oldest first whose newest items matter most);
    ``omitted`` counts the items left out."""

    cut_order: ClassVar[tuple[str, ...]]
    keep: ClassVar[Literal["head", "tail"]] = "head"
    omitted: int = Field(0, ge=0, description="Items left out from the end of this answer's lists to keep it "
                                              "within one MCP message (1 MiB): ask for fewer to get them")


def wire_bytes(answer: BaseModel) -> int:
    """The answer's size on the wire (a ``CallToolResult``): its JSON in UTF-8 bytes, as the JSON-RPC
    result carries it."""
    return len(answer.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))


def fitted(result: Any, convert: Callable[[Any], BaseModel], limit: int = ANSWER_BYTES) -> BaseModel:
    """``convert(result)`` within ``limit`` bytes: a ``Cuttable`` result cut to the longest heads (or
    tails, as its ``keep`` says) of its lists that fit, keeping each list's first item (its last, for a
    tail) as long as possible (``convert`` is called about log2(items) more times per list, only for an
    answer over the limit). Raises ResponseTooLarge for any other answer over the limit, and for a
    cuttable one that does not fit even with its lists empty."""
    answer = convert(result)
    size = wire_bytes(answer)
    if size <= limit:
        return answer
    if isinstance(result, Cuttable):
        # Each list keeps at least its best item (its first, or its last for a tail) while the later lists
        # are cut (a search keeps its best fact before its preferences are cut); only then is it lost too.
        current: dict[str, list[Any]] = {name: list(getattr(result, name)) for name in result.cut_order}
        for floor in (1, 0):
            for name in result.cut_order:
                whole = current[name]

                def fits(n: int, name: str = name, whole: list[Any] = whole) -> bool:
                    return wire_bytes(convert(_cut(result, {**current, name: _kept(result, whole, n)}))) <= limit
                kept = _longest_head(min(floor, len(whole)), len(whole), fits)
                if kept is not None:
                    return convert(_cut(result, {**current, name: _kept(result, whole, kept)}))
                current[name] = _kept(result, whole, min(floor, len(whole)))
    raise ResponseTooLarge(f"this answer is {size / 1_048_576:.1f} MiB and one MCP message carries at most 1 MiB "
                           f"(the limit of the MCP SDK's clients): {_ELSEWHERE}", bytes=size)


def check_text(text: str, limit: int = ANSWER_BYTES) -> str:
    """``text`` as a resource's contents, if it fits one MCP message (escaped as JSON); raises
    ResponseTooLarge if not."""
    if len(text) * 6 + 1024 > limit:  # only a text that might not fit is measured: \\u escapes take 6 bytes
        size = json_bytes(text)
        if size > limit:
            raise ResponseTooLarge(f"this resource is {size / 1_048_576:.1f} MiB and one MCP message carries at "
                                   f"most 1 MiB (the limit of the MCP SDK's clients): {_ELSEWHERE}", bytes=size)
    return text


def lines_within(lines: list[str], room: int) -> tuple[list[str], int, int]:
    """The longest head of ``lines`` that, each with its newline, takes at most ``room`` bytes as JSON
    text; how many lines it leaves out; and the room left after it."""
    kept: list[str] = []
    for line in lines:
        size = json_bytes(line)  # its quotes' two bytes stand for its newline's escape (\\n)
        if size > room:
            break
        kept.append(line)
        room -= size
    return kept, len(lines) - len(kept), room


def _kept(result: Cuttable, items: list[Any], n: int) -> list[Any]:
    """The ``n`` items of ``items`` that ``result`` keeps: the first ones, or the last ones for a tail."""
    return items[:n] if result.keep == "head" else items[len(items) - n:]


def _cut(result: Cuttable, lists: dict[str, list[Any]]) -> Cuttable:
    omitted = sum(len(getattr(result, field)) - len(kept) for field, kept in lists.items())
    return result.model_copy(update={**lists, "omitted": result.omitted + omitted})


def _longest_head(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest n in ``low..high`` with ``fits(n)`` (fits must hold for every n below one that
    fits), or None when not even ``low`` fits."""
    if not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
