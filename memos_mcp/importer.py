"""``memos-mcp import FILE``: a JSONL export, a conversation JSON (``[{role, content}, ...]`` or
``{"messages": [...]}``), or a document (text, Markdown, JSON).

Every kind is idempotent, so an import that stopped half way is resumed by running it again: an
export keeps its ids; a conversation's messages get ids derived from the cube, the conversation, their
place and their text (a message stored by an earlier run is not stored again; its memories are
de-duplicated by text, and with a language model a batch stored earlier keeps the task queued then);
a document's chunks are de-duplicated by text."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from memos_mcp.core.directory import check_new_cube_id
from memos_mcp.core.models import Role, User, utcnow
from memos_mcp.core.portability import FORMAT, check_export, export_lines, import_lines, line_limit
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.core.text import content_hash
from memos_mcp.core.write.add import Progress
from memos_mcp.errors import InvalidRequest

_BATCH = 200
_MODEL_BATCH = 20  # messages per extraction call when a language model extracts


def require_file(path: Path) -> None:
    """``InvalidRequest`` (field ``FILE``) unless ``path`` is a file: checked before a store is opened."""
    if not path.is_file():
        raise InvalidRequest(f"{path} is not a file", field="FILE")


def import_file(service: MemoryService, path: Path, user_id: str, cube_id: str | None,
                conversation_id: str | None, progress: Progress) -> dict[str, Any]:
    """Import an export, a conversation (JSON messages) or a document into ``user_id``'s ``cube_id`` (its
    default cube when None), made for it when missing; the file is read whole and checked first, so a
    bad one (``InvalidRequest`` naming the line or message) makes and changes nothing."""
    require_file(path)
    kind = _kind(path)
    messages: list[dict[str, Any]] = []
    name: str | None = None  # a new cube's: the exported cube's name, else its id
    if kind == "export":
        with path.open("rb") as handle:
            name = check_export(service, export_lines(handle, line_limit(service)))
    elif kind == "conversation":
        messages = _messages(path)
        service.check_messages(messages)
    new_cube = cube_id if cube_id is not None and service.catalog.get_cube(cube_id) is None else None
    if new_cube is not None:
        check_new_cube_id(new_cube, user_id)  # before the user is made: a refusal makes nothing
    elif cube_id is not None:  # another's cube: the user may write to it (a user not made yet may not)
        user = service.catalog.get_user(user_id) or User(user_id=user_id, user_name=user_id, role=Role.USER,
                                                         created_at=utcnow())
        service.access.writable(user, cube_id)
    service.ensure_user(user_id)
    if new_cube is not None and service.catalog.get_cube(new_cube) is None:  # (ensuring made the user's default)
        service.create_cube(ROOT_USER, name or new_cube, cube_id=new_cube, owner_id=user_id)
    if kind == "export":
        with path.open("rb") as handle:
            lines = export_lines(handle, line_limit(service))
            imported = import_lines(service, user_id, lines, cube_id, progress, keep_authors=True)  # the operator
            return {"kind": kind, **imported.model_dump()}
    if kind == "conversation":
        conversation = conversation_id or path.stem
        home = service.access.writable(service.access.user(user_id), cube_id).cube_id
        ids = [_message_id(home, conversation, index, m) for index, m in enumerate(messages)]
        added = deduplicated = 0
        batch = _MODEL_BATCH if service.llm is not None else _BATCH  # one model call reads one batch
        for start in range(0, len(messages), batch):
            part = ids[start:start + batch]
            if service.llm is None or len(service.catalog.message_cubes(part)) < len(part):
                result = service.add_memory(user_id, cube_id=home, messages=messages[start:start + batch],
                                            conversation_id=conversation, async_mode=False, message_ids=part)
                added += len(result.added)
                deduplicated += len(result.deduplicated)
            progress(min(start + batch, len(messages)), len(messages))
        return {"kind": kind, "messages": len(messages), "added": added, "deduplicated": deduplicated}
    result = service.add_document(user_id, path, cube_id=cube_id, progress=progress)
    return {"kind": kind, "added": len(result.added), "deduplicated": len(result.deduplicated),
            "cube_id": result.cube_id}


def _message_id(cube_id: str, conversation: str, index: int, message: dict[str, Any]) -> str:
    """A message's id in an import: the same on every run of the same file into the same cube."""
    digest = content_hash(f"{message.get('role')}:{message.get('content')}")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"memos-import/{cube_id}/{conversation}/{index}/{digest}"))


def _kind(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    if isinstance(head, dict) and head.get("format") == FORMAT:
        return "export"
    if path.suffix.lower() == ".jsonl":  # JSON lines are an export, never a document (check_export says why not)
        return "export"
    if path.suffix.lower() == ".json":
        try:
            _messages(path)
        except InvalidRequest:
            return "document"
        return "conversation"
    return "document"


def _messages(path: Path) -> list[dict[str, Any]]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"{path.name} is not a JSON conversation") from exc
    if isinstance(value, dict):
        value = value.get("messages")
    if (isinstance(value, list) and value
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)):
        return value
    raise InvalidRequest(f"{path.name} is not a list of {{role, content}} messages")
