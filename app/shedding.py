"""Load shedding: past GATEWAY_MAX_INFLIGHT generations in flight on this instance, a new one gets 503 at once.

A generation (POST on a chat/completions, images/generations or images/edits route) counts from the
moment it reaches the app until its answer has been written out, or the client has gone: streamed
and keep-alive answers count until their last byte. Refusing at once, rather than letting gunicorn
queue the request, lets a load balancer send the client to another instance.

The count is per instance, across its gunicorn workers: the master maps one small table into shared
memory before it forks, each worker writes only its own slot (its own count), and a request is
admitted when the sum of the slots, its own increment included, stays within the limit. Two workers
admitting at the same instant may both see the other's increment and both refuse: the limit is never
exceeded, and near it a request may be refused one slot early. The master clears the slot of a
worker that died. Outside gunicorn (tests, `flask run`) the table has one slot, in this process.
"""
from __future__ import annotations

import json
import logging
import mmap
import threading
from typing import Callable, Iterable

from app.core.errors import GatewayError
from app.core.routes import GENERATION_PATHS

log = logging.getLogger("gateway.request")

MAX_WORKERS = 1024           # slots in the shared table: worker processes alive at once, replacements included
RETRY_AFTER_SECONDS = 2      # a slot frees every few milliseconds at a few thousand generations in flight


class InflightTable:
    """One signed 64-bit count per worker, in an anonymous shared mapping inherited across fork."""

    def __init__(self, slots: int = MAX_WORKERS):
        self._counts = memoryview(mmap.mmap(-1, slots * 8)).cast("q")
        self._owners: dict[int, object] = {}  # the master's bookkeeping: slot -> worker

    def assign(self, worker: object) -> int:
        """Master, before forking `worker`: a free slot for it."""
        for slot in range(len(self._counts)):
            if slot not in self._owners:
                self._owners[slot] = worker
                self._counts[slot] = 0
                return slot
        raise RuntimeError(f"more than {len(self._counts)} workers alive at once")

    def free(self, worker: object) -> None:
        """Master, after `worker` exited: whatever it held is no longer in flight."""
        for slot, owner in list(self._owners.items()):
            if owner is worker:
                self._counts[slot] = 0
                del self._owners[slot]

    def publish(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def total(self) -> int:
        return sum(self._counts)


_shared: tuple[InflightTable, int] | None = None


def use_shared_slot(table: InflightTable, slot: int) -> None:
    """gunicorn post_fork: this worker counts in `slot` of the instance's table."""
    global _shared
    _shared = (table, slot)


class InflightLimit:
    """This process's generations in flight, published to its slot; admits while the instance total allows."""

    def __init__(self, limit: int, table: InflightTable | None = None, slot: int = 0):
        self.limit = limit
        self._table = table if table is not None else InflightTable(slots=1)
        self._slot = slot
        self._mine = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        self._add(1)
        if self._table.total() > self.limit:
            self._add(-1)
            return False
        return True

    def release(self) -> None:
        self._add(-1)

    def _add(self, delta: int) -> None:
        with self._lock:
            self._mine += delta
            self._table.publish(self._slot, self._mine)


class Shedding:
    """WSGI middleware: counts generations in flight around the whole app and refuses those past the limit."""

    def __init__(self, app: Callable, limit: InflightLimit):
        from app import metrics  # here, not at import: gunicorn's master imports this module before forking

        self.app = app
        self.limit = limit
        self._inflight = metrics.INFLIGHT
        self._shed = metrics.SHED

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") not in GENERATION_PATHS:
            return self.app(environ, start_response)
        if not self.limit.try_acquire():
            return self._refuse(environ, start_response)
        self._inflight.inc()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._release()
            raise
        return _ClosingBody(body, self._release)

    def _release(self) -> None:
        self._inflight.dec()
        self.limit.release()

    def _refuse(self, environ: dict, start_response: Callable) -> list[bytes]:
        self._shed.inc()
        log.warning("request refused: server_overloaded", extra={"fields": {
            "method": "POST", "path": environ.get("PATH_INFO"), "status": 503,
            "client": environ.get("REMOTE_ADDR"), "max_inflight": self.limit.limit}})
        body = json.dumps(ServerOverloaded("This gateway instance is at capacity (generations in flight); "
                                           "retry shortly, or on another instance").body()).encode()
        start_response("503 Service Unavailable", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Retry-After", str(RETRY_AFTER_SECONDS))])
        return [body]


class ServerOverloaded(GatewayError):
    """The instance holds GATEWAY_MAX_INFLIGHT generations already: a load balancer may try another."""

    status = 503
    type = "server_error"
    code = "server_overloaded"


class _ClosingBody:
    """The app's answer, passed through; `on_close` runs after the server closed it (written, or client gone)."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]):
        self._body = body
        self._on_close = on_close

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if on_close is not None:  # once, however often the server closes
                on_close()


def init_app(app, limit: int) -> None:
    """Wrap the app's WSGI callable; the instance-wide table when running under gunicorn, else a local one."""
    table, slot = _shared if _shared is not None else (None, 0)
    app.wsgi_app = Shedding(app.wsgi_app, InflightLimit(limit, table, slot))
