"""The graph's four tables, as ``sqlite_store`` keeps them, on PostgreSQL.

Revision ID: g0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "g0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table("graph_entities", sa.Column("cube_id", sa.Text, primary_key=True),
                    sa.Column("key", sa.Text, primary_key=True), sa.Column("name", sa.Text, nullable=False),
                    sa.Column("type", sa.Text, nullable=False, server_default=""))
    op.create_table("graph_aliases", sa.Column("cube_id", sa.Text, primary_key=True),
                    sa.Column("alias_key", sa.Text, primary_key=True), sa.Column("alias", sa.Text, nullable=False),
                    sa.Column("entity_key", sa.Text, nullable=False))
    op.create_index("graph_aliases_entity", "graph_aliases", ["cube_id", "entity_key"])
    op.create_table("graph_relations", sa.Column("id", sa.Text, primary_key=True),
                    sa.Column("cube_id", sa.Text, nullable=False), sa.Column("subject", sa.Text, nullable=False),
                    sa.Column("predicate", sa.Text, nullable=False), sa.Column("object", sa.Text, nullable=False),
                    sa.Column("predicate_key", sa.Text, nullable=False), sa.Column("confidence", _TIME, nullable=False),
                    sa.Column("valid_at", _TIME), sa.Column("invalid_at", _TIME),
                    sa.Column("created_at", _TIME, nullable=False))
    op.create_index("graph_relations_subject", "graph_relations", ["cube_id", "subject"])
    op.create_index("graph_relations_object", "graph_relations", ["cube_id", "object"])
    op.create_index("graph_relations_open", "graph_relations", ["cube_id", "subject", "object", "predicate_key"],
                    unique=True, postgresql_where=sa.text("invalid_at IS NULL"))
    op.create_table("graph_links", sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
                    sa.Column("relation_id", sa.Text, nullable=False), sa.Column("cube_id", sa.Text, nullable=False),
                    sa.Column("memory_id", sa.Text, nullable=False), sa.Column("subject", sa.Text, nullable=False),
                    sa.Column("object", sa.Text, nullable=False),
                    sa.UniqueConstraint("relation_id", "memory_id", name="graph_links_relation_memory"))
    op.create_index("graph_links_memory", "graph_links", ["cube_id", "memory_id"])
    op.create_index("graph_links_subject", "graph_links", ["cube_id", "subject", "seq"])
    op.create_index("graph_links_object", "graph_links", ["cube_id", "object", "seq"])


def downgrade() -> None:
    for table in ("graph_links", "graph_relations", "graph_aliases", "graph_entities"):
        op.drop_table(table)
