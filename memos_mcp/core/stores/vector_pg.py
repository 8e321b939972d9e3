"""pgvector backend: the points in one PostgreSQL table, so that replicas on one database share them.

One row per point: ``id`` (uuid), ``dense`` (pgvector ``vector(dimension)``, stored normalised to unit
length as Qdrant does for cosine), the keyword vector as two parallel arrays ``terms`` (int4 term ids)
and ``weights`` (float4 BM25 term weights), and ``payload`` (jsonb, the memory). The payload fields the
filters and the listing order use are generated columns of the payload (PostgreSQL keeps them equal to
it on every write), each with the index ``PAYLOAD_INDEXES`` asks for.

Indexes: HNSW on ``dense`` (``vector_cosine_ops``, ``m`` = ``HNSW_M``, ``ef_construction`` =
``HNSW_EF_CONSTRUCTION``; each query sets ``hnsw.ef_search`` and pgvector 0.8's iterative scan, so a
filtered query still fills its limit) and GIN on ``terms``: an exact inverted index, as Qdrant's sparse
index is. pgvector's ``sparsevec`` is not used for the keyword side: its dimension stops at 10^9, below
the 31-bit term ids ``core.text`` makes, and a keyword match must be exact, not approximate.
Row layout (``_lay_out``): the dense vector stays in the row, the payload goes to TOAST first.

A hybrid search is one statement (``hybrid_search``): the dense prefetch through the HNSW index, the
keyword prefetch and its IDF in one pass over the points holding a query term (``_keyword``), fused.

Scores are the Qdrant backends' (see ``HybridQuery``): the keyword score is
sum(query weight * IDF * document weight) over shared terms, with Qdrant's IDF
ln(1 + (N - n + 0.5) / (n + 0.5)) (N points in the table, n of them with the term), each of the two
prefetches keeps ``candidates`` points, and a point missing from one prefetch scores 0 on that side.

The schema is made by ``open`` (not an Alembic revision: its table name and vector size are the
store's parameters, ``collection`` and the embedder's dimension), in one transaction under an
advisory lock, so that replicas starting together create it once and a kill leaves nothing half-made.
Each open creates whatever part is missing (``repaired`` names it) and ``check`` names what is missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, UUID, insert
from sqlalchemy.engine import Connection

from memos_mcp.core.stores.catalog_db import database_url, postgres_engine, shown
from memos_mcp.core.stores.closing_engine import ClosingEngine
from memos_mcp.core.stores.vector import (
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    PAYLOAD_INDEXES,
    HybridQuery,
    MemoryFilter,
    ScoredPoint,
    SparseVector,
    StoredPoint,
    VectorPoint,
    VectorStore,
)
from memos_mcp.errors import ConfigError, MemosError, StorageError

HNSW_M = 16  # graph links per node (pgvector's default)
HNSW_EF_CONSTRUCTION = 100  # candidate list while building (pgvector's default is 64)
EF_SEARCH = 100  # candidate list per query; raised to the query's limit when that is larger
_MAX_EF_SEARCH = 1000  # pgvector's upper bound
ROW_BUDGET = 1024  # bytes of a row beside its dense vector before TOAST moves its largest value out
_MAX_TOAST_TARGET = 8160  # PostgreSQL's upper bound of toast_tuple_target (8 kB pages)
_SCHEMA_LOCK = 0x6D656D7663  # "memvc": held while creating the table and its indexes
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class PgVectorStore(VectorStore):
    """Points in the table ``vectors_<collection>`` of the PostgreSQL database at ``url``
    (``postgresql://user:pass@host:5432/db``). Raises ``ConfigError`` for a collection name that is
    not a lower-case identifier, ``StorageError`` when the database cannot be reached or lacks pgvector."""

    name = "pgvector"

    def __init__(self, url: str, collection: str = "memos", read_only: bool = False) -> None:
        if not _NAME.match(collection):
            raise ConfigError(f"vector collection {collection!r} is not a lower-case identifier (letters, digits, "
                              "underscores) as the pgvector backend's table name needs", collection=collection)
        try:
            self.url = database_url(url)
            if self.url.get_backend_name() != "postgresql":
                raise sa.exc.ArgumentError(f"a {self.url.get_backend_name()} database has no pgvector")
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"vector.url (MEMOS_VECTOR__URL, default the catalog's DATABASE_URL) must be a "
                              f"PostgreSQL URL such as postgresql://user:password@host:5432/memos: {exc}",
                              field="vector.url") from exc
        self.collection = collection
        self.read_only = read_only
        self._engine: ClosingEngine | None = None
        self._table: sa.Table | None = None
        self.dimension = 0

    @property
    def location(self) -> str:
        return f"{shown(self.url)} table vectors_{self.collection}"

    def collection_exists(self) -> bool:
        engine = postgres_engine(self.url)
        try:
            with _driver("read the vector table", self.location), engine.connect() as conn:
                return sa.inspect(conn).has_table(f"vectors_{self.collection}")
        finally:
            engine.dispose()

    def open(self, dimension: int) -> None:
        """Connect, then create the table and every index it lacks (``repaired`` names what an existing
        table lacked). An existing table of another dimension raises ``ConfigError``; read-only, a
        missing table raises ``StorageError`` and nothing is created."""
        self.close()  # a second open starts afresh instead of leaking the first one's connections
        engine = postgres_engine(self.url)
        table = _table(self.collection, dimension)
        try:
            with _driver("open the vector table", self.location), engine.begin() as conn:
                if not self.read_only:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                stored = _stored_dimension(conn, table.name)
                if stored is not None and stored != dimension:
                    raise ConfigError(
                        f"vector collection at {self.location} has dimension {stored} but the embedding model "
                        f"produces {dimension}", stored=stored, expected=dimension)
                if self.read_only:
                    if stored is None:
                        raise StorageError(f"vector table {table.name} does not exist at {shown(self.url)} and "
                                           "the store is read-only", collection=self.collection)
                    made: list[str] = []
                else:
                    made = _create(conn, table, fresh=stored is None)
        except BaseException:
            engine.dispose()
            raise
        self._engine, self._table, self.dimension = ClosingEngine(engine), table, dimension
        self.repaired = tuple(made)

    def check(self) -> str:
        with _driver("read the vector table", self.location), self.engine.connect() as conn:
            missing = _missing(conn, self.table)
        if missing:
            raise StorageError(f"vector table at {self.location} lacks {', '.join(missing)}", missing=missing)
        self._probe()
        return f"table {self.table.name}, HNSW and keyword indexes, ordered scroll answers"

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        self._writable("upsert points")
        latest = {p.id: p for p in points}  # one statement may not touch a row twice: the last one wins
        if not latest:
            return
        rows = [{"id": p.id, "dense": _unit(p.dense), "terms": p.sparse.indices, "weights": p.sparse.values,
                 "payload": p.payload} for p in latest.values()]
        statement = insert(self.table)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.id],
            set_={c: statement.excluded[c] for c in ("dense", "terms", "weights", "payload")})
        with self._write("upsert points") as conn:
            conn.execute(statement, rows)

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        self._writable("set a payload")
        t = self.table
        merged = t.c.payload.op("||")(sa.cast(payload, JSONB))
        with self._write("set a payload") as conn:
            done = conn.execute(sa.update(t).where(t.c.id == point_id).values(payload=merged))
        if done.rowcount == 0:
            raise StorageError(f"cannot set the payload of point {point_id}: no such point in {self.location}",
                               point_id=point_id)

    def set_payload_if(self, point_id: str, payload: dict[str, Any], field: str, expected: str) -> bool:
        """One statement: a replica that changes ``field`` meanwhile is never overwritten."""
        self._writable("set a payload")
        t = self.table
        merged = t.c.payload.op("||")(sa.cast(payload, JSONB))
        with self._write("set a payload") as conn:
            done = conn.execute(sa.update(t).where(t.c.id == point_id, t.c.payload[field].astext == expected)
                                .values(payload=merged))
        return bool(done.rowcount)

    def delete(self, ids: Sequence[str]) -> None:
        self._writable("delete points")
        if not ids:
            return
        with self._write("delete points") as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.id.in_(list(ids))))

    def delete_where(self, flt: MemoryFilter) -> None:
        self._writable("delete points")
        with self._write("delete points by filter") as conn:
            conn.execute(sa.delete(self.table).where(*pg_filter(self.table, flt)))

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        if not ids:
            return []
        t = self.table
        columns = [t.c.id, t.c.payload, *([t.c.dense] if with_vectors else [])]
        with self._read("retrieve points") as conn:
            rows = conn.execute(sa.select(*columns).where(t.c.id.in_(list(ids)))).all()
        found = {str(r.id): StoredPoint(str(r.id), r.payload, _floats(r.dense) if with_vectors else None)
                 for r in rows}
        return [found[i] for i in (str(i).lower() for i in ids) if i in found]

    def whole_points(self, ids: Sequence[str]) -> list[VectorPoint]:
        if not ids:
            return []
        t = self.table
        with self._read("retrieve whole points") as conn:
            rows = conn.execute(sa.select(t.c.id, t.c.dense, t.c.terms, t.c.weights, t.c.payload)
                                .where(t.c.id.in_(list(ids)))).all()
        found = {str(r.id): VectorPoint(str(r.id), _floats(r.dense), SparseVector(list(r.terms), list(r.weights)),
                                        r.payload) for r in rows}
        return [found[i] for i in (str(i).lower() for i in ids) if i in found]

    def _order_values(self, flt: MemoryFilter, limit: int, offset: int) -> list[float]:
        t = self.table
        query = (sa.select(t.c.created_at).where(*pg_filter(t, flt), t.c.created_at.is_not(None))
                 .order_by(t.c.created_at.desc()).limit(limit).offset(offset))
        with self._read("scroll points") as conn:
            return [float(v) for v in conn.execute(query).scalars()]

    def _order_keys(self, flt: MemoryFilter) -> list[tuple[float, str]]:
        t = self.table
        query = sa.select(t.c.created_at, t.c.id).where(*pg_filter(t, flt), t.c.created_at.is_not(None))
        with self._read("scroll points") as conn:
            return [(float(r.created_at), str(r.id)) for r in conn.execute(query)]

    def count(self, flt: MemoryFilter) -> int:
        query = sa.select(sa.func.count()).select_from(self.table).where(*pg_filter(self.table, flt))
        with self._read("count points") as conn:
            return int(conn.execute(query).scalar_one())

    def exists(self, flt: MemoryFilter) -> bool:
        query = sa.select(self.table.c.id).where(*pg_filter(self.table, flt)).limit(1)
        with self._read("look for a point") as conn:
            return conn.execute(query).first() is not None

    def hybrid_search(self, query: HybridQuery) -> list[ScoredPoint]:
        t = self.table
        flt = pg_filter(t, query.filter)
        dense = _unit(query.dense)
        distance = t.c.dense.cosine_distance(dense)
        near = (sa.select(t.c.id, (1 - distance).label("s")).where(*flt)
                .order_by(distance).limit(query.candidates).cte("near"))
        keyword = _keyword(t, flt, query.sparse, query.candidates)
        fused = _fuse(t, query, [near] if keyword is None else [near, keyword])
        with self._read("run a hybrid search", ef=query.candidates) as conn:
            rows = conn.execute(fused).all()
        return [ScoredPoint(str(r.id), float(r.score), r.payload, _floats(r.dense) if query.with_dense else None)
                for r in rows]

    def dense_search(self, vector: list[float], flt: MemoryFilter, limit: int) -> list[ScoredPoint]:
        t = self.table
        distance = t.c.dense.cosine_distance(_unit(vector))
        query = (sa.select(t.c.id, t.c.payload, (1 - distance).label("score")).where(*pg_filter(t, flt))
                 .order_by(distance).limit(limit))
        with self._read("run a dense search", ef=limit) as conn:
            rows = conn.execute(query).all()
        # The iterative scan may return neighbours slightly out of order: sorted again, as pgvector advises.
        hits = [ScoredPoint(str(r.id), float(r.score), r.payload) for r in rows]
        return sorted(hits, key=lambda hit: -hit.score)

    def stats(self) -> dict[str, Any]:
        with self._read("read the table's size") as conn:
            points = conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()
        return {
            "backend": self.name,
            "points": int(points),
            "collection": self.collection,
            "table": self.table.name,
            "path": shown(self.url),
            "dimension": self.dimension,
            "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": EF_SEARCH},
            **({"read_only": True} if self.read_only else {}),
        }

    def flush(self) -> None:
        """Nothing to do: each write is committed before its method returns."""

    def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    @property
    def engine(self) -> ClosingEngine:
        if self._engine is None:
            raise StorageError(f"vector store at {self.location} is not open")
        return self._engine

    @property
    def table(self) -> sa.Table:
        if self._table is None:
            raise StorageError(f"vector store at {self.location} is not open")
        return self._table

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with self._transaction(action) as conn:
            yield conn

    @contextmanager
    def _read(self, action: str, ef: int | None = None) -> Iterator[Connection]:
        """A transaction for reads; ``ef``: a nearest-neighbour query of that many results follows."""
        with self._transaction(action) as conn:
            if ef is not None:
                conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true), "
                                     "set_config('hnsw.iterative_scan', 'relaxed_order', true)"),
                             {"ef": str(min(max(EF_SEARCH, ef), _MAX_EF_SEARCH))})
            yield conn

    @contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        with _driver(action, self.location), self.engine.begin() as conn:
            yield conn


def pg_filter(t: sa.Table, flt: MemoryFilter) -> list[sa.ColumnElement[bool]]:
    """``MemoryFilter`` as WHERE clauses on the table ``t`` (all must hold), with the Qdrant backends'
    matching: a metadata value matches an equal JSON value (a boolean never equals a number) or an
    element of a stored list."""
    where: list[sa.ColumnElement[bool]] = [t.c.cube_id.in_(flt.cube_ids)]
    for key, values in (("status", flt.status), ("memory_type", flt.memory_types), ("kind", flt.kinds)):
        if values:
            where.append(t.c[key].in_(values))
    if flt.tags_any:
        where.append(t.c.tags.has_any(sa.cast(list(flt.tags_any), ARRAY(sa.Text))))
    for key, value in (("conversation_id", flt.conversation_id), ("user_id", flt.user_id),
                       ("content_hash", flt.content_hash)):
        if value is not None:
            where.append(t.c[key] == value)
    if flt.ids:
        where.append(t.c.id.in_(list(flt.ids)))
    for key, low, high in (("event_time", flt.event_time_from, flt.event_time_to),
                           ("created_at", flt.created_from, flt.created_to)):
        if low is not None:
            where.append(t.c[key] >= low)
        if high is not None:
            where.append(t.c[key] <= high)
    for name, wanted in flt.metadata:
        where.append(t.c.payload["metadata"][name].contains(sa.cast(wanted, JSONB)))
    return where


def _table(collection: str, dimension: int) -> sa.Table:
    """The table's shape: the stored columns, a generated column per indexed payload field, and
    the indexes (named ``<table>_<field>``)."""
    name = f"vectors_{collection}"
    generated: list[sa.Column[Any]] = []
    for field in KEYWORD_FIELDS:
        if field == "tags":
            generated.append(sa.Column("tags", JSONB, sa.Computed("payload -> 'tags'", persisted=True)))
        else:
            generated.append(sa.Column(field, sa.Text, sa.Computed(
                f"CASE WHEN jsonb_typeof(payload -> '{field}') = 'string' THEN payload ->> '{field}' END",
                persisted=True)))
    for field in FLOAT_FIELDS:
        generated.append(sa.Column(field, sa.Float, sa.Computed(
            f"CASE WHEN jsonb_typeof(payload -> '{field}') = 'number' THEN (payload ->> '{field}')::float8 END",
            persisted=True)))
    table = sa.Table(
        name, sa.MetaData(),
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("dense", VECTOR(dimension), nullable=False),
        sa.Column("terms", ARRAY(sa.Integer), nullable=False),
        sa.Column("weights", ARRAY(REAL), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        *generated,
    )
    sa.Index(f"{name}_dense", table.c.dense, postgresql_using="hnsw",
             postgresql_with={"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
             postgresql_ops={"dense": "vector_cosine_ops"})
    sa.Index(f"{name}_terms", table.c.terms, postgresql_using="gin")
    for field in PAYLOAD_INDEXES:
        if field == "tags":
            sa.Index(f"{name}_tags", table.c.tags, postgresql_using="gin")
        elif field == "cube_id":  # the cube leads every query: with the listing order, one index serves both
            sa.Index(f"{name}_cube_id", table.c.cube_id, table.c.created_at)
        else:
            sa.Index(f"{name}_{field}", table.c[field])
    return table


def _stored_dimension(conn: Connection, name: str) -> int | None:
    """The size of the table's ``dense`` column; None when the table does not exist."""
    found = conn.execute(sa.text("SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(:name) "
                                 "AND attname = 'dense' AND NOT attisdropped"), {"name": name}).scalar()
    if found is None:
        exists = conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar()
        return 0 if exists else None  # a table without its dense column: no dimension matches
    return int(found)


def _missing(conn: Connection, table: sa.Table) -> list[str]:
    """What the database lacks of ``table``: "table T", "column T.C", "index I"."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name):
        return [f"table {table.name}"]
    columns = {c["name"] for c in inspector.get_columns(table.name)}
    indexes = {i["name"] for i in inspector.get_indexes(table.name)}
    return [*(f"column {table.name}.{c.name}" for c in table.columns if c.name not in columns),
            *(f"index {i.name}" for i in sorted(table.indexes, key=lambda i: str(i.name)) if i.name not in indexes)]


def _create(conn: Connection, table: sa.Table, fresh: bool) -> list[str]:
    """Create pgvector, the table and whatever column or index it lacks; what an existing table lacked."""
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        raise StorageError(f"the database cannot load pgvector (CREATE EXTENSION vector): {exc.orig}") from exc
    missing = _missing(conn, table)
    if fresh:
        table.create(conn)  # with its indexes
        _lay_out(conn, table)
        return []
    for column in table.columns:
        if f"column {table.name}.{column.name}" in missing:
            if column.computed is None:  # a stored column lost: the points cannot be read, only made again
                raise StorageError(f"vector table {table.name} lacks its column {column.name}; drop the table "
                                   "and import the memories again", column=column.name)
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))
    for index in table.indexes:
        if f"index {index.name}" in missing:
            index.create(conn)
    return [*missing, *_lay_out(conn, table)]


def _lay_out(conn: Connection, table: sa.Table) -> list[str]:
    """Keep the dense vector in the row and send the payload to TOAST: ``dense`` stored MAIN (pgvector's
    type says EXTERNAL: a row over 2 kB had its vector moved out of line, so that a scan computing
    distances fetched each vector from the TOAST table, and the planner, which does not count that,
    chose such a scan below some 13,000 rows: 100 ms at 10,000) and the table's ``toast_tuple_target``
    the vector's size plus ``ROW_BUDGET`` (the payload, largest, then leaves the row first). Changes
    only what differs (a table made before this layout: "row layout"); rows written before keep
    their old layout until rewritten (``VACUUM FULL``)."""
    dense: VECTOR = table.c.dense.type
    target = min(_MAX_TOAST_TARGET, 4 * int(dense.dim) + 8 + ROW_BUDGET)
    storage, options = conn.execute(sa.text(
        "SELECT a.attstorage, c.reloptions FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE a.attrelid = to_regclass(:name) AND a.attname = 'dense'"), {"name": table.name}).one()
    if storage == "m" and f"toast_tuple_target={target}" in (options or []):
        return []
    conn.execute(sa.text(f'ALTER TABLE "{table.name}" ALTER COLUMN dense SET STORAGE MAIN, '
                         f"SET (toast_tuple_target = {target})"))
    return ["row layout"]


def _keyword(t: sa.Table, flt: list[sa.ColumnElement[bool]], sparse: SparseVector, candidates: int) -> sa.CTE | None:
    """The keyword prefetch (columns ``id``, ``s``: the BM25 score), in the one statement of the search;
    None for a query without terms. One pass over the points holding any query term (the GIN index on
    ``terms``) reads, per query term, the point's weight at that term's position in its ``terms``
    (``array_position``: a scan of the row's array in C; a point's terms are distinct, the last weight
    given for a repeated query term counts). From those rows, before the filter, come each term's
    document frequency n, and with N (the points in the table) its IDF, Qdrant's
    ln(1 + (N - n + 0.5) / (n + 0.5)) (a term no point holds adds nothing); the score is sum(query
    weight * IDF * point weight) over the terms the point shares with the query, and the ``candidates``
    best of the points the filter keeps are the prefetch. (It was a count per term in a statement of its
    own and, per matching row, a join of the two arrays unnested: 0.03 ms a row, where a speaker's name
    matches half the points.)"""
    weight = dict(zip(sparse.indices, sparse.values, strict=True))
    if not weight:
        return None
    terms = sorted(weight)
    positions = [t.c.weights[sa.func.array_position(t.c.terms, sa.literal(term, sa.Integer))].label(f"w{i}")
                 for i, term in enumerate(terms)]
    matched = (sa.select(t.c.id, sa.and_(*flt).label("wanted"), *positions)
               .where(t.c.terms.overlap(sa.cast(terms, ARRAY(sa.Integer)))).cte("matched"))
    points = sa.select(sa.cast(sa.func.count(), sa.Float).label("total")).select_from(t).cte("points")
    factors = []
    for i, term in enumerate(terms):
        n = sa.cast(sa.func.count(matched.c[f"w{i}"]), sa.Float)
        factors.append((sa.literal(weight[term], sa.Float) * sa.func.ln(1 + (points.c.total - n + 0.5) / (n + 0.5)))
                       .label(f"q{i}"))
    idf = sa.select(*factors).select_from(matched.join(points, sa.true())).group_by(points.c.total).cte("idf")
    parts = [sa.func.coalesce(idf.c[f"q{i}"] * matched.c[f"w{i}"], 0.0) for i in range(len(terms))]
    score = sum(parts[1:], parts[0])
    return (sa.select(matched.c.id, score.label("s")).select_from(matched.join(idf, sa.true()))
            .where(matched.c.wanted).order_by(sa.desc("s")).limit(candidates).cte("keyword"))


def _fuse(t: sa.Table, query: HybridQuery, sides: list[sa.CTE]) -> sa.Select[Any]:
    """The fused score of ``HybridQuery`` over the union of the prefetches' candidates."""
    near = sides[0]
    keyword = sides[1] if len(sides) > 1 else None
    if keyword is None:
        union = sa.select(near.c.id, near.c.s.label("ds"), sa.literal(0.0).label("ks")).cte("fused")
    else:
        union = (sa.select(sa.func.coalesce(near.c.id, keyword.c.id).label("id"),
                           sa.func.coalesce(near.c.s, 0.0).label("ds"),
                           sa.func.coalesce(keyword.c.s, 0.0).label("ks"))
                 .select_from(near.join(keyword, near.c.id == keyword.c.id, full=True)).cte("fused"))
    bm25 = union.c.ks
    score = (query.dense_weight * sa.func.greatest(union.c.ds, 0.0)
             + query.sparse_weight * sa.func.coalesce(bm25 / sa.func.nullif(bm25 + query.sparse_saturation, 0.0),
                                                      0.0))
    if query.boost_conversation_id is not None and query.conversation_boost:
        score = score + sa.case((t.c.conversation_id == query.boost_conversation_id, query.conversation_boost),
                                else_=0.0)
    dense = [t.c.dense] if query.with_dense else []  # the payload is whole whatever ``fields`` asks
    return (sa.select(t.c.id, t.c.payload, *dense, score.label("score"))
            .join_from(t, union, union.c.id == t.c.id)
            .order_by(sa.desc("score"), t.c.id).limit(query.limit))


def _unit(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to length 1 (a zero vector is kept)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def _floats(vector: Any) -> list[float]:
    """A stored vector (pgvector's numpy array) as Python floats."""
    return [float(x) for x in vector.tolist()]


@contextmanager
def _driver(action: str, location: str) -> Iterator[None]:
    try:
        yield
    except MemosError:
        raise
    except Exception as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StorageError(f"pgvector failed to {action} at {location}: {detail}") from exc
