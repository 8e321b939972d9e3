"""The package as a user gets it: the wheel built from this checkout, installed with plain ``pip install``
(no editable install, no extra pip step) into a fresh virtual environment, used only through its public
faces: ``memos-mcp stdio`` under the MCP SDK's client, ``memos-mcp serve`` answering ``/health``,
``memos-mcp setup`` writing a client's file, and ``bench`` without its extra.

Nothing from this checkout is importable in those processes (no PYTHONPATH, a working directory outside
it), so a runtime file missing from the wheel or a dependency not declared fails here. pip uses the
machine's configured package index. The figures (install time, installed size, cold start to the
``initialize`` answer) are printed; run with ``-s`` to see them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from memos_mcp import __version__
from memos_mcp.config import ALIASES

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 600.0
TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Installed:
    venv: Path
    command: Path
    work: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user's shell would give: nothing of the checkout, no MEMOS_* settings."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MEMOS_", "PYTHON", "VIRTUAL_ENV")) and k not in ALIASES}
        return env | extra

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.command), *args], cwd=self.work, env=self.env(**env),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    work = base / "work"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}

    def step(*command: str | Path) -> None:
        done = subprocess.run([str(c) for c in command], cwd=work, env=clean, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, check=False)
        assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"

    step(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", base / "dist", ROOT)
    wheels = list((base / "dist").glob("memos_mcp-*.whl"))
    assert [w.name for w in wheels] == [f"memos_mcp-{__version__}-py3-none-any.whl"]
    venv = base / "venv"
    started = time.perf_counter()
    step(sys.executable, "-m", "venv", venv)
    step(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheels[0])
    seconds = time.perf_counter() - started
    print(f"\nwheel: fresh venv + pip install took {seconds:.1f} s; venv holds {_du(venv) / 2**20:.0f} MiB")
    yield Installed(venv, venv / "bin" / "memos-mcp", work)


def test_the_installed_package_is_the_wheel_with_consistent_declared_dependencies(installed: Installed) -> None:
    python = str(installed.venv / "bin" / "python")
    where = subprocess.run([python, "-c", "import memos_mcp, sys; print(memos_mcp.__file__)"], cwd=installed.work,
                           env=installed.env(), capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)
    check = subprocess.run([python, "-m", "pip", "check"], cwd=installed.work, env=installed.env(),
                           capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert check.returncode == 0, check.stdout
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], cwd=installed.work,
                            env=installed.env(), capture_output=True, text=True, timeout=TIMEOUT, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "torch" not in names and "sentence-transformers" not in names
    assert installed.run("--version").stdout.strip() == f"memos-mcp {__version__}"


def test_stdio_from_the_wheel_adds_and_finds_a_memory_through_the_sdk_client(installed: Installed) -> None:
    data_dir = installed.work / "stdio-data"
    params = StdioServerParameters(command=str(installed.command), args=["stdio", "--data-dir", str(data_dir)],
                                   env=installed.env(), cwd=installed.work)

    async def scenario() -> float:
        with anyio.fail_after(TIMEOUT):
            started = time.perf_counter()
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                cold_start = time.perf_counter() - started
                added = await session.call_tool("add_memory", {"memory_content": "The boat is moored at pier "
                                                                                 "seven in Kiel harbour."})
                assert not added.is_error, added.content
                found = await session.call_tool("search_memory", {"query": "where is the boat kept"})
                assert not found.is_error, found.content
                assert found.structured_content is not None
                assert "pier seven" in found.structured_content["memories"][0]["memory"]
                return cold_start

    cold_start = anyio.run(scenario)
    print(f"\nwheel: stdio initialize answered {cold_start:.2f} s after spawning")
    assert data_dir.is_dir()  # --data-dir after the command was taken


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_from_the_wheel_answers_health(installed: Installed) -> None:
    data_dir = installed.work / "serve-data"
    port = _free_port()
    process = subprocess.Popen([str(installed.command), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                               cwd=installed.work, env=installed.env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        answer: dict[str, object] = {}
        # A bounded poll: not listening yet, then "starting" while the model loads, then "ok".
        while answer.get("status") != "ok" and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    answer = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                pass
            if answer.get("status") != "ok":
                time.sleep(0.2)
        assert answer.get("status") == "ok", f"last /health answer {answer}; exit {process.poll()}"
        assert isinstance(answer["backends"], dict) and answer["backends"]["catalog"] == "ok"
        # The Swagger UI's files come with a declared dependency, not from a CDN.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=10) as response:
            assert "docs/static/swagger-ui.css" in response.read().decode()
        bundle = f"http://127.0.0.1:{port}/docs/static/swagger-ui-bundle.js"
        with urllib.request.urlopen(bundle, timeout=10) as response:
            assert len(response.read()) > 100_000
        # The web UI: its templates render (a loopback server without keys needs no sign-in) and its
        # vendored scripts and their licences come inside the wheel.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/memories", timeout=10) as response:
            assert 'id="signed-in-as"' in response.read().decode()
        for asset, least in (("vendor/htmx.min.js", 40_000), ("vendor/cytoscape.min.js", 300_000),
                             ("vendor/htmx.LICENSE", 100), ("vendor/cytoscape.LICENSE", 100), ("ui.css", 1000)):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/static/{asset}", timeout=10) as response:
                assert len(response.read()) > least, asset
        assert data_dir.is_dir()
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=TIMEOUT)
    assert "Traceback" not in stderr, stderr


def test_setup_from_the_wheel_writes_beside_another_server(installed: Installed) -> None:
    target = installed.work / "claude_desktop_config.json"
    other = {"command": "other-server", "args": ["--flag"]}
    target.write_text(json.dumps({"mcpServers": {"other": other}}), encoding="utf-8")
    result = installed.run("setup", "claude-desktop", "--write", "--file", str(target),
                           "--data-dir", str(installed.work / "client-data"))
    assert result.returncode == 0, result.stderr
    servers = json.loads(target.read_text(encoding="utf-8"))["mcpServers"]
    assert servers["other"] == other
    assert servers["memos"] == {"command": str(installed.command), "args": ["stdio"],
                                "env": {"MEMOS_DATA_DIR": str(installed.work / "client-data"),
                                        "MEMOS_USER_ID": "default"}}


def test_bench_without_its_extra_names_the_install_command_in_one_line(installed: Installed) -> None:
    data = installed.work / "locomo.json"
    data.write_text("[]", encoding="utf-8")
    result = installed.run("bench", "locomo", "--data", str(data), "--data-dir", str(installed.work / "bench"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'memos-mcp[bench]'" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_damaged_tokenizer_in_the_installation_is_named_with_the_reinstall_command(installed: Installed) -> None:
    tokenizer = next(installed.venv.glob("lib/python*/site-packages/memos_mcp/assets/all-MiniLM-L6-v2/tokenizer.json"))
    original = tokenizer.read_bytes()
    tokenizer.write_bytes(original[:-10])
    try:
        result = installed.run("doctor", "--data-dir", str(installed.work / "doctor-data"))
    finally:
        tokenizer.write_bytes(original)
    assert result.returncode == 1
    embedder_line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL") and "embedder" in line)
    assert "damaged" in embedder_line and "pip install --force-reinstall memos-mcp" in embedder_line
