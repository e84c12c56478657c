"""Generations in flight per key: an atomic acquire-if-below with leases that expire if a worker dies.

In Redis: one Lua script over a sorted set of lease ids scored by their expiry (Redis's own clock);
without Redis: rows in `concurrency_leases`, counted and added under the key's row lock.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from app.db import Database, DatabaseUnavailable
from app.db.models import ConcurrencyLease
from app.keys.records import utcnow
from app.quotas.errors import LimitsUnavailable
from app.quotas.locking import lock_key

_LEASES = ConcurrencyLease.__table__

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


def _statements():
    """Built once: composing SQLAlchemy expressions per request costs more than running them."""
    from sqlalchemy import bindparam, delete, func, select, update

    c = _LEASES.c
    return {
        "live": select(func.count()).where(c.key_id == bindparam("kid"), c.expires_at > bindparam("now")),
        "take": _LEASES.insert().values(id=bindparam("lease"), key_id=bindparam("kid"),
                                        expires_at=bindparam("expires")),
        "free": delete(_LEASES).where(c.id == bindparam("lease")),
        "renew": update(_LEASES).where(c.id.in_(bindparam("leases", expanding=True)))
        .values(expires_at=bindparam("expires")),
        "sweep": delete(_LEASES).where(c.expires_at <= bindparam("now")),
    }


class DatabaseSlots:
    """Lease rows; expired ones (a dead worker's) are not counted, and are swept when leases are renewed."""

    def __init__(self, db: Database):
        self.db = db
        self._sql = _statements()

    def acquire(self, key_id: str, limit: int, lifetime: float, within=None) -> str | None:
        """`within`: the caller's transaction, which already holds the key's lock."""
        now = utcnow()
        lease = new_lease_id()
        try:
            with self.db.write(within) as connection:
                if within is None:
                    lock_key(connection, key_id)
                if connection.execute(self._sql["live"], {"kid": key_id, "now": now}).scalar_one() >= limit:
                    return None
                connection.execute(self._sql["take"], {"lease": lease, "kid": key_id,
                                                       "expires": now + timedelta(seconds=lifetime)})
        except DatabaseUnavailable as exc:
            raise LimitsUnavailable(f"The key's limits cannot be checked ({exc}); try again shortly") from None
        return lease

    def release(self, key_id: str, lease: str, within=None) -> None:
        with self.db.write(within) as connection:
            connection.execute(self._sql["free"], {"lease": lease})

    def renew(self, leases: dict[str, list[str]], lifetime: float) -> None:
        ids = [lease for held in leases.values() for lease in held]
        now = utcnow()
        with self.db.write() as connection:
            if ids:
                connection.execute(self._sql["renew"], {"leases": ids, "expires": now + timedelta(seconds=lifetime)})
            connection.execute(self._sql["sweep"], {"now": now})


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

    def acquire(self, key_id: str, limit: int, lifetime: float, within=None) -> str | None:
        lease = new_lease_id()
        try:
            self.client  # noqa: B018  (builds the scripts on first use)
            taken = self._acquire(keys=[self.PREFIX + key_id], args=[lifetime, limit, lease])
        except Exception as exc:  # redis-py's errors: the store is down
            raise LimitsUnavailable(f"The key's limits cannot be checked (Redis: {type(exc).__name__}); "
                                    "try again shortly") from None
        return lease if taken else None

    def release(self, key_id: str, lease: str, within=None) -> None:
        self.client.zrem(self.PREFIX + key_id, lease)

    def renew(self, leases: dict[str, list[str]], lifetime: float) -> None:
        self.client  # noqa: B018  (builds the scripts on first use)
        for key_id, held in leases.items():
            if held:
                self._renew(keys=[self.PREFIX + key_id], args=[lifetime, *held])
