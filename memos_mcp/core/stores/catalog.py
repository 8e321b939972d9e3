"""The catalog: users, cubes, shares, API keys, conversations (raw messages), tasks and memory
history, on SQLAlchemy Core over SQLite (WAL, a file under the data directory: the default) or
PostgreSQL (``catalog.url``, shared by processes). Every write is one transaction, so a process
killed mid-write loses at most that write; the schema is made and upgraded by Alembic migrations at
open (``catalog_db``). A write that spans the vector store too records its history as pending first
(``begin_writes``); see ``MemoryService``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from memos_mcp.core.models import (
    Cube,
    HistoryEvent,
    Message,
    Permission,
    Role,
    Share,
    ShareState,
    Task,
    TaskStatus,
    User,
    utcnow,
)
from memos_mcp.core.stores import catalog_db, catalog_inflight
from memos_mcp.core.stores import catalog_statements as st
from memos_mcp.core.stores.catalog_tables import (
    HEAD,
    api_keys,
    cubes,
    history,
    memory_keys,
    messages,
    meta,
    metadata,
    pending_writes,
    shares,
    tasks,
    users,
)
from memos_mcp.core.stores.closing_engine import ClosingEngine
from memos_mcp.core.timeparse import from_epoch, to_epoch
from memos_mcp.errors import DataDirReadOnly, StorageError

_DB_ERRORS = (sa.exc.SQLAlchemyError, OSError)
_PART = 500  # ids per IN (...) list
_CLAIM_TRIES = 5  # a key claimed by another process between our read and our insert: read again


def _deadlock(error: BaseException | None) -> bool:
    """Whether ``error`` (a SQLAlchemy error) is PostgreSQL's ``deadlock_detected`` (SQLSTATE 40P01)."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) == "40P01"


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return from_epoch(value) or datetime.fromtimestamp(0, UTC)  # from_epoch: a bad old row never breaks a read


def _parts(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _PART):
        yield list(ids[start:start + _PART])


def _engine(location: Path | str, read_only: bool) -> tuple[Engine, str, Path | None]:
    """The engine on the catalog at ``location`` (see ``Catalog``), how it is shown (no password) and
    its SQLite file, if it is one; ``StorageError`` naming ``catalog.url`` for a URL of another database."""
    if isinstance(location, Path):
        return catalog_db.sqlite_engine(location, read_only), str(location), location
    try:
        url = catalog_db.database_url(location)
    except sa.exc.ArgumentError as exc:
        raise StorageError(f"catalog.url (DATABASE_URL, MEMOS_CATALOG__URL) must be a PostgreSQL URL such as "
                           f"postgresql://user:password@host:5432/memos: {exc}", field="catalog.url") from exc
    path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
    engine = catalog_db.sqlite_engine(path, read_only) if path is not None else catalog_db.postgres_engine(url)
    return engine, catalog_db.shown(url), path


def catalog_exists(location: Path | str) -> bool:
    """Whether ``location`` (an SQLite file that exists, or a database URL) holds a memos-mcp catalog of
    any revision (``catalog_db.holds_catalog``), read without creating or changing anything.
    ``StorageError`` when it cannot be read (not a database, unreachable, a URL of another database)."""
    engine, shown, _ = _engine(location, read_only=True)
    try:
        with engine.connect() as conn:
            return catalog_db.holds_catalog(conn)
    except _DB_ERRORS as exc:
        raise StorageError(f"cannot open the catalog at {shown}: {catalog_db.reason(exc)}", path=shown) from exc
    finally:
        engine.dispose()


class Catalog:
    """The catalog at ``location``: a ``Path`` (an SQLite file) or a database URL (``postgresql://…``,
    mapped to psycopg 3). Opening migrates the schema to the newest revision in one transaction (a
    first start killed half-way leaves all or none of it; a catalog made before Alembic is adopted).
    ``read_only`` opens a catalog that may not be written (a read-only data directory): nothing is
    migrated or written, and every write raises ``DataDirReadOnly``. Raises ``StorageError`` when the
    database cannot be opened or migrated, or when a read-only one lacks part of the schema."""

    def __init__(self, location: Path | str, read_only: bool = False) -> None:
        self.read_only = read_only
        self.engine, self.location, self.path = _engine(location, read_only)
        self.backend = self.engine.dialect.name
        self._connections = ClosingEngine(self.engine)  # what calls use: ``close`` may run while they are in flight
        try:
            if read_only:
                with self.engine.connect() as conn:
                    missing = catalog_db.missing_schema(conn, read_only=True)
                if missing:
                    raise StorageError(f"the read-only catalog at {self.location} lacks {', '.join(missing)}",
                                       path=self.location, missing=missing)
            else:
                catalog_db.upgrade(self.engine, self.location)
                with self.engine.connect() as conn:
                    catalog_db.refuse_unwritable(conn, metadata, self.location)
        except StorageError:
            self.engine.dispose()
            raise
        except _DB_ERRORS as exc:
            self.engine.dispose()
            raise StorageError(f"cannot open the catalog at {self.location}: {catalog_db.reason(exc)}",
                               path=self.location) from exc

    def check(self) -> str:
        """The schema is complete, at the newest revision, and a read answers: a summary;
        ``StorageError`` naming what is missing (or an unreachable database)."""
        try:
            with self._connections.connect() as conn:
                missing = catalog_db.missing_schema(conn, self.read_only)
                if not self.read_only:
                    catalog_db.refuse_unwritable(conn, metadata, self.location)
                at = catalog_db.revision(conn)
                conn.execute(sa.select(sa.func.count()).select_from(users)).scalar()
        except _DB_ERRORS as exc:
            raise StorageError(f"catalog read failed at {self.location}: {catalog_db.reason(exc)}",
                               path=self.location) from exc
        if missing:
            raise StorageError(f"the catalog at {self.location} lacks {', '.join(missing)}", missing=missing)
        if at != HEAD and not self.read_only:
            raise StorageError(f"the catalog at {self.location} is at schema revision {at}, not {HEAD}",
                               path=self.location, revision=at)
        head = f"schema version {at or 'before revisions'}{' (head)' if at == HEAD else ''}"
        return f"{head} on {self.backend}{', read-only' if self.read_only else ''}"

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        self._open()
        if self.read_only:
            raise DataDirReadOnly.refused(f"the catalog at {self.location}", path=self.location)
        try:
            with catalog_db.write_transaction(self._connections) as conn:
                yield conn
        except _DB_ERRORS as exc:
            raise StorageError(f"catalog write failed: {catalog_db.reason(exc)}") from exc

    def _open(self) -> None:
        # a task abandoned by a stopping service must not open a connection nobody closes
        if self._connections.closed:
            raise StorageError(f"the catalog at {self.location} is closed", path=self.location)

    def _rows(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        self._open()
        try:
            with self._connections.connect() as conn:
                return list(conn.execute(statement, params or {}).all())
        except _DB_ERRORS as exc:
            raise StorageError(f"catalog read failed: {catalog_db.reason(exc)}") from exc

    def close(self) -> None:
        """Close every pooled connection, and each one a call in flight holds when it is given back; any
        later use raises ``StorageError``."""
        self._connections.close()

    # --- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows(st.GET_META, {"key": key})
        return str(rows[0].value) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(st.upsert(db.dialect.name, meta), {"key": key, "value": value})

    # --- users -------------------------------------------------------------------------------
    @staticmethod
    def _user(row: Row[Any]) -> User:
        return User(user_id=row.user_id, user_name=row.user_name, role=Role(row.role), created_at=_dt(row.created_at))

    def get_user(self, user_id: str) -> User | None:
        rows = self._rows(st.GET_USER, {"user_id": user_id})
        return self._user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._rows(sa.select(users).order_by(users.c.created_at, users.c.user_id))]

    def create_user_with_cube(self, user: User, cube: Cube) -> None:
        with self._tx() as db:
            db.execute(users.insert().values(user_id=user.user_id, user_name=user.user_name, role=user.role.value,
                                             created_at=_ts(user.created_at)))
            self._insert_cube(db, cube)

    def set_user_role(self, user_id: str, role: Role) -> None:
        with self._tx() as db:
            db.execute(users.update().where(users.c.user_id == user_id).values(role=role.value))

    # --- cubes -------------------------------------------------------------------------------
    @staticmethod
    def _insert_cube(db: Connection, cube: Cube) -> None:
        db.execute(cubes.insert().values(cube_id=cube.cube_id, name=cube.name, owner_id=cube.owner_id,
                                         created_at=_ts(cube.created_at), is_default=int(cube.is_default)))

    def create_cube(self, cube: Cube) -> None:
        with self._tx() as db:
            self._insert_cube(db, cube)

    def _cubes(self, statement: sa.Select[Any], params: Mapping[str, Any] | None = None) -> list[Cube]:
        """The cubes ``statement`` (a ``catalog_statements`` cube query: a row per cube and share)
        selects, in its order, each with its owner's role and its shares."""
        found: dict[str, Cube] = {}
        for r in self._rows(statement, params):
            cube = found.get(r.cube_id)
            if cube is None:
                cube = found[r.cube_id] = Cube(
                    cube_id=r.cube_id, name=r.name, owner_id=r.owner_id,
                    owner_role=Role(r.owner_role) if r.owner_role is not None else None,
                    created_at=_dt(r.created_at), is_default=bool(r.is_default))
            if r.share_user is not None:
                given = cube.shared_with if r.share_state == "accepted" else cube.offered_to
                given[r.share_user] = Permission(r.share_permission)
        return list(found.values())

    def get_cube(self, cube_id: str) -> Cube | None:
        found = self._cubes(st.GET_CUBE, {"cube_id": cube_id})
        return found[0] if found else None

    def list_cubes(self) -> list[Cube]:
        return self._cubes(st.LIST_CUBES)

    def cubes_of(self, user_id: str) -> list[Cube]:
        """Cubes the user owns, then cubes shared with it whose share it accepted."""
        return self._cubes(st.CUBES_OF, {"user_id": user_id})

    def default_cube_of(self, user_id: str) -> Cube | None:
        found = self._cubes(st.DEFAULT_CUBE, {"user_id": user_id})
        return found[0] if found else None

    def share_cube(self, cube_id: str, user_id: str, permission: Permission, at: datetime) -> None:
        """Offer the cube (``pending``); sharing again only changes the permission, not the state."""
        with self._tx() as db:
            insert = catalog_db.dialect_insert(db, shares).values(
                cube_id=cube_id, user_id=user_id, permission=permission.value, created_at=_ts(at), state="pending")
            db.execute(insert.on_conflict_do_update(index_elements=[shares.c.cube_id, shares.c.user_id],
                                                    set_={"permission": insert.excluded.permission}))

    def unshare_cube(self, cube_id: str, user_id: str) -> bool:
        """Remove a share in any state; False if there was none."""
        with self._tx() as db:
            return db.execute(shares.delete().where(shares.c.cube_id == cube_id,
                                                    shares.c.user_id == user_id)).rowcount > 0

    def accept_share(self, cube_id: str, user_id: str) -> bool:
        """Mark a share accepted; False if the user has no share of the cube."""
        with self._tx() as db:
            return db.execute(shares.update().where(shares.c.cube_id == cube_id, shares.c.user_id == user_id)
                              .values(state="accepted")).rowcount > 0

    def shares_of(self, user_id: str, state: ShareState | None = None) -> list[Share]:
        """The shares offered to or accepted by ``user_id``, oldest first."""
        query = (sa.select(shares.c.cube_id, cubes.c.name, cubes.c.owner_id, shares.c.permission, shares.c.state,
                           shares.c.created_at).join(cubes, cubes.c.cube_id == shares.c.cube_id)
                 .where(shares.c.user_id == user_id).order_by(shares.c.created_at, shares.c.cube_id))
        if state:
            query = query.where(shares.c.state == state)
        return [Share(cube_id=r.cube_id, cube_name=r.name, owner_id=r.owner_id, permission=Permission(r.permission),
                      state=r.state, shared_at=_dt(r.created_at)) for r in self._rows(query)]

    def delete_cube(self, cube_id: str) -> None:
        """The cube, its shares, its conversations, its history and its memories' keys."""
        with self._tx() as db:
            for table in (messages, history, pending_writes, memory_keys, shares, cubes):
                db.execute(table.delete().where(table.c.cube_id == cube_id))

    # --- API keys ----------------------------------------------------------------------------
    def add_api_key(self, key_id: str, key_hash: str, user_id: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(api_keys.insert().values(key_id=key_id, key_hash=key_hash, user_id=user_id,
                                                created_at=_ts(at), revoked_at=None))

    def user_for_key_hash(self, key_hash: str) -> str | None:
        rows = self._rows(sa.select(api_keys.c.user_id).where(api_keys.c.key_hash == key_hash,
                                                              api_keys.c.revoked_at.is_(None)))
        return str(rows[0].user_id) if rows else None

    def list_api_keys(self, active_only: bool = False) -> list[dict[str, Any]]:
        query = sa.select(api_keys.c.key_id, api_keys.c.user_id, api_keys.c.created_at, api_keys.c.revoked_at)
        if active_only:
            query = query.where(api_keys.c.revoked_at.is_(None))
        return [{"key_id": r.key_id, "user_id": r.user_id, "created_at": _dt(r.created_at),
                 "revoked": r.revoked_at is not None} for r in self._rows(query.order_by(api_keys.c.created_at))]

    def api_key_user(self, key_id: str) -> str | None:
        """The user an active key acts as, or None if there is no such active key."""
        rows = self._rows(sa.select(api_keys.c.user_id).where(api_keys.c.key_id == key_id,
                                                              api_keys.c.revoked_at.is_(None)))
        return str(rows[0].user_id) if rows else None

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        with self._tx() as db:
            return db.execute(api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                              .values(revoked_at=_ts(at))).rowcount > 0

    # --- conversations -----------------------------------------------------------------------
    def add_messages(self, stored: Sequence[Message], task: Task | None = None,
                     claim: tuple[str, float] | None = None) -> None:
        """Store messages, and the task that extracts them, in one transaction; with ``claim`` (owner,
        lease seconds) the task is stored already claimed by that owner (``claim_task``)."""
        with self._tx() as db:
            if task is not None:
                self._put_task(db, task)
                if claim is not None:
                    db.execute(tasks.update().where(tasks.c.task_id == task.task_id)
                               .values(lease_owner=claim[0], lease_until=_ts(task.created_at) + claim[1]))
            if stored:
                db.execute(messages.insert(), [
                    {"id": m.id, "cube_id": m.cube_id, "conversation_id": m.conversation_id, "user_id": m.user_id,
                     "role": m.role, "content": m.content, "name": m.name, "message_id": m.message_id,
                     "chat_time": to_epoch(m.chat_time), "created_at": _ts(m.created_at)} for m in stored])

    def message_cubes(self, ids: Sequence[str]) -> dict[str, str]:
        """The cube of each stored message among ``ids``."""
        return {r.id: r.cube_id for part in _parts(ids)
                for r in self._rows(sa.select(messages.c.id, messages.c.cube_id).where(messages.c.id.in_(part)))}

    @staticmethod
    def _message(row: Row[Any]) -> Message:
        return Message(id=row.id, cube_id=row.cube_id, conversation_id=row.conversation_id, user_id=row.user_id,
                       role=row.role, content=row.content, name=row.name, message_id=row.message_id,
                       chat_time=from_epoch(row.chat_time), created_at=_dt(row.created_at))

    def recent_messages(self, cube_ids: Sequence[str], conversation_id: str, limit: int,
                        before_seq: int | None = None) -> list[Message]:
        """The last ``limit`` messages of a conversation (oldest first)."""
        query = sa.select(messages).where(messages.c.cube_id.in_(list(cube_ids)),
                                          messages.c.conversation_id == conversation_id)
        if before_seq is not None:
            query = query.where(messages.c.seq < before_seq)
        rows = self._rows(query.order_by(messages.c.seq.desc()).limit(limit))
        return [self._message(r) for r in reversed(rows)]

    def messages_with_window(self, ids: Sequence[str], window: int) -> tuple[list[Message], list[Message]]:
        """The stored messages among ``ids`` (in order of storing) and the ``window`` messages of the same
        conversation just before the first of them."""
        if not ids:
            return [], []
        rows = sorted((r for part in _parts(ids) for r in self._rows(sa.select(messages).where(
            messages.c.id.in_(part)))), key=lambda r: int(r.seq))
        if not rows or window == 0:
            return [self._message(r) for r in rows], []
        first = rows[0]
        earlier = self.recent_messages([first.cube_id], first.conversation_id, window, before_seq=first.seq)
        return [self._message(r) for r in rows], earlier

    def conversations(self, cube_ids: Sequence[str]) -> list[dict[str, Any]]:
        last = sa.func.max(messages.c.created_at).label("last")
        rows = self._rows(
            sa.select(messages.c.conversation_id, messages.c.cube_id, sa.func.count().label("n"),
                      sa.func.min(messages.c.created_at).label("first"), last)
            .where(messages.c.cube_id.in_(list(cube_ids)))
            .group_by(messages.c.cube_id, messages.c.conversation_id).order_by(last.desc()))
        return [{"conversation_id": r.conversation_id, "cube_id": r.cube_id, "messages": r.n,
                 "created_at": _dt(r.first), "updated_at": _dt(r.last)} for r in rows]

    def delete_message_ids(self, ids: Sequence[str]) -> None:
        """Remove the messages of a write that failed."""
        with self._tx() as db:
            for part in _parts(ids):
                db.execute(messages.delete().where(messages.c.id.in_(part)))

    def delete_messages(self, cube_ids: Sequence[str], conversation_id: str | None) -> int:
        query = messages.delete().where(messages.c.cube_id.in_(list(cube_ids)))
        if conversation_id is not None:
            query = query.where(messages.c.conversation_id == conversation_id)
        with self._tx() as db:
            return int(db.execute(query).rowcount)

    # --- tasks -------------------------------------------------------------------------------
    _TASK_DETAIL = ("conversation_id", "updated", "archived", "extractor", "attempts")

    def put_task(self, task: Task) -> None:
        with self._tx() as db:
            self._put_task(db, task)

    @classmethod
    def _put_task(cls, db: Connection, task: Task) -> None:
        values = {"task_id": task.task_id, "user_id": task.user_id, "cube_id": task.cube_id,
                  "status": task.status.value, "created_at": _ts(task.created_at), "updated_at": _ts(task.updated_at),
                  "added": json.dumps(task.added), "deduplicated": json.dumps(task.deduplicated), "error": task.error,
                  "detail": json.dumps(task.model_dump(mode="json", include=set(cls._TASK_DETAIL))),
                  "job": task.job.model_dump_json() if task.job is not None else None}
        db.execute(st.upsert(db.dialect.name, tasks), values)

    def get_task(self, task_id: str) -> Task | None:
        rows = self._rows(st.GET_TASK, {"task_id": task_id})
        return self._task(rows[0]) if rows else None

    # A task is run by the process that claims it: one claim at a time, held for a lease (seconds,
    # renewed while it works). Processes sharing a database take different tasks; a task whose
    # claimant died (its lease lapsed) is claimed again by one other. Times are epoch seconds of the
    # claimants' clocks (replicas keep their clocks in step, as NTP does).
    def claim_task(self, task_id: str, owner: str, lease_s: float) -> Task | None:
        """Claim an open task for ``owner`` for ``lease_s`` seconds: the task, now running with one
        more attempt; None when it is done, failed, unknown, or held by a live lease (on
        PostgreSQL a row another transaction is claiming is skipped: ``FOR UPDATE SKIP LOCKED``; on
        SQLite the claim runs under ``BEGIN IMMEDIATE``)."""
        with self._tx() as db:
            now = utcnow()
            row = db.execute(sa.select(tasks).where(tasks.c.task_id == task_id, self._claimable(now))
                             .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            task = self._task(row)
            task = task.model_copy(update={"status": TaskStatus.RUNNING, "updated_at": now,
                                           "attempts": task.attempts + 1})
            self._put_task(db, task)
            db.execute(tasks.update().where(tasks.c.task_id == task_id)
                       .values(lease_owner=owner, lease_until=_ts(now) + lease_s))
            return task

    def _claimable(self, now: datetime) -> sa.ColumnElement[bool]:
        is_open = tasks.c.status.in_(["queued", "running"])
        if self.backend == "sqlite":  # one process holds the data directory: a lease left by its
            return is_open            # previous run (killed) must not delay the resume
        return sa.and_(is_open, sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < _ts(now)))

    def release_task(self, task_id: str, owner: str) -> None:
        """Give up ``owner``'s lease on a task left open (a stopping process): any process may claim
        it at once."""
        with self._tx() as db:
            db.execute(tasks.update().where(tasks.c.task_id == task_id, tasks.c.lease_owner == owner)
                       .values(lease_owner=None, lease_until=None))

    def renew_task(self, task_id: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease on an open task by ``lease_s`` seconds from now; False when the
        task is no longer open or no longer ``owner``'s (its lease lapsed and another claimed it)."""
        with self._tx() as db:
            return db.execute(tasks.update().where(tasks.c.task_id == task_id, tasks.c.lease_owner == owner,
                                                   tasks.c.status.in_(["queued", "running"]))
                              .values(lease_until=_ts(utcnow()) + lease_s)).rowcount > 0

    def finish_task(self, task: Task, owner: str) -> bool:
        """Store the outcome of a task ``owner`` claimed and release its lease, in one transaction;
        False (nothing stored) when the claim is no longer ``owner``'s."""
        with self._tx() as db:
            held = db.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id == task.task_id,
                                                               tasks.c.lease_owner == owner)
                              .with_for_update()).first()
            if held is None:
                return False
            self._put_task(db, task)
            db.execute(tasks.update().where(tasks.c.task_id == task.task_id)
                       .values(lease_owner=None, lease_until=None))
            return True

    def open_tasks(self) -> list[Task]:
        """Queued and running tasks, oldest first: the work a restart resumes."""
        rows = self._rows(sa.select(tasks).where(tasks.c.status.in_(["queued", "running"]))
                          .order_by(tasks.c.created_at))
        return [self._task(r) for r in rows]

    def lapsed_tasks(self, unclaimed_s: float) -> list[Task]:
        """Open tasks, oldest first, whose lease lapsed (their process died) or which no process
        claimed for ``unclaimed_s`` seconds (their process died before it came to them)."""
        now = _ts(utcnow())
        rows = self._rows(sa.select(tasks).where(
            tasks.c.status.in_(["queued", "running"]),
            sa.or_(tasks.c.lease_until < now,
                   sa.and_(tasks.c.lease_until.is_(None), tasks.c.updated_at < now - unclaimed_s)))
            .order_by(tasks.c.created_at))
        return [self._task(r) for r in rows]

    def recent_tasks(self, user_id: str | None, limit: int) -> list[Task]:
        """The newest ``limit`` tasks of ``user_id`` (of everyone when None), newest first."""
        query = sa.select(tasks).order_by(tasks.c.created_at.desc()).limit(limit)
        if user_id is not None:
            query = query.where(tasks.c.user_id == user_id)
        return [self._task(r) for r in self._rows(query)]

    @staticmethod
    def _task(row: Row[Any]) -> Task:
        return Task.model_validate({
            **json.loads(row.detail), "task_id": row.task_id, "user_id": row.user_id, "cube_id": row.cube_id,
            "status": row.status, "created_at": _dt(row.created_at), "updated_at": _dt(row.updated_at),
            "added": json.loads(row.added), "deduplicated": json.loads(row.deduplicated), "error": row.error,
            "job": json.loads(row.job) if row.job else None})

    # --- history -----------------------------------------------------------------------------
    @staticmethod
    def _event_row(e: HistoryEvent) -> dict[str, Any]:
        return {"memory_id": e.memory_id, "cube_id": e.cube_id, "event": e.event, "actor": e.actor, "at": _ts(e.at),
                "old_memory": e.old_memory, "new_memory": e.new_memory, "step": e.step}

    def add_history(self, events: Sequence[HistoryEvent]) -> None:
        with self._tx() as db:
            if events:
                db.execute(history.insert(), [self._event_row(e) for e in events])

    # A write of memories records its history events as *pending* in the same transaction; the vector
    # store is written next, and the pending marks are cleared once all of it is stored. Marks left by
    # a process that died (or a write whose undo failed) are rolled back at the next start (service).
    def begin_writes(self, events: Sequence[HistoryEvent], keys: Mapping[str, str] | None = None) -> dict[str, str]:
        """Record history events and mark them pending, in one transaction.

        ``keys`` maps the ids of new memories to their de-duplication key (text, metadata and
        conversation) in their cube; each memory claims its key. A key another live memory of the cube
        holds (stored by another process on the same database, or by this one) is not claimed again:
        that memory's events are not recorded, and the answer maps its id to the holder's id (empty when
        every key was free). An update or archive releases the keys of its memory.

        An event with a ``step`` (a background task's change of one memory) whose step is recorded
        already (the task's earlier run made that change) is not recorded again: the answer maps its
        memory's id to itself. Two processes recording one step at once record it once."""
        keys = keys or {}
        for attempt in range(_CLAIM_TRIES):
            try:
                with self._tx() as db:
                    return self._begin(db, events, keys)
            except StorageError as exc:
                # Two processes claiming one key at once: the loser's insert fails once the winner
                # commits; reading again finds the winner's key. Keys are claimed in one order (below), so
                # two claims wait for each other in one direction; a deadlock PostgreSQL still finds (with
                # some other writer) is tried again too.
                claims = keys or any(e.step for e in events)
                raced = isinstance(exc.__cause__, sa.exc.IntegrityError) or _deadlock(exc.__cause__)
                if not raced or not claims or attempt == _CLAIM_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _begin(db: Connection, events: Sequence[HistoryEvent], keys: Mapping[str, str]) -> dict[str, str]:
        held: dict[str, str] = {}
        for cube_id in {e.cube_id for e in events if e.memory_id in keys}:
            wanted = [keys[e.memory_id] for e in events if e.cube_id == cube_id and e.memory_id in keys]
            found = {r.dedup_key: r.memory_id for part in _parts(wanted)
                     for r in db.execute(st.HELD_KEYS, {"cube_id": cube_id, st.IDS: part})}
            held |= {e.memory_id: found[keys[e.memory_id]] for e in events
                     if e.cube_id == cube_id and keys.get(e.memory_id) in found}
        steps = [e.step for e in events if e.step]
        done = {step for part in _parts(steps) for step in db.execute(st.RECORDED_STEPS, {st.IDS: part}).scalars()}
        held |= {e.memory_id: e.memory_id for e in events if e.step in done}
        recorded = [e for e in events if e.memory_id not in held]
        if not recorded:
            return held
        # one statement a table (executemany; the history's seqs come back in the order of the events)
        seqs = db.execute(st.INSERT_HISTORY, [Catalog._event_row(e) for e in recorded]).scalars().all()
        db.execute(st.INSERT_PENDING, [{"history_seq": seq, "memory_id": e.memory_id, "cube_id": e.cube_id,
                                        "event": e.event} for seq, e in zip(seqs, recorded, strict=True)])
        # In the keys' order, whatever the events': two replicas adding the same texts in opposite orders
        # otherwise each held a key the other waited for (a deadlock; one add failed 507).
        claimed = sorted(({"cube_id": e.cube_id, "dedup_key": keys[e.memory_id], "memory_id": e.memory_id}
                          for e in recorded if e.event == "ADD" and e.memory_id in keys),
                         key=lambda row: (row["cube_id"], row["dedup_key"]))
        if claimed:
            db.execute(st.INSERT_KEY, claimed)
        released = [e.memory_id for e in recorded if e.event != "ADD"]
        for part in _parts(released):
            db.execute(st.RELEASE_KEYS, {st.IDS: part})
        return held

    def end_writes(self, memory_ids: Sequence[str]) -> None:
        """The writes of these memories are complete: their history stays."""
        with self._tx() as db:
            for part in _parts(memory_ids):
                db.execute(st.END_WRITES, {st.IDS: part})

    def undo_writes(self, memory_ids: Sequence[str]) -> None:
        """Drop the pending history events of these memories (their write failed), and the keys their
        adds claimed."""
        with self._tx() as db:
            for part in _parts(memory_ids):
                pending = sa.select(pending_writes.c.history_seq).where(pending_writes.c.memory_id.in_(part))
                added = sa.select(pending_writes.c.memory_id).where(pending_writes.c.memory_id.in_(part),
                                                                    pending_writes.c.event == "ADD")
                db.execute(memory_keys.delete().where(memory_keys.c.memory_id.in_(added)))
                db.execute(history.delete().where(history.c.seq.in_(pending)))
                db.execute(pending_writes.delete().where(pending_writes.c.memory_id.in_(part)))

    def discard_memories(self, memory_ids: Sequence[str]) -> None:
        """Drop all history and keys of memories whose add failed after it was stored (the add is undone
        whole)."""
        with self._tx() as db:
            for part in _parts(memory_ids):
                for table in (history, pending_writes, memory_keys):
                    db.execute(table.delete().where(table.c.memory_id.in_(part)))

    @contextmanager
    def in_flight(self, memory_ids: Sequence[str]) -> Iterator[None]:
        """A write of these memories under way, from before ``begin_writes`` to after ``end_writes`` (or
        its undo): while the block runs, no other process's clean-up (``abandoned_writes``) takes its
        pending history for abandoned (``catalog_inflight``). Raises ``StorageError`` if the database fails."""
        self._open()
        stack = ExitStack()
        try:
            stack.enter_context(catalog_inflight.writing(self.engine, memory_ids))
        except _DB_ERRORS as exc:
            raise StorageError(f"catalog write failed: {catalog_db.reason(exc)}") from exc
        with stack:
            yield

    @contextmanager
    def abandoned_writes(self) -> Iterator[list[HistoryEvent]]:
        """The pending history events of writes whose process is gone (on SQLite, every one: one process
        holds the data directory), oldest first; no process can take them up until the block ends, in
        which the caller rolls them back. Raises ``StorageError`` if the database fails."""
        self._open()
        stack = ExitStack()
        try:
            ids = stack.enter_context(catalog_inflight.abandoned(
                self.engine, lambda: [e.memory_id for e in self.pending_writes()]))
            events = [e for e in self.pending_writes() if e.memory_id in ids]
        except BaseException as exc:
            stack.close()
            if isinstance(exc, _DB_ERRORS):
                raise StorageError(f"catalog read failed: {catalog_db.reason(exc)}") from exc
            raise
        with stack:
            yield events

    def unacknowledged(self, memory_ids: Sequence[str]) -> set[str]:
        """Which of ``memory_ids`` a process that is gone began adding, or deleting, and never acknowledged
        (on PostgreSQL: a replica that died mid-write; always none on SQLite): the next clean-up
        (``Stores.roll_back_abandoned``) removes them, so reads leave them out meanwhile. Raises
        ``StorageError`` if the database fails."""
        if self.backend == "sqlite" or not memory_ids:
            return set()

        def marked(ids: Sequence[str]) -> set[str]:
            return {r.memory_id for part in _parts(ids) for r in self._rows(
                sa.select(pending_writes.c.memory_id).where(pending_writes.c.memory_id.in_(part),
                                                            pending_writes.c.event.in_(["ADD", "DELETE"])))}

        try:
            return catalog_inflight.ownerless(self.engine, list(marked(memory_ids)), marked)
        except _DB_ERRORS as exc:
            raise StorageError(f"catalog read failed: {catalog_db.reason(exc)}") from exc

    def pending_writes(self) -> list[HistoryEvent]:
        """History events whose write never completed, oldest first."""
        rows = self._rows(sa.select(*st.HISTORY_COLUMNS)
                          .join(pending_writes, history.c.seq == pending_writes.c.history_seq).order_by(history.c.seq))
        return [self._event(r) for r in rows]

    def history(self, memory_id: str) -> list[HistoryEvent]:
        """The memory's history, oldest first. A memory whose delete is under way, or was left part-way
        by a stopped process (finished at the next start that may write), has its text left out."""
        events = [self._event(r) for r in self._rows(st.HISTORY, {"memory_id": memory_id})]
        deleting = sa.select(pending_writes.c.history_seq).where(pending_writes.c.memory_id == memory_id,
                                                                 pending_writes.c.event == "DELETE").limit(1)
        if events and self._rows(deleting):
            return [e.model_copy(update={"old_memory": None, "new_memory": None}) for e in events]
        return events

    def history_cubes(self, memory_ids: Sequence[str]) -> dict[str, set[str]]:
        """The cubes the history rows of each of ``memory_ids`` name (an id without history is absent)."""
        found: dict[str, set[str]] = {}
        for part in _parts(memory_ids):
            query = sa.select(history.c.memory_id, history.c.cube_id).distinct().where(history.c.memory_id.in_(part))
            for r in self._rows(query):
                found.setdefault(r.memory_id, set()).add(r.cube_id)
        return found

    @staticmethod
    def _event(r: Row[Any]) -> HistoryEvent:
        return HistoryEvent(memory_id=r.memory_id, cube_id=r.cube_id, event=r.event, actor=r.actor, at=_dt(r.at),
                            old_memory=r.old_memory, new_memory=r.new_memory)

    def forget(self, memory_ids: Sequence[str]) -> None:
        """Erase deleted memories' text from history (their ``DELETE`` events, recorded pending by
        ``begin_writes``, say only that they were deleted), release their keys, and end the pending
        delete, in one transaction."""
        with self._tx() as db:
            for part in _parts(memory_ids):
                db.execute(history.update().where(history.c.memory_id.in_(part))
                           .values(old_memory=None, new_memory=None))
                db.execute(memory_keys.delete().where(memory_keys.c.memory_id.in_(part)))
                db.execute(st.END_WRITES, {st.IDS: part})

    def counts(self) -> dict[str, int]:
        tables = (users, cubes, shares, api_keys, messages, history)
        return {table.name: int(self._rows(sa.select(sa.func.count().label("n")).select_from(table))[0].n)
                for table in tables}
