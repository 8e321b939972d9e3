"""What every REST dialect shares. A dialect is one module that declares its operations on a
``Dialect`` with pydantic request and response models; this module parses and validates the request,
runs the core call in a worker thread, renders the answer and every error in the dialect's own
envelope (one handler per dialect), and feeds the OpenAPI document from the same models. Before the
handler, every request passes the ``Guards``: the caller's rate limit and the body size limit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.concurrency import iterate_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from memos_mcp.auth import AUTH_FAILURE_SCOPE_KEY, CHALLENGE
from memos_mcp.bodies import bounded
from memos_mcp.core.chat import ChatEvent, ChatStream
from memos_mcp.core.checks import unstorable_in
from memos_mcp.core.keys import KeyRing
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest, MemosError, RateLimited, Unauthorized
from memos_mcp.known_fields import (
    MAX_NAMED,
    describe,
    dotted,
    known_names,
    mistyped_scalars,
    suggestion,
    unknown_fields,
)
from memos_mcp.mcp.gate import PRINCIPAL_SCOPE_KEY
from memos_mcp.rest.ratelimit import RateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)


class Envelope(Protocol):
    """How a dialect wraps a success and an error."""

    def ok(self, data: Any, message: str, status: int) -> Response: ...

    def error(self, exc: MemosError) -> Response: ...


class CodeEnvelope:
    """The MemOS dialects' ``{"code", "message", "data"}``: ``code`` is the HTTP status, ``data`` is null
    on errors."""

    def ok(self, data: Any, message: str, status: int) -> Response:
        return JSONResponse({"code": status, "message": message, "data": data}, status_code=status)

    def error(self, exc: MemosError) -> Response:
        return JSONResponse({"code": exc.status, "message": exc.message, "data": None}, status_code=exc.status)


@dataclass
class Call(Generic[B]):
    """One request as a handler sees it: the acting user, the validated body or query, path params."""

    request: Request
    service: MemoryService
    keys: KeyRing
    body: B
    actor: str
    threads: anyio.CapacityLimiter | None = None  # None: anyio's default limiter

    @property
    def path(self) -> dict[str, str]:
        return dict(self.request.path_params)

    async def run(self, fn: Callable[[], T]) -> T:
        """The synchronous core call, in a worker thread (waiting for one of ``threads`` first)."""
        return await anyio.to_thread.run_sync(fn, limiter=self.threads)


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

    def path_prefixes(self) -> tuple[str, ...]:
        """The fixed start of every operation's path (up to its first parameter)."""
        return tuple(dict.fromkeys((self.prefix + o.path).split("{")[0] for o in self.operations))

    def routes(self, service: MemoryService, keys: KeyRing, guards: Guards | None = None) -> list[Route]:
        guards = guards or Guards()
        return [Route(self.prefix + o.path, _Endpoint(self, o, service, keys, guards), methods=[o.method],
                      name=f"{self.name}:{o.method}:{o.path}") for o in self.operations]


@dataclass(frozen=True)
class Guards:
    """What every dialect request passes before its handler: the caller's rate limit (None: none) and
    the largest body read (None: unbounded); and how many core calls run at once in worker threads
    (``threads``; None: anyio's default limiter, 40)."""

    rate: RateLimiter | None = None
    max_body_bytes: int | None = None
    threads: anyio.CapacityLimiter | None = None


class _Endpoint:
    """The ASGI app of one operation. Every answer, errors included, is in the dialect's envelope and
    carries the caller's ``X-RateLimit-*`` headers; the body is read through a bounded ``receive``, so
    an oversized one is refused without being held in memory."""

    def __init__(self, dialect: Dialect, op: Operation, service: MemoryService, keys: KeyRing,
                 guards: Guards) -> None:
        self.dialect, self.op, self.service, self.keys, self.guards = dialect, op, service, keys, guards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = bounded(Request(scope, receive), self.guards.max_body_bytes)
        headers: dict[str, str] = {}
        try:
            actor = scope.get(PRINCIPAL_SCOPE_KEY)
            if not isinstance(actor, str):
                headers = dict(CHALLENGE)
                raise Unauthorized(scope.get(AUTH_FAILURE_SCOPE_KEY, "this request carries no authenticated user"))
            if self.guards.rate is not None:
                headers = self.guards.rate.hit(actor).headers()
            response = await self._answer(request, actor)
        except RateLimited as exc:
            response, headers = self.dialect.envelope.error(exc), exc.headers
        except MemosError as exc:
            response = self.dialect.envelope.error(exc)
        except Exception:  # a bug or a store failure: logged with its traceback, answered in the envelope
            log.exception("%s %s failed", self.op.method, request.url.path)
            response = self.dialect.envelope.error(MemosError("internal error; see the server log"))
        response.headers.update(headers)
        await response(scope, receive, send)

    async def _answer(self, request: Request, actor: str) -> Response:
        op = self.op
        parsed = await _parse(request, op)
        result = await op.handler(Call(request, self.service, self.keys, parsed, actor,
                                          self.guards.threads))
        return result if op.raw else self.dialect.envelope.ok(_plain(result), op.message, op.status)


async def _parse(request: Request, op: Operation) -> BaseModel:
    if op.body is not None:
        value = parse_json_body(await request.body())
        refuse_query(request, None, op.body)
        return validate(op.body, value)
    await refuse_body(request, op.query)
    if op.query is not None:
        refuse_query(request, op.query)
        return validate(op.query, dict(request.query_params))
    refuse_query(request, None)
    return _Empty()


async def refuse_body(request: Request, query: type[BaseModel] | None) -> None:
    """An operation without a body refuses one (whitespace aside) instead of ignoring it: a scope sent
    in a body the server never reads would widen a delete. The answer names the first field and says
    where it belongs when it is a query parameter."""
    raw = await request.body()
    if not raw.strip():
        return
    value = parse_json_body(raw)
    first = next(iter(value), None) if isinstance(value, dict) else None
    where = (f"; send '{first}' as a query parameter" if query is not None and first in known_names(query)
             else "")
    raise InvalidRequest(f"this operation takes no request body{where}", field=str(first) if first else "body")


def parse_json_body(raw: bytes) -> Any:
    """The JSON value of a request body (empty: ``{}``). Raises ``InvalidRequest`` (field ``body``) for
    what is not JSON, nests deeper than ``MAX_JSON_DEPTH``, holds ``NaN``/``Infinity`` (or a number
    beyond a float), an integer of more than ``MAX_INT_DIGITS`` digits, or text that no store keeps (a lone
    surrogate escape, or a NUL: ``checks.unstorable_in``), this naming the field (``messages.0.name``)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}", field="body") from exc
    except RecursionError as exc:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body",
                             limit=MAX_JSON_DEPTH) from exc
    except ValueError as exc:  # from the two hooks: their message says what
        raise InvalidRequest(f"the request body is not acceptable JSON: {exc}", field="body") from exc
    if _nesting(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body",
                             limit=MAX_JSON_DEPTH)
    found = unstorable_in(value)
    if found is not None:
        place = ".".join(found[0]) or "body"
        raise InvalidRequest(f"{place} {found[1]}", field=place)
    return value


MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 32  # beyond any 64-bit id or count: larger integers are refused, not rounded


def _nesting(value: Any) -> int:
    """The deepest nesting of lists and objects in a parsed JSON value (without recursion)."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_JSON_DEPTH:
                break
            level.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond what a 64-bit float holds")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits exceeds the limit of {MAX_INT_DIGITS}")
    return int(text)


def refuse_query(request: Request, query: type[BaseModel] | None, body: type[BaseModel] | None = None) -> None:
    """A query parameter the operation does not define is refused (a repeated one too: only one value
    would be read), naming where it belongs when it is a field of the body."""
    params = request.query_params
    known = known_names(query) if query is not None else []
    for name in params:
        if name not in known:
            where = (f"; send '{name}' in the JSON body" if body is not None and name in known_names(body)
                     else suggestion(name, known) if known else "; this operation takes no query parameters")
            raise InvalidRequest(f"unknown query parameter '{name}'{where}", field=name)
        if len(params.getlist(name)) > 1:
            raise InvalidRequest(f"query parameter '{name}' is given more than once", field=name)


def validate(model: type[B], value: Any) -> B:
    """The model from untrusted input; the first problem names its field. Keys the model does not know
    are refused, each named with the closest known name."""
    unknown = unknown_fields(model, value)
    if unknown:
        raise InvalidRequest(describe(unknown), field=dotted(unknown[0][0]),
                             unknown=[dotted(loc)[:100] for loc, _ in unknown[:MAX_NAMED]], count=len(unknown))
    for key, problem in mistyped_scalars(model, value)[:1]:
        raise InvalidRequest(f"{key}: {problem}", field=key)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidRequest.naming_field(exc, errors=len(exc.errors())) from exc


async def answer_frames(stream: ChatStream, render: Callable[[ChatEvent], list[dict[str, str]]],
                        error: Callable[[MemosError], dict[str, str]]) -> AsyncIterator[dict[str, str]]:
    """The SSE frames of a chat answer as the model writes it, each event as ``render`` shows it. A
    failure mid-answer is ``error``'s frame, the last (logged when it is a bug); the model's stream is
    closed however the answer ends, a client gone mid-answer included (nothing is stored then)."""
    try:
        async for event in iterate_in_threadpool(stream):
            for shown in render(event):
                yield shown
    except Exception as exc:
        failure = exc if isinstance(exc, MemosError) else MemosError("internal error; see the server log")
        if failure is not exc:
            log.exception("chat stream failed")
        yield error(failure)
    finally:
        stream.close()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
