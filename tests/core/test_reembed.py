"""``memos-mcp reembed``: an embedded data directory moved to another embedding model, over real data
directories, the real local model and a real OpenAI-compatible server on 127.0.0.1: the new vectors are
the new model's, nothing else changes, a stopped run goes on where it stopped, and a swap cut short is
finished by the next open."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from memos_mcp.config import Settings
from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.portability import check_export, export_cube, import_lines
from memos_mcp.core.reembed import BATCH, reembed
from memos_mcp.core.relevance import WINDOWS_FIELD, read_windows
from memos_mcp.core.service import MemoryService
from memos_mcp.core.stores import reembed_swap
from memos_mcp.core.stores.data_dir import EDGE_DIR
from memos_mcp.core.stores.vector_edge import EdgeVectorStore
from memos_mcp.errors import ConfigError, InvalidRequest, MemosError, StorageError, StoreLocked
from tests.conftest import settings_for
from tests.openai_server import OpenAIServer, fake_vector
from tests.test_cli import check_lines, memos, ok

CUBE = "notes"
PREFIXED = {"document_prefix": "passage: ", "query_prefix": "query: "}
FILLER = ("The weekly review covered the garden plan, the budget for the kitchen and the dates of the "
          "school holidays. Everyone agreed that the shed roof can wait until spring. ")
LONG = f"{FILLER * 4}Alice's passport number is X1234567 and it expires in March 2031. {FILLER}"
TOPICS = ["pottery", "camping", "painting", "running", "chess", "baking", "cycling", "piano", "hiking", "knitting"]


@pytest.fixture(params=["edge"])
def backend(request: pytest.FixtureRequest) -> str:
    """reembed works on the embedded store (the others are refused: a test below)."""
    return str(request.param)


@pytest.fixture
def prefixed() -> Iterator[LocalOnnxEmbedder]:
    """The packaged model with document and query prefixes: another model id, other vectors."""
    model = LocalOnnxEmbedder(**PREFIXED)
    model.load()
    yield model
    model.close()


def _turns(count: int, start: int = 0) -> list[dict[str, Any]]:
    speakers = ("Caroline", "Melanie")
    return [{"role": "user", "name": speakers[i % 2], "chat_time": f"2023-05-{1 + i % 28:02d}T10:00:00Z",
             "content": f"Turn {i}: I spent the weekend on {TOPICS[i % len(TOPICS)]} with my family, part {i}."}
            for i in range(start, start + count)]


def _filled(data_dir: Path, embedder: LocalOnnxEmbedder, turns: int) -> list[str]:
    """A data directory made by the packaged model: ``turns`` messages of one conversation and a long
    memory (``LONG``); their memory ids."""
    with _opened(settings_for(data_dir), embedder=embedder) as service:
        service.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
        added = service.add_memory(ROOT_USER, cube_id=CUBE, messages=_turns(turns), conversation_id="c1")
        long = service.add_memory(ROOT_USER, cube_id=CUBE, memory_content=LONG)
        return [m.id for m in added.memories] + [long.memories[0].id]


@contextmanager
def _opened(settings: Settings, embedder: LocalOnnxEmbedder | None = None) -> Iterator[MemoryService]:
    service = MemoryService.open(settings, embedder=embedder)
    try:
        yield service
    finally:
        service.close()


def _points(service: MemoryService, ids: list[str]) -> dict[str, Any]:
    return {p.id: p for p in service.ready().whole_points(ids)}


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _openai(data_dir: Path, openai_server: OpenAIServer) -> Settings:
    return settings_for(data_dir, embedder={"backend": "openai", "model": "embed", "base_url": openai_server.url,
                                            "api_key": "k"})


def test_a_directory_moves_to_a_model_of_another_dimension_and_keeps_everything_else(
        tmp_path: Path, embedder: LocalOnnxEmbedder, openai_server: OpenAIServer) -> None:
    data = tmp_path / "data"
    ids = _filled(data, embedder, 5)
    with _opened(settings_for(data), embedder=embedder) as before:
        old = _points(before, ids)
        history = {i: [e.event for e in before.history(ROOT_USER, i)] for i in ids}

    target = _openai(data, openai_server)
    target = target.model_copy(update={"vector": target.vector.model_copy(update={"index_threshold": 3})})
    result = reembed(target)

    assert result.swapped and result.previous_model == embedder.model_id
    assert result.index_built  # a store past vector.index_threshold gets its HNSW index before the swap
    assert (result.model, result.dimension) == (f"openai:{openai_server.url}:embed", 12)
    assert (result.memories, result.embedded, result.kept, result.dropped) == (len(ids), len(ids), 0, 0)
    assert not (data / reembed_swap.STATE_FILE).exists() and not reembed_swap.staging(data).exists()
    with _opened(target) as after:
        index = after.ready().stats()["index"]
        assert index["pending"] == 0 and index["indexed_vectors"] > 0
        new = _points(after, ids)
        assert set(new) == set(ids)
        for memory_id in ids:  # same payload but the windows, same keyword vector; the new model's vector
            point, was = new[memory_id], old[memory_id]
            assert {k: v for k, v in point.payload.items() if k != WINDOWS_FIELD} == \
                   {k: v for k, v in was.payload.items() if k != WINDOWS_FIELD}
            assert point.sparse == was.sparse
            spoken = (f"{point.payload['speaker']}: {point.payload['memory']}" if point.payload.get("speaker")
                      else point.payload["memory"])
            assert point.dense == pytest.approx(_unit(fake_vector(spoken, 12)), abs=1e-6)
        long = new[ids[-1]]
        assert read_windows(LONG, long.payload[WINDOWS_FIELD], 12) is not None  # made by the new model
        assert read_windows(LONG, old[ids[-1]].payload[WINDOWS_FIELD], 12) is None
        assert {i: [e.event for e in after.history(ROOT_USER, i)] for i in ids} == history
        found = after.search(ROOT_USER, "Turn 3: I spent the weekend on running with my family, part 3.",
                             cube_ids=[CUBE], top_k=3, include_preference=False)
        assert ids[3] in [h.id for h in found.memories]
    with pytest.raises(ConfigError) as refused:  # the old model no longer opens it, and the error says how
        MemoryService.open(settings_for(data), embedder=embedder)
    assert "reembed" in refused.value.message


def test_a_stopped_run_goes_on_where_it_stopped_after_the_old_model_served_in_between(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder) -> None:
    data = tmp_path / "data"
    ids = _filled(data, embedder, BATCH + 20)
    target = settings_for(data, embedder=PREFIXED)

    class Stop(Exception):
        pass

    def stop_after_one_batch(done: int, total: int) -> None:
        if done >= BATCH:
            raise Stop

    with pytest.raises(Stop):
        reembed(target, stop_after_one_batch, embedder=prefixed)
    assert reembed_swap.read_target(data) == reembed_swap.Target(prefixed.model_id, 384, "building")

    # the directory still has the old model, whole: a openai_server runs with it and changes what was staged
    with _opened(settings_for(data), embedder=embedder) as staged_store:
        assert staged_store.list_memories(ROOT_USER, cube_ids=[CUBE]).total == len(ids)
        staging = EdgeVectorStore(reembed_swap.staging(data))
        staging.open(384)
        try:
            staged = [p.id for p in staging.retrieve(ids)]
        finally:
            staging.close()
        assert len(staged) == BATCH
        deleted, changed = staged[0], staged[1]
        staged_store.delete_memory(ROOT_USER, deleted, cube_id=CUBE)
        staged_store.update_memory(ROOT_USER, changed, memory="Caroline moved to Lisbon in June.", cube_id=CUBE)
        added = staged_store.add_memory(ROOT_USER, cube_id=CUBE, memory_content="Melanie adopted a grey cat.")

    seen: list[tuple[int, int]] = []
    result = reembed(target, lambda done, total: seen.append((done, total)), embedder=prefixed)

    assert result.swapped and result.memories == len(ids)  # one deleted, one added
    assert (result.kept, result.dropped) == (BATCH - 2, 1)
    assert result.embedded == len(ids) - (BATCH - 2)
    assert seen and seen[-1] == (len(ids), len(ids))
    with _opened(target, embedder=prefixed) as after:
        points = _points(after, [*ids, added.memories[0].id])
        assert deleted not in points and len(points) == len(ids)
        speaker = points[changed].payload["speaker"]  # an update keeps the speaker the turn had
        (vector,) = prefixed.embed([f"{speaker}: Caroline moved to Lisbon in June."])
        assert points[changed].dense == pytest.approx(vector, abs=1e-5)
        (vector,) = prefixed.embed(["Melanie adopted a grey cat."])
        assert points[added.memories[0].id].dense == pytest.approx(vector, abs=1e-5)
        kept = next(i for i in staged[2:])
        assert points[kept].dense == pytest.approx(prefixed.embed([
            f"{points[kept].payload['speaker']}: {points[kept].payload['memory']}"])[0], abs=1e-5)
        hits = after.search(ROOT_USER, "Who adopted a cat?", cube_ids=[CUBE], top_k=1, include_preference=False)
        assert [h.memory for h in hits.memories] == ["Melanie adopted a grey cat."]


def _staged_in_full(data: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder) -> list[str]:
    """A directory whose re-embedding stopped with every point staged, before its swap began."""
    ids = _filled(data, embedder, 30)

    class Stop(Exception):
        pass

    def stop_at_the_end(done: int, total: int) -> None:
        if done == total:
            raise Stop

    with pytest.raises(Stop):
        reembed(settings_for(data, embedder=PREFIXED), stop_at_the_end, embedder=prefixed)
    target = reembed_swap.read_target(data)
    assert target is not None
    reembed_swap.write_target(data, reembed_swap.Target(target.model, target.dimension, "swapping"))
    return ids


@pytest.mark.parametrize("stopped", ["before the first rename", "with the old store moved aside",
                                     "with the new store moved in"])
def test_a_swap_cut_short_is_finished_by_the_next_open(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder, stopped: str) -> None:
    data = tmp_path / "data"
    ids = _staged_in_full(data, embedder, prefixed)
    shard, replaced = data / EDGE_DIR, data / f"{EDGE_DIR}{reembed_swap.REPLACED}"
    if stopped != "before the first rename":  # the steps of ``finish``, as a stop between them leaves them
        os.replace(shard, replaced)
    if stopped == "with the new store moved in":
        os.replace(reembed_swap.staging(data), shard)

    with pytest.raises(StorageError, match="writable"):  # a read-only open cannot finish it, and says so
        MemoryService.open(settings_for(data, embedder=PREFIXED, read_only=True), embedder=prefixed)
    with _opened(settings_for(data, embedder=PREFIXED), embedder=prefixed) as service:
        assert service.catalog.get_meta("embedding_model") == prefixed.model_id
        points = _points(service, ids)
        assert len(points) == len(ids)
        point = points[ids[0]]
        assert point.dense == pytest.approx(prefixed.embed([f"{point.payload['speaker']}: "
                                                            f"{point.payload['memory']}"])[0], abs=1e-5)
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(EDGE_DIR)) == [EDGE_DIR]
    assert not (data / reembed_swap.STATE_FILE).exists()


def test_the_model_in_use_already_changes_nothing_and_an_abandoned_target_is_removed(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder) -> None:
    data = tmp_path / "data"
    ids = _filled(data, embedder, 3)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reembed(settings_for(data, embedder=PREFIXED), stop, embedder=prefixed)
    assert reembed_swap.staging(data).exists()
    doctor = check_lines(ok(memos(tmp_path, data, "doctor")).stdout)  # says so, with the way out
    verdict, detail = doctor["vectors"]
    assert verdict == "ok" and f"a re-embedding to {prefixed.model_id} stopped part-way" in detail
    result = reembed(settings_for(data), embedder=embedder)  # back to the model it has: the run is dropped
    assert not result.swapped and result.model == embedder.model_id and result.embedded == 0
    assert not reembed_swap.staging(data).exists() and not (data / reembed_swap.STATE_FILE).exists()
    with _opened(settings_for(data), embedder=embedder) as service:
        assert service.list_memories(ROOT_USER, cube_ids=[CUBE]).total == len(ids)


def test_refusals_name_what_to_change_and_change_nothing(
        tmp_path: Path, embedder: LocalOnnxEmbedder, openai_server: OpenAIServer) -> None:
    data = tmp_path / "data"
    _filled(data, embedder, 3)
    with pytest.raises(InvalidRequest) as caught:
        reembed(settings_for(data, "pgvector", "postgresql://127.0.0.1:1/none"))
    assert caught.value.details["field"] == "vector.backend"
    with pytest.raises(InvalidRequest) as caught:
        reembed(_openai(tmp_path / "nowhere", openai_server))
    assert caught.value.details["field"] == "--data-dir"
    assert not (tmp_path / "nowhere" / "catalog.sqlite3").exists()
    with _opened(settings_for(data), embedder=embedder), pytest.raises(StoreLocked):  # a server holds it
        reembed(_openai(data, openai_server))
    assert not openai_server.requests and not (data / reembed_swap.STATE_FILE).exists()


def test_the_command_prints_its_summary_as_json_and_moves_there_and_back(tmp_path: Path, embedder: LocalOnnxEmbedder,
                                                                 openai_server: OpenAIServer) -> None:
    data = tmp_path / "data"
    ids = _filled(data, embedder, 4)
    env = {"MEMOS_EMBEDDER__BACKEND": "openai", "MEMOS_EMBEDDER__MODEL": "embed",
           "MEMOS_EMBEDDER__BASE_URL": openai_server.url, "MEMOS_EMBEDDER__API_KEY": "k"}
    summary = json.loads(ok(memos(tmp_path, data, "reembed", **env)).stdout)
    assert summary["swapped"] is True and summary["memories"] == len(ids) and summary["dimension"] == 12
    again = json.loads(ok(memos(tmp_path, data, "reembed", **env)).stdout)
    assert again["swapped"] is False and again["embedded"] == 0
    back = json.loads(ok(memos(tmp_path, data, "reembed")).stdout)  # the packaged model again: a round trip
    assert back["swapped"] is True and back["previous_model"] == summary["model"] and back["dimension"] == 384
    assert back["model"] == embedder.model_id and back["memories"] == len(ids)


def test_migrate_refuses_a_directory_whose_swap_was_cut_short(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder, postgres_url: str) -> None:
    """migrate reads the directory without opening a service: it must not copy a half-swapped store
    (the new model's vectors under the old model's id, or no vectors at all)."""
    data = tmp_path / "data"
    _staged_in_full(data, embedder, prefixed)
    for step in ("with the old store moved aside", "with the new store moved in"):
        if step == "with the old store moved aside":
            os.replace(data / EDGE_DIR, data / f"{EDGE_DIR}{reembed_swap.REPLACED}")
        else:
            os.replace(reembed_swap.staging(data), data / EDGE_DIR)
        refused = memos(tmp_path, data, "migrate", "--to", postgres_url)
        assert refused.returncode == 2 and "re-embedding" in refused.stderr, (step, refused.stderr)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:  # nothing was made in the target
            assert not sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_a_new_dimension_of_the_same_model_is_a_new_model(tmp_path: Path, openai_server: OpenAIServer) -> None:
    data = tmp_path / "data"
    with _opened(_openai(data, openai_server)) as service:
        service.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
        ids = [m.id for m in service.add_memory(ROOT_USER, cube_id=CUBE, messages=_turns(4)).memories]
    narrower = _openai(data, openai_server)
    narrower = narrower.model_copy(update={"embedder": narrower.embedder.model_copy(update={"dimension": 8})})
    result = reembed(narrower)
    assert result.swapped and result.dimension == 8 and result.memories == len(ids) == result.embedded
    again = reembed(narrower)  # now it has it: nothing to do, and the summary still counts the memories
    assert not again.swapped and (again.memories, again.embedded) == (len(ids), 0)
    with _opened(narrower) as service:
        assert all(len(p.dense) == 8 for p in _points(service, ids).values())


def test_leftovers_of_a_removal_cut_short_are_removed_by_the_next_run(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder) -> None:
    data = tmp_path / "data"
    _filled(data, embedder, 3)
    for name in (f"{EDGE_DIR}{reembed_swap.STAGING}.doomed-1-1", f"{EDGE_DIR}{reembed_swap.REPLACED}.doomed-1-2"):
        (data / name).mkdir()
        (data / name / "segment").write_bytes(b"x" * 1000)  # a removal killed part-way leaves such a directory
    assert reembed(settings_for(data, embedder=PREFIXED), embedder=prefixed).swapped
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(EDGE_DIR)) == [EDGE_DIR]


def test_a_run_that_fails_before_it_stored_anything_leaves_nothing_behind(
        tmp_path: Path, embedder: LocalOnnxEmbedder, openai_server: OpenAIServer) -> None:
    data = tmp_path / "data"
    _filled(data, embedder, 3)
    before = sorted(p.name for p in data.iterdir())
    openai_server.broken_vectors = "ragged"  # the probe of one text reads 11 numbers, a batch is refused
    with pytest.raises(MemosError):
        reembed(_openai(data, openai_server))
    assert sorted(p.name for p in data.iterdir()) == before
    service = MemoryService.open(settings_for(data), embedder=embedder)
    service.close()


def test_an_export_imports_into_a_store_of_another_dimension_of_the_same_model(
        tmp_path: Path, openai_server: OpenAIServer) -> None:
    """The route reembed's refusal gives for the other backends: an import re-embeds an export made at
    another dimension, as it does one made by another model."""
    with _opened(_openai(tmp_path / "wide", openai_server)) as wide:
        wide.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
        wide.add_memory(ROOT_USER, cube_id=CUBE, messages=_turns(3))
        lines = list(export_cube(wide, ROOT_USER, CUBE))
    narrow_settings = _openai(tmp_path / "narrow", openai_server)
    narrow_settings = narrow_settings.model_copy(
        update={"embedder": narrow_settings.embedder.model_copy(update={"dimension": 8})})
    with _opened(narrow_settings) as narrow:
        narrow.create_cube(ROOT_USER, "Notes", cube_id=CUBE)
        assert check_export(narrow, lines) == "Notes"
        result = import_lines(narrow, ROOT_USER, lines, cube_id=CUBE)
        assert result.reembedded and result.memories == 3
        ids = [m.id for m in narrow.list_memories(ROOT_USER, cube_ids=[CUBE]).memories]
        assert len(ids) == 3 and all(len(p.dense) == 8 for p in _points(narrow, ids).values())


def test_a_catalog_without_its_dimension_is_refused_before_anything_is_written(
        tmp_path: Path, embedder: LocalOnnxEmbedder, prefixed: LocalOnnxEmbedder) -> None:
    data = tmp_path / "data"
    _filled(data, embedder, 3)
    with sqlite3.connect(data / "catalog.sqlite3") as db:  # a first start killed between its two records
        db.execute("DELETE FROM meta WHERE key = 'dimension'")
    db.close()
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(StorageError, match="dimension") as caught:
        reembed(settings_for(data, embedder=PREFIXED), embedder=prefixed)
    assert "doctor" in caught.value.message
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_full_disk_is_relieved_of_leftovers_a_removal_cut_short_left(
        tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    """A replaced store whose removal a stop cut short can hold as much as the store: on a disk below
    storage.min_free_bytes, the start-up that refuses to write must first remove it (it is garbage by its
    name), and then finds the room it needs."""
    data = tmp_path / "data"
    _filled(data, embedder, 3)
    leftover = data / f"{EDGE_DIR}{reembed_swap.REPLACED}.doomed-1-1"
    leftover.mkdir()
    with (leftover / "segment").open("wb") as out:  # written, not sparse: it takes the disk space it says
        for _ in range(256):
            out.write(os.urandom(2**20))
        out.flush()
        os.fsync(out.fileno())
    reserve = shutil.disk_usage(data).free + 128 * 2**20  # reached only once the 256 MiB go
    with _opened(settings_for(data, storage={"min_free_bytes": reserve}), embedder=embedder) as service:
        assert not service.read_only
        assert service.list_memories(ROOT_USER, cube_ids=[CUBE]).total == 4
    assert not leftover.exists()
