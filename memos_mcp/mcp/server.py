"""Building the MCP server (never at import time) and running it over stdio."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from memos_mcp import __version__
from memos_mcp.core.graph.service import GraphService
from memos_mcp.core.keys import KeyRing
from memos_mcp.mcp.apps import AppsView, memory_apps
from memos_mcp.mcp.context import register_prompts, register_resources
from memos_mcp.mcp.gate import Gate, remember_request
from memos_mcp.mcp.graph_tools import register_graph_tools
from memos_mcp.mcp.limits import RateLimit
from memos_mcp.mcp.stdio import StdioServer
from memos_mcp.mcp.strict import ToolBox
from memos_mcp.mcp.tools import register_tools

if TYPE_CHECKING:
    import anyio

    from memos_mcp.core.service import MemoryService  # imports the stores: stdio opens them after its handshake
    from memos_mcp.rest.ratelimit import RateLimiter  # imports the limits library: not on stdio's start

INSTRUCTIONS = """Long-term memory for this user. Before answering anything personal or about earlier
work, call search_memory; when the user tells you something durable (facts, decisions, preferences),
call add_memory. Cite memories by their ref_id. Cubes are separate memory namespaces: list_cubes
shows yours."""


class AfterHandshake:
    """Server middleware that calls ``start`` once, at the first message after an answered ``initialize``
    other than a ``ping``: normally the client's ``notifications/initialized``, which it sends once it has
    the reply. A message before ``initialize`` (which the SDK refuses) starts nothing.

    stdio uses it to load the embedding model once the handshake is answered: loading it beside the
    handshake (importing onnxruntime holds the interpreter) delayed the ``initialize`` reply. The model
    then loads while the client lists tools; a search that comes before it is loaded waits for it."""

    def __init__(self, start: Callable[[], None]) -> None:
        self._start: Callable[[], None] | None = start
        self._initialized = False

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            result = await call_next(ctx)  # raises if refused: then the handshake is still to come
            self._initialized = True
            return result
        if self._start is not None and self._initialized and ctx.method != "ping":  # a ping may come before the reply
            start, self._start = self._start, None
            start()
        return await call_next(ctx)


async def initialize_first(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware saying why a request before ``initialize`` is refused: the SDK answers it (any
    method but ``initialize`` and ``ping``) with ``-32602 Invalid request parameters`` and empty data,
    the answer of a request whose parameters are wrong. The code stays (clients key off it); the
    message and ``data.reason`` (``not_initialized``) say that ``initialize`` comes first."""
    try:
        return await call_next(ctx)
    except MCPError as exc:
        if exc.error.code == INVALID_PARAMS and exc.error.message == _SDK_GATE and exc.error.data == "" \
                and ctx.method not in ("initialize", "ping") and ctx.session.client_params is None:
            raise MCPError(INVALID_PARAMS, f"{_SDK_GATE}: the session is not initialized: send initialize first, "
                                           "then notifications/initialized", {"reason": "not_initialized"}) from exc
        raise


_SDK_GATE = "Invalid request parameters"  # the SDK's message for a request before the handshake
ERROR_CHARS = 2_000  # an error's text at most: one that quotes a caller's megabyte is cut


async def bounded_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware cutting an error's text (a protocol error's message and data, a tool error's
    text) to ``ERROR_CHARS``: errors quote what the caller sent (an unknown tool or resource name, a
    memory id, a metadata key), and one quoting a megabyte made an answer over the 1 MiB that one MCP
    message of the SDK's HTTP clients carries (``fit``), so the client lost the session, not one call."""
    try:
        result = await call_next(ctx)
    except MCPError as exc:
        error = exc.error
        data = {k: _short(v) if isinstance(v, str) else v for k, v in error.data.items()} \
            if isinstance(error.data, dict) else _short(error.data) if isinstance(error.data, str) else error.data
        if data != error.data or len(error.message) > ERROR_CHARS:
            raise MCPError(error.code, _short(error.message), data) from exc
        raise
    if isinstance(result, dict) and result.get("isError"):
        for block in result.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                block["text"] = _short(block["text"])
    return result


def _short(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else f"{text[:ERROR_CHARS]}… ({len(text) - ERROR_CHARS} characters cut)"


class PromptArguments:
    """Server middleware that answers a ``prompts/get`` whose arguments do not fit the prompt with
    ``-32602 Invalid params`` naming the argument (a required one missing, or one the prompt does not
    take) or the unknown prompt, as the MCP specification has it; the SDK answered them with error code
    0 ("Error rendering prompt", "Unknown prompt"), naming nothing, and logged a traceback. The prompts
    and their arguments are read from ``list_prompts``."""

    def __init__(self, server: MCPServer) -> None:
        self._server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "prompts/get" and ctx.params is not None:
            name, given = ctx.params.get("name"), ctx.params.get("arguments") or {}
            prompts = {p.name: p for p in await self._server.list_prompts()}
            prompt = prompts.get(name) if isinstance(name, str) else None
            if prompt is None:
                raise MCPError(INVALID_PARAMS, f"invalid_request: name: no prompt {str(name)[:64]!r} (prompts: "
                                               f"{', '.join(prompts)})", data={"field": "name"})
            known = {a.name: bool(a.required) for a in prompt.arguments or []}
            given = given if isinstance(given, dict) else {}  # arguments of another shape: the SDK refuses them
            missing = [n for n, required in known.items() if required and n not in given]
            unknown = [n for n in given if n not in known]
            if missing or unknown:
                which = missing[0] if missing else unknown[0]
                problem = "is required" if missing else f"is not an argument of it (it takes {', '.join(known)})"
                raise MCPError(INVALID_PARAMS, f"invalid_request: {which}: {problem} (prompt {name})",
                               data={"code": "invalid_request", "field": which})
        return await call_next(ctx)


def build_server(service: MemoryService, keys: KeyRing, default_user: str, read_only: bool = False,
                 rate: RateLimiter | None = None, after_handshake: Callable[[], None] | None = None,
                 threads: anyio.CapacityLimiter | None = None) -> MCPServer:
    """The MCP server; ``rate`` (the HTTP app's limiter) limits each HTTP user's requests;
    ``after_handshake`` runs once, at the first message after ``initialize`` (see ``AfterHandshake``);
    ``threads`` bounds the core calls running at once (None: anyio's default limiter).
    Clients that negotiate MCP Apps also get the memory view (``memos_mcp.mcp.apps``)."""
    gate = Gate(default_user, threads)
    tools = ToolBox()  # every tool refuses arguments it does not know
    register_tools(tools, service, keys, gate, read_only)
    register_graph_tools(tools, GraphService(service), gate, read_only)
    server = StdioServer(name="memos-mcp", version=__version__, instructions=INSTRUCTIONS,
                         middleware=[bounded_errors, initialize_first, remember_request,
                                     *([RateLimit(rate)] if rate is not None else []),
                                     *([AfterHandshake(after_handshake)] if after_handshake is not None else []),
                                     AppsView()],
                         tools=tools.tools, extensions=[memory_apps()])
    server.middleware.append(PromptArguments(server))  # it reads the server's prompts: added once it exists
    register_resources(server, service, gate)
    register_prompts(server, service, gate)
    return server
