"""HTTP surface: thin blueprints that parse, validate, delegate and answer."""
from __future__ import annotations

from flask import Flask

from app.api import admin, chat, health, image_links, images, metrics, models, playground
from app.auth import authenticate_request


def require_client_key() -> None:
    """before_request hook for every /v1 and /api/v1 blueprint: sets `flask.g.client_key`."""
    authenticate_request()


def init_app(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(playground.bp)
    app.register_blueprint(image_links.bp)
    app.register_blueprint(admin.bp)
    for prefix in ("/v1", "/api/v1"):
        for module in (chat, images, models):
            bp = module.blueprint(prefix)
            bp.before_request(require_client_key)
            app.register_blueprint(bp)
