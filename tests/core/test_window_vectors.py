"""A long memory's sentence-window vectors are made when it is written and kept in its payload
(``relevance.stored_windows``): a search judges the memory by them without embedding its windows again;
a change of its text makes them again, any other change keeps them; stale or damaged ones are not
trusted; readers never see them. On every vector backend."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.reindex import fill_window_vectors
from memos_mcp.core.relevance import WINDOWS_FIELD, calibrated, query_variants, read_windows, windows
from memos_mcp.core.service import ROOT_USER, MemoryService

CUBE = "notes"
FILLER = ("The weekly review covered the garden plan, the budget for the kitchen and the dates of the "
          "school holidays. Everyone agreed that the shed roof can wait until spring. The neighbours "
          "offered to lend their ladder again. ")
LONG = (f"{FILLER * 3}Alice's passport number is X1234567 and it expires in March 2031. "
        f"{FILLER}The car goes to the garage on Tuesday.")
OTHER = (f"{FILLER * 3}Bob's library card was renewed for two more years at the front desk. "
         f"{FILLER}The bikes need new chains before the summer trip.")
QUESTION = "When does Alice's passport expire?"


def added(service: MemoryService, text: str) -> str:
    result = service.add_memory(ROOT_USER, cube_id=CUBE, memory_content=text)
    return result.memories[0].id


def payload_of(service: MemoryService, memory_id: str) -> dict[str, Any]:
    (point,) = service.vectors.retrieve([memory_id])
    return point.payload


def fresh_relativity(service: MemoryService, memory_id: str, windows_of: str) -> float:
    """The relativity to ``QUESTION`` of the memory's stored vector and of the windows of ``windows_of``
    embedded now, as search computes it (the best cosine of any of them with the query's variants)."""
    judges = np.asarray(service.embedder.embed_queries(query_variants(QUESTION)), dtype=np.float32)
    (point,) = service.vectors.retrieve([memory_id], with_vectors=True)
    parts = np.asarray([point.dense, *service.embedder.embed_for_comparison(windows(windows_of))], dtype=np.float32)
    return calibrated(float((parts @ judges.T).max()))


def dimension(service: MemoryService) -> int:
    return len(service.embedder.embed_queries(["dimension"])[0])


def hit(service: MemoryService, memory_id: str) -> Any:
    found = service.search(ROOT_USER, QUESTION, cube_ids=[CUBE], top_k=10, include_preference=False)
    return next(h for h in found.memories if h.id == memory_id)


@pytest.fixture
def service(make_service: Any) -> MemoryService:
    made: MemoryService = make_service()
    made.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
    return made


def test_a_long_memory_carries_its_window_vectors_and_a_short_one_none(service: MemoryService) -> None:
    long_id, short_id = added(service, LONG), added(service, "Alice's passport expires in March 2031.")

    stored = read_windows(LONG, payload_of(service, long_id)[WINDOWS_FIELD], dimension(service))
    expected = np.asarray(service.embedder.embed_for_comparison(windows(LONG)), dtype=np.float32)
    assert stored is not None and stored.shape == expected.shape and len(windows(LONG)) >= 3
    assert np.abs(stored - expected).max() < 1e-3  # 16-bit floats
    assert WINDOWS_FIELD not in payload_of(service, short_id)
    for memory in (service.get_memory(ROOT_USER, long_id), *service.list_memories(ROOT_USER, cube_ids=[CUBE]).memories):
        assert WINDOWS_FIELD not in memory.model_dump()


def test_search_judges_a_long_memory_by_its_stored_windows(service: MemoryService) -> None:
    memory_id = added(service, LONG)

    own = fresh_relativity(service, memory_id, LONG)
    assert hit(service, memory_id).relativity == pytest.approx(own, abs=2e-3)
    # The stored vectors are what counts: another text's windows under this text's digest move it.
    elsewhere = added(service, OTHER)
    planted = dict(payload_of(service, elsewhere)[WINDOWS_FIELD])
    planted["digest"] = payload_of(service, memory_id)[WINDOWS_FIELD]["digest"]
    assert len(windows(OTHER)) == len(windows(LONG))
    service.vectors.set_payload(memory_id, {WINDOWS_FIELD: planted})
    moved = fresh_relativity(service, memory_id, OTHER)
    assert moved < own - 0.05
    assert hit(service, memory_id).relativity == pytest.approx(moved, abs=2e-3)


def test_a_new_text_makes_new_windows_and_other_changes_keep_them(service: MemoryService) -> None:
    memory_id = added(service, OTHER)
    before = payload_of(service, memory_id)[WINDOWS_FIELD]

    service.update_memory(ROOT_USER, memory_id, tags=["kept"])
    assert payload_of(service, memory_id)[WINDOWS_FIELD] == before

    service.update_memory(ROOT_USER, memory_id, memory=LONG)
    after = payload_of(service, memory_id)[WINDOWS_FIELD]
    assert after != before and read_windows(LONG, after, dimension(service)) is not None
    assert hit(service, memory_id).relativity == pytest.approx(fresh_relativity(service, memory_id, LONG), abs=2e-3)


def _vectors_changed(stored: dict[str, str], change: Any) -> dict[str, str]:
    """``stored`` with its window vectors replaced by ``change(vectors)``, packed as ``stored_windows`` packs."""
    vectors = np.frombuffer(base64.b64decode(stored["f16"]), dtype="<f2").astype(np.float32)
    return {**stored, "f16": base64.b64encode(np.asarray(change(vectors), dtype="<f2").tobytes()).decode("ascii")}


@pytest.mark.parametrize("damage", [
    lambda stored: stored | {"digest": "0" * 16},  # made for other windows
    lambda stored: stored | {"f16": "not base64!"},
    lambda stored: stored | {"f16": ""},  # the wrong length
    lambda stored: stored | {"f16": stored["f16"] * 40},  # far too long: refused before it is decoded
    lambda stored: _vectors_changed(stored, lambda v: np.full_like(v, np.nan)),
    lambda stored: _vectors_changed(stored, lambda v: np.where(np.arange(v.size) == 3, np.inf, v)),
    lambda stored: _vectors_changed(stored, lambda v: v * 50),  # not unit vectors: would steer the relevance
    lambda stored: None,
], ids=["other-windows", "not-base64", "empty", "too-long", "nan", "inf", "not-unit", "none"])
def test_stale_or_damaged_window_vectors_are_not_trusted(service: MemoryService, damage: Any) -> None:
    memory_id = added(service, LONG)
    stored = payload_of(service, memory_id)[WINDOWS_FIELD]
    service.vectors.set_payload(memory_id, {WINDOWS_FIELD: damage(stored)})

    assert read_windows(LONG, payload_of(service, memory_id).get(WINDOWS_FIELD), dimension(service)) is None
    assert hit(service, memory_id).relativity == pytest.approx(fresh_relativity(service, memory_id, LONG), abs=2e-3)
    # reindex makes them again
    assert fill_window_vectors(service).windowed == 1
    assert read_windows(LONG, payload_of(service, memory_id).get(WINDOWS_FIELD), dimension(service)) is not None


@pytest.mark.parametrize("include_embeddings", [True, False])
def test_an_import_makes_the_window_vectors_an_export_leaves_out(service: MemoryService, make_service: Any,
                                                                 tmp_path: Path, include_embeddings: bool) -> None:
    long_id, short_id = added(service, LONG), added(service, "Alice's passport expires in March 2031.")
    lines = list(export_cube(service, ROOT_USER, CUBE, include_embeddings=include_embeddings))
    assert not any(f'"{WINDOWS_FIELD}"' in line or '"f16"' in line for line in lines)

    other: MemoryService = make_service(tmp_path / "other")
    other.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
    import_lines(other, ROOT_USER, lines, CUBE)
    stored = read_windows(LONG, payload_of(other, long_id).get(WINDOWS_FIELD), dimension(other))
    expected = np.asarray(other.embedder.embed_for_comparison(windows(LONG)), dtype=np.float32)
    assert stored is not None and np.abs(stored - expected).max() < 1e-3
    assert WINDOWS_FIELD not in payload_of(other, short_id)
    # Imported again over itself (rewritten as exported): the vectors stay.
    import_lines(other, ROOT_USER, lines, CUBE)
    assert read_windows(LONG, payload_of(other, long_id).get(WINDOWS_FIELD), dimension(other)) is not None


def test_reindex_gives_every_long_memory_lacking_window_vectors_its_own(service: MemoryService) -> None:
    """As a store of an earlier version has them: none, or made for another text, in any cube or status."""
    service.create_cube(ROOT_USER, "Other", cube_id="other")
    missing, kept, stale = added(service, LONG), added(service, OTHER), added(service, LONG + " And one more.")
    short = added(service, "Alice's passport expires in March 2031.")
    archived = service.add_memory(ROOT_USER, cube_id="other", memory_content=OTHER + " Archived.").memories[0].id
    service.update_memory(ROOT_USER, archived, status="archived")
    kept_before = payload_of(service, kept)[WINDOWS_FIELD]
    service.vectors.set_payload(missing, {WINDOWS_FIELD: None})
    service.vectors.set_payload(archived, {WINDOWS_FIELD: None})
    service.vectors.set_payload(stale, {WINDOWS_FIELD: kept_before})  # another text's

    seen: list[tuple[int, int]] = []
    result = fill_window_vectors(service, lambda done, total: seen.append((done, total)))
    assert (result.memories, result.long, result.windowed) == (5, 4, 3)
    assert seen[-1] == (5, 5)
    for memory_id in (missing, kept, stale, archived):
        text = payload_of(service, memory_id)["memory"]
        assert read_windows(text, payload_of(service, memory_id)[WINDOWS_FIELD], dimension(service)) is not None
    assert payload_of(service, kept)[WINDOWS_FIELD] == kept_before
    assert WINDOWS_FIELD not in payload_of(service, short)
    assert hit(service, missing).relativity == pytest.approx(fresh_relativity(service, missing, LONG), abs=2e-3)
    # Run again: nothing left to make.
    assert fill_window_vectors(service).windowed == 0
