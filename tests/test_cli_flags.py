"""The real ``memos-mcp`` executable: the global flags work before and after the command, at every level
of nesting, and a benchmark without its extra ends in one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import MEMOS, TIMEOUT, clean_env, ok

pytestmark = pytest.mark.usefixtures("clean_environment")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEMOS), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def effective(stdout: str) -> dict[str, str]:
    """The top-level scalar lines of doctor's effective configuration."""
    section = stdout.split("# checks", 1)[0]
    return dict(line.split(": ", 1) for line in section.splitlines() if ": " in line and not line.startswith(" "))


@pytest.mark.parametrize("where", ["before", "after"])
def test_every_global_flag_works_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    config = tmp_path / "memos.yaml"
    config.write_text("default_user_id: carol\n", encoding="utf-8")
    data_dir = tmp_path / "elsewhere"
    flags = ["--data-dir", str(data_dir), "--config", str(config), "--log-level", "DEBUG"]
    result = ok(run(tmp_path, *flags, "doctor") if where == "before" else run(tmp_path, "doctor", *flags))
    shown = effective(result.stdout)
    assert shown["data_dir"] == str(data_dir)
    assert shown["default_user_id"] == "carol"
    assert shown["log_level"] == "DEBUG"
    assert data_dir.is_dir()


def test_a_global_flag_after_the_command_wins_over_one_before_it(tmp_path: Path) -> None:
    result = ok(run(tmp_path, "--data-dir", str(tmp_path / "first"), "doctor", "--data-dir", str(tmp_path / "second")))
    assert effective(result.stdout)["data_dir"] == str(tmp_path / "second")


def test_a_flag_before_the_command_is_kept_when_none_follows_it(tmp_path: Path) -> None:
    result = ok(run(tmp_path, "--log-level", "WARNING", "doctor"))
    assert effective(result.stdout)["log_level"] == "WARNING"


def test_global_flags_work_after_a_nested_action(tmp_path: Path) -> None:
    data_dir = tmp_path / "keys-data"
    ok(run(tmp_path, "keys", "create", "--user", "alice", "--data-dir", str(data_dir)))
    listed = json.loads(ok(run(tmp_path, "keys", "--data-dir", str(data_dir), "list")).stdout)
    assert [k["user_id"] for k in listed] == ["alice"]
    refused = run(tmp_path, "keys", "list", "--data-dir", str(tmp_path / "empty"))  # the flag was read: no store there
    assert refused.returncode == 2 and "empty is not a memos-mcp data directory" in refused.stderr


def test_stats_reads_the_data_directory_given_after_the_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "stats-data"
    ok(run(tmp_path, "keys", "create", "--user", "bob", "--data-dir", str(data_dir)))
    users = json.loads(ok(run(tmp_path, "users", "--data-dir", str(data_dir))).stdout)
    assert "bob" in {u["user_id"] for u in users}


def test_an_empty_data_directory_is_refused_not_read_as_the_working_directory(tmp_path: Path) -> None:
    flag = run(tmp_path, "--data-dir", "", "stats")
    assert flag.returncode == 2 and "--data-dir" in flag.stderr and "empty" in flag.stderr
    env = subprocess.run([str(MEMOS), "doctor"], cwd=tmp_path, env=clean_env(MEMOS_DATA_DIR=""), capture_output=True,
                         text=True, timeout=TIMEOUT, check=False)
    assert env.returncode == 2 and "data_dir" in env.stderr and "empty" in env.stderr, env.stderr
    assert list(tmp_path.iterdir()) == []  # doctor made no store where it stood
