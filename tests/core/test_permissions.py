"""Isolation: a user never reads or writes another user's cube without a share, through any
operation; shares grant exactly read or write; only root and admin manage other users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memos_mcp.core.models import Permission, Role
from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.errors import Conflict, Forbidden, InvalidRequest, MemosError, NotFound


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
