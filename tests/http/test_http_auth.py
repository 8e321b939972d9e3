"""API keys, the admin key routes, Host/Origin validation and the refusal to expose an open server."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from memos_mcp.auth import check_exposure, transport_security
from memos_mcp.config import ServerSettings
from memos_mcp.core.service import ROOT_USER
from memos_mcp.errors import ConfigError
from tests.http.conftest import Serve
from tests.http.support import (
    ADMIN_KEY,
    INITIALIZE,
    MCP_HEADERS,
    TIMEOUT,
    Running,
    add_then_find,
    auth,
    call,
    legacy_sse,
    rpc_result,
    streamable,
    text_of,
)


def with_keys(serve: Serve, **server: object) -> tuple[Running, str, str]:
    """An app with the admin key set and one key each for alice and bob (plain users)."""
    app = serve(admin_key=ADMIN_KEY, **server)
    alice = app.keys.create(ROOT_USER, "alice").key
    bob = app.keys.create(ROOT_USER, "bob").key
    return app, alice, bob


def client(app: Running, key: str | None = None, scheme: str = "Bearer") -> httpx2.Client:
    return httpx2.Client(base_url=app.url, headers=auth(key, scheme), timeout=TIMEOUT)


# --- authentication ----------------------------------------------------------------------------

def test_a_request_without_a_key_or_with_an_unknown_key_gets_401(serve: Serve) -> None:
    app, _, _ = with_keys(serve)
    for key in (None, "mk_not-a-key"):
        with client(app, key) as http:
            for answer in (http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS), http.get("/sse"),
                           http.get("/admin/keys")):
                assert answer.status_code == 401
                assert answer.headers["www-authenticate"].startswith("Bearer")
                assert answer.json()["error"]["code"] == "unauthorized"


def test_bearer_and_token_schemes_both_authenticate(serve: Serve) -> None:
    app, alice, _ = with_keys(serve)
    for scheme in ("Bearer", "Token", "bearer"):
        with client(app, alice, scheme) as http:
            assert rpc_result(http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS))["serverInfo"]

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url, alice, "Token") as session:
                assert (await call(session, "get_user_info"))["user"]["user_id"] == "alice"

    anyio.run(scenario)


def test_health_needs_no_key(serve: Serve) -> None:
    app, _, _ = with_keys(serve)
    with client(app) as http:
        answer = http.get("/health")
    assert answer.status_code == 200
    assert set(answer.json()["backends"]) == {"catalog", "embedder", "vectors", "llm"}


def test_one_user_never_sees_another_users_memories(serve: Serve) -> None:
    app, alice, bob = with_keys(serve)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url, alice) as session:
                await add_then_find(session, "Alice keeps the spare key under the blue flowerpot.",
                                    "where is the spare key")
            async with legacy_sse(app.url, bob) as session:
                found = await call(session, "search_memory", query="where is the spare key")
                assert found["memories"] == []
                listed = await session.call_tool("list_memories", {"cube_id": "alice_default_cube"})
                assert listed.is_error
                assert "alice_default_cube" in text_of(listed)

    anyio.run(scenario)


def test_a_session_answers_only_to_the_user_who_opened_it(serve: Serve) -> None:
    app, alice, bob = with_keys(serve)
    with client(app, alice) as http:
        session_id = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).headers["mcp-session-id"]
    call_tool = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_cubes", "arguments": {}}}
    with client(app, bob) as http:
        hijack = http.post("/mcp", json=call_tool, headers={**MCP_HEADERS, "mcp-session-id": session_id,
                                                             "MCP-Protocol-Version": "2025-06-18"})
    assert hijack.status_code == 404


def test_the_admin_key_acts_as_root_for_mcp(serve: Serve) -> None:
    app, _, _ = with_keys(serve)

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with streamable(app.url, ADMIN_KEY) as session:
                assert (await call(session, "get_user_info"))["user"]["role"] == "root"
                keys = await call(session, "list_api_keys")
                assert {k["user_id"] for k in keys["keys"]} == {"alice", "bob"}

    anyio.run(scenario)


# --- admin key routes --------------------------------------------------------------------------

def test_a_plain_users_key_gets_403_on_every_admin_route(serve: Serve) -> None:
    app, alice, _ = with_keys(serve)
    with client(app, alice) as http:
        for answer in (http.get("/admin/keys"), http.post("/admin/keys", json={"user_id": "mallory"}),
                       http.delete(f"/admin/keys/{app.keys.list(ROOT_USER)[0]['key_id']}")):
            assert answer.status_code == 403
            assert answer.json()["error"]["code"] == "forbidden"
    assert [k["revoked"] for k in app.keys.list(ROOT_USER)] == [False, False]


def test_a_key_asked_with_a_role_its_existing_user_lacks_is_409_and_makes_nothing(serve: Serve) -> None:
    app, _, _ = with_keys(serve)
    with client(app, ADMIN_KEY) as admin:
        refused = admin.post("/admin/keys", json={"user_id": "alice", "role": "admin"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "conflict"
        assert "alice" in refused.json()["error"]["message"] and "'user'" in refused.json()["error"]["message"]
        assert app.service.access.user("alice").role.value == "user"
        assert len(app.keys.list(ROOT_USER)) == 2
        assert admin.post("/admin/keys", json={"user_id": "alice", "role": "user"}).status_code == 201
        assert admin.post("/admin/keys", json={"user_id": "alice"}).status_code == 201


def test_the_admin_key_creates_a_key_that_works_until_revoked(serve: Serve) -> None:
    app, _, _ = with_keys(serve)
    with client(app, ADMIN_KEY) as admin:
        created = admin.post("/admin/keys", json={"user_id": "carol", "role": "guest"})
        assert created.status_code == 201
        carol = created.json()
        assert carol["user_id"] == "carol"
        assert carol["key"].startswith("mk_")
        listed = admin.get("/admin/keys").json()["keys"]
        assert carol["key_id"] in {k["key_id"] for k in listed}
        assert carol["key"] not in str(listed)
        with client(app, carol["key"]) as http:
            assert rpc_result(http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS))["serverInfo"]
        revoked = admin.delete(f"/admin/keys/{carol['key_id']}")
        assert revoked.status_code == 200
        assert revoked.json() == {"deleted": 1, "id": carol["key_id"]}
        with client(app, carol["key"]) as http:
            assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        again = admin.delete(f"/admin/keys/{carol['key_id']}")
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("body", [b"not json", b'{"role": "user"}', b'{"user_id": "dave", "role": "root"}',
                                  b'{"user_id": "no spaces allowed"}'])
def test_a_bad_key_request_gets_400_with_a_json_error(serve: Serve, body: bytes) -> None:
    app, _, _ = with_keys(serve)
    with client(app, ADMIN_KEY) as admin:
        answer = admin.post("/admin/keys", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["message"]


# --- Host and Origin ---------------------------------------------------------------------------

def test_a_foreign_host_header_is_refused_with_421(serve: Serve) -> None:
    app = serve()
    with client(app) as http:
        for answer in (http.get("/health", headers={"Host": "evil.example"}),
                       http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example:80"})):
            assert answer.status_code == 421
            assert answer.json()["error"]["code"] == "misdirected_request"
        assert http.get("/health", headers={"Host": "localhost"}).status_code == 200


def test_a_foreign_browser_origin_is_refused_with_403_and_the_servers_own_passes(serve: Serve) -> None:
    app = serve()
    with client(app) as http:
        for origin in ("https://evil.example", "http://localhost:5173"):  # loopback pages are not trusted either
            refused = http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": origin})
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "forbidden_origin"
        allowed = http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": app.url})
        assert rpc_result(allowed)["serverInfo"]


def test_configured_hosts_and_origins_pass_both_our_check_and_the_sdks(serve: Serve) -> None:
    app = serve(allowed_hosts=["memory.example.com"], allowed_origins=["https://app.example.com"])
    headers = {**MCP_HEADERS, "Host": "memory.example.com:8443", "Origin": "https://app.example.com"}
    with client(app) as http:
        assert rpc_result(http.post("/mcp", json=INITIALIZE, headers=headers))["serverInfo"]
        assert http.get("/health", headers={"Host": "memory.example.com"}).status_code == 200


def test_the_bound_host_is_allowed_and_a_wildcard_address_is_not() -> None:
    assert {"10.0.0.5", "10.0.0.5:*", "localhost", "[::1]:*"} <= set(
        transport_security(ServerSettings(host="10.0.0.5")).allowed_hosts)
    assert "[fd00::1]:*" in transport_security(ServerSettings(host="fd00::1")).allowed_hosts
    assert not {"0.0.0.0", "0.0.0.0:*"} & set(transport_security(ServerSettings(host="0.0.0.0")).allowed_hosts)
    pinned = transport_security(ServerSettings(allowed_hosts=["memory.example.com:443"]))
    assert "memory.example.com:443" in pinned.allowed_hosts
    assert "memory.example.com:*" not in pinned.allowed_hosts


def test_an_allowed_host_with_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"memory\.example\.com:https"):
        transport_security(ServerSettings(allowed_hosts=["memory.example.com:https"]))


# --- exposure at start-up ----------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "memory.example.com"])
def test_an_open_server_beyond_loopback_is_refused_with_a_clear_message(host: str) -> None:
    with pytest.raises(ConfigError, match="refusing to listen") as refused:
        check_exposure(host, auth_enabled=False, allow_unauthenticated=False)
    assert "--allow-unauthenticated" in refused.value.message
    assert "MEMOS_ADMIN_KEY" in refused.value.message


@pytest.mark.parametrize(("host", "auth_enabled", "allow"), [
    ("0.0.0.0", False, True), ("0.0.0.0", True, False), ("127.0.0.1", False, False), ("localhost", False, False),
    ("::1", False, False), ("127.0.0.5", False, False)])
def test_loopback_a_configured_key_or_the_explicit_flag_allow_starting(host: str, auth_enabled: bool,
                                                                       allow: bool) -> None:
    check_exposure(host, auth_enabled=auth_enabled, allow_unauthenticated=allow)
