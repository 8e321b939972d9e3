"""The service suite runs on both Qdrant backends with the catalog on SQLite, and with everything on a
real PostgreSQL (pgvector vectors, the catalog beside them: the shared-service configuration)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["edge", "qdrant", "pgvector+postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
