"""Fixtures of the HTTP tests: the real app under uvicorn on a loopback port, over real stores in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.core.embedder import LocalOnnxEmbedder
from tests.http.support import Running, running_app, settings_for

Serve = Callable[..., Running]


@pytest.fixture
def serve(tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> Iterator[Serve]:
    """Starts the app with the given server settings (each call its own data directory); every app
    is stopped at the end of the test, and its lifespan closes its service."""
    with ExitStack() as stack:
        count = 0

        def start(read_only: bool = False, **server: Any) -> Running:
            nonlocal count
            count += 1
            app: AbstractContextManager[Running] = running_app(
                settings_for(tmp_path / f"data{count}", read_only, **server), embedder)
            return stack.enter_context(app)

        yield start
