"""The catalog's tables, one SQLAlchemy ``MetaData`` for both backends (SQLite, PostgreSQL).

Times are seconds since the epoch (double precision); lists and objects are JSON text. This is the
schema the code reads and writes, and what ``check`` compares a database with; the migrations in
``catalog_migrations`` make it (``HEAD`` names their newest revision)."""

from __future__ import annotations

import sqlalchemy as sa

HEAD = "0004"  # the newest migration (tests check it against the migration scripts)

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys
_TIME: sa.Double[float] = sa.Double()

metadata = sa.MetaData()

meta = sa.Table("meta", metadata, sa.Column("key", sa.Text, primary_key=True),
                sa.Column("value", sa.Text, nullable=False))

users = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.Text, primary_key=True), sa.Column("user_name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False), sa.Column("created_at", _TIME, nullable=False))

cubes = sa.Table(
    "cubes", metadata,
    sa.Column("cube_id", sa.Text, primary_key=True), sa.Column("name", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text, sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("is_default", sa.Integer, nullable=False, server_default="0"),
    sa.Index("cubes_owner", "owner_id"))

shares = sa.Table(
    "shares", metadata,
    sa.Column("cube_id", sa.Text, sa.ForeignKey("cubes.cube_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("permission", sa.Text, nullable=False), sa.Column("created_at", _TIME, nullable=False),
    # shares made before states existed stay accepted, so nobody loses access on upgrade
    sa.Column("state", sa.Text, nullable=False, server_default="accepted"))

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.Text, primary_key=True), sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", _TIME, nullable=False), sa.Column("revoked_at", _TIME))

messages = sa.Table(
    "messages", metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True), sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("cube_id", sa.Text, nullable=False), sa.Column("conversation_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False), sa.Column("role", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False), sa.Column("name", sa.Text), sa.Column("message_id", sa.Text),
    sa.Column("chat_time", _TIME), sa.Column("created_at", _TIME, nullable=False),
    sa.Index("messages_conv", "cube_id", "conversation_id", "seq"),
    sa.Index("messages_user", "user_id", "conversation_id"),
    sqlite_autoincrement=True)

history = sa.Table(
    "history", metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True), sa.Column("memory_id", sa.Text, nullable=False),
    sa.Column("cube_id", sa.Text, nullable=False), sa.Column("event", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False), sa.Column("at", _TIME, nullable=False),
    sa.Column("old_memory", sa.Text), sa.Column("new_memory", sa.Text),
    sa.Column("step", sa.Text),  # the task step that made the event (``HistoryEvent.step``), else null
    sa.Index("history_memory", "memory_id", "seq"), sa.Index("history_cube", "cube_id"),
    sa.Index("history_step", "step", unique=True),
    sqlite_autoincrement=True)

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("task_id", sa.Text, primary_key=True), sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("cube_id", sa.Text, nullable=False), sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False), sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("added", sa.Text, nullable=False, server_default="[]"),
    sa.Column("deduplicated", sa.Text, nullable=False, server_default="[]"), sa.Column("error", sa.Text),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"), sa.Column("job", sa.Text),
    sa.Column("lease_owner", sa.Text), sa.Column("lease_until", _TIME),  # who runs it, until when (epoch s)
    sa.Index("tasks_open", "status", "created_at"))

pending_writes = sa.Table(
    "pending_writes", metadata,
    sa.Column("history_seq", _SEQ, primary_key=True, autoincrement=False),
    sa.Column("memory_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False), sa.Index("pending_writes_memory", "memory_id"))

# The de-duplication key (text, metadata, conversation) each live memory added through the write path
# claims in its cube: the unique key makes two processes on one database adding the same text at the
# same moment store one memory, whatever their own vector stores hold (see ``Catalog.begin_writes``).
memory_keys = sa.Table(
    "memory_keys", metadata,
    sa.Column("cube_id", sa.Text, primary_key=True), sa.Column("dedup_key", sa.Text, primary_key=True),
    sa.Column("memory_id", sa.Text, nullable=False), sa.Index("memory_keys_memory", "memory_id"))
