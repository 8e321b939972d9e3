"""Adding with a language model: the acknowledgement, one extraction call per batch, merge decisions,
preferences, de-duplication, and every way the model can fail."""

from __future__ import annotations

import time

from memos_mcp.core.graph.service import GraphService
from memos_mcp.core.models import MemoryKind, MemoryStatus, Permission, TaskStatus
from tests.openai_server import OpenAIServer, Reply
from tests.pipeline.conftest import Open, answer, settle

TURNS = [{"role": "user", "content": "I moved to Lisbon last week.", "chat_time": "2026-05-10T09:00:00Z",
          "message_id": "m-1"},
         {"role": "assistant", "content": "Nice! How do you like it?"},
         {"role": "user", "content": "I love it, and I started as a nurse at Santa Maria.", "message_id": "m-3"}]


def test_an_add_is_acknowledged_at_once_and_extracted_in_one_call(open_service: Open,
                                                                  llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies.append(Reply(delay=0.5, content=answer(facts=[
        {"key": "Home city", "value": "Alice moved to Lisbon on 3 May 2026.", "memory_type": "UserMemory",
         "tags": ["home", "lisbon"], "confidence": 0.95, "sources": [0]},
        {"key": "Job", "value": "Alice works as a nurse at Santa Maria hospital.", "memory_type": "UserMemory",
         "tags": ["work"], "confidence": 0.9, "sources": [2]}])))

    started = time.perf_counter()
    ack = service.add_memory("alice", messages=TURNS, conversation_id="c1", tags=["onboarding"])
    acknowledged = time.perf_counter() - started

    assert ack.status in (TaskStatus.QUEUED, TaskStatus.RUNNING) and ack.task_id and ack.memories == []
    assert acknowledged < 0.4  # the model takes 0.5 s: the answer did not wait for it
    assert [m.content for m in service.get_messages("alice", "c1")] == [t["content"] for t in TURNS]
    task = settle(service, "alice", ack.task_id)
    assert (task.status, task.extractor, task.error, len(task.added)) == (TaskStatus.DONE, "llm", None, 2)
    assert len(llm_server.chats) == 1
    request = llm_server.chats[0]
    assert request["response_format"] == {"type": "json_object"} and request["temperature"] == 0.0
    prompt = request["messages"][1]["content"]
    assert "[0] 2026-05-10 09:00 user: I moved to Lisbon last week." in prompt
    assert "[2]" in prompt and "EXISTING MEMORIES:\n(none)" in prompt
    memories = {m.key: m for m in service.list_memories("alice").memories}
    home = memories["Home city"]
    assert home.memory == "Alice moved to Lisbon on 3 May 2026." and home.confidence == 0.95
    assert home.sources[0].message_id == "m-1" and home.sources[0].role == "user"
    assert {"home", "lisbon", "onboarding"} <= set(home.tags) and home.conversation_id == "c1"
    assert memories["Job"].sources[0].message_id == "m-3"
    hit = service.search("alice", "where does she work?").memories[0]
    assert hit.key == "Job"


def test_async_mode_false_waits_for_the_memories(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies.append(answer(facts=[{"key": "Pet", "value": "Alice has a cat named Miso."}]))
    result = service.add_memory("alice", messages=[{"role": "user", "content": "My cat Miso is asleep."}],
                                async_mode=False)
    assert result.status is TaskStatus.DONE
    assert [m.memory for m in result.memories] == ["Alice has a cat named Miso."]


def test_the_model_sees_similar_memories_by_number_and_its_update_keeps_history(
        open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    old = service.add_memory("alice", memory_content="Alice lives in Porto.").memories[0]
    llm_server.extraction_replies.append(answer(updates=[
        {"memory": 0, "action": "update", "value": "Alice lives in Lisbon since May 2026.", "reason": "moved"},
        {"memory": 7, "action": "archive", "reason": "an invented number"}]))

    result = service.add_memory("alice", messages=[{"role": "user", "content": "I live in Lisbon now, not Porto."}],
                                async_mode=False)

    assert "[0] Alice lives in Porto." in llm_server.chats[0]["messages"][1]["content"]
    assert old.id not in llm_server.chats[0]["messages"][1]["content"]  # ids never reach the model
    assert result.updated == [old.id] and result.archived == [] and result.added == []
    assert service.get_memory("alice", old.id).memory == "Alice lives in Lisbon since May 2026."
    events = [(e.event, e.old_memory, e.new_memory) for e in service.history("alice", old.id)]
    assert events[-1] == ("UPDATE", "Alice lives in Porto.", "Alice lives in Lisbon since May 2026.")


def test_a_contradicted_memory_is_archived_not_deleted(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    old = service.add_memory("alice", memory_content="Alice is vegetarian.").memories[0]
    llm_server.extraction_replies.append(answer(
        updates=[{"memory": 0, "action": "archive", "reason": "she eats fish again"}],
        facts=[{"key": "Diet", "value": "Alice eats fish again since June 2026.", "sources": [0]}]))

    result = service.add_memory("alice", messages=[{"role": "user", "content": "I eat fish again."}],
                                async_mode=False)

    assert result.archived == [old.id] and len(result.added) == 1
    assert service.get_memory("alice", old.id).status is MemoryStatus.ARCHIVED
    assert service.history("alice", old.id)[-1].event == "ARCHIVE"
    found = [m.memory for m in service.search("alice", "is Alice vegetarian").memories]
    assert "Alice is vegetarian." not in found and "Alice eats fish again since June 2026." in found


def test_explicit_and_implicit_preferences(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies.append(answer(preferences=[
        {"preference": "Alice prefers window seats.", "type": "explicit", "reasoning": "She said so.",
         "sources": [0]},
        {"preference": "Alice likes to travel light.", "type": "implicit_preference",
         "reasoning": "She only packs a backpack.", "sources": [1]}]))
    result = service.add_memory("alice", async_mode=False, messages=[
        {"role": "user", "content": "Always book me a window seat."},
        {"role": "user", "content": "I only take a backpack, as usual."}])
    prefs = {m.memory: m for m in result.memories}
    assert {m.kind for m in prefs.values()} == {MemoryKind.PREFERENCE}
    assert prefs["Alice prefers window seats."].preference_type == "explicit_preference"
    implicit = prefs["Alice likes to travel light."]
    assert (implicit.preference_type, implicit.reasoning) == ("implicit_preference", "She only packs a backpack.")
    found = service.search("alice", "seat on the plane", include_preference=True)
    assert found.preferences[0].memory == "Alice prefers window seats."


def test_duplicates_are_dropped_by_text_and_by_similarity(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    old = service.add_memory("alice", memory_content="Alice has a cat named Miso.").memories[0]
    llm_server.extraction_replies.append(answer(facts=[
        {"value": "Alice has a cat named Miso.", "sources": [0]},
        {"value": "Alice has a cat named Miso!", "sources": [0]},
        {"value": "Alice's cat Miso is three years old.", "sources": [0]},
        {"value": "Alice's cat Miso is three years old.", "sources": [0]}]))
    result = service.add_memory("alice", async_mode=False,
                                messages=[{"role": "user", "content": "Miso, my cat, turned three."}])
    assert result.deduplicated == [old.id]
    assert [m.memory for m in service.list_memories("alice").memories].count(
        "Alice's cat Miso is three years old.") == 1
    assert service.list_memories("alice").total == 2


def test_items_that_do_not_validate_are_dropped_never_stored(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies.append(answer(facts=[
        {"value": ""}, {"key": "no value"}, "a bare string", {"value": "Alice plays the cello.", "sources": [9, "x"],
                                                             "confidence": "very", "memory_type": "Weird"}]))
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I play cello."}])
    assert [m.memory for m in result.memories] == ["Alice plays the cello."]
    kept = result.memories[0]
    assert kept.confidence == 0.8 and kept.memory_type.value == "UserMemory"
    assert len(kept.sources) == 1  # the invented message number 9 fell back to the batch's user turn


def test_fenced_json_is_repaired_without_a_second_call(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    fenced = "Here you go:\n```json\n" + answer(facts=[{"value": "Alice speaks Finnish."}]) + "\n```"
    llm_server.extraction_replies.append(fenced)
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "Puhun suomea."}])
    assert [m.memory for m in result.memories] == ["Alice speaks Finnish."] and len(llm_server.chats) == 1


def test_invalid_json_is_asked_for_once_more(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies += ["Sure! Alice speaks Finnish.", answer(facts=[{"value": "Alice speaks Finnish."}])]
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "Puhun suomea."}])
    assert result.status is TaskStatus.DONE and [m.memory for m in result.memories] == ["Alice speaks Finnish."]
    retry = llm_server.chats[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! Alice speaks Finnish."}
    assert "no JSON object" in retry[-1]["content"]


def test_garbage_twice_fails_the_task_but_keeps_the_messages_searchable(
        open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies += ["[1, 2, 3]", '{"facts": "none"}']
    result = service.add_memory("alice", async_mode=False,
                                messages=[{"role": "user", "content": "My brother Tomas is a pilot."}])
    task = service.get_task("alice", str(result.task_id))
    assert task.status is TaskStatus.FAILED and task.extractor == "rules"
    assert task.error is not None and task.error.startswith("model_output_invalid") and "'facts' must be a list" in \
        task.error
    assert service.search("alice", "what does Tomas do").memories[0].memory == "My brother Tomas is a pilot."
    assert len(llm_server.chats) == 2


def test_rate_limits_are_retried_with_backoff(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service(max_retries=2)
    service.ensure_user("alice")
    llm_server.extraction_replies += [Reply(status=429, headers={"retry-after": "0"}), Reply(status=503),
                           answer(facts=[{"value": "Alice runs marathons."}])]
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I run marathons."}])
    assert result.status is TaskStatus.DONE and [m.memory for m in result.memories] == ["Alice runs marathons."]
    assert len(llm_server.chats) == 3


def test_a_model_that_stays_unavailable_leaves_the_rule_memories_and_the_reason(
        open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service(max_retries=1)
    service.ensure_user("alice")
    llm_server.extraction_replies += [Reply(status=429, headers={"retry-after": "0"})] * 2
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I hate olives."}])
    task = service.get_task("alice", str(result.task_id))
    assert task.status is TaskStatus.FAILED and "HTTP 429" in str(task.error) and task.extractor == "rules"
    kinds = sorted(m.kind.value for m in service.list_memories("alice").memories)
    assert kinds == ["fact", "preference"]  # the deterministic extractor's turn and preference


def test_a_timeout_falls_back_and_names_it(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service(timeout=0.3)
    service.ensure_user("alice")
    llm_server.extraction_replies.append(Reply(delay=1.0, content=answer()))
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I sail on Sundays."}])
    task = service.get_task("alice", str(result.task_id))
    assert task.status is TaskStatus.FAILED and "timed out after 0.3 s" in str(task.error)
    assert [m.memory for m in result.memories] == ["I sail on Sundays."]


def test_an_unreachable_model_falls_back(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service(base_url="http://127.0.0.1:9/v1")
    service.ensure_user("alice")
    result = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I sail on Sundays."}])
    assert result.status is TaskStatus.FAILED and len(result.added) == 1
    assert "could not be reached" in str(service.get_task("alice", str(result.task_id)).error)


def test_one_conversation_is_extracted_in_order(open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    llm_server.extraction_replies += [
        Reply(delay=0.3, content=answer(facts=[{"value": "Alice adopted a dog named Rex."}])),
        answer(updates=[{"memory": 0, "action": "update", "value": "Alice adopted a dog named Rex, a beagle."}])]
    first = service.add_memory("alice", messages=[{"role": "user", "content": "I adopted a dog, Rex."}],
                               conversation_id="c1")
    second = service.add_memory("alice", messages=[{"role": "user", "content": "Rex is a beagle."}],
                                conversation_id="c1")
    settle(service, "alice", str(first.task_id))
    task = settle(service, "alice", str(second.task_id))
    assert "[0] Alice adopted a dog named Rex." in llm_server.chats[1]["messages"][1]["content"]
    assert "EARLIER MESSAGES (context only):\n- " in llm_server.chats[1]["messages"][1]["content"]
    assert len(task.updated) == 1
    assert [m.memory for m in service.list_memories("alice").memories] == ["Alice adopted a dog named Rex, a beagle."]


def test_queued_work_survives_a_restart(open_service: Open, llm_server: OpenAIServer, tmp_path) -> None:
    data = tmp_path / "restart"
    service = open_service(data)
    service.ensure_user("alice")
    llm_server.extraction_replies.append(Reply(delay=1.5, content=answer(facts=[{"value": "never applied"}])))
    ack = service.add_memory("alice", messages=[{"role": "user", "content": "I grow tomatoes."}])
    deadline = time.monotonic() + 5
    while not llm_server.chats and time.monotonic() < deadline:
        time.sleep(0.01)
    service.close()  # the model call is in flight: the task stays open
    llm_server.extraction_replies.append(answer(facts=[{"value": "Alice grows tomatoes."}]))

    reopened = open_service(data)
    task = settle(reopened, "alice", str(ack.task_id))
    time.sleep(1.6)  # the first process's abandoned call has returned by now, and must have written nothing
    assert task.status is TaskStatus.DONE and task.attempts == 2
    assert [m.memory for m in reopened.list_memories("alice").memories] == ["Alice grows tomatoes."]


def test_the_models_entities_and_relations_feed_the_graph_and_replace_old_ones(
        open_service: Open, llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    graphs = GraphService(service)
    llm_server.extraction_replies += [
        answer(facts=[{"value": "Alice works at Acme in Porto.", "sources": [0]}],
               entities=[{"name": "Alice", "type": "Person"}, {"name": "Acme", "type": "organization"}],
               relations=[{"subject": "Alice", "predicate": "works at", "object": "Acme", "sources": [0]}]),
        answer(facts=[{"value": "Alice works at Globex since June 2026.", "sources": [0]}],
               entities=[{"name": "Globex", "type": "organization"}],
               relations=[{"subject": "Alice", "predicate": "works_at", "object": "Globex", "sources": [0],
                           "replaces": True}])]
    first = service.add_memory("alice", async_mode=False, messages=[{"role": "user", "content": "I work at Acme."}])
    second = service.add_memory("alice", async_mode=False,
                                messages=[{"role": "user", "content": "I joined Globex in June."}])

    now = graphs.search("alice", entity="Alice").relations
    assert [(r.subject, r.predicate, r.object, r.memory_ids) for r in now] == [
        ("Alice", "works_at", "Globex", second.added)]
    entity = {e.name: e.type for e in graphs.entities("alice")}
    assert entity["Acme"] == "organization" and entity["Alice"] == "person"
    before = graphs.search("alice", entity="Alice", at=first.memories[0].created_at).relations
    assert [(r.object, r.memory_ids) for r in before] == [("Acme", first.added)]
    about = service.search("alice", "Where does Alice work?", graph=True).memories  # a person the model typed
    assert about[0].id == second.added[0]


def test_a_writer_whose_share_ends_before_extraction_writes_nothing(open_service: Open,
                                                                    llm_server: OpenAIServer) -> None:
    service = open_service()
    service.ensure_user("alice")
    service.ensure_user("bob")
    cube = service.create_cube("alice", "shared", cube_id="shared")
    service.share_cube("alice", cube.cube_id, "bob", Permission.WRITE)
    llm_server.extraction_replies += [Reply(delay=0.5, content=answer()),
                                      answer(facts=[{"value": "Bob wrote this after losing access."}])]
    service.add_memory("bob", cube_id="shared", conversation_id="c", messages=[{"role": "user", "content": "One."}])
    late = service.add_memory("bob", cube_id="shared", conversation_id="c",
                              messages=[{"role": "user", "content": "Two."}])
    service.unshare_cube("alice", "shared", "bob")
    task = settle(service, "bob", str(late.task_id))
    assert task.status is TaskStatus.FAILED and "bob" in str(task.error) and task.added == []
    assert service.list_memories("alice", cube_ids=["shared"]).total == 0
