"""Every tool end to end through the SDK client, over a real service and real stores."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.types import EmbeddedResource, TextResourceContents

from memos_mcp.config import LLMSettings
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.portability import import_lines
from memos_mcp.core.service import ROOT_USER, MemoryService
from tests.conftest import ServiceFactory
from tests.mcp.support import call, connect, fail, remember
from tests.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.anyio

REF_ID = re.compile(r"^\[[0-9a-f]{8}\]$")
ALICE_CUBE = "alice_default_cube"


# --- add_memory --------------------------------------------------------------------------------

async def test_messages_come_back_with_the_callers_message_id_and_metadata(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        added = await call(client, "add_memory", conversation_id="trip", metadata={"message_id": "msg-42"},
                           messages=[{"role": "user", "content": "We are flying to Lisbon on Friday.",
                                      "id": "msg-42", "chat_time": "2025-03-04T10:00:00Z"}])
        assert added["cube_id"] == ALICE_CUBE and added["deduplicated"] == []
        assert len(added["added"]) == 1 and len(added["message_ids"]) == 1
        memory = added["memories"][0]
        assert memory["memory"] == "We are flying to Lisbon on Friday."
        assert memory["metadata"] == {"message_id": "msg-42"}
        assert memory["sources"][0]["message_id"] == "msg-42"
        assert memory["sources"][0]["conversation_id"] == "trip"
        assert memory["conversation_id"] == "trip" and memory["source"] == "chat"
        assert memory["event_time"].startswith("2025-03-04T10:00")

        stored = await call(client, "get_memory", memory_id=memory["id"])
        assert stored["metadata"] == {"message_id": "msg-42"}
        assert stored["sources"][0]["message_id"] == "msg-42"
    assert [m.message_id for m in people.get_messages("alice", "trip")] == ["msg-42"]


async def test_memory_content_is_stored_with_its_tags_metadata_and_ref_id(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "The office wifi password rotates monthly.", tags=["office"],
                                metadata={"origin": "note", "pinned": True})
    assert memory["memory"] == "The office wifi password rotates monthly."
    assert "office" in memory["tags"] and memory["metadata"] == {"origin": "note", "pinned": True}
    assert memory["source"] == "api" and memory["user_id"] == "alice" and memory["cube_id"] == ALICE_CUBE
    assert REF_ID.match(memory["ref_id"]) and memory["ref_id"] == f"[{memory['id'][:8]}]"
    assert "embedding" not in memory or memory["embedding"] is None


async def test_adding_the_same_text_again_returns_the_existing_memory(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        first = await remember(client, "I keep my passport in the blue drawer.")
        again = await call(client, "add_memory", memory_content="I keep my passport in the blue drawer.")
        assert again["added"] == [] and again["deduplicated"] == [first["id"]]
        assert [m["id"] for m in again["memories"]] == [first["id"]]
        assert (await call(client, "list_memories"))["total"] == 1


async def test_a_document_under_an_import_root_is_imported_and_paths_outside_are_refused(
        make_service: ServiceFactory, tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    handbook = root / "handbook.md"
    rules = " ".join(f"Rule {i}: lock the door of room {i} at night." for i in range(12))
    handbook.write_text(f"# Handbook\n\n{rules}", encoding="utf-8")
    (root / "notes.txt").write_text("The boiler is serviced every October.", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("The vault combination is 31-41-59.", encoding="utf-8")
    (root / "link.txt").symlink_to(secret)
    service = make_service(import_roots=[root], chunk_size=150)
    service.ensure_user("alice")

    async with connect(service, "alice") as client:
        chunks = (await call(client, "add_memory", doc_path=str(handbook)))["memories"]
        assert len(chunks) > 1 and {m["kind"] for m in chunks} == {"document"}
        assert {m["sources"][0]["doc_path"] for m in chunks} == {str(handbook.resolve())}
        assert [m["sources"][0]["chunk_index"] for m in chunks] == list(range(len(chunks)))
        relative = await call(client, "add_memory", doc_path="notes.txt")  # taken from the first root
        assert relative["memories"][0]["memory"] == "The boiler is serviced every October."

        for outside in (str(secret), "../secret.txt", "link.txt"):
            message = await fail(client, "add_memory", doc_path=outside)
            assert "path_not_allowed" in message and "outside the import roots" in message, message
            assert str(root.resolve()) in message
        missing = await fail(client, "add_memory", doc_path="absent.md")
        assert "invalid_request" in missing and "absent.md" in missing and "does not exist" in missing
        stored = await call(client, "list_memories", size=200)
    assert stored["total"] == len(chunks) + 1
    assert not any("vault" in m["memory"] for m in stored["memories"])


# --- search_memory -----------------------------------------------------------------------------

async def test_search_ranks_facts_by_relevance_and_keeps_preferences_apart(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        for text in ("My sister Ana lives in Porto.", "The quarterly report is due on March 3.",
                     "I bought a new bicycle last week.", "Our cat is called Miso."):
            await remember(client, text)
        await call(client, "add_memory", messages=[{"role": "user", "content": "I can't stand loud restaurants."}])

        found = await call(client, "search_memory", query="Where does my sister live?")
        facts = found["memories"]
        assert facts[0]["memory"] == "My sister Ana lives in Porto."
        assert found["cube_ids"] == [ALICE_CUBE]
        scores = [m["relativity"] for m in facts]
        assert all(0.0 <= s <= 1.0 for s in scores) and scores[0] == max(scores)
        assert all(REF_ID.match(m["ref_id"]) and m["ref_id"] == f"[{m['id'][:8]}]" for m in facts)
        assert all(m["kind"] != "preference" for m in facts)

        loud = await call(client, "search_memory", query="noisy restaurants")
        assert [p["memory"] for p in loud["preferences"]] == ["I can't stand loud restaurants."]
        assert loud["preferences"][0]["kind"] == "preference"
        assert 0.0 <= loud["preferences"][0]["relativity"] <= 1.0
        assert REF_ID.match(loud["preferences"][0]["ref_id"])
        assert all(m["kind"] != "preference" for m in loud["memories"])

        without = await call(client, "search_memory", query="noisy restaurants", include_preference=False)
        assert without["preferences"] == []
        assert len((await call(client, "search_memory", query="sister", top_k=1))["memories"]) == 1


@pytest.mark.parametrize(("query", "answer"), [
    ("where does the user live?", "I moved to Lisbon in March 2024."),
    ("Which city do I live in?", "I moved to Lisbon in March 2024."),
    ("What is my cat called?", "Our cat is called Miso."),
    ("what pet does the user have?", "Our cat is called Miso."),
])
async def test_search_with_memos_default_threshold_keeps_the_clear_match_and_drops_unrelated_memories(
        people: MemoryService, query: str, answer: str) -> None:
    async with connect(people, "alice") as client:
        for text in ("I moved to Lisbon in March 2024.", "The quarterly report is due on March 3.",
                     "I bought a new bicycle last week.", "Our cat is called Miso."):
            await remember(client, text)
        kept = await call(client, "search_memory", query=query, threshold=0.45)
        assert [m["memory"] for m in kept["memories"]] == [answer]
        assert kept["memories"][0]["relativity"] >= 0.45
        assert len((await call(client, "search_memory", query=query))["memories"]) == 4
        assert (await call(client, "search_memory", query="what is the capital of France?",
                           threshold=0.45))["memories"] == []
        assert "threshold" in await fail(client, "search_memory", query=query, threshold=1.5)


async def test_filters_narrow_search_and_listing(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        travel = await remember(client, "Flight LH 1234 leaves Munich at nine.", tags=["travel"],
                                metadata={"channel": "slack"})
        hobby = await remember(client, "The flight simulator club meets on Sunday.", tags=["hobby"],
                               metadata={"channel": "email"}, conversation_id="c-hobby")

        async def ids(**filters: object) -> list[str]:
            found = await call(client, "search_memory", query="flight", filters=filters)
            return [m["id"] for m in found["memories"]]

        assert set(await ids()) == {travel["id"], hobby["id"]}
        assert await ids(tags=["travel"]) == [travel["id"]]
        assert await ids(metadata={"channel": "email"}) == [hobby["id"]]
        assert await ids(conversation_id="c-hobby") == [hobby["id"]]
        assert await ids(kind=["preference"]) == []
        assert await ids(memory_type=["LongTermMemory"], tags=["hobby"]) == [hobby["id"]]
        listed = await call(client, "list_memories", filters={"tags": ["hobby"]})
        assert listed["total"] == 1 and listed["memories"][0]["id"] == hobby["id"]


async def test_the_current_conversation_ranks_first_while_others_still_count(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        italian = await remember(client, "The team dinner is at the Italian place on Friday.", conversation_id="c-one")
        thai = await remember(client, "The team dinner is at the Thai place on Friday.", conversation_id="c-two")
        for conversation, expected in (("c-one", italian), ("c-two", thai)):
            found = await call(client, "search_memory", query="where is the team dinner on Friday",
                               conversation_id=conversation)
            ranked = [m["id"] for m in found["memories"]]
            assert ranked[0] == expected["id"], conversation
            assert set(ranked) == {italian["id"], thai["id"]}


# --- update, delete, history -------------------------------------------------------------------

async def test_an_update_changes_the_text_and_the_history_keeps_old_and_new(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "Standup is at nine.")
        updated = await call(client, "update_memory", memory_id=memory["id"],
                             memory_content="Standup is at half past nine.", tags=["work"])
        assert updated["id"] == memory["id"] and updated["memory"] == "Standup is at half past nine."
        assert updated["tags"] == ["work"] and updated["updated_at"] >= memory["updated_at"]
        assert (await call(client, "get_memory", memory_id=memory["id"]))["memory"] == "Standup is at half past nine."
        found = await call(client, "search_memory", query="when is standup")
        assert found["memories"][0]["memory"] == "Standup is at half past nine."

        history = await call(client, "memory_history", memory_id=memory["id"])
        assert history["memory_id"] == memory["id"]
        assert [e["event"] for e in history["events"]] == ["ADD", "UPDATE"]
        change = history["events"][1]
        assert (change["old_memory"], change["new_memory"]) == ("Standup is at nine.", "Standup is at half past nine.")
        assert change["actor"] == "alice"


async def test_archiving_hides_a_memory_from_search_and_is_recorded(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "The spare key is under the flower pot.")
        archived = await call(client, "update_memory", memory_id=memory["id"], status="archived")
        assert archived["status"] == "archived"
        found = await call(client, "search_memory", query="spare key flower pot")
        assert memory["id"] not in [m["id"] for m in found["memories"]]
        kept = await call(client, "list_memories", filters={"status": ["archived"]})
        assert [m["id"] for m in kept["memories"]] == [memory["id"]]
        events = (await call(client, "memory_history", memory_id=memory["id"]))["events"]
        assert [e["event"] for e in events] == ["ADD", "ARCHIVE"]


async def test_a_deleted_memory_is_gone_and_its_history_only_says_it_was_deleted(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        memory = await remember(client, "My locker code is 4711.")
        await call(client, "update_memory", memory_id=memory["id"], memory_content="My locker code is 4712.")
        assert await call(client, "delete_memory", memory_id=memory["id"]) == {"deleted": 1, "id": memory["id"]}

        message = await fail(client, "get_memory", memory_id=memory["id"])
        assert "not_found" in message and memory["id"] in message
        history = await call(client, "memory_history", memory_id=memory["id"])
        assert [e["event"] for e in history["events"]] == ["ADD", "UPDATE", "DELETE"]
        assert all(e["old_memory"] is None and e["new_memory"] is None for e in history["events"])
        assert "4711" not in json.dumps(history) and "4712" not in json.dumps(history)
        found = await call(client, "search_memory", query="locker code")
        assert memory["id"] not in [m["id"] for m in found["memories"]]
        assert "not_found" in await fail(client, "delete_memory", memory_id=memory["id"])


async def test_delete_all_memories_empties_the_cube_but_keeps_it(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        gym = await remember(client, "Gym on Mondays.")
        for text in ("Piano lesson on Tuesdays.", "Book club on Thursdays."):
            await remember(client, text)
        assert await call(client, "delete_all_memories", cube_id=ALICE_CUBE) == {"deleted": 3, "id": ALICE_CUBE}
        events = (await call(client, "memory_history", memory_id=gym["id"]))["events"]
        assert [(e["event"], e["old_memory"], e["new_memory"]) for e in events] == [
            ("ADD", None, None), ("DELETE", None, None)]
        assert (await call(client, "list_memories"))["total"] == 0
        assert ALICE_CUBE in [c["cube_id"] for c in (await call(client, "list_cubes"))["cubes"]]
        assert await call(client, "delete_all_memories", cube_id=ALICE_CUBE) == {"deleted": 0, "id": ALICE_CUBE}


async def test_list_memories_pages_newest_first(people: MemoryService) -> None:
    texts = [f"Reminder {i}: water plant number {i}." for i in range(5)]
    async with connect(people, "alice") as client:
        for text in texts:
            await remember(client, text)
        pages = [await call(client, "list_memories", page=page, size=2) for page in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [(p["page"], p["size"]) for p in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]
    assert [len(p["memories"]) for p in pages] == [2, 2, 1, 0]
    assert [m["memory"] for p in pages for m in p["memories"]] == texts[::-1]


# --- cubes and users ---------------------------------------------------------------------------

async def test_cubes_are_created_listed_shared_and_deleted(people: MemoryService) -> None:
    async with connect(people, "alice") as alice, connect(people, "bob") as bob:
        work = await call(alice, "create_cube", name="Work notes", cube_id="alice-work")
        assert (work["cube_id"], work["name"], work["owner_id"]) == ("alice-work", "Work notes", "alice")
        scratch = await call(alice, "create_cube", name="Scratch")
        assert uuid.UUID(scratch["cube_id"])
        listed = (await call(alice, "list_cubes"))["cubes"]
        assert [c["cube_id"] for c in listed] == [ALICE_CUBE, "alice-work", scratch["cube_id"]]
        assert {c["permission"] for c in listed} == {"owner"}
        assert "conflict" in await fail(alice, "create_cube", name="Again", cube_id="alice-work")

        stored = await remember(alice, "The quarterly plan is in the shared drive.", cube_id="alice-work")
        assert stored["cube_id"] == "alice-work"
        shared = await call(alice, "share_cube", cube_id="alice-work", target_user_id="bob", permission="read")
        assert shared["shared_with"] == {}  # an offer until bob accepts it
        assert [c["cube_id"] for c in (await call(bob, "list_cubes"))["cubes"]] == ["bob_default_cube"]
        accepted = await call(bob, "accept_share", cube_id="alice-work")
        assert accepted["shared_with"] == {"bob": "read"}
        bobs = {c["cube_id"]: c["permission"] for c in (await call(bob, "list_cubes"))["cubes"]}
        assert bobs == {"bob_default_cube": "owner", "alice-work": "read"}

        assert await call(alice, "delete_cube", cube_id="alice-work") == {"deleted": 1, "id": "alice-work"}
        assert "alice-work" not in [c["cube_id"] for c in (await call(alice, "list_cubes"))["cubes"]]
        assert "alice-work" not in [c["cube_id"] for c in (await call(bob, "list_cubes"))["cubes"]]
        assert "not_found" in await fail(alice, "get_memory", memory_id=stored["id"])
        assert "not_found" in await fail(alice, "memory_history", memory_id=stored["id"])
        assert "not_found" in await fail(alice, "search_memory", query="plan", cube_ids=["alice-work"])


async def test_get_user_info_tells_who_is_asking(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        info = await call(client, "get_user_info")
    assert (info["user"]["user_id"], info["user"]["role"]) == ("alice", "user")
    assert [c["cube_id"] for c in info["cubes"]] == [ALICE_CUBE]


async def test_only_an_admin_can_register_users(people: MemoryService) -> None:
    keys = KeyRing(people)
    async with connect(people, "alice", keys) as alice:
        assert "forbidden" in await fail(alice, "register_user", user_id="carol")
    assert people.catalog.get_user("carol") is None

    async with connect(people, ROOT_USER, keys) as root:
        registered = await call(root, "register_user", user_id="carol", user_name="Carol")
        assert (registered["user"]["user_id"], registered["user"]["user_name"]) == ("carol", "Carol")
        assert registered["user"]["role"] == "user"
        assert (registered["default_cube"]["cube_id"], registered["default_cube"]["owner_id"]) == (
            "carol_default_cube", "carol")
        assert "conflict" in await fail(root, "register_user", user_id="carol")
        admin = await call(root, "register_user", user_id="dora", role="admin")
        assert admin["user"]["role"] == "admin"

    async with connect(people, "carol", keys) as carol:
        assert (await call(carol, "get_user_info"))["cubes"][0]["cube_id"] == "carol_default_cube"
    async with connect(people, "dora", keys) as dora:
        assert (await call(dora, "register_user", user_id="erin"))["user"]["user_id"] == "erin"


async def test_api_keys_are_for_admins_and_the_key_is_shown_only_once(people: MemoryService) -> None:
    keys = KeyRing(people)
    async with connect(people, "alice", keys) as alice:
        for tool, arguments in (("create_api_key", {"user_id": "alice"}), ("list_api_keys", {}),
                                ("revoke_api_key", {"key_id": "whatever"})):
            assert "forbidden" in await fail(alice, tool, **arguments)
    assert people.catalog.list_api_keys() == []

    async with connect(people, ROOT_USER, keys) as root:
        new = await call(root, "create_api_key", user_id="bob")
        assert new["user_id"] == "bob" and new["key"].startswith("mk_") and new["key_id"]
        assert keys.authenticate(new["key"]) == "bob"
        listed = (await call(root, "list_api_keys"))["keys"]
        assert [(k["key_id"], k["user_id"], k["revoked"]) for k in listed] == [(new["key_id"], "bob", False)]
        assert new["key"] not in json.dumps(listed) and "key" not in listed[0]

        assert await call(root, "revoke_api_key", key_id=new["key_id"]) == {"deleted": 1, "id": new["key_id"]}
        assert (await call(root, "list_api_keys"))["keys"][0]["revoked"] is True
        assert keys.authenticate(new["key"]) is None
        assert "not_found" in await fail(root, "revoke_api_key", key_id=new["key_id"])


# --- conversations and chat --------------------------------------------------------------------

async def test_suggestions_are_questions_about_recent_memories(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        assert await call(client, "get_suggestions") == {"suggestions": []}
        keys = [(await remember(client, text))["key"] for text in (
            "Marathon training starts in May.", "The landlord visits on the 5th.", "Grandma's birthday is June 2.",
            "The car needs new tyres.")]
        suggestions = (await call(client, "get_suggestions"))["suggestions"]
    assert len(suggestions) == 3
    assert all(s.endswith("?") and any(k.rstrip(".") in s for k in keys) for s in suggestions)


async def test_an_add_returns_a_task_whose_status_lists_the_changes(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        added = await call(client, "add_memory", memory_content="The spare tyre is in the garage.")
        task = await call(client, "get_task_status", task_id=added["task_id"])
        assert (task["status"], task["added"]) == ("done", added["added"])
    async with connect(people, "bob") as client:
        assert "not_found" in await fail(client, "get_task_status", task_id=added["task_id"])


async def test_clear_chat_history_deletes_messages_but_keeps_memories(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        await call(client, "add_memory", conversation_id="trip", messages=[
            {"role": "user", "content": "We land in Oslo at noon."}, {"role": "assistant", "content": "Noted."}])
        await call(client, "add_memory", conversation_id="work", messages=[
            {"role": "user", "content": "The audit starts on Monday."}])
        kept = (await call(client, "list_memories"))["total"]

        assert await call(client, "clear_chat_history", conversation_id="trip") == {"deleted": 2, "id": "trip"}
        assert people.get_messages("alice", "trip") == []
        assert len(people.get_messages("alice", "work")) == 1
        assert await call(client, "clear_chat_history") == {"deleted": 1, "id": None}
        assert people.get_messages("alice", "work") == []
        assert (await call(client, "list_memories"))["total"] == kept > 0


async def test_chat_without_a_language_model_is_an_error_naming_llm_not_configured(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        message = await fail(client, "chat", query="Where does my sister live?")
    assert "llm_not_configured" in message and "MEMOS_LLM__BASE_URL" in message
    assert people.get_messages("alice", "default") == []


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    yield server
    server.stop()


async def test_chat_answers_through_the_model_citing_memories(make_service: ServiceFactory,
                                                              llm_server: OpenAIServer) -> None:
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model"))
    service.ensure_user("alice")
    async with connect(service, "alice") as client:
        fact = await remember(client, "Alice's sister Mia lives in Porto.")
        llm_server.replies.append(f"Mia lives in Porto {fact['ref_id']}.")
        reply = await call(client, "chat", query="Where does my sister live?", conversation_id="c1")
    assert reply["answer"] == f"Mia lives in Porto {fact['ref_id']}."
    assert reply["conversation_id"] == "c1" and fact["id"] in [m["id"] for m in reply["references"]]
    assert [m.content for m in service.get_messages("alice", "c1")] == ["Where does my sister live?", reply["answer"]]


@pytest.mark.parametrize("mode", ["legacy", None])
async def test_chat_reports_the_answer_as_progress_while_it_is_written(
        make_service: ServiceFactory, llm_server: OpenAIServer, mode: str | None) -> None:
    # mode="legacy": the JSON-RPC session of stdio and HTTP clients; None: the in-process client.
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model"))
    service.ensure_user("alice")
    answer = "Mia lives in Porto, by the river."
    llm_server.replies.append(answer)
    pieces: list[tuple[float, float | None, str | None]] = []
    finished = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pieces.append((progress, total, message))
        if progress >= len(answer):
            finished.set()

    async with connect(service, "alice", **({"mode": mode} if mode else {})) as client:
        result = await client.call_tool("chat", {"query": "Where does my sister live?"},
                                        progress_callback=on_progress)
        assert not result.is_error and result.structured_content is not None
        with anyio.fail_after(10):  # over JSON-RPC a notification may be handled just after the result
            await finished.wait()
    assert result.structured_content["answer"] == answer
    assert len(pieces) == len(answer.split())
    assert "".join(message or "" for _, _, message in pieces) == answer
    assert [p for p, _, _ in pieces] == sorted({p for p, _, _ in pieces}) and pieces[-1][0] == len(answer)


async def test_a_chat_whose_model_dies_mid_answer_is_a_tool_error(make_service: ServiceFactory,
                                                                  llm_server: OpenAIServer) -> None:
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model", max_retries=0))
    service.ensure_user("alice")
    llm_server.replies.append(Reply(content="This will not be finished", die_after=3))
    async with connect(service, "alice") as client:
        message = await fail(client, "chat", query="Tell me a story", conversation_id="story")
    assert "backend_unavailable" in message and "language model" in message
    assert service.get_messages("alice", "story") == []


async def test_suggestions_are_written_by_the_model_when_there_is_one(make_service: ServiceFactory,
                                                                      llm_server: OpenAIServer) -> None:
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model"))
    service.ensure_user("alice")
    questions = ["Which tyres fit my car?", "When is the next service?", "How much will it cost?"]
    llm_server.replies.append(json.dumps({"questions": questions}))
    async with connect(service, "alice") as client:
        await remember(client, "The car needs new tyres.")
        assert await call(client, "get_suggestions") == {"suggestions": questions}
        llm_server.replies.append("[not an object]")
        fallback = (await call(client, "get_suggestions", language="zh"))["suggestions"]
    assert fallback == ["关于“The car needs new tyres”，你还记得什么？"]


# --- export_cube -------------------------------------------------------------------------------

async def test_export_cube_returns_the_cube_as_an_embedded_jsonl_resource(people: MemoryService) -> None:
    async with connect(people, "alice") as client:
        fact = await remember(client, "The wifi password is on the fridge.", metadata={"origin": "note"})
        await call(client, "add_memory", conversation_id="home",
                   messages=[{"role": "user", "content": "The plumber comes on Wednesday."}])
        result = await client.call_tool("export_cube", {"cube_id": ALICE_CUBE, "include_embeddings": True})
        plain = await client.call_tool("export_cube", {"cube_id": ALICE_CUBE})
    assert result.is_error is False and len(result.content) == 1
    part = result.content[0]
    assert isinstance(part, EmbeddedResource) and isinstance(part.resource, TextResourceContents)
    assert part.resource.mime_type == "application/x-ndjson"
    assert str(part.resource.uri) == f"memory://cubes/{ALICE_CUBE}/export"
    lines = part.resource.text.splitlines()
    header = json.loads(lines[0])
    assert header["type"] == "header" and header["format"] == "memos-mcp/export-v1"
    assert header["cube"]["cube_id"] == ALICE_CUBE and header["dimension"] == 384
    records = [json.loads(line) for line in lines[1:]]
    memories = [r for r in records if r["type"] == "memory"]
    assert len(memories) == header["memories"] == people.list_memories("alice").total
    exported = next(m for m in memories if m["id"] == fact["id"])
    assert exported["metadata"] == {"origin": "note"} and len(exported["embedding"]) == 384
    (without,) = plain.content
    assert isinstance(without, EmbeddedResource) and isinstance(without.resource, TextResourceContents)
    assert all("embedding" not in json.loads(line) for line in without.resource.text.splitlines()[1:])
    assert [r["content"] for r in records if r["type"] == "message"] == ["The plumber comes on Wednesday."]

    people.create_cube("alice", "copy", cube_id="alice-copy")
    imported = import_lines(people, "alice", lines, "alice-copy")
    assert (imported.memories, imported.messages) == (len(memories), 1)


async def test_add_memory_with_a_model_answers_a_task_that_get_task_status_follows(
        make_service: ServiceFactory, llm_server: OpenAIServer) -> None:
    service = make_service(llm=LLMSettings(base_url=llm_server.url, model="scripted-model"))
    service.ensure_user("alice")
    llm_server.extraction_replies.append(Reply(delay=0.3, content=json.dumps(
        {"facts": [{"key": "Sister", "value": "Alice's sister Mia lives in Porto.", "sources": [0]}]})))
    async with connect(service, "alice") as client:
        ack = await call(client, "add_memory", messages=[{"role": "user", "content": "My sister Mia lives in Porto."}])
        assert ack["status"] in ("queued", "running") and ack["memories"] == []
        with anyio.fail_after(20):
            while (task := await call(client, "get_task_status", task_id=ack["task_id"]))["status"] in (
                    "queued", "running"):
                await anyio.sleep(0.05)
        assert (task["status"], task["extractor"], len(task["added"]), task["error"]) == ("done", "llm", 1, None)
        waited = await call(client, "add_memory", async_mode=False,
                            messages=[{"role": "user", "content": "Mia has two cats."}])
    assert waited["status"] == "failed"  # no scripted answer: the rule extractor stored the turn
    assert [m["memory"] for m in waited["memories"]] == ["Mia has two cats."]
