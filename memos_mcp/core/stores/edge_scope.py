"""qdrant-edge's search scopes: a point's cube, status and kind as one indexed keyword (``SCOPE_FIELD``).

A search filters on its cubes, the statuses it shows and the kinds of its pass; as three conditions the
engine checks each of them for every candidate, as one it checks one: a filtered dense query over 10,000
points took 2.4 ms of CPU with the three and 1.0 ms with the scope (0.9 ms without any filter), and a
search runs two to four of them. Facts and documents, which a search's memory pass asks for together,
share a scope; every other kind has its own.

``EdgeVectorStore`` writes every point with its scope and asks for scopes only while every point holds one
(``is_scoped``). A shard written before scopes existed gets them in the index build's child process
(``add_scopes``), never on the live shard: qdrant-edge moves a point whose payload changes out of its
indexed segment, so a pass over a live shard of 100,000 points made every dense search a full scan
(about 3 -> 10 ms) and took its process from 650 to 1,700 MB until the index was built again.
"""

from __future__ import annotations

import json
from typing import Any

import qdrant_edge as qe

from memos_mcp.core.models import MemoryKind
from memos_mcp.core.stores.qdrant_records import SCOPE_FIELD
from memos_mcp.core.stores.vector import MemoryFilter

SCOPED = ("cube_id", "status", "kind")  # the payload fields a point's scope is made of
_MEMORY_PASS = frozenset({MemoryKind.FACT.value, MemoryKind.DOCUMENT.value})
_PAGE = 1000  # points per step of ``add_scopes``


def scope_of(payload: dict[str, Any]) -> str:
    """The search scope of a point with ``payload``: its cube, its status and its kind (the kinds of the
    memory pass as one), a JSON array, so that no cube id or kind can be mistaken for another's."""
    return _scope(payload.get("cube_id"), payload.get("status"), payload.get("kind"))


def _scope(cube_id: object, status: object, kind: object) -> str:
    part = ["memory"] if isinstance(kind, str) and kind in _MEMORY_PASS else ["kind", kind]
    return json.dumps([cube_id, status, *part], ensure_ascii=False)


def scope_conditions(flt: MemoryFilter) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """For a filter that names statuses and kinds (a search's): the scopes it asks for, and the kinds to
    ask for apart (when it names part of the memory pass, else none); None for any other filter."""
    if not flt.status or not flt.kinds:
        return None
    scopes = dict.fromkeys(_scope(cube_id, status, kind) for cube_id in flt.cube_ids for status in flt.status
                           for kind in flt.kinds)
    named = _MEMORY_PASS & set(flt.kinds)
    return tuple(scopes), (flt.kinds if named and named != _MEMORY_PASS else ())


def is_scoped(shard: qe.EdgeShard) -> bool:
    """Whether every point of ``shard`` holds a scope (the field is indexed once ``add_scopes`` gave every
    point one; a point written by an earlier version after that has none)."""
    if SCOPE_FIELD not in shard.info().payload_schema:
        return shard.info().points_count == 0
    lacking = qe.Filter(must=[qe.IsEmptyCondition(SCOPE_FIELD)])
    return shard.count(qe.CountRequest(exact=True, filter=lacking)) == 0


def add_scopes(shard: qe.EdgeShard) -> None:
    """Give every point its scope (made again from its payload), then index the field and flush. Moves
    every point out of its indexed segment: for a copy that is optimized next (``edge_index.build``)."""
    offset: Any = None
    while True:  # the scroll walks the ids once; it ends when it returns no next offset
        records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=_PAGE, with_vector=False,
                                                        with_payload=qe.PayloadSelector.Include(list(SCOPED))))
        groups: dict[str, list[Any]] = {}
        for record in records:
            groups.setdefault(scope_of(record.payload or {}), []).append(record.id)
        for scope, ids in groups.items():
            shard.update(qe.UpdateOperation.set_payload(ids, {SCOPE_FIELD: scope}))
        if offset is None:
            break
    index_scopes(shard)


def index_scopes(shard: qe.EdgeShard) -> None:
    """Create the index of ``SCOPE_FIELD`` (if missing) and flush."""
    if SCOPE_FIELD not in shard.info().payload_schema:
        shard.update(qe.UpdateOperation.create_field_index(SCOPE_FIELD, qe.PayloadSchemaType.Keyword))
    shard.flush()
