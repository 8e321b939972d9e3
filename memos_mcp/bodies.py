"""Request bodies read through a count, on every HTTP face (the REST dialects, the key routes, the
UI's forms): an oversized body is refused as soon as it is known to be too large, by its declared
``Content-Length`` or while it streams in (chunked), so it is never held in memory whole."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from memos_mcp.errors import PayloadTooLarge


def bounded(request: Request, limit: int | None) -> Request:
    """``request`` with its body read through a count of bytes. The first read raises
    ``PayloadTooLarge`` (413, field ``body``) when the declared ``Content-Length`` passes ``limit``
    (before a byte is read); a later read raises it as soon as the bytes received pass ``limit``.
    Nothing is checked before the body is read, so guards that come first (authentication, rate
    limits) answer first. ``limit`` None: the request as it is."""
    if limit is None:
        return request
    size = 0

    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds {limit} bytes", field="body", limit=limit)

    async def receive() -> Message:
        nonlocal size
        declared = request.headers.get("content-length", "")
        if size == 0 and declared.isdigit() and int(declared) > limit:
            raise too_large()
        message = await request.receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise too_large()
        return message
    return Request(request.scope, receive)
