"""Screenshots of the web UI's main pages, for docs/ui/ and the README.

    .venv/bin/python scripts/ui_screenshots.py [--out docs/ui]

Starts ``memos-mcp serve`` on a loopback port over a throw-away data directory, puts a few memories,
a conversation and some relations in it through the MCP SDK client, and photographs the pages in
Debian's headless Chromium (``apt-get install chromium``) driven by Playwright, at desktop width
and one page at phone width.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from playwright.sync_api import Page, sync_playwright

MEMOS = Path(sys.executable).parent / "memos-mcp"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT = 120.0
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
MEMORIES = [
    ("The zeppelin hangar in Friedrichshafen opens at dawn.", ["travel"]),
    ("Alice prefers green tea over coffee in the morning.", ["food"]),
    ("Alice's sister Grace lives in Lisbon.", ["family"]),
    ("The team meets on Thursdays at ten in room 4.", ["work"]),
    ("Alice is allergic to peanuts.", ["health"]),
]
CONVERSATION = [
    {"role": "user", "content": "I'm flying to Lisbon on Friday to see Grace."},
    {"role": "assistant", "content": "Have a good flight! Shall I remind you to pack the gift for Grace?"},
    {"role": "user", "content": "Yes please, and I moved to Porto last month."},
]
RELATIONS = [{"subject": "Alice", "predicate": "lives_in", "object": "Braga"},
             {"subject": "Alice", "predicate": "sister_of", "object": "Grace"},
             {"subject": "Grace", "predicate": "lives_in", "object": "Lisbon"},
             {"subject": "Alice", "predicate": "works_at", "object": "Acme"}]


def cli(data: Path, *args: str) -> str:
    done = subprocess.run([str(MEMOS), "--data-dir", str(data), *args], env=ENV, capture_output=True, text=True,
                          timeout=TIMEOUT, check=True)
    return done.stdout.strip()


def pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def port_of(lines: queue.Queue[str]) -> str:
    while True:
        line = lines.get(timeout=TIMEOUT)
        if not line:
            raise SystemExit("memos-mcp serve ended before listening")
        if found := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
            return found.group(1)


def fill(url: str, key: str) -> None:
    """The sample data, through the MCP SDK client as the key's user."""
    async def run() -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT) as http, \
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()

            async def call(tool: str, **arguments: Any) -> None:
                result = await session.call_tool(tool, arguments)
                if result.is_error:
                    raise SystemExit(f"{tool} failed: {result.content}")
            for text, tags in MEMORIES:
                await call("add_memory", memory_content=text, tags=tags)
            await call("add_memory", messages=CONVERSATION, conversation_id="trip-to-lisbon")
            await call("add_relations", triples=RELATIONS[:1])
            await call("add_relations", triples=[{**RELATIONS[0], "object": "Porto"}, *RELATIONS[1:]])
            await call("create_cube", name="Team notes")
    with ThreadPoolExecutor(1) as pool:  # Playwright is not running yet, but keep the loops apart anyway
        pool.submit(anyio.run, run).result(TIMEOUT)


def shoot(page: Page, out: Path, name: str, path: str, ready: str) -> None:
    page.goto(page.url.split("/ui/")[0] + path)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print("wrote", out / f"{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "ui")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memos-ui-shots-") as tmp:
        data = Path(tmp) / "data"
        key = cli(data, "keys", "create", "--user", "alice", "--role", "admin")
        cli(data, "keys", "create", "--user", "bob")
        server = subprocess.Popen([str(MEMOS), "--data-dir", str(data), "serve", "--port", "0"], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert server.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=pump, args=(server.stderr, lines), daemon=True).start()
        try:
            url = f"http://127.0.0.1:{port_of(lines)}"
            fill(url, key)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.set_default_timeout(TIMEOUT * 1000)
                page.goto(f"{url}/ui/")
                page.screenshot(path=str(out / "signin.png"))
                print("wrote", out / "signin.png")
                page.fill("#key", key)
                page.click("form[action='/ui/signin'] button[type=submit]")
                page.wait_for_selector("#signed-in-as")
                shoot(page, out, "memories", "/ui/memories", "#memories")
                shoot(page, out, "search", "/ui/memories?q=where+does+Grace+live", ".relativity")
                page.click("#memories .memory-link >> nth=0")
                page.wait_for_selector("#edit-form")
                page.fill("#edit-tags", "family, lisbon")
                page.click("#edit-form button[type=submit]")
                page.wait_for_selector("text=Saved.")
                shoot(page, out, "memory", page.url.split(url)[1], "#history")
                shoot(page, out, "cubes", "/ui/cubes", "#cubes")
                shoot(page, out, "conversation", "/ui/conversations/trip-to-lisbon", "#messages")
                shoot(page, out, "tasks", "/ui/tasks", "#tasks")
                at = "2000-01-01T00:00"
                shoot(page, out, "graph", f"/ui/graph?entity=Alice&depth=2&at={at}", "#graph canvas")
                shoot(page, out, "users", "/ui/users", "#users")
                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                phone.context.add_cookies(page.context.cookies())
                phone.goto(f"{url}/ui/memories?q=tea")
                phone.wait_for_selector(".relativity")
                phone.screenshot(path=str(out / "phone-search.png"), full_page=True)
                print("wrote", out / "phone-search.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(TIMEOUT)


if __name__ == "__main__":
    main()
