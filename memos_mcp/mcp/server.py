"""Building the MCP server (never at import time) and running it over stdio."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from memos_mcp import __version__
from memos_mcp.core.graph.service import GraphService
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.mcp.apps import AppsView, memory_apps
from memos_mcp.mcp.context import register_prompts, register_resources
from memos_mcp.mcp.gate import Gate, remember_request
from memos_mcp.mcp.graph_tools import register_graph_tools
from memos_mcp.mcp.limits import RateLimit
from memos_mcp.mcp.strict import ToolBox
from memos_mcp.mcp.tools import register_tools
from memos_mcp.rest.ratelimit import RateLimiter

INSTRUCTIONS = """Long-term memory for this user. Before answering anything personal or about earlier
work, call search_memory; when the user tells you something durable (facts, decisions, preferences),
call add_memory. Cite memories by their ref_id. Cubes are separate memory namespaces: list_cubes
shows yours."""


def build_server(service: MemoryService, keys: KeyRing, default_user: str, read_only: bool = False,
                 rate: RateLimiter | None = None) -> MCPServer:
    """The MCP server; ``rate`` (the HTTP app's limiter) limits each HTTP user's requests. Clients that
    negotiate MCP Apps also get the memory view (``memos_mcp.mcp.apps``)."""
    gate = Gate(default_user)
    tools = ToolBox()  # every tool refuses arguments it does not know
    register_tools(tools, service, keys, gate, read_only)
    register_graph_tools(tools, GraphService(service), gate, read_only)
    server = MCPServer(name="memos-mcp", version=__version__, instructions=INSTRUCTIONS,
                       middleware=[remember_request, *([RateLimit(rate)] if rate is not None else []), AppsView()],
                       tools=tools.tools, extensions=[memory_apps()])
    register_resources(server, service, gate)
    register_prompts(server, service, gate)
    return server
