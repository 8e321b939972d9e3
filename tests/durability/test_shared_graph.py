"""Two real ``memos-mcp serve`` processes on one PostgreSQL catalog with graph memory on: the graph is
in that database, and different memories naming the same people, added through both at the same
moment, make one relation whose provenance holds every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.durability.support import BASE_ENV, post_at_once
from tests.postgres import rows
from tests.processes import serving

pytestmark = pytest.mark.usefixtures("clean_environment")

ROUNDS = 8
ADD = "/v1/memories"


def test_two_processes_linking_the_same_people_at_the_same_moment_store_one_relation(
        tmp_path: Path, postgres_url: str) -> None:
    ids: list[str] = []
    with serving([tmp_path / "one", tmp_path / "two"], **BASE_ENV, DATABASE_URL=postgres_url) as (first, second):
        for n in range(ROUNDS):
            answers = post_at_once([(first.url, ADD, {"content": f"Alice met Bob at the market on day {n}."}),
                                    (second.url, ADD, {"content": f"Alice met Bob at the harbour on day {n}."})])
            assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
            ids += [str(a.json()["data"][0]["id"]) for a in answers]
    relations = [r for (r,) in rows(postgres_url, "SELECT id FROM graph_relations "
                                                  "WHERE subject = 'alice' AND object = 'bob'")]
    linked = [m for (m,) in rows(postgres_url, "SELECT memory_id FROM graph_links WHERE relation_id = %(id)s",
                                 id=relations[0] if relations else "")]
    entities = [k for (k,) in rows(postgres_url, "SELECT key FROM graph_entities ORDER BY key")]
    assert len(set(ids)) == 2 * ROUNDS
    assert len(relations) == 1
    assert sorted(linked) == sorted(ids)
    assert entities.count("alice") == entities.count("bob") == 1
    assert not (tmp_path / "one" / "graph.sqlite3").exists() and not (tmp_path / "two" / "graph.sqlite3").exists()
