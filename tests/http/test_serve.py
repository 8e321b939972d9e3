"""The HTTP app under uvicorn, driven by the SDK's streamable HTTP and SSE clients and by raw HTTP."""

from __future__ import annotations

import anyio
import httpx2

from tests.http.conftest import Serve
from tests.http.support import INITIALIZE, MCP_HEADERS, TIMEOUT, add_then_find, call, legacy_sse, rpc_result, streamable


def test_the_streamable_http_client_lists_adds_and_searches(serve: Serve) -> None:
    app = serve()

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url) as session:
                await add_then_find(session, "The zeppelin hangar opens at dawn.", "when does the hangar open")

    anyio.run(scenario)


def test_the_legacy_sse_client_lists_adds_and_searches(serve: Serve) -> None:
    app = serve()

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with legacy_sse(app.url) as session:
                await add_then_find(session, "The sourdough starter needs feeding twice a day.",
                                    "how often to feed the starter")

    anyio.run(scenario)


def test_without_any_key_on_loopback_requests_act_as_the_default_user(serve: Serve) -> None:
    app = serve()

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url) as session:
                info = await call(session, "get_user_info")
                assert info["user"]["user_id"] == "default"

    anyio.run(scenario)


def test_mcp_answers_at_the_bare_path_without_a_redirect(serve: Serve) -> None:
    app = serve()
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT, follow_redirects=False) as http:
        answer = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert rpc_result(answer)["serverInfo"]["name"] == "memos-mcp"
        assert answer.headers.get("mcp-session-id")


def test_health_reports_each_backend(serve: Serve) -> None:
    app = serve()
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        app.service.ready()  # loaded already (the shared test model): the report is final
        answer = http.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["backends"] == {"catalog": "ok", "embedder": "loaded", "vectors": "open",
                                         "llm": "not configured"}


def test_the_api_mount_is_reserved_for_the_rest_mirror(serve: Serve) -> None:
    app = serve()
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        assert http.get("/api/anything").status_code == 404


def test_stateless_mode_serves_independent_sessions_and_bare_requests(serve: Serve) -> None:
    app = serve(stateless_http=True)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url) as first:
                added = await call(first, "add_memory", memory_content="The balcony tomatoes ripen in August.")
            async with streamable(app.url) as second:  # a new client and connection: nothing shared
                found = await call(second, "search_memory", query="when are the tomatoes ripe")
                assert found["memories"][0]["id"] == added["memories"][0]["id"]

    anyio.run(scenario)
    # Behind a load balancer any request may land on any server: one with no session at all works.
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        opened = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert "mcp-session-id" not in opened.headers
        listed = http.post("/mcp", headers={**MCP_HEADERS, "MCP-Protocol-Version": "2025-06-18"},
                           json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                 "params": {"name": "list_cubes", "arguments": {}}})
        cubes = rpc_result(listed)["structuredContent"]["cubes"]
        assert [c["cube_id"] for c in cubes] == ["default_default_cube"]


def test_json_responses_serve_the_sdk_client_and_raw_posts(serve: Serve) -> None:
    app = serve(json_response=True)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url) as session:
                await add_then_find(session, "The ferry to the island leaves at noon.", "when does the ferry leave")

    anyio.run(scenario)
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as http:
        answer = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert answer.headers["content-type"] == "application/json"
        assert rpc_result(answer)["serverInfo"]["name"] == "memos-mcp"


def test_the_read_only_setting_hides_writing_tools_over_http(serve: Serve) -> None:
    app = serve(read_only=True)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url) as session:
                tools = {t.name for t in (await session.list_tools()).tools}
                assert "search_memory" in tools
                assert not tools & {"add_memory", "delete_memory", "create_api_key"}

    anyio.run(scenario)
