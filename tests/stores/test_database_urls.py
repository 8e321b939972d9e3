"""The database URLs of the shared mode (``DATABASE_URL`` / ``MEMOS_CATALOG__URL``, and the pgvector
backend's ``MEMOS_VECTOR__URL``) as a user gives them to the real CLI: a URL of another database kind
fails with one line naming the setting and exit 2, a PostgreSQL URL naming another driver is served
through psycopg 3 (the one installed), and a database that cannot be reached fails in one line, in
every command and in doctor's check lines."""

from __future__ import annotations

import json
import subprocess
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.processes import MEMOS, free_port
from tests.test_cli import check_lines, clean_env, memos, ok

pytestmark = pytest.mark.usefixtures("clean_environment")


def _one_error_line(stderr: str) -> str:
    """The error line, the last of stderr and the only one of its kind (logs before it, such as the
    catalog migration's on a first start, are allowed; a traceback or a second line of the error is not)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines[-1].startswith("memos-mcp: error ["), stderr
    assert sum(line.startswith("memos-mcp: error") for line in lines) == 1, stderr
    return lines[-1]


@pytest.mark.parametrize("url", ["mysql://memos:s3cret@127.0.0.1/memos", "oracle://memos:s3cret@127.0.0.1/memos",
                                 "mssql+pyodbc://memos:s3cret@127.0.0.1/memos"])
def test_a_catalog_url_of_another_database_kind_fails_in_one_line_naming_the_setting(tmp_path: Path,
                                                                                      url: str) -> None:
    result = memos(tmp_path, tmp_path / "data", "stats", DATABASE_URL=url)
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result.stderr)
    assert "catalog.url" in line and "postgresql://" in line
    assert "s3cret" not in line


def test_a_pgvector_url_that_is_not_postgresql_fails_in_one_line_naming_the_setting(tmp_path: Path) -> None:
    ok(memos(tmp_path, tmp_path / "data", "doctor"))  # a store whose catalog stays embedded
    result = memos(tmp_path, tmp_path / "data", "stats", MEMOS_VECTOR__BACKEND="pgvector",
                   MEMOS_VECTOR__URL=f"sqlite:///{tmp_path}/vectors.db")
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result.stderr)
    assert "vector.url" in line and "postgresql://" in line


@pytest.mark.parametrize("driver", ["postgresql+asyncpg", "postgresql+psycopg2", "postgresql+pg8000"])
def test_a_postgresql_url_naming_another_driver_is_served_through_psycopg(tmp_path: Path, postgres_url: str,
                                                                          driver: str) -> None:
    url = driver + postgres_url.removeprefix("postgresql")
    doctor = ok(memos(tmp_path, tmp_path / "data", "doctor", DATABASE_URL=url, MEMOS_VECTOR__BACKEND="pgvector"))
    checks = check_lines(doctor.stdout)
    assert checks["catalog"][0] == "ok" and "postgresql+psycopg://" in checks["catalog"][1]
    assert checks["vectors"][0] == "ok"


def test_an_unreachable_catalog_fails_in_one_line_in_a_command_and_in_doctor(tmp_path: Path) -> None:
    url = f"postgresql://memos:s3cret@127.0.0.1:{free_port()}/memos?connect_timeout=2"
    result = memos(tmp_path, tmp_path / "data", "stats", DATABASE_URL=url)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # nothing else was opened: no log either
    line = _one_error_line(result.stderr)
    assert "cannot open the catalog at postgresql+psycopg://memos:***@127.0.0.1" in line
    assert "s3cret" not in line

    doctor = memos(tmp_path, tmp_path / "data", "doctor", DATABASE_URL=url)
    assert doctor.returncode == 1
    checks = doctor.stdout.split("# checks", 1)[1].strip().splitlines()
    assert all(line.startswith(("ok ", "FAIL ")) for line in checks), checks
    assert check_lines(doctor.stdout)["data dir"][0] == "FAIL"


def _reader_url(postgres_url: str) -> str:
    """The URL of the database as ``reader``, a role that may only read its tables (made now)."""
    database = make_url(postgres_url).database
    for sql in ["CREATE ROLE reader LOGIN", f'GRANT CONNECT ON DATABASE "{database}" TO reader',
                "GRANT USAGE ON SCHEMA public TO reader", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader"]:
        # the role is the session server's: an earlier test may have made it
        with psycopg.connect(postgres_url, autocommit=True) as conn, suppress(psycopg.errors.DuplicateObject):
            conn.execute(sql)
    return postgres_url.replace("postgresql://postgres@", "postgresql://reader@")


def test_a_database_user_who_may_only_read_is_refused_at_start_and_by_doctor_naming_the_tables(
        tmp_path: Path, postgres_url: str) -> None:
    ok(memos(tmp_path, tmp_path / "made", "doctor", DATABASE_URL=postgres_url))  # the schema, by its owner
    reader = _reader_url(postgres_url)

    served = subprocess.run([str(MEMOS), "--data-dir", str(tmp_path / "served"), "serve", "--stateless", "--host",
                             "127.0.0.1", "--port", str(free_port())], cwd=tmp_path,
                            env=clean_env(DATABASE_URL=reader), capture_output=True, text=True, timeout=60,
                            check=False)  # before the fix it served, and every write answered 507 with its SQL
    assert served.returncode == 2, served.stderr[-3000:]
    line = _one_error_line(served.stderr)
    assert "may not write" in line and "messages" in line and "reader" in line

    doctor = memos(tmp_path, tmp_path / "doctor", "doctor", DATABASE_URL=reader)
    assert doctor.returncode == 1
    verdict, detail = check_lines(doctor.stdout)["data dir"]
    assert verdict == "FAIL" and "may not write" in detail


def test_a_write_the_database_refuses_names_its_reason_without_the_statement_or_its_values(
        postgres_url: str) -> None:
    from memos_mcp.core.models import Cube, Role, User
    from memos_mcp.core.stores.catalog import Catalog
    from memos_mcp.errors import StorageError

    database = make_url(postgres_url).database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with suppress(psycopg.errors.DuplicateObject):  # the session server's role, made by an earlier test
            conn.execute("CREATE ROLE writer LOGIN")
        conn.execute(f'GRANT ALL ON DATABASE "{database}" TO writer')
        conn.execute("GRANT ALL ON SCHEMA public TO writer")
    writer = postgres_url.replace("postgresql://postgres@", "postgresql://writer@")
    catalog = Catalog(writer)  # makes the schema, owned by writer
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("REVOKE INSERT ON users FROM writer")  # as a DBA might, while it serves
        now = datetime.now(UTC)
        with pytest.raises(StorageError) as caught:
            catalog.create_user_with_cube(User(user_id="secret-user-id", user_name="Secret Name", role=Role.USER,
                                               created_at=now),
                                          Cube(cube_id="secret-cube", name="home", owner_id="secret-user-id",
                                               created_at=now))
        message = caught.value.message
        assert "permission denied for table users" in message
        assert "[SQL:" not in message and "secret-user-id" not in message and "Secret Name" not in message
        with pytest.raises(StorageError, match="'writer' may not write users"):
            catalog.check()
    finally:
        catalog.close()


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


@pytest.mark.parametrize("command", [("stats",), ("users",), ("keys", "list"), ("export", "--cube", "c")],
                         ids=" ".join)
def test_a_command_on_a_store_refuses_a_catalog_database_holding_none_and_a_data_directory_without_vectors(
        tmp_path: Path, postgres_url: str, command: tuple[str, ...]) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # another application's database
        conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
    refused = memos(tmp_path, tmp_path / "data", *command, DATABASE_URL=postgres_url)
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    line = _one_error_line(refused.stderr)
    assert "[invalid_request]" in line and "holds no memos-mcp catalog" in line and "catalog.url" in line
    assert _tables(postgres_url) == {"invoices"} and not (tmp_path / "data").exists()

    # the catalog in PostgreSQL, the vectors embedded (DATABASE_URL alone): a mistyped --data-dir has no vectors
    ok(memos(tmp_path, tmp_path / "data", "doctor", DATABASE_URL=postgres_url))
    typo = tmp_path / "dta"
    answer = memos(tmp_path, typo, *command, DATABASE_URL=postgres_url)
    if command[0] in ("stats", "export"):  # they read memories; users and keys are in the catalog
        assert answer.returncode == 2 and answer.stdout == "", answer.stderr
        assert "has no vectors/" in _one_error_line(answer.stderr) and not typo.exists()
    ok(memos(tmp_path, tmp_path / "data", "stats", DATABASE_URL=postgres_url))


def test_a_command_on_a_store_refuses_a_pgvector_collection_that_does_not_exist(tmp_path: Path,
                                                                                postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "MEMOS_VECTOR__BACKEND": "pgvector"}
    ok(memos(tmp_path, tmp_path / "data", "doctor", **env))
    before = _tables(postgres_url)
    refused = memos(tmp_path, tmp_path / "data", "stats", MEMOS_VECTOR__COLLECTION="memoz", **env)
    assert refused.returncode == 2, refused.stderr
    line = _one_error_line(refused.stderr)
    assert "holds no collection memoz" in line and "vector.collection" in line
    assert _tables(postgres_url) == before


def test_a_read_only_service_on_a_postgresql_catalog_makes_nothing_and_serves_a_reader(tmp_path: Path,
                                                                                       postgres_url: str) -> None:
    """--read-only looked for catalog.sqlite3, absent with a PostgreSQL catalog, so it first opened the
    catalog read-write to make a new store: it migrated an empty database and could not serve a reader."""
    refused = subprocess.run([str(MEMOS), "--data-dir", str(tmp_path / "data"), "serve", "--read-only", "--port",
                              str(free_port())], cwd=tmp_path, env=clean_env(DATABASE_URL=postgres_url),
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "lacks table" in _one_error_line(refused.stderr), refused.stderr
    assert _tables(postgres_url) == set()
    ok(memos(tmp_path, tmp_path / "made", "import", str(_conversation(tmp_path)), "--user", "alice",
             DATABASE_URL=postgres_url, MEMOS_VECTOR__BACKEND="pgvector"))
    reader = _reader_url(postgres_url)
    env = {"DATABASE_URL": reader, "MEMOS_VECTOR__BACKEND": "pgvector", "MEMOS_READ_ONLY": "true"}
    users = json.loads(ok(memos(tmp_path, tmp_path / "replica", "users", **env)).stdout)
    assert "alice" in {u["user_id"] for u in users}
    exported = ok(memos(tmp_path, tmp_path / "replica", "export", "--cube", "alice_default_cube", **env)).stdout
    assert "Lisbon" in exported


def _conversation(tmp_path: Path) -> Path:
    path = tmp_path / "talk.json"
    path.write_text('[{"role": "user", "content": "We met in Lisbon in May."}]', encoding="utf-8")
    return path
