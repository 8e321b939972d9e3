"""Isolation: a user never reads or writes another user's cube without a share, through any
operation; shares grant exactly read or write; only root and admin manage other users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memos_mcp.core.models import Permission, Role
from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.errors import Conflict, Forbidden, MemosError, NotFound


@pytest.fixture
def two_users(service: MemoryService) -> tuple[MemoryService, str]:
    service.ensure_user("alice")
    service.ensure_user("bob")
    memory_id = service.add_memory("alice", memory_content="Alice's bank PIN hint is her first cat.",
                                   conversation_id="private").memories[0].id
    service.add_memory("alice", conversation_id="private", messages=[{"role": "user", "content": "Secret plans."}])
    return service, memory_id


def alice_cube(service: MemoryService) -> str:
    cube = service.catalog.default_cube_of("alice")
    assert cube is not None
    return cube.cube_id


def test_bob_finds_nothing_of_alice_when_searching_his_own_cubes(two_users: tuple[MemoryService, str]) -> None:
    service, _ = two_users
    result = service.search("bob", "bank PIN hint first cat", top_k=50)
    assert result.memories == [] and result.preferences == []
    assert service.list_memories("bob").total == 0


OPERATIONS: dict[str, Callable[[MemoryService, str, str], Any]] = {
    "search": lambda s, cube, mid: s.search("bob", "PIN", cube_ids=[cube]),
    "list": lambda s, cube, mid: s.list_memories("bob", cube_ids=[cube]),
    "get": lambda s, cube, mid: s.get_memory("bob", mid),
    "get in cube": lambda s, cube, mid: s.get_memory("bob", mid, cube_id=cube),
    "update": lambda s, cube, mid: s.update_memory("bob", mid, memory="hacked"),
    "archive": lambda s, cube, mid: s.update_memory("bob", mid, status="archived"),
    "delete": lambda s, cube, mid: s.delete_memory("bob", mid),
    "delete all": lambda s, cube, mid: s.delete_all("bob", cube),
    "history": lambda s, cube, mid: s.history("bob", mid),
    "add": lambda s, cube, mid: s.add_memory("bob", memory_content="bob was here", cube_id=cube),
    "messages": lambda s, cube, mid: s.get_messages("bob", "private", cube_ids=[cube]),
    "clear chat": lambda s, cube, mid: s.clear_chat_history("bob", "private", cube_id=cube),
    "delete cube": lambda s, cube, mid: s.delete_cube("bob", cube),
    "share cube": lambda s, cube, mid: s.share_cube("bob", cube, "bob", Permission.WRITE),
    "get cube": lambda s, cube, mid: s.get_cube("bob", cube),
    "export": lambda s, cube, mid: list(export_cube(s, "bob", cube)),
    "import": lambda s, cube, mid: import_lines(s, "bob", list(export_cube(s, "alice", cube)), cube),
    "act as alice": lambda s, cube, mid: s.search("bob", "PIN", user_id="alice"),
    "list alice's cubes": lambda s, cube, mid: s.list_cubes("bob", user_id="alice"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_on_alices_cube_is_refused_to_bob(two_users: tuple[MemoryService, str],
                                                          operation: str) -> None:
    service, memory_id = two_users
    before = service.list_memories("alice").total
    with pytest.raises((Forbidden, NotFound)):
        OPERATIONS[operation](service, alice_cube(service), memory_id)
    assert service.list_memories("alice").total == before
    assert service.get_memory("alice", memory_id).memory == "Alice's bank PIN hint is her first cat."
    assert len(service.get_messages("alice", "private")) == 1


def test_a_read_share_allows_reading_but_not_writing(two_users: tuple[MemoryService, str]) -> None:
    service, memory_id = two_users
    cube = alice_cube(service)
    service.share_cube("alice", cube, "bob", Permission.READ)
    service.accept_share("bob", cube)
    assert service.get_memory("bob", memory_id).id == memory_id
    assert service.search("bob", "bank PIN hint").memories[0].id == memory_id
    assert [c.permission for c in service.list_cubes("bob") if c.cube_id == cube] == ["read"]
    with pytest.raises(Forbidden):
        service.add_memory("bob", memory_content="bob was here", cube_id=cube)
    with pytest.raises(Forbidden):
        service.update_memory("bob", memory_id, memory="changed")
    with pytest.raises(Forbidden):
        service.delete_memory("bob", memory_id)
    service.unshare_cube("alice", cube, "bob")
    with pytest.raises(NotFound):
        service.get_memory("bob", memory_id)


def test_a_write_share_allows_adding_and_editing_but_not_managing(two_users: tuple[MemoryService, str]) -> None:
    service, memory_id = two_users
    cube = alice_cube(service)
    service.share_cube("alice", cube, "bob", Permission.WRITE)
    added = service.add_memory("bob", memory_content="Bob added this note.", cube_id=cube)
    assert added.memories[0].user_id == "bob" and added.cube_id == cube
    assert service.update_memory("bob", memory_id, memory="Updated by Bob.").memory == "Updated by Bob."
    with pytest.raises(Forbidden):
        service.delete_cube("bob", cube)
    with pytest.raises(Forbidden):
        service.share_cube("bob", cube, "bob", Permission.WRITE)


def test_a_users_default_cube_id_cannot_be_taken_before_the_user_exists(service: MemoryService) -> None:
    """Bob made 'carol_default_cube' before carol existed and offered it to her: her writes naming her
    usual default cube went to his. Ids of that form are kept for their users' default cubes."""
    service.ensure_user("bob")
    for cube_id in ("carol_default_cube", "alice_default_cube", "x_default_cube"):
        with pytest.raises(MemosError) as refused:
            service.create_cube("bob", "trap", cube_id=cube_id)
        assert refused.value.code == "invalid_request" and refused.value.details["field"] == "cube_id"
    assert service.catalog.get_cube("carol_default_cube") is None
    service.ensure_user("carol")
    made = service.catalog.get_cube("carol_default_cube")
    assert made is not None and made.owner_id == "carol"


def test_a_deleted_default_cube_is_made_again_under_its_own_id_and_takes_the_writes_naming_no_cube(
        service: MemoryService) -> None:
    """Deleting one's default cube left writes naming no cube with nowhere to go (404), and its id was kept."""
    service.ensure_user("dave")
    service.delete_cube("dave", "dave_default_cube")
    with pytest.raises(NotFound):
        service.add_memory("dave", memory_content="Dave feeds the cat.")
    again = service.create_cube("dave", "Dave's memories", cube_id="dave_default_cube")
    assert again.is_default
    assert service.add_memory("dave", memory_content="Dave feeds the cat.").memories[0].cube_id == "dave_default_cube"


def test_unknown_users_and_cubes_are_not_found(service: MemoryService) -> None:
    service.ensure_user("alice")
    with pytest.raises(NotFound, match="cube 'nope'"):
        service.search("alice", "x", cube_ids=["nope"])
    # sharing with an unknown user answers as if it existed (user ids cannot be probed) and stores nothing
    assert service.share_cube("alice", alice_cube(service), "ghost").shared_with == {}
    assert service.catalog.get_user("ghost") is None
    with pytest.raises(NotFound):
        service.get_memory("alice", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound):
        service.get_memory("alice", "not-a-uuid")


def test_only_admins_register_and_list_users_and_act_for_others(service: MemoryService) -> None:
    service.ensure_user("alice")
    with pytest.raises(Forbidden):
        service.register_user("alice", "mallory")
    with pytest.raises(Forbidden):
        service.list_users("alice")
    _admin, admin_cube = service.register_user(ROOT_USER, "ops", role=Role.ADMIN)
    assert admin_cube.owner_id == "ops" and admin_cube.is_default
    user, cube = service.register_user("ops", "carol", user_name="Carol")
    assert user.user_name == "Carol" and service.get_cube("carol", cube.cube_id).permission == "owner"
    with pytest.raises(Conflict):
        service.register_user("ops", "carol")
    with pytest.raises(Forbidden):
        service.register_user("ops", "root2", role=Role.ROOT)
    service.add_memory("ops", user_id="carol", memory_content="Added by an admin for Carol.")
    assert service.search("carol", "admin for Carol").memories[0].user_id == "carol"
    assert {u.user_id for u in service.list_users("ops")} >= {"root", "alice", "ops", "carol"}


def test_deleting_a_cube_removes_its_memories_and_messages(two_users: tuple[MemoryService, str]) -> None:
    service, _memory_id = two_users
    service.create_cube("alice", "scratch", cube_id="scratch")
    service.add_memory("alice", cube_id="scratch", memory_content="Temporary thought.")
    service.delete_cube("alice", "scratch")
    with pytest.raises(NotFound):
        service.get_cube("alice", "scratch")
    assert service.list_memories("alice").total == 2
    assert all(c.cube_id != "scratch" for c in service.list_cubes("alice"))
    with pytest.raises(MemosError):
        service.add_memory("alice", cube_id="scratch", memory_content="into a deleted cube")


def test_a_guest_reads_its_cubes_but_changes_nothing(two_users: tuple[MemoryService, str]) -> None:
    service, _ = two_users
    service.register_user(ROOT_USER, "gus", role=Role.GUEST)
    service.add_memory(ROOT_USER, cube_id="gus_default_cube", memory_content="Gus likes green tea.")
    service.share_cube("alice", alice_cube(service), "gus", Permission.WRITE)
    service.accept_share("gus", alice_cube(service))  # its own scope: a guest may choose what it reads
    memory_id = service.search("gus", "green tea").memories[0].id
    for attempt in (lambda: service.add_memory("gus", memory_content="Gus was here."),
                    lambda: service.add_memory("gus", memory_content="Gus was here.", cube_id=alice_cube(service)),
                    lambda: service.update_memory("gus", memory_id, memory="changed"),
                    lambda: service.delete_memory("gus", memory_id),
                    lambda: service.delete_all("gus", "gus_default_cube"),
                    lambda: service.delete_matching("gus", None),
                    lambda: service.create_cube("gus", "mine"),
                    lambda: service.share_cube("gus", "gus_default_cube", "alice"),
                    lambda: service.clear_chat_history("gus")):
        with pytest.raises(Forbidden, match="guest"):
            attempt()
    assert service.get_memory("gus", memory_id).memory == "Gus likes green tea."
    assert service.list_memories("gus").total == 3


def test_nobody_registers_or_acts_for_a_user_above_their_own_role(service: MemoryService) -> None:
    service.register_user(ROOT_USER, "ops", role=Role.ADMIN)
    service.register_user("ops", "ops2", role=Role.ADMIN)  # an equal role is allowed
    with pytest.raises(Forbidden):
        service.register_user("ops", "root2", role=Role.ROOT)
    with pytest.raises(Forbidden):
        service.search("ops", "anything", user_id=ROOT_USER)
    with pytest.raises(Forbidden):
        service.add_memory("ops", user_id=ROOT_USER, memory_content="planted")
    assert service.list_memories(ROOT_USER).total == 0


def test_an_offered_share_reaches_only_calls_naming_it_until_accepted(two_users: tuple[MemoryService, str]) -> None:
    service, memory_id = two_users
    cube = alice_cube(service)
    service.share_cube("alice", cube, "bob", Permission.READ)
    assert service.search("bob", "bank PIN hint").memories == []
    assert service.search("bob", "bank PIN hint", cube_ids=[cube]).memories[0].id == memory_id
    assert [(s.cube_id, s.state) for s in service.list_shares("bob")] == [(cube, "pending")]
    service.share_cube("alice", cube, "bob", Permission.WRITE)  # a new permission, still an offer
    assert [(s.permission, s.state) for s in service.list_shares("bob")] == [("write", "pending")]
    service.accept_share("bob", cube)
    service.share_cube("alice", cube, "bob", Permission.READ)  # changing it keeps it accepted
    assert [(s.permission, s.state) for s in service.list_shares("bob")] == [("read", "accepted")]
    assert service.search("bob", "bank PIN hint").memories[0].id == memory_id
    service.decline_share("bob", cube)
    assert service.list_shares("bob") == []
    with pytest.raises(NotFound):
        service.decline_share("bob", cube)
    with pytest.raises(Forbidden):
        service.search("bob", "bank PIN hint", cube_ids=[cube])


def test_deleting_several_memories_checks_them_all_before_deleting_any(two_users: tuple[MemoryService, str]) -> None:
    service, alices = two_users
    service.share_cube("alice", alice_cube(service), "bob", Permission.READ)
    service.accept_share("bob", alice_cube(service))
    bobs = service.add_memory("bob", memory_content="Bob's note on the trip.", metadata={"topic": "trip"}).added
    service.update_memory("alice", alices, metadata={"topic": "trip"})
    with pytest.raises(Forbidden):
        service.delete_memories("bob", [*bobs, alices])
    assert service.get_memory("bob", bobs[0]).memory == "Bob's note on the trip."
    deleted, skipped = service.delete_matching("bob", {"metadata": {"topic": "trip"}})
    assert (deleted, skipped) == (1, [alice_cube(service)])
    assert service.get_memory("alice", alices).metadata == {"topic": "trip"}
    with pytest.raises(NotFound):
        service.get_memory("bob", bobs[0])


@pytest.mark.parametrize("metadata", [{"n": float("nan")}, {"n": float("inf")}, {"n": [1, float("-inf")]},
                                      {"n": 2**64}, {"n": {"deep": -(2**63) - 1}}])
def test_metadata_that_a_store_cannot_keep_exactly_is_refused(service: MemoryService, metadata: dict[str, Any]) -> None:
    service.ensure_user("alice")
    with pytest.raises(MemosError, match="finite number") as refused:
        service.add_memory("alice", memory_content="A note.", metadata=metadata)
    assert refused.value.status == 400 and refused.value.details["field"] == "metadata.n"
    assert service.list_memories("alice").total == 0


def test_only_the_owner_of_a_cube_sees_whom_it_is_shared_with(two_users: tuple[MemoryService, str]) -> None:
    """A reader of a shared cube saw every share of it (who else, with what permission) through
    list_cubes and get_cube, on MCP as a tool and a resource; the REST and UI faces showed nothing."""
    service, _ = two_users
    service.ensure_user("carol")
    cube = alice_cube(service)
    service.share_cube("alice", cube, "bob", Permission.READ)
    service.share_cube("alice", cube, "carol", Permission.WRITE)
    for user in ("bob", "carol"):
        service.accept_share(user, cube)
    everyone = {"bob": Permission.READ, "carol": Permission.WRITE}
    assert service.get_cube("alice", cube).shared_with == everyone
    assert next(c for c in service.list_cubes("alice") if c.cube_id == cube).shared_with == everyone
    assert service.get_cube(ROOT_USER, cube).shared_with == everyone  # an admin manages it
    for user in ("bob", "carol"):
        own = {user: everyone[user]}
        assert service.get_cube(user, cube).shared_with == own
        assert next(c for c in service.list_cubes(user) if c.cube_id == cube).shared_with == own
