"""Alembic's environment: migrations run on the connection ``postgres_store.upgrade`` hands in
(inside its transaction), versioned in ``graph_alembic_version``."""

from __future__ import annotations

from alembic import context

from memos_mcp.core.graph.graph_tables import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
