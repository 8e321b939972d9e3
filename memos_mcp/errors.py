"""The one exception tree of memos-mcp.

    MemosError                      code, HTTP status, message, details
    ├── InvalidRequest              400  bad input: empty text, bad filter, wrong type
    │   ├── PayloadTooLarge         413  text beyond max_memory_size
    │   └── PathNotAllowed          403  doc_path outside the import roots
    ├── Unauthorized                401  no or unknown credentials
    ├── Forbidden                   403  known principal, no permission
    ├── NotFound                    404  unknown user, cube, memory, task, route
    ├── MethodNotAllowed            405  a route that exists, asked with another HTTP method
    ├── Conflict                    409  the thing already exists
    ├── RateLimited                 429  too many requests for this API key; retry after N seconds
    │   └── TooManySessions         429  too many open MCP sessions for this user
    ├── NotSupported                501  a feature that is turned off (graph.enabled false)
    ├── ConfigError                 500  configuration that cannot work (dimension mismatch...)
    ├── StoreLocked                 503  another process holds the data directory
    ├── DataDirReadOnly             403  the data directory is not writable (a write, or opening it to write)
    ├── BackendUnavailable          503  a store, embedder or model endpoint is unreachable
    │   ├── LLMNotConfigured        503  an operation needs a language model and none is set
    │   └── ModelOutputInvalid      502  the language model's answer stayed unusable after a retry
    └── StorageError                507  a store failed while reading or writing, or the data
                                         directory's file system is (nearly) full

Transports never format these: MCP raises them as tool errors, each REST dialect renders
them in its own envelope. Context lives in attributes, not only in the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


def first_problem(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """Where the first problem of a validation error lies (dotted, under ``prefix``) and what it is."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in (prefix, *first["loc"]) if p != ""), first["msg"]


def _encodable(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\ud800``): an error that quotes what a
    caller sent (a JSON key ``"k\\ud800"``) must still encode as UTF-8 on every face."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class MemosError(Exception):
    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        message = _encodable(message)
        super().__init__(message)
        self.message = message
        self.details = {k: _encodable(v) if isinstance(v, str) else v for k, v in details.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(MemosError):
    code = "invalid_request"
    status = 400

    @classmethod
    def naming_field(cls, exc: ValidationError, prefix: str = "", hint: str = "",
                     **details: Any) -> InvalidRequest:
        """The first problem of ``exc``, naming its field (``body`` when it is the whole input)."""
        where, problem = first_problem(exc, prefix)
        where = where or "body"
        return cls(f"{where}: {problem}{hint}", field=where, **details)


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"
    status = 413


class ResponseTooLarge(MemosError):
    """An answer larger than its face can carry: one MCP message of the SDK's HTTP clients (1 MiB per
    server-sent event; ``memos_mcp.mcp.fit``). Only the answer is not sent: what the call did stands."""

    code = "response_too_large"
    status = 500


class PathNotAllowed(InvalidRequest):
    code = "path_not_allowed"
    status = 403


class Unauthorized(MemosError):
    code = "unauthorized"
    status = 401


class Forbidden(MemosError):
    code = "forbidden"
    status = 403


class NotFound(MemosError):
    code = "not_found"
    status = 404

    def __init__(self, kind: str, ident: str, hint: str = "") -> None:
        message = f"{kind} '{ident}' does not exist"
        super().__init__(f"{message}. {hint}" if hint else message, kind=kind, id=ident)
        self.kind = kind
        self.ident = ident


class MethodNotAllowed(MemosError):
    code = "method_not_allowed"
    status = 405


class Conflict(MemosError):
    code = "conflict"
    status = 409


class RateLimited(MemosError):
    code = "rate_limit_exceeded"
    status = 429

    def __init__(self, limit: str, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"rate limit of {limit} exceeded; retry in {retry_after} s", limit=limit,
                         retry_after=retry_after)
        self.limit = limit
        self.retry_after = retry_after
        self.headers = {**(headers or {}), "Retry-After": str(retry_after)}  # what the 429 answer carries


class TooManySessions(RateLimited):
    """A user holds as many open MCP sessions as it may (``server.max_sessions_per_user``)."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"{limit} open MCP sessions per user", retry_after)
        self.message = (f"this user already holds {limit} open MCP sessions, the most allowed: end one "
                        "(DELETE /mcp with its Mcp-Session-Id, or close its SSE stream) or let an idle one expire")


class NotSupported(MemosError):
    code = "not_supported"
    status = 501


class ConfigError(MemosError):
    code = "config_error"
    status = 500


class StoreLocked(MemosError):
    code = "store_locked"
    status = 503


class BackendUnavailable(MemosError):
    code = "backend_unavailable"
    status = 503


class ModelOutputInvalid(BackendUnavailable):
    code = "model_output_invalid"
    status = 502


class LLMNotConfigured(BackendUnavailable):
    code = "llm_not_configured"

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"No language model configured: '{operation}' needs one. Set MEMOS_LLM__BASE_URL and "
            "MEMOS_LLM__MODEL (or OPENAI_API_KEY) to an OpenAI-compatible endpoint.",
            operation=operation,
        )


class StorageError(MemosError):
    """A store could not read or write: the disk is full (or below ``storage.min_free_bytes``), a
    file is damaged, a driver failed. 507 (Insufficient Storage): the request was not carried out
    and left nothing behind; reads and other requests keep working."""

    code = "storage_error"
    status = 507


class DataDirReadOnly(MemosError):
    """The data directory is not writable: opening it to write, or a write to a service opened
    read-only (``serve --read-only``, ``export`` over a read-only mount or snapshot)."""

    code = "read_only"
    status = 403

    @classmethod
    def refused(cls, what: str, **details: Any) -> DataDirReadOnly:
        """The error of a write to ``what`` (a store and where it is) of a service opened read-only, which
        names every cause: the setting, a directory that cannot be written, a disk too full to write."""
        return cls(f"cannot write to {what}: the memory service is opened read-only (the read_only setting: "
                   "MEMOS_READ_ONLY or --read-only; or a data directory that cannot be written, or whose disk "
                   "is below storage.min_free_bytes)", **details)
