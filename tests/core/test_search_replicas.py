"""Search on replicas of one shared service (two services on one PostgreSQL: catalog and pgvector, each
with its own process state, as replicas are): what one replica writes, the other's next search sees at
once, in both passes (facts, preferences), with each hit's fields as stored now. Nothing a search reads
(the user, the cubes, whether any preference exists, the hits' payloads) may come from a process-local
copy that the other replica's write leaves stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from memos_mcp.core.models import MemoryKind
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import Forbidden
from tests.conftest import ServiceFactory

QUESTION = "which outdoor sports do I love"


@pytest.fixture
def backend() -> str:
    return "pgvector+postgresql"


@pytest.fixture
def replicas(make_service: ServiceFactory, tmp_path: Path) -> tuple[MemoryService, MemoryService]:
    first = make_service(tmp_path / "first")
    second = make_service(tmp_path / "second", database_of=tmp_path / "first")
    first.ensure_user("alice")
    first.add_memory("alice", memory_content="The quarterly budget review is on 14 March.")
    return first, second


def test_a_preference_added_through_one_replica_is_found_by_the_others_next_search(
        replicas: tuple[MemoryService, MemoryService]) -> None:
    first, second = replicas
    assert first.search("alice", QUESTION).preferences == []  # no preference in the cube yet

    second.add_memory("alice", conversation_id="chat-1", messages=[
        {"role": "user", "content": "I love kayaking on mountain lakes."}])

    found = first.search("alice", QUESTION).preferences
    assert [h.kind for h in found] == [MemoryKind.PREFERENCE]
    assert "kayaking" in found[0].memory


def test_a_preference_changed_or_deleted_through_one_replica_reads_so_in_the_others_next_search(
        replicas: tuple[MemoryService, MemoryService]) -> None:
    first, second = replicas
    second.add_memory("alice", conversation_id="chat-1", messages=[
        {"role": "user", "content": "I love kayaking on mountain lakes."}])
    (hit,) = first.search("alice", QUESTION).preferences

    second.update_memory("alice", hit.id, memory="I love kayaking on mountain lakes and rivers.",
                         tags=["kayak"], metadata={"since": 2020})
    (changed,) = first.search("alice", QUESTION).preferences
    assert (changed.id, changed.memory, changed.metadata) == (hit.id, "I love kayaking on mountain lakes and rivers.",
                                                              {"since": 2020})
    assert "kayak" in changed.tags

    second.delete_memory("alice", hit.id)
    assert first.search("alice", QUESTION).preferences == []


def test_a_share_withdrawn_through_one_replica_ends_the_searches_through_the_other(
        replicas: tuple[MemoryService, MemoryService]) -> None:
    first, second = replicas
    cube_id = first.list_cubes("alice")[0].cube_id
    first.ensure_user("bob")
    first.share_cube("alice", cube_id, "bob")
    first.accept_share("bob", cube_id)
    assert first.search("bob", "budget review").memories

    second.unshare_cube("alice", cube_id, "bob")

    assert first.search("bob", "budget review").memories == []  # no longer in bob's scope
    with pytest.raises(Forbidden):
        first.search("bob", "budget review", cube_ids=[cube_id])
