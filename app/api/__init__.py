"""HTTP surface: thin blueprints that parse, validate, delegate and answer."""
from __future__ import annotations

from flask import Flask, Response, current_app, g

from app.api import admin, chat, health, image_links, images, jobs, metrics, models, playground
from app.auth import authenticate_request
from app.core import context
from app.core.errors import GatewayError
from app.core.routes import API_PREFIXES
from app.quotas.admission import rate_headers
from app.usage import meter as metering


def require_client_key() -> None:
    """before_request hook for every /v1 and /api/v1 blueprint: sets `flask.g.client_key` (and its id in the
    request context: what providers keep per client, such as Gemini's thought signatures, is scoped by it)."""
    key = authenticate_request()
    context.set_client(key.id)


def rate_limit_headers(response: Response) -> Response:
    """OpenAI's x-ratelimit-*-requests headers on every answer to a key with an rpm limit."""
    key = g.get("client_key")
    if key is None or key.limits.rpm is None or "x-ratelimit-limit-requests" in response.headers:
        return response
    meter = metering.current()
    state = getattr(meter.admission, "request_window", None) if meter is not None else None
    if state is None:
        try:
            state = current_app.extensions["gateway"].quotas.peek_requests(key)
        except GatewayError:
            return response  # the store is down: the answer goes out without the headers
    response.headers.update(rate_headers(state))
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(playground.bp)
    app.register_blueprint(image_links.bp)
    app.register_blueprint(admin.bp)
    app.after_request(rate_limit_headers)
    for prefix in API_PREFIXES:
        for module in (chat, images, jobs, models):
            bp = module.blueprint(prefix)
            bp.before_request(require_client_key)
            app.register_blueprint(bp)
