"""``memos-mcp stdio`` as a real subprocess: the SDK's stdio client drives it, and a raw pipe checks
that nothing but JSON-RPC ever reaches stdout."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextResourceContents

from memos_mcp.config import ALIASES, Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService

pytestmark = pytest.mark.usefixtures("clean_environment")

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0
SHUTDOWN = 20.0  # a signal ends the process within this (the model may be loading)
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def add_call(text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "add_memory", "arguments": {"memory_content": text}}}


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}


def command(data_dir: Path, *flags: str) -> list[str]:
    return [str(MEMOS), "--data-dir", str(data_dir), "stdio", *flags]


@asynccontextmanager
async def stdio_session(data_dir: Path, *flags: str) -> AsyncIterator[ClientSession]:
    exe, *args = command(data_dir, *flags)
    started = time.perf_counter()
    async with stdio_client(StdioServerParameters(command=exe, args=args, env=environment())) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        # Cold start: interpreter, imports, opening the stores; the model loads in the background.
        print(f"\nstdio: initialize answered {time.perf_counter() - started:.2f} s after spawning")
        yield session


def test_the_sdk_stdio_client_adds_searches_and_reads_cubes(tmp_path: Path) -> None:
    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with stdio_session(tmp_path / "data") as session:
                tools = {tool.name for tool in (await session.list_tools()).tools}
                assert {"add_memory", "search_memory", "list_cubes", "create_api_key"} <= tools
                added = await session.call_tool("add_memory", {"memory_content": "Biscuit the corgi swims in "
                                                                                 "Lake Tahoe every summer."})
                assert not added.is_error
                found = await session.call_tool("search_memory", {"query": "where does the dog swim"})
                assert found.structured_content is not None
                assert "Lake Tahoe" in found.structured_content["memories"][0]["memory"]
                cubes = (await session.read_resource("memory://cubes")).contents
                assert isinstance(cubes[0], TextResourceContents)
                assert [c["cube_id"] for c in json.loads(cubes[0].text)] == ["default_default_cube"]

    anyio.run(scenario)


def test_read_only_hides_the_writing_tools(tmp_path: Path) -> None:
    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with stdio_session(tmp_path / "data", "--read-only") as session:
                tools = {tool.name for tool in (await session.list_tools()).tools}
                assert "search_memory" in tools
                assert not tools & {"add_memory", "update_memory", "delete_memory", "create_api_key"}

    anyio.run(scenario)


def json_rpc_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of stdout, each of which must be a JSON-RPC 2.0 message."""
    messages = [json.loads(line) for line in stdout.splitlines()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages), messages
    return messages


def spawn(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(command(data_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment())


def test_stdout_carries_only_json_rpc_when_stdin_closes_at_once(tmp_path: Path) -> None:
    process = spawn(tmp_path / "data")
    lines = [INITIALIZE, INITIALIZED, add_call("The raw pipe test stores this line.")]
    stdout, stderr = process.communicate("".join(json.dumps(m) + "\n" for m in lines), timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    messages = json_rpc_lines(stdout)
    # The SDK cancels requests still running when stdin closes; the initialize answer is always there.
    assert messages[0]["id"] == 1
    assert messages[0]["result"]["serverInfo"]["name"] == "memos-mcp"
    assert "stdin closed" in stderr  # logs go to stderr


def pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    with stream:  # closed at the end of the stream, whichever way the test ends
        for line in stream:
            lines.put(line)
    lines.put("")  # end of stream


def finish(process: subprocess.Popen[str]) -> str:
    """Close stdin (the end of the session), wait for the exit, and return stderr; stdout is the pump's."""
    assert process.stdin is not None and process.stderr is not None
    process.stdin.close()
    process.wait(timeout=TIMEOUT)
    with process.stderr:
        return process.stderr.read()


def test_a_call_answered_before_stdin_closes_is_json_rpc_and_its_memory_persists(
        tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    process = spawn(tmp_path / "data")
    assert process.stdin is not None and process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=pump, args=(process.stdout, lines), daemon=True).start()
    text = "The raw pipe test stores this line."
    process.stdin.write("".join(json.dumps(m) + "\n" for m in (INITIALIZE, INITIALIZED, add_call(text))))
    process.stdin.flush()
    seen: list[str] = []
    while not any('"id":2' in line for line in seen):
        line = lines.get(timeout=TIMEOUT)
        assert line, "stdout closed before the tools/call answer"
        seen.append(line)
    stderr = finish(process)  # the server shuts down cleanly
    while (line := lines.get(timeout=TIMEOUT)) != "":
        seen.append(line)
    assert process.returncode == 0, stderr
    answers = {m["id"]: m for m in json_rpc_lines("".join(seen)) if "id" in m}
    assert answers[2]["result"]["structuredContent"]["memories"][0]["memory"] == text
    # The lock is released and the stores were flushed: another process opens the directory and finds it.
    service = MemoryService.open(Settings(data_dir=tmp_path / "data"), embedder=embedder)
    try:
        assert [m.memory for m in service.list_memories("default").memories] == [text]
    finally:
        service.close()


def test_sigterm_closes_the_service_too(tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    process = spawn(tmp_path / "data")
    assert process.stdin is not None and process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=pump, args=(process.stdout, lines), daemon=True).start()
    process.stdin.write(json.dumps(INITIALIZE) + "\n")
    process.stdin.flush()
    assert json.loads(lines.get(timeout=TIMEOUT))["id"] == 1  # serving: now stop it
    process.send_signal(signal.SIGTERM)
    stderr = finish(process)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert lines.get(timeout=TIMEOUT) == ""  # nothing more on stdout
    MemoryService.open(Settings(data_dir=tmp_path / "data"), embedder=embedder).close()  # the lock is free


BUSY = [INITIALIZED, *({"jsonrpc": "2.0", "id": 10 + n, "method": "tools/list"} for n in range(300))]


@pytest.mark.parametrize(("signum", "after_handshake"), [
    (signal.SIGTERM, []), (signal.SIGTERM, [INITIALIZED]), (signal.SIGINT, [INITIALIZED]), (signal.SIGTERM, BUSY)],
    ids=["sigterm-idle", "sigterm-while-the-model-loads", "sigint-while-the-model-loads",
         "sigterm-while-answering"])  # the last lands inside a request's task, not in the loop's wait
def test_a_signal_ends_the_process_while_the_client_keeps_stdin_open(
        tmp_path: Path, embedder: LocalOnnxEmbedder, signum: signal.Signals, after_handshake: list[Any]) -> None:
    # MCP's stdio shutdown: a client that gets no exit after closing stdin sends SIGTERM; a supervisor
    # (docker stop, systemd) sends it with stdin still open. The SDK's stdin reader must not keep it alive.
    process = spawn(tmp_path / "data")
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=pump, args=(process.stdout, lines), daemon=True).start()
    process.stdin.write("".join(json.dumps(m) + "\n" for m in (INITIALIZE, *after_handshake)))
    process.stdin.flush()
    assert json.loads(lines.get(timeout=TIMEOUT))["id"] == 1
    answered = [lines.get(timeout=TIMEOUT) for _ in range(min(20, len(after_handshake) - 1))]
    assert all(answered)  # the last case signals while the process answers the rest
    process.send_signal(signum)
    try:
        process.wait(timeout=SHUTDOWN)  # stdin stays open throughout
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(TIMEOUT)
        pytest.fail("still running with stdin open after the signal")
    finally:
        process.stdin.close()
        stderr = process.stderr.read()
        process.stderr.close()
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    for _ in range(len(after_handshake) + 1):  # answers already on their way, then the end
        line = lines.get(timeout=TIMEOUT)
        if not line:
            break
        assert json.loads(line)["jsonrpc"] == "2.0"
    else:
        pytest.fail("stdout did not end")
    MemoryService.open(Settings(data_dir=tmp_path / "data"), embedder=embedder).close()  # closed: the lock is free
