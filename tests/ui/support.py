"""A real ``memos-mcp serve`` in a subprocess with API keys made by the real CLI, the MCP SDK client to
put memories in it, and Debian's headless Chromium driven by Playwright (never a browser build of
Playwright's own: ``scripts/setup.sh test`` installs ``chromium``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from playwright.sync_api import Browser, Page, sync_playwright

from tests.http.support import TIMEOUT, call, streamable
from tests.http.test_serve_cli import Served, memos, ok

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000


@dataclass
class Server:
    """A served data directory and the API key of each user made for it."""

    served: Served
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.served.url

    def mcp(self, user: str, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call an MCP tool as ``user`` (its structured answer), in a thread of its own: Playwright's sync
        API keeps an event loop running in this one."""
        async def run() -> dict[str, Any]:
            with anyio.fail_after(TIMEOUT):
                async with streamable(self.url, self.keys[user]) as session:
                    return await call(session, tool, **arguments)
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(anyio.run, run).result(TIMEOUT)


@contextmanager
def serve(data_dir: Path, users: dict[str, str], **env: str) -> Iterator[Server]:
    """``memos-mcp serve`` over ``data_dir`` with a key for each ``{user: role}``."""
    keys = {user: ok(memos(data_dir, "keys", "create", "--user", user, "--role", role)).stdout.strip()
            for user, role in users.items()}
    served = Served(data_dir, **env)
    try:
        yield Server(served, keys)
    finally:
        served.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium; Playwright gives each launch a fresh temporary profile (user data dir)."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/setup.sh test (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, **options: Any) -> Page:
    """A page in its own context (its own cookies: one person)."""
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/ui/")
    page.wait_for_url(re.compile(r".*/ui/signin.*"))
    page.fill("#key", key)
    page.click("form[action='/ui/signin'] button[type=submit]")
    page.wait_for_selector("#signed-in-as")
