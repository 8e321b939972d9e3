"""The catalog's contract on both backends (SQLite under a data directory, a real PostgreSQL), its
migrations, and the upgrade in place of catalogs made by releases before Alembic (built here with raw
sqlite3, as those releases wrote them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from memos_mcp.core.models import (
    Cube,
    HistoryEvent,
    Message,
    Permission,
    Role,
    Task,
    TaskStatus,
    User,
)
from memos_mcp.core.stores import catalog_db
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.catalog_tables import HEAD
from memos_mcp.errors import DataDirReadOnly, StorageError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a new catalog lives: an SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "catalog.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def catalog(location: Path | str) -> Iterator[Catalog]:
    opened = Catalog(location)
    yield opened
    opened.close()


def user(user_id: str, role: Role = Role.USER, at: datetime = T0) -> User:
    return User(user_id=user_id, user_name=user_id, role=role, created_at=at)


def cube(cube_id: str, owner: str, at: datetime = T0, default: bool = True) -> Cube:
    return Cube(cube_id=cube_id, name=cube_id, owner_id=owner, created_at=at, is_default=default)


def event(memory_id: str, kind: str = "ADD", cube_id: str = "c-alice", text: str | None = "m") -> HistoryEvent:
    return HistoryEvent(memory_id=memory_id, cube_id=cube_id, event=kind, actor="alice", at=T0, new_memory=text)


def people(catalog: Catalog) -> None:
    catalog.create_user_with_cube(user("alice"), cube("c-alice", "alice"))
    catalog.create_user_with_cube(user("bob", at=T0 + timedelta(seconds=1)),
                                  cube("c-bob", "bob", T0 + timedelta(seconds=1)))


def test_the_migration_head_in_the_code_is_the_newest_script() -> None:
    config = Config()
    config.set_main_option("script_location", str(catalog_db.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


def test_a_new_catalog_is_at_the_head_revision_with_the_whole_schema(catalog: Catalog) -> None:
    assert catalog.check().startswith(f"schema version {HEAD} (head) on {catalog.backend}")
    with catalog.engine.connect() as conn:
        assert catalog_db.missing_schema(conn) == []
        assert catalog_db.revision(conn) == HEAD
    assert catalog.counts() == dict.fromkeys(("users", "cubes", "shares", "api_keys", "messages", "history"), 0)


def test_users_cubes_and_shares_round_trip(catalog: Catalog) -> None:
    people(catalog)
    assert [u.user_id for u in catalog.list_users()] == ["alice", "bob"]
    assert catalog.get_user("alice") == user("alice")
    assert catalog.get_user("nobody") is None
    catalog.set_user_role("bob", Role.ADMIN)
    assert catalog.get_user("bob") == user("bob", Role.ADMIN, T0 + timedelta(seconds=1))
    catalog.create_cube(cube("c-extra", "alice", T0 + timedelta(seconds=2), default=False))
    assert [c.cube_id for c in catalog.cubes_of("alice")] == ["c-alice", "c-extra"]
    assert catalog.default_cube_of("alice") is not None and catalog.default_cube_of("alice").cube_id == "c-alice"

    catalog.share_cube("c-alice", "bob", Permission.READ, T0)
    assert catalog.get_cube("c-alice").offered_to == {"bob": Permission.READ}  # type: ignore[union-attr]
    assert [c.cube_id for c in catalog.cubes_of("bob")] == ["c-bob"]  # an offer is not access
    catalog.share_cube("c-alice", "bob", Permission.WRITE, T0)  # sharing again changes only the permission
    assert [(s.state, s.permission) for s in catalog.shares_of("bob")] == [("pending", Permission.WRITE)]
    assert catalog.accept_share("c-alice", "bob") and not catalog.accept_share("c-alice", "carol")
    shared = catalog.get_cube("c-alice")
    assert shared is not None and shared.shared_with == {"bob": Permission.WRITE} and shared.owner_role == Role.USER
    assert [c.cube_id for c in catalog.cubes_of("bob")] == ["c-alice", "c-bob"]
    assert [s.cube_id for s in catalog.shares_of("bob", "accepted")] == ["c-alice"]
    assert catalog.unshare_cube("c-alice", "bob") and not catalog.unshare_cube("c-alice", "bob")
    assert [c.cube_id for c in catalog.list_cubes()] == ["c-alice", "c-bob", "c-extra"]


def test_a_second_cube_with_a_taken_id_fails_and_changes_nothing(catalog: Catalog) -> None:
    people(catalog)
    with pytest.raises(StorageError):
        catalog.create_user_with_cube(user("carol"), cube("c-alice", "carol"))
    assert catalog.get_user("carol") is None  # the user and its cube are one transaction
    assert catalog.get_cube("c-alice").owner_id == "alice"  # type: ignore[union-attr]


def test_api_keys_are_found_by_hash_until_revoked(catalog: Catalog) -> None:
    people(catalog)
    catalog.add_api_key("k1", "hash-1", "alice", T0)
    assert catalog.user_for_key_hash("hash-1") == "alice" and catalog.api_key_user("k1") == "alice"
    assert catalog.revoke_api_key("k1", T0) and not catalog.revoke_api_key("k1", T0)
    assert catalog.user_for_key_hash("hash-1") is None and catalog.api_key_user("k1") is None
    assert [(k["key_id"], k["revoked"]) for k in catalog.list_api_keys()] == [("k1", True)]
    assert catalog.list_api_keys(active_only=True) == []


def test_messages_conversations_and_tasks(catalog: Catalog) -> None:
    people(catalog)
    stored = [Message(id=f"m{i}", cube_id="c-alice", conversation_id="talk", user_id="alice", role="user",
                      content=f"line {i}", created_at=T0 + timedelta(seconds=i)) for i in range(5)]
    task = Task(task_id="t1", user_id="alice", cube_id="c-alice", status=TaskStatus.QUEUED, created_at=T0,
                updated_at=T0, conversation_id="talk")
    catalog.add_messages(stored, task)
    assert [m.id for m in catalog.recent_messages(["c-alice"], "talk", 2)] == ["m3", "m4"]
    new, earlier = catalog.messages_with_window(["m4", "m3"], 2)
    assert [m.id for m in new] == ["m3", "m4"] and [m.id for m in earlier] == ["m1", "m2"]
    assert catalog.message_cubes(["m1", "nope"]) == {"m1": "c-alice"}
    (talk,) = catalog.conversations(["c-alice"])
    assert (talk["messages"], talk["updated_at"]) == (5, T0 + timedelta(seconds=4))
    assert [t.task_id for t in catalog.open_tasks()] == ["t1"]
    catalog.put_task(task.model_copy(update={"status": TaskStatus.DONE, "added": ["x"]}))
    assert catalog.open_tasks() == [] and catalog.get_task("t1").added == ["x"]  # type: ignore[union-attr]
    catalog.delete_message_ids(["m0"])
    assert catalog.delete_messages(["c-alice"], "talk") == 4


def test_pending_writes_are_kept_until_ended_and_undone_on_failure(catalog: Catalog) -> None:
    people(catalog)
    catalog.begin_writes([event("a"), event("b")])
    assert [e.memory_id for e in catalog.pending_writes()] == ["a", "b"]
    catalog.end_writes(["a"])
    catalog.undo_writes(["b"])
    assert catalog.pending_writes() == [] and set(catalog.history_cubes(["a", "b"])) == {"a"}
    catalog.begin_writes([event("a", "DELETE", text=None)])  # a delete: recorded pending first ...
    assert [e.event for e in catalog.pending_writes()] == ["DELETE"]
    catalog.forget(["a"])  # ... then the text is erased and the delete ended
    assert [(e.event, e.new_memory) for e in catalog.history("a")] == [("ADD", None), ("DELETE", None)]
    assert catalog.pending_writes() == []


def test_a_key_held_by_a_live_memory_is_not_claimed_again_until_it_is_released(catalog: Catalog) -> None:
    people(catalog)
    assert catalog.begin_writes([event("first")], {"first": "k"}) == {}
    catalog.end_writes(["first"])
    assert catalog.begin_writes([event("second")], {"second": "k"}) == {"second": "first"}
    assert catalog.history("second") == []  # nothing of the duplicate is recorded
    assert catalog.begin_writes([event("other", cube_id="c-bob")], {"other": "k"}) == {}  # keys are per cube
    catalog.begin_writes([event("first", "UPDATE", text="changed")])  # an update releases the key
    assert catalog.begin_writes([event("third")], {"third": "k"}) == {}
    catalog.begin_writes([event("third", "DELETE", text=None)])  # and so does a delete
    catalog.forget(["third"])
    assert catalog.begin_writes([event("fourth")], {"fourth": "k"}) == {}
    catalog.undo_writes(["fourth"])  # and an add that failed
    assert catalog.begin_writes([event("fifth")], {"fifth": "k"}) == {}


def test_one_write_of_many_memories_marks_each_event_pending_with_its_own_history_and_key(
        catalog: Catalog) -> None:
    people(catalog)
    catalog.begin_writes([event("held")], {"held": "k-1"})
    ids = [f"m{i:03d}" for i in range(120)]
    events = [event(m, text=f"text {m}", cube_id="c-bob" if i % 3 == 0 else "c-alice") for i, m in enumerate(ids)]
    keys = {m: f"k{i}" for i, m in enumerate(ids)} | {"m001": "k-1"}  # m001 repeats the key "held" holds
    assert catalog.begin_writes([*events, event("held", "UPDATE", text="changed")], keys) == {"m001": "held"}
    stored = [m for m in ids if m != "m001"]
    pending = catalog.pending_writes()
    assert [e.memory_id for e in pending] == ["held", *stored, "held"]  # in the order of the events
    assert all(catalog.history(m)[0].new_memory == f"text {m}" for m in stored)
    catalog.undo_writes(stored[:60])
    assert set(catalog.history_cubes(stored)) == set(stored[60:])
    # the undone adds released their keys, the others still hold theirs; the update released "k-1"
    again = {m: keys[m] for m in stored}
    assert catalog.begin_writes([event(m, cube_id=e.cube_id) for m, e in zip(ids, events, strict=True)
                                 if m in again], again) == {m: m for m in stored[60:]}
    assert catalog.begin_writes([event("new")], {"new": "k-1"}) == {}


def test_deleting_a_cube_takes_its_shares_messages_history_and_keys(catalog: Catalog) -> None:
    people(catalog)
    catalog.share_cube("c-alice", "bob", Permission.READ, T0)
    catalog.begin_writes([event("a")], {"a": "k"})
    catalog.delete_cube("c-alice")
    assert catalog.get_cube("c-alice") is None and catalog.shares_of("bob") == []
    assert catalog.history("a") == [] and catalog.pending_writes() == []
    assert catalog.begin_writes([event("b")], {"b": "k"}) == {}


def test_meta_values_are_replaced(catalog: Catalog) -> None:
    assert catalog.get_meta("dimension") is None
    catalog.set_meta("dimension", "384")
    catalog.set_meta("dimension", "768")
    assert catalog.get_meta("dimension") == "768"


def test_a_reopened_catalog_keeps_its_rows_and_migrates_nothing(location: Path | str) -> None:
    first = Catalog(location)
    people(first)
    first.close()
    again = Catalog(location)
    try:
        with again.engine.connect() as conn:
            assert catalog_db.revision(conn) == HEAD
        assert catalog_db.upgrade(again.engine, again.location) is False
        assert [u.user_id for u in again.list_users()] == ["alice", "bob"]
    finally:
        again.close()


def test_a_read_only_catalog_of_the_revision_before_history_steps_still_reads_its_history(
        location: Path | str) -> None:
    first = Catalog(location)
    people(first)
    first.begin_writes([event("mem-1", text="The boat is in Kiel.")])
    first.end_writes(["mem-1"])
    with first.engine.begin() as conn:  # as revision 0003 left it
        conn.execute(sa.text("DROP INDEX history_step"))
        conn.execute(sa.text("ALTER TABLE history DROP COLUMN step"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
    first.close()
    reader = Catalog(location, read_only=True)
    try:
        assert "read-only" in reader.check()
        assert [e.new_memory for e in reader.history("mem-1")] == ["The boat is in Kiel."]
        assert reader.pending_writes() == [] and reader.history_cubes(["mem-1"]) == {"mem-1": {"c-alice"}}
    finally:
        reader.close()


def test_a_read_only_catalog_reads_and_refuses_every_write(location: Path | str) -> None:
    first = Catalog(location)
    people(first)
    first.close()
    reader = Catalog(location, read_only=True)
    try:
        assert "read-only" in reader.check()
        assert reader.get_cube("c-alice") is not None
        with pytest.raises(DataDirReadOnly):
            reader.set_meta("x", "y")
    finally:
        reader.close()


def test_an_unreachable_postgresql_fails_with_a_storage_error_naming_it_without_the_password(
        tmp_path: Path) -> None:
    url = f"postgresql://memos:s3cret@/memos?host={tmp_path}&connect_timeout=2"
    with pytest.raises(StorageError) as caught:
        Catalog(url)
    assert "cannot open the catalog at postgresql+psycopg://memos:***@/memos" in caught.value.message
    assert "s3cret" not in caught.value.message


# --- catalogs made before Alembic --------------------------------------------------------------

# The schema the first release wrote (schema_version 1, before tasks.detail/job and shares.state).
FIRST_RELEASE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (user_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE cubes (cube_id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT NOT NULL REFERENCES users(user_id),
    created_at REAL NOT NULL, is_default INTEGER NOT NULL DEFAULT 0);
CREATE INDEX cubes_owner ON cubes(owner_id);
CREATE TABLE shares (cube_id TEXT NOT NULL REFERENCES cubes(cube_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    permission TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (cube_id, user_id));
CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE, created_at REAL NOT NULL, revoked_at REAL);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    cube_id TEXT NOT NULL, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, name TEXT, message_id TEXT, chat_time REAL, created_at REAL NOT NULL);
CREATE INDEX messages_conv ON messages(cube_id, conversation_id, seq);
CREATE INDEX messages_user ON messages(user_id, conversation_id);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, memory_id TEXT NOT NULL, cube_id TEXT NOT NULL,
    event TEXT NOT NULL, actor TEXT NOT NULL, at REAL NOT NULL, old_memory TEXT, new_memory TEXT);
CREATE INDEX history_memory ON history(memory_id, seq);
CREATE INDEX history_cube ON history(cube_id);
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, cube_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, added TEXT NOT NULL DEFAULT '[]',
    deduplicated TEXT NOT NULL DEFAULT '[]', error TEXT);
CREATE TABLE pending_writes (history_seq INTEGER PRIMARY KEY, memory_id TEXT NOT NULL, cube_id TEXT NOT NULL,
    event TEXT NOT NULL);
CREATE INDEX pending_writes_memory ON pending_writes(memory_id);
INSERT INTO meta VALUES ('schema_version', '1'), ('embedding_model', 'local:model'), ('dimension', '384');
INSERT INTO users VALUES ('alice', 'Alice', 'user', 1767225600.5), ('bob', 'Bob', 'user', 1767225601.0);
INSERT INTO cubes VALUES ('c-alice', 'home', 'alice', 1767225600.5, 1), ('c-bob', 'home', 'bob', 1767225601.0, 1);
INSERT INTO shares VALUES ('c-alice', 'bob', 'read', 1767225700.0);
INSERT INTO api_keys VALUES ('k1', 'hash-1', 'alice', 1767225600.5, NULL);
INSERT INTO messages (id, cube_id, conversation_id, user_id, role, content, created_at)
    VALUES ('m1', 'c-alice', 'talk', 'alice', 'user', 'The boat is in Kiel.', 1767225800.0);
INSERT INTO history (memory_id, cube_id, event, actor, at, new_memory)
    VALUES ('mem-1', 'c-alice', 'ADD', 'alice', 1767225800.0, 'The boat is in Kiel.');
INSERT INTO tasks (task_id, user_id, cube_id, status, created_at, updated_at, added)
    VALUES ('t1', 'alice', 'c-alice', 'done', 1767225800.0, 1767225800.0, '["mem-1"]');
"""


def test_a_first_release_catalog_upgrades_in_place_with_its_data_intact_and_its_schema_current(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    old = sqlite3.connect(path)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(FIRST_RELEASE)
    old.close()

    catalog = Catalog(path)
    try:
        assert catalog.check().startswith(f"schema version {HEAD} (head)")
        assert [u.user_id for u in catalog.list_users()] == ["alice", "bob"]
        home = catalog.get_cube("c-alice")
        assert home is not None and home.shared_with == {"bob": Permission.READ}  # old shares stay accepted
        assert catalog.user_for_key_hash("hash-1") == "alice"
        assert [m.content for m in catalog.recent_messages(["c-alice"], "talk", 10)] == ["The boat is in Kiel."]
        assert [e.new_memory for e in catalog.history("mem-1")] == ["The boat is in Kiel."]
        task = catalog.get_task("t1")
        assert task is not None and task.added == ["mem-1"] and task.job is None  # the added columns' defaults
        assert catalog.get_meta("embedding_model") == "local:model"
        # the upgraded catalog takes new rows in the old tables and the new ones
        catalog.add_messages([Message(id="m2", cube_id="c-alice", conversation_id="talk", user_id="alice",
                                      role="assistant", content="Noted.", created_at=T0)])
        assert catalog.begin_writes([event("mem-2")], {"mem-2": "k"}) == {}
        assert [m.id for m in catalog.recent_messages(["c-alice"], "talk", 10)] == ["m1", "m2"]
    finally:
        catalog.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        columns = {row[1] for row in check.execute("PRAGMA table_info(tasks)")}
        assert {"detail", "job"} <= columns
    finally:
        check.close()


def test_a_catalog_migration_stopped_part_way_leaves_the_old_catalog_whole(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(FIRST_RELEASE)
    # a table in the way of the second revision: the migration stops after the baseline did its part
    old.executescript("DROP INDEX history_memory; CREATE TABLE memory_keys (x TEXT);")
    old.close()
    with pytest.raises(StorageError):
        Catalog(path)
    check = sqlite3.connect(path)
    try:
        tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "alembic_version" not in tables  # all of the migration was rolled back
        assert {r[1] for r in check.execute("PRAGMA table_info(tasks)")} >= {"task_id"}
        assert "detail" not in {r[1] for r in check.execute("PRAGMA table_info(tasks)")}
        assert "history_memory" not in {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
    finally:
        check.close()


def test_the_catalog_check_names_what_a_postgresql_catalog_lost_while_open(postgres_url: str) -> None:
    catalog = Catalog(postgres_url)
    try:
        with catalog.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX history_cube"))
        with pytest.raises(StorageError, match="lacks index history_cube"):
            catalog.check()
    finally:
        catalog.close()


def test_doctor_reports_a_postgresql_catalog_reachable_at_the_newest_revision(
        tmp_path: Path, postgres_url: str, clean_environment: None) -> None:
    from tests.test_cli import check_lines, memos, ok

    doctor = ok(memos(tmp_path, tmp_path / "data", "doctor", DATABASE_URL=postgres_url))
    verdict, detail = check_lines(doctor.stdout)["catalog"]
    assert verdict == "ok"
    shown = catalog_db.shown(catalog_db.database_url(postgres_url))
    assert shown.startswith("postgresql+psycopg://postgres@/t_")
    assert detail.startswith(f"{shown}: schema version {HEAD} (head) on postgresql")
    assert not (tmp_path / "data" / "catalog.sqlite3").exists()


def test_a_write_that_cannot_take_the_sqlite_lock_fails_with_a_storage_error_and_changes_nothing(
        tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    other = sqlite3.connect(tmp_path / "catalog.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
        with pytest.raises(StorageError, match="catalog write failed"):
            catalog.set_meta("k", "v")
        other.execute("ROLLBACK")
        assert catalog.get_meta("k") is None
        catalog.set_meta("k", "v")  # the connection is still usable once the lock is free
        assert catalog.get_meta("k") == "v"
    finally:
        other.close()
        catalog.close()
