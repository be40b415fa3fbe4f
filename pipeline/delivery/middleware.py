"""ASGI middleware of `krimppost serve`: a request body limit and the security headers.

Both wrap the whole application, so every route (the app's pages and the static preview
of outbox/site/) gets them, and no handler has to remember them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class _TooLarge(Exception):
    """Raised from `receive` once the body has passed the limit."""


class BodyLimit:
    """At most `limit` bytes of request body, with or without a Content-Length.

    A Content-Length over the limit is refused before anything is read. Otherwise the
    bytes are counted as they stream in (a chunked body has no length to check), and the
    request is answered `413` as soon as the count passes the limit: the rest is never
    read, so a server's memory does not grow with what a client sends.
    """

    def __init__(self, app: ASGIApp, limit: int, reject: Callable[[], Response]) -> None:
        self.app = app
        self.limit = limit
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracked_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if started:  # a handler that answers while it reads: nothing left to say
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        response = self.reject()
        # the unread rest of the body makes the connection unusable for another request
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class SecurityHeaders:
    """Adds `headers` to every response that does not set them itself."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
