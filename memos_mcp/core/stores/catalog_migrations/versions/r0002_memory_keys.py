"""The de-duplication keys of live memories, unique per cube: processes sharing one database store
one memory for the same text added at the same moment (``Catalog.begin_writes``). Memories stored
before this revision claim no key; they are still found by the vector store's own de-duplication.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("memory_keys", sa.Column("cube_id", sa.Text, primary_key=True),
                    sa.Column("dedup_key", sa.Text, primary_key=True), sa.Column("memory_id", sa.Text, nullable=False))
    op.create_index("memory_keys_memory", "memory_keys", ["memory_id"])


def downgrade() -> None:
    op.drop_table("memory_keys")
