"""Request-size limit as ASGI middleware: 413 before any JSON parsing.

The declared ``Content-Length`` is checked first; then the body is read (at most the limit + 1
bytes, so a chunked or lying client cannot make us buffer more) and replayed to the app.
"""

from __future__ import annotations

from .errors import APIError


def _content_length(headers) -> str | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            return value.decode("latin-1")
    return None


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 (OpenAI-shaped)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = self._check_declared(scope)
        if error is None:
            body, more, error = await self._read(receive)
        if error is not None:
            return await error.response()(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)

    def _check_declared(self, scope) -> APIError | None:
        declared = _content_length(scope.get("headers", []))
        if declared is None:
            return None
        if not declared.strip().isdigit():
            return APIError(400, "Invalid Content-Length header", code="invalid_request")
        if int(declared) > self.max_bytes:
            return self._too_large()
        return None

    async def _read(self, receive):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", False, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return b"", False, self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False, None

    def _too_large(self) -> APIError:
        return APIError(413, f"Request body too large: the limit is {self.max_bytes} bytes",
                        code="request_too_large")


def _replay(body: bytes, receive):
    """A ``receive`` that yields the buffered body once, then defers to the real one
    (so disconnects are still seen by streaming responses)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
