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
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memos_mcp.core.checks import (
    MAX_KEY_CHARS,
    MAX_METADATA_BYTES,
    MAX_SOURCES,
    check_id,
    check_length,
    check_metadata,
    check_tags,
    is_json_value,
    is_uuid,
    json_bytes,
    storable_problem,
    unstorable_in,
)
from memos_mcp.core.embedder import vector_problem
from memos_mcp.core.models import (
    HistoryEvent,
    Memory,
    MemorySource,
    Message,
    MessageIn,
    MessageRole,
    Permission,
    utcnow,
)
from memos_mcp.core.payload import from_point, index_texts, to_payload
from memos_mcp.core.stores.vector import MemoryFilter, StoredPoint, VectorPoint
from memos_mcp.core.text import content_hash, is_blank, sparse_document
from memos_mcp.core.timeparse import EARLIEST, LATEST
from memos_mcp.errors import InvalidRequest, MemosError, PayloadTooLarge, first_problem
from memos_mcp.known_fields import describe, dotted, unknown_fields

if TYPE_CHECKING:  # both import the stores: the MCP tools import this module before stdio's handshake
    from memos_mcp.core.service import MemoryService
    from memos_mcp.core.write.add import Progress

FORMAT = "memos-mcp/export-v1"
_PAGE = 500
_ROOM = 16_384  # bytes a stored memory or message may take on disk beyond its text, at most
_GRAPH_BATCH = 100  # memories per graph write: FalkorDB 4.16 crashes on a Bolt parameter list of ~400 ids
_DERIVED_TRIES = 1000  # ids derived for a record whose own id is taken, at most (``_Ids``)
RETIRED = ""  # the holder of a memory id no cube holds that another cube's history names (no cube id is "")
_PATH_CHARS = 4096  # a document path, as file systems bound it
_CONTEXT_TEXTS = 6  # an index context holds at most 5 earlier turns (search.context_turns) and their joins
PART_BYTES = 256 * 1024  # a part's JSONL as the JSON-RPC answer carries it (escaped): far below a 1 MiB SSE event


class ImportResult(BaseModel):
    """What an import did: ``memories`` and ``messages`` stored; ``kept`` memories the cube already held
    under their ids, left as they are (an import never rewrites a stored memory: its text, author and
    history stay, whatever the file says); ``renamed`` records whose id another cube holds, stored under
    another id; ``reembedded`` when the export's model is not this server's."""

    cube_id: str
    memories: int
    messages: int
    reembedded: bool
    renamed: int
    kept: int = 0


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
    header): at most ``max_bytes`` of text as a JSON string carries it, and the ``next`` line, unless one
    record alone is longer (a part holds at least one). Memories are resumed after the last one sent by
    (created_at, id), so memories added meanwhile neither repeat nor shift others; messages by
    conversation (in id order) and position. A cursor carries
    ``include_embeddings`` of the first part. Raises InvalidRequest for a cursor this did not make."""
    cube = service.access.cube(service.access.user(actor_id), cube_id, Permission.READ)
    vectors = service.ready()
    flt = MemoryFilter(cube_ids=(cube.cube_id,), status=())
    state: dict[str, Any] = _read_cursor(cursor) if cursor else {"e": include_embeddings, "m": None, "c": None, "k": 0}
    lines: list[str] = []
    size = 0
    full = False

    def put(line: str) -> bool:
        """Add ``line`` unless it would take a part holding lines past ``max_bytes`` (then the part is
        full and the line starts the next); counted as the answer carries it: JSON-escaped text."""
        nonlocal size, full
        more = json_bytes(line)
        if lines and size + more > max_bytes:
            full = True
            return False
        lines.append(line)
        size += more
        return True

    if cursor is None:
        put(_header_line(service, cube.cube_id, cube.name, cube.owner_id, vectors.count(flt)))
    while state["c"] is None and not full:
        after = (float(state["m"][0]), str(state["m"][1])) if state["m"] else None
        points = vectors.scroll_after(flt, 50, after, with_vectors=bool(state["e"]))
        for point in points:
            if not put(_memory_line(point)):
                break
            state["m"] = [float(point.payload["created_at"]), point.id]
        if len(points) < 50 and not full:
            state["c"] = ""
    if state["c"] is not None and not full:
        for conversation in [c for c in _conversations(service, cube.cube_id) if c >= state["c"]]:
            skip = int(state["k"]) if conversation == state["c"] else 0
            state["c"], state["k"] = conversation, skip
            for message in service.catalog.recent_messages([cube.cube_id], conversation, 1_000_000)[skip:]:
                if not put(_line({"type": "message", **message.model_dump(mode="json")})):
                    break
                state["k"] += 1
            if full:
                break
        else:
            return ExportPart(text="".join(f"{line}\n" for line in lines), cursor=None)
    token = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()
    lines.append(_line({"type": "next", "cursor": token}))
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
                 progress: Progress | None = None, keep_authors: bool = False) -> ImportResult:
    """Import an export into ``cube_id`` (or the actor's default cube); re-importing is idempotent. The
    lines are checked as they are read: a caller that must make nothing for a bad file checks it whole
    first (``check_export``). A record another user wrote keeps its author with ``keep_authors`` (the
    operator's CLI, moving cubes between data directories) or in an admin's import; anyone else's import
    makes the importer its author (no one writes in another's name)."""
    user = service.access.user(actor_id)
    cube = service.access.writable(user, cube_id)
    service.ready()
    rows = iter(enumerate(lines, start=1))
    header = _header(next(rows, (1, "")))
    same_model = _made_here(header, service)
    total = header.memories or 0
    result = ImportResult(cube_id=cube.cube_id, memories=0, messages=0, reembedded=not same_model, renamed=0)
    batch: list[tuple[Memory, _Index]] = []
    messages: list[Message] = []
    memory_ids = _Ids(cube.cube_id, lambda ids: _memory_holders(service, cube.cube_id, ids))
    message_ids = _Ids(cube.cube_id, service.catalog.message_cubes)

    def flush() -> None:
        service.disk.check("import memories", sum(_ROOM + 8 * len(m.memory) for m, _ in batch)
                           + sum(_ROOM + 8 * len(m.content) for m in messages))
        if batch:
            stored, kept, renamed = _write(service, cube.cube_id, user.user_id, batch, same_model, memory_ids)
            result.memories, result.kept, result.renamed = (result.memories + stored, result.kept + kept,
                                                            result.renamed + renamed)
            batch.clear()
            if progress is not None:
                done = result.memories + result.kept
                progress(done, max(total, done))
        if messages:
            fresh, renamed = _new_messages(messages, message_ids)
            service.catalog.add_messages(fresh)
            result.messages, result.renamed = result.messages + len(fresh), result.renamed + renamed
            messages.clear()

    records = _Records(service, cube.cube_id, service.embedder.dimension if same_model else None)
    keep_authors = keep_authors or user.is_admin
    with service.write_lock:
        for number, line in rows:
            record = records.read(number, line)
            if isinstance(record, Message):
                messages.append(record if keep_authors else record.model_copy(update={"user_id": user.user_id}))
            elif record is not None:
                memory, index = record
                batch.append((memory if keep_authors else memory.model_copy(update={"user_id": user.user_id}),
                              index))
            if len(batch) >= _PAGE or len(messages) >= _PAGE:
                flush()
        flush()
    return result


CHECK_CUBE = "import-check"  # the cube id records are read under by ``check_export``


def line_limit(service: MemoryService) -> int:
    """The longest line of an export an import reads, in bytes: room for a memory's text, background,
    reasoning, context and sources at ``max_memory_size`` each, escaped, and its embedding."""
    return 300 * service.settings.max_memory_size + 2**20


def export_lines(handle: IO[bytes], limit: int) -> Iterator[str]:
    """The lines of an export file opened in binary, decoded as UTF-8, read at most ``limit`` bytes at a
    time so a hostile file's endless line is refused (``PayloadTooLarge`` naming the line) instead of
    held in memory; ``InvalidRequest`` naming a line that is not UTF-8 text."""
    for number in range(1, 2**62):
        raw = handle.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit:
            raise PayloadTooLarge(f"line {number} is longer than {limit} bytes", line=number, limit=limit)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"line {number} is not UTF-8 text ({exc.reason})", line=number) from exc


def check_export(service: MemoryService, lines: Iterable[str]) -> str | None:
    """Read a whole export as ``import_lines`` would, storing nothing: ``InvalidRequest`` naming the line
    of its first fault, else the name its header gives the exported cube (None when it gives none, or
    one no cube can take: blank, unstorable, longer than ``MAX_KEY_CHARS``). For a caller that must know
    the file is good before it makes anything for it (the CLI's ``import`` makes the user and the cube,
    named as the export names it)."""
    rows = iter(enumerate(lines, start=1))
    header = _header(next(rows, (1, "")))
    records = _Records(service, CHECK_CUBE, service.embedder.dimension if _made_here(header, service) else None)
    for number, line in rows:
        records.read(number, line)
    name = header.cube.name if header.cube is not None else None
    usable = name is not None and not is_blank(name) and not storable_problem(name) and len(name) <= MAX_KEY_CHARS
    return name if usable else None


class _Records:
    """Reads the records of one export for ``cube_id``: each line as the record it holds (``read``).
    ``dimension``: the export is of this server's model, so a memory's embedding is stored as it is and
    must be usable. ``seen`` remembers the ids read, so a file naming one id twice is refused."""

    def __init__(self, service: MemoryService, cube_id: str, dimension: int | None) -> None:
        self.service, self.cube_id, self.dimension = service, cube_id, dimension
        self.seen: dict[str, int] = {}  # record id (memories and messages apart) to its line

    def read(self, number: int, line: str) -> tuple[Memory, _Index] | Message | None:
        """Line ``number`` as the record it holds (a memory with its index fields, or a message), None for
        a blank line or a paged export's ``next`` record. A memory passes the checks of an add (text,
        metadata, tags) and of what an add would make (a UUID id, a key of at most ``MAX_KEY_CHARS``, a
        background and reasoning of at most ``max_memory_size``, at most ``MAX_SOURCES`` sources); a
        message the checks of an add's messages. ``InvalidRequest`` (``PayloadTooLarge``) naming the
        line and the field."""
        if not line.strip():
            return None
        record = _parse(number, line)
        found = unstorable_in(record)
        if found is not None:
            field = ".".join(found[0])
            raise InvalidRequest(f"line {number}: {field} {found[1]}", field=field, line=number)
        kind = record.pop("type", None)
        try:
            if kind == "memory":
                memory, index = self._memory(record)
                self._once(f"memory:{memory.id}", number)
                return memory, index
            if kind == "message":
                message = self._message(record)
                self._once(f"message:{message.id}", number)
                return message
            if kind == "next":  # where a paged export's next part starts: nothing to import
                return None
        except ValidationError as exc:
            where, problem = first_problem(exc)
            raise InvalidRequest(f"line {number}: {where}: {problem}", line=number, field=where) from exc
        except MemosError as exc:  # an add's check, or the embedding's: the line is named here
            raise type(exc)(f"line {number}: {exc.message}", **{**exc.details, "line": number}) from exc
        raise InvalidRequest(f"line {number}: unknown record type {kind!r}", line=number)

    def _memory(self, record: dict[str, Any]) -> tuple[Memory, _Index]:
        index = _Indexed.model_validate({"index": record.pop("index", None) or {}}).index
        _refuse_unknown(record, Memory)
        memory = Memory.model_validate({**record, "cube_id": self.cube_id})
        if not is_uuid(memory.id):
            raise InvalidRequest(f"id {memory.id[:64]!r} is not a UUID", field="id")
        # one spelling per id (a store keeps the canonical one: "F01962EA-..." would reach another's memory)
        memory = memory.model_copy(update={"id": str(uuid.UUID(memory.id))})
        check_id("user_id", memory.user_id)
        stores, longest = self.service.stores, self.service.settings.max_memory_size
        stores.check_text(memory.memory, "memory")
        check_metadata(memory.metadata)
        check_tags(memory.tags)
        for field, text, limit in (("key", memory.key, MAX_KEY_CHARS), ("background", memory.background, longest),
                                   ("reasoning", memory.reasoning or "", longest),
                                   ("index.context", index.context, _CONTEXT_TEXTS * longest),
                                   ("index.speaker", index.speaker or "", MAX_KEY_CHARS)):
            check_length(text, field, limit)
        if len(memory.sources) > MAX_SOURCES:
            raise PayloadTooLarge(f"sources holds {len(memory.sources)} sources; the limit is {MAX_SOURCES}",
                                  field="sources", limit=MAX_SOURCES)
        for number, source in enumerate(memory.sources):
            self._source(f"sources.{number}", source)
        for place, conversation in (("conversation_id", memory.conversation_id), *(
                (f"sources.{i}.conversation_id", s.conversation_id) for i, s in enumerate(memory.sources))):
            if conversation is not None:
                check_id(place, conversation)
        if self.dimension is not None and memory.embedding is not None:
            _check_embedding(memory.embedding, self.dimension)
        return memory, index

    def _source(self, place: str, source: MemorySource) -> None:
        """A source as an add makes one: a message's role, name and id of at most ``MAX_KEY_CHARS``, its
        content (and the whitespace around a chunk) of at most ``max_memory_size``, a document path of at
        most ``_PATH_CHARS``, any other fields at most ``MAX_METADATA_BYTES`` as JSON (``PayloadTooLarge``
        naming the field)."""
        if source.role is not None and source.role not in get_args(MessageRole):
            raise InvalidRequest(f"{place}.role {source.role[:40]!r} is not one of "
                                 f"{', '.join(get_args(MessageRole))}", field=f"{place}.role")
        for key, value in (source.model_extra or {}).items():
            if not is_json_value(value):  # a number past 64 bits comes back from a store as a float
                raise InvalidRequest(f"{place}.{key} must be JSON: text, a finite number (integers within 64 "
                                     "bits), boolean, list or object", field=f"{place}.{key}")
        extra = json_bytes(source.model_extra or {})
        for field, size, limit in (("name", len(source.name or ""), MAX_KEY_CHARS),
                                   ("message_id", len(source.message_id or ""), MAX_KEY_CHARS),
                                   ("content", len(source.content or ""), self.service.settings.max_memory_size),
                                   ("doc_path", len(source.doc_path or ""), _PATH_CHARS),
                                   ("gap", len(source.gap or ""), self.service.settings.max_memory_size),
                                   ("tail", len(source.tail or ""), self.service.settings.max_memory_size),
                                   ("(other fields)", extra, MAX_METADATA_BYTES)):
            if size > limit:
                raise PayloadTooLarge(f"{place}.{field} has {size} characters; the limit is {limit}",
                                      field=f"{place}.{field}", limit=limit)

    def _message(self, record: dict[str, Any]) -> Message:
        _refuse_unknown(record, Message)
        message = Message.model_validate({**record, "cube_id": self.cube_id})
        check_id("id", message.id)
        check_id("user_id", message.user_id)
        self.service.stores.check_message(MessageIn.model_validate(
            {"role": message.role, "content": message.content, "name": message.name,
             "message_id": message.message_id}))
        check_id("conversation_id", message.conversation_id)
        return message

    def _once(self, key: str, number: int) -> None:
        kind, _, ident = key.partition(":")
        first = self.seen.setdefault(key, number)
        if first != number:
            raise InvalidRequest(f"this {kind} has the id {ident} of the {kind} on line {first}: an export holds "
                                 "each record once", field="id")


def _refuse_unknown(record: dict[str, Any], model: type[BaseModel]) -> None:
    """Raise InvalidRequest naming the fields of ``record`` that ``model`` (as an export writes it: its
    fields and computed fields) does not have, nested ones too: they would be dropped, not imported."""
    problems = unknown_fields(model, {k: v for k, v in record.items() if k not in model.model_computed_fields})
    if problems:
        raise InvalidRequest(describe(problems), field=dotted(problems[0][0]))


def _check_embedding(embedding: list[float], dimension: int) -> None:
    """Raise InvalidRequest (naming the ``embedding`` field) unless ``embedding`` is a vector the store
    can search: ``dimension`` finite numbers, not all zero (a cosine needs a direction)."""
    problem = vector_problem(embedding, dimension) or (None if any(embedding) else "all zeros")
    if problem:
        raise InvalidRequest(f"embedding: {problem}", field="embedding")


def _unit(embedding: list[float]) -> list[float]:
    """A checked embedding (``_check_embedding``) of length 1, as the model's own are (one of length 1
    already is kept as it is): the store keeps 32-bit floats, in which 1e39 is infinite and 1e-300 is
    zero, and a cosine ignores the length."""
    import numpy as np

    vector = np.asarray(embedding, dtype=np.float64)
    largest = float(np.max(np.abs(vector)))
    scaled = vector / largest  # first to at most 1: the squares of 1e-300 underflow to 0
    length = float(np.linalg.norm(scaled))
    if abs(largest * length - 1) <= 1e-3:  # of length 1 already (the model's own): kept exactly as exported
        return list(embedding)
    return [float(x) for x in scaled / length]


def _new_messages(messages: list[Message], ids: _Ids) -> tuple[list[Message], int]:
    """The messages to store, under the ids ``ids`` chooses, and how many took another id. One already in
    this cube is skipped (re-import is idempotent)."""
    chosen, held = ids.choose([m.id for m in messages])
    fresh = [m.model_copy(update={"id": chosen[m.id]}) for m in messages if chosen[m.id] not in held]
    return fresh, sum(1 for original, final in chosen.items() if original != final)


class _Ids:
    """Chooses the id each record of one import is stored under in ``cube_id``, the same on every run
    (so importing a file again, or resuming a stopped import, stores nothing twice):

    1. its own id, when the cube holds it (an import never rewrites a stored record: it is kept);
    2. else the first of its derived ids (``_derived_id``) the cube holds: the record, imported before
       while another cube held its own id (kept, whatever its text is now, as under 1);
    3. else its own id, when no cube holds it and no other cube's history names it (``_memory_holders``);
    4. else the first derived id no cube holds (looking at most ``_DERIVED_TRIES``: ``InvalidRequest``).

    An id an earlier record of this import took counts as held by another. So a crafted file can make an
    import neither take another cube's record nor give two of its records one id. ``holders(ids)`` gives
    the cube of each stored id among ``ids`` (``RETIRED`` for one no cube may take)."""

    def __init__(self, cube_id: str, holders: Callable[[list[str]], Mapping[str, str]]) -> None:
        self.cube_id, self.holders = cube_id, holders
        self.claimed: dict[str, str] = {}  # id a record is stored under -> that record's own id
        self.found: dict[str, str] = {}  # stored ids looked up: their cube
        self.looked: set[str] = set()

    def choose(self, records: list[str]) -> tuple[dict[str, str], set[str]]:
        """Each record's own id, in order, to the id it is stored under; and which of those ids the cube
        holds already (records imported before, left as they are)."""
        self._look([i for own in records for i in (own, _derived_id(self.cube_id, own, 0))])
        chosen: dict[str, str] = {}
        for own in records:
            chosen[own] = final = self._choose(own)
            self.claimed[final] = own
        return chosen, {final for final in chosen.values() if final in self.found}

    def _look(self, ids: list[str]) -> None:
        fresh = [i for i in dict.fromkeys(ids) if i not in self.looked]
        if fresh:
            self.found |= self.holders(fresh)
            self.looked.update(fresh)

    def _choose(self, own: str) -> str:
        def mine(ident: str) -> bool:  # no other record of this import took it
            return self.claimed.get(ident, own) == own

        if self.found.get(own) == self.cube_id and mine(own):
            return own
        free: str | None = None
        for n in range(_DERIVED_TRIES):
            option = _derived_id(self.cube_id, own, n)
            if option not in self.looked:  # the next few at once
                self._look([_derived_id(self.cube_id, own, k) for k in range(n, min(n + 16, _DERIVED_TRIES))])
            cube = self.found.get(option)
            if cube == self.cube_id and mine(option):
                return option
            if cube is None and mine(option):
                free = option
                break
        if own not in self.found and mine(own):
            return own
        if free is None:
            raise InvalidRequest(f"record {own}: every id derived from it is taken ({_DERIVED_TRIES} tried)",
                                 field="id")
        return free


class _ExportedCube(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cube_id: str | None = None
    name: str | None = None
    owner_id: str | None = None


class _Header(BaseModel):
    """Line 1 of an export (``_header_line``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["header"]
    format: str
    exported_at: str | None = None
    cube: _ExportedCube | None = None
    embedding_model: str | None = None
    dimension: int | None = Field(None, ge=1, le=65_536)
    memories: int | None = Field(None, ge=0)


class _Index(BaseModel):
    """A memory record's ``index``: how its point was indexed (the turns before it, its speaker)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    context: str = ""
    speaker: str | None = None


class _Indexed(BaseModel):
    """The ``index`` of a memory record, validated under its own name (errors say ``index.speaker``)."""

    index: _Index


def _header(first: tuple[int, str]) -> _Header:
    number, line = first
    record = _parse(number, line) if line.strip() else {}
    if record.get("type") != "header" or record.get("format") != FORMAT:
        raise InvalidRequest(f"not a memos-mcp export: line 1 must be a header with format {FORMAT!r}")
    problems = unknown_fields(_Header, record)
    if problems:
        raise InvalidRequest(f"line 1: {describe(problems)}", line=1, field=dotted(problems[0][0]))
    try:
        return _Header.model_validate(record)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise InvalidRequest(f"line 1: {where}: {problem}", line=1, field=where) from exc


def _made_here(header: _Header, service: MemoryService) -> bool:
    """Whether the export's embeddings are this server's, to be stored as they are: made by the same model
    (``Embedder.model_id``) at the same dimension (an export whose header gives none is taken at its
    model's word, and its embeddings' sizes are checked). Otherwise the import re-embeds."""
    return (header.embedding_model == service.embedder.model_id
            and header.dimension in (None, service.embedder.dimension))


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


def _memory_holders(service: MemoryService, cube_id: str, ids: list[str]) -> dict[str, str]:
    """The cube holding each memory id among ``ids`` that one holds; and ``RETIRED`` for an id no cube holds
    whose history names another cube than ``cube_id`` (a memory deleted there). Such an id is never taken
    again: its history would mix two cubes' (the first cube's readers would read the new memory's), and
    keeping it where a fresh id is kept would tell an importer that another cube once held it."""
    held = {p.id: str(p.payload.get("cube_id")) for p in service.vectors.retrieve(ids)}
    used = service.catalog.history_cubes([i for i in ids if i not in held])
    return held | {i: RETIRED for i, cubes in used.items() if cubes != {cube_id}}


def _derived_id(cube_id: str, ident: str, n: int) -> str:
    """The ``n``-th id (from 0) a record takes in ``cube_id`` when its own is taken: the same on every import."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cube_id}/{ident}" if n == 0 else f"{cube_id}/{n}/{ident}"))


def _write(service: MemoryService, cube_id: str, actor: str, batch: list[tuple[Memory, _Index]],
           same_model: bool, ids: _Ids) -> tuple[int, int, int]:
    """Store one batch: memories new to the cube with their ``ADD`` history (``commit_points``), under
    the ids ``ids`` chooses. A memory the cube holds already (an earlier run, or the same id exported
    from this cube) is left as it is: an import never rewrites a stored memory's text, author or history;
    it only gets the graph links and the ``ADD`` event an import by an earlier version left out. Returns
    how many memories were stored, kept and renamed."""
    chosen, held = ids.choose([m.id for m, _ in batch])
    memories = [m.model_copy(update={"id": chosen[m.id]}) for m, _ in batch]
    renamed = sum(1 for original, final in chosen.items() if original != final)
    stored = {p.id: p for p in service.vectors.retrieve([m.id for m in memories if m.id in held])}
    kept = [from_point(stored[m.id]) for m in memories if m.id in stored]
    new = [(m, index) for m, (_, index) in zip(memories, batch, strict=True) if m.id not in stored]
    fresh = [m.embedding is None or not same_model for m, _ in new]
    texts = [index_texts(m.memory, i.speaker, i.context, m.event_time, service.settings.search.dense_context)
             for m, i in new]
    embedded = iter(service.embedder.embed([d for (d, _), f in zip(texts, fresh, strict=True) if f]))
    windowed = service.stores.window_vectors([m.memory for m, _ in new])  # not exported: made here
    points = [VectorPoint(m.id, next(embedded) if f else _unit(m.embedding or []), sparse_document(sparse),
                          to_payload(m, content_hash(f"{m.kind}:{m.memory}"), i.context, i.speaker,
                                     windows=windowed.get(m.memory)))
              for (m, i), f, (_, sparse) in zip(new, fresh, texts, strict=True)]
    speakers = {m.id: i.speaker for m, i in new} | {m.id: stored[m.id].payload.get("speaker") for m in kept}

    def graph(chosen: list[Memory]) -> None:  # oldest first, as they were added
        chosen = sorted(chosen, key=lambda m: m.created_at)
        for start in range(0, len(chosen), _GRAPH_BATCH):
            part = chosen[start:start + _GRAPH_BATCH]
            service.stores.ingest_graph(cube_id, [(m, None, speakers[m.id]) for m in part])

    if kept:  # what an import by an earlier version left without a graph or history gets them
        graph(kept)
        recorded = service.catalog.history_cubes([m.id for m in kept])
        service.catalog.add_history([_added(m, cube_id, actor) for m in kept if m.id not in recorded])
    service.commit_points(cube_id, points, [_added(m, cube_id, actor) for m, _ in new],
                          lambda _stored: graph([m for m, _ in new]))
    return len(new), len(kept), renamed


def _added(memory: Memory, cube_id: str, actor: str) -> HistoryEvent:
    return HistoryEvent(memory_id=memory.id, cube_id=cube_id, event="ADD", actor=actor, at=utcnow(),
                        new_memory=memory.memory)
