"""``memos-mcp setup CLIENT`` through the real executable: the printed entry, the merge into an existing
configuration file (other servers kept, a backup, idempotent), the clients' usual places, and an entry
that really launches a working server through the MCP SDK's stdio client."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from memos_mcp.setup_clients import CLIENTS
from tests.test_cli import MEMOS, TIMEOUT, clean_env, ok

pytestmark = pytest.mark.usefixtures("clean_environment")

SERVERS_KEY = {"claude-desktop": "mcpServers", "claude-code": "mcpServers", "cursor": "mcpServers",
               "vscode": "servers"}
OTHER = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}


def setup(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEMOS), "setup", *args], cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def entry_of(document: dict[str, Any], client: str, name: str = "memos") -> dict[str, Any]:
    entry: dict[str, Any] = document[SERVERS_KEY[client]][name]
    return entry


@pytest.mark.parametrize("client", sorted(SERVERS_KEY))
def test_print_shows_an_entry_that_launches_this_installation_over_stdio(tmp_path: Path, client: str) -> None:
    result = ok(setup(tmp_path, client, "--print", "--data-dir", "relative-data", "--user", "alice"))
    entry = entry_of(json.loads(result.stdout), client)
    command = Path(entry["command"])
    assert command.is_absolute() and os.access(command, os.X_OK)
    assert command.samefile(MEMOS)
    assert entry["args"] == ["stdio"]
    # A client starts servers from its own working directory: the data directory is absolute.
    assert entry["env"] == {"MEMOS_DATA_DIR": str(tmp_path / "relative-data"), "MEMOS_USER_ID": "alice"}
    assert entry.get("type", "stdio") == "stdio"
    assert ("type" in entry) == (client in ("claude-code", "vscode"))


def test_print_is_the_default_and_writes_nothing(tmp_path: Path) -> None:
    result = ok(setup(tmp_path, "cursor", HOME=str(tmp_path)))
    assert entry_of(json.loads(result.stdout), "cursor")["args"] == ["stdio"]
    assert not (tmp_path / ".cursor").exists()


def test_the_config_file_and_user_default_come_from_the_settings(tmp_path: Path) -> None:
    config = tmp_path / "memos.yaml"
    config.write_text(f"default_user_id: carol\ndata_dir: {tmp_path / 'from-config'}\n", encoding="utf-8")
    entry = entry_of(json.loads(ok(setup(tmp_path, "vscode", "--config", "memos.yaml")).stdout), "vscode")
    assert entry["env"] == {"MEMOS_DATA_DIR": str(tmp_path / "from-config"), "MEMOS_USER_ID": "carol",
                            "MEMOS_CONFIG": str(config)}


def test_write_merges_into_a_file_with_other_servers_keeps_a_backup_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "claude_desktop_config.json"
    original = {"mcpServers": {"filesystem": OTHER}, "globalShortcut": "Ctrl+Space"}
    target.write_text(json.dumps(original, indent=4), encoding="utf-8")
    before = target.read_bytes()

    first = ok(setup(tmp_path, "claude-desktop", "--write", "--file", str(target), "--data-dir", str(tmp_path / "d")))
    assert "wrote server 'memos'" in first.stderr
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["mcpServers"]["filesystem"] == OTHER
    assert written["globalShortcut"] == "Ctrl+Space"
    assert entry_of(written, "claude-desktop")["env"]["MEMOS_DATA_DIR"] == str(tmp_path / "d")
    assert (tmp_path / "claude_desktop_config.json.bak").read_bytes() == before

    after_first = target.read_bytes()
    second = ok(setup(tmp_path, "claude-desktop", "--write", "--file", str(target), "--data-dir", str(tmp_path / "d")))
    assert "nothing changed" in second.stderr
    assert target.read_bytes() == after_first
    assert (tmp_path / "claude_desktop_config.json.bak").read_bytes() == before

    # Another data directory replaces this server's entry only.
    ok(setup(tmp_path, "claude-desktop", "--write", "--file", str(target), "--data-dir", str(tmp_path / "e")))
    rewritten = json.loads(target.read_text(encoding="utf-8"))
    assert set(rewritten["mcpServers"]) == {"filesystem", "memos"}
    assert entry_of(rewritten, "claude-desktop")["env"]["MEMOS_DATA_DIR"] == str(tmp_path / "e")
    assert json.loads((tmp_path / "claude_desktop_config.json.bak").read_text(encoding="utf-8")) == written


def test_write_through_a_symlinked_config_file_keeps_the_link(tmp_path: Path) -> None:
    """A config file kept elsewhere and linked into place (a dotfiles folder) is written through the
    link: the link stays, and the file it names gets the entry and the backup beside it."""
    kept = tmp_path / "dotfiles" / "claude_desktop_config.json"
    kept.parent.mkdir()
    kept.write_text(json.dumps({"mcpServers": {"filesystem": OTHER}}), encoding="utf-8")
    link = tmp_path / "claude_desktop_config.json"
    link.symlink_to(kept)
    ok(setup(tmp_path, "claude-desktop", "--write", "--file", str(link), "--data-dir", str(tmp_path / "d")))
    assert link.is_symlink() and link.resolve() == kept
    written = json.loads(kept.read_text(encoding="utf-8"))
    assert set(written["mcpServers"]) == {"filesystem", "memos"}
    assert json.loads((kept.parent / "claude_desktop_config.json.bak").read_text(encoding="utf-8")) == {
        "mcpServers": {"filesystem": OTHER}}


def test_write_with_another_name_adds_a_second_server(tmp_path: Path) -> None:
    target = tmp_path / "mcp.json"
    ok(setup(tmp_path, "vscode", "--write", "--file", str(target)))
    ok(setup(tmp_path, "vscode", "--write", "--file", str(target), "--name", "work-memory", "--user", "bob"))
    servers = json.loads(target.read_text(encoding="utf-8"))["servers"]
    assert set(servers) == {"memos", "work-memory"}
    assert servers["work-memory"]["env"]["MEMOS_USER_ID"] == "bob"


@pytest.mark.parametrize("content", ["{ // a comment\n}", "[1, 2]", '{"mcpServers": ["not", "an", "object"]}'])
def test_write_refuses_a_file_it_cannot_merge_and_leaves_it_untouched(tmp_path: Path, content: str) -> None:
    target = tmp_path / "config.json"
    target.write_text(content, encoding="utf-8")
    result = setup(tmp_path, "cursor", "--write", "--file", str(target))
    assert result.returncode == 2
    assert "config_error" in result.stderr and str(target) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert target.read_text(encoding="utf-8") == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.parametrize(("client", "relative"), [
    ("claude-desktop", "xdg/Claude/claude_desktop_config.json"),
    ("claude-code", "home/.claude.json"),
    ("cursor", "home/.cursor/mcp.json"),
    ("vscode", "xdg/Code/User/mcp.json"),
])
def test_write_without_file_uses_the_clients_usual_place(tmp_path: Path, client: str, relative: str) -> None:
    result = ok(setup(tmp_path, client, "--write", HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "xdg")))
    target = tmp_path / relative
    assert str(target) in result.stderr
    assert entry_of(json.loads(target.read_text(encoding="utf-8")), client)["args"] == ["stdio"]


@pytest.mark.parametrize(("platform", "environ", "expected"), [
    ("darwin", {"HOME": "/Users/ann"}, "/Users/ann/Library/Application Support/Claude/claude_desktop_config.json"),
    ("win32", {"USERPROFILE": "C:/Users/ann", "APPDATA": "C:/Users/ann/AppData/Roaming"},
     "C:/Users/ann/AppData/Roaming/Claude/claude_desktop_config.json"),
    ("linux", {"HOME": "/home/ann"}, "/home/ann/.config/Claude/claude_desktop_config.json"),
])
def test_claude_desktops_file_is_found_per_operating_system(platform: str, environ: dict[str, str],
                                                           expected: str) -> None:
    assert CLIENTS["claude-desktop"].config_file(platform, environ) == Path(expected)


def test_vscodes_user_file_on_macos_and_windows() -> None:
    assert CLIENTS["vscode"].config_file("darwin", {"HOME": "/Users/ann"}) == Path(
        "/Users/ann/Library/Application Support/Code/User/mcp.json")
    assert CLIENTS["vscode"].config_file("win32", {"APPDATA": "C:/R"}) == Path("C:/R/Code/User/mcp.json")


@pytest.mark.parametrize("client", sorted(SERVERS_KEY))
def test_http_prints_the_remote_form_with_a_placeholder_key(tmp_path: Path, client: str) -> None:
    result = ok(setup(tmp_path, client, "--http", "https://memory.example.com/"))
    text = result.stdout
    assert "https://memory.example.com/mcp" in text
    assert "Bearer <YOUR_MEMOS_MCP_API_KEY>" in text
    assert "stdio" not in text
    entry = entry_of(json.loads(text), client)
    if client != "claude-desktop":
        assert entry["url"] == "https://memory.example.com/mcp"


def test_http_refuses_write_and_a_url_without_a_scheme(tmp_path: Path) -> None:
    for args in (["--http", "https://m.example.com", "--write", "--file", str(tmp_path / "f.json")],
                 ["--http", "m.example.com"]):
        result = setup(tmp_path, "cursor", *args)
        assert result.returncode == 2 and "invalid_request" in result.stderr, result.stderr
    assert not (tmp_path / "f.json").exists()


def test_the_written_entry_launches_a_working_server(tmp_path: Path) -> None:
    target = tmp_path / "claude_desktop_config.json"
    ok(setup(tmp_path, "claude-desktop", "--write", "--file", str(target), "--data-dir", str(tmp_path / "data")))
    entry = entry_of(json.loads(target.read_text(encoding="utf-8")), "claude-desktop")
    # As a client starts it: its own working directory, its own environment plus the entry's.
    params = StdioServerParameters(command=entry["command"], args=entry["args"], cwd="/",
                                   env=clean_env(**entry["env"]))

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                added = await session.call_tool("add_memory", {"memory_content": "The spare key is under the "
                                                                                 "blue flowerpot."})
                assert not added.is_error
                found = await session.call_tool("search_memory", {"query": "where is the spare key"})
                assert found.structured_content is not None
                assert "flowerpot" in found.structured_content["memories"][0]["memory"]

    anyio.run(scenario)
    assert any((tmp_path / "data").iterdir())
