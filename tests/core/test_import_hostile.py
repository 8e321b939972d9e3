"""Imports of export files an outside tester crafted (``portability``): an import never rewrites a memory
a cube already holds, never takes another cube's memory id, never writes in another user's name, and a
record a hand-edited file got wrong is refused naming its line and field, with nothing stored."""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.models import Permission
from memos_mcp.core.portability import check_export, export_cube, export_lines, import_lines
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, MemosError, NotFound, PayloadTooLarge


def _users(service: MemoryService) -> None:
    for user in ("alice", "bob"):
        service.register_user(ROOT_USER, user)
    service.create_cube("alice", "Alice's notes", cube_id="alicecube")
    service.create_cube("bob", "Bob's notes", cube_id="bobcube")


def _export(service: MemoryService, actor: str, cube_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in export_cube(service, actor, cube_id)]


def _lines(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) + "\n" for r in records]


def _texts(service: MemoryService, actor: str, cube_id: str) -> list[str]:
    return sorted(m.memory for m in service.list_memories(actor, cube_ids=[cube_id], size=200).memories)


def test_an_import_never_rewrites_a_memory_the_cube_holds(service: MemoryService) -> None:
    """Bob, who may write to alice's shared cube, re-imports its export with one memory's text, author and
    time changed: before, the memory took the file's text while its history kept alice's ADD of the old
    one, and alice's later add of the old text was de-duplicated onto the rewritten memory."""
    _users(service)
    original = service.add_memory("alice", cube_id="alicecube", memory_content="The invoice total is 100 EUR.")
    service.share_cube("alice", "alicecube", "bob", Permission.WRITE)
    service.accept_share("bob", "alicecube")
    header, *records = _export(service, "bob", "alicecube")
    records[0] |= {"memory": "The invoice total is 900 EUR.", "created_at": "2020-01-01T00:00:00Z"}
    result = import_lines(service, "bob", _lines([header, *records]), "alicecube")
    assert (result.memories, result.kept) == (0, 1)
    memory = service.get_memory("alice", original.added[0])
    assert (memory.memory, memory.user_id) == ("The invoice total is 100 EUR.", "alice")
    assert [e.new_memory for e in service.history("alice", memory.id)] == ["The invoice total is 100 EUR."]
    again = service.add_memory("alice", cube_id="alicecube", memory_content="The invoice total is 100 EUR.")
    assert again.deduplicated == [memory.id]


def test_an_id_derived_for_one_cube_that_another_cube_holds_is_not_taken(service: MemoryService) -> None:
    """An import into bob's cube of an id another cube holds derives a new id from cube and id; alice had
    imported a memory under exactly that derived id, and before, bob's import overwrote her memory."""
    _users(service)
    service.create_cube("bob", "Bob's other notes", cube_id="bobcube2")
    held = service.add_memory("bob", cube_id="bobcube", memory_content="Bob's note on the boat.").added[0]
    header, record = _export(service, "bob", "bobcube")
    derived = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bobcube2/{held}"))
    planted = {**record, "id": derived, "memory": "Alice's diary: the key is under the mat."}
    import_lines(service, "alice", _lines([header, planted]), "alicecube")
    message = {"type": "message", "id": str(uuid.uuid4()), "conversation_id": "c", "user_id": "bob",
               "role": "user", "content": "Hello there.", "created_at": "2024-01-01T00:00:00Z"}
    import_lines(service, "bob", _lines([header, message]), "bobcube")
    import_lines(service, "alice", _lines([header, {**message, "id": str(uuid.uuid5(
        uuid.NAMESPACE_URL, f"bobcube2/{message['id']}")), "content": "Alice's own words."}]), "alicecube")

    result = import_lines(service, "bob", _lines([header, record, message]), "bobcube2")
    assert (result.memories, result.messages, result.renamed) == (1, 1, 2)
    assert _texts(service, "alice", "alicecube") == ["Alice's diary: the key is under the mat."]
    assert service.get_memory("alice", derived).cube_id == "alicecube"
    assert _texts(service, "bob", "bobcube2") == ["Bob's note on the boat."]
    said = {m.content for m in service.catalog.recent_messages(["alicecube"], "c", 10)}
    assert said == {"Alice's own words."}
    assert [m.content for m in service.catalog.recent_messages(["bobcube2"], "c", 10)] == ["Hello there."]
    again = import_lines(service, "bob", _lines([header, record, message]), "bobcube2")  # idempotent still
    assert (again.memories, again.kept, again.messages) == (0, 1, 0)


def test_an_import_writes_in_the_importers_name_unless_an_admin_imports(service: MemoryService) -> None:
    _users(service)
    service.add_memory("alice", cube_id="alicecube", memory_content="Alice keeps bees.")
    header, record = _export(service, "alice", "alicecube")
    message = {"type": "message", "id": str(uuid.uuid4()), "conversation_id": "c", "user_id": "alice",
               "role": "user", "content": "Hello there.", "created_at": "2024-01-01T00:00:00Z"}
    import_lines(service, "bob", _lines([header, record, message]), "bobcube")
    (memory,) = service.list_memories("bob", cube_ids=["bobcube"]).memories
    assert memory.user_id == "bob"
    assert [m.user_id for m in service.catalog.recent_messages(["bobcube"], "c", 10)] == ["bob"]
    service.create_cube(ROOT_USER, "restored", cube_id="restored")
    import_lines(service, ROOT_USER, _lines([header, record]), "restored")
    assert [m.user_id for m in service.list_memories(ROOT_USER, cube_ids=["restored"]).memories] == ["alice"]


def _hostile(header: dict[str, Any], memory: dict[str, Any], service: MemoryService) -> list[
        tuple[str, list[dict[str, Any]], type[MemosError], str]]:
    longest = service.settings.max_memory_size
    message = {"type": "message", "id": str(uuid.uuid4()), "conversation_id": "c", "user_id": "alice",
               "role": "user", "content": "Hello there.", "created_at": "2024-01-01T00:00:00Z"}
    return [
        ("count as text", [{**header, "memories": "abc"}, memory], InvalidRequest, "line 1: memories"),
        ("count beyond a float", [{**header, "memories": 1e308 * 10}, memory], InvalidRequest, "line 1: memories"),
        ("count as list", [{**header, "memories": [1]}, memory], InvalidRequest, "line 1: memories"),
        ("index as text", [header, {**memory, "index": "abc"}], InvalidRequest, "line 2: index"),
        ("index as list", [header, {**memory, "index": [1]}], InvalidRequest, "line 2: index"),
        ("speaker as number", [header, {**memory, "index": {"speaker": 5}}], InvalidRequest, "line 2: index.speaker"),
        ("unknown index field", [header, {**memory, "index": {"colour": "red"}}], InvalidRequest, "line 2: index"),
        ("memory id twice", [header, memory, {**memory, "memory": "Another text."}], InvalidRequest,
         "line 3: this memory has the id"),
        ("message id twice", [header, message, {**message, "content": "Again."}], InvalidRequest,
         "line 3: this message has the id"),
        ("long key", [header, {**memory, "key": "k" * 100_000}], PayloadTooLarge, "line 2: key has 100000"),
        ("long background", [header, {**memory, "background": "b" * (longest + 1)}], PayloadTooLarge,
         "line 2: background"),
        ("long reasoning", [header, {**memory, "reasoning": "r" * (longest + 1)}], PayloadTooLarge,
         "line 2: reasoning"),
        ("long context", [header, {**memory, "index": {"context": "c" * (7 * longest)}}], PayloadTooLarge,
         "line 2: index.context"),
        ("many tags", [header, {**memory, "tags": [f"t{i}" for i in range(500)]}], PayloadTooLarge, "line 2: tags"),
        ("long tag", [header, {**memory, "tags": ["t" * 100_000]}], PayloadTooLarge, "line 2: tags.0"),
        ("many sources", [header, {**memory, "sources": [{"type": "api"}] * 51}], PayloadTooLarge,
         "line 2: sources"),
        ("long message name", [header, {**message, "name": "n" * 100_000}], PayloadTooLarge, "line 2: name"),
        ("long message_id", [header, {**message, "message_id": "m" * 100_000}], PayloadTooLarge,
         "line 2: message_id"),
        ("unknown role", [header, {**message, "role": "hacker"}], InvalidRequest, "line 2: role"),
        ("empty author", [header, {**memory, "user_id": ""}], InvalidRequest, "line 2: user_id"),
        ("long author", [header, {**memory, "user_id": "u" * 300_000}], InvalidRequest, "line 2: user_id"),
        ("odd message author", [header, {**message, "user_id": "a/b c"}], InvalidRequest, "line 2: user_id"),
        ("source role", [header, {**memory, "sources": [{"type": "chat", "role": "wizard"}]}], InvalidRequest,
         "line 2: sources.0.role"),
        ("long source content", [header, {**memory, "sources": [{"type": "chat", "content": "c" * (longest + 1)}]}],
         PayloadTooLarge, "line 2: sources.0.content"),
        ("long source name", [header, {**memory, "sources": [{"type": "chat", "name": "n" * 5000}]}],
         PayloadTooLarge, "line 2: sources.0.name"),
        ("big source extra", [header, {**memory, "sources": [{"type": "chat", "note": "x" * 20_000}]}],
         PayloadTooLarge, "line 2: sources.0.(other fields)"),
        # it was stored as 1e+30 and every read of the memory failed (a 500 on every face, a cut export)
        ("huge chunk index", [header, {**memory, "sources": [{"type": "document", "doc_path": "/a",
                                                               "chunk_index": 10**30}]}],
         InvalidRequest, "line 2: sources.0.chunk_index"),
        ("huge number in a source", [header, {**memory, "sources": [{"type": "chat", "seq": 10**30}]}],
         InvalidRequest, "line 2: sources.0.seq"),
        ("message id path", [header, {**message, "id": "../../etc"}], InvalidRequest, "line 2: id '../../etc'"),
        ("long message id", [header, {**message, "id": "m" * 300}], InvalidRequest, "line 2: id"),
    ]


def test_hostile_records_are_refused_naming_line_and_field_and_store_nothing(service: MemoryService) -> None:
    _users(service)
    service.add_memory("alice", cube_id="alicecube", memory_content="Alice keeps bees.")
    header, memory = _export(service, "alice", "alicecube")
    memory = {**memory, "id": str(uuid.uuid4())}  # new to every cube
    for name, records, error, said in _hostile(header, memory, service):
        for read in (lambda lines: check_export(service, lines),
                     lambda lines: import_lines(service, "bob", lines, "bobcube")):
            with pytest.raises(error) as refused:
                read(_lines(records))
            assert refused.value.message.startswith(said), (name, refused.value.message)
    assert service.list_memories("bob", cube_ids=["bobcube"]).total == 0
    assert service.catalog.recent_messages(["bobcube"], "c", 10) == []


def test_an_endless_line_is_refused_before_it_is_held(service: MemoryService) -> None:
    endless = io.BytesIO(b'{"type": "header"}\n' + b"x" * 5_000_000)
    lines = export_lines(endless, 1_000_000)
    assert next(lines) == '{"type": "header"}\n'
    with pytest.raises(PayloadTooLarge) as refused:
        next(lines)
    assert refused.value.message == "line 2 is longer than 1000000 bytes"
    assert endless.tell() <= 1_000_020 + 1


@pytest.mark.parametrize("order", ["renamed first", "owner first"])
def test_two_records_of_one_file_never_share_an_id(service: MemoryService, order: str) -> None:
    """One record's id is held by another cube, so it is stored under an id derived from it; another
    record of the same file carries exactly that derived id as its own. Before, the second overwrote
    the first (two ADD events on one memory) and, for messages, the import failed with a 507 unique
    constraint after storing part of the file."""
    _users(service)
    held = service.add_memory("alice", cube_id="alicecube", memory_content="Alice's note.").added[0]
    header, record = _export(service, "alice", "alicecube")
    message = {"type": "message", "id": str(uuid.uuid4()), "conversation_id": "c", "user_id": "alice",
               "role": "user", "content": "Alice says hi.", "created_at": "2024-01-01T00:00:00Z"}
    import_lines(service, "alice", _lines([header, message]), "alicecube")
    derived = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bobcube/{held}"))
    said = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bobcube/{message['id']}"))
    renamed = [{**record, "memory": "Bob's first note."}, {**message, "content": "Bob's first word."}]
    owners = [{**record, "id": derived, "memory": "Bob's second note."},
              {**message, "id": said, "content": "Bob's second word."}]
    lines = _lines([header, *(renamed + owners if order == "renamed first" else owners + renamed)])
    result = import_lines(service, "bob", lines, "bobcube")
    # renamed first: the owner's own id is taken by then, so it is renamed too
    assert (result.memories, result.messages, result.renamed) == (2, 2, 4 if order == "renamed first" else 2)
    assert _texts(service, "bob", "bobcube") == ["Bob's first note.", "Bob's second note."]
    assert sorted(m.content for m in service.catalog.recent_messages(["bobcube"], "c", 10)) == [
        "Bob's first word.", "Bob's second word."]
    assert _texts(service, "alice", "alicecube") == ["Alice's note."]
    assert all(len(service.history("bob", m.id)) == 1
               for m in service.list_memories("bob", cube_ids=["bobcube"]).memories)
    again = import_lines(service, "bob", lines, "bobcube")
    assert (again.memories, again.kept, again.messages) == (0, 2, 0)


def _file(service: MemoryService, cube_id: str, texts: dict[str, str]) -> list[str]:
    """An export of memories with the given ids and texts (its header as ``cube_id``'s)."""
    header, *_ = _export(service, ROOT_USER, cube_id)
    now = "2024-01-01T00:00:00Z"
    return _lines([header, *({"type": "memory", "id": i, "user_id": "bob", "memory": t, "created_at": now,
                               "updated_at": now} for i, t in texts.items())])


def _derived(cube_id: str, ident: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cube_id}/{ident}" if n == 0 else f"{cube_id}/{n}/{ident}"))


def test_an_import_run_again_after_the_other_cube_went_stores_nothing_twice(service: MemoryService) -> None:
    """Copied into bob's cube while alice's held the ids (so under derived ids), then alice's cube was
    deleted: before, the next run stored every memory again under its own, now free, id."""
    _users(service)
    service.add_memory("alice", cube_id="alicecube", memory_content="The ferry leaves at noon.")
    lines = [json.dumps(r) + "\n" for r in _export(service, "alice", "alicecube")]
    first = import_lines(service, "bob", lines, "bobcube")
    service.delete_cube("alice", "alicecube")
    again = import_lines(service, "bob", lines, "bobcube")
    assert (first.memories, first.renamed, again.memories, again.kept) == (1, 1, 0, 1)
    assert _texts(service, "bob", "bobcube") == ["The ferry leaves at noon."]


def test_a_record_whose_derived_ids_are_all_taken_is_stored_the_same_way_every_run(service: MemoryService) -> None:
    """The file holds the first eight ids derived for X as records of its own, and X, which another cube
    holds: before, X fell back to a random id, so every run stored it again."""
    _users(service)
    held = service.add_memory("alice", cube_id="alicecube", memory_content="Alice's note.").added[0]
    texts = {_derived("bobcube", held, n): f"Planted note {n}." for n in range(8)} | {held: "Bob's own note."}
    lines = _file(service, "bobcube", texts)
    runs = [import_lines(service, "bob", lines, "bobcube") for _ in range(3)]
    assert [(r.memories, r.kept) for r in runs] == [(9, 0), (0, 9), (0, 9)]
    assert len(_texts(service, "bob", "bobcube")) == 9


def test_a_record_stored_under_a_derived_id_is_kept_on_a_later_run_whatever_its_text(
        service: MemoryService) -> None:
    """As a record the cube holds under its own id is kept whatever the file says, so is one the cube
    holds under a derived id: restoring a backup again after its memory was edited stored it twice."""
    _users(service)
    held = service.add_memory("alice", cube_id="alicecube", memory_content="The ferry pilot is Omar.").added[0]
    lines = _file(service, "bobcube", {held: "The ferry pilot is Omar."})
    import_lines(service, "bob", lines, "bobcube")
    (stored,) = service.list_memories("bob", cube_ids=["bobcube"]).memories
    service.update_memory("bob", stored.id, memory="The ferry pilot is Omar (corrected).")
    again = import_lines(service, "bob", lines, "bobcube")
    assert (again.memories, again.kept) == (0, 1)
    assert _texts(service, "bob", "bobcube") == ["The ferry pilot is Omar (corrected)."]


@pytest.mark.parametrize("spelling", [str.upper, lambda i: i.replace("-", ""), lambda i: "{" + i + "}",
                                      lambda i: "urn:uuid:" + i], ids=["upper", "hex", "braces", "urn"])
def test_an_id_in_another_spelling_is_that_id(service: MemoryService, spelling: Callable[[str], str]) -> None:
    """The store keeps a UUID in one spelling; an import took "F01962EA-..." (alice's memory id in upper
    case) for a free id and overwrote alice's memory from another user's cube, with only a read share."""
    _users(service)
    held = service.add_memory("alice", cube_id="alicecube", memory_content="Alice's bank PIN is 1025.").added[0]
    service.share_cube("alice", "alicecube", "bob", Permission.READ)
    service.accept_share("bob", "alicecube")
    result = import_lines(service, "bob", _file(service, "bobcube", {spelling(held): "Bob's note."}), "bobcube")
    assert (result.memories, result.renamed) == (1, 1)
    assert service.get_memory("alice", held).memory == "Alice's bank PIN is 1025."
    assert _texts(service, "bob", "bobcube") == ["Bob's note."]
    with pytest.raises(InvalidRequest) as refused:  # one id in two spellings in one file
        import_lines(service, "bob", _file(service, "bobcube", {held: "One.", spelling(held): "Two."}), "bobcube")
    assert "this memory has the id" in refused.value.message


@pytest.mark.parametrize("vector", [[1e39] * 384, [1e-300] * 384, [0.0] * 383 + [3.5e38], [1e38] * 384],
                         ids=["beyond float32", "below float32", "one huge", "norm beyond float32"])
def test_an_imported_embedding_is_kept_as_a_unit_vector_the_store_can_hold(service: MemoryService,
                                                                           vector: list[float]) -> None:
    """The store keeps 32-bit floats: 1e39 became NaN (and the export then held invalid JSON), 1e-300
    became zero (the memory was never found by meaning, and its export could not be imported)."""
    _users(service)
    service.add_memory("bob", cube_id="bobcube", memory_content="Seed.")
    header, record = _export(service, "bob", "bobcube")
    assert header["dimension"] == len(vector)
    planted = {**record, "id": str(uuid.uuid4()), "memory": "The lighthouse keeper is Ada.", "embedding": vector}
    import_lines(service, "bob", _lines([header, planted]), "bobcube")
    stored = service.get_memory("bob", planted["id"], with_embedding=True)
    assert stored.embedding is not None and math.isclose(math.fsum(x * x for x in stored.embedding), 1.0,
                                                         rel_tol=1e-4)
    exported = list(export_cube(service, "bob", "bobcube"))
    assert all(math.isfinite(x) for line in exported for x in json.loads(line).get("embedding") or [])
    service.create_cube("bob", "Restored", cube_id="restored")
    assert import_lines(service, "bob", [line + "\n" for line in exported], "restored").memories == 2


def test_an_import_never_reuses_the_id_of_a_memory_deleted_from_another_cube(service: MemoryService) -> None:
    """Bob shared a cube read-only with alice, who kept its export; bob deleted a memory, and alice
    imported her copy into her own cube. Before, the memory kept its id (no cube held it any more), so the
    id's history mixed both cubes: bob's memory_history showed alice's later, private edits."""
    _users(service)
    service.share_cube("bob", "bobcube", "alice", Permission.READ)
    service.accept_share("alice", "bobcube")
    doomed = service.add_memory("bob", cube_id="bobcube", memory_content="Team offsite is in Porto.").added[0]
    lines = _lines(_export(service, "alice", "bobcube"))
    service.delete_memory("bob", doomed)

    result = import_lines(service, "alice", lines, "alicecube")
    assert (result.memories, result.renamed) == (1, 1)
    copy, = service.list_memories("alice", cube_ids=["alicecube"]).memories
    assert copy.id != doomed
    service.update_memory("alice", copy.id, memory="Alice's private note: interviewing elsewhere in May.")
    assert [(e.cube_id, e.event) for e in service.history("bob", doomed)] == [("bobcube", "ADD"), ("bobcube", "DELETE")]
    assert [e.event for e in service.history("alice", copy.id)] == ["ADD", "UPDATE"]


def test_an_import_tells_a_deleted_id_of_another_cube_from_a_held_one_no_better_than_from_a_fresh_one(
        service: MemoryService) -> None:
    """Whether an import keeps or renames an id must not say whether another cube still holds it: a
    former reader of bob's cube could watch his memories come and go. Ids bob holds and ids he deleted
    are both renamed."""
    _users(service)
    held, gone = (service.add_memory("bob", cube_id="bobcube", memory_content=text).added[0]
                  for text in ("Bob's kept note.", "Bob's deleted note."))
    service.delete_memory("bob", gone)
    fresh = str(uuid.uuid4())
    lines = _file(service, "alicecube", {held: "Probe one.", gone: "Probe two.", fresh: "Probe three."})
    assert import_lines(service, "alice", lines, "alicecube").renamed == 2
    stored = {m.memory: m.id for m in service.list_memories("alice", cube_ids=["alicecube"]).memories}
    assert stored["Probe three."] == fresh and {stored["Probe one."], stored["Probe two."]}.isdisjoint({held, gone})


def test_a_memory_deleted_and_imported_again_into_its_own_cube_keeps_its_id(service: MemoryService) -> None:
    """Restoring one's own backup after a delete: the id's history names this cube alone, so it is kept."""
    _users(service)
    memory = service.add_memory("alice", cube_id="alicecube", memory_content="The spare key is under the pot.")
    lines = _lines(_export(service, "alice", "alicecube"))
    service.delete_memory("alice", memory.added[0])
    assert import_lines(service, "alice", lines, "alicecube").renamed == 0
    assert service.get_memory("alice", memory.added[0]).memory == "The spare key is under the pot."
    assert [e.event for e in service.history("alice", memory.added[0])] == ["ADD", "DELETE", "ADD"]


def test_a_history_mixing_two_cubes_answers_each_reader_only_the_events_of_the_memorys_cube(
        service: MemoryService) -> None:
    """Data an earlier version left: an id deleted in bob's cube and then imported under the same id
    into alice's. Bob read alice's events through it; now the memory's cube (the one holding it) alone
    is answered, to its readers alone."""
    from memos_mcp.core.models import HistoryEvent, utcnow

    _users(service)
    mixed = service.add_memory("alice", cube_id="alicecube", memory_content="Alice's private note.").added[0]
    service.catalog.add_history([HistoryEvent(memory_id=mixed, cube_id="bobcube", event=event, actor="bob",
                                              at=utcnow()) for event in ("ADD", "DELETE")])
    assert [(e.cube_id, e.event) for e in service.history("alice", mixed)] == [("alicecube", "ADD")]
    with pytest.raises(NotFound):
        service.history("bob", mixed)
    service.delete_memory("alice", mixed)  # no cube holds it now: its newest event's cube is its cube
    assert [e.event for e in service.history("alice", mixed)] == ["ADD", "DELETE"]
    with pytest.raises(NotFound):
        service.history("bob", mixed)
