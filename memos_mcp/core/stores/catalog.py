"""The catalog: SQLite (WAL) under the data directory for users, cubes, shares, API keys,
conversations (raw messages) and memory history. One connection, serialised by a lock; every
write is one transaction, so a process killed mid-write loses at most that write."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memos_mcp.core.models import Cube, HistoryEvent, Message, Permission, Role, Task, User
from memos_mcp.core.timeparse import from_epoch, to_epoch
from memos_mcp.errors import StorageError

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
"""
# Columns added after the first release, with their definitions: added to older catalogs at open.
_ADDED_COLUMNS = {"tasks": {"detail": "TEXT NOT NULL DEFAULT '{}'", "job": "TEXT"}}
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS tasks_open ON tasks(status, created_at)"


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return from_epoch(value) or datetime.fromtimestamp(0, UTC)  # from_epoch: a bad old row never breaks a read


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._add_columns()
            self._db.execute(_ADDED_INDEXES)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the catalog at {path}: {exc}", path=str(path)) from exc

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, definition in columns.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
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
        shares = self._rows("SELECT user_id, permission FROM shares WHERE cube_id = ?", (row["cube_id"],))
        return Cube(cube_id=row["cube_id"], name=row["name"], owner_id=row["owner_id"],
                    created_at=_dt(row["created_at"]), is_default=bool(row["is_default"]),
                    shared_with={s["user_id"]: Permission(s["permission"]) for s in shares})

    def get_cube(self, cube_id: str) -> Cube | None:
        rows = self._rows("SELECT * FROM cubes WHERE cube_id = ?", (cube_id,))
        return self._cube(rows[0]) if rows else None

    def list_cubes(self) -> list[Cube]:
        return [self._cube(r) for r in self._rows("SELECT * FROM cubes ORDER BY created_at, cube_id")]

    def cubes_of(self, user_id: str) -> list[Cube]:
        """Cubes the user owns, then cubes shared with it."""
        rows = self._rows(
            "SELECT c.* FROM cubes c WHERE c.owner_id = ? UNION "
            "SELECT c.* FROM cubes c JOIN shares s ON s.cube_id = c.cube_id WHERE s.user_id = ? "
            "ORDER BY created_at, cube_id", (user_id, user_id))
        return [self._cube(r) for r in rows]

    def default_cube_of(self, user_id: str) -> Cube | None:
        rows = self._rows("SELECT * FROM cubes WHERE owner_id = ? AND is_default = 1 LIMIT 1", (user_id,))
        return self._cube(rows[0]) if rows else None

    def share_cube(self, cube_id: str, user_id: str, permission: Permission, at: datetime) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?)",
                       (cube_id, user_id, permission.value, _ts(at)))

    def unshare_cube(self, cube_id: str, user_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM shares WHERE cube_id = ? AND user_id = ?", (cube_id, user_id))

    def delete_cube(self, cube_id: str) -> None:
        """The cube, its shares, its conversations and its history."""
        with self._tx() as db:
            db.execute("DELETE FROM messages WHERE cube_id = ?", (cube_id,))
            db.execute("DELETE FROM history WHERE cube_id = ?", (cube_id,))
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

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        with self._tx() as db:
            cursor = db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                                (_ts(at), key_id))
            return cursor.rowcount > 0

    # --- conversations -----------------------------------------------------------------------
    def add_messages(self, messages: Sequence[Message]) -> None:
        with self._tx() as db:
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

    def delete_messages(self, cube_ids: Sequence[str], conversation_id: str | None) -> int:
        marks = ",".join("?" * len(cube_ids))
        where = f"cube_id IN ({marks})" + (" AND conversation_id = ?" if conversation_id else "")
        args = [*cube_ids, *([conversation_id] if conversation_id else [])]
        with self._tx() as db:
            return db.execute(f"DELETE FROM messages WHERE {where}", args).rowcount

    # --- tasks -------------------------------------------------------------------------------
    _TASK_DETAIL = ("conversation_id", "updated", "archived", "extractor", "attempts")

    def put_task(self, task: Task) -> None:
        detail = json.dumps(task.model_dump(mode="json", include=set(self._TASK_DETAIL)))
        job = task.job.model_dump_json() if task.job is not None else None
        with self._tx() as db:
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

    def history(self, memory_id: str) -> list[HistoryEvent]:
        rows = self._rows("SELECT * FROM history WHERE memory_id = ? ORDER BY seq", (memory_id,))
        return [HistoryEvent(memory_id=r["memory_id"], cube_id=r["cube_id"], event=r["event"], actor=r["actor"],
                             at=_dt(r["at"]), old_memory=r["old_memory"], new_memory=r["new_memory"])
                for r in rows]

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
