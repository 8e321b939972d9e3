"""Adding memories: messages, memory_content, doc_path; de-duplication; bad input changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.core.models import MemoryKind, MemoryType, SourceKind
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, NotFound, PathNotAllowed, PayloadTooLarge
from tests.conftest import ServiceFactory


def count(service: MemoryService, user: str = "alice") -> int:
    return service.list_memories(user, filters={"status": ["activated", "archived"]}).total


@pytest.fixture
def alice(service: MemoryService) -> MemoryService:
    service.ensure_user("alice")
    return service


def test_user_turns_become_memories_with_their_sources(alice: MemoryService) -> None:
    result = alice.add_memory("alice", conversation_id="trip", messages=[
        {"role": "user", "content": "We are flying to Lisbon on Friday.", "id": "m-1",
         "chat_time": "2025-03-04T10:00:00Z"},
        {"role": "assistant", "content": "Have a great trip!", "id": "m-2"},
        {"role": "user", "content": "My sister Ana lives there.", "id": "m-3"},
    ])
    facts = [m for m in result.memories if m.kind is MemoryKind.FACT]
    assert [m.memory for m in facts] == ["We are flying to Lisbon on Friday.", "My sister Ana lives there."]
    first = facts[0]
    assert first.sources[0].message_id == "m-1"
    assert first.sources[0].conversation_id == "trip"
    assert first.sources[0].role == "user"
    assert first.event_time is not None and first.event_time.isoformat().startswith("2025-03-04T10:00")
    assert first.conversation_id == "trip" and first.source is SourceKind.CHAT
    assert first.key and first.tags and first.memory_type is MemoryType.USER
    assert len(result.message_ids) == 3
    stored = alice.get_messages("alice", "trip")
    assert [m.content for m in stored][1] == "Have a great trip!"
    assert [m.message_id for m in stored] == ["m-1", "m-2", "m-3"]


def test_explicit_preferences_also_become_preference_memories(alice: MemoryService) -> None:
    result = alice.add_memory("alice", messages=[
        {"role": "user", "content": "I can't stand loud restaurants. The weather is nice."}])
    prefs = [m for m in result.memories if m.kind is MemoryKind.PREFERENCE]
    assert [p.memory for p in prefs] == ["I can't stand loud restaurants."]
    assert prefs[0].preference_type == "explicit_preference" and prefs[0].reasoning


def test_memory_content_becomes_one_memory_and_long_text_is_chunked(make_service: ServiceFactory) -> None:
    service = make_service(chunk_size=200)
    service.ensure_user("alice")
    one = service.add_memory("alice", memory_content="The office wifi password rotates monthly.",
                             metadata={"origin": "note", "pinned": True}, tags=["office"])
    assert len(one.memories) == 1 and one.memories[0].metadata == {"origin": "note", "pinned": True}
    assert "office" in one.memories[0].tags and one.memories[0].source is SourceKind.API
    long_text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))
    many = service.add_memory("alice", memory_content=long_text)
    assert len(many.memories) > 1
    assert all(len(m.memory) <= 200 for m in many.memories)
    assert [m.sources[0].chunk_index for m in many.memories] == list(range(len(many.memories)))


def test_identical_text_is_not_added_twice(alice: MemoryService) -> None:
    first = alice.add_memory("alice", memory_content="I keep my passport in the blue drawer.")
    again = alice.add_memory("alice", memory_content="I keep my passport in the blue drawer.")
    assert again.added == [] and again.deduplicated == [first.memories[0].id]
    assert again.memories[0].id == first.memories[0].id
    assert count(alice) == 1


@pytest.mark.parametrize("first, second", [
    ("My wifi password is Abc123XyZ", "My wifi password is abc123xyz"),  # case
    ("The room is 10²", "The room is 102"),  # compatibility characters (NFKC)
    ("The amount is １００", "The amount is 100"),  # full width
    ("Is the deploy frozen?", "Is the deploy frozen."),  # end punctuation
    ("Ship it", "Ship it!"),
    ("def f():\n    return 1", "def f():\n return 1"),  # inner whitespace (indentation)
    ("a  b", "a b"),
])
def test_text_that_differs_in_any_character_is_its_own_memory(alice: MemoryService, first: str,
                                                              second: str) -> None:
    """De-duplication folded case, compatibility forms, whitespace and end punctuation: the second text
    was answered as a duplicate of the first and never stored (a password lost its case)."""
    one = alice.add_memory("alice", memory_content=first)
    two = alice.add_memory("alice", memory_content=second)
    assert two.added and not two.deduplicated and two.memories[0].id != one.memories[0].id
    stored = {m.memory for m in alice.list_memories("alice").memories}
    assert {first, second} <= stored
    assert alice.add_memory("alice", memory_content=second).deduplicated == [two.memories[0].id]


@pytest.mark.parametrize("first, second", [
    ({"conversation_id": "Conv-1"}, {"conversation_id": "conv-1"}),
    ({"metadata": {"amount": "１００"}}, {"metadata": {"amount": "100"}}),
    ({"metadata": {"Owner": "ana"}}, {"metadata": {"owner": "ana"}}),
    ({"metadata": {"note": "A b"}}, {"metadata": {"note": "a  b"}}),
])
def test_the_same_text_in_another_conversation_or_with_other_metadata_is_its_own_memory(
        alice: MemoryService, first: dict[str, Any], second: dict[str, Any]) -> None:
    """The de-duplication key folded the conversation id and the metadata as text: a fact added in
    conversation ``conv-1`` after the same one in ``Conv-1`` was stored nowhere."""
    one = alice.add_memory("alice", memory_content="Deploy done.", **first)
    two = alice.add_memory("alice", memory_content="Deploy done.", **second)
    assert two.added and two.memories[0].id != one.memories[0].id
    if "conversation_id" in second:
        listed = alice.list_memories("alice", filters={"conversation_id": second["conversation_id"]}).memories
    else:
        listed = alice.list_memories("alice", filters={"metadata": second["metadata"]}).memories
    assert [m.id for m in listed] == [two.memories[0].id]


def test_metadata_of_another_json_type_is_another_memory_never_merged_into_the_first(alice: MemoryService) -> None:
    """Python's ``True == 1`` merged {"pinned": true} into a memory of {"pinned": 1}: the caller's value was
    lost and a filter on it found nothing."""
    for first_value, second_value in ((1, True), (0, False), ("1", 1), (1, [1])):
        text = f"The boiler code is {first_value!r}-{second_value!r}."
        first = alice.add_memory("alice", memory_content=text, metadata={"pinned": first_value})
        second = alice.add_memory("alice", memory_content=text, metadata={"pinned": second_value})
        assert second.added and second.memories[0].id != first.memories[0].id, (first_value, second_value)
        if not isinstance(second_value, list):  # a filter matches scalars
            found = alice.list_memories("alice", filters={"metadata": {"pinned": second_value}}).memories
            assert second.memories[0].id in [m.id for m in found]
    again = alice.add_memory("alice", memory_content="The boiler code is 1-True.", metadata={"pinned": True})
    assert again.deduplicated and not again.added  # the same type and value is still one memory


def test_the_same_text_in_another_cube_is_a_separate_memory(alice: MemoryService) -> None:
    alice.create_cube("alice", "work", cube_id="alice-work")
    a = alice.add_memory("alice", memory_content="Standup is at nine.")
    b = alice.add_memory("alice", memory_content="Standup is at nine.", cube_id="alice-work")
    assert a.memories[0].id != b.memories[0].id and b.added


def test_doc_path_imports_document_chunks_from_an_import_root(make_service: ServiceFactory, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text("# Setup\n\nInstall the tool.\n\n" + "Run the checks daily. " * 30)
    (root / "data.json").write_text('{"owner": {"name": "Kim", "team": "infra"}}')
    service = make_service(import_roots=[root], chunk_size=300)
    service.ensure_user("alice")
    guide = service.add_memory("alice", doc_path="guide.md")
    assert len(guide.memories) > 1
    assert all(m.kind is MemoryKind.DOCUMENT and m.source is SourceKind.DOCUMENT for m in guide.memories)
    assert guide.memories[0].sources[0].doc_path == str((root / "guide.md").resolve())
    assert [m.sources[0].chunk_index for m in guide.memories] == list(range(len(guide.memories)))
    data = service.add_memory("alice", doc_path=str(root / "data.json"))
    assert "owner.name: Kim" in data.memories[0].memory


def test_doc_path_outside_the_import_roots_is_refused(make_service: ServiceFactory, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    (root / "link.txt").symlink_to(secret)
    service = make_service(import_roots=[root])
    service.ensure_user("alice")
    for path in ("../secret.txt", str(secret), "link.txt"):
        with pytest.raises(PathNotAllowed):
            service.add_memory("alice", doc_path=path)
    with pytest.raises(InvalidRequest):
        service.add_memory("alice", doc_path="missing.txt")
    assert count(service) == 0


@pytest.mark.parametrize("kwargs, error", [
    ({}, InvalidRequest),
    ({"memory_content": "a", "messages": [{"role": "user", "content": "b"}]}, InvalidRequest),
    ({"memory_content": "   "}, InvalidRequest),
    ({"memory_content": "x" * 501}, PayloadTooLarge),
    ({"messages": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "no"}]}, InvalidRequest),
    ({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": ""}]}, InvalidRequest),
    ({"memory_content": "fine", "metadata": {"bad key!": 1}}, InvalidRequest),
    ({"memory_content": "fine", "metadata": {"k": object()}}, InvalidRequest),
    ({"memory_content": "fine", "conversation_id": "no spaces allowed"}, InvalidRequest),
    ({"memory_content": "fine", "cube_id": "no-such-cube"}, NotFound),
    ({"memory_content": "fine", "chat_time": "not a time"}, InvalidRequest),
    ({"memory_content": "fine", "chat_time": "INF"}, InvalidRequest),
    ({"memory_content": "fine", "chat_time": 1e300}, InvalidRequest),
    ({"messages": [{"role": "user", "content": "ok", "chat_time": "nan"}]}, InvalidRequest),
    ({"memory_content": "broken \ud800 text"}, InvalidRequest),
])
def test_bad_input_raises_a_typed_error_and_changes_nothing(make_service: ServiceFactory, kwargs: dict[str, object],
                                                            error: type[Exception]) -> None:
    service = make_service(max_memory_size=500)
    service.ensure_user("alice")
    service.add_memory("alice", memory_content="An existing memory.")
    with pytest.raises(error) as caught:
        service.add_memory("alice", **kwargs)  # type: ignore[arg-type]
    assert caught.value.code and str(caught.value)  # type: ignore[attr-defined]
    assert count(service) == 1
    assert len(service.get_messages("alice", "default")) == 0


def test_an_unknown_user_cannot_add(service: MemoryService) -> None:
    with pytest.raises(NotFound, match="user 'ghost'"):
        service.add_memory("ghost", memory_content="hello")


def test_progress_is_reported_for_long_imports(make_service: ServiceFactory) -> None:
    service = make_service(chunk_size=120)
    service.ensure_user("alice")
    seen: list[tuple[int, int]] = []
    text = " ".join(f"Fact {i} is about item {i}." for i in range(200))
    service.add_memory("alice", memory_content=text, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_no_process_output_reaches_stdout_while_adding(alice: MemoryService, capfd: pytest.CaptureFixture[str]) -> None:
    alice.add_memory("alice", messages=[{"role": "user", "content": "I love green tea."}])
    alice.search("alice", "tea")
    assert capfd.readouterr().out == ""
    assert os.environ.get("MEMOS_CONFIG") is None


def test_every_add_records_a_task_its_author_can_read(alice: MemoryService) -> None:
    alice.ensure_user("bob")
    result = alice.add_memory("alice", memory_content="The boat is moored at pier 4.")
    again = alice.add_memory("alice", memory_content="The boat is moored at pier 4.")
    task = alice.get_task("alice", str(result.task_id))
    assert (task.status, task.added, task.deduplicated) == ("done", result.added, [])
    assert alice.get_task("alice", str(again.task_id)).deduplicated == result.added
    assert alice.get_task("root", str(result.task_id)).user_id == "alice"
    with pytest.raises(NotFound):
        alice.get_task("bob", str(result.task_id))
    with pytest.raises(NotFound):
        alice.get_task("alice", "no-such-task")
