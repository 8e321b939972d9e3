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


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The ``memos-mcp: error [...]`` line of a command that exited 2, holding ``words``; no traceback."""
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("memos-mcp: error [")]
    assert len(errors) == 1, result.stderr
    assert all(word in errors[0] for word in words), errors[0]
    return errors[0]


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_a_port_out_of_range_is_one_line_naming_the_flag_and_makes_nothing(tmp_path: Path, port: str) -> None:
    data_dir = tmp_path / "data"
    result = run(tmp_path, "serve", "--host", "127.0.0.1", "--port", port, "--data-dir", str(data_dir))
    one_error_line(result, "[invalid_request]", f"--port {port}", "65535" if port == "70000" else "0")
    assert not data_dir.exists()


def test_an_unknown_log_level_is_one_line_naming_the_flag_or_the_setting(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    one_error_line(run(tmp_path, "--log-level", "SHOUT", "users", "--data-dir", str(data_dir)),
                   "[invalid_request]", "--log-level 'SHOUT'", "WARNING")
    from_env = subprocess.run([str(MEMOS), "--data-dir", str(data_dir), "users"], cwd=tmp_path,
                              env=clean_env(MEMOS_LOG_LEVEL="loud"), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    one_error_line(from_env, "[config_error]", "log_level", "DEBUG")
    assert not data_dir.exists()
    assert effective(ok(run(tmp_path, "--log-level", "warning", "doctor", "--data-dir", str(data_dir))).stdout)[
        "log_level"] == "WARNING"


def test_keys_create_refuses_a_role_the_existing_user_does_not_have(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ok(run(tmp_path, "keys", "create", "--user", "carol", "--data-dir", str(data_dir)))
    one_error_line(run(tmp_path, "keys", "create", "--user", "carol", "--role", "admin", "--data-dir", str(data_dir)),
                   "[conflict]", "carol", "'user'", "admin")
    users = json.loads(ok(run(tmp_path, "users", "--data-dir", str(data_dir))).stdout)
    assert {u["user_id"]: u["role"] for u in users}["carol"] == "user"
    assert len(json.loads(ok(run(tmp_path, "keys", "list", "--data-dir", str(data_dir))).stdout)) == 1
    ok(run(tmp_path, "keys", "create", "--user", "carol", "--role", "user", "--data-dir", str(data_dir)))
    ok(run(tmp_path, "keys", "create", "--user", "dave", "--role", "guest", "--data-dir", str(data_dir)))
    ok(run(tmp_path, "keys", "create", "--user", "dave", "--data-dir", str(data_dir)))  # no --role: the user's own


@pytest.mark.parametrize(("text", "words"), [
    ("nonsense_key: 1\n", ("unknown setting 'nonsense_key'", "data_dir")),
    ("serch:\n  top_k: 3\n", ("unknown setting 'serch'", "did you mean 'search'?")),
    ("search:\n  topk: 3\n", ("'search.topk'", "did you mean 'top_k'?")),
    ("serch.top_k: 3\n", ("unknown setting 'serch.top_k'",))])
def test_an_unknown_key_in_the_config_file_is_refused_naming_it(tmp_path: Path, text: str,
                                                                 words: tuple[str, ...]) -> None:
    config = tmp_path / "memos.yaml"
    config.write_text(text, encoding="utf-8")
    data_dir = tmp_path / "data"
    one_error_line(run(tmp_path, "--config", str(config), "doctor", "--data-dir", str(data_dir)),
                   "[config_error]", str(config), *words)
    assert not data_dir.exists()


def test_a_memos_variable_that_sets_nothing_is_refused_and_another_programs_is_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    def doctor(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(MEMOS), "--data-dir", str(data_dir), "doctor"], cwd=tmp_path, env=clean_env(**env),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)

    one_error_line(doctor(MEMOS_SEARCH__TOPK="3"), "[config_error]", "MEMOS_SEARCH__TOPK", "did you mean 'top_k'?")
    one_error_line(doctor(MEMOS_SERCH__TOP_K="3"), "[config_error]", "MEMOS_SERCH__TOP_K", "did you mean 'search'?")
    assert not data_dir.exists()
    # MemOS's own client reads MEMOS_API_KEY and MEMOS_BASE_URL: flat names are not judged
    result = ok(doctor(MEMOS_BASE_URL="https://memos.example.com", MEMOS_SEARCH__TOP_K="3"))
    assert effective(result.stdout)["default_user_id"] == "default"
