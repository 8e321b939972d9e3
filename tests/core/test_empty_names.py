"""An empty name is never "every": a conversation id, cube id, user id or tag given as "" (or a tag of
nothing visible) is refused with ``InvalidRequest`` naming the field, never read as the argument left
out. Before, ``clear_chat_history(conversation_id="")`` deleted the messages of every conversation of
every cube the user owns, and ``cube_id=""`` widened it to all of them; a filter on an empty id quietly
matched nothing; a filter on a tag written with spaces around it matched nothing although the tag is
stored without them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest


def _messages(service: MemoryService) -> int:
    cubes = [c.cube_id for c in service.list_cubes(ROOT_USER)]
    return sum(len(service.catalog.recent_messages(cubes, conversation, 1000)) for conversation in ("a", "b"))


def _chat(service: MemoryService) -> None:
    for conversation in ("a", "b"):
        service.add_memory(ROOT_USER, conversation_id=conversation, messages=[
            {"role": "user", "content": f"In conversation {conversation} I said the boat is blue."}])


@pytest.mark.parametrize("arguments, field", [({"conversation_id": ""}, "conversation_id"),
                                              ({"conversation_id": " "}, "conversation_id"),
                                              ({"conversation_id": "c" * 1_000_000}, "conversation_id"),
                                              ({"conversation_id": "a", "cube_id": ""}, "cube_id"),
                                              ({"conversation_id": "a", "user_id": ""}, "user_id")])
def test_clearing_chat_history_of_an_empty_name_is_refused_and_deletes_nothing(
        service: MemoryService, arguments: dict[str, str], field: str) -> None:
    _chat(service)
    assert _messages(service) == 2
    with pytest.raises(InvalidRequest) as refused:
        service.clear_chat_history(ROOT_USER, **arguments)
    assert refused.value.details.get("field") == field, refused.value.details
    assert _messages(service) == 2
    assert service.clear_chat_history(ROOT_USER, "a") == 1 and _messages(service) == 1


@pytest.mark.parametrize("filters, field", [({"conversation_id": ""}, "filters.conversation_id"),
                                            ({"user_id": ""}, "filters.user_id"),
                                            ({"tags": ["blue", " "]}, "filters.tags.1")])
def test_a_filter_on_an_empty_name_is_refused_naming_it(service: MemoryService, filters: dict[str, Any],
                                                        field: str) -> None:
    service.add_memory(ROOT_USER, memory_content="The boat is blue.", tags=["blue"])
    calls: list[Callable[[], object]] = [lambda: service.search(ROOT_USER, "boat", filters=filters),
                                         lambda: service.list_memories(ROOT_USER, filters=filters),
                                         lambda: service.delete_matching(ROOT_USER, filters)]
    for call in calls:
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert refused.value.details.get("field") == field, refused.value.details
    assert service.list_memories(ROOT_USER).total == 1


def test_a_tag_filter_is_read_as_tags_are_stored(service: MemoryService) -> None:
    """Tags are stored without the spaces around them (``checks.check_tags``); a filter's tags alike."""
    stored = service.add_memory(ROOT_USER, memory_content="The boat is blue.", tags=["  blue "]).memories[0]
    assert "blue" in stored.tags and "  blue " not in stored.tags
    found = service.list_memories(ROOT_USER, filters={"tags": [" blue  "]})
    assert [m.id for m in found.memories] == [stored.id]
    assert [m.id for m in service.search(ROOT_USER, "boat", filters={"tags": "blue "}).memories] == [stored.id]


def test_reading_an_empty_cube_id_is_refused_not_read_as_every_cube(service: MemoryService) -> None:
    service.add_memory(ROOT_USER, memory_content="The boat is blue.")
    for call in (lambda: service.list_memories(ROOT_USER, cube_ids=[""]),
                 lambda: service.search(ROOT_USER, "boat", cube_ids=[""]),
                 lambda: service.get_memory(ROOT_USER, service.list_memories(ROOT_USER).memories[0].id, "")):
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert refused.value.details.get("field") == "cube_id", refused.value.details


def test_deleting_an_entity_in_an_empty_cube_id_is_refused_and_deletes_nothing(service: MemoryService) -> None:
    """Before, ``cube_id=""`` deleted the entity from every cube the user may write."""
    from memos_mcp.core.graph.service import GraphService, TripleIn

    graphs = GraphService(service)
    second = service.create_cube(ROOT_USER, "second").cube_id
    for cube in (None, second):
        graphs.add_relations(ROOT_USER, [TripleIn(subject="Caroline", predicate="owns", object="the blue boat")],
                             cube_id=cube)
    with pytest.raises(InvalidRequest) as refused:
        graphs.delete_entity(ROOT_USER, "Caroline", cube_id="")
    assert refused.value.details.get("field") == "cube_id", refused.value.details
    assert sum(e.name == "Caroline" for e in graphs.entities(ROOT_USER)) == 2
