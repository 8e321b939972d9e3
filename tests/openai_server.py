"""An OpenAI-compatible server on 127.0.0.1 for tests. It speaks the real protocol, so the real
``openai`` client talks to it:

- ``POST /v1/chat/completions`` answers with the replies queued in ``replies``;
- ``POST /v1/embeddings`` answers with deterministic vectors of ``dimension`` (not unit length, and
  in reversed order, so that clients must normalise and order by ``index``);
- ``GET /v1/models`` lists its model.

Every request body is recorded in ``requests``; ``fail_with`` makes every POST fail with that status.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def fake_vector(text: str, size: int) -> list[float]:
    return [float(byte) + 1.0 for byte in hashlib.sha256(text.encode()).digest()[:size]]


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: str = "scripted-model", dimension: int = 12) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model
        self.dimension = dimension
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.ignore_dimensions = False
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self.replies.pop(0) if self.replies else ""
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        size = body["dimensions"] if "dimensions" in body and not self.ignore_dimensions else self.dimension
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(text, size)}
                for i, text in reversed(list(enumerate(texts)))]
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}}


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._reply(200, {"object": "list", "data": [{"id": self.server.model, "object": "model",
                                                           "created": 0, "owned_by": "tests"}]})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(body)
        routes = {"/v1/chat/completions": self.server.chat_completion, "/v1/embeddings": self.server.embeddings}
        if self.path not in routes:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
        elif self.server.fail_with is not None:
            self._reply(self.server.fail_with, {"error": {"message": "induced failure"}})
        else:
            self._reply(200, routes[self.path](body))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
