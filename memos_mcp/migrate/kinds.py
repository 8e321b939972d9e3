"""What ``memos-mcp migrate`` copies, one *kind* at a time: a table of the catalog or of the graph
(``TableKind``: rows read from an SQLite file, upserted into PostgreSQL by their primary key) or the
vector points (``VectorKind``: read whole from qdrant-edge or qdrant-client, upserted into pgvector).

Every kind answers the same questions: how many it holds on each side, its source records in batches
(in key order, so that a batch is the same on every run), the target's records under a batch's keys,
whether two records are the same, and how to write a batch (one transaction on the target). The
orchestration (``migrate.run``) is written once over these."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from memos_mcp.core.stores.vector import MemoryFilter, VectorPoint, VectorStore
from memos_mcp.errors import StorageError

Record = Any  # a row as a dict (tables) or a VectorPoint (vectors)


class Kind(ABC):
    """One kind of record; ``name`` is how the summary and the errors call it."""

    name: str

    @abstractmethod
    def source_count(self) -> int: ...

    @abstractmethod
    def target_count(self) -> int: ...

    @abstractmethod
    def batches(self, size: int) -> Iterator[list[Record]]:
        """The source's records in key order, ``size`` at a time."""

    @abstractmethod
    def key(self, record: Record) -> Hashable: ...

    @abstractmethod
    def stored(self, keys: Sequence[Hashable]) -> dict[Hashable, Record]:
        """The target's records under ``keys`` (those it has)."""

    @abstractmethod
    def same(self, source: Record, target: Record) -> bool: ...

    @abstractmethod
    def write(self, records: Sequence[Record]) -> None:
        """Upsert ``records`` into the target in one transaction (a source record replaces the
        target's under its key)."""

    def clashes(self, records: Sequence[Record]) -> list[Hashable]:
        """Keys of ``records`` whose other unique values (a message id, a key hash) the target holds
        under another key: writing them would fail. None by default."""
        return []

    def finish(self) -> None:  # noqa: B027  (most kinds have nothing to finish)
        """After the last batch (sequences moved past the copied numbers)."""


@contextmanager
def _database(action: str, where: str) -> Iterator[None]:
    """A database failure inside becomes ``StorageError`` naming ``action`` and ``where``."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StorageError(f"migrate failed to {action} at {where}: {detail}") from exc


@dataclass
class TableKind(Kind):
    """The rows of ``source_table`` in the SQLite database of ``source`` copied into ``target_table``
    (a table of the catalog's or the graph's metadata) on the PostgreSQL ``target``. Only the columns
    both sides have are copied (a column the source predates takes the target's default, as the
    migration that made it gives); ``cleared`` columns are written as NULL (a task's lease, which
    names a process of the source). ``unique``: other unique column sets checked by ``clashes``;
    ``sequence``: the column whose sequence ``finish`` moves past the copied numbers."""

    name: str
    source: Engine
    source_table: str
    target: Engine
    target_table: sa.Table
    where: str
    cleared: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    sequence: str | None = None
    columns: list[str] = field(init=False)
    _source: sa.TableClause = field(init=False)
    _key: list[str] = field(init=False)

    def __post_init__(self) -> None:
        with _database(f"read the {self.name} table", "the source"), self.source.connect() as conn:
            present = {c["name"] for c in sa.inspect(conn).get_columns(self.source_table)}
        self.columns = [c.name for c in self.target_table.columns if c.name in present]
        self._key = [c.name for c in self.target_table.primary_key.columns]
        if any(k not in self.columns for k in self._key):
            raise StorageError(f"the source's {self.source_table} table lacks its key {', '.join(self._key)}",
                               table=self.source_table)
        self._source = sa.table(self.source_table, *(sa.column(c) for c in self.columns))

    def source_count(self) -> int:
        with _database(f"count the {self.name}", "the source"), self.source.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self._source)).scalar_one())

    def target_count(self) -> int:
        with _database(f"count the {self.name}", self.where), self.target.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.target_table)).scalar_one())

    def batches(self, size: int) -> Iterator[list[Record]]:
        key = [self._source.c[k] for k in self._key]
        after: tuple[Any, ...] | None = None
        while True:
            query = sa.select(*(self._source.c[c] for c in self.columns)).order_by(*key).limit(size)
            if after is not None:
                query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
            with _database(f"read the {self.name}", "the source"), self.source.connect() as conn:
                rows = [self._record(dict(r._mapping)) for r in conn.execute(query)]
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = tuple(rows[-1][k] for k in self._key)

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, **dict.fromkeys(c for c in self.cleared if c in row)}

    def key(self, record: Record) -> Hashable:
        return tuple(record[k] for k in self._key)

    def stored(self, keys: Sequence[Hashable]) -> dict[Hashable, Record]:
        t = self.target_table
        key = sa.tuple_(*(t.c[k] for k in self._key))
        query = sa.select(*(t.c[c] for c in self.columns)).where(key.in_(list(keys)))
        with _database(f"read the {self.name}", self.where), self.target.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return {self.key(r): r for r in rows}

    def same(self, source: Record, target: Record) -> bool:
        return all(source[c] == target[c] for c in self.columns)

    def clashes(self, records: Sequence[Record]) -> list[Hashable]:
        t = self.target_table
        found: list[Hashable] = []
        for columns in self.unique:
            values = {tuple(r[c] for c in columns): self.key(r) for r in records}
            query = sa.select(*(t.c[c] for c in (*columns, *self._key))).where(
                sa.tuple_(*(t.c[c] for c in columns)).in_(list(values)))
            with _database(f"read the {self.name}", self.where), self.target.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(query)]
            found += [values[v] for r in rows
                      if values.get(v := tuple(r[c] for c in columns)) not in (None, self.key(r))]
        return found

    def write(self, records: Sequence[Record]) -> None:
        t = self.target_table
        statement = insert(t)
        rest = {c: statement.excluded[c] for c in self.columns if c not in self._key}
        statement = (statement.on_conflict_do_update(index_elements=self._key, set_=rest) if rest
                     else statement.on_conflict_do_nothing(index_elements=self._key))
        with _database(f"write the {self.name}", self.where), self.target.begin() as conn:
            conn.execute(statement, [dict(r) for r in records])

    def finish(self) -> None:
        if self.sequence is None:
            return
        name = self.target_table.name
        with _database(f"move the {self.name} sequence", self.where), self.target.begin() as conn:
            conn.execute(sa.text(f'SELECT setval(pg_get_serial_sequence(:table, :column), '
                                 f'(SELECT COALESCE(MAX("{self.sequence}"), 0) + 1 FROM "{name}"), false)'),
                         {"table": name, "column": self.sequence})


_TOLERANCE = 1e-5  # a unit vector's components as float32 (pgvector) against the source's


@dataclass
class VectorKind(Kind):
    """The points of the source's cubes ``cube_ids`` (every status) copied whole: the stored dense
    vector (never embedded again; each must have ``dimension`` components), the stored keyword vector
    and the payload."""

    source: VectorStore
    target: VectorStore
    cube_ids: tuple[str, ...]
    dimension: int
    name: str = "vectors"

    def _filter(self) -> MemoryFilter | None:
        return MemoryFilter(cube_ids=self.cube_ids, status=()) if self.cube_ids else None

    def source_count(self) -> int:
        flt = self._filter()
        return self.source.count(flt) if flt else 0

    def target_count(self) -> int:
        return int(self.target.stats()["points"])

    def batches(self, size: int) -> Iterator[list[Record]]:
        flt = self._filter()
        if flt is None:
            return
        for page in self.source.walk(flt, size):
            points = self.source.whole_points([p.id for p in page])
            for point in points:
                if len(point.dense) != self.dimension:
                    raise StorageError(f"memory {point.id} has a vector of {len(point.dense)} dimensions, not the "
                                       f"{self.dimension} the source's catalog records", memory_id=point.id)
            yield points

    def key(self, record: Record) -> Hashable:
        return str(record.id)

    def stored(self, keys: Sequence[Hashable]) -> dict[Hashable, Record]:
        return {p.id: p for p in self.target.whole_points([str(k) for k in keys])}

    def same(self, source: Record, target: Record) -> bool:
        a: VectorPoint = source
        b: VectorPoint = target
        return (a.payload == b.payload and a.sparse.indices == b.sparse.indices
                and _close(a.sparse.values, b.sparse.values, _TOLERANCE)
                and _close(_unit(a.dense), b.dense, _TOLERANCE))

    def write(self, records: Sequence[Record]) -> None:
        self.target.upsert(records)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def _close(a: Sequence[float], b: Sequence[float], tolerance: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tolerance * max(1.0, abs(x)) for x, y in zip(a, b, strict=True))
