"""Rate limits shared by replicas through a real redis-server: two apps (two data directories, as two
replicas would be) draw on one count per key; a Redis outage lets requests through and shows in
/health and doctor; a storage URL that ``limits`` cannot use stops the app from being built."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest

from memos_mcp.config import Settings, masked
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import ConfigError
from memos_mcp.http import build_app
from tests.http.support import ADMIN_KEY, Running, auth, running_app
from tests.processes import free_port
from tests.redis_server import redis_server
from tests.test_cli import clean_env


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def replica(stack: ExitStack, data_dir: Path, embedder: LocalOnnxEmbedder, **rest: Any) -> Running:
    settings = Settings(data_dir=data_dir, server={"host": "127.0.0.1", "admin_key": ADMIN_KEY}, rest=rest)
    return stack.enter_context(running_app(settings, embedder))


def search(running: Running, query: str) -> httpx2.Response:
    return httpx2.post(f"{running.url}/product/search", headers=auth(ADMIN_KEY), timeout=60,
                       json={"query": query, "user_id": "root"})


def test_two_replicas_share_one_count_per_key(tmp_path: Path, redis_url: str, embedder: LocalOnnxEmbedder,
                                              clean_environment: None) -> None:
    limits = {"rate_limits": ["5/minute"], "rate_limit_storage": redis_url}
    with ExitStack() as stack:
        first = replica(stack, tmp_path / "a", embedder, **limits)
        second = replica(stack, tmp_path / "b", embedder, **limits)
        answers = [search(first if i % 2 else second, f"query {i}") for i in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
        refused = [search(first, "one more"), search(second, "and another")]
        assert [a.status_code for a in refused] == [429, 429]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
        health = httpx2.get(f"{first.url}/health", timeout=60).json()
        assert health["backends"]["rate_limits"] == "ok"
    # in memory (the default), each process counts alone: the same six requests pass a fresh pair
    with ExitStack() as stack:
        alone = [replica(stack, tmp_path / name, embedder, rate_limits=["5/minute"]) for name in ("c", "d")]
        answers = [search(alone[i % 2], f"query {i}") for i in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert "rate_limits" not in httpx2.get(f"{alone[0].url}/health", timeout=60).json()["backends"]


def test_an_unreachable_redis_lets_requests_through_and_health_says_so(tmp_path: Path, embedder: LocalOnnxEmbedder,
                                                                        clean_environment: None) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with ExitStack() as stack:
        running = replica(stack, tmp_path / "a", embedder, rate_limits=["2/minute"], rate_limit_storage=nowhere)
        answers = [search(running, f"query {i}") for i in range(4)]
        assert [a.status_code for a in answers] == [200] * 4  # not refused, not an error
        health = httpx2.get(f"{running.url}/health", timeout=60)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["backends"]["rate_limits"].startswith("unreachable (requests not limited)")


def test_a_storage_url_limits_cannot_use_is_a_config_error_naming_the_setting(tmp_path: Path,
                                                                            embedder: LocalOnnxEmbedder) -> None:
    settings = Settings(data_dir=tmp_path / "a", rest={"rate_limit_storage": "carrier-pigeon://loft"})
    service = MemoryService.open(settings, embedder=embedder)
    try:
        with pytest.raises(ConfigError) as refused:
            build_app(settings, service, KeyRing(service, None))
        assert "rest.rate_limit_storage" in refused.value.message
        assert "carrier-pigeon" in refused.value.message
    finally:
        service.close()


def test_the_redis_password_never_shows_in_the_effective_configuration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rest={"rate_limit_storage": "redis://:hunter2@cache.internal:6379/0"})
    shown = masked(settings)["rest"]["rate_limit_storage"]
    assert shown == "redis://:***@cache.internal:6379/0"


def test_doctor_checks_the_shared_rate_limit_storage(tmp_path: Path, redis_url: str) -> None:
    doctor = [str(Path(sys.executable).parent / "memos-mcp"), "--data-dir", str(tmp_path / "d"), "doctor"]
    reached = subprocess.run(doctor, env=clean_env(REDIS_URL=redis_url), capture_output=True, text=True,
                             timeout=120, check=False)
    line = next(x for x in reached.stdout.splitlines() if x.split()[1:2] == ["rate_limits"])
    assert line.startswith("ok") and "shared by every replica" in line, reached.stdout
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    failed = subprocess.run(doctor, env=clean_env(REDIS_URL=nowhere), capture_output=True, text=True,
                            timeout=120, check=False)
    line = next(x for x in failed.stdout.splitlines() if x.split()[1:2] == ["rate_limits"])
    assert line.startswith("FAIL") and "backend_unavailable" in line, failed.stdout
    assert failed.returncode == 1
