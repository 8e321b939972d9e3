"""An MCP session belongs to the user whose key opened it (the MCP specification's security best
practices: bind session ids to the user). ``ApiKeyAuth`` gives the SDK the request's user
(``scope["user"]``), and the SDK serves a session only to that user: a request of bob's carrying
alice's session id is answered 404, as for a session that does not exist, so he can neither end her
session nor, on the legacy SSE transport, send an answer down her stream to her client. A guard: it
held when it was written."""

from __future__ import annotations

import json
import threading

import httpx2

from tests.http.conftest import Serve
from tests.http.support import INITIALIZE, MCP_HEADERS, TIMEOUT, auth
from tests.http.test_security import with_people

INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}


def test_another_users_key_cannot_use_or_end_a_streamable_session(serve: Serve) -> None:
    app, keys = with_people(serve)
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        opened = http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(keys["alice"])})
        sid = opened.headers["mcp-session-id"]
        hers = {**MCP_HEADERS, **auth(keys["alice"]), "mcp-session-id": sid}
        his = {**MCP_HEADERS, **auth(keys["bob"]), "mcp-session-id": sid}
        assert http.post("/mcp", json=INITIALIZED, headers=hers).status_code == 202
        assert http.post("/mcp", json=LIST_TOOLS, headers=his).status_code == 404
        assert http.delete("/mcp", headers=his).status_code == 404
        assert http.get("/mcp", headers=his).status_code == 404
        answer = http.post("/mcp", json=LIST_TOOLS, headers=hers)  # her session is still hers, still open
        assert answer.status_code == 200 and "search_memory" in answer.text
        assert http.delete("/mcp", headers=hers).status_code in (200, 204)


def test_another_users_key_cannot_post_into_a_legacy_sse_session(serve: Serve) -> None:
    app, keys = with_people(serve)
    endpoint: list[str] = []
    seen: list[str] = []
    ready, done = threading.Event(), threading.Event()

    def listen() -> None:  # alice's stream: the endpoint event, then whatever is sent to her session
        with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http, \
                http.stream("GET", "/sse", headers={"Accept": "text/event-stream", **auth(keys["alice"])}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and not endpoint:
                    endpoint.append(line.removeprefix("data: "))
                    ready.set()
                elif line.startswith("data: "):
                    seen.append(line)
                if done.is_set() or len(seen) > 10:
                    break

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        assert ready.wait(TIMEOUT), "no endpoint event"
        path = endpoint[0]
        with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
            refused = http.post(f"/sse{path}" if not path.startswith("/sse") else path,
                                json=INITIALIZE, headers=auth(keys["bob"]))
            assert refused.status_code == 404, refused.text
            accepted = http.post(f"/sse{path}" if not path.startswith("/sse") else path,
                                 json=INITIALIZE, headers=auth(keys["alice"]))
            assert accepted.status_code == 202, accepted.text
    finally:
        done.set()
    listener.join(TIMEOUT)
    assert all(json.loads(s.removeprefix("data: ")).get("id") == INITIALIZE["id"] for s in seen), seen
