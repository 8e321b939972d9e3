"""Replicas for tests and benchmarks: ``memos-mcp serve --stateless`` subprocesses, each on its own data
directory and a fixed loopback port (a restarted replica answers at the same address, as behind a load
balancer), started and waited for through ``/health``, killed with SIGKILL or stopped with SIGTERM,
always by the pid this object started. ``tests.processes`` gives the port, the environment and the
stop; its ``Serve`` takes a new port at every start, where a replica restarted behind a load balancer
keeps its address."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx2

from tests.processes import MEMOS, environment, free_port, stop

START_SECONDS = 90.0  # a start on a busy 2-core machine loads the embedder and migrates the catalog


class Replica:
    """One ``memos-mcp serve --stateless`` on ``data_dir`` at 127.0.0.1:``port`` (a free one if not
    given); its stderr goes to ``data_dir``/serve.log. ``start`` waits until ``/health`` answers 200."""

    def __init__(self, data_dir: Path, env: Mapping[str, str], port: int | None = None) -> None:
        self.data_dir = data_dir
        self.env = environment(**env)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Replica:
        """Start the process and wait (bounded) for its health; raises with its log if it does not come up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with (self.data_dir / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(MEMOS), "--data-dir", str(self.data_dir), "serve", "--stateless", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log)
        deadline = time.monotonic() + START_SECONDS
        with httpx2.Client(timeout=2.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"replica on port {self.port} exited {self.process.returncode}:\n{self.log()}")
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return self
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"replica on port {self.port} not healthy after {START_SECONDS} s:\n"
                                       f"{self.log()}")
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL (``tests.processes.stop``)."""
        if self.process is not None:
            stop(self.process)

    def log(self) -> str:
        path = self.data_dir / "serve.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""
