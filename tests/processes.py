"""Processes the tests start, and stop by their own pid: a free loopback port, ``stop`` (SIGTERM, then
SIGKILL, each bounded), and real ``memos-mcp serve`` subprocesses, one (``Serve``) or several started
at the same moment (``serving``: replicas on one shared database), each ready once ``/health``
answers 200."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

from memos_mcp.config import ALIASES

MEMOS = Path(sys.executable).parent / "memos-mcp"
START_SECONDS = 60.0
STOP_SECONDS = 10.0
PORT_ATTEMPTS = 3  # a port found free may be taken before the server binds it: try another


def free_port(low: int = 1024, high: int = 65535) -> int:
    """A loopback port nothing listens on now, in [low, high]."""
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high}]")


def stop(process: subprocess.Popen[Any], seconds: float = STOP_SECONDS) -> int | None:
    """Ends a process this test started, by its pid: SIGTERM, up to ``seconds`` to exit, then SIGKILL
    and up to ``seconds`` more. Its exit code (negative: the signal), or None if even SIGKILL did not
    end it in time. A process that has already exited is only reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return None
    return process.returncode


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ``MEMOS_*`` or seed-alias variable, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES} | extra


class Serve:
    """``memos-mcp --data-dir DATA_DIR serve --port PORT`` on a free 127.0.0.1 port, with only the
    given environment variables of ours (see ``environment``); its output goes to ``log_path`` (next
    to the data directory). Construction returns once ``GET /health`` answers 200, within
    ``START_SECONDS``; else it stops the process and raises RuntimeError with the log."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.with_name(data_dir.name + ".serve.log")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(PORT_ATTEMPTS):
            self.url = f"http://127.0.0.1:{free_port()}"
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [str(MEMOS), "--data-dir", str(data_dir), "serve", "--port", self.url.rsplit(":", 1)[1]],
                    env=environment(**env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            if self._wait_healthy():
                return
            stop(self.process)
            if "address already in use" not in self.log().lower() or attempt == PORT_ATTEMPTS - 1:
                raise RuntimeError(f"memos-mcp serve on {data_dir} did not become healthy:\n{self.log()}")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + START_SECONDS
        with httpx2.Client(base_url=self.url, timeout=5.0) as http:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if http.get("/health").status_code == 200:
                        return True
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)
        return False

    def log(self) -> str:
        """All the process has written so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL: see ``stop``."""
        return stop(self.process)


@contextmanager
def serving(data_dirs: Sequence[Path], **env: str) -> Iterator[list[Serve]]:
    """One ``Serve`` a data directory, all started at the same moment (threads released together),
    with the same environment; yields them, in order, once every one is healthy, and stops them all
    on exit. If any fails to start, the others are stopped and RuntimeError names every failure."""
    barrier = threading.Barrier(len(data_dirs))
    started: list[Serve | BaseException | None] = [None] * len(data_dirs)

    def start(index: int) -> None:
        try:
            barrier.wait(timeout=START_SECONDS)
            started[index] = Serve(data_dirs[index], **env)
        except BaseException as exc:  # reported below with the others
            started[index] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(data_dirs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=START_SECONDS * PORT_ATTEMPTS + STOP_SECONDS * 2)
    servers = [s for s in started if isinstance(s, Serve)]
    try:
        if len(servers) != len(data_dirs):
            raise RuntimeError(f"not every memos-mcp serve started: {started}")
        yield servers
    finally:
        for server in servers:
            server.stop()
