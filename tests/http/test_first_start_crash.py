"""``memos-mcp serve`` killed with SIGKILL during its first start on an empty data directory, at points
spread over the first seconds, then started again: adds and lists work and /health is ok. Each
kill point is either a time after the spawn or a time after the vector store's first file appears
(the stores are being created then, whatever the machine's load)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from tests.http.support import TIMEOUT
from tests.http.test_serve_cli import MEMOS, Served, environment

pytestmark = pytest.mark.usefixtures("clean_environment")

# (what the delay counts from, seconds)
KILL_POINTS = [("spawn", 0.3), ("store", 0.0), ("spawn", 1.2), ("store", 0.1), ("spawn", 2.5), ("store", 0.4)]
BACKENDS = {
    "edge": ({}, Path("vectors") / "edge_config.json"),
    "qdrant": ({"MEMOS_VECTOR__BACKEND": "qdrant", "MEMOS_VECTOR__PATH": "{data}/qdrant-local"},
               Path("qdrant-local") / "collection"),
}


def backend_env(backend: str, data: Path) -> dict[str, str]:
    return {k: v.format(data=data) for k, v in BACKENDS[backend][0].items()}


def kill_first_start(data: Path, backend: str, counted_from: str, delay: float) -> None:
    """Start ``serve`` on the empty ``data`` and SIGKILL it ``delay`` seconds after ``counted_from``
    (the spawn, or the store file appearing: if it never does within the bound, after the bound)."""
    process = subprocess.Popen([str(MEMOS), "--data-dir", str(data), "serve", "--port", "0"],
                               env=environment(**backend_env(backend, data)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        if counted_from == "store":
            marker = data / BACKENDS[backend][1]
            deadline = time.monotonic() + TIMEOUT
            while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
        time.sleep(delay)
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)


def check_restart(data: Path, backend: str, note: str) -> None:
    server = Served(data, **backend_env(backend, data))
    try:
        with httpx2.Client(base_url=server.url, timeout=TIMEOUT) as http:
            added = http.post("/v1/memories", json={"content": f"Crash note {note}", "user_id": "default"})
            assert added.status_code == 201, f"{note}: add answered {added.status_code} {added.text}"
            listed = http.get("/v1/memories/user/default")
            assert listed.status_code == 200, f"{note}: list answered {listed.status_code} {listed.text}"
            assert [m["content"] for m in listed.json()["data"]["memories"]] == [f"Crash note {note}"]
            found = http.get("/v1/memories/search", params={"query": "crash note", "user_id": "default"})
            assert found.status_code == 200, f"{note}: search answered {found.status_code} {found.text}"
            health = http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok", f"{note}: {health.text}"
    finally:
        server.close()


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_a_first_start_killed_at_any_point_starts_again_with_working_stores(tmp_path: Path, backend: str) -> None:
    points = KILL_POINTS if backend == "edge" else KILL_POINTS[1:4]
    for n, (counted_from, delay) in enumerate(points):
        data = tmp_path / f"data{n}"
        kill_first_start(data, backend, counted_from, delay)
        check_restart(data, backend, f"{backend} killed {delay} s after {counted_from}")
