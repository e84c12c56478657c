"""A short-lived in-process cache of key lookups, so authenticating a database key costs microseconds.

Entries (found or not found) live TTL seconds: a revoke or an update made anywhere reaches every
worker of every instance within that time; in the process that made the change it is immediate.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from app.keys.records import ClientKey

DEFAULT_TTL = 2.0
STALE_GRACE = 300.0  # while the database is down, a key seen this recently still authenticates
MAX_ENTRIES = 10_000  # unknown secrets are cached too; a flood of them cannot grow memory past this

_MISSING = object()


class KeyCache:
    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, ClientKey | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, *, stale_ok: bool = False) -> ClientKey | None | object:
        """The cached lookup (a ClientKey or None for 'no such key'), or MISSING when not cached or expired."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] + (STALE_GRACE if stale_ok else 0.0) <= self._clock():
            return _MISSING
        return entry[1]

    def put(self, digest: str, key: ClientKey | None) -> None:
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                now = self._clock()
                self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
            self._entries[digest] = (self._clock() + self.ttl, key)

    def forget(self, key_id: str) -> None:
        """Drop a key at once (it was changed in this process)."""
        with self._lock:
            self._entries = {d: e for d, e in self._entries.items() if e[1] is None or e[1].id != key_id}


MISSING = _MISSING
