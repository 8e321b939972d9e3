"""A data directory that may not be written (a read-only bind mount: the tests run as root, which
ignores permission bits): commands that write fail with one line naming it; ``export``, ``stats``,
``doctor`` and ``serve --read-only`` read it, and refuse writes, without writing anything there.
The real ``memos-mcp`` executable in subprocesses, on both vector backends."""

from __future__ import annotations

import json
import queue
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService
from tests.conftest import settings_for
from tests.http.test_serve_cli import pump
from tests.test_cli import MEMOS, TIMEOUT, check_lines, clean_env, memos, ok, records

pytestmark = pytest.mark.usefixtures("clean_environment")

FACT = "The spare house key is under the blue pot."
CUBE = "default_default_cube"


def backend_env(backend: str, data_dir: Path) -> dict[str, str]:
    if backend == "edge":
        return {}
    return {"MEMOS_VECTOR__BACKEND": "qdrant", "MEMOS_VECTOR__PATH": str(data_dir / "qdrant-local")}


def seed(data_dir: Path, backend: str, embedder: LocalOnnxEmbedder) -> MemoryService:
    """An open service over ``data_dir`` as serving leaves it: the default user, whose default cube
    holds one fact."""
    service = MemoryService.open(settings_for(data_dir, backend), embedder=embedder)
    service.ensure_user("default")
    service.add_memory("default", memory_content=FACT)
    return service


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def memos_vector_copies() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("memos-*") if re.match(r"memos-(vectors|qdrant)-", p.name)}


MountReadOnly = Callable[[], Path]


@pytest.fixture
def mount_read_only(tmp_path: Path) -> Iterator[MountReadOnly]:
    """Mounts ``tmp_path/source`` (fill it first) read-only at ``tmp_path/ro`` and returns that path;
    skipped, saying why, where a read-only bind mount cannot be made."""
    source, target = tmp_path / "source", tmp_path / "ro"
    source.mkdir(exist_ok=True)
    target.mkdir()
    mounted: list[bool] = []

    def mount() -> Path:
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount (needs root and mount): {done.stderr.strip()}")
        mounted.append(True)
        try:
            (target / "probe").write_text("x")
        except OSError:
            return target
        pytest.skip("the bind mount did not become read-only")

    try:
        yield mount
    finally:
        if mounted:
            for _ in range(50):  # a process just stopped may keep the mount busy for a moment
                if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", str(target)], check=False)


@contextmanager
def serving_read_only(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """``memos-mcp serve --read-only --port 0`` over ``data_dir``; yields the port it bound, stops it after."""
    process = subprocess.Popen([str(MEMOS), "--data-dir", str(data_dir), "serve", "--read-only", "--port", "0"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=pump, args=(process.stderr, lines), daemon=True).start()
    log: list[str] = []
    try:
        port = None
        while port is None:
            line = lines.get(timeout=TIMEOUT)
            assert line, "serve --read-only ended:\n" + "".join(log)
            log.append(line)
            if found := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                port = found.group(1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
        process.stderr.close()


def one_line_error(result: subprocess.CompletedProcess[str], data_dir: Path) -> str:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(data_dir) in lines[0]
    return lines[0]


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_commands_that_write_fail_in_one_line_naming_the_read_only_data_dir(
        tmp_path: Path, backend: str, embedder: LocalOnnxEmbedder, mount_read_only: MountReadOnly) -> None:
    seed(tmp_path / "source", backend, embedder).close()
    ro = mount_read_only()
    env = backend_env(backend, ro)
    conversation = tmp_path / "talk.json"
    conversation.write_text(json.dumps([{"role": "user", "content": "I like tea."}]), encoding="utf-8")
    for args in (("serve", "--port", "0"), ("stdio",), ("import", str(conversation), "--user", "alice"),
                 ("keys", "create", "--user", "bob")):
        line = one_line_error(memos(tmp_path, ro, *args, **env), ro)
        assert line.startswith("memos-mcp: error [read_only]: data directory"), line
        assert "not writable" in line
    missing = ro / "never-made"
    line = one_line_error(memos(tmp_path, missing, "serve", "--port", "0", **env), missing)
    assert "cannot create the data directory" in line


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_export_stats_and_doctor_read_a_read_only_data_dir_and_leave_it_as_it_was(
        tmp_path: Path, backend: str, embedder: LocalOnnxEmbedder, mount_read_only: MountReadOnly) -> None:
    seed(tmp_path / "source", backend, embedder).close()
    ro = mount_read_only()
    env = backend_env(backend, ro)
    before, copies = snapshot(ro), memos_vector_copies()
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, ro, "export", "--cube", CUBE, "--out", str(exported), **env))
    lines = records(exported)
    assert lines[0]["memories"] == 1
    assert [r["memory"] for r in lines if r["type"] == "memory"] == [FACT]
    stats = json.loads(ok(memos(tmp_path, ro, "stats", **env)).stdout)
    assert stats["vectors"]["points"] == 1
    assert json.loads(ok(memos(tmp_path, ro, "keys", "list", **env)).stdout) == []
    doctor = ok(memos(tmp_path, ro, "doctor", **env))
    checks = check_lines(doctor.stdout)
    assert checks["data dir"][0] == "ok" and "opened read-only" in checks["data dir"][1]
    assert checks["vectors"][0] == "ok" and "ordered scroll answers" in checks["vectors"][1]
    assert checks["catalog"][0] == "ok" and "read-only" in checks["catalog"][1]
    assert snapshot(ro) == before
    assert memos_vector_copies() == copies  # the private copy of the vectors is gone


def test_export_reads_a_snapshot_copied_while_the_server_was_writing(
        tmp_path: Path, embedder: LocalOnnxEmbedder, mount_read_only: MountReadOnly) -> None:
    service = seed(tmp_path / "live", "edge", embedder)
    try:
        service.vectors.flush()
        shutil.copytree(tmp_path / "live", tmp_path / "source", dirs_exist_ok=True)
    finally:
        service.close()
    wal = tmp_path / "source" / "catalog.sqlite3-wal"
    assert wal.exists() and wal.stat().st_size > 0  # the cube is only in the WAL of the copy
    ro = mount_read_only()
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, ro, "export", "--cube", CUBE, "--out", str(exported)))
    assert [r["memory"] for r in records(exported) if r["type"] == "memory"] == [FACT]


def test_serve_read_only_serves_a_read_only_data_dir_and_refuses_writes_with_403(
        tmp_path: Path, embedder: LocalOnnxEmbedder, mount_read_only: MountReadOnly) -> None:
    seed(tmp_path / "source", "edge", embedder).close()
    ro = mount_read_only()
    before = snapshot(ro)
    with serving_read_only(ro, clean_env()) as port, httpx2.Client(base_url=f"http://127.0.0.1:{port}",
                                                                   timeout=TIMEOUT) as http:
        listed = http.get("/v1/memories/user/default")
        assert listed.status_code == 200, listed.text
        assert [m["content"] for m in listed.json()["data"]["memories"]] == [FACT]
        found_hits = http.get("/v1/memories/search",
                              params={"query": "where is the house key", "user_id": "default"})
        assert found_hits.json()["data"][0]["content"] == FACT
        refused = http.post("/v1/memories", json={"content": "A new fact.", "user_id": "default"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"]["type"] == "read_only"
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        again = http.get("/v1/memories/user/default")
        assert [m["content"] for m in again.json()["data"]["memories"]] == [FACT]
    assert snapshot(ro) == before


def test_doctor_fails_on_a_read_only_data_dir_whose_catalog_lacks_part_of_its_schema(
        tmp_path: Path, embedder: LocalOnnxEmbedder, mount_read_only: MountReadOnly) -> None:
    seed(tmp_path / "source", "edge", embedder).close()
    catalog = sqlite3.connect(tmp_path / "source" / "catalog.sqlite3")
    catalog.execute("DROP INDEX history_memory")  # a catalog that cannot be completed where it lies
    catalog.commit()
    catalog.close()
    ro = mount_read_only()
    doctor = memos(tmp_path, ro, "doctor")
    assert doctor.returncode == 1
    verdict, detail = check_lines(doctor.stdout)["data dir"]
    assert verdict == "FAIL"
    assert "lacks index history_memory" in detail and str(ro) in detail
    refused = memos(tmp_path, ro, "export", "--cube", CUBE)
    assert refused.returncode == 2 and "lacks index history_memory" in refused.stderr


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_serve_read_only_over_a_writable_data_dir_refuses_writes_on_every_face(
        tmp_path: Path, embedder: LocalOnnxEmbedder, backend: str) -> None:
    data_dir = tmp_path / "data"
    seed(data_dir, backend, embedder).close()
    with serving_read_only(data_dir, clean_env(**backend_env(backend, data_dir))) as port, \
            httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as http:
        mem0 = http.post("/v1/memories", json={"content": "A new fact.", "user_id": "default"})
        assert mem0.status_code == 403 and mem0.json()["error"]["details"]["type"] == "read_only", mem0.text
        product = http.post("/product/add", json={"user_id": "default", "memory_content": "Another fact."})
        assert product.status_code == 403, product.text
        page = http.get("/ui/cubes")
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        form = http.post("/ui/cubes", data={"csrf": token.group(1), "name": "new cube"})
        assert form.status_code == 403 and "read-only" in form.text, form.text
        listed = http.get("/v1/memories/user/default")
        assert [m["content"] for m in listed.json()["data"]["memories"]] == [FACT]
    reopened = MemoryService.open(settings_for(data_dir, backend), embedder=embedder)
    try:
        assert [m.memory for m in reopened.list_memories("default").memories] == [FACT]
        assert len(reopened.list_cubes("default")) == 1
    finally:
        reopened.close()
