"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests: it answers
``POST /v1/chat/completions`` with the replies queued on it, records every request, and lists its
model at ``GET /v1/models``. It speaks the real protocol, so the real ``openai`` client talks to it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: str = "scripted-model") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedChatServer

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._reply(200, {"object": "list", "data": [{"id": self.server.model, "object": "model",
                                                           "created": 0, "owned_by": "tests"}]})
        else:
            self._reply(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(body)
        if not self.path.endswith("/chat/completions"):
            self._reply(404, {"error": {"message": "not found"}})
            return
        text = self.server.replies.pop(0) if self.server.replies else ""
        self._reply(200, {
            "id": f"chatcmpl-{len(self.server.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.server.model),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
