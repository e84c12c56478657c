"""Retries within a channel, fallback across channels, and cooling down channels that keep failing.

Only failures after which asking again is safe are retried or passed on to the next channel:
connection failures, 429 and 502/503/504 from the upstream. A read timeout is not retried unless
GATEWAY_RETRY_READ_TIMEOUTS is on: the upstream may have made (and billed) the picture. A 400, a
moderation block or a malformed answer ends the request at once. Waits grow exponentially with
full jitter, honour Retry-After, and never run past the request's deadline. Channel health is
kept per gunicorn worker process (each worker learns on its own).
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from app import observability
from app.core import context
from app.core.errors import GatewayError
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageEvents, ImageResult
from app.generation import ImageClient


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 8.0
    retry_read_timeouts: bool = False

    def may_retry(self, error: GatewayError) -> bool:
        return error.retriable or (self.retry_read_timeouts and error.read_timeout)

    def wait(self, attempt: int, error: GatewayError, rng: random.Random) -> float:
        """Seconds before retry number `attempt` (1-based): jittered exponential, at least Retry-After."""
        ceiling = min(self.max_wait, self.backoff * (2 ** (attempt - 1)))
        return max(rng.uniform(0, ceiling), error.retry_after or 0.0)


@dataclass
class ChannelHealth:
    """Consecutive retriable failures per channel; past the threshold a channel cools down."""

    failures_to_cool: int = 3
    cooldown: float = 30.0
    _failures: dict[str, int] = field(default_factory=dict)
    _cool_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cooled(self, channel: str) -> bool:
        with self._lock:
            return self._cool_until.get(channel, 0.0) > time.monotonic()

    def failed(self, channel: str) -> None:
        with self._lock:
            count = self._failures.get(channel, 0) + 1
            self._failures[channel] = count
            if count >= self.failures_to_cool:
                self._cool_until[channel] = time.monotonic() + self.cooldown

    def succeeded(self, channel: str) -> None:
        with self._lock:
            self._failures.pop(channel, None)
            self._cool_until.pop(channel, None)


class RetryingClient:
    """A provider client seen through the retry policy: each upstream call is retried on its own,
    so one failed call of an `n` fan-out does not re-run (and re-bill) its siblings."""

    def __init__(self, client: ImageClient, policy: RetryPolicy, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.policy = policy
        self._rng = rng or random.Random()
        self._sleep = sleep

    def max_n(self, model: str) -> int:
        return self.client.max_n(model)

    def generate(self, request: ImageRequest) -> ImageResult:
        return self._retrying(lambda: self.client.generate(request), lambda: True)

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        sent = []

        def forward(index: int, image: GeneratedImage) -> None:
            sent.append(index)
            on_partial(index, image)
        # once a preview went out, a second try would show the client a different picture's previews
        return self._retrying(lambda: self.client.generate_streaming(request, forward), lambda: not sent)

    def _retrying(self, call: Callable[[], ImageResult], still_clean: Callable[[], bool]) -> ImageResult:
        attempt = 0
        while True:
            attempt += 1
            _count_attempt()
            try:
                return call()
            except GatewayError as error:
                if attempt >= self.policy.max_attempts or not self.policy.may_retry(error) or not still_clean():
                    raise
                wait = self.policy.wait(attempt, error, self._rng)
                remaining = context.remaining()
                if remaining is not None and wait >= remaining:
                    raise  # waiting would end past the deadline: let the caller move on now
                self._sleep(wait)


def with_fallback(routes: list, run: Callable[[object], ImageResult], health: ChannelHealth, policy: RetryPolicy,
                  may_fall_back: Callable[[], bool] = lambda: True) -> tuple[ImageResult, object]:
    """Try `run(route)` on each route in order until one succeeds.

    Cooled-down channels are tried last rather than never (better a tired channel than none). An
    upstream that does not serve the model passes the request on too (a relay behind another route may
    still serve a retired name). A failure that is not retriable, a passed deadline, or `may_fall_back()`
    turning false (a stream already sent part of an answer) ends the search with that failure.
    """
    ordered = [r for r in routes if not health.cooled(r.channel)] + [r for r in routes if health.cooled(r.channel)]
    last: GatewayError | None = None
    for route in ordered:
        observability.note(provider=route.client.name, channel=route.channel)
        try:
            result = run(route)
        except GatewayError as error:
            if not (policy.may_retry(error) or error.try_other_routes):
                raise
            if not error.try_other_routes:  # "no such model here" says nothing about the channel's health
                health.failed(route.channel)
            last = error
            remaining = context.remaining()
            if not may_fall_back() or (remaining is not None and remaining <= 0):
                raise
            continue
        health.succeeded(route.channel)
        return result, route
    assert last is not None
    raise last


def _count_attempt() -> None:
    stats = observability.current()
    if stats is not None:
        stats.add(attempts=1)




class EmissionGuard(ImageEvents):
    """Passes streaming events on and remembers whether any reached the client's stream."""

    def __init__(self, events: ImageEvents):
        self._events = events
        self.emitted = False

    def partial(self, slot: int, partial_index: int, image: GeneratedImage) -> None:
        self.emitted = True
        self._events.partial(slot, partial_index, image)

    def finished(self, slot: int, result: ImageResult) -> None:
        self.emitted = True
        self._events.finished(slot, result)
