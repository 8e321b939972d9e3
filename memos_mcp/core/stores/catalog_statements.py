"""The catalog's frequent statements, built once (SQLAlchemy Core with bound parameters).

Building a statement per call (``select(...).where(col == value)``) costs more than running it on
SQLite: every call coerces its clauses and generates its cache key anew. A statement built once
keeps its memoised cache key, so each execution only looks its compiled form up in the engine's
cache and binds the values. Parameters are named after their columns; lists are ``expanding``
(``IN (...)``, at most ``catalog._PART`` ids a statement)."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from memos_mcp.core.stores.catalog_tables import (
    cubes,
    history,
    memory_keys,
    meta,
    pending_writes,
    shares,
    tasks,
    users,
)

IDS = "ids"  # the expanding parameter of every IN (...) list
_ids: sa.BindParameter[Any] = sa.bindparam(IDS, expanding=True)

GET_META = sa.select(meta.c.value).where(meta.c.key == sa.bindparam("key"))
GET_USER = sa.select(users).where(users.c.user_id == sa.bindparam("user_id"))

# A cube's columns with its owner's role (None when the owner is gone) and its shares, one row a share
# (or one with no share), in one round trip.
_CUBE = (sa.select(cubes, users.c.role.label("owner_role"), shares.c.user_id.label("share_user"),
                   shares.c.permission.label("share_permission"), shares.c.state.label("share_state"))
         .select_from(cubes.outerjoin(users, users.c.user_id == cubes.c.owner_id)
                      .outerjoin(shares, shares.c.cube_id == cubes.c.cube_id)))
_CUBE_ORDER = (cubes.c.created_at, cubes.c.cube_id)
GET_CUBE = _CUBE.where(cubes.c.cube_id == sa.bindparam("cube_id"))
LIST_CUBES = _CUBE.order_by(*_CUBE_ORDER)
CUBES_OF = _CUBE.where(sa.or_(
    cubes.c.owner_id == sa.bindparam("user_id"),
    cubes.c.cube_id.in_(sa.select(shares.c.cube_id).where(shares.c.user_id == sa.bindparam("user_id"),
                                                          shares.c.state == "accepted")))).order_by(*_CUBE_ORDER)
_DEFAULT = sa.select(cubes.c.cube_id).where(cubes.c.owner_id == sa.bindparam("user_id"), cubes.c.is_default == 1)
DEFAULT_CUBE = _CUBE.where(cubes.c.cube_id == _DEFAULT.limit(1).scalar_subquery())

HELD_KEYS = (sa.select(memory_keys.c.dedup_key, memory_keys.c.memory_id)
             .where(memory_keys.c.cube_id == sa.bindparam("cube_id"), memory_keys.c.dedup_key.in_(_ids)))
INSERT_HISTORY = history.insert().returning(history.c.seq, sort_by_parameter_order=True)
INSERT_PENDING = pending_writes.insert()
INSERT_KEY = memory_keys.insert()
RELEASE_KEYS = memory_keys.delete().where(memory_keys.c.memory_id.in_(_ids))
END_WRITES = pending_writes.delete().where(pending_writes.c.memory_id.in_(_ids))
RECORDED_STEPS = sa.select(history.c.step).where(history.c.step.in_(_ids))
# What reads of history select: not ``step``, which a read-only catalog of an older revision lacks.
HISTORY_COLUMNS = [c for c in history.c if c.name != "step"]
HISTORY = sa.select(*HISTORY_COLUMNS).where(history.c.memory_id == sa.bindparam("memory_id")).order_by(history.c.seq)
GET_TASK = sa.select(tasks).where(tasks.c.task_id == sa.bindparam("task_id"))


@functools.cache
def upsert(dialect: str, table: sa.Table) -> Any:
    """``INSERT`` of every column of ``table`` that replaces the other columns of a row with the same
    primary key (``ON CONFLICT DO UPDATE`` from ``excluded``), for ``dialect`` ("sqlite" or
    "postgresql"); built once per dialect and table."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    keys = [c.name for c in table.primary_key]
    return insert.on_conflict_do_update(index_elements=keys, set_={
        c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys})
