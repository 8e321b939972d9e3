"""Alembic migrations of the catalog, for SQLite and PostgreSQL alike; run from inside the package
by ``catalog_db.upgrade`` (no ``alembic.ini``). ``versions/`` holds one script per revision."""
