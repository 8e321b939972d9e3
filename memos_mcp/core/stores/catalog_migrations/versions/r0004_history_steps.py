"""History steps: the step of a background task that made a history event (``<task id>:<memory
id>``), unique, so that a task taken over by another process (its first runner died after changing
a memory, before marking the task done) changes each memory once (``Catalog.begin_writes``). Null
for every other event, and for all events recorded before this revision.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from memos_mcp.core.stores.catalog_migrations.steps import add_missing_columns, create_missing_index

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns("history", [sa.Column("step", sa.Text, nullable=True)])
    create_missing_index("history_step", "history", ["step"], unique=True)


def downgrade() -> None:
    op.drop_index("history_step", "history")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("step")
