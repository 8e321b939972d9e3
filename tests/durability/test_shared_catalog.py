"""Two real ``memos-mcp serve`` processes on one PostgreSQL catalog (each with its own data directory
and vector store, as replicas are in this stage): the same text added to one cube through both at the
same moment is stored as one memory, whichever process wins; both answers name it."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.durability.support import BASE_ENV, TIMEOUT, post_at_once
from tests.postgres import rows
from tests.processes import serving

pytestmark = pytest.mark.usefixtures("clean_environment")

ROUNDS = 8


def test_two_processes_adding_the_same_text_at_the_same_moment_store_one_memory(
        tmp_path: Path, postgres_url: str) -> None:
    env = BASE_ENV | {"DATABASE_URL": postgres_url, "MEMOS_GRAPH__ENABLED": "false"}
    with serving([tmp_path / "one", tmp_path / "two"], **env) as servers:
        for n in range(ROUNDS):
            text = f"The spare key number {n} hangs behind the kitchen door."
            answers = post_at_once([(s.url, "/v1/memories", {"content": text}) for s in servers])
            assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
            items = [a.json()["data"][0] for a in answers]
            assert len({i["id"] for i in items}) == 1, items  # both name one memory
            assert sorted(i["event"] for i in items) == ["ADD", "NONE"], items
    added = rows(postgres_url, "SELECT new_memory, count(*) FROM history WHERE event = 'ADD' GROUP BY new_memory")
    assert len(added) == ROUNDS and all(count == 1 for _, count in added), added
    assert rows(postgres_url, "SELECT (SELECT count(*) FROM memory_keys), (SELECT count(*) FROM pending_writes)") \
        == [(ROUNDS, 0)]


def test_replicas_starting_at_the_same_moment_on_a_new_database_all_start_with_one_root_and_one_user(
        tmp_path: Path, postgres_url: str) -> None:
    env = BASE_ENV | {"DATABASE_URL": postgres_url, "MEMOS_GRAPH__ENABLED": "false"}
    with serving([tmp_path / f"replica-{n}" for n in range(3)], **env) as servers:
        for server in servers:
            with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
                assert http.get("/v1/memories").status_code == 200
    users = rows(postgres_url, "SELECT user_id, count(*) FROM users GROUP BY user_id ORDER BY 1")
    defaults = rows(postgres_url, "SELECT owner_id, count(*) FROM cubes WHERE is_default = 1 "
                                  "GROUP BY owner_id ORDER BY 1")
    assert [u for u, _ in users] == ["default", "root"], users
    assert all(n == 1 for _, n in users) and all(n == 1 for _, n in defaults) and len(defaults) == len(users)
