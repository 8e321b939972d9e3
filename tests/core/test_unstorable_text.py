"""Every text a caller gives that a store keeps (tags, names, a message's name and id), not only a
memory's text and metadata: one holding a NUL character (U+0000, which PostgreSQL's text and jsonb
cannot keep) or a lone surrogate (JSON's ``"\\ud800"``: no valid UTF-8 encodes it) is refused with
``InvalidRequest`` naming the field, on every backend alike, and nothing is stored. Before, a lone
surrogate in a tag raised a TypeError from the vector store's encoder (a 500 on the faces), and a NUL
in a cube's name was stored on SQLite and failed on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, PayloadTooLarge

BAD = {"nul": "left\x00right", "surrogate": "lone \ud800 half"}

Call = Callable[[MemoryService, str], object]

CALLS: dict[str, tuple[Call, str]] = {
    "tag of an add": (lambda s, bad: s.add_memory(ROOT_USER, memory_content="The gate code is 1234.",
                                                   tags=["ok", bad]), "tags.1"),
    "tag of messages": (lambda s, bad: s.add_memory(ROOT_USER, messages=[{"role": "user", "content": "I like tea."}],
                                                     tags=[bad]), "tags.0"),
    "message name": (lambda s, bad: s.add_memory(ROOT_USER, messages=[
        {"role": "user", "content": "I like tea."}, {"role": "user", "content": "And cake.", "name": bad}]),
        "messages.1.name"),
    "message id": (lambda s, bad: s.add_memory(ROOT_USER, messages=[
        {"role": "user", "content": "I like tea.", "message_id": bad}]), "messages.0.message_id"),
    "cube name": (lambda s, bad: s.create_cube(ROOT_USER, bad), "name"),
    "user name": (lambda s, bad: s.register_user(ROOT_USER, "someone", bad), "user_name"),
}


def _stored(service: MemoryService) -> tuple[int, int, int, int]:
    cubes = [c.cube_id for c in service.list_cubes(ROOT_USER)]
    memories = service.list_memories(ROOT_USER, cube_ids=cubes, size=200).total
    messages = sum(len(service.catalog.recent_messages([c], "default", 1000)) for c in cubes)
    return len(cubes), len(service.list_users(ROOT_USER)), memories, messages


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("what", sorted(CALLS))
def test_unstorable_text_is_refused_naming_the_field(service: MemoryService, what: str, kind: str) -> None:
    call, field = CALLS[what]
    service.add_memory(ROOT_USER, memory_content="Something to keep: the boat is blue.")
    before = _stored(service)
    with pytest.raises(InvalidRequest) as refused:
        call(service, BAD[kind])
    assert refused.value.details.get("field") == field, refused.value.details
    assert field in refused.value.message
    assert _stored(service) == before


def test_a_user_or_cube_name_or_a_tag_beyond_its_limit_is_refused(service: MemoryService) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        service.register_user(ROOT_USER, "someone", "n" * 201)
    assert refused.value.details["field"] == "user_name"
    with pytest.raises(PayloadTooLarge) as refused:
        service.add_memory(ROOT_USER, memory_content="The boat is blue.", tags=["t" * 201])
    assert refused.value.details["field"] == "tags.0"
    with pytest.raises(PayloadTooLarge) as refused:  # it was cut to 200 characters without a word
        service.create_cube(ROOT_USER, "c" * 201)
    assert refused.value.details["field"] == "name"
    assert len(service.list_cubes(ROOT_USER)) == 1
    assert [u.user_id for u in service.list_users(ROOT_USER)] == [ROOT_USER]
    assert service.list_memories(ROOT_USER).total == 0


def test_the_default_cube_of_a_user_with_the_longest_name_has_a_name_a_cube_may_have(
        service: MemoryService) -> None:
    """It was "<200 characters>'s memories" (211), so its own export could not be imported."""
    _, default = service.register_user(ROOT_USER, "longname", "n" * 200)
    assert default.name == "n" * 189 + "'s memories"


@pytest.mark.parametrize("kind", sorted(BAD))
def test_unstorable_tag_of_an_update_is_refused_and_the_memory_kept(service: MemoryService, kind: str) -> None:
    memory = service.add_memory(ROOT_USER, memory_content="The boat is blue.", tags=["boat"]).memories[0]
    assert "boat" in memory.tags
    with pytest.raises(InvalidRequest) as refused:
        service.update_memory(ROOT_USER, memory.id, tags=["fine", BAD[kind]])
    assert refused.value.details.get("field") == "tags.1"
    kept = service.get_memory(ROOT_USER, memory.id)
    assert (kept.memory, kept.tags) == ("The boat is blue.", memory.tags)


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("filters, field", [({"tags": ["ok", "{bad}"]}, "filters.tags"),
                                            ({"conversation_id": "{bad}"}, "filters.conversation_id"),
                                            ({"user_id": "{bad}"}, "filters.user_id"),
                                            ({"metadata": {"agent_id": "{bad}"}}, "filters.metadata")])
def test_a_filter_on_text_no_store_keeps_is_refused_naming_it(service: MemoryService, kind: str,
                                                              filters: dict[str, object], field: str) -> None:
    """No stored value can equal it, and PostgreSQL cannot take it as a parameter: a search, a listing or
    a delete by such a filter is refused on every backend, and deletes nothing."""
    service.add_memory(ROOT_USER, memory_content="The boat is blue.", metadata={"agent_id": "a"})
    bad = {k: ([t.replace("{bad}", BAD[kind]) for t in v] if isinstance(v, list) else
               {m: w.replace("{bad}", BAD[kind]) for m, w in v.items()} if isinstance(v, dict) else
               str(v).replace("{bad}", BAD[kind])) for k, v in filters.items()}
    for call in (lambda: service.search(ROOT_USER, "boat", filters=bad),
                 lambda: service.list_memories(ROOT_USER, filters=bad),
                 lambda: service.delete_matching(ROOT_USER, bad)):
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert str(refused.value.details.get("field", "")).startswith(field), refused.value.details
    assert service.list_memories(ROOT_USER).total == 1
