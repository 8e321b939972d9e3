"""Task leases: the replica running a background task (``lease_owner``) and until when its claim
holds (``lease_until``, epoch seconds), so that processes sharing one database share the task queue
(``Catalog.claim_task``). Both nullable: a task of an older catalog has no lease and may be claimed.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only what is missing: a catalog that a release before Alembic left with these columns (the baseline
    # adopts such catalogs as they are) must upgrade too.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("tasks")}
    missing = [column for column in (sa.Column("lease_owner", sa.Text, nullable=True),
                                     sa.Column("lease_until", sa.Double(), nullable=True))
               if column.name not in present]
    if missing:
        with op.batch_alter_table("tasks") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
