"""``memos-mcp migrate --to URL``: copy an embedded data directory (the SQLite catalog, the qdrant-edge or
qdrant-client vectors, the SQLite graph) into PostgreSQL, where ``serve`` with ``MEMOS_CATALOG__URL=URL``
and ``MEMOS_VECTOR__BACKEND=pgvector`` serves the same data to several replicas.

The source is read only, under its data directory's lock (a running server would change it midway).
The target is made first: the catalog's schema upgraded to head (Alembic), the graph's tables, the
pgvector table of the source's dimension. Then each kind (``kinds``) is copied in key order, in
batches, each batch one transaction on the target, upserted by its keys: a run killed midway leaves
whole batches, and the next run copies what is missing and rewrites nothing that is already equal.
Vectors are copied as stored (dense and keyword), never embedded again. At the end every kind's
count is compared: the target must hold the source's records plus those it held under other keys.

What the target may already hold: nothing, or what an earlier run of the same migration wrote. A record
under one of the source's keys with other contents, a record under a key the source lacks, or a unique
value (a message id, an API key's hash) held under another key makes the run refuse before it writes
anything (``Conflict`` naming each kind); ``force`` lets the source's records replace the target's under
the same keys and keeps the others (never deleted). A target made by another embedding model or of
another dimension is refused even so: its vectors could not be searched together."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import URL, Engine, make_url

from memos_mcp.config import Settings
from memos_mcp.core.graph import graph_tables
from memos_mcp.core.stores import catalog_db, catalog_tables, reembed_swap
from memos_mcp.core.stores.data_dir import CATALOG_FILE, lock_data_dir, require_store
from memos_mcp.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    InvalidRequest,
    StorageError,
    StoreLocked,
)
from memos_mcp.migrate.kinds import Kind, TableKind, VectorKind

log = logging.getLogger(__name__)

BATCH = 500  # records per batch (one transaction on the target)
_CONNECT_TIMEOUT = 10  # seconds to reach the target before it counts as unreachable
_EXAMPLES = 3  # keys named per kind in an error

# progress(kind name, total) -> a context whose callable takes the number of records done
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class Options:
    """``to``: the PostgreSQL URL of the catalog and graph; ``vector_url``: the pgvector database (None:
    ``to``); ``force``: replace the target's records under the source's keys; ``batch_size``: records
    per transaction."""

    to: str
    vector_url: str | None = None
    force: bool = False
    batch_size: int = BATCH


class KindReport(BaseModel):
    """One kind's counts: ``source`` records, ``target`` records at the end, ``written`` by this run,
    ``unchanged`` (already equal in the target), ``kept`` (target records under keys the source lacks)."""

    source: int
    target: int
    written: int = 0
    unchanged: int = 0
    kept: int = 0


class Report(BaseModel):
    """The summary: ``ok`` when every kind's count matched (``differs`` names the others), the masked
    URLs, the embedding model and dimension carried, seconds taken and memories copied per second."""

    ok: bool
    source: str
    catalog: str
    vectors: str
    embedding_model: str | None
    dimension: int | None
    kinds: dict[str, KindReport]
    differs: list[str]
    seconds: float
    memories_per_second: float


def postgres_url(value: str, flag: str) -> URL:
    """``value`` as a PostgreSQL URL (psycopg 3). ``InvalidRequest`` naming ``flag`` for anything else."""
    try:
        url = catalog_db.database_url(value)
    except sa.exc.ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql" or not url.database:
        raise InvalidRequest(f"{flag} must be a PostgreSQL URL with a database name, such as "
                             f"postgresql://user:password@host:5432/memos; got {_masked(value)!r}", field=flag)
    return url.set(drivername="postgresql+psycopg")  # the one driver installed (not a URL's asyncpg or psycopg2)


def _masked(value: str) -> str:
    try:
        return catalog_db.shown(make_url(value))
    except sa.exc.ArgumentError:
        return value if "@" not in value else "…@" + value.rpartition("@")[2]


def migrate(settings: Settings, options: Options, progress: Progress | None = None) -> Report:
    """Copy the data directory of ``settings`` into the databases of ``options`` (see the module).
    Raises ``InvalidRequest`` (a bad URL, no data directory), ``StoreLocked`` (the data directory is in
    use), ``BackendUnavailable`` (a database cannot be reached), ``ConfigError`` (no pgvector, another
    model), ``Conflict`` (the target holds other data) or ``StorageError``; a count that differs at
    the end is reported in ``Report.differs``, not raised."""
    started = time.monotonic()
    to = postgres_url(options.to, "--to")
    vector_flag = "--vector-url" if options.vector_url else "--to"
    vector_url = postgres_url(options.vector_url, "--vector-url") if options.vector_url else to
    if options.batch_size < 1:
        raise InvalidRequest("--batch-size must be at least 1", field="--batch-size")
    progress = progress or bars
    with ExitStack() as stack:
        source = stack.enter_context(_Source.open(settings))
        _probe(to, "--to")
        if vector_url != to:
            _probe(vector_url, vector_flag)
        _require_pgvector(vector_url, vector_flag)
        kinds = stack.enter_context(_target_kinds(source, settings, options, to, vector_url))
        held = _check_target(kinds, options)
        reports = {kind.name: _copy(kind, options.batch_size, held.get(kind.name), progress) for kind in kinds}
        for kind in kinds:
            kind.finish()
            report = reports[kind.name]
            report.target, report.kept = kind.target_count(), held[kind.name].kept if kind.name in held else 0
    differs = [f"{name}: the source has {r.source}, the target {r.target}"
               + (f" ({r.kept} of them under keys the source lacks)" if r.kept else "")
               for name, r in reports.items() if r.target - r.kept != r.source]
    seconds = time.monotonic() - started
    memories = reports["vectors"].source if "vectors" in reports else 0
    return Report(ok=not differs, source=str(settings.data_dir), catalog=catalog_db.shown(to),
                  vectors=catalog_db.shown(vector_url), embedding_model=source.model, dimension=source.dimension,
                  kinds=reports, differs=differs, seconds=round(seconds, 3),
                  memories_per_second=round(memories / seconds, 1) if seconds else 0.0)


@contextmanager
def bars(name: str, total: int) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on stderr for one kind (shown on a terminal only)."""
    from tqdm import tqdm

    with tqdm(total=total, desc=name, unit="rec", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
        def advance(done: int) -> None:
            bar.update(done - bar.n)
        yield advance


@dataclass
class _Source:
    """The data directory opened for reading: its catalog and graph files, its vector store, the model."""

    data_dir: Path
    catalog: Engine
    graph: Engine | None
    model: str | None
    dimension: int | None
    cube_ids: tuple[str, ...]

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[_Source]:
        data_dir = settings.data_dir
        require_store(data_dir, "to migrate")
        catalog_file = data_dir / CATALOG_FILE
        if settings.vector.backend == "pgvector":
            raise InvalidRequest("the data directory's vectors are configured on pgvector already (vector.backend); "
                                 "migrate copies qdrant-edge or qdrant-client vectors", field="vector.backend")
        with ExitStack() as stack:
            if os.access(data_dir, os.W_OK):  # a read-only snapshot has no writer to keep out
                try:
                    stack.callback(lock_data_dir(data_dir).release)
                except StoreLocked as exc:
                    raise StoreLocked(f"the data directory {data_dir} is in use: its lock {data_dir / '.lock'} is "
                                      "held by another memos-mcp process (serve, stdio or a command); stop it, "
                                      "then migrate", lock=str(data_dir / ".lock")) from exc
            if reembed_swap.swap_cut_short(data_dir):
                raise StorageError(f"a re-embedding of {data_dir} stopped during its swap (memos-mcp reembed): open "
                                   "the data directory once (memos-mcp doctor) to finish it, then migrate",
                                   data_dir=str(data_dir))
            catalog = catalog_db.sqlite_engine(catalog_file, read_only=True)
            stack.callback(catalog.dispose)
            with _reading("the source's catalog"), catalog.connect() as conn:
                meta = dict(conn.execute(sa.select(catalog_tables.meta.c.key, catalog_tables.meta.c.value)).all())
                cube_ids = tuple(conn.execute(sa.select(catalog_tables.cubes.c.cube_id)).scalars())
            graph_file = data_dir / "graph.sqlite3"
            graph = catalog_db.sqlite_engine(graph_file, read_only=True) if graph_file.is_file() else None
            if graph is not None:
                stack.callback(graph.dispose)
            dimension = meta.get("dimension")
            yield cls(data_dir, catalog, graph, meta.get("embedding_model"), int(dimension) if dimension else None,
                      cube_ids)


@contextmanager
def _reading(what: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot read {what}: {getattr(exc, 'orig', None) or exc}") from exc


def _probe(url: URL, flag: str) -> None:
    """Connect once (within ``_CONNECT_TIMEOUT`` s): ``BackendUnavailable`` naming ``flag`` if it fails."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        raise BackendUnavailable(f"cannot reach the PostgreSQL database of {flag} ({catalog_db.shown(url)}): {detail}",
                                 field=flag) from exc
    finally:
        engine.dispose()


def _require_pgvector(url: URL, flag: str) -> None:
    """The pgvector extension is in the database, or is made there now; ``ConfigError`` naming ``flag``
    when the server has none or the user may not create it."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT})
    try:
        with engine.begin() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar():
                return
            if not conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar():
                raise ConfigError(f"the PostgreSQL server of {flag} ({catalog_db.shown(url)}) has no pgvector "
                                  "extension: install pgvector there (https://github.com/pgvector/pgvector)",
                                  field=flag)
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        raise ConfigError(f"cannot create the pgvector extension in the database of {flag} "
                          f"({catalog_db.shown(url)}): {detail}; run CREATE EXTENSION vector there as its owner "
                          "or a superuser", field=flag) from exc
    finally:
        engine.dispose()


_Unique = tuple[tuple[str, ...], ...]
# (table, columns written as NULL, other unique columns, sequence), in foreign-key order
_CATALOG: tuple[tuple[str, tuple[str, ...], _Unique, str | None], ...] = (
    ("meta", (), (), None), ("users", (), (), None), ("cubes", (), (), None), ("shares", (), (), None),
    ("api_keys", (), (("key_hash",),), None), ("messages", (), (("id",),), "seq"), ("history", (), (), "seq"),
    ("tasks", ("lease_owner", "lease_until"), (), None), ("pending_writes", (), (), None),
    ("memory_keys", (), (), None))
_GRAPH: tuple[tuple[str, _Unique, str | None], ...] = (
    ("entities", (), None), ("aliases", (), None), ("relations", (), None),
    ("links", (("relation_id", "memory_id"),), "seq"))


@contextmanager
def _target_kinds(source: _Source, settings: Settings, options: Options, to: URL,
                  vector_url: URL) -> Iterator[list[Kind]]:
    """Make the target's schema (catalog at head, graph tables, the pgvector table) and the kinds to copy."""
    from memos_mcp.core.factory import build_vector_store
    from memos_mcp.core.graph.postgres_store import PostgresGraphStore
    from memos_mcp.core.stores.catalog import Catalog
    from memos_mcp.core.stores.vector_pg import PgVectorStore

    url = to.render_as_string(hide_password=False)
    where = catalog_db.shown(to)
    with ExitStack() as stack:
        catalog = Catalog(url)
        stack.callback(catalog.close)
        _same_model(catalog.get_meta("embedding_model"), catalog.get_meta("dimension"), source)
        kinds: list[Kind] = []
        source_tables = _tables(source.catalog)
        for name, cleared, unique, sequence in _CATALOG:
            if name not in source_tables:
                continue  # a table the source's version did not have yet: nothing to copy
            kinds.append(TableKind(name, source.catalog, name, catalog.engine, catalog_tables.metadata.tables[name],
                                   where, cleared, unique, sequence))
        if source.dimension and source.cube_ids:
            vectors = build_vector_store(settings, read_only=True)
            vectors.open(source.dimension)
            stack.callback(vectors.close)
            target = PgVectorStore(vector_url.render_as_string(hide_password=False), settings.vector.collection)
            target.open(source.dimension)  # ConfigError naming both dimensions when the table has another
            stack.callback(target.close)
            kinds.append(VectorKind(vectors, target, source.cube_ids, source.dimension))
        graph = PostgresGraphStore(url)
        graph.open()
        graph.close()
        if source.graph is not None:
            present = _tables(source.graph)
            if "links" not in present:
                raise StorageError(f"the graph file in {source.data_dir} is of an earlier version: open the data "
                                   "directory once with this version (memos-mcp doctor) to upgrade it, then migrate")
            for name, unique, sequence in _GRAPH:
                kinds.append(TableKind(f"graph_{name}", source.graph, name, catalog.engine,
                                       graph_tables.metadata.tables[f"graph_{name}"], where, (), unique, sequence))
        yield kinds


def _tables(engine: Engine) -> set[str]:
    with _reading("the source's tables"), engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _same_model(model: str | None, dimension: str | None, source: _Source) -> None:
    """``ConfigError`` when the target records another embedding model or dimension than the source."""
    if model and source.model and (model != source.model or dimension != str(source.dimension)):
        raise ConfigError(f"the target holds vectors of embedding model '{model}' (dimension {dimension}) but the "
                          f"source's are of '{source.model}' (dimension {source.dimension}): they cannot be searched "
                          "together; migrate into another database", target=model, source=source.model)


@dataclass(frozen=True)
class _Held:
    """What the target held of a kind before this run: ``kept`` records under keys the source lacks;
    ``complete`` when it held every source record, equal (nothing to copy)."""

    kept: int
    complete: bool


def _check_target(kinds: list[Kind], options: Options) -> dict[str, _Held]:
    """Compare every kind the target already holds records of with the source, before anything is
    written. Returns what the target held of each such kind (``_Held``); raises
    ``Conflict`` for other contents under the same keys or for those extra records (unless
    ``force``), and for unique values held under other keys (always: they could not be written)."""
    found: dict[str, _Held] = {}
    problems: list[str] = []
    for kind in kinds:
        held = kind.target_count()
        if not held:
            continue
        matched = records = 0
        differ: list[Hashable] = []
        clashes: list[Hashable] = []
        for batch in kind.batches(BATCH):
            stored = kind.stored([kind.key(r) for r in batch])
            matched += len(stored)
            records += len(batch)
            differ += [kind.key(r) for r in batch if kind.key(r) in stored and not kind.same(r, stored[kind.key(r)])]
            clashes += kind.clashes(batch)
        found[kind.name] = _Held(held - matched, not differ and matched == records)
        if clashes:
            problems.append(f"{kind.name}: {len(clashes)} hold a unique value the target has under another key "
                            f"(e.g. {_keys(clashes)})")
        if not options.force:
            if differ:
                problems.append(f"{kind.name}: {len(differ)} differ under the same key (e.g. {_keys(differ)})")
            if held - matched:
                problems.append(f"{kind.name}: the target has {held - matched} under keys the source lacks")
    if problems:
        hint = "" if options.force else "; --force replaces the target's records under the source's keys"
        raise Conflict("the target already holds other data, nothing was written: " + "; ".join(problems) + hint,
                       problems=problems)
    return found


def _keys(keys: list[Hashable]) -> str:
    shown = [k[0] if isinstance(k, tuple) and len(k) == 1 else k for k in keys[:_EXAMPLES]]
    return ", ".join(repr(k) for k in shown)


def _copy(kind: Kind, size: int, held: _Held | None, progress: Progress) -> KindReport:
    """Copy one kind in batches. Where the target ``held`` some, records already equal are skipped (all
    of them without reading them again when it held them all)."""
    report = KindReport(source=kind.source_count(), target=0)
    compare = held is not None
    if held is not None and held.complete:
        report.unchanged = report.source
        return report
    with progress(kind.name, report.source) as advance:
        done = 0
        for batch in kind.batches(size):
            changed = batch
            if compare:
                stored = kind.stored([kind.key(r) for r in batch])
                changed = [r for r in batch if kind.key(r) not in stored or not kind.same(r, stored[kind.key(r)])]
            if changed:
                kind.write(changed)
            report.written += len(changed)
            report.unchanged += len(batch) - len(changed)
            done += len(batch)
            advance(done)
    log.info("migrate: %s: %d written, %d unchanged", kind.name, report.written, report.unchanged)
    return report
