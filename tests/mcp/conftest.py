"""Fixtures for the MCP face: users on a real service (both vector backends, from tests/conftest.py)."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import MemoryService


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def people(service: MemoryService) -> MemoryService:
    """The service with two ordinary users, alice and bob (each with a default cube)."""
    service.ensure_user("alice")
    service.ensure_user("bob")
    return service
