"""Generations in flight per key: an atomic acquire-if-below with leases that expire if a worker dies.

In Redis: one Lua script over a sorted set of lease ids scored by their expiry (Redis's own clock);
without Redis: rows in `concurrency_leases`, counted and added under the key's row lock.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from app.db import Database, DatabaseUnavailable
from app.db.models import ApiKey, ConcurrencyLease
from app.keys.records import utcnow
from app.quotas.errors import LimitsUnavailable

_LEASES = ConcurrencyLease.__table__
_KEYS = ApiKey.__table__

# KEYS[1]: the key's lease set; ARGV: lease lifetime (s), limit, lease id. 1 when taken, 0 when full.
ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 1)
return 1
"""
# KEYS[1]: the key's lease set; ARGV: lease lifetime (s), lease ids to extend (only those still held)
RENEW = """
local clock = redis.call('TIME')
local expires = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[i])
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 1)
return 1
"""


def new_lease_id() -> str:
    return "lease_" + secrets.token_hex(8)


class DatabaseSlots:
    def __init__(self, db: Database):
        self.db = db

    def acquire(self, key_id: str, limit: int, lifetime: float) -> str | None:
        from sqlalchemy import delete, func, select

        now = utcnow()
        lease = new_lease_id()
        try:
            with self.db.write() as connection:
                connection.execute(select(_KEYS.c.id).where(_KEYS.c.id == key_id).with_for_update())
                connection.execute(delete(_LEASES).where(_LEASES.c.key_id == key_id, _LEASES.c.expires_at <= now))
                held = connection.execute(select(func.count()).where(_LEASES.c.key_id == key_id)).scalar_one()
                if held >= limit:
                    return None
                connection.execute(_LEASES.insert().values(id=lease, key_id=key_id,
                                                           expires_at=now + timedelta(seconds=lifetime)))
        except DatabaseUnavailable as exc:
            raise LimitsUnavailable(f"The key's limits cannot be checked ({exc}); try again shortly") from None
        return lease

    def release(self, key_id: str, lease: str) -> None:
        from sqlalchemy import delete
        with self.db.write() as connection:
            connection.execute(delete(_LEASES).where(_LEASES.c.id == lease))

    def renew(self, leases: dict[str, list[str]], lifetime: float) -> None:
        from sqlalchemy import update
        ids = [lease for held in leases.values() for lease in held]
        if ids:
            with self.db.write() as connection:
                connection.execute(update(_LEASES).where(_LEASES.c.id.in_(ids))
                                   .values(expires_at=utcnow() + timedelta(seconds=lifetime)))


class RedisSlots:
    PREFIX = "gateway:concurrency:"

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._client = None

    @property
    def client(self):
        """Built on first use: creating an app opens nothing (and the URL was checked by then)."""
        if self._client is None:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=1)
            self._acquire = client.register_script(ACQUIRE)
            self._renew = client.register_script(RENEW)
            self._client = client
        return self._client

    def acquire(self, key_id: str, limit: int, lifetime: float) -> str | None:
        lease = new_lease_id()
        try:
            self.client  # noqa: B018  (builds the scripts on first use)
            taken = self._acquire(keys=[self.PREFIX + key_id], args=[lifetime, limit, lease])
        except Exception as exc:  # redis-py's errors: the store is down
            raise LimitsUnavailable(f"The key's limits cannot be checked (Redis: {type(exc).__name__}); "
                                    "try again shortly") from None
        return lease if taken else None

    def release(self, key_id: str, lease: str) -> None:
        self.client.zrem(self.PREFIX + key_id, lease)

    def renew(self, leases: dict[str, list[str]], lifetime: float) -> None:
        self.client  # noqa: B018  (builds the scripts on first use)
        for key_id, held in leases.items():
            if held:
                self._renew(keys=[self.PREFIX + key_id], args=[lifetime, *held])
