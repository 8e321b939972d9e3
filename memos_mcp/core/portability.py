"""Export a cube to JSONL and import it back: the exit path and the way between data directories.

Line 1 is a header (format, cube, embedding model, dimension); then one line per memory (with its embedding,
when asked) and one per stored message. Import keeps ids, text, metadata and timestamps; it reuses the
embeddings when the model is the same and re-embeds otherwise; a long memory's sentence-window vectors
(``relevance.stored_windows``) are not exported and are made again on import. With graph memory on, import
builds each memory's graph as an add does without a language model (the deterministic extraction of its text
and speaker, one batch of memories at a time, oldest first), with the memory, all or nothing. Importing is
idempotent: a memory or message already in the cube is not added again, and a memory gets its ``ADD`` history
event once (with its point, all or nothing); an id another cube holds becomes one derived from the cube and
the id, the same on every run.

``export_part`` cuts the same export into parts of bounded size for faces that carry one message at a
time (MCP): each part but the last ends with a ``{"type": "next", "cursor": ...}`` line naming where the
next part starts; import skips those lines, so the parts concatenated are an export.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memos_mcp.core.checks import check_id, check_metadata, check_tags, is_uuid
from memos_mcp.core.embedder import vector_problem
from memos_mcp.core.models import HistoryEvent, Memory, Message, Permission, utcnow
from memos_mcp.core.payload import from_point, index_texts, to_payload
from memos_mcp.core.relevance import WINDOWS_FIELD, read_windows
from memos_mcp.core.stores.vector import MemoryFilter, StoredPoint, VectorPoint
from memos_mcp.core.text import content_hash, is_blank, sparse_document
from memos_mcp.core.timeparse import EARLIEST, LATEST
from memos_mcp.errors import InvalidRequest, MemosError, first_problem

if TYPE_CHECKING:  # both import the stores: the MCP tools import this module before stdio's handshake
    from memos_mcp.core.service import MemoryService
    from memos_mcp.core.write.add import Progress

FORMAT = "memos-mcp/export-v1"
_PAGE = 500
_ROOM = 16_384  # bytes a stored memory or message may take on disk beyond its text, at most
_GRAPH_BATCH = 100  # memories per graph write: FalkorDB 4.16 crashes on a Bolt parameter list of ~400 ids
PART_BYTES = 256 * 1024  # a part's JSONL as the JSON-RPC answer carries it (escaped): far below a 1 MiB SSE event


class ImportResult(BaseModel):
    cube_id: str
    memories: int
    messages: int
    reembedded: bool
    renamed: int


def export_cube(service: MemoryService, actor_id: str, cube_id: str, include_embeddings: bool = True,
                ) -> Iterator[str]:
    """JSONL lines (without newlines) of one cube the actor can read: the header, every memory once
    (newest first, in the listing order), then each conversation's messages (oldest first)."""
    cube = service.access.cube(service.access.user(actor_id), cube_id, Permission.READ)
    vectors = service.ready()
    flt = MemoryFilter(cube_ids=(cube.cube_id,), status=())
    yield _header_line(service, cube.cube_id, cube.name, cube.owner_id, vectors.count(flt))
    for points in vectors.walk(flt, _PAGE, with_vectors=include_embeddings):
        yield from (_memory_line(point) for point in points)
    for conversation in _conversations(service, cube.cube_id):
        for message in service.catalog.recent_messages([cube.cube_id], conversation, 1_000_000):
            yield _line({"type": "message", **message.model_dump(mode="json")})


class ExportPart(BaseModel):
    """One part of a paged export: JSONL ``text`` (each line ends in a newline) and the ``cursor`` of
    the next part, None for the last."""

    text: str
    cursor: str | None


def export_part(service: MemoryService, actor_id: str, cube_id: str, cursor: str | None = None,
                include_embeddings: bool = False, max_bytes: int = PART_BYTES) -> ExportPart:
    """The part of the export of ``cube_id`` that starts at ``cursor`` (None: the first part, with the
    header), at most ``max_bytes`` of text (always at least one record). Memories are resumed after
    the last one sent by (created_at, id), so memories added meanwhile neither repeat nor shift
    others; messages by conversation (in id order) and position. A cursor carries
    ``include_embeddings`` of the first part. Raises InvalidRequest for a cursor this did not make."""
    cube = service.access.cube(service.access.user(actor_id), cube_id, Permission.READ)
    vectors = service.ready()
    flt = MemoryFilter(cube_ids=(cube.cube_id,), status=())
    state: dict[str, Any] = _read_cursor(cursor) if cursor else {"e": include_embeddings, "m": None, "c": None, "k": 0}
    lines: list[str] = []
    size = 0

    def full() -> bool:
        return bool(lines) and size >= max_bytes

    def put(line: str) -> None:  # counted as the answer carries it: JSON-escaped inside the JSON-RPC text
        nonlocal size
        lines.append(line)
        size += len(json.dumps(line, ensure_ascii=False).encode("utf-8"))

    if cursor is None:
        put(_header_line(service, cube.cube_id, cube.name, cube.owner_id, vectors.count(flt)))
    while state["c"] is None and not full():
        after = (float(state["m"][0]), str(state["m"][1])) if state["m"] else None
        points = vectors.scroll_after(flt, 50, after, with_vectors=bool(state["e"]))
        for point in points:
            if full():
                break
            put(_memory_line(point))
            state["m"] = [float(point.payload["created_at"]), point.id]
        if len(points) < 50 and not full():
            state["c"] = ""
    if state["c"] is not None:
        for conversation in [c for c in _conversations(service, cube.cube_id) if c >= state["c"]]:
            skip = int(state["k"]) if conversation == state["c"] else 0
            state["c"], state["k"] = conversation, skip
            for message in service.catalog.recent_messages([cube.cube_id], conversation, 1_000_000)[skip:]:
                if full():
                    break
                put(_line({"type": "message", **message.model_dump(mode="json")}))
                state["k"] += 1
            if full():
                break
        else:
            return ExportPart(text="".join(f"{line}\n" for line in lines), cursor=None)
    token = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()
    put(_line({"type": "next", "cursor": token}))
    return ExportPart(text="".join(f"{line}\n" for line in lines), cursor=token)


class _Cursor(BaseModel):
    """Where the next export part starts: ``e`` embeddings asked for, ``m`` the last memory sent
    (created_at in epoch seconds, id) or None, ``c`` the conversation reached (None while memories
    remain, "" before the first), ``k`` the messages of it already sent. A cursor comes back from the
    client: every field is checked, so that no value reaches a store it could upset (a NaN time
    made the vector engine panic)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    e: bool
    m: tuple[float, str] | None
    c: str | None = Field(max_length=128)
    k: int = Field(ge=0, le=1_000_000_000)

    @field_validator("m")
    @classmethod
    def _position(cls, value: tuple[float, str] | None) -> tuple[float, str] | None:
        if value is not None:
            uuid.UUID(value[1])  # ValueError: not a memory id
            if not EARLIEST.timestamp() <= value[0] <= LATEST.timestamp():
                raise ValueError("the time of the last memory lies outside the storable range")
        return value


def _read_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = _Cursor.model_validate_json(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:  # ValidationError is a ValueError
        raise InvalidRequest("cursor is not one an export part returned", field="cursor") from exc
    return {"e": state.e, "m": list(state.m) if state.m else None, "c": state.c, "k": state.k}


def _conversations(service: MemoryService, cube_id: str) -> list[str]:
    return sorted(c["conversation_id"] for c in service.catalog.conversations([cube_id]))


def _header_line(service: MemoryService, cube_id: str, name: str, owner_id: str, memories: int) -> str:
    return _line({"type": "header", "format": FORMAT, "exported_at": utcnow().isoformat(),
                  "cube": {"cube_id": cube_id, "name": name, "owner_id": owner_id},
                  "embedding_model": service.embedder.model_id, "dimension": service.embedder.dimension,
                  "memories": memories})


def _memory_line(point: StoredPoint) -> str:
    memory = from_point(point).model_dump(mode="json", exclude={"ref_id"} if point.dense else {"ref_id", "embedding"})
    return _line({"type": "memory", **memory, "index": {
        "context": point.payload.get("context", ""), "speaker": point.payload.get("speaker")}})


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def import_lines(service: MemoryService, actor_id: str, lines: Iterable[str], cube_id: str | None = None,
                 progress: Progress | None = None) -> ImportResult:
    """Import an export into ``cube_id`` (or the actor's default cube); re-importing is idempotent."""
    user = service.access.user(actor_id)
    cube = service.access.writable(user, cube_id)
    service.ready()
    rows = iter(enumerate(lines, start=1))
    header = _header(next(rows, (1, "")))
    same_model = header.get("embedding_model") == service.embedder.model_id
    total = int(header.get("memories") or 0)
    result = ImportResult(cube_id=cube.cube_id, memories=0, messages=0, reembedded=not same_model, renamed=0)
    batch: list[tuple[Memory, dict[str, Any]]] = []
    messages: list[Message] = []

    def flush() -> None:
        service.disk.check("import memories", sum(_ROOM + 8 * len(m.memory) for m, _ in batch)
                           + sum(_ROOM + 8 * len(m.content) for m in messages))
        if batch:
            result.renamed += _write(service, cube.cube_id, user.user_id, batch, same_model)
            result.memories += len(batch)
            batch.clear()
            if progress is not None:
                progress(result.memories, max(total, result.memories))
        if messages:
            fresh = _new_messages(service, cube.cube_id, messages)
            service.catalog.add_messages(fresh)
            result.messages += len(fresh)
            messages.clear()

    dimension = service.embedder.dimension if same_model else None
    with service.write_lock:
        for number, line in rows:
            record = _record(service, number, line, cube.cube_id, dimension)
            if isinstance(record, Message):
                messages.append(record)
            elif record is not None:
                batch.append(record)
            if len(batch) >= _PAGE or len(messages) >= _PAGE:
                flush()
        flush()
    return result


CHECK_CUBE = "import-check"  # the cube id records are read under by ``check_export``


def check_export(service: MemoryService, lines: Iterable[str]) -> str | None:
    """Read a whole export as ``import_lines`` would, storing nothing: ``InvalidRequest`` naming the line
    of its first fault, else the name its header gives the exported cube (None when it gives none, or
    one that shows nothing). For a caller that must know the file is good before it makes anything for
    it (the CLI's ``import`` makes the user and the cube, named as the export names it)."""
    rows = iter(enumerate(lines, start=1))
    header = _header(next(rows, (1, "")))
    dimension = service.embedder.dimension if header.get("embedding_model") == service.embedder.model_id else None
    for number, line in rows:
        _record(service, number, line, CHECK_CUBE, dimension)
    cube = header.get("cube")
    name = cube.get("name") if isinstance(cube, dict) else None
    if not isinstance(name, str) or is_blank(name) or "\x00" in name:
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no store keeps it
        return None
    return name


def _record(service: MemoryService, number: int, line: str, cube_id: str, dimension: int | None
            ) -> tuple[Memory, dict[str, Any]] | Message | None:
    """Line ``number`` of an export as the record it holds for ``cube_id`` (a memory with its index
    fields, or a message), None for a blank line or a paged export's ``next`` record. A memory's id is a
    UUID, its text and metadata pass the checks of an add, a message's text too; with ``dimension`` (the
    export is of this model, so its vectors are stored as they are) a memory's embedding must be usable.
    ``InvalidRequest`` (``PayloadTooLarge``) naming the line."""
    if not line.strip():
        return None
    record = _parse(number, line)
    kind = record.pop("type", None)
    try:
        if kind == "memory":
            index = record.pop("index", {}) or {}
            _refuse_unknown(record, Memory)
            memory = Memory.model_validate({**record, "cube_id": cube_id})
            if not is_uuid(memory.id):
                raise InvalidRequest(f"id {memory.id[:64]!r} is not a UUID", field="id")
            service.stores.check_text(memory.memory, "memory")
            check_metadata(memory.metadata)
            check_tags(memory.tags)
            for place, conversation in (("conversation_id", memory.conversation_id), *(
                    (f"sources.{i}.conversation_id", s.conversation_id) for i, s in enumerate(memory.sources))):
                if conversation is not None:
                    check_id(place, conversation)
            if dimension is not None and memory.embedding is not None:
                _check_embedding(memory.embedding, dimension)
            return memory, index
        if kind == "message":
            _refuse_unknown(record, Message)
            message = Message.model_validate({**record, "cube_id": cube_id})
            service.stores.check_text(message.content, "content")
            check_id("conversation_id", message.conversation_id)
            return message
        if kind == "next":  # where a paged export's next part starts: nothing to import
            return None
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise InvalidRequest(f"line {number}: {where}: {problem}", line=number) from exc
    except MemosError as exc:  # an add's check, or the embedding's: the line is named here
        raise type(exc)(f"line {number}: {exc.message}", **{**exc.details, "line": number}) from exc
    raise InvalidRequest(f"line {number}: unknown record type {kind!r}", line=number)


def _refuse_unknown(record: dict[str, Any], model: type[BaseModel]) -> None:
    """Raise InvalidRequest naming the first field of ``record`` that ``model`` (as an export writes it:
    its fields and computed fields) does not have: it would be dropped, not imported."""
    known = model.model_fields.keys() | model.model_computed_fields.keys()
    unknown = sorted(set(record) - known)
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r} (an export's {model.__name__.lower()} records have "
                             f"{', '.join(sorted(known))})", field=unknown[0])


def _check_embedding(embedding: list[float], dimension: int) -> None:
    """Raise InvalidRequest (naming the ``embedding`` field) unless ``embedding`` is a vector the store
    can search: ``dimension`` finite numbers, not all zero (a cosine needs a direction)."""
    problem = vector_problem(embedding, dimension) or (None if any(embedding) else "all zeros")
    if problem:
        raise InvalidRequest(f"embedding: {problem}", field="embedding")


def _new_messages(service: MemoryService, cube_id: str, messages: list[Message]) -> list[Message]:
    """Messages already in this cube are skipped (re-import is idempotent); an id another cube holds
    is replaced by one derived from it, so that importing the same file twice still matches."""
    stored = service.catalog.message_cubes([m.id for m in messages])
    fresh: list[Message] = []
    for message in messages:
        if message.id in stored:
            if stored[message.id] == cube_id:
                continue
            derived = _derived(cube_id, message.id)
            if service.catalog.message_cubes([derived]):
                continue
            message = message.model_copy(update={"id": derived})
        fresh.append(message)
    return fresh


_HEADER_FIELDS = frozenset({"type", "format", "exported_at", "cube", "embedding_model", "dimension", "memories"})


def _header(first: tuple[int, str]) -> dict[str, Any]:
    number, line = first
    record = _parse(number, line) if line.strip() else {}
    if record.get("type") != "header" or record.get("format") != FORMAT:
        raise InvalidRequest(f"not a memos-mcp export: line 1 must be a header with format {FORMAT!r}")
    unknown = sorted(set(record) - _HEADER_FIELDS)
    if unknown:
        raise InvalidRequest(f"line 1: unknown header field {unknown[0]!r} (a header has "
                             f"{', '.join(sorted(_HEADER_FIELDS))})", line=1, field=unknown[0])
    return record


def _parse(number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"line {number} is not valid JSON: {exc.msg}", line=number) from exc
    except RecursionError as exc:
        raise InvalidRequest(f"line {number} is nested too deeply", line=number) from exc
    except ValueError as exc:  # Python's limit on an integer's digits
        raise InvalidRequest(f"line {number} holds a number no store keeps: {exc}", line=number) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"line {number} must be a JSON object", line=number)
    return value


def _derived(cube_id: str, ident: str) -> str:
    """The id a record takes in ``cube_id`` when another cube holds its own: the same on every import."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cube_id}/{ident}"))


def _write(service: MemoryService, cube_id: str, actor: str, batch: list[tuple[Memory, dict[str, Any]]],
           same_model: bool) -> int:
    """Upsert one batch; an id already used by another cube gets a derived id. Memories new to the cube
    are stored with their ``ADD`` history (``commit_points``); those already there are rewritten as
    exported, without another history event. Returns how many ids were derived."""
    ids = [m.id for m, _ in batch]
    stored = {p.id: p for p in service.vectors.retrieve([*ids, *(_derived(cube_id, i) for i in ids)])}
    found = {i: p.payload.get("cube_id") for i, p in stored.items()}
    renamed = 0
    memories: list[Memory] = []
    for memory, _ in batch:
        if found.get(memory.id) not in (None, cube_id):
            memory = memory.model_copy(update={"id": _derived(cube_id, memory.id)})
            renamed += 1
        memories.append(memory)
    fresh = [m.embedding is None or not same_model for m in memories]
    texts = [index_texts(m.memory, i.get("speaker"), i.get("context", ""), m.event_time,
                         service.settings.search.dense_context) for m, (_, i) in zip(memories, batch, strict=True)]
    embedded = iter(service.embedder.embed([d for (d, _), f in zip(texts, fresh, strict=True) if f]))
    # Not exported: made here, or kept from the memory's own point when an import runs again.
    kept = {m.memory: held for m in memories if found.get(m.id) == cube_id
            and read_windows(m.memory, held := stored[m.id].payload.get(WINDOWS_FIELD),
                             service.embedder.dimension) is not None}
    windowed = {**service.stores.window_vectors([m.memory for m in memories if m.memory not in kept]), **kept}
    points = [VectorPoint(m.id, next(embedded) if f else list(m.embedding or []), sparse_document(sparse),
                          to_payload(m, content_hash(f"{m.kind}:{m.memory}"), i.get("context", ""), i.get("speaker"),
                                     windows=windowed.get(m.memory)))
              for m, (_, i), f, (_, sparse) in zip(memories, batch, fresh, texts, strict=True)]
    speakers = {m.id: i.get("speaker") for m, (_, i) in zip(memories, batch, strict=True)}

    def graph(new: bool) -> None:  # oldest first, as they were added
        chosen = sorted((m for m in memories if (found.get(m.id) != cube_id) == new), key=lambda m: m.created_at)
        for start in range(0, len(chosen), _GRAPH_BATCH):
            part = chosen[start:start + _GRAPH_BATCH]
            service.stores.ingest_graph(cube_id, [(m, None, speakers[m.id]) for m in part])

    present = [p for p in points if found.get(p.id) == cube_id]
    if present:
        service.vectors.upsert(present)
        graph(new=False)  # what an import by an earlier version left without a graph gets one
        recorded = service.catalog.has_history([p.id for p in present])
        service.catalog.add_history([_added(m, cube_id, actor) for m in memories
                                     if found.get(m.id) == cube_id and m.id not in recorded])
    service.commit_points(cube_id, [p for p in points if found.get(p.id) != cube_id],
                          [_added(m, cube_id, actor) for m in memories if found.get(m.id) != cube_id],
                          lambda _stored: graph(new=True))
    return renamed


def _added(memory: Memory, cube_id: str, actor: str) -> HistoryEvent:
    return HistoryEvent(memory_id=memory.id, cube_id=cube_id, event="ADD", actor=actor, at=utcnow(),
                        new_memory=memory.memory)
