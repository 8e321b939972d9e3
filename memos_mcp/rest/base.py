"""What every REST dialect shares. A dialect is one module that declares its operations on a
``Dialect`` with pydantic request and response models; this module parses and validates the request,
runs the core call in a worker thread, renders the answer and every error in the dialect's own
envelope (one handler per dialect), and feeds the OpenAPI document from the same models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, MemosError, StorageError, Unauthorized
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY

log = logging.getLogger(__name__)
T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)


class Envelope(Protocol):
    """How a dialect wraps a success and an error."""

    def ok(self, data: Any, message: str, status: int) -> Response: ...

    def error(self, exc: MemosError) -> Response: ...


@dataclass
class Call(Generic[B]):
    """One request as a handler sees it: the acting user, the validated body or query, path params."""

    request: Request
    service: MemoryService
    keys: KeyRing
    body: B
    actor: str

    @property
    def path(self) -> dict[str, str]:
        return dict(self.request.path_params)

    async def run(self, fn: Callable[[], T]) -> T:
        """The synchronous core call, in a worker thread."""
        return await anyio.to_thread.run_sync(fn)


Handler = Callable[[Call[Any]], Awaitable[Any]]


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[Any] | None = None
    status: int = 200
    message: str = "Success"
    raw: bool = False  # the handler returns its own Response (streams)


class _Empty(BaseModel):
    pass


@dataclass
class Dialect:
    """A REST dialect: a name (OpenAPI tag), a path prefix, an envelope and its operations."""

    name: str
    prefix: str
    envelope: Envelope
    operations: list[Operation] = field(default_factory=list)

    def op(self, method: str, path: str, summary: str, *, body: type[BaseModel] | None = None,
           query: type[BaseModel] | None = None, response: type[Any] | None = None, status: int = 200,
           message: str = "Success", raw: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(method, path, handler, summary, body, query, response, status,
                                             message, raw))
            return handler
        return register

    def routes(self, service: MemoryService, keys: KeyRing) -> list[Route]:
        return [Route(self.prefix + o.path, self._endpoint(o, service, keys), methods=[o.method],
                      name=f"{self.name}:{o.method}:{o.path}") for o in self.operations]

    def _endpoint(self, op: Operation, service: MemoryService,
                  keys: KeyRing) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                actor = request.scope.get(PRINCIPAL_SCOPE_KEY)
                if not isinstance(actor, str):
                    raise Unauthorized("this request carries no authenticated user")
                parsed = await _parse(request, op)
                result = await op.handler(Call(request, service, keys, parsed, actor))
                return result if op.raw else self.envelope.ok(_plain(result), op.message, op.status)
            except MemosError as exc:
                return self.envelope.error(exc)
            except Exception:  # a bug or a store failure: logged with its traceback, answered in the envelope
                log.exception("%s %s failed", op.method, request.url.path)
                return self.envelope.error(StorageError("internal error; see the server log"))
        return endpoint


async def _parse(request: Request, op: Operation) -> BaseModel:
    if op.body is not None:
        raw = await request.body()
        try:
            value = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}", field="body") from exc
        return validate(op.body, value)
    if op.query is not None:
        return validate(op.query, dict(request.query_params))
    return _Empty()


def validate(model: type[B], value: Any) -> B:
    """The model from untrusted input; the first problem names its field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}", field=where, errors=len(exc.errors())) from exc


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
