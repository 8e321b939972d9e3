"""The real ``memos-mcp`` console script in subprocesses, over real data directories in tmp_path."""

from __future__ import annotations

import json
import os
import re
import select
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_mcp import __version__
from memos_mcp.config import ALIASES
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.models import HistoryEvent, utcnow
from memos_mcp.core.service import ROOT_USER, MemoryService
from tests.conftest import settings_for
from tests.openai_server import OpenAIServer

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0

CONVERSATION = [
    {"role": "user", "content": "I adopted a corgi named Biscuit last spring."},
    {"role": "assistant", "content": "Lovely! How is Biscuit settling in?"},
    {"role": "user", "content": "He loves swimming in Lake Tahoe every summer."},
]
DOCUMENT = """# Field notes

The zeppelin hangar in Friedrichshafen opens at dawn.

## Kitchen

The sourdough starter needs feeding twice a day.
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any MEMOS_* or seed alias variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}
    env.update(extra)
    return env


def memos(cwd: Path, data_dir: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [str(MEMOS), *(["--data-dir", str(data_dir)] if data_dir else []), *args]
    return subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def records(path_or_text: Path | str) -> list[dict[str, Any]]:
    text = path_or_text.read_text(encoding="utf-8") if isinstance(path_or_text, Path) else path_or_text
    return [json.loads(line) for line in text.splitlines()]


def check_lines(stdout: str) -> dict[str, tuple[str, str]]:
    """The ``# checks`` section of doctor's output: name -> (verdict, detail)."""
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.split("# checks", 1)[1].splitlines():
        match = re.match(r"^(ok|FAIL)\s+(data dir|\S+)\s+(.*)$", line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def conversation_file(tmp_path: Path) -> Path:
    path = tmp_path / "trip.json"
    path.write_text(json.dumps(CONVERSATION), encoding="utf-8")
    return path


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Path]:
    """A second process that opens the service on a data directory and keeps it until stdin closes."""
    data_dir = tmp_path / "held"
    script = ("import sys\nfrom pathlib import Path\nfrom memos_mcp.config import load_settings\n"
              "from memos_mcp.core.service import MemoryService\n"
              "s = MemoryService.open(load_settings(data_dir=Path(sys.argv[1])))\n"
              "print('ready', flush=True)\nsys.stdin.read()\ns.close()\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(data_dir)], cwd=tmp_path, env=clean_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        line = ""
        while not line and time.monotonic() < deadline and process.poll() is None:
            readable, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            if readable:
                line = process.stdout.readline()
                break
        assert line.strip() == "ready", f"holder did not start: {line!r}"
        yield data_dir
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# --- version and doctor ------------------------------------------------------------------------------


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = ok(memos(tmp_path, None, "--version"))
    assert result.stdout.strip() == f"memos-mcp {__version__}"


def test_doctor_passes_every_check_on_a_fresh_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = ok(memos(tmp_path, data_dir, "doctor"))
    checks = check_lines(result.stdout)
    assert set(checks) == {"data dir", "catalog", "embedder", "vectors", "graph", "llm", "rate_limits"}
    assert all(verdict == "ok" for verdict, _ in checks.values()), checks
    assert f"data directory {data_dir} made (it held no store) and locked" in checks["data dir"][1]
    assert "dimension 384" in checks["embedder"][1]
    assert "queries: int8, cached in " in checks["embedder"][1]  # the int8 query model and where it lies
    assert "not configured" in checks["llm"][1]
    assert str(data_dir / "graph.sqlite3") in checks["graph"][1]
    assert f"data_dir: {data_dir}" in result.stdout  # the effective configuration comes first
    assert "all checks passed" in result.stderr
    again = check_lines(ok(memos(tmp_path, data_dir, "doctor")).stdout)  # a typo is seen: the second run opens
    assert f"data directory {data_dir} opened and locked" in again["data dir"][1]


def test_doctor_names_the_writes_a_stopped_process_left_unfinished(tmp_path: Path,
                                                                    embedder: LocalOnnxEmbedder) -> None:
    """A delete killed part-way was invisible to doctor (it passed, saying nothing of it)."""
    data_dir = tmp_path / "data"
    service = MemoryService.open(settings_for(data_dir), embedder=embedder)
    try:
        service.ensure_user("alice")
        memory = service.add_memory("alice", memory_content="The boat key is in the red tin.").memories[0]
        service.catalog.begin_writes([HistoryEvent(memory_id=memory.id, cube_id=memory.cube_id, event="DELETE",
                                                   actor="alice", at=utcnow())])  # what a kill mid-delete leaves
    finally:
        service.close()
    checks = check_lines(ok(memos(tmp_path, data_dir, "doctor")).stdout)
    assert "unfinished writes of a stopped process" in checks["catalog"][1] and "1 DELETE" in checks["catalog"][1]
    again = check_lines(ok(memos(tmp_path, data_dir, "doctor")).stdout)  # the first run's open finished it
    assert "unfinished" not in again["catalog"][1]


def test_doctor_masks_a_secret_from_the_environment_and_fails_on_an_unreachable_llm(tmp_path: Path) -> None:
    secret = "sk-secret-value"
    result = memos(tmp_path, tmp_path / "data", "doctor",
                   OPENAI_API_KEY=secret, MEMOS_LLM__BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1, result.stderr
    checks = check_lines(result.stdout)
    assert checks["llm"][0] == "FAIL"
    assert "http://127.0.0.1:9/v1" in checks["llm"][1]
    assert all(checks[name][0] == "ok" for name in ("data dir", "catalog", "embedder", "vectors"))
    assert "api_key: '**********'" in result.stdout
    assert "model: gpt-4o-mini" in result.stdout
    assert secret not in result.stdout
    assert secret not in result.stderr
    assert "1 check(s) failed" in result.stderr


def test_doctor_fails_the_graph_check_when_neo4j_is_unreachable(tmp_path: Path) -> None:
    result = memos(tmp_path, tmp_path / "data", "doctor", NEO4J_URI="bolt://127.0.0.1:9")
    assert result.returncode == 1
    checks = check_lines(result.stdout)
    assert checks["graph"][0] == "FAIL"
    assert "[backend_unavailable]" in checks["graph"][1] and "bolt://127.0.0.1:9" in checks["graph"][1]
    assert all(checks[name][0] == "ok" for name in ("data dir", "catalog", "embedder", "vectors", "llm"))


def test_doctor_reports_store_locked_while_another_process_holds_the_data_directory(
    tmp_path: Path, holder: Path,
) -> None:
    result = memos(tmp_path, holder, "doctor")
    assert result.returncode == 1
    checks = check_lines(result.stdout)
    assert checks["data dir"][0] == "FAIL"
    assert "[store_locked]" in checks["data dir"][1]
    assert "catalog" not in checks  # nothing else of the data directory is probed
    assert checks["llm"][0] == "ok"


STDIO_INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}


def test_stdio_on_a_data_dir_another_process_holds_fails_in_one_line_before_any_reply(holder: Path) -> None:
    # stdio opens its stores after the handshake, but claims the data directory before it
    started = subprocess.run([str(MEMOS), "--data-dir", str(holder), "stdio"],
                             input=json.dumps(STDIO_INITIALIZE) + "\n", env=clean_env(), capture_output=True,
                             text=True, timeout=TIMEOUT, check=False)
    assert started.returncode == 2, started.stderr
    assert started.stdout == ""  # no initialize reply: the client sees the start fail
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert lines[0].startswith("memos-mcp: error [store_locked]: data directory"), lines[0]
    assert str(holder) in lines[0]


# --- import ------------------------------------------------------------------------------------------


def test_importing_a_conversation_for_a_new_user_creates_the_user_and_memories(
    tmp_path: Path, conversation_file: Path,
) -> None:
    data_dir = tmp_path / "data"
    summary = json.loads(ok(memos(tmp_path, data_dir, "import", str(conversation_file), "--user", "alice")).stdout)
    assert summary["kind"] == "conversation"
    assert summary["messages"] == len(CONVERSATION)
    assert summary["added"] > 0

    users = json.loads(ok(memos(tmp_path, data_dir, "users")).stdout)
    assert "alice" in {u["user_id"] for u in users}
    cubes = json.loads(ok(memos(tmp_path, data_dir, "cubes", "--user", "alice")).stdout)
    assert [(c["cube_id"], c["owner_id"], c["is_default"]) for c in cubes] == [("alice_default_cube", "alice", True)]
    stats = json.loads(ok(memos(tmp_path, data_dir, "stats")).stdout)
    assert stats["vectors"]["points"] == summary["added"] > 0
    assert stats["catalog"]["messages"] == len(CONVERSATION)

    exported = records(ok(memos(tmp_path, data_dir, "export", "--cube", "alice_default_cube")).stdout)
    memories = [r for r in exported if r["type"] == "memory"]
    assert {m["conversation_id"] for m in memories} == {"trip"}  # the file name is the conversation id
    assert any("Lake Tahoe" in m["memory"] for m in memories)


def test_importing_a_markdown_document_into_a_new_cube_creates_the_cube(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    document = tmp_path / "notes.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    summary = json.loads(ok(memos(tmp_path, data_dir, "import", str(document), "--user", "bob",
                                  "--cube", "field-notes")).stdout)
    assert summary["kind"] == "document"
    assert summary["cube_id"] == "field-notes"
    assert summary["added"] > 0

    cubes = json.loads(ok(memos(tmp_path, data_dir, "cubes", "--user", "bob")).stdout)
    assert {c["cube_id"]: c["owner_id"] for c in cubes} == {"bob_default_cube": "bob", "field-notes": "bob"}
    memories = [r for r in records(ok(memos(tmp_path, data_dir, "export", "--cube", "field-notes")).stdout)
                if r["type"] == "memory"]
    assert len(memories) == summary["added"]
    assert any("zeppelin hangar" in m["memory"] for m in memories)
    assert all(m["kind"] == "document" and m["sources"][0]["doc_path"] == str(document) for m in memories)


def test_importing_a_file_that_does_not_exist_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = memos(tmp_path, tmp_path / "data", "import", str(tmp_path / "missing.json"), "--user", "alice")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error [invalid_request]" in result.stderr
    assert f"{tmp_path / 'missing.json'} is not a file" in result.stderr
    assert "Traceback" not in result.stderr


# --- export ------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path, embedder: LocalOnnxEmbedder) -> Path:
    """A data directory with a cube 'c1' of alice holding facts with metadata and a conversation."""
    data_dir = tmp_path / "source"
    service = MemoryService.open(settings_for(data_dir), embedder=embedder)
    try:
        service.ensure_user("alice")
        service.create_cube(ROOT_USER, "Alice's notes", cube_id="c1", owner_id="alice")
        service.add_memory("alice", cube_id="c1", memory_content="Alice's passport expires in March 2031.",
                           metadata={"source": "scan", "page": 2, "checked": True}, tags=["travel"])
        service.add_memory("alice", cube_id="c1", memory_content="The spare house key is under the blue pot.",
                           metadata={"room": "porch"}, chat_time="2024-05-08T13:56:00Z")
        service.add_memory("alice", cube_id="c1", messages=CONVERSATION, conversation_id="pets")
    finally:
        service.close()
    return data_dir


def test_export_then_import_into_a_fresh_data_directory_round_trips_every_memory(
    tmp_path: Path, seeded: Path,
) -> None:
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, seeded, "export", "--cube", "c1", "--out", str(exported)))
    fresh = tmp_path / "fresh"
    summary = json.loads(ok(memos(tmp_path, fresh, "import", str(exported), "--user", "other",
                                  "--cube", "c2")).stdout)
    assert summary["kind"] == "export"
    assert summary["cube_id"] == "c2"
    assert summary["reembedded"] is False
    assert summary["renamed"] == 0
    # into a new user's default cube, named: the user's making makes it (the import made it a second time)
    own = json.loads(ok(memos(tmp_path, tmp_path / "fresh2", "import", str(exported), "--user", "other",
                              "--cube", "other_default_cube")).stdout)
    assert (own["cube_id"], own["memories"]) == ("other_default_cube", summary["memories"])
    again = tmp_path / "c2.jsonl"
    ok(memos(tmp_path, fresh, "export", "--cube", "c2", "--out", str(again)))

    before, after = records(exported), records(again)
    assert before[0]["type"] == after[0]["type"] == "header"
    assert before[0]["memories"] == after[0]["memories"] == summary["memories"] >= 3
    # the new cube keeps the exported cube's name (it was named after its id)
    assert after[0]["cube"] == {"cube_id": "c2", "name": "Alice's notes", "owner_id": "other"}

    def memories(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["id"]: {k: v for k, v in r.items() if k != "cube_id"} for r in lines if r["type"] == "memory"}

    old, new = memories(before), memories(after)
    assert set(old) == set(new)
    assert old == new  # ids, texts, metadata, tags, timestamps, sources and embeddings
    assert {r["cube_id"] for r in after if r["type"] != "header"} == {"c2"}
    by_text = {m["memory"]: m for m in new.values()}
    passport = by_text["Alice's passport expires in March 2031."]
    assert passport["metadata"] == {"source": "scan", "page": 2, "checked": True}
    assert "travel" in passport["tags"]
    assert by_text["The spare house key is under the blue pot."]["event_time"].startswith("2024-05-08T13:56")

    def messages(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["conversation_id"], r["role"], r["content"], r["created_at"]) for r in lines
                if r["type"] == "message"]

    assert messages(before) == messages(after)
    assert len(messages(after)) == len(CONVERSATION)


def test_export_to_stdout_prints_only_jsonl_with_the_header_first(tmp_path: Path, seeded: Path) -> None:
    result = ok(memos(tmp_path, seeded, "export", "--cube", "c1"))
    lines = records(result.stdout)
    assert lines[0]["type"] == "header"
    assert lines[0]["format"] == "memos-mcp/export-v1"
    assert lines[0]["cube"]["cube_id"] == "c1"
    assert lines[0]["dimension"] == 384
    assert lines[0]["memories"] == sum(1 for r in lines if r["type"] == "memory") >= 3
    assert {r["type"] for r in lines[1:]} == {"memory", "message"}


def test_exporting_an_unknown_cube_exits_2_with_not_found_and_prints_nothing(tmp_path: Path, seeded: Path) -> None:
    out = tmp_path / "never.jsonl"
    for extra in ((), ("--out", str(out))):
        result = memos(tmp_path, seeded, "export", "--cube", "no-such-cube", *extra)
        assert result.returncode == 2
        assert result.stdout == ""
        assert "error [not_found]" in result.stderr
        assert "no-such-cube" in result.stderr


def test_exporting_an_unknown_cube_leaves_an_existing_out_file_untouched(tmp_path: Path, seeded: Path) -> None:
    out = tmp_path / "backup.jsonl"
    out.write_text('{"type":"header"}\n', encoding="utf-8")
    result = memos(tmp_path, seeded, "export", "--cube", "typo", "--out", str(out))
    assert result.returncode == 2
    assert out.read_text(encoding="utf-8") == '{"type":"header"}\n'


def test_export_writes_through_a_symlink_and_into_a_fifo_without_replacing_them(tmp_path: Path, seeded: Path) -> None:
    """--out names a place the export is written to: a symbolic link stays a link (its file gets the
    export), and a special file (a FIFO here; /dev/null or /dev/stdout alike) is written, never replaced
    by a regular file renamed over it (which, for /dev/null run as root, broke the machine)."""
    def content(text: str) -> list[dict[str, Any]]:  # the export without its time
        return [{k: v for k, v in r.items() if k != "exported_at"} for r in records(text)]

    expected = content(ok(memos(tmp_path, seeded, "export", "--cube", "c1")).stdout)
    kept = tmp_path / "backups" / "c1.jsonl"
    kept.parent.mkdir()
    kept.write_text("old backup\n", encoding="utf-8")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(kept)
    ok(memos(tmp_path, seeded, "export", "--cube", "c1", "--out", str(link)))
    assert link.is_symlink() and link.resolve() == kept
    assert content(kept.read_text(encoding="utf-8")) == expected

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    ok(memos(tmp_path, seeded, "export", "--cube", "c1", "--out", str(fifo)))
    reader.join(TIMEOUT)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert content(received[0].decode("utf-8")) == expected
    assert not list(tmp_path.glob(".pipe*"))


def test_importing_the_same_export_twice_keeps_one_copy_of_everything(tmp_path: Path, seeded: Path) -> None:
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, seeded, "export", "--cube", "c1", "--out", str(exported)))
    fresh = tmp_path / "fresh"
    for _ in range(2):
        ok(memos(tmp_path, fresh, "import", str(exported), "--user", "other", "--cube", "c2"))
    stats = json.loads(ok(memos(tmp_path, fresh, "stats")).stdout)
    assert stats["vectors"]["points"] == records(exported)[0]["memories"]
    assert stats["catalog"]["messages"] == len(CONVERSATION)


def test_importing_a_conversation_with_a_model_waits_for_its_extraction(
    tmp_path: Path, conversation_file: Path,
) -> None:
    server = OpenAIServer()
    try:
        server.extraction_replies.append(json.dumps({"facts": [
            {"key": "Trip", "value": "Alice plans a trip to Lake Tahoe.", "sources": [0]}]}))
        data_dir = tmp_path / "data"
        summary = json.loads(ok(memos(tmp_path, data_dir, "import", str(conversation_file), "--user", "alice",
                                      MEMOS_LLM__BASE_URL=server.url, MEMOS_LLM__MODEL="scripted-model")).stdout)
    finally:
        server.stop()
    assert (summary["messages"], summary["added"]) == (len(CONVERSATION), 1)
    assert len(server.chats) == 1  # one extraction call for the conversation's one batch
    exported = records(ok(memos(tmp_path, data_dir, "export", "--cube", "alice_default_cube")).stdout)
    assert [r["memory"] for r in exported if r["type"] == "memory"] == ["Alice plans a trip to Lake Tahoe."]


def test_the_export_of_an_imported_600_message_conversation_holds_each_memory_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    conversation = tmp_path / "long.json"
    conversation.write_text(json.dumps([{"role": "user", "content": f"Entry {n}: the red key opens locker {n}."}
                                        for n in range(600)]), encoding="utf-8")
    summary = json.loads(ok(memos(tmp_path, data_dir, "import", str(conversation), "--user", "alice")).stdout)
    assert summary["added"] == 600
    exported = records(ok(memos(tmp_path, data_dir, "export", "--cube", "alice_default_cube")).stdout)
    memories = [r["id"] for r in exported if r["type"] == "memory"]
    assert len(memories) == 600 and len(set(memories)) == 600
    assert all(len(r["embedding"]) > 0 for r in exported if r["type"] == "memory")  # the backup keeps them


@pytest.mark.parametrize(("variable", "value"), [
    ("MEMOS_REST__RATE_LIMITS", "100/minute"), ("MEMOS_SERVER__ALLOWED_HOSTS", "memory.example.com"),
    ("MEMOS_IMPORT_ROOTS", "/srv/docs")])
def test_a_list_setting_from_the_environment_that_is_not_json_is_a_config_error_naming_the_variable(
        tmp_path: Path, variable: str, value: str) -> None:
    for command in (("doctor",), ("stdio",)):
        result = memos(tmp_path, tmp_path / "data", *command, **{variable: value})
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "error [config_error]" in result.stderr
        assert variable in result.stderr
        assert result.stdout == ""


LONG_NOTE = " ".join(f"Note {n}: the allotment plot {n} needs watering on Thursday evenings." for n in range(12))


def _long_memory_without_windows(data_dir: Path, embedder: LocalOnnxEmbedder) -> str:
    """A store in ``data_dir`` holding ``LONG_NOTE`` as an earlier version stored it (no window vectors)."""
    from memos_mcp.core.relevance import WINDOWS_FIELD

    service = MemoryService.open(settings_for(data_dir), embedder=embedder)
    try:
        memory_id: str = service.add_memory(ROOT_USER, memory_content=LONG_NOTE).memories[0].id
        service.ready().set_payload(memory_id, {WINDOWS_FIELD: None})
    finally:
        service.close()
    return memory_id


def test_reindex_gives_a_store_of_an_earlier_version_its_window_vectors(tmp_path: Path,
                                                                        embedder: LocalOnnxEmbedder) -> None:
    from memos_mcp.core.relevance import WINDOWS_FIELD, read_windows

    data_dir = tmp_path / "data"
    memory_id = _long_memory_without_windows(data_dir, embedder)

    assert json.loads(ok(memos(tmp_path, data_dir, "reindex")).stdout) == {"memories": 1, "long": 1, "windowed": 1}
    assert json.loads(ok(memos(tmp_path, data_dir, "reindex")).stdout)["windowed"] == 0
    service = MemoryService.open(settings_for(data_dir), embedder=embedder)
    try:
        (point,) = service.ready().retrieve([memory_id])
        assert read_windows(LONG_NOTE, point.payload[WINDOWS_FIELD], embedder.dimension) is not None
    finally:
        service.close()


READ_COMMANDS = [("reindex",), ("stats",), ("users",), ("cubes",), ("cubes", "--user", "alice"),
                 ("export", "--cube", "c1"), ("keys", "list"), ("keys", "revoke", "k1")]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_command_on_a_store_refuses_a_directory_that_holds_none_and_creates_nothing(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    typo, empty = tmp_path / "dta", tmp_path / "empty"
    empty.mkdir()
    for data_dir in (typo, empty):
        result = memos(tmp_path, data_dir, *command)
        assert result.returncode == 2 and result.stdout == ""
        assert "error [invalid_request]" in result.stderr and "not a memos-mcp data directory" in result.stderr
        assert str(data_dir) in result.stderr
    assert not typo.exists()
    assert list(empty.iterdir()) == []


def test_an_import_of_a_bad_file_makes_no_user_cube_or_store(tmp_path: Path, seeded: Path) -> None:
    """The user and its cube were made before the file was read: a file refused at line 2 left them."""
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, seeded, "export", "--cube", "c1", "--out", str(exported)))
    header, *rest = exported.read_text(encoding="utf-8").splitlines()
    bad_export = tmp_path / "bad.jsonl"
    bad_export.write_text("\n".join([header, *rest, '{"type": "bogus"}']) + "\n", encoding="utf-8")
    surrogate = tmp_path / "talk.json"
    surrogate.write_text('[{"role": "user", "content": "fine"}, {"role": "user", "content": "lone \\ud800"}]',
                         encoding="utf-8")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes((header + "\n").encode() + '{"type": "memory", "memory": "caf\u00e9"}'.encode("latin-1"))
    memory = next(line for line in rest if json.loads(line)["type"] == "memory")
    cases = [(bad_export, f"line {len(rest) + 2}: unknown record type"), (surrogate, "messages.1.content"),
             (latin, "not UTF-8")]
    for name, changed, said in (
            ("lone", json.dumps({**json.loads(memory), "memory": "lone \ud800"}), "line 2: memory"),
            ("deep", "[" * 100_000, "line 2 is nested too deeply"),
            ("id", json.dumps({**json.loads(memory), "id": "abcd"}), "line 2: id 'abcd' is not a UUID"),
            ("key", json.dumps({**json.loads(memory), "metadata": {"bad key!": 1}}), "line 2: metadata key"),
            ("tag", json.dumps({**json.loads(memory), "tags": ["ok", "\u200b"]}), "line 2: tags.1 is empty"),
            ("dots", json.dumps({**json.loads(memory), "conversation_id": ".."}), "line 2: conversation_id '..'"),
            ("colour", json.dumps({**json.loads(memory), "colour": "red"}), "line 2: unknown field 'colour'"),
            ("digits", json.dumps({**json.loads(memory), "metadata": {"n": 1}}).replace('"n": 1', '"n": ' + "7" * 5000),
             "line 2 holds a number no store keeps"),
            ("sourcedots", json.dumps({**json.loads(memory), "sources": [{"type": "api", "conversation_id": ".."}]}),
             "line 2: sources.0.conversation_id '..'"),
            ("said", json.dumps({"type": "message", "id": "m1", "conversation_id": "c", "user_id": "u",
                                 "role": "user", "content": "Hi.", "created_at": "2024-01-01T00:00:00Z",
                                 "said_by": "x"}), "line 2: unknown field 'said_by'"),
            ("lonekey", json.dumps({**json.loads(memory), "key": "half \ud800"}), "line 2: key is not valid Unicode"),
            ("nulsource", json.dumps({**json.loads(memory), "sources": [{"type": "api", "note": "a\x00b"}]}),
             "line 2: sources.0.note holds a NUL character"),
            ("nulname", json.dumps({"type": "message", "id": "m1", "conversation_id": "c", "user_id": "u",
                                    "role": "user", "content": "Hi.", "name": "A\x00",
                                    "created_at": "2024-01-01T00:00:00Z"}),
             "line 2: name holds a NUL character"),
            ("headerless", memory, "line 1 must be a header")):
        broken = tmp_path / f"{name}.jsonl"
        broken.write_text("\n".join([header, changed] if name != "headerless" else [changed]) + "\n",
                          encoding="utf-8")
        cases.append((broken, said))
    odd_header = tmp_path / "odd_header.jsonl"
    odd_header.write_text("\n".join([json.dumps({**json.loads(header), "note": "x"}), memory]) + "\n",
                          encoding="utf-8")
    cases.append((odd_header, "line 1: unknown field 'note'"))
    users_before = ok(memos(tmp_path, seeded, "users")).stdout
    for file, said in cases:
        result = memos(tmp_path, seeded, "import", str(file), "--user", "typo", "--cube", "typo-cube")
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert said in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert ok(memos(tmp_path, seeded, "users")).stdout == users_before
    others = memos(tmp_path, seeded, "import", str(exported), "--user", "mallory", "--cube", "c1")  # alice's
    assert others.returncode == 2 and "error [" in others.stderr and "Traceback" not in others.stderr
    assert ok(memos(tmp_path, seeded, "users")).stdout == users_before  # no mallory, no cube of hers
    reserved = memos(tmp_path, seeded, "import", str(exported), "--user", "fresh1", "--cube", "zz_default_cube")
    assert reserved.returncode == 2 and "kept for users' default cubes" in reserved.stderr
    assert ok(memos(tmp_path, seeded, "users")).stdout == users_before
    missing = memos(tmp_path, tmp_path / "dta", "import", str(tmp_path / "nope.json"), "--user", "u")
    assert missing.returncode == 2 and "is not a file" in missing.stderr and not (tmp_path / "dta").exists()


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("command", [("stats",), ("export", "--cube", "c1"), ("keys", "list")], ids=" ".join)
def test_a_command_on_a_store_refuses_a_catalog_file_that_holds_no_catalog(tmp_path: Path,
                                                                           command: tuple[str, ...]) -> None:
    import sqlite3

    empty_file, foreign = tmp_path / "touched", tmp_path / "foreign"
    empty_file.mkdir()
    (empty_file / "catalog.sqlite3").touch()
    foreign.mkdir()
    with sqlite3.connect(foreign / "catalog.sqlite3") as db:  # another application's database of that name
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.close()
    for data_dir in (empty_file, foreign):
        before = _files(data_dir)
        result = memos(tmp_path, data_dir, *command)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert "error [invalid_request]" in result.stderr and "holds no memos-mcp catalog" in result.stderr
        assert "--data-dir" in result.stderr and _files(data_dir) == before


def test_reindex_on_a_service_opened_read_only_is_refused_naming_the_setting(tmp_path: Path,
                                                                            embedder: LocalOnnxEmbedder) -> None:
    data_dir = tmp_path / "data"
    _long_memory_without_windows(data_dir, embedder)

    result = memos(tmp_path, data_dir, "reindex", MEMOS_READ_ONLY="true")
    assert result.returncode == 2 and result.stdout == ""
    assert "error [read_only]" in result.stderr and "MEMOS_READ_ONLY" in result.stderr
    assert json.loads(ok(memos(tmp_path, data_dir, "reindex")).stdout)["windowed"] == 1  # nothing was written


def test_a_write_refused_by_the_read_only_setting_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ok(memos(tmp_path, data_dir, "keys", "create", "--user", "alice"))
    conversation = tmp_path / "talk.json"
    conversation.write_text('[{"role": "user", "content": "The boiler was serviced in May."}]', encoding="utf-8")
    for command in (("keys", "create", "--user", "bob"), ("import", str(conversation), "--user", "alice")):
        result = memos(tmp_path, data_dir, *command, MEMOS_READ_ONLY="true")
        assert result.returncode == 2 and result.stdout == ""
        assert "error [read_only]" in result.stderr and "MEMOS_READ_ONLY" in result.stderr, result.stderr
    users = {u["user_id"] for u in json.loads(ok(memos(tmp_path, data_dir, "users")).stdout)}
    assert "alice" in users and "bob" not in users
    assert json.loads(ok(memos(tmp_path, data_dir, "stats")).stdout)["catalog"]["messages"] == 0
