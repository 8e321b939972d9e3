"""The real ``memos-mcp`` executable: ``keys create/list/revoke``, and ``serve`` in a subprocess,
started, used with a key and stopped by SIGTERM while a call is in flight."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2
import pytest

from memos_mcp.config import ALIASES
from tests.http.support import INITIALIZE, MCP_HEADERS, TIMEOUT, add_then_find, auth, call, legacy_sse, streamable

pytestmark = pytest.mark.usefixtures("clean_environment")

MEMOS = Path(sys.executable).parent / "memos-mcp"
# About 550 chunks of at most 150 characters: three write groups, each reporting progress.
LONG_NOTE = " ".join(f"Sentence number {i} is about topic {i} of the long note." for i in range(1100))
LONG_NOTE_ENV = {"MEMOS_CHUNK_SIZE": "150", "MEMOS_MAX_MEMORY_SIZE": "80000"}
# After a clean shutdown uvicorn re-raises the signal it caught, so the parent sees how it ended.
STOPPED_BY_SIGTERM = -signal.SIGTERM


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}
    return env | extra


def memos(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEMOS), "--data-dir", str(data_dir), *args], env=environment(**env),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_keys_create_list_and_revoke_through_the_executable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = ok(memos(data, "keys", "create", "--user", "alice", "--role", "admin"))
    key = created.stdout.strip()
    assert created.stdout == key + "\n"  # the key alone on stdout, shown once
    assert re.fullmatch(r"mk_[A-Za-z0-9_-]{40,}", key)
    key_id = re.search(r"created key (\w+) for user alice", created.stderr)
    assert key_id is not None, created.stderr

    listed = json.loads(ok(memos(data, "keys", "list")).stdout)
    assert [(k["key_id"], k["user_id"], k["revoked"]) for k in listed] == [(key_id.group(1), "alice", False)]
    assert key not in json.dumps(listed)
    users = {u["user_id"]: u["role"] for u in json.loads(ok(memos(data, "users")).stdout)}
    assert users["alice"] == "admin"

    ok(memos(data, "keys", "revoke", key_id.group(1)))
    assert json.loads(ok(memos(data, "keys", "list")).stdout)[0]["revoked"] is True
    again = memos(data, "keys", "revoke", key_id.group(1))
    assert again.returncode == 2
    assert "not_found" in again.stderr


def test_serve_refuses_a_public_host_without_any_key_before_binding(tmp_path: Path) -> None:
    refused = memos(tmp_path / "data", "serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0" in refused.stderr
    assert "Uvicorn running" not in refused.stderr


def pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


class Served:
    """``memos-mcp serve --port 0`` in a subprocess; its stderr is read line by line."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.process = subprocess.Popen([str(MEMOS), "--data-dir", str(data_dir), "serve", "--port", "0"],
                                        env=environment(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stderr is not None
        self.log: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=pump, args=(self.process.stderr, self.lines), daemon=True).start()
        try:
            port = self.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1)
        except BaseException:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{port}"

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            assert line, "memos-mcp serve ended:\n" + "".join(self.log)
            self.log.append(line)
            if found := re.search(pattern, line):
                return found

    def finish(self) -> str:
        """Wait for the process to exit on its own; all it logged."""
        self.process.wait(timeout=TIMEOUT)
        if self.process.stderr is not None and not self.process.stderr.closed:
            while (line := self.lines.get(timeout=TIMEOUT)) != "":
                self.log.append(line)
            self.process.stderr.close()
        return "".join(self.log)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    key = ok(memos(tmp_path / "data", "keys", "create", "--user", "alice", **LONG_NOTE_ENV)).stdout.strip()
    server = Served(tmp_path / "data", **LONG_NOTE_ENV)
    try:
        yield server, key
    finally:
        server.close()


def test_serve_uses_keys_and_sigterm_lets_a_call_in_flight_finish(served: tuple[Served, str], tmp_path: Path) -> None:
    server, key = served
    with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        assert http.get("/health").json()["backends"]["catalog"] == "ok"

    async def scenario() -> dict[str, Any]:
        with anyio.fail_after(TIMEOUT):
            async with streamable(server.url, key) as session:
                await add_then_find(session, "The zeppelin hangar opens at dawn.", "when does the hangar open")
                progress: list[float] = []

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    if not progress:  # the call is in flight: stop the server now
                        server.process.send_signal(signal.SIGTERM)
                    progress.append(done)

                result = await session.call_tool("add_memory", {"memory_content": LONG_NOTE},
                                                 progress_callback=on_progress)
                assert progress, "no progress was reported, so SIGTERM was never sent"
                assert not result.is_error
                assert result.structured_content is not None
                return result.structured_content

    added = anyio.run(scenario)
    log = server.finish()
    assert server.process.returncode == STOPPED_BY_SIGTERM, log
    assert "letting 1 request(s) in flight finish" in log
    assert "memory service closed" in log
    # Everything the answer reported was stored and flushed: the stores, reopened, hold it.
    assert len(added["added"]) > 256
    stats = json.loads(ok(memos(tmp_path / "data", "stats")).stdout)
    assert stats["vectors"]["points"] == len(added["added"]) + 1


def test_a_key_made_by_the_cli_works_over_both_transports(served: tuple[Served, str]) -> None:
    server, key = served

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(server.url, key) as session:
                assert (await call(session, "get_user_info"))["user"]["user_id"] == "alice"
            async with legacy_sse(server.url, key) as session:
                assert (await call(session, "get_user_info"))["user"]["user_id"] == "alice"

    anyio.run(scenario)
    with httpx2.Client(base_url=server.url, headers=auth(key, "Token"), timeout=TIMEOUT) as http:
        assert http.get("/admin/keys").status_code == 403  # alice is a plain user
    server.process.send_signal(signal.SIGTERM)
    assert server.finish().count("memory service closed") == 1
    assert server.process.returncode == STOPPED_BY_SIGTERM


def test_serve_sets_the_configured_thread_switch_interval(tmp_path: Path) -> None:
    server = Served(tmp_path / "data", MEMOS_SERVER__SWITCH_INTERVAL="0.0005")
    try:
        said = [found.group(1) for line in server.log
                if (found := re.search(r"thread switch interval ([\d.]+) ms", line))]
        assert said == ["0.5"]  # logged before uvicorn's "running" line, which Served waited for
        with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
            assert http.get("/health").status_code == 200
    finally:
        server.close()
    refused = memos(tmp_path / "other", "serve", "--port", "0", MEMOS_SERVER__SWITCH_INTERVAL="0")
    assert refused.returncode == 2 and "switch_interval" in refused.stderr
