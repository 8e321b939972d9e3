"""Users made on first use (``ensure_user``) by services that share one PostgreSQL catalog (each
with its own connection pool and write lock, as replicas are): when both make the same user at the
same moment, both succeed and the catalog holds one user with one default cube."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from memos_mcp.core.models import User
from memos_mcp.core.stores.catalog_db import database_url
from tests.conftest import ServiceFactory
from tests.postgres import PostgresServer

USERS = 25
TIMEOUT = 30.0


@pytest.fixture
def backend() -> str:
    return "edge"


def test_two_replicas_ensuring_the_same_users_at_the_same_moment_both_succeed_with_one_user_each(
        make_service: ServiceFactory, postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.url(postgres.create_database())
    replicas = [make_service(tmp_path / f"replica-{n}", catalog={"url": url}) for n in range(2)]
    barrier = threading.Barrier(len(replicas))
    got: list[list[User | BaseException]] = [[] for _ in replicas]

    def ensure(index: int) -> None:
        for n in range(USERS):
            barrier.wait(timeout=TIMEOUT)  # both ask for user n together
            try:
                got[index].append(replicas[index].ensure_user(f"user-{n}"))
            except BaseException as exc:  # reported by the assertion below
                got[index].append(exc)

    threads = [threading.Thread(target=ensure, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    for answers in got:
        assert [a.user_id if isinstance(a, User) else repr(a) for a in answers] == \
            [f"user-{n}" for n in range(USERS)]
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            users = conn.execute(sa.text("SELECT count(*) FROM users WHERE user_id LIKE 'user-%'")).scalar()
            cubes = conn.execute(sa.text("SELECT owner_id, count(*) FROM cubes WHERE owner_id LIKE 'user-%' "
                                         "GROUP BY owner_id")).all()
    finally:
        engine.dispose()
    assert users == USERS and len(cubes) == USERS and all(n == 1 for _, n in cubes), cubes
