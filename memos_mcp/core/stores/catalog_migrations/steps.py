"""Schema steps that revisions share: each adds only what the catalog lacks, so that a revision also
upgrades a catalog that already holds part of it (the baseline adopts a catalog made before Alembic as
it is, whatever columns that release had added)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


def add_missing_columns(table: str, columns: Sequence[sa.Column[object]]) -> None:
    """Adds those of ``columns`` that ``table`` lacks (by name), in one batch (SQLite rebuilds the table)."""
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}
    missing = [column for column in columns if column.name not in present]
    if missing:
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)


def create_missing_index(name: str, table: str, columns: Sequence[str], *, unique: bool = False) -> None:
    """Creates the index ``name`` on ``table`` unless the table has an index of that name."""
    if name not in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, list(columns), unique=unique)
