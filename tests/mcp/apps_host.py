"""A small MCP Apps host for browser tests: a page that renders an app's HTML in a sandboxed iframe and
speaks the app side of the spec's postMessage bridge, relaying the app's ``tools/call`` and
``resources/read`` to a real MCP server through the SDK's ``Client``.

The page answers ``ui/initialize`` (host info and context, with the tool that was called), then,
once the app says ``ui/notifications/initialized``, sends ``ui/notifications/tool-input`` and
``ui/notifications/tool-result`` with the call the test made (and, with ``echo``, again for each call
the app makes itself, as the spec lets a host do). It accepts ``ui/update-model-context``
and refuses other requests it does not know. Every message the app sends is kept in ``window.fromApp``
for the test to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, Tool

CHROMIUM = Path(os.environ.get("MEMOS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # what any one expectation may wait for the page (the test machine is shared)

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>test host</title></head>
<body>
<iframe id="app" title="memory view" sandbox="allow-scripts" style="width: 640px; height: 400px; border: 0"></iframe>
<script>
"use strict";
window.fromApp = [];
window.sizes = [];
const frame = document.getElementById("app");
function toApp(message) { frame.contentWindow.postMessage(message, "*"); }
window.startApp = (html, call) => {
  window.call = call;
  frame.srcdoc = html;
};
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) return;
  const message = event.data;
  window.fromApp.push(message);
  const answer = (body) => toApp({ jsonrpc: "2.0", id: message.id, ...body });
  switch (message.method) {
    case "ui/initialize":
      answer({ result: {
        protocolVersion: "2026-01-26",
        hostInfo: { name: "memos-mcp test host", version: "1" },
        hostCapabilities: { serverTools: {}, serverResources: {} },
        hostContext: { toolInfo: { tool: window.call.tool }, theme: "light", displayMode: "inline",
                       availableDisplayModes: ["inline"], containerDimensions: { width: 640, maxHeight: 4000 },
                       styles: { variables: { "--color-text-primary": "#101010" } } },
      } });
      break;
    case "ui/notifications/initialized":
      toApp({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: { arguments: window.call.arguments } });
      toApp({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: window.call.result });
      break;
    case "ui/notifications/size-changed":
      window.sizes.push(message.params);
      frame.style.height = `${message.params.height}px`;
      break;
    case "ui/update-model-context":
      answer({ result: {} });
      break;
    case "tools/call":
    case "resources/read":
      try {
        const result = await window.relay(message.method, message.params);
        answer({ result });
        if (window.call.echo && message.method === "tools/call") {  // a host may echo the view's own calls
          const input = { arguments: message.params.arguments };
          toApp({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: input });
          toApp({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: result });
        }
      } catch (error) {
        answer({ error: { code: -32000, message: String(error && error.message || error) } });
      }
      break;
    default:
      if (message.id !== undefined) answer({ error: { code: -32601, message: "Method not found" } });
  }
});
</script>
</body></html>
"""


def wire(model: Any) -> dict[str, Any]:
    """A result as it travels: JSON with the protocol's field names."""
    dumped: dict[str, Any] = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


@asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    """A page of a real headless Chromium (Debian's ``chromium``, driven by Playwright), closed after."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh test installs it)")
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (test extra)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            await browser.close()


async def open_app(page: Any, client: Client, html: str, tool: Tool, arguments: dict[str, Any],
                   result: CallToolResult, echo: bool = False) -> Any:
    """Render ``html`` in the host page as the view of ``tool`` called with ``arguments`` (answer:
    ``result``), relaying its calls through ``client``; the app's frame."""

    async def relay(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/call":
            return wire(await client.call_tool(params["name"], params.get("arguments") or {}))
        return wire(await client.read_resource(params["uri"]))

    await page.expose_function("relay", relay)
    await page.set_content(HOST_PAGE)
    await page.evaluate("([html, call]) => window.startApp(html, call)",
                        [html, {"tool": wire(tool), "arguments": arguments, "result": wire(result), "echo": echo}])
    frame = await (await page.query_selector("#app")).content_frame()
    assert frame is not None
    return frame


async def model_context(page: Any) -> list[str]:
    """The text of each ``ui/update-model-context`` the app sent, in order."""
    texts: list[str] = await page.evaluate(
        "() => window.fromApp.filter((m) => m.method === 'ui/update-model-context')"
        ".map((m) => m.params.content.map((c) => c.text).join(''))")
    return texts


async def tools_called(page: Any) -> list[str]:
    """The tools the app asked the host to call, in order."""
    names: list[str] = await page.evaluate(
        "() => window.fromApp.filter((m) => m.method === 'tools/call').map((m) => m.params.name)")
    return names
