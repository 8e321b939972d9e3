"""MCP Apps (the ``io.modelcontextprotocol/ui`` extension): memory cards inside the agent's window.

The memory view (``memory_view.html`` beside this module, one self-contained HTML page) is served as
the ``ui://`` resource ``MEMORY_VIEW`` with the app MIME type by the SDK's ``Apps`` extension. The
reading tools listed in ``VIEW_TOOLS`` point at it with ``_meta.ui.resourceUri``; a host that renders
apps shows their results as cards, and the page edits, archives, forgets and reads the history of a
memory by calling this server's own tools through the host (the postMessage bridge of the spec).

Only a client that negotiated the extension (``client_supports_apps``: it advertised the extension
with the app MIME type) sees any of it: ``AppsView`` (a server middleware) adds the ``_meta.ui`` of
those tools to its ``tools/list``, and leaves the ``ui://`` resource out of every other client's
``resources/list``. So every other client's listings are the same as without apps, and no tool result
changes for anyone (the cards are drawn from the structured output every client already gets).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, Apps, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

MEMORY_VIEW = "ui://memos-mcp/memory-view.html"
"""The URI of the memory view (the ``ui://`` resource a UI-bound tool names)."""

VIEW_TOOLS = ("search_memory", "list_memories", "get_memory", "memory_history")
"""The tools whose results the memory view draws: hits, a page, one memory, a history."""

__all__ = ["APP_MIME_TYPE", "EXTENSION_ID", "MEMORY_VIEW", "VIEW_TOOLS", "AppsView", "memory_apps"]


def memory_apps() -> Apps:
    """The SDK's Apps extension holding the memory view; pass it to ``MCPServer(extensions=[...])``.

    It advertises the extension in the server's capabilities and serves ``MEMORY_VIEW`` on
    ``resources/read`` as ``text/html;profile=mcp-app``. The page needs nothing from the network (no
    CSP domains, no permissions): everything is inline and data comes through the host.
    """
    apps = Apps()
    apps.add_html_resource(
        MEMORY_VIEW, files("memos_mcp.mcp").joinpath("memory_view.html").read_text(encoding="utf-8"),
        name="memory-view", title="Memory cards",
        description="Search hits, memory lists and a memory's history as cards: open, edit, archive, forget",
        prefers_border=True)
    return apps


class AppsView:
    """A server middleware: what a client that negotiated MCP Apps sees, and nobody else.

    For such a client, ``tools/list`` carries ``_meta.ui = {"resourceUri": MEMORY_VIEW}`` on each of
    ``VIEW_TOOLS`` (other ``_meta`` keys kept). For any other client, ``resources/list`` leaves out the
    ``ui://`` resources (the spec lets a server omit UI-only resources), so that its listings are
    byte for byte those of a server without apps. Other methods pass through untouched.
    """

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)  # the wire form: a dict of JSON values
        if not isinstance(result, dict):
            return result
        if ctx.method == "tools/list" and client_supports_apps(ctx):
            return {**result, "tools": [_with_view(tool) for tool in result.get("tools", [])]}
        if ctx.method == "resources/list" and not client_supports_apps(ctx):
            return {**result, "resources": [resource for resource in result.get("resources", [])
                                            if not str(resource.get("uri", "")).startswith("ui://")]}
        return result


def _with_view(tool: dict[str, Any]) -> dict[str, Any]:
    """A listed tool (wire form), pointing at the memory view when it is one of ``VIEW_TOOLS``."""
    if tool.get("name") not in VIEW_TOOLS:
        return tool
    return {**tool, "_meta": {**(tool.get("_meta") or {}), "ui": {"resourceUri": MEMORY_VIEW}}}
