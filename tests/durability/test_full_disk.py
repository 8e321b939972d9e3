"""A full file system under a real ``memos-mcp serve``: a small tmpfs this test mounts holds the data
directory, a file fills it, and every face's writes must fail with ``storage_error`` (507) while the
process and reads stay up, leaving nothing of the refused write behind; freed space brings writes back,
and a server started on a file system below the reserve refuses at once with a one-line message."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from memos_mcp.core.diskspace import free_bytes
from tests.durability.support import MEMOS, TIMEOUT, Server, catalog_rows, environment
from tests.http.support import call, streamable, text_of

pytestmark = pytest.mark.usefixtures("clean_environment")

RESERVE = 4 * 2**20  # storage.min_free_bytes of these servers
ENV = {"MEMOS_STORAGE__MIN_FREE_BYTES": str(RESERVE)}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs mounted for this test (a fresh data directory takes about 22 MiB of it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """A file taking all the free space of ``disk`` but ``leave`` bytes (all of it: the writes of the
    file end in ENOSPC)."""
    path = disk / "filler"
    chunk = b"\0" * 2**20
    with path.open("wb", buffering=0) as handle:
        try:
            while free_bytes(disk) - len(chunk) >= leave:
                handle.write(chunk)
            while leave == 0:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


def counts(data_dir: Path) -> dict[str, int]:
    return {table: int(catalog_rows(data_dir, f"SELECT COUNT(*) FROM {table}")[0][0])
            for table in ("history", "messages", "pending_writes")}


ADDS: list[tuple[str, str, dict[str, Any], int]] = [
    # (face, path, body, the status that face gives a storage error)
    ("MemOS product", "/product/add", {"user_id": "default", "memory_content": "The kayak lives in shed nine.",
                                       "session_id": "full"}, 507),
    ("MemOS product messages", "/product/add", {"user_id": "default", "session_id": "full",
                                                "messages": [{"role": "user", "content": "My canoe is green."}]},
     507),
    ("MemOS API", "/api/memories", {"user_id": "default", "memory_content": "The paddles hang by the door."}, 507),
    ("MemOS cloud", "/api/openmem/v1/add/message", {"user_id": "default", "conversation_id": "full",
                                                    "messages": [{"role": "user", "content": "I row at six."}]},
     507),
    ("mem0", "/v1/memories", {"content": "The life vests are orange."}, 507),
    ("memio", "/v1/facts", {"content": "The dock opens in May."}, 507),
]


def storage_code(face: str, body: dict[str, Any]) -> str:
    """The core error code as each envelope carries it (MemOS envelopes: the status and the message)."""
    if face == "mem0":
        assert body["error"]["code"] == "INSUFFICIENT_STORAGE"
        return str(body["error"]["details"]["type"])
    if face == "memio":
        return str(body["error"])
    assert body["code"] == 507 and body["data"] is None, body
    return "storage_error"


# Edge behind the reserve; and qdrant-client's local store with no reserve at all, so that the writes
# really meet the full disk (ENOSPC, "database or disk is full") and must be taken back.
BACKENDS = {"edge": {**ENV}, "qdrant, no reserve": {"MEMOS_VECTOR__BACKEND": "qdrant",
                                                    "MEMOS_STORAGE__MIN_FREE_BYTES": "0"}}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_full_disk_refuses_writes_with_507_keeps_reads_and_the_process_and_stores_nothing(
        small_disk: Path, backend: str) -> None:
    data = small_disk / "data"
    env = dict(BACKENDS[backend])
    if "MEMOS_VECTOR__BACKEND" in env:
        env["MEMOS_VECTOR__PATH"] = str(data / "qdrant-local")
    server = Server(data, **env)
    try:
        with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
            kept = http.post("/v1/memories", json={"content": "The oars are in the van."})
            assert kept.status_code == 201, kept.text
            kept_id = kept.json()["data"][0]["id"]
            filler = fill(small_disk)
            assert free_bytes(small_disk) == 0

            for face, path, body, status in ADDS:
                answer = http.post(path, json=body)
                assert answer.status_code == status, f"{face}: {answer.status_code} {answer.text}"
                assert storage_code(face, answer.json()) == "storage_error", f"{face}: {answer.text}"
                assert server.alive(), f"{face} ended the server:\n" + "".join(server.log)
            changed = http.put(f"/v1/memories/{kept_id}", json={"content": "The oars are in the attic."})
            assert changed.status_code == 507, changed.text
            assert changed.json()["error"]["details"]["type"] == "storage_error"

            async def through_mcp() -> str:
                with anyio.fail_after(TIMEOUT):
                    async with streamable(server.url) as session:
                        refused = await session.call_tool("add_memory", {"memory_content": "The tent is blue."})
                        assert refused.is_error
                        found = await call(session, "search_memory", query="where are the oars")
                        assert "van" in found["memories"][0]["memory"]
                        history = await call(session, "memory_history", memory_id=kept_id)
                        assert [e["event"] for e in history["events"]] == ["ADD"]  # the refused update left none
                        return text_of(refused)

            refusal = anyio.run(through_mcp)
            assert "storage_error: " in refusal, refusal
            assert server.alive()
            # Reads answer, and nothing of a refused write is there.
            listed = http.post("/api/openmem/v1/get/memory", json={"user_id": "default"})
            assert listed.status_code == 200, listed.text
            texts = [m["memory_value"] for m in listed.json()["data"]["memory_detail_list"]]
            assert texts == ["The oars are in the van."]
            talk = http.post("/api/openmem/v1/get/message", json={"user_id": "default", "conversation_id": "full"})
            assert talk.status_code == 200, talk.text
            assert talk.json()["data"]["message_detail_list"] == []
            assert http.get("/health").status_code == 200

            filler.unlink()  # space again: writes work
            again = http.post("/v1/memories", json={"content": "The life vests are orange."})
            assert again.status_code == 201, again.text
        assert server.alive()
    finally:
        server.kill()
    stored = counts(data)
    assert stored == {"history": 2, "messages": 0, "pending_writes": 0}, stored


INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}


@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("stdio",)], ids=["serve", "stdio"])
def test_start_up_on_a_file_system_below_the_reserve_refuses_with_one_line(small_disk: Path,
                                                                           command: tuple[str, ...]) -> None:
    data = small_disk / "data"
    data.mkdir()
    fill(small_disk, leave=RESERVE // 2)
    # stdio opens its stores after the handshake, but checks the data directory before it: no reply
    started = subprocess.run([str(MEMOS), "--data-dir", str(data), *command], input=json.dumps(INITIALIZE) + "\n",
                             env=environment(**ENV), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert started.returncode == 2, started.stderr
    assert started.stdout == ""
    errors = [line for line in started.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, started.stderr
    assert errors[0].startswith("memos-mcp: error [storage_error]: refusing to start"), errors[0]
    assert str(data) in errors[0] and "MiB free" in errors[0] and "storage.min_free_bytes" in errors[0]
    assert "Uvicorn running" not in started.stderr
    assert not (data / "catalog.sqlite3").exists()  # refused before any store was touched
    assert os.listdir(data) == []


def test_the_commands_that_only_read_get_the_data_off_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    conversation = tmp_path / "conversation.json"
    conversation.write_text('[{"role": "user", "content": "The spare key hides under the blue flowerpot."}]')
    made = subprocess.run([str(MEMOS), "--data-dir", str(data), "import", str(conversation), "--user", "default"],
                          env=environment(**ENV), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert made.returncode == 0, made.stderr
    fill(small_disk)
    out = tmp_path / "rescued.jsonl"  # elsewhere: the full disk takes nothing more
    exported = subprocess.run([str(MEMOS), "--data-dir", str(data), "export", "--cube", "default_default_cube",
                               "--out", str(out)], env=environment(**ENV), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    assert exported.returncode == 0, exported.stderr
    assert "blue flowerpot" in out.read_text()
    for command in (["users"], ["stats"]):
        done = subprocess.run([str(MEMOS), "--data-dir", str(data), *command], env=environment(**ENV),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, (command, done.stderr)
    served = subprocess.run([str(MEMOS), "--data-dir", str(data), "serve", "--port", "0"], env=environment(**ENV),
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert served.returncode == 2 and "refusing to start" in served.stderr  # a writing server is still refused


def test_an_export_onto_a_full_disk_fails_in_one_line_and_leaves_no_partial_file(small_disk: Path,
                                                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    conversation = tmp_path / "conversation.json"
    conversation.write_text(json.dumps([{"role": "user", "content": f"Note {n}: " + "words " * 100}
                                        for n in range(40)]))
    made = subprocess.run([str(MEMOS), "--data-dir", str(data), "import", str(conversation), "--user", "default"],
                          env=environment(**ENV), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert made.returncode == 0, made.stderr
    fill(small_disk)
    out = small_disk / "backup.jsonl"
    exported = subprocess.run([str(MEMOS), "--data-dir", str(data), "export", "--cube", "default_default_cube",
                               "--out", str(out)], env=environment(**ENV), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    assert exported.returncode == 2, exported.stderr
    assert exported.stderr.strip().splitlines()[-1].startswith("memos-mcp: error [storage_error]: cannot write the "
                                                               "export to"), exported.stderr
    assert "Traceback" not in exported.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
