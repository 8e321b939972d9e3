"""Alembic's environment: migrations run on the connection ``catalog_db.upgrade`` hands in (inside
its transaction, so a start killed mid-migration leaves all of it or none)."""

from __future__ import annotations

from alembic import context

from memos_mcp.core.stores.catalog_tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
