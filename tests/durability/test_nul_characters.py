"""Text holding a NUL character (U+0000), which PostgreSQL's text and jsonb cannot keep, sent to a real
server on the shared configuration (catalog and pgvector on PostgreSQL) through the REST dialects: a
400 naming the field, never a 507 ``storage_error`` carrying the SQL statement, and nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.durability.support import BASE_ENV
from tests.postgres import rows
from tests.processes import serving

pytestmark = pytest.mark.usefixtures("clean_environment")

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/memories", {"content": "The gate code is 12\x0034."}, "content"),
    ("/v1/memories", {"messages": [{"role": "user", "content": "The gate code is 12\x0034."}]}, "messages"),
    ("/v1/memories", {"content": "The gate code is 1234.", "metadata": {"note": "left\x00right"}}, "metadata.note"),
    ("/v1/memories", {"content": "The gate code is 1234.", "metadata": {"deep": {"list": ["a\x00"]}}},
     "metadata.deep"),
    ("/product/add", {"user_id": "default", "messages": [{"role": "user", "content": "The gate code is 12\x0034."}]},
     "messages"),
    ("/product/search", {"user_id": "default", "query": "gate\x00code"}, "query"),
    ("/v1/memories", {"content": "The gate code is 1234.", "metadata": {"path": "C:\\u0000dir"}}, ""),
]


def test_text_with_a_nul_character_is_refused_naming_the_field_and_stores_nothing(
        tmp_path: Path, postgres_url: str) -> None:
    env = BASE_ENV | {"DATABASE_URL": postgres_url, "MEMOS_VECTOR__BACKEND": "pgvector",
                      "MEMOS_GRAPH__ENABLED": "false"}
    with serving([tmp_path / "one"], **env) as (server,), httpx2.Client(base_url=server.url, timeout=60.0) as http:
        before = rows(postgres_url, "SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM messages)")
        for path, body, field in CASES:
            answer = http.post(path, json=body)
            if not field:  # a backslash and "u0000" as text is no NUL: stored
                assert answer.status_code == 201, answer.text
                continue
            assert answer.status_code == 400, (path, body, answer.status_code, answer.text)
            assert field in answer.text and "[SQL:" not in answer.text, (path, answer.text)
        after = rows(postgres_url, "SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM messages)")
        assert after[0][0] == before[0][0] + 1 and after[0][1] == before[0][1], (before, after)  # the one stored
