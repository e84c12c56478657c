"""Webhooks signed as Standard Webhooks, persisted until delivered, retried with backoff for about an hour.

A job's end keeps its delivery in the same transaction (`Webhooks.send_within`), then `wake` has
this process send it at once; `requested_target` reads and checks a request's `Webhook-URL` header
(a 400 naming the header when the URL is refused).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from app.core.errors import InvalidRequest
from app.webhooks.outbox import DatabaseOutbox, Delivery
from app.webhooks.sender import Dispatcher, WebhookSender
from app.webhooks.targets import TargetRefused, check_target

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from app.config import Settings
    from app.db import Database

HEADER = "Webhook-URL"
NO_SECRET = ("Webhook-URL needs webhooks to be signed, and this gateway has no signing secret: "
             "set GATEWAY_WEBHOOK_SECRET (whsec_ + base64)")


class Webhooks:
    """The app's webhook sender: built from the settings without I/O; its thread starts at the first use."""

    def __init__(self, settings: "Settings", db: "Database"):
        self.allow_private = settings.allow_private_urls
        self.dispatcher: Dispatcher | None = None
        self.outbox: DatabaseOutbox | None = None
        if settings.webhook_secret:
            outbox = self.outbox = DatabaseOutbox(db)
            sender = WebhookSender(settings.webhook_secret, settings.allow_private_urls, settings.connect_timeout)
            self.dispatcher = Dispatcher(outbox, sender)

    @property
    def enabled(self) -> bool:
        return self.dispatcher is not None

    def requested_target(self, headers: Mapping[str, str]) -> str | None:
        """The request's Webhook-URL when it may be called; None without one; 400 naming the header."""
        url = headers.get(HEADER)
        if url is None:
            return None
        if not self.enabled:
            raise InvalidRequest(NO_SECRET, param=HEADER, code="webhooks_not_configured")
        try:
            return check_target(url.strip(), self.allow_private)
        except TargetRefused as exc:
            raise InvalidRequest(f"{HEADER}: {exc}", param=HEADER, code="invalid_webhook_url") from None

    def send_within(self, connection: "Connection", url: str, body: bytes) -> Delivery:
        """Keep a delivery of `body` (JSON) to `url` in the caller's transaction; call `wake` once it committed."""
        delivery = self.new_delivery(url, body)
        self.outbox.add_within(connection, delivery)
        return delivery

    def new_delivery(self, url: str, body: bytes) -> Delivery:
        if self.dispatcher is None:
            raise RuntimeError("webhooks are not configured (GATEWAY_WEBHOOK_SECRET)")
        return Delivery.new(url, body, self.dispatcher.sender.clock())

    def wake(self) -> None:
        """Have this process's dispatcher look for due deliveries now."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def ensure_running(self) -> None:
        """Resume deliveries left pending (by this process before a restart, or by others)."""
        if self.dispatcher is not None:
            self.dispatcher.ensure_running()
