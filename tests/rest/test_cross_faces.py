"""One core behind every face: what one REST dialect adds, the other dialects and the MCP tools find,
and what an MCP tool adds, the REST dialects find — for the same user, on one running server."""

from __future__ import annotations

from typing import Any

import anyio

from memos_mcp.core.service import ROOT_USER
from tests.http.support import call, streamable
from tests.rest.conftest import RestServe, client


def test_rest_and_mcp_see_the_same_memories(rest_serve: RestServe) -> None:
    app = rest_serve(admin_key=True)
    key = app.keys.create(ROOT_USER, "alice").key

    with client(app, key, "Token") as rest:
        added = rest.post("/product/add", json={"user_id": "alice", "memory_content": "The cabin key hides under "
                                                "the third stone."})
        assert added.status_code == 200, added.text

    async def through_mcp() -> dict[str, Any]:
        with anyio.fail_after(60):
            async with streamable(app.url, key) as session:
                found = await call(session, "search_memory", query="where is the cabin key")
                await call(session, "add_memory", memory_content="The boat battery charges on Sundays.")
                return found

    found = anyio.run(through_mcp)
    assert "third stone" in found["memories"][0]["memory"]

    with client(app, key, "Bearer") as rest:
        mem0 = rest.get("/v1/memories/search", params={"query": "boat battery", "user_id": "alice"}).json()
        assert "Sundays" in mem0["data"][0]["content"]
        cloud = rest.post("/api/openmem/v1/search/memory", json={"query": "cabin key", "user_id": "alice"}).json()
        assert "third stone" in cloud["data"]["memory_detail_list"][0]["memory_value"]
        memio = rest.post("/v1/facts/search", json={"query": "boat battery"}).json()
        assert "Sundays" in memio[0]["content"]
