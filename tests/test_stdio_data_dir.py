"""The data directory under ``memos-mcp stdio``, which answers the handshake before it opens the stores:
a data directory that cannot be claimed (held by another process) still fails the start in one line
with exit code 2 and no reply, while stores that cannot be opened (a damaged catalog) make each call a
tool error naming the problem, tried again by the next call. Real subprocesses, the SDK's client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from memos_mcp.config import ALIASES

pytestmark = pytest.mark.usefixtures("clean_environment")

MEMOS = Path(sys.executable).parent / "memos-mcp"
TIMEOUT = 60.0
# A data directory another process holds fails stdio's start before any reply: tests/test_cli.py.


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_") and k not in ALIASES}


@asynccontextmanager
async def session(data_dir: Path, errlog: IO[str], *flags: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=str(MEMOS), args=["--data-dir", str(data_dir), "stdio", *flags],
                                   env=environment())
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def text(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


def test_a_catalog_that_cannot_be_opened_makes_each_call_a_tool_error_naming_it_until_it_can(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    catalog = data_dir / "catalog.sqlite3"
    catalog.write_bytes(b"not a database, but a damaged file " * 200)
    log = tmp_path / "stderr.txt"

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT), log.open("w") as errlog:
            async with session(data_dir, errlog) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert {"search_memory", "add_memory"} <= tools  # listing needs no store
                for name, arguments in (("search_memory", {"query": "tea"}), ("list_cubes", {}),
                                        ("get_user_info", {}), ("list_api_keys", {}),
                                        ("search_graph", {"query": "tea"}),
                                        ("add_memory", {"memory_content": "I drink green tea."})):
                    failed = await client.call_tool(name, arguments)
                    assert failed.is_error, (name, failed.content)
                    assert "storage_error: cannot open the catalog at" in text(failed), text(failed)
                    assert str(catalog) in text(failed)
                with pytest.raises(MCPError, match="storage_error: cannot open the catalog"):
                    await client.read_resource("memory://cubes")
                assert catalog.read_bytes().startswith(b"not a database")  # nothing was written over it
                catalog.unlink()  # the damage is repaired: the next call opens the stores
                added = await client.call_tool("add_memory", {"memory_content": "I drink green tea."})
                assert not added.is_error, added.content
                found = await client.call_tool("search_memory", {"query": "what do I drink"})
                assert found.structured_content is not None
                assert "green tea" in found.structured_content["memories"][0]["memory"]

    anyio.run(scenario)
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    assert "cannot open the data directory yet: [storage_error] cannot open the catalog" in stderr


def test_read_only_on_a_new_data_dir_makes_its_empty_stores_and_holds_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "new"

    async def scenario() -> None:
        with anyio.fail_after(TIMEOUT), (tmp_path / "stderr.txt").open("w") as errlog:
            async with session(data_dir, errlog, "--read-only") as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert "search_memory" in tools and "add_memory" not in tools
                # The stores open (made empty, then read) and the catalog answers: a read-only server makes
                # no user, so the default user is not found, as before the stores opened after the handshake.
                found = await client.call_tool("search_memory", {"query": "anything"})
                assert found.is_error and "not_found: user 'default' does not exist" in text(found), found.content
                assert (data_dir / "catalog.sqlite3").is_file()
                other = subprocess.run([str(MEMOS), "--data-dir", str(data_dir), "stdio"], input="",
                                       env=environment(), capture_output=True, text=True, timeout=TIMEOUT,
                                       check=False)
                assert other.returncode == 2 and "[store_locked]" in other.stderr, other.stderr

    anyio.run(scenario)
