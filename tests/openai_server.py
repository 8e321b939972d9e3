"""An OpenAI-compatible server on 127.0.0.1 for tests. It speaks the real protocol, so the real
``openai`` client talks to it:

- ``POST /v1/chat/completions`` answers with the replies queued in ``replies`` (as one message, or
  as a stream of server-sent chunks, a word at a time, when the request asks ``stream``);
- ``POST /v1/embeddings`` answers with deterministic vectors of ``dimension`` (not unit length, and
  in reversed order, so that clients must normalise and order by ``index``);
- ``GET /v1/models`` lists its model.

Extraction requests (the memory pipeline's, recognised by its instructions) answer from their own
queue, ``extraction_replies``, so that background extraction never takes a reply meant for a chat;
with that queue empty they get an empty answer (which the pipeline refuses, falling back to its
deterministic extractor). A queued reply is a string, or a ``Reply`` that scripts a failure: an HTTP status (429 with
``retry-after``, 500...), a delay before answering (for client timeouts), or a stream that dies
after some chunks. Every request body is recorded in ``requests`` (chat ones also in ``chats``);
``fail_with`` makes every POST fail with that status; ``broken_vectors`` makes ``/v1/embeddings`` answer a
broken model's vectors: "nan" (a NaN in each), "inf", "ragged" (the last one a number short) or "resized" (one
number more than before, in each).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memos_mcp.core.prompts import EXTRACTION_SYSTEM

EXTRACTION_MARK = EXTRACTION_SYSTEM.splitlines()[0]


def fake_vector(text: str, size: int) -> list[float]:
    return [float(byte) + 1.0 for byte in hashlib.sha256(text.encode()).digest()[:size]]


def count_tokens(body: dict[str, Any]) -> int:
    """A stand-in tokenizer: words and punctuation of every message."""
    return sum(len(re.findall(r"\w+|[^\w\s]", str(m.get("content", "")))) for m in body.get("messages", []))


@dataclass
class Reply:
    content: str = ""
    status: int | None = None  # answer this HTTP error instead
    delay: float = 0.0  # seconds to wait before answering
    die_after: int | None = None  # streaming: close the connection after this many chunks
    headers: dict[str, str] = field(default_factory=dict)


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: str = "scripted-model", dimension: int = 12) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model
        self.dimension = dimension
        self.replies: list[str | Reply] = []
        self.extraction_replies: list[str | Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.chats: list[dict[str, Any]] = []  # every chat completion request
        self.chat_requests: list[dict[str, Any]] = []  # those not from the extraction pipeline
        self.fail_with: int | None = None
        self.ignore_dimensions = False
        self.broken_vectors: str | None = None
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)

    def next_reply(self, body: dict[str, Any]) -> Reply:
        extraction = any(EXTRACTION_MARK in str(m.get("content", "")) for m in body.get("messages", []))
        if not extraction:
            self.chat_requests.append(body)
        queue = self.extraction_replies if extraction else self.replies
        item = queue.pop(0) if queue else ""
        return Reply(content=item) if isinstance(item, str) else item

    def chat_completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = count_tokens(body)
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                          "total_tokens": prompt + len(text.split())}}

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        size = body["dimensions"] if "dimensions" in body and not self.ignore_dimensions else self.dimension
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = [fake_vector(text, size + (self.broken_vectors == "resized")) for text in texts]
        if self.broken_vectors in ("nan", "inf"):
            vectors = [[float(self.broken_vectors), *v[1:]] for v in vectors]
        elif self.broken_vectors == "ragged":
            vectors[-1] = vectors[-1][:-1]
        data = [{"object": "embedding", "index": i, "embedding": vector}
                for i, vector in reversed(list(enumerate(vectors)))]
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}}


def stream_chunks(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """The chunks of a streamed completion: the role, a word at a time, the finish, then usage if asked."""
    base = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model", "")}
    words = re.findall(r"\S+\s*", text)
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt = count_tokens(body)
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": len(words),
                                                        "total_tokens": prompt + len(words)}})
    return chunks


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._reply(200, {"object": "list", "data": [{"id": self.server.model, "object": "model",
                                                           "created": 0, "owned_by": "tests"}]})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(body)
        if self.path not in ("/v1/chat/completions", "/v1/embeddings"):
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
        elif self.server.fail_with is not None:
            self._reply(self.server.fail_with, {"error": {"message": "induced failure"}})
        elif self.path == "/v1/embeddings":
            self._reply(200, self.server.embeddings(body))
        else:
            self.server.chats.append(body)
            self._chat(body, self.server.next_reply(body))

    def _chat(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status is not None:
            self._reply(reply.status, {"error": {"message": f"scripted {reply.status}", "type": "scripted"}},
                        reply.headers)
        elif body.get("stream"):
            self._stream(stream_chunks(body, reply.content), reply.die_after)
        else:
            self._reply(200, self.server.chat_completion(body, reply.content))

    def _stream(self, chunks: list[dict[str, Any]], die_after: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        frames = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
        try:
            for sent, frame in enumerate(frames):
                if die_after is not None and sent >= die_after:
                    self.close_connection = True
                    self.wfile.flush()
                    return  # no terminating chunk: the client sees the connection die mid-stream
                self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-stream
            self.close_connection = True

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
