"""The image-generation gateway: an OpenAI-compatible chat-completions front for image providers.

This package module stays import-light on purpose: gunicorn imports `app.gunicorn_conf`, which
imports this file first, and the metrics directory must be set before prometheus_client loads.
"""
from __future__ import annotations

import atexit
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from flask import Flask

    from app.auth import Authenticator
    from app.config import Settings
    from app.db import Database
    from app.keys.store import KeyStore
    from app.pricing import PriceBook
    from app.quotas.admission import Quotas
    from app.usage.ledger import Ledger
    from app.downloads import Downloader
    from app.image_store import ImageStore
    from app.jobs import Jobs
    from app.resilience import ChannelHealth, RetryPolicy
    from app.routing import Router
    from app.webhooks import Webhooks


LEDGER_SPOOL_DIR = "ledger-spool"


@dataclass
class Gateway:
    """Per-app state built once by the factory: settings, client keys, provider clients."""

    settings: "Settings"
    auth: "Authenticator"
    router: "Router"
    downloader: "Downloader"
    started: int
    retry_policy: "RetryPolicy"
    health: "ChannelHealth"
    db: "Database"
    key_store: "KeyStore"
    quotas: "Quotas"
    prices: "PriceBook"
    ledger: "Ledger"
    images: "ImageStore | None" = None  # where pictures delivered as links live (GATEWAY_IMAGE_STORE)
    webhooks: "Webhooks | None" = None  # signed deliveries to Webhook-URL receivers (GATEWAY_WEBHOOK_SECRET)
    jobs: "Jobs | None" = None          # asynchronous jobs (Prefer: respond-async), in-process or on Redis
    readiness_checks: list = field(default_factory=list)  # (name, callable raising when not ready)


def create_app(config: Mapping[str, Any] | "Settings" | None = None) -> "Flask":
    """Build the app. `config` is None (read os.environ), an env-like dict (tests), or Settings."""
    from flask import Flask

    from app import api, errors, idempotency, image_store, metrics, request_body, request_log, shedding
    from app.core import redaction
    from app.usage import recording
    from app.auth import Authenticator
    from app.config import Settings
    from app.db import Database, migrate
    from app.downloads import Downloader, DownloadPolicy
    from app.core import context
    from app.keys.store import KeyStore
    from app.pricing import PriceBook
    from app.quotas.admission import Quotas
    from app.resilience import ChannelHealth, RetryPolicy
    from app.usage.ledger import Ledger
    from app.routing import Router
    from app.jobs import Jobs, submission
    from app.webhooks import Webhooks

    settings = config if isinstance(config, Settings) else Settings.from_env(config)
    redaction.install(settings)  # before anything can log or answer an error
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Flask would answer OPTIONS itself with an empty text/html 200; every answer here is JSON
    # (OPTIONS is a 405 naming the methods in Allow). Read when a route is added: set before any is,
    # the static files' route included.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.static_folder = "static"
    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=app.send_static_file)
    downloader = Downloader(DownloadPolicy(
        max_bytes=settings.download_max_bytes, timeout=settings.download_timeout,
        connect_timeout=settings.connect_timeout, allow_private=settings.allow_private_urls,
        max_concurrent=settings.download_concurrency))
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    migrate.prepare(db)  # SQLite: brought up to date; PostgreSQL: checked (gunicorn checked it once before)
    key_store = KeyStore(db)
    quotas = Quotas(db, settings.redis_url)
    ledger = Ledger(db, os.path.join(settings.data_dir, LEDGER_SPOOL_DIR),
                    on_lost=lambda reason: metrics.LEDGER_ROWS_LOST.labels(reason).inc())
    webhooks = Webhooks(settings, db)
    app.extensions["gateway"] = Gateway(
        settings=settings,
        auth=Authenticator(settings.api_keys, key_store, admin_token=settings.admin_token),
        router=Router(settings, downloader),
        downloader=downloader,
        started=int(time.time()),
        retry_policy=RetryPolicy(max_attempts=settings.max_attempts, backoff=settings.retry_backoff,
                                 max_wait=settings.retry_max_wait, retry_read_timeouts=settings.retry_read_timeouts),
        health=ChannelHealth(failures_to_cool=settings.cooldown_failures, cooldown=settings.cooldown_seconds),
        images=image_store.from_settings(settings),
        webhooks=webhooks,
        jobs=Jobs(settings, db, webhooks, app),
        db=db,
        key_store=key_store,
        quotas=quotas,
        prices=PriceBook.load(settings.routing.prices),
        ledger=ledger,
        readiness_checks=[("database", db.ping)] + ([("redis", quotas.ping)] if settings.redis_url else []),
    )
    ledger.replay_orphans()  # rows a killed worker or a previous run left spooled
    atexit.register(ledger.close)
    if settings.trusted_proxies:
        # only then are X-Forwarded-For/-Proto believed, and only for that many hops; -Host and -Prefix
        # never are (PaaS routers pass a client's own values through)
        from werkzeug.middleware.proxy_fix import ProxyFix
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    logging.getLogger("gateway").setLevel(settings.log_level)
    app.before_request(context.begin)  # first: every later hook and view may read the request context
    request_body.init_app(app, settings.body_timeout)
    request_log.init_app(app)
    recording.init_app(app)
    idempotency.init_app(app)
    submission.init_app(app)
    errors.init_app(app)
    api.init_app(app)
    # deliveries left pending by a restart resume once this worker serves its first request; so does
    # the job keeper (lease renewals, jobs of dead runners, expired jobs)
    app.before_request(app.extensions["gateway"].webhooks.ensure_running)
    app.before_request(app.extensions["gateway"].jobs.ensure_running)
    shedding.init_app(app, settings.max_inflight)  # outermost: a refused generation costs no Flask work
    return app
