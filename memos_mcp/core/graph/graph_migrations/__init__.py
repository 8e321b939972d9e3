"""Alembic migrations of the graph's tables on PostgreSQL (``postgres_store``), run from inside the
package by ``postgres_store.upgrade``. A chain of their own, recorded in ``graph_alembic_version``,
so that the graph's schema and the catalog's evolve apart in the one database they share."""
