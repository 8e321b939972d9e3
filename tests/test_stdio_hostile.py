"""``memos-mcp stdio`` in a hostile environment, as review13 found it (issue 13's cold start: the stores
open after the handshake): a catalog from a newer release, a catalog server that never answers, a file
where the data directory should be, a damaged vector store, lines that are not JSON-RPC and requests
before ``initialize``.
Real subprocesses of the console script, raw JSON-RPC lines or the MCP SDK's own client."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from tests.test_cli import clean_env

pytestmark = pytest.mark.usefixtures("clean_environment")

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "review13", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def list_cubes(request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "list_cubes", "arguments": {}}}


def text(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


@asynccontextmanager
async def session(data_dir: Path, errlog: IO[str], **env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=str(MEMOS), args=["--data-dir", str(data_dir), "stdio"],
                                   env=clean_env(**env))
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


class RawStdio:
    """``memos-mcp stdio`` driven line by line: ``send`` writes one line, ``reply`` waits (bounded) for
    the next line on stdout, parsed as JSON, or None when none came in time."""

    def __init__(self, data_dir: Path, stderr: IO[str], **env: str) -> None:
        self.process = subprocess.Popen([str(MEMOS), "--data-dir", str(data_dir), "stdio"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=stderr, env=clean_env(**env))
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.put(line)
        self.lines.put(b"")

    def send(self, message: dict[str, Any] | bytes) -> None:
        assert self.process.stdin is not None
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def reply(self, within: float) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=within)
        except queue.Empty:
            return None
        assert line, "stdout closed"
        parsed: dict[str, Any] = json.loads(line)
        return parsed


@contextmanager
def raw_stdio(data_dir: Path, stderr: IO[str], **env: str) -> Iterator[RawStdio]:
    server = RawStdio(data_dir, stderr, **env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()  # this test's own child, by pid
        server.process.wait(TIMEOUT)
        if server.process.stdin is not None and not server.process.stdin.closed:
            with suppress(BrokenPipeError):
                server.process.stdin.close()


def made_data_dir(tmp_path: Path) -> Path:
    """A data directory with its stores made, by the CLI."""
    data_dir = tmp_path / "data"
    done = subprocess.run([str(MEMOS), "--data-dir", str(data_dir), "doctor"], env=clean_env(), capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    assert (data_dir / "catalog.sqlite3").is_file()
    return data_dir


def test_a_catalog_from_a_newer_release_is_a_tool_error_naming_the_catalog_and_its_revision(tmp_path: Path) -> None:
    data_dir = made_data_dir(tmp_path)
    catalog = data_dir / "catalog.sqlite3"
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    before = catalog.read_bytes()
    log = tmp_path / "stderr.txt"

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT), log.open("w") as errlog:
            async with session(data_dir, errlog) as client:
                failed = await client.call_tool("list_cubes", {})
                assert failed.is_error
                assert "storage_error:" in text(failed) and "9999" in text(failed), text(failed)
                assert str(catalog) in text(failed), text(failed)

    anyio.run(scenario)
    assert catalog.read_bytes() == before  # nothing written over a catalog this release does not know
    assert "Traceback" not in log.read_text()


def test_a_catalog_server_that_never_answers_makes_calls_a_tool_error_in_bounded_time_and_stdin_close_ends_it(
        tmp_path: Path) -> None:
    silent = socket.socket()  # listens, never accepts: the kernel completes connections, nobody answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    try:
        url = f"postgresql://u:p@127.0.0.1:{port}/db"
        with (tmp_path / "stderr.txt").open("w") as stderr, \
                raw_stdio(tmp_path / "data", stderr, MEMOS_CATALOG__URL=url) as server:
            server.send(INITIALIZE)
            assert server.reply(TIMEOUT) is not None
            server.send(INITIALIZED)
            server.send(list_cubes(1))
            answer = server.reply(30.0)
            assert answer is not None, "no answer to tools/call in 30 s"
            assert answer["result"]["isError"], answer
            assert "catalog" in answer["result"]["content"][0]["text"], answer
            assert server.process.stdin is not None
            server.process.stdin.close()
            try:
                server.process.wait(15.0)
            except subprocess.TimeoutExpired:
                pytest.fail("stdio still running 15 s after its stdin closed")
    finally:
        silent.close()


def test_a_file_where_the_data_directory_should_be_fails_the_start_saying_it_is_not_a_directory(tmp_path: Path) -> None:
    in_the_way = tmp_path / "data"
    in_the_way.write_text("my notes\n")
    done = subprocess.run([str(MEMOS), "--data-dir", str(in_the_way), "stdio"], input="", env=clean_env(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert str(in_the_way) in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert in_the_way.read_text() == "my notes\n"
    assert "[read_only]" not in done.stderr, done.stderr  # the directory is not read-only: it is not a directory
    assert "not a directory" in done.stderr.lower(), done.stderr


def test_a_damaged_vector_store_is_a_tool_error_naming_its_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    vectors = data_dir / "vectors"
    vectors.mkdir(parents=True)
    (vectors / "edge_config.json").write_bytes(b"\x00garbage{{{")

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT), (tmp_path / "stderr.txt").open("w") as errlog:
            async with session(data_dir, errlog) as client:
                failed = await client.call_tool("search_memory", {"query": "tea"})
                assert failed.is_error and "storage_error:" in text(failed), text(failed)
                assert str(vectors) in text(failed), text(failed)

    anyio.run(scenario)
    assert (vectors / "edge_config.json").read_bytes() == b"\x00garbage{{{"


UNREADABLE = [  # a line the transport cannot read as a message, the answer's id and code (JSON-RPC 2.0 5.1)
    (b"{this is not json", None, -32700),
    (b'{"jsonrpc": "2.0", "id": 5, "method": 123}', 5, -32600),
    (b'{"jsonrpc": "2.0", "id": "seven"}', "seven", -32600),
    (b"[1, 2]", None, -32600),
    (b'"just a string"', None, -32600),
    # Not UTF-8, so not JSON text (RFC 8259, section 8.1): read as U+FFFD before, and the add stored so.
    (b'{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "add_memory", '
     b'"arguments": {"memory_content": "Bob likes the caf\xe9"}}}', None, -32700),
    (b'{"jsonrpc": "2.0", "id": 10, "method": "ping", "x": "\xff"}', None, -32700),
]


def test_a_line_that_is_not_a_json_rpc_message_gets_its_error_and_the_session_goes_on(tmp_path: Path) -> None:
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(INITIALIZE)
        assert server.reply(TIMEOUT) is not None
        server.send(INITIALIZED)
        for number, (line, ident, code) in enumerate(UNREADABLE, start=2):
            server.send(line)
            answer = server.reply(10.0)
            assert answer is not None, f"no reply to {line!r}"
            assert answer["jsonrpc"] == "2.0" and answer["id"] == ident, answer
            assert answer["error"]["code"] == code and answer["error"]["message"], answer
            server.send(list_cubes(number))
            after = server.reply(TIMEOUT)
            assert after is not None and after["id"] == number and not after["result"]["isError"], after


def test_a_request_before_initialize_is_refused_saying_initialize_comes_first(tmp_path: Path) -> None:
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(list_cubes(1))
        refused = server.reply(TIMEOUT)
        assert refused is not None and refused["id"] == 1 and "error" in refused, refused
        assert "initializ" in json.dumps(refused["error"]).lower(), refused


def test_a_request_before_initialize_does_not_open_the_stores(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(data_dir, stderr) as server:
        server.send(list_cubes(1))
        assert server.reply(TIMEOUT) is not None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not (data_dir / "catalog.sqlite3").exists():
            time.sleep(0.05)
        assert not (data_dir / "catalog.sqlite3").exists(), "the stores opened before the handshake"
        assert os.path.isdir(data_dir)  # claimed (locked) at the start, as designed


def test_one_sigterm_ends_stdio_while_its_stores_are_still_opening(tmp_path: Path) -> None:
    silent = socket.socket()  # listens, never accepts: the kernel completes connections, nobody answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = f"postgresql://u:p@127.0.0.1:{silent.getsockname()[1]}/db"
    try:
        with (tmp_path / "stderr.txt").open("w") as stderr, \
                raw_stdio(tmp_path / "data", stderr, MEMOS_CATALOG__URL=url) as server:
            server.send(INITIALIZE)
            assert server.reply(TIMEOUT) is not None
            server.send(INITIALIZED)  # the warm-up starts opening the catalog, and hangs in the connect
            server.send(list_cubes(1))
            assert server.reply(1.0) is None  # still opening
            server.process.send_signal(signal.SIGTERM)
            try:
                code = server.process.wait(15.0)
            except subprocess.TimeoutExpired:
                pytest.fail("stdio still running 15 s after SIGTERM")
            assert code == 128 + signal.SIGTERM
    finally:
        silent.close()


# JSON-RPC 2.0 4: an id is a String, Number or Null; MCP ("Requests"): a string or an integer, never null
NOT_AN_MCP_ID = [b"1.5", b"1.0", b"true", b"{}", b"[]", b"null"]


@pytest.mark.parametrize("ident", NOT_AN_MCP_ID, ids=lambda ident: ident.decode())
def test_a_request_whose_id_is_no_string_or_integer_is_an_invalid_request_with_id_null_and_the_session_goes_on(
        tmp_path: Path, ident: bytes) -> None:
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(INITIALIZE)
        assert server.reply(TIMEOUT) is not None
        server.send(INITIALIZED)
        server.send(b'{"jsonrpc": "2.0", "id": ' + ident + b', "method": "tools/list"}')
        answer = server.reply(10.0)
        assert answer is not None, f"no reply to a request with id {ident!r}"
        assert answer["jsonrpc"] == "2.0" and answer["id"] is None, answer
        assert answer["error"]["code"] == -32600, answer
        assert "string or an integer" in answer["error"]["message"], answer
        server.send(list_cubes(1))
        after = server.reply(TIMEOUT)
        assert after is not None and after["id"] == 1 and not after["result"]["isError"], after  # nothing else came


def test_a_notification_without_an_id_gets_no_answer_and_a_response_is_never_answered(tmp_path: Path) -> None:
    """JSON-RPC 2.0 4.1: no reply to a notification; section 5: the server replies to calls only. A response
    from the client that cannot be read (an id no string or integer, a result no object) is dropped: an error
    echoing its id would answer one of the client's own requests (ids are per sender)."""
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(INITIALIZE)
        assert server.reply(TIMEOUT) is not None
        server.send(INITIALIZED)
        for line in (b'{"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}',
                     b'{"jsonrpc": "2.0", "id": 1.5, "result": {}}',
                     b'{"jsonrpc": "2.0", "id": true, "error": {"code": -1, "message": "no"}}',
                     b'{"jsonrpc": "2.0", "id": 1, "result": 5}'):
            server.send(line)
        server.send(list_cubes(2))
        after = server.reply(TIMEOUT)
        assert after is not None and after["id"] == 2 and not after["result"]["isError"], after  # the first answer
        assert server.reply(1.0) is None  # and the only one


def test_a_carriage_return_inside_a_line_is_json_whitespace_and_crlf_still_ends_a_line(tmp_path: Path) -> None:
    """RFC 8259 2: CR is insignificant whitespace; MCP's stdio transport delimits messages by newlines."""
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(json.dumps(INITIALIZE).encode() + b"\r")  # CRLF
        assert server.reply(TIMEOUT) is not None
        server.send(json.dumps(INITIALIZED).encode() + b"\r")
        server.send(b'{"jsonrpc": "2.0",\r"id": 7,\r"method": "tools/call",\r"params": {"name": "list_cubes", '
                    b'"arguments": {}}}\r')
        answer = server.reply(TIMEOUT)
        assert answer is not None and answer.get("id") == 7 and not answer["result"]["isError"], answer


@pytest.mark.skipif(not Path("/proc/self/fd/0").exists(), reason="reads /proc/<pid>/fd")
def test_while_serving_fd_0_reads_the_null_device_so_nothing_else_takes_a_line_meant_for_the_server(
        tmp_path: Path) -> None:
    with (tmp_path / "stderr.txt").open("w") as stderr, raw_stdio(tmp_path / "data", stderr) as server:
        server.send(INITIALIZE)
        assert server.reply(TIMEOUT) is not None
        assert os.readlink(f"/proc/{server.process.pid}/fd/0") == os.devnull
