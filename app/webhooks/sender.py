"""Sending webhook deliveries: one signed attempt at a time, retried with backoff for about an hour.

`WebhookSender.attempt` makes one attempt and says what happened; `Dispatcher.run_due` takes the
due deliveries from an outbox, attempts them and records each outcome. A background thread in
each process runs `run_due` (woken at once when this process adds a delivery); a queue worker can
call `run_due` itself instead.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import requests

from app.background import ProcessThread
from app.downloads import DownloadRefused, guarded_session, refusal_behind
from app.webhooks.outbox import Delivery, Outbox
from app.webhooks.signing import signed_headers
from app.webhooks.targets import TargetRefused, check_target

log = logging.getLogger("gateway")

# waits after the 1st, 2nd... failed attempt: 7 attempts over about 62 minutes, then the delivery is given up
RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0, 1200.0, 1800.0)
JITTER = 0.1
READ_TIMEOUT = 15.0
POLL_INTERVAL = 5.0   # how often a dispatcher looks for deliveries added (or due) elsewhere
BATCH = 16
SENDING_THREADS = 4
USER_AGENT = "image-gateway-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    error: str | None = None
    permanent: bool = False  # no retry can help (the URL is refused now; the receiver answered 410 Gone)


class WebhookSender:
    """Signs and POSTs one delivery through a session that refuses private peers unless allowed."""

    def __init__(self, secret: bytes, allow_private: bool, connect_timeout: float,
                 read_timeout: float = READ_TIMEOUT, clock: Callable[[], float] = time.time):
        self.secret = secret
        self.allow_private = allow_private
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        self._session = guarded_session(allow_private)

    def attempt(self, delivery: Delivery) -> Outcome:
        try:
            check_target(delivery.url, self.allow_private)  # its host may resolve elsewhere by now
        except TargetRefused as exc:
            return Outcome(False, exc.detail, permanent=True)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   **signed_headers(self.secret, delivery.id, delivery.body, int(self.clock()))}
        try:
            response = self._session.post(delivery.url, data=delivery.body, headers=headers, timeout=self.timeout,
                                          allow_redirects=False)
        except DownloadRefused as exc:
            return Outcome(False, exc.detail, permanent=True)
        except requests.RequestException as exc:
            refused = refusal_behind(exc)
            if refused is not None:
                return Outcome(False, refused.detail, permanent=True)
            return Outcome(False, f"{type(exc).__name__} calling the webhook URL")
        with response:
            if 200 <= response.status_code < 300:
                return Outcome(True)
            return Outcome(False, f"the receiver answered HTTP {response.status_code}",
                           permanent=response.status_code == 410)


def retry_delay(attempts_made: int) -> float | None:
    """Seconds to wait after `attempts_made` failed attempts, or None when the delivery is given up."""
    if attempts_made > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts_made - 1] * random.uniform(1 - JITTER, 1 + JITTER)


class Dispatcher:
    """Moves deliveries from the outbox to their receivers; one per process, safe with many."""

    def __init__(self, outbox: Outbox, sender: WebhookSender, delays: Callable[[int], float | None] = retry_delay,
                 poll_interval: float = POLL_INTERVAL):
        self.outbox = outbox
        self.sender = sender
        self.delays = delays
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._thread = ProcessThread("webhooks", self._loop)

    def wake(self) -> None:
        """Have this process's thread look for due deliveries now (one was just added)."""
        self.ensure_running()
        self._wake.set()

    def run_due(self) -> int:
        """Attempt every due delivery (several at a time); the number attempted."""
        due = self.outbox.claim_due(self.sender.clock(), BATCH)
        if not due:
            return 0
        with ThreadPoolExecutor(max_workers=min(SENDING_THREADS, len(due)), thread_name_prefix="webhook") as pool:
            list(pool.map(self._deliver, due))
        return len(due)

    def ensure_running(self) -> None:
        """Start this process's dispatcher thread unless it runs."""
        self._thread.ensure_running()

    def stop(self) -> None:
        """End this process's dispatcher thread after its current pass (pending deliveries stay kept)."""
        self._wake.set()
        self._thread.stop()

    def _deliver(self, delivery: Delivery) -> None:
        outcome = self.sender.attempt(delivery)
        attempts = delivery.attempts + 1
        if outcome.delivered:
            self.outbox.finish(delivery)
            log.info("webhook %s delivered (attempt %d)", delivery.id, attempts)
            return
        delay = None if outcome.permanent else self.delays(attempts)
        if delay is None:
            self.outbox.give_up(delivery, outcome.error or "failed")
            log.warning("webhook %s given up after %d attempts: %s", delivery.id, attempts, outcome.error)
            return
        self.outbox.reschedule(delivery, self.sender.clock() + delay, outcome.error or "failed")
        log.info("webhook %s attempt %d failed (%s); next in %.0f s", delivery.id, attempts, outcome.error, delay)

    def _loop(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                while self.run_due():
                    pass
                upcoming = self.outbox.next_due()
            except Exception:  # the thread must outlive a bad pass
                log.exception("webhook dispatcher pass failed")
                upcoming = None
            wait = self.poll_interval
            if upcoming is not None:
                wait = min(wait, max(0.05, upcoming - self.sender.clock()))
            self._wake.wait(wait)
            self._wake.clear()
