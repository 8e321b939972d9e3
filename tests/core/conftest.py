"""The service suite runs on both vector backends with the catalog on SQLite, and on edge with the
catalog on a real PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["edge", "qdrant", "edge+postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
