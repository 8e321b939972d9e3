"""Fixtures of the REST dialect tests: the real app under uvicorn on a loopback port (the HTTP tests'
helper), with rate limiting off, and optionally an admin key, two users' keys and a language model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from memos_mcp.config import Settings
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import ROOT_USER
from tests.http.support import ADMIN_KEY, TIMEOUT, Running, auth, running_app
from tests.openai_server import OpenAIServer

RestServe = Callable[..., Running]


@pytest.fixture
def rest_serve(tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> Iterator[RestServe]:
    """Starts the app (each call its own data directory): ``admin_key=True`` turns authentication on
    with ``ADMIN_KEY``; ``llm`` is the language model block; ``server_options`` more server settings;
    other keywords are Settings fields."""
    with ExitStack() as stack:
        count = 0

        def start(admin_key: bool = False, llm: dict[str, Any] | None = None,
                  server_options: dict[str, Any] | None = None, **fields: Any) -> Running:
            nonlocal count
            count += 1
            server: dict[str, Any] = {"host": "127.0.0.1", **({"admin_key": ADMIN_KEY} if admin_key else {}),
                                      **(server_options or {})}
            settings = Settings(data_dir=tmp_path / f"data{count}", server=server, llm=llm or {},
                                rest={"rate_limits": []}, **fields)
            return stack.enter_context(running_app(settings, embedder))

        yield start


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers with the queued ``replies``."""
    server = OpenAIServer()
    yield server
    server.stop()


def llm_of(model: OpenAIServer) -> dict[str, Any]:
    return {"base_url": model.url, "model": model.model, "api_key": "test"}


@dataclass
class Users:
    """An app with authentication on: clients for root (the admin key) and two plain users."""

    app: Running
    root: httpx2.Client
    alice: httpx2.Client
    bob: httpx2.Client


def client(app: Running, key: str | None = None, scheme: str = "Bearer") -> httpx2.Client:
    return httpx2.Client(base_url=app.url, headers=auth(key, scheme), timeout=TIMEOUT)


@pytest.fixture
def users(rest_serve: RestServe) -> Iterator[Users]:
    app = rest_serve(admin_key=True)
    alice = app.keys.create(ROOT_USER, "alice").key
    bob = app.keys.create(ROOT_USER, "bob").key
    with client(app, ADMIN_KEY) as root, client(app, alice, "Token") as a, client(app, bob, "Bearer") as b:
        yield Users(app, root, a, b)


def ok(response: httpx2.Response, message: str | None = None) -> Any:
    """The ``data`` of a ``{code, message, data}`` success."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 200, body
    if message is not None:
        assert body["message"] == message
    return body["data"]


def failed(response: httpx2.Response, status: int, *words: str) -> str:
    """The message of a ``{code, message, data: null}`` error with this status, naming ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["data"] is None, body
    assert set(body) == {"code", "message", "data"}
    for word in words:
        assert word in body["message"], body["message"]
    message: str = body["message"]
    return message


@dataclass
class Memio:
    app: Running
    root: httpx2.Client
    alice: httpx2.Client
    bob: httpx2.Client


@pytest.fixture
def memio(rest_serve: RestServe) -> Iterator[Memio]:
    """Authentication on: the admin key, and Bearer keys for alice and bob (plain users)."""
    app = rest_serve(admin_key=True)
    alice = app.keys.create(ROOT_USER, "alice").key
    bob = app.keys.create(ROOT_USER, "bob").key
    with client(app, ADMIN_KEY) as root, client(app, alice) as a, client(app, bob) as b:
        yield Memio(app, root, a, b)
