"""The one Flask error handler: every exception leaves as an OpenAI-style `{"error": {...}}` answer.

The exception tree itself lives in app/core/errors.py, free of Flask, so that every layer can raise it.
"""
from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from app.core.errors import GatewayError, InvalidRequest, MethodNotAllowed, PayloadTooLarge, RouteNotFound
from app.jsonio import json_response

log = logging.getLogger("gateway")

# Flask/werkzeug's own HTTP errors, re-expressed in our shape.
_HTTP_EXCEPTIONS = {
    404: (RouteNotFound, "Unknown path; see GET /v1/models and POST /v1/chat/completions"),
    405: (MethodNotAllowed, "Method not allowed on this path"),
    413: (PayloadTooLarge, "Request body is larger than the limit of {limit} bytes (GATEWAY_MAX_BODY_BYTES)"),
}


def render(error: GatewayError) -> Response:
    response = json_response(error.body(), status=error.status)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _from_http_exception(app: Flask, exc: HTTPException) -> GatewayError:
    if exc.code in _HTTP_EXCEPTIONS:
        cls, message = _HTTP_EXCEPTIONS[exc.code]
        error = cls(message.format(limit=app.config.get("MAX_CONTENT_LENGTH")))
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                error.headers["Allow"] = ", ".join(sorted(allowed))
        return error
    if exc.code and 400 <= exc.code < 500:
        error = InvalidRequest(exc.description or exc.name)
        error.status = exc.code
        return error
    return GatewayError("The gateway failed to handle this request")


def init_app(app: Flask) -> None:
    """Install the one handler: every exception leaves as `{"error": {...}}` with the right status."""

    @app.errorhandler(Exception)
    def handle_any(exc: Exception) -> Response:
        if isinstance(exc, GatewayError):
            if exc.status >= 500:
                log.warning("upstream failure provider=%s status=%s: %s", exc.provider, exc.status, exc.message)
            return render(exc)
        if isinstance(exc, HTTPException):
            return render(_from_http_exception(app, exc))
        log.exception("unexpected error while handling a request")
        return render(GatewayError("The gateway failed to handle this request; the error was logged"))
