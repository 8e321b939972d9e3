"""What every REST dialect shares, over real HTTP on loopback: rate limits per key, the body limit,
the OpenAPI document and its offline docs page, /v1/metrics, CORS.

A tiny dialect declared here through the public ``Dialect`` API keeps these tests independent of the
real dialects; the OpenAPI test also runs over every real one."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.errors import MemosError
from memos_mcp.rest import dialects
from memos_mcp.rest.base import Call, Dialect
from tests.http.support import ADMIN_KEY, Running, auth, running_app

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class Envelope:
    def ok(self, data: Any, message: str, status: int) -> Response:
        return JSONResponse({"ok": True, "data": data}, status_code=status)

    def error(self, exc: MemosError) -> Response:
        return JSONResponse({"ok": False, "code": exc.code, "message": exc.message}, status_code=exc.status)


ECHO = Dialect("Echo", "/echo", Envelope())


class Note(BaseModel):
    text: str = Field(description="anything")


class Page(BaseModel):
    size: int = Field(10, ge=1, le=50)


@ECHO.op("POST", "/notes", "Echo a note", body=Note, response=Note, status=201)
async def echo(call: Call[Note]) -> Note:
    return call.body


@ECHO.op("GET", "/notes/{note_id}", "A note by id", query=Page, response=Note)
async def one(call: Call[Page]) -> Note:
    return Note(text=f"{call.path['note_id']} x{call.body.size}")


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> Iterator[Start]:
    """Starts the app with the echo dialect (and the real ones) and the given ``rest`` settings."""
    with ExitStack() as stack:
        count = 0

        def run(admin: bool = True, **rest: Any) -> Running:
            nonlocal count
            count += 1
            server = {"host": "127.0.0.1", **({"admin_key": ADMIN_KEY} if admin else {})}
            settings = Settings(data_dir=tmp_path / f"data{count}", server=server, rest=rest)
            return stack.enter_context(running_app(settings, embedder, [*dialects(), ECHO]))

        yield run


def client(running: Running, key: str | None = ADMIN_KEY, **headers: str) -> httpx2.Client:
    return httpx2.Client(base_url=running.url, headers={**auth(key), **headers}, timeout=60)


def test_the_request_beyond_the_burst_is_refused_in_the_dialects_envelope(start: Start) -> None:
    running = start(rate_limits=["100/minute", "20/10 seconds"])
    with client(running) as http:
        answers = [http.post("/echo/notes", json={"text": "hi"}) for _ in range(21)]
    assert [a.status_code for a in answers[:20]] == [201] * 20
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["19", "18", "17"]
    refused = answers[20]
    assert refused.status_code == 429
    assert refused.json() == {"ok": False, "code": "rate_limit_exceeded", "message": refused.json()["message"]}
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.headers["X-RateLimit-Limit"] == "20"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert time.time() < int(refused.headers["X-RateLimit-Reset"]) <= time.time() + 11


def test_every_dialect_answer_carries_the_rate_headers_and_keys_have_their_own_buckets(start: Start) -> None:
    running = start(rate_limits=["3/minute"])
    user_key = running.keys.create("root", "alice").key
    with client(running) as admin, client(running, user_key) as alice:
        assert [admin.get("/echo/notes/n1").status_code for _ in range(3)] == [200] * 3
        invalid = admin.get("/echo/notes/n1", params={"size": 0})  # an error answer: refused, headers still there
        assert invalid.status_code == 429 and invalid.headers["Retry-After"]
        theirs = alice.get("/echo/notes/n1", params={"size": 0})
        assert theirs.status_code == 400 and theirs.json()["code"] == "invalid_request"
        assert {h: theirs.headers[h] for h in RATE_HEADERS}.keys() == set(RATE_HEADERS)
        assert theirs.headers["X-RateLimit-Remaining"] == "2"
        assert all(admin.get("/health").status_code == 200 for _ in range(5))  # not rate-limited
        assert "X-RateLimit-Limit" not in admin.get("/health").headers


def test_a_body_beyond_the_limit_is_refused_with_413_in_the_envelope(start: Start) -> None:
    running = start(max_body_bytes=1024)
    with client(running) as http:
        declared = http.post("/echo/notes", json={"text": "x" * 2000})
        assert declared.status_code == 413
        assert declared.json()["code"] == "payload_too_large"
        assert declared.headers["X-RateLimit-Limit"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts while it reads
            yield b'{"text": "'
            yield b"x" * 4096
            yield b'"}'

        streamed = http.post("/echo/notes", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"
        assert http.post("/echo/notes", json={"text": "x" * 900}).status_code == 201


def test_the_openapi_document_is_valid_3_1_and_describes_every_dialect(start: Start) -> None:
    running = start()
    with client(running, key=None) as http:  # no key needed
        answer = http.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    tags = {tag["name"] for tag in document["tags"]}
    assert {"Echo", "admin", "server"} | {d.name for d in dialects()} <= tags
    got = document["paths"]["/echo/notes/{note_id}"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in got["parameters"]] == [
        ("note_id", "path", True), ("size", "query", False)]
    ok = got["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["properties"]["data"] == {"$ref": "#/components/schemas/Note"}
    assert ok["properties"]["ok"] == {"type": "boolean"}
    post = document["paths"]["/echo/notes"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Note"}
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "token"}
    assert document["paths"]["/health"]["get"]["security"] == []
    for dialect in dialects():
        for op in dialect.operations:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", dialect.prefix + op.path)
            assert op.method.lower() in document["paths"][path]


def test_the_docs_page_uses_only_local_assets_which_are_served(start: Start) -> None:
    running = start()
    with client(running, key=None) as http:
        page = http.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and not [a for a in assets if "//" in a]
        for asset in assets:
            served = http.get(f"/{asset}")
            assert served.status_code == 200, asset
        assert "SwaggerUIBundle" in http.get("/docs/static/swagger-ui-bundle.js").text


def test_metrics_count_requests_per_route_template_for_admins_only(start: Start) -> None:
    running = start()
    user_key = running.keys.create("root", "bob").key
    with client(running) as admin, client(running, user_key) as bob:
        for note in ("a", "b", "c"):
            assert admin.get(f"/echo/notes/{note}").status_code == 200
        assert bob.get("/v1/metrics").status_code == 403
        found = admin.get("/v1/metrics")
        assert found.status_code == 200 and found.headers["content-type"].startswith("application/json")
        routes = {(r["method"], r["route"]): r for r in found.json()["routes"]}
        notes = routes[("GET", "/echo/notes/{note_id}")]
        assert notes["count"] == 3 and notes["statuses"] == {"200": 3}
        assert 0 < notes["latency_ms"]["p50"] <= notes["latency_ms"]["p95"] <= notes["latency_ms"]["p99"]
        assert found.json()["stores"]["catalog"]["users"] >= 2
        assert "points" in found.json()["stores"]["vectors"]
        text = admin.get("/v1/metrics", headers={"Accept": "text/plain"})
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
        assert 'memos_http_requests_total{method="GET",route="/echo/notes/{note_id}",status="200"} 3.0' in text.text
        assert 'memos_http_request_duration_seconds_count{method="GET",route="/echo/notes/{note_id}"} 3.0' in text.text
        assert re.search(r'memos_http_request_duration_seconds_bucket\{le="\+Inf",method="GET",'
                         r'route="/echo/notes/\{note_id\}"\} 3.0', text.text)
        assert re.search(r"^memos_vector_points [0-9.]+$", text.text, re.M)
        assert re.search(r'^memos_catalog_rows\{table="users"\} [2-9]', text.text, re.M)
        assert re.search(r"^process_resident_memory_bytes [0-9.e+]+$", text.text, re.M)  # per replica
        assert bob.get("/v1/metrics", headers={"Accept": "text/plain"}).status_code == 403
        open_metrics = admin.get("/v1/metrics", headers={"Accept": "application/openmetrics-text"})
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.rstrip().endswith("# EOF")


def test_cors_headers_only_when_origins_are_configured(start: Start) -> None:
    origin = "https://app.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    plain = start()
    with client(plain, Origin=origin) as http:
        assert "access-control-allow-origin" not in http.get("/health").headers
    configured = start(cors_origins=[origin])
    with client(configured, key=None) as http:
        answer = http.options("/echo/notes", headers=preflight)  # before authentication: no key
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == origin
    with client(configured, Origin=origin) as http:
        answer = http.post("/echo/notes", json={"text": "hi"})
        assert answer.status_code == 201
        assert answer.headers["access-control-allow-origin"] == origin
        assert "X-RateLimit-Remaining" in answer.headers["access-control-expose-headers"]
        other = http.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_no_write_is_redirected_to_another_route_by_a_trailing_slash_or_an_empty_id(start: Start) -> None:
    """A DELETE of ``/api/memories/{cube}/`` (an empty memory id: a client's bug, or ``.`` that the
    client normalised away) was answered 307 to ``/api/memories/{cube}``, which deletes the whole cube,
    and clients follow a 307 keeping the method. Every write route of every dialect is tried."""
    running = start()
    with client(running) as http:
        assert http.post("/api/mem_cubes", json={"name": "slashes", "mem_cube_id": "slashes"}).status_code in (200, 201)
        made = http.post("/api/memories", json={"mem_cube_id": "slashes", "memory_content": "Keep me: the spare "
                                                "key is under the blue pot."})
        assert made.status_code in (200, 201), made.text
        tried = 0
        for dialect in [*dialects(), ECHO]:
            for operation in dialect.operations:
                if operation.method == "GET":
                    continue
                path = re.sub(r"\{[^}]+\}", "slashes", dialect.prefix + operation.path)
                for variant in (path + "/", path.rsplit("/", 1)[0] + "/" if "{" in operation.path else path + "/"):
                    answer = http.request(operation.method, variant, json={})
                    assert not answer.is_redirect, (operation.method, variant, answer.headers.get("location"))
                    tried += 1
        listed = http.get("/api/memories", params={"mem_cube_id": "slashes"})
        ui = http.get("/ui")  # the one path that leads elsewhere: the web UI's bare prefix, read only
        assert ui.status_code == 307 and ui.headers["location"] == "/ui/"
        for path in ("/ui/cubes/slashes/delete/", "/ui/cubes/", "/ui/signout/"):  # the UI's own writes too
            assert not http.post(path, data={}).is_redirect, path
    assert tried > 40
    assert "blue pot" in listed.text, listed.text
