"""The gateway's exception tree: every failure a request can end with, and nothing of Flask or requests.

Each class fixes the HTTP status, the OpenAI error `type` and a default `code`; the one handler in
app/errors.py renders them. Provider clients set `retriable`, `read_timeout` and `retry_after` on
upstream failures, and `try_other_routes` when another route may serve what this one refused, so that
retries and fallbacks know whether asking again is safe.
"""
from __future__ import annotations

import math

from app.core import redaction

# A Retry-After longer than this is taken as this: no provider means a day, and no client waits that long.
MAX_RETRY_AFTER = 24 * 3600.0


def _public(text: str | None) -> str | None:
    return redaction.redact(text) if isinstance(text, str) else text


def retry_after_seconds(value: float | None) -> float | None:
    """A usable wait in seconds, or None: infinities, NaN and negatives from upstream headers are dropped."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return min(value, MAX_RETRY_AFTER)


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
        # not worth asking this channel again, but another route to the same name may serve it
        self.try_other_routes = False

    def body(self) -> dict:
        """The OpenAI error object; message, param and code can carry upstream text, so no secret stays in them."""
        return {"error": {"message": _public(self.message), "type": self.type, "param": _public(self.param),
                          "code": _public(self.code)}}


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


class UpstreamModelNotFound(ModelNotFound):
    """The provider answered that it does not serve the model (its 404, NOT_FOUND, model_not_found...).

    Nothing was made or billed, and another route to the same name (a relay) may still serve it.
    """

    def __init__(self, message: str, **kwargs):
        super().__init__(message, **kwargs)
        self.try_other_routes = True


class ModelRetired(UpstreamModelNotFound):
    """The provider does not serve a model its vendor retired (app/providers/retired.py): the message says
    when, and what to ask for instead."""

    code = "model_retired"


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
    """The provider's rate limit or quota; `Retry-After` is passed on when the provider sent a usable one."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        wait = retry_after_seconds(retry_after)
        if wait is not None:
            self.headers["Retry-After"] = str(math.ceil(wait))


class UpstreamError(GatewayError):
    """The provider failed: 5xx, a bad answer, a refused gateway key, a broken connection."""

    status = 502
    type = "upstream_error"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_timeout"
    code = "upstream_timeout"
