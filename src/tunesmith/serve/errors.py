"""Every error the server returns, in OpenAI's shape: ``{"error": {message, type, param, code}}``.

FastAPI's own ``{"detail": ...}`` bodies never escape: validation errors, HTTP exceptions (unknown
routes, wrong methods) and unexpected exceptions all go through :func:`install_handlers`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tunesmith.serve")

# HTTP status -> OpenAI error type
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class APIError(Exception):
    """An error response: HTTP status + OpenAI error fields (+ headers such as Retry-After)."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def retry_after(status: int, message: str, code: str, seconds: int = 1) -> APIError:
    """A 429/503 telling the client when to come back."""
    return APIError(status, message, code=code, headers={"Retry-After": str(seconds)})


def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    messages = {404: f"Unknown route: {request.method} {request.url.path}",
                405: f"Method {request.method} is not allowed on {request.url.path}"}
    message = messages.get(exc.status_code) or str(exc.detail)
    code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
    headers = dict(exc.headers or {})
    return APIError(exc.status_code, message, code=code, headers=headers).response()


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return APIError(400, f"Invalid request: {first.get('msg', 'bad request')}", param=param,
                    code="invalid_value").response()


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for the operator; the client sees no internals.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return APIError(500, "The server had an error while processing your request.",
                    code="internal_error").response()


def install_handlers(app: FastAPI) -> None:
    """Route every kind of failure to an OpenAI-shaped body."""
    app.add_exception_handler(APIError, lambda request, exc: exc.response())
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
