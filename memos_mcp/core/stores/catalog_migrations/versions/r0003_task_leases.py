"""Task leases: the replica running a background task (``lease_owner``) and until when its claim
holds (``lease_until``, epoch seconds), so that processes sharing one database share the task queue
(``Catalog.claim_task``). Both nullable: a task of an older catalog has no lease and may be claimed.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from memos_mcp.core.stores.catalog_migrations.steps import add_missing_columns

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns("tasks", [sa.Column("lease_owner", sa.Text, nullable=True),
                                  sa.Column("lease_until", sa.Double(), nullable=True)])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
