"""Baseline: the catalog's schema as the releases before Alembic made it.

A catalog made by such a release (SQLite, no ``alembic_version``) is adopted here: what it lacks
(tables, and the columns and indexes added over those releases: ``tasks.detail``, ``tasks.job``,
``shares.state``, ``tasks_open``) is added, its rows untouched; a new database gets all of it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME: sa.Double[float] = sa.Double()

# Frozen here: later revisions change the schema, never this list.
baseline = sa.MetaData()
sa.Table("meta", baseline, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False))
sa.Table("users", baseline, sa.Column("user_id", sa.Text, primary_key=True),
         sa.Column("user_name", sa.Text, nullable=False), sa.Column("role", sa.Text, nullable=False),
         sa.Column("created_at", _TIME, nullable=False))
sa.Table("cubes", baseline, sa.Column("cube_id", sa.Text, primary_key=True), sa.Column("name", sa.Text, nullable=False),
         sa.Column("owner_id", sa.Text, sa.ForeignKey("users.user_id"), nullable=False),
         sa.Column("created_at", _TIME, nullable=False),
         sa.Column("is_default", sa.Integer, nullable=False, server_default="0"), sa.Index("cubes_owner", "owner_id"))
sa.Table("shares", baseline,
         sa.Column("cube_id", sa.Text, sa.ForeignKey("cubes.cube_id", ondelete="CASCADE"), primary_key=True),
         sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
         sa.Column("permission", sa.Text, nullable=False), sa.Column("created_at", _TIME, nullable=False),
         sa.Column("state", sa.Text, nullable=False, server_default="accepted"))
sa.Table("api_keys", baseline, sa.Column("key_id", sa.Text, primary_key=True),
         sa.Column("key_hash", sa.Text, nullable=False, unique=True),
         sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
         sa.Column("created_at", _TIME, nullable=False), sa.Column("revoked_at", _TIME))
sa.Table("messages", baseline, sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
         sa.Column("id", sa.Text, nullable=False, unique=True), sa.Column("cube_id", sa.Text, nullable=False),
         sa.Column("conversation_id", sa.Text, nullable=False), sa.Column("user_id", sa.Text, nullable=False),
         sa.Column("role", sa.Text, nullable=False), sa.Column("content", sa.Text, nullable=False),
         sa.Column("name", sa.Text), sa.Column("message_id", sa.Text), sa.Column("chat_time", _TIME),
         sa.Column("created_at", _TIME, nullable=False), sa.Index("messages_conv", "cube_id", "conversation_id", "seq"),
         sa.Index("messages_user", "user_id", "conversation_id"), sqlite_autoincrement=True)
sa.Table("history", baseline, sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
         sa.Column("memory_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
         sa.Column("event", sa.Text, nullable=False), sa.Column("actor", sa.Text, nullable=False),
         sa.Column("at", _TIME, nullable=False), sa.Column("old_memory", sa.Text), sa.Column("new_memory", sa.Text),
         sa.Index("history_memory", "memory_id", "seq"), sa.Index("history_cube", "cube_id"),
         sqlite_autoincrement=True)
sa.Table("tasks", baseline, sa.Column("task_id", sa.Text, primary_key=True),
         sa.Column("user_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
         sa.Column("status", sa.Text, nullable=False), sa.Column("created_at", _TIME, nullable=False),
         sa.Column("updated_at", _TIME, nullable=False),
         sa.Column("added", sa.Text, nullable=False, server_default="[]"),
         sa.Column("deduplicated", sa.Text, nullable=False, server_default="[]"), sa.Column("error", sa.Text),
         sa.Column("detail", sa.Text, nullable=False, server_default="{}"), sa.Column("job", sa.Text),
         sa.Index("tasks_open", "status", "created_at"))
sa.Table("pending_writes", baseline, sa.Column("history_seq", _SEQ, primary_key=True, autoincrement=False),
         sa.Column("memory_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
         sa.Column("event", sa.Text, nullable=False), sa.Index("pending_writes_memory", "memory_id"))


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    baseline.create_all(bind, tables=[t for t in baseline.sorted_tables if t.name not in present])
    inspector = sa.inspect(bind)
    for table in baseline.sorted_tables:
        if table.name not in present:
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=column.nullable,
                                                    server_default=column.server_default))
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                op.create_index(index.name, table.name, [c.name for c in index.columns])


def downgrade() -> None:
    for table in reversed(baseline.sorted_tables):
        op.drop_table(table.name)
