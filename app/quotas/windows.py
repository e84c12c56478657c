"""Sliding-window counters per key (requests per minute, images per day): in Redis through the `limits`
library when GATEWAY_REDIS_URL is set, else in the database, so every worker and instance shares them.

Both use the sliding window counter: the previous fixed window's count, weighted by how much of it
still overlaps the last `period` seconds, plus the current window's count. A hit is taken only when
it fits (a refused request costs nothing).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from app.db import Database, DatabaseUnavailable
from app.db.models import RateWindow
from app.quotas.errors import LimitsUnavailable
from app.quotas.locking import lock_key

_WINDOWS = RateWindow.__table__


@dataclass(frozen=True)
class WindowState:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float   # until the window has room for one more (0 when it has room now)


def _weighted(previous: int, current: int, period: int, now: float, window: int) -> float:
    return previous * (period - (now - window)) / period + current


def _wait(previous: int, current: int, period: int, now: float, window: int, limit: int, cost: int) -> float:
    """Seconds until `cost` more fits: the previous window's weight shrinks, then it is forgotten."""
    if current + cost > limit:
        # the current window becomes the previous one at its end, then shrinks in its turn
        return (window + period - now) + (period * (1 - (limit - cost) / current) if current else 0)
    if previous <= 0:
        return 0.0
    fits_at = window + period - (limit - cost - current) * period / previous
    return max(0.0, fits_at - now)


def _statements():
    """Built once: composing SQLAlchemy expressions per request costs more than running them."""
    from sqlalchemy import bindparam, delete, select, update

    w = _WINDOWS.c
    same = (w.key_id == bindparam("kid"), w.name == bindparam("wname"))
    return {
        "counts": select(w.window_start, w.count).where(*same, w.window_start >= bindparam("previous")),
        "add": update(_WINDOWS).where(*same, w.window_start == bindparam("window"))
        .values(count=w.count + bindparam("cost")),
        "open": _WINDOWS.insert().values(key_id=bindparam("kid"), name=bindparam("wname"),
                                         window_start=bindparam("window"), count=bindparam("cost")),
        "forget": delete(_WINDOWS).where(*same, w.window_start < bindparam("previous")),
    }


class DatabaseWindows:
    """Counters in `rate_windows`, changed under the key's row lock (SQLite: a write transaction)."""

    def __init__(self, db: Database, clock=time.time):
        self.db = db
        self._clock = clock
        self._sql = _statements()

    def hit(self, key_id: str, name: str, limit: int, period: int, cost: int = 1,
            within=None, remaining_wanted: bool = True) -> WindowState:
        """`within`: the caller's transaction, which already holds the key's lock. What is left costs
        nothing more here, so `remaining_wanted` is ignored."""
        now = self._clock()
        window = int(now // period) * period
        params = {"kid": key_id, "wname": name, "previous": window - period, "window": window, "cost": cost}
        try:
            with self.db.write(within) as connection:
                if within is None:
                    lock_key(connection, key_id)
                counts = dict(connection.execute(self._sql["counts"], params).all())
                previous, current = counts.get(window - period, 0), counts.get(window, 0)
                used = _weighted(previous, current, period, now, window)
                if used + cost > limit:
                    return WindowState(False, limit, max(0, limit - math.ceil(used)),
                                       _wait(previous, current, period, now, window, limit, cost))
                if window in counts:
                    connection.execute(self._sql["add"], params)
                else:  # a new fixed window: older ones than the previous can go
                    connection.execute(self._sql["open"], params)
                    connection.execute(self._sql["forget"], params)
        except DatabaseUnavailable as exc:
            raise LimitsUnavailable(f"The key's limits cannot be checked ({exc}); try again shortly") from None
        remaining = max(0, limit - math.ceil(used + cost))
        return WindowState(True, limit, remaining, 0.0 if remaining else
                           _wait(previous, current + cost, period, now, window, limit, 1))

    def peek(self, key_id: str, name: str, limit: int, period: int) -> WindowState:
        now = self._clock()
        window = int(now // period) * period
        try:
            with self.db.read() as connection:
                counts = dict(connection.execute(self._sql["counts"], {
                    "kid": key_id, "wname": name, "previous": window - period}).all())
        except DatabaseUnavailable as exc:
            raise LimitsUnavailable(f"The key's limits cannot be checked ({exc}); try again shortly") from None
        previous, current = counts.get(window - period, 0), counts.get(window, 0)
        used = _weighted(previous, current, period, now, window)
        remaining = max(0, limit - math.ceil(used))
        return WindowState(remaining > 0, limit, remaining,
                           0.0 if remaining else _wait(previous, current, period, now, window, limit, 1))


class RedisWindows:
    """The `limits` library's sliding window counter over Redis (atomic Lua scripts inside it)."""

    PREFIX = "gateway:limits"

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._limiter = None

    @property
    def limiter(self):
        """Built on first use: creating an app opens nothing (and the URL was checked by then)."""
        if self._limiter is None:
            from limits.storage import storage_from_string
            from limits.strategies import SlidingWindowCounterRateLimiter

            storage = storage_from_string(self.redis_url, key_prefix=self.PREFIX, socket_timeout=2,
                                          socket_connect_timeout=1)
            self._limiter = SlidingWindowCounterRateLimiter(storage)
        return self._limiter

    @staticmethod
    def _item(limit: int, period: int):
        from limits import RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerSecond
        if period == 60:
            return RateLimitItemPerMinute(limit)
        if period == 86400:
            return RateLimitItemPerDay(limit)
        return RateLimitItemPerSecond(limit, period)

    def hit(self, key_id: str, name: str, limit: int, period: int, cost: int = 1,
            within=None, remaining_wanted: bool = True) -> WindowState:
        """`remaining_wanted=False`: an allowed hit skips the second round trip that reads what is left
        (its state then says `remaining=-1`); a refused one always reads it, for its Retry-After."""
        item = self._item(limit, period)
        try:
            allowed = self.limiter.hit(item, key_id, name, cost=cost)
            if allowed and not remaining_wanted:
                return WindowState(True, limit, -1, 0.0)
            stats = self.limiter.get_window_stats(item, key_id, name)
        except Exception as exc:  # redis-py's errors: the store is down
            raise LimitsUnavailable(f"The key's limits cannot be checked (Redis: {type(exc).__name__}); "
                                    "try again shortly") from None
        wait = 0.0 if allowed and stats.remaining else max(0.0, stats.reset_time - time.time())
        return WindowState(allowed, limit, stats.remaining, wait)

    def peek(self, key_id: str, name: str, limit: int, period: int) -> WindowState:
        item = self._item(limit, period)
        try:
            stats = self.limiter.get_window_stats(item, key_id, name)
        except Exception as exc:
            raise LimitsUnavailable(f"The key's limits cannot be checked (Redis: {type(exc).__name__}); "
                                    "try again shortly") from None
        return WindowState(stats.remaining > 0, limit, stats.remaining,
                           0.0 if stats.remaining else max(0.0, stats.reset_time - time.time()))

    def ping(self) -> None:
        if not self.limiter.storage.check():
            raise ConnectionError("Redis does not answer")
