"""The database URLs of the shared mode (``DATABASE_URL`` / ``MEMOS_CATALOG__URL``, and the pgvector
backend's ``MEMOS_VECTOR__URL``) as a user gives them to the real CLI: a URL of another database kind
fails with one line naming the setting and exit 2, a PostgreSQL URL naming another driver is served
through psycopg 3 (the one installed), and a database that cannot be reached fails in one line, in
every command and in doctor's check lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import free_port
from tests.test_cli import check_lines, memos, ok

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
