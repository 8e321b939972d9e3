"""The catalog's database: an SQLAlchemy engine on SQLite (a file under the data directory, the
default) or PostgreSQL (a URL), its migrations (Alembic, run from inside the package) and the
comparison of a database with the schema the code expects.

SQLite keeps its durability settings: WAL, ``synchronous=NORMAL``, foreign keys on, a 5 s busy
timeout, and every write transaction opened ``BEGIN IMMEDIATE`` (``write_transaction``; SQLAlchemy's
own handling of the driver's transactions is turned off, as its documentation advises). A read-only SQLite file is
opened without writing anything beside it (``sqlite_files.connect``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from memos_mcp.core.stores import catalog_tables as t
from memos_mcp.core.stores.closing_engine import ClosingEngine
from memos_mcp.core.stores.sqlite_files import connect
from memos_mcp.errors import StorageError

MIGRATIONS = Path(__file__).with_name("catalog_migrations")
# Held while migrating a PostgreSQL catalog, so that replicas starting together migrate once.
_MIGRATION_LOCK = 0x6D656D6F73  # "memos"
# What only writes need: a read-only catalog made before them is still read.
_WRITE_ONLY = frozenset({"table memory_keys", "index memory_keys_memory", "column history.step",
                         "index history_step"})


def database_url(url: str) -> URL:
    """``url`` with PostgreSQL mapped to the psycopg 3 driver, the one installed (``postgresql://``,
    ``postgres://`` and any ``postgresql+<driver>://`` become ``postgresql+psycopg://``). Raises
    ``sqlalchemy.exc.ArgumentError`` for a malformed URL or one of a database other than PostgreSQL
    and SQLite (whose drivers are not installed)."""
    parsed = make_url(url)
    backend = parsed.drivername.partition("+")[0]
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise sa.exc.ArgumentError(f"a {backend} database is not supported")
    return parsed


def shown(url: URL) -> str:
    """The URL with its password masked (for messages and doctor)."""
    return url.render_as_string(hide_password=True)


def sqlite_engine(path: Path, read_only: bool) -> Engine:
    """An engine on the catalog file at ``path``; see the module's docstring."""

    def creator() -> sqlite3.Connection:
        db = connect(path, read_only)
        db.row_factory = None
        if not read_only:
            db.execute("PRAGMA foreign_keys=ON")
        return db

    # No rollback when a connection goes back to the pool: a read never opens a transaction, and
    # ``Connection.close`` already rolls back a write left open. No event listener either: one on the
    # engine makes every execution dispatch its events (``write_transaction`` begins instead).
    return sa.create_engine("sqlite://", creator=creator, poolclass=sa.pool.QueuePool, pool_size=4, max_overflow=8,
                            pool_reset_on_return=None)


@contextmanager
def write_transaction(engine: Engine | ClosingEngine) -> Iterator[Connection]:
    """A connection in one write transaction, committed at the end (rolled back on an exception). On
    SQLite it is opened ``BEGIN IMMEDIATE`` (the write lock is taken first, so two writers wait
    instead of failing on upgrade); a read outside it is one statement, atomic on its own. Raises
    ``sqlalchemy.exc.SQLAlchemyError`` (``OperationalError`` when the lock is not free in 5 s)."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            try:
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            except sqlite3.Error as exc:  # as SQLAlchemy reports a statement's failure (a lock not taken in time)
                raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        yield conn


CONNECT_TIMEOUT = 10  # seconds libpq waits for a server to answer a connection, unless the URL says


def postgres_engine(url: URL) -> Engine:
    """An engine on a PostgreSQL database; connections are checked before use (a restarted server), and
    a server that accepts a connection but never answers fails it after ``CONNECT_TIMEOUT`` seconds
    (libpq's ``connect_timeout``; a ``?connect_timeout=`` in the URL wins) instead of holding the caller."""
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT}
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)


CATALOG_MARKS = ("users", "cubes", "api_keys")  # tables of every catalog since the first version


def holds_catalog(conn: Connection) -> bool:
    """Whether the database holds a memos-mcp catalog (the ``CATALOG_MARKS`` tables, of any revision):
    an empty or another application's database does not. Reads only."""
    present = set(sa.inspect(conn).get_table_names())
    return all(name in present for name in CATALOG_MARKS)


def revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at; None for a catalog made before Alembic (or empty)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, location: str) -> bool:
    """Migrate the database to ``catalog_tables.HEAD`` in one transaction; False if it already was
    there (then neither Alembic nor its scripts are loaded). ``location``: the database as messages
    name it. Raises ``StorageError`` for a revision these scripts do not know (see ``alembic_upgrade``)."""
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        if revision(conn) == t.HEAD:
            return False
        alembic_upgrade(conn, MIGRATIONS, location)
        return True


def alembic_upgrade(conn: Connection, scripts: Path, location: str) -> None:
    """Run the Alembic migrations in ``scripts`` (a package directory shipped in the wheel; no
    ``alembic.ini``) up to their head on ``conn``, inside its transaction. Alembic is imported here only:
    an open that finds the schema current never loads it. A database at a revision the scripts do not
    know (a newer release wrote it) is left untouched: ``StorageError`` naming ``location`` and Alembic's
    words (which name the revision)."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        raise StorageError(f"the database at {location} has a schema revision this memos-mcp does not know "
                           f"({exc}): a newer release wrote it; upgrade memos-mcp", path=location) from exc


def missing_schema(conn: Connection, read_only: bool = False) -> list[str]:
    """What the database lacks of ``catalog_tables.metadata`` (see ``missing_schema_of``; a read-only
    catalog needs only the tables reads use)."""
    return missing_schema_of(conn, t.metadata, optional=_WRITE_ONLY if read_only else frozenset())


def missing_schema_of(conn: Connection, metadata: sa.MetaData, optional: Collection[str] = frozenset()) -> list[str]:
    """What the database lacks of ``metadata``, table by table: "table T" followed by its indexes
    ("index I") for a missing table, else "column T.C" for each missing column and "index I" for each
    missing index (indexes by name). Items named in ``optional`` (in those words) may be missing."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    missing: list[str] = []
    for table in metadata.sorted_tables:
        indexes = sorted(table.indexes, key=lambda i: str(i.name))
        if table.name not in present:
            missing += [f"table {table.name}", *(f"index {i.name}" for i in indexes)]
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"column {table.name}.{c.name}" for c in table.columns if c.name not in columns]
        made = {i["name"] for i in inspector.get_indexes(table.name)}
        missing += [f"index {i.name}" for i in indexes if i.name not in made]
    return [item for item in missing if item not in optional]


def reason(exc: BaseException) -> str:
    """What the database said of a failed call, for messages: the driver's own error for a SQLAlchemy
    ``DBAPIError`` (not SQLAlchemy's rendering, which appends the statement and its parameters: memory
    text and ids that must not reach a caller or a log), else the exception's text."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    return str(exc)


def unwritable(conn: Connection, metadata: sa.MetaData) -> list[str]:
    """The tables of ``metadata`` present in a PostgreSQL database on which its user lacks INSERT,
    UPDATE or DELETE (a read-only user), by name; always empty on SQLite (the file's mode decides)."""
    if conn.dialect.name != "postgresql":
        return []
    names = [table.name for table in metadata.sorted_tables]
    found = conn.execute(sa.text(
        "SELECT name FROM unnest(CAST(:names AS text[])) AS n(name) WHERE to_regclass(name) IS NOT NULL AND NOT ("
        "has_table_privilege(name, 'INSERT') AND has_table_privilege(name, 'UPDATE') "
        "AND has_table_privilege(name, 'DELETE'))"), {"names": names}).scalars()
    return sorted(found)


def refuse_unwritable(conn: Connection, metadata: sa.MetaData, location: str) -> None:
    """``StorageError`` naming the database user and the tables of ``unwritable`` if any, so that a
    process that would write starts only where it may (a read-only user serves with ``--read-only``)."""
    tables = unwritable(conn, metadata)
    if tables:
        user = conn.execute(sa.text("SELECT current_user")).scalar()
        raise StorageError(f"the database user {user!r} may not write {', '.join(tables)} at {location} (grant it "
                           "INSERT, UPDATE and DELETE there, or use --read-only)", path=location, tables=tables)


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The backend's INSERT with ``ON CONFLICT`` (SQLite and PostgreSQL share its API)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
