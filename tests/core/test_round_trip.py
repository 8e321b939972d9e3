"""An export imported into a fresh data directory holds everything the source cube held: the memories
(text, tags, metadata, sources, times, status), a history for each, the conversations' messages, and
the graph built from the memories, so that a search naming a person expands through it as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos_mcp.core.graph.memory import GraphMemory
from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory

TALK = [("Caroline", "I went to the LGBTQ support group yesterday with Melanie."),
        ("Melanie", "That's great, Caroline! I took the kids to Yellowstone last week."),
        ("Caroline", "I'm researching adoption agencies; Jon from the group recommended one."),
        ("Melanie", "Jon helped us too when we moved to Portland.")]


def memories(service: MemoryService, user: str) -> dict[str, dict[str, Any]]:
    listed = service.list_memories(user, size=200, filters={"status": ["activated", "archived"]}).memories
    return {m.id: m.model_dump(mode="json", exclude={"cube_id", "embedding", "ref_id"}) for m in listed}


def graph_of(service: MemoryService, cube_id: str) -> dict[tuple[str, str, str], set[str]]:
    graph = service.graph()
    assert isinstance(graph, GraphMemory)
    return {(r.subject, r.predicate, r.object): set(r.memory_ids) for r in graph.store.relations(cube_id, limit=10_000)}


def test_an_export_imported_into_a_fresh_data_dir_round_trips_memories_history_messages_and_graph(
        make_service: ServiceFactory, tmp_path: Path) -> None:
    source = make_service(tmp_path / "source", graph={"enabled": True})
    source.ensure_user("alice")
    cube = source.get_user("alice")[1][0].cube_id
    for number, half in enumerate((TALK[:2], TALK[2:]), start=1):
        source.add_memory("alice", messages=[{"role": "user", "content": text, "name": who} for who, text in half],
                          conversation_id=f"session-{number}", tags=["trip"], metadata={"source": "chat"})
    note = source.add_memory("alice", memory_content="Melanie's favourite trail is in Yellowstone.",
                             tags=["hiking"], metadata={"rating": 5}).memories[0]
    source.update_memory("alice", note.id, tags=["hiking", "favourite"])
    before = memories(source, "alice")
    linked_before = source.graph().expand(cube, "What did Caroline research?", 1)  # type: ignore[union-attr]
    lines = list(export_cube(source, "alice", cube))

    fresh = make_service(tmp_path / "fresh", graph={"enabled": True})
    fresh.ensure_user("alice")
    result = import_lines(fresh, "alice", lines)

    assert (result.memories, result.messages, result.renamed) == (len(before), len(TALK), 0)
    assert memories(fresh, "alice") == before
    for memory_id in before:
        assert [e.event for e in fresh.history("alice", memory_id)] == ["ADD"]
    for conversation in ("session-1", "session-2"):
        def said(service: MemoryService) -> list[dict[str, Any]]:
            return [m.model_dump(mode="json", exclude={"cube_id"})
                    for m in service.get_messages("alice", conversation)]  # noqa: B023
        assert said(fresh) == said(source)
    assert graph_of(fresh, result.cube_id) == graph_of(source, cube) != {}
    linked = fresh.graph().expand(result.cube_id, "What did Caroline research?", 1)  # type: ignore[union-attr]
    assert linked.links == linked_before.links and linked.people == ("caroline",)
    hits = fresh.search("alice", "What did Caroline research?").memories
    assert any("adoption" in h.memory for h in hits)

    import_lines(fresh, "alice", lines)  # again: nothing doubles, the graph included
    assert memories(fresh, "alice") == before and graph_of(fresh, result.cube_id) == graph_of(source, cube)

