"""Raw ASGI handlers for the few hot POST routes, in front of FastAPI's routing.

A one-event ingest request or a WeCom callback does little work of its own; FastAPI's routing,
dependency solving, request object and response classes cost more than that work
(bench/ingest.py). `FastPaths` answers exact `(method, path)` pairs with a plain ASGI handler
and passes everything else — including the same path with another method or a trailing slash —
to the application. The routes stay declared in FastAPI too, so OpenAPI documents them and the
schemathesis run reaches them.

Errors a handler raises as `ApiError` are answered with the API's one error shape; anything
else reaches Starlette's ServerErrorMiddleware (a 500), which sits outside this middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from siyu.api_errors import ApiError, error_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# A handler gets the ASGI scope and the whole body; it answers (status, JSON bytes).
Handler = Callable[[Scope, bytes], Awaitable[tuple[int, bytes]]]

MAX_BODY = 32 * 1024 * 1024  # bytes; a larger body is refused before it is read whole


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "too_large", f"the body is larger than {limit:,} bytes")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when the client went away before sending all of it. Over
    `limit` bytes (by its Content-Length, or once read that far) raises BodyTooLarge."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def route_path(scope: Scope) -> str:
    """The path the application routes on (without a root path a proxy mounted it under)."""
    path: str = scope["path"]
    root = scope.get("root_path")
    return path[len(root) :] if root and path.startswith(root) else path


def header(scope: Scope, name: bytes) -> str:
    """One request header (`name` in lower case) as text, or ''."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


async def respond(send: Send, status: int, body: bytes, content_type: bytes = JSON) -> None:
    """Answer a request whole (fresh messages each time: a middleware outside may edit them)."""
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class FastPaths:
    """ASGI middleware: `routes[(method, path)]` answers those requests; the app the rest."""

    def __init__(self, app: Any, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], route_path(scope)))
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, MAX_BODY)
            if body is None:
                return  # nobody to answer
            status, answer = await handler(scope, body)
        except ApiError as e:
            status, answer = e.status, orjson.dumps(error_body(e.code, e.message, e.field))
        await respond(send, status, answer)
