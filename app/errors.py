"""The gateway's exception tree and the one handler that renders every failure as an OpenAI error."""
from __future__ import annotations

import logging
import math

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from app.jsonio import json_response

log = logging.getLogger("gateway")


class GatewayError(Exception):
    """Base of every error the gateway answers with; subclasses fix status, type and code."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 provider: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.provider = provider
        self.headers = dict(headers or {})
        # set by the provider client for upstream failures: may the same request be sent again?
        self.retriable = False
        self.read_timeout = False  # the upstream may have finished (and billed) the work
        self.retry_after: float | None = None

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    """The client's request is wrong: bad JSON, a schema violation, an impossible combination."""

    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    """Missing or unknown client key (never used for upstream auth failures)."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    """No provider serves this model, or its provider is not configured."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ProviderRejected(InvalidRequest):
    """The provider refused the prompt or a parameter (moderation, bad size): the caller can fix it."""


class RateLimited(GatewayError):
    """The provider's rate limit or quota; `Retry-After` is passed on when the provider sent one."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(0, math.ceil(retry_after)))


class UpstreamError(GatewayError):
    """The provider failed: 5xx, a bad answer, a refused gateway key, a broken connection."""

    status = 502
    type = "upstream_error"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_timeout"
    code = "upstream_timeout"


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
