"""The catalog: SQLite (WAL) under the data directory for users, cubes, shares, API keys,
conversations (raw messages) and memory history. One connection, serialised by a lock; every
write is one transaction, so a process killed mid-write loses at most that write. A write that spans
the vector store too records its history as pending first (``begin_writes``); see ``MemoryService``."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memos_mcp.core.models import Cube, HistoryEvent, Message, Permission, Role, Share, ShareState, Task, User
from memos_mcp.core.stores.sqlite_files import connect, migrate, missing_schema, statements
from memos_mcp.core.timeparse import from_epoch, to_epoch
from memos_mcp.errors import DataDirReadOnly, StorageError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cubes (
    cube_id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_id TEXT NOT NULL REFERENCES users(user_id),
    created_at REAL NOT NULL, is_default INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS cubes_owner ON cubes(owner_id);
CREATE TABLE IF NOT EXISTS shares (
    cube_id TEXT NOT NULL REFERENCES cubes(cube_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    permission TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (cube_id, user_id));
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at REAL NOT NULL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    cube_id TEXT NOT NULL, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, name TEXT, message_id TEXT, chat_time REAL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_conv ON messages(cube_id, conversation_id, seq);
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, conversation_id);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, memory_id TEXT NOT NULL, cube_id TEXT NOT NULL,
    event TEXT NOT NULL, actor TEXT NOT NULL, at REAL NOT NULL, old_memory TEXT, new_memory TEXT);
CREATE INDEX IF NOT EXISTS history_memory ON history(memory_id, seq);
CREATE INDEX IF NOT EXISTS history_cube ON history(cube_id);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, cube_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, added TEXT NOT NULL DEFAULT '[]',
    deduplicated TEXT NOT NULL DEFAULT '[]', error TEXT);
CREATE TABLE IF NOT EXISTS pending_writes (
    history_seq INTEGER PRIMARY KEY, memory_id TEXT NOT NULL, cube_id TEXT NOT NULL, event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_writes_memory ON pending_writes(memory_id);
"""
# Columns added after the first release, with their definitions: added to older catalogs at open.
# A share's state: shares made before states existed stay accepted, so nobody loses access on upgrade.
_ADDED_COLUMNS = {"tasks": {"detail": "TEXT NOT NULL DEFAULT '{}'", "job": "TEXT"},
                  "shares": {"state": "TEXT NOT NULL DEFAULT 'accepted'"}}
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS tasks_open ON tasks(status, created_at)"


def _migrate(db: sqlite3.Connection) -> None:
    """The whole schema: tables, then the columns and indexes added since (each only if missing)."""
    for statement in statements(_SCHEMA):
        db.execute(statement)
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
    db.execute(_ADDED_INDEXES)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return from_epoch(value) or datetime.fromtimestamp(0, UTC)  # from_epoch: a bad old row never breaks a read


class Catalog:
    """The catalog file at ``path``. Every open creates whatever part of the schema is missing, in one
    transaction (a first start killed half-way leaves all or none of it). ``read_only`` opens a file
    that may not be written (a read-only data directory): nothing is created, and every write raises
    ``DataDirReadOnly``. Raises ``StorageError`` when the file cannot be opened, or when a read-only
    file lacks part of the schema."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        try:
            self._db = connect(path, read_only)
            if read_only:
                missing = missing_schema(self._db, _migrate)
                if missing:
                    self._db.close()
                    raise StorageError(f"the read-only catalog at {path} lacks {', '.join(missing)}",
                                       path=str(path), missing=missing)
            else:
                self._db.execute("PRAGMA foreign_keys=ON")
                migrate(self._db, _migrate)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the catalog at {path}: {exc}", path=str(path)) from exc

    def check(self) -> str:
        """The schema is complete and a read answers: a summary; ``StorageError`` naming what is missing."""
        with self._lock:
            try:
                missing = missing_schema(self._db, _migrate)
                version = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"catalog read failed: {exc}", path=str(self.path)) from exc
        if missing:
            raise StorageError(f"the catalog at {self.path} lacks {', '.join(missing)}", missing=missing)
        if version is None:
            raise StorageError(f"the catalog at {self.path} has no schema version", path=str(self.path))
        return f"schema version {version[0]}{', read-only' if self.read_only else ''}"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise DataDirReadOnly(f"cannot write to the catalog at {self.path}: its data directory is read-only",
                                  path=str(self.path))
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"catalog write failed: {exc}") from exc

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"catalog read failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- users -------------------------------------------------------------------------------
    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(user_id=row["user_id"], user_name=row["user_name"], role=Role(row["role"]),
                    created_at=_dt(row["created_at"]))

    def get_user(self, user_id: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return self._user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._rows("SELECT * FROM users ORDER BY created_at, user_id")]

    def create_user_with_cube(self, user: User, cube: Cube) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?)",
                       (user.user_id, user.user_name, user.role.value, _ts(user.created_at)))
            self._insert_cube(db, cube)

    def set_user_role(self, user_id: str, role: Role) -> None:
        with self._tx() as db:
            db.execute("UPDATE users SET role = ? WHERE user_id = ?", (role.value, user_id))

    # --- cubes -------------------------------------------------------------------------------
    @staticmethod
    def _insert_cube(db: sqlite3.Connection, cube: Cube) -> None:
        db.execute("INSERT INTO cubes VALUES (?, ?, ?, ?, ?)",
                   (cube.cube_id, cube.name, cube.owner_id, _ts(cube.created_at), int(cube.is_default)))

    def create_cube(self, cube: Cube) -> None:
        with self._tx() as db:
            self._insert_cube(db, cube)

    def _cube(self, row: sqlite3.Row) -> Cube:
        shares = self._rows("SELECT user_id, permission, state FROM shares WHERE cube_id = ?", (row["cube_id"],))
        owner = self._rows("SELECT role FROM users WHERE user_id = ?", (row["owner_id"],))
        return Cube(cube_id=row["cube_id"], name=row["name"], owner_id=row["owner_id"],
                    owner_role=Role(owner[0]["role"]) if owner else None,
                    created_at=_dt(row["created_at"]), is_default=bool(row["is_default"]),
                    shared_with={s["user_id"]: Permission(s["permission"]) for s in shares if s["state"] == "accepted"},
                    offered_to={s["user_id"]: Permission(s["permission"]) for s in shares if s["state"] != "accepted"})

    def get_cube(self, cube_id: str) -> Cube | None:
        rows = self._rows("SELECT * FROM cubes WHERE cube_id = ?", (cube_id,))
        return self._cube(rows[0]) if rows else None

    def list_cubes(self) -> list[Cube]:
        return [self._cube(r) for r in self._rows("SELECT * FROM cubes ORDER BY created_at, cube_id")]

    def cubes_of(self, user_id: str) -> list[Cube]:
        """Cubes the user owns, then cubes shared with it whose share it accepted."""
        rows = self._rows(
            "SELECT c.* FROM cubes c WHERE c.owner_id = ? UNION "
            "SELECT c.* FROM cubes c JOIN shares s ON s.cube_id = c.cube_id WHERE s.user_id = ? "
            "AND s.state = 'accepted' ORDER BY created_at, cube_id", (user_id, user_id))
        return [self._cube(r) for r in rows]

    def default_cube_of(self, user_id: str) -> Cube | None:
        rows = self._rows("SELECT * FROM cubes WHERE owner_id = ? AND is_default = 1 LIMIT 1", (user_id,))
        return self._cube(rows[0]) if rows else None

    def share_cube(self, cube_id: str, user_id: str, permission: Permission, at: datetime) -> None:
        """Offer the cube (``pending``); sharing again only changes the permission, not the state."""
        with self._tx() as db:
            db.execute("INSERT INTO shares (cube_id, user_id, permission, created_at, state) "
                       "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT (cube_id, user_id) "
                       "DO UPDATE SET permission = excluded.permission", (cube_id, user_id, permission.value, _ts(at)))

    def unshare_cube(self, cube_id: str, user_id: str) -> bool:
        """Remove a share in any state; False if there was none."""
        with self._tx() as db:
            return db.execute("DELETE FROM shares WHERE cube_id = ? AND user_id = ?", (cube_id, user_id)).rowcount > 0

    def accept_share(self, cube_id: str, user_id: str) -> bool:
        """Mark a share accepted; False if the user has no share of the cube."""
        with self._tx() as db:
            return db.execute("UPDATE shares SET state = 'accepted' WHERE cube_id = ? AND user_id = ?",
                              (cube_id, user_id)).rowcount > 0

    def shares_of(self, user_id: str, state: ShareState | None = None) -> list[Share]:
        """The shares offered to or accepted by ``user_id``, oldest first."""
        where = " AND s.state = ?" if state else ""
        rows = self._rows(
            "SELECT s.cube_id, c.name, c.owner_id, s.permission, s.state, s.created_at FROM shares s "
            f"JOIN cubes c ON c.cube_id = s.cube_id WHERE s.user_id = ?{where} ORDER BY s.created_at, s.cube_id",
            (user_id, state) if state else (user_id,))
        return [Share(cube_id=r["cube_id"], cube_name=r["name"], owner_id=r["owner_id"],
                      permission=Permission(r["permission"]), state=r["state"], shared_at=_dt(r["created_at"]))
                for r in rows]

    def delete_cube(self, cube_id: str) -> None:
        """The cube, its shares, its conversations and its history."""
        with self._tx() as db:
            db.execute("DELETE FROM messages WHERE cube_id = ?", (cube_id,))
            db.execute("DELETE FROM history WHERE cube_id = ?", (cube_id,))
            db.execute("DELETE FROM pending_writes WHERE cube_id = ?", (cube_id,))
            db.execute("DELETE FROM shares WHERE cube_id = ?", (cube_id,))
            db.execute("DELETE FROM cubes WHERE cube_id = ?", (cube_id,))

    # --- API keys ----------------------------------------------------------------------------
    def add_api_key(self, key_id: str, key_hash: str, user_id: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", (key_id, key_hash, user_id, _ts(at)))

    def user_for_key_hash(self, key_hash: str) -> str | None:
        rows = self._rows("SELECT user_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,))
        return str(rows[0]["user_id"]) if rows else None

    def list_api_keys(self, active_only: bool = False) -> list[dict[str, Any]]:
        where = " WHERE revoked_at IS NULL" if active_only else ""
        rows = self._rows(f"SELECT key_id, user_id, created_at, revoked_at FROM api_keys{where} ORDER BY created_at")
        return [{"key_id": r["key_id"], "user_id": r["user_id"], "created_at": _dt(r["created_at"]),
                 "revoked": r["revoked_at"] is not None} for r in rows]

    def api_key_user(self, key_id: str) -> str | None:
        """The user an active key acts as, or None if there is no such active key."""
        rows = self._rows("SELECT user_id FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,))
        return str(rows[0]["user_id"]) if rows else None

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        with self._tx() as db:
            cursor = db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                                (_ts(at), key_id))
            return cursor.rowcount > 0

    # --- conversations -----------------------------------------------------------------------
    def add_messages(self, messages: Sequence[Message], task: Task | None = None) -> None:
        """Store messages, and the task that extracts them, in one transaction."""
        with self._tx() as db:
            if task is not None:
                self._put_task(db, task)
            db.executemany(
                "INSERT INTO messages (id, cube_id, conversation_id, user_id, role, content, name, message_id,"
                " chat_time, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(m.id, m.cube_id, m.conversation_id, m.user_id, m.role, m.content, m.name, m.message_id,
                  to_epoch(m.chat_time), _ts(m.created_at)) for m in messages])

    def message_cubes(self, ids: Sequence[str]) -> dict[str, str]:
        """The cube of each stored message among ``ids``."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            rows = self._rows(f"SELECT id, cube_id FROM messages WHERE id IN ({','.join('?' * len(part))})", part)
            found.update({r["id"]: r["cube_id"] for r in rows})
        return found

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        return Message(id=row["id"], cube_id=row["cube_id"], conversation_id=row["conversation_id"],
                       user_id=row["user_id"], role=row["role"], content=row["content"], name=row["name"],
                       message_id=row["message_id"], chat_time=from_epoch(row["chat_time"]),
                       created_at=_dt(row["created_at"]))

    def recent_messages(self, cube_ids: Sequence[str], conversation_id: str, limit: int,
                        before_seq: int | None = None) -> list[Message]:
        """The last ``limit`` messages of a conversation (oldest first)."""
        marks = ",".join("?" * len(cube_ids))
        bound = "AND seq < ?" if before_seq is not None else ""
        args: list[Any] = [*cube_ids, conversation_id]
        if before_seq is not None:
            args.append(before_seq)
        rows = self._rows(
            f"SELECT * FROM messages WHERE cube_id IN ({marks}) AND conversation_id = ? {bound} "
            "ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [self._message(r) for r in reversed(rows)]

    def messages_with_window(self, ids: Sequence[str], window: int) -> tuple[list[Message], list[Message]]:
        """The stored messages among ``ids`` (in order of storing) and the ``window`` messages of the same
        conversation just before the first of them."""
        if not ids:
            return [], []
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT * FROM messages WHERE id IN ({marks}) ORDER BY seq", list(ids))
        if not rows or window == 0:
            return [self._message(r) for r in rows], []
        first = rows[0]
        earlier = self.recent_messages([first["cube_id"]], first["conversation_id"], window, before_seq=first["seq"])
        return [self._message(r) for r in rows], earlier

    def conversations(self, cube_ids: Sequence[str]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(cube_ids))
        rows = self._rows(
            f"SELECT conversation_id, cube_id, COUNT(*) AS n, MIN(created_at) AS first, MAX(created_at) AS last "
            f"FROM messages WHERE cube_id IN ({marks}) GROUP BY cube_id, conversation_id ORDER BY last DESC",
            list(cube_ids))
        return [{"conversation_id": r["conversation_id"], "cube_id": r["cube_id"], "messages": r["n"],
                 "created_at": _dt(r["first"]), "updated_at": _dt(r["last"])} for r in rows]

    def delete_message_ids(self, ids: Sequence[str]) -> None:
        """Remove the messages of a write that failed."""
        with self._tx() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def delete_messages(self, cube_ids: Sequence[str], conversation_id: str | None) -> int:
        marks = ",".join("?" * len(cube_ids))
        where = f"cube_id IN ({marks})" + (" AND conversation_id = ?" if conversation_id else "")
        args = [*cube_ids, *([conversation_id] if conversation_id else [])]
        with self._tx() as db:
            return db.execute(f"DELETE FROM messages WHERE {where}", args).rowcount

    # --- tasks -------------------------------------------------------------------------------
    _TASK_DETAIL = ("conversation_id", "updated", "archived", "extractor", "attempts")

    def put_task(self, task: Task) -> None:
        with self._tx() as db:
            self._put_task(db, task)

    @classmethod
    def _put_task(cls, db: sqlite3.Connection, task: Task) -> None:
        detail = json.dumps(task.model_dump(mode="json", include=set(cls._TASK_DETAIL)))
        job = task.job.model_dump_json() if task.job is not None else None
        db.execute("INSERT OR REPLACE INTO tasks (task_id, user_id, cube_id, status, created_at, updated_at,"
                   " added, deduplicated, error, detail, job) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (task.task_id, task.user_id, task.cube_id, task.status.value, _ts(task.created_at),
                    _ts(task.updated_at), json.dumps(task.added), json.dumps(task.deduplicated), task.error,
                    detail, job))

    def get_task(self, task_id: str) -> Task | None:
        rows = self._rows("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
        return self._task(rows[0]) if rows else None

    def open_tasks(self) -> list[Task]:
        """Queued and running tasks, oldest first: the work a restart resumes."""
        rows = self._rows("SELECT * FROM tasks WHERE status IN ('queued', 'running') ORDER BY created_at")
        return [self._task(r) for r in rows]

    def recent_tasks(self, user_id: str | None, limit: int) -> list[Task]:
        """The newest ``limit`` tasks of ``user_id`` (of everyone when None), newest first."""
        where, args = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = self._rows(f"SELECT * FROM tasks {where} ORDER BY created_at DESC LIMIT ?", (*args, limit))
        return [self._task(r) for r in rows]

    @staticmethod
    def _task(row: sqlite3.Row) -> Task:
        return Task.model_validate({
            **json.loads(row["detail"]), "task_id": row["task_id"], "user_id": row["user_id"],
            "cube_id": row["cube_id"], "status": row["status"], "created_at": _dt(row["created_at"]),
            "updated_at": _dt(row["updated_at"]), "added": json.loads(row["added"]),
            "deduplicated": json.loads(row["deduplicated"]), "error": row["error"],
            "job": json.loads(row["job"]) if row["job"] else None})

    # --- history -----------------------------------------------------------------------------
    def add_history(self, events: Sequence[HistoryEvent]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO history (memory_id, cube_id, event, actor, at, old_memory, new_memory)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.memory_id, e.cube_id, e.event, e.actor, _ts(e.at), e.old_memory, e.new_memory)
                 for e in events])

    # A write of memories records its history events as *pending* in the same transaction; the vector
    # store is written next, and the pending marks are cleared once all of it is stored. Marks left by
    # a process that died (or a write whose undo failed) are rolled back at the next start (service).
    def begin_writes(self, events: Sequence[HistoryEvent]) -> None:
        """Record history events and mark them pending, in one transaction."""
        with self._tx() as db:
            for e in events:
                cursor = db.execute(
                    "INSERT INTO history (memory_id, cube_id, event, actor, at, old_memory, new_memory)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (e.memory_id, e.cube_id, e.event, e.actor, _ts(e.at), e.old_memory, e.new_memory))
                db.execute("INSERT INTO pending_writes VALUES (?, ?, ?, ?)",
                           (cursor.lastrowid, e.memory_id, e.cube_id, e.event))

    def end_writes(self, memory_ids: Sequence[str]) -> None:
        """The writes of these memories are complete: their history stays."""
        with self._tx() as db:
            db.executemany("DELETE FROM pending_writes WHERE memory_id = ?", [(m,) for m in memory_ids])

    def undo_writes(self, memory_ids: Sequence[str]) -> None:
        """Drop the pending history events of these memories (their write failed)."""
        with self._tx() as db:
            for memory_id in memory_ids:
                db.execute("DELETE FROM history WHERE seq IN (SELECT history_seq FROM pending_writes"
                           " WHERE memory_id = ?)", (memory_id,))
                db.execute("DELETE FROM pending_writes WHERE memory_id = ?", (memory_id,))

    def discard_memories(self, memory_ids: Sequence[str]) -> None:
        """Drop all history of memories whose add failed after it was stored (the add is undone whole)."""
        with self._tx() as db:
            for memory_id in memory_ids:
                db.execute("DELETE FROM history WHERE memory_id = ?", (memory_id,))
                db.execute("DELETE FROM pending_writes WHERE memory_id = ?", (memory_id,))

    def pending_writes(self) -> list[HistoryEvent]:
        """History events whose write never completed, oldest first."""
        rows = self._rows("SELECT h.* FROM pending_writes p JOIN history h ON h.seq = p.history_seq ORDER BY h.seq")
        return [self._event(r) for r in rows]

    def history(self, memory_id: str) -> list[HistoryEvent]:
        rows = self._rows("SELECT * FROM history WHERE memory_id = ? ORDER BY seq", (memory_id,))
        return [self._event(r) for r in rows]

    def has_history(self, memory_ids: Sequence[str]) -> set[str]:
        """Which of ``memory_ids`` have any history row."""
        found: set[str] = set()
        for start in range(0, len(memory_ids), 500):
            part = list(memory_ids[start:start + 500])
            marks = ",".join("?" * len(part))
            rows = self._rows(f"SELECT DISTINCT memory_id FROM history WHERE memory_id IN ({marks})", part)
            found.update(r["memory_id"] for r in rows)
        return found

    @staticmethod
    def _event(r: sqlite3.Row) -> HistoryEvent:
        return HistoryEvent(memory_id=r["memory_id"], cube_id=r["cube_id"], event=r["event"], actor=r["actor"],
                            at=_dt(r["at"]), old_memory=r["old_memory"], new_memory=r["new_memory"])

    def forget(self, memory_ids: Sequence[str], cube_id: str, actor: str, at: datetime) -> None:
        """Erase the memories' text from history and record only that they were deleted."""
        with self._tx() as db:
            for start in range(0, len(memory_ids), 500):
                part = list(memory_ids[start:start + 500])
                marks = ",".join("?" * len(part))
                db.execute(f"UPDATE history SET old_memory = NULL, new_memory = NULL WHERE memory_id IN ({marks})",
                           part)
            db.executemany(
                "INSERT INTO history (memory_id, cube_id, event, actor, at) VALUES (?, ?, 'DELETE', ?, ?)",
                [(m, cube_id, actor, _ts(at)) for m in memory_ids])

    def counts(self) -> dict[str, int]:
        return {table: int(self._rows(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])
                for table in ("users", "cubes", "shares", "api_keys", "messages", "history")}
