"""The link to GATEWAY_REDIS_URL shared by the stores that use Redis: checked at start-up, connected on first use.

Creating a link connects to nothing (and does not import `redis` beyond URL parsing), so each gunicorn
worker makes its own connection pool after the fork. After a failure the link is not tried again for
a few seconds, so that requests do not each pay the timeouts of a Redis that is down. Nothing it
reports carries the password or a command (those can quote stored data).
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

from app.core.settings import ConfigError

CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0    # stored values are a few MB at most; this is far above a healthy round trip
OUTAGE_COOLDOWN = 5.0   # after a failure, skip Redis this long
SCHEMES = ("redis", "rediss", "unix")
VARIABLE = "GATEWAY_REDIS_URL"


class RedisUnavailable(Exception):
    """Redis cannot be used right now; the message names where it is, never how to log in."""


class RedisLink:
    def __init__(self, url: str):
        location = urlsplit(url)
        try:
            port = location.port
        except ValueError:
            raise ConfigError(f"{VARIABLE} has a port that is not a number") from None
        if location.scheme not in SCHEMES:
            raise ConfigError(f"{VARIABLE} must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        from redis.connection import parse_url  # parsing only: no connection is made here
        try:
            parse_url(url)
        except ValueError as exc:  # redis-py's messages name the bad option, never the password
            raise ConfigError(f"{VARIABLE} is not usable: {exc}") from None
        self._url = url
        self.where = f"redis at {location.hostname or location.path}" + (f":{port}" if port else "")
        self._client = None
        self._lock = threading.Lock()
        self._down_until = 0.0

    @contextlib.contextmanager
    def session(self) -> Iterator[object]:
        """The client, for one exchange; any Redis failure leaves as RedisUnavailable."""
        if time.monotonic() < self._down_until:
            raise RedisUnavailable(f"{self.where} failed less than {OUTAGE_COOLDOWN:g}s ago")
        import redis
        try:
            yield self.client()
        except (redis.RedisError, OSError) as exc:
            if not isinstance(exc, redis.ResponseError):
                self._down_until = time.monotonic() + OUTAGE_COOLDOWN
            raise RedisUnavailable(f"{self.where}: {type(exc).__name__}") from None

    def client(self):
        with self._lock:
            if self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry
                self._client = redis.Redis.from_url(
                    self._url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                    # one quick retry covers a pooled connection that Redis closed; more only adds waiting
                    retry=Retry(NoBackoff(), 1))
            return self._client
