"""The MCP Inspector CLI (npm, a client this project did not write) drives the real server over
stdio and over streamable HTTP: tools/list, then add_memory and search_memory."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("clean_environment")

INSPECTOR_DIR = Path(__file__).parent / "inspector"
INSPECTOR = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"
EXE = str(Path(sys.executable).parent / "memos-mcp")


def inspector(target: list[str], method: str, *args: str) -> Any:
    assert INSPECTOR.exists(), "the MCP Inspector is not installed: run scripts/setup.sh test"
    done = subprocess.run([str(INSPECTOR), "--cli", *target, "--method", method, *args], cwd=INSPECTOR_DIR,
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def structured(result: dict[str, Any]) -> Any:
    assert not result.get("isError"), result
    return result.get("structuredContent") or json.loads(result["content"][0]["text"])


def exercise(target: list[str]) -> None:
    tools = {t["name"] for t in inspector(target, "tools/list")["tools"]}
    assert {"add_memory", "search_memory", "list_cubes"} <= tools
    added = structured(inspector(target, "tools/call", "--tool-name", "add_memory",
                                 "--tool-arg", "memory_content=The inspector check uses a teal kettle."))
    assert added["memories"][0]["memory"] == "The inspector check uses a teal kettle."
    found = structured(inspector(target, "tools/call", "--tool-name", "search_memory",
                                 "--tool-arg", "query=what colour is the kettle"))
    assert found["memories"][0]["memory"] == "The inspector check uses a teal kettle."


def test_the_inspector_drives_the_stdio_server(tmp_path: Path) -> None:
    exercise([EXE, "--data-dir", str(tmp_path / "data"), "stdio"])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([EXE, "--data-dir", str(tmp_path / "data"), "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # uvicorn says when it listens
            ready, _, _ = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))
            line = process.stderr.readline() if ready else ""
            if "running on" in line.lower() or not line:
                break
        assert process.poll() is None, "memos-mcp serve exited early"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stderr:
            process.stderr.close()


def test_the_inspector_drives_the_http_server(http_server: str) -> None:
    exercise([http_server, "--transport", "http"])
