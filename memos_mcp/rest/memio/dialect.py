"""memio's dialect: its constants, and its envelope (errors name the failed operation)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import MemosError
from memos_mcp.rest.base import Dialect

PROVIDER = "memos-mcp"
DOC_MARK = "memio_store"  # metadata key marking the chunks of a document
DOC_ID = "doc_id"
AGENT_ID = "agent_id"
PAGE = 200  # the core lists at most 200 memories a page
ID_PATTERN = r"^[A-Za-z0-9\-_.:@]{1,128}$"

_operation: ContextVar[str] = ContextVar("memio_operation", default="unknown")


# --- envelope ------------------------------------------------------------------------------------

class ErrorBody(BaseModel):
    error: str = Field(description="not_found, invalid_request, not_supported, provider_error, unauthorized, "
                                   "forbidden, conflict, payload_too_large, rate_limited, storage_error")
    detail: str
    provider: str = PROVIDER
    operation: str = Field(description="the operation that failed")


def error_status(exc: MemosError) -> tuple[int, str]:
    """memio's status and code of a core error: invalid input is 422, backend failures are 502, a
    storage failure (full disk) is 507 ``storage_error``."""
    if exc.status == 400:
        return 422, exc.code
    if exc.status in (501, 507):
        return exc.status, exc.code
    if exc.status >= 500:
        return 502, "provider_error"
    return exc.status, "rate_limited" if exc.status == 429 else exc.code


class MemioEnvelope:
    """Success: the result itself; errors: memio's flat error object naming the operation."""

    def ok(self, data: Any, message: str, status: int) -> Response:
        return JSONResponse(data, status_code=status)

    def error(self, exc: MemosError) -> Response:
        status, code = error_status(exc)
        body = ErrorBody(error=code, detail=exc.message, operation=_operation.get())
        return JSONResponse(body.model_dump(), status_code=status)


class _Named:
    """An operation's ASGI app, run with the operation's name recorded for the error envelope."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _operation.set(self.name)
        try:
            await self.app(scope, receive, send)
        finally:
            _operation.reset(token)


class MemioDialect(Dialect):
    """A dialect whose errors name the operation (its handler's name): each route's app records it
    before anything, parsing included, can fail."""

    def routes(self, service: MemoryService, keys: KeyRing, *args: Any, **kwargs: Any) -> list[Route]:
        return [Route(route.path, _Named(route.app, op.handler.__name__), methods=[op.method], name=route.name)
                for op, route in zip(self.operations, super().routes(service, keys, *args, **kwargs), strict=True)]


DIALECT = MemioDialect("memio", "/v1", MemioEnvelope())
