"""Export a cube to JSONL and import it back: the exit path and the way between data directories.

Line 1 is a header (format, cube, embedding model, dimension); then one line per memory (with its
embedding) and one per stored message. Import keeps ids, text, metadata and timestamps; it reuses
the embeddings when the model is the same and re-embeds otherwise. Importing is idempotent: a
memory or message already in the cube is not added again, and a memory gets its ``ADD`` history
event once (with its point, all or nothing); an id another cube holds becomes one derived from the
cube and the id, the same on every run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from memos_mcp.core.models import HistoryEvent, Memory, Message, Permission, utcnow
from memos_mcp.core.payload import from_point, index_texts, to_payload
from memos_mcp.core.service import MemoryService, Progress
from memos_mcp.core.stores.vector import MemoryFilter, VectorPoint
from memos_mcp.core.text import content_hash, sparse_document
from memos_mcp.errors import InvalidRequest, first_problem

FORMAT = "memos-mcp/export-v1"
_PAGE = 500
_ROOM = 16_384  # bytes a stored memory or message may take on disk beyond its text, at most


class ImportResult(BaseModel):
    cube_id: str
    memories: int
    messages: int
    reembedded: bool
    renamed: int


def export_cube(service: MemoryService, actor_id: str, cube_id: str) -> Iterator[str]:
    """JSONL lines (without newlines) of one cube the actor can read."""
    cube = service.access.cube(service.access.user(actor_id), cube_id, Permission.READ)
    vectors = service.ready()
    flt = MemoryFilter(cube_ids=(cube.cube_id,), status=())
    yield _line({"type": "header", "format": FORMAT, "exported_at": utcnow().isoformat(),
                 "cube": {"cube_id": cube.cube_id, "name": cube.name, "owner_id": cube.owner_id},
                 "embedding_model": service.embedder.model_id, "dimension": service.embedder.dimension,
                 "memories": vectors.count(flt)})
    offset = 0
    while True:
        points = vectors.scroll(flt, _PAGE, offset=offset, with_vectors=True)
        for point in points:
            memory = from_point(point).model_dump(mode="json", exclude={"ref_id"})
            yield _line({"type": "memory", **memory, "index": {
                "context": point.payload.get("context", ""), "speaker": point.payload.get("speaker")}})
        if len(points) < _PAGE:
            break
        offset += _PAGE
    for conversation in service.catalog.conversations([cube.cube_id]):
        for message in service.catalog.recent_messages([cube.cube_id], conversation["conversation_id"], 1_000_000):
            yield _line({"type": "message", **message.model_dump(mode="json")})


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

    with service.write_lock:
        for number, line in rows:
            if not line.strip():
                continue
            record = _parse(number, line)
            kind = record.pop("type", None)
            try:
                if kind == "memory":
                    index = record.pop("index", {}) or {}
                    batch.append((Memory.model_validate({**record, "cube_id": cube.cube_id}), index))
                elif kind == "message":
                    messages.append(Message.model_validate({**record, "cube_id": cube.cube_id}))
                else:
                    raise InvalidRequest(f"line {number}: unknown record type {kind!r}", line=number)
            except ValidationError as exc:
                where, problem = first_problem(exc)
                raise InvalidRequest(f"line {number}: {where}: {problem}", line=number) from exc
            if len(batch) >= _PAGE or len(messages) >= _PAGE:
                flush()
        flush()
    return result


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


def _header(first: tuple[int, str]) -> dict[str, Any]:
    number, line = first
    record = _parse(number, line) if line.strip() else {}
    if record.get("type") != "header" or record.get("format") != FORMAT:
        raise InvalidRequest(f"not a memos-mcp export: line 1 must be a header with format {FORMAT!r}")
    return record


def _parse(number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"line {number} is not valid JSON: {exc.msg}", line=number) from exc
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
    found = {p.id: p.payload.get("cube_id") for p in service.vectors.retrieve([*ids, *(_derived(cube_id, i)
                                                                                      for i in ids)])}
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
    points = [VectorPoint(m.id, next(embedded) if f else list(m.embedding or []), sparse_document(sparse),
                          to_payload(m, content_hash(f"{m.kind}:{m.memory}"), i.get("context", ""), i.get("speaker")))
              for m, (_, i), f, (_, sparse) in zip(memories, batch, fresh, texts, strict=True)]
    present = [p for p in points if found.get(p.id) == cube_id]
    if present:
        service.vectors.upsert(present)
        recorded = service.catalog.has_history([p.id for p in present])
        service.catalog.add_history([_added(m, cube_id, actor) for m in memories
                                     if found.get(m.id) == cube_id and m.id not in recorded])
    service.commit_points(cube_id, [p for p in points if found.get(p.id) != cube_id],
                          [_added(m, cube_id, actor) for m in memories if found.get(m.id) != cube_id])
    return renamed


def _added(memory: Memory, cube_id: str, actor: str) -> HistoryEvent:
    return HistoryEvent(memory_id=memory.id, cube_id=cube_id, event="ADD", actor=actor, at=utcnow(),
                        new_memory=memory.memory)
