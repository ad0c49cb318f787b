"""API-key check as ASGI middleware, ahead of routing, so no route can be reached around it.

Every request needs ``Authorization: Bearer <key>`` except ``GET``/``HEAD /health``. The exemption
is an exact match on the decoded path that the router itself uses, so ``//v1/models``,
``/v1/models/``, ``/v1%2Fmodels``, ``/health/../v1/models`` or a forged ``Host`` header reach
either the check or a 404 -- never an unauthenticated model route. Keys are compared in constant
time.
"""

from __future__ import annotations

import hmac

from .errors import APIError

PUBLIC = {("GET", "/health"), ("HEAD", "/health")}


def _bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    values = [v for k, v in headers if k.lower() == b"authorization"]
    if len(values) != 1:  # none, or several (ambiguous): refuse
        return None
    scheme, _, token = values[0].strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None


class APIKeyMiddleware:
    """Refuse requests without the right bearer token (401, OpenAI-shaped)."""

    def __init__(self, app, api_key: str | None):
        self.app = app
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no websocket routes exist; refuse rather than route
            return await send({"type": "websocket.close", "code": 1008})
        if (scope["method"], scope["path"]) in PUBLIC:
            return await self.app(scope, receive, send)
        token = _bearer(scope.get("headers", []))
        if token is None:
            error = APIError(401, "Missing API key: send 'Authorization: Bearer <key>'",
                             code="missing_api_key")
        elif not hmac.compare_digest(token, self.key):
            error = APIError(401, "Incorrect API key provided", code="invalid_api_key")
        else:
            return await self.app(scope, receive, send)
        response = error.response()
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
