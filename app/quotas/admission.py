"""Whether a key's request may run now, and what it holds while it runs.

Checked in this order when a generation request has been read and routed (revoked and expired keys
never get here): the model allow-list, requests per minute, generations in flight, the budget (the
request's most possible cost reserved) and images per day. Whatever of it lives in the database is
done in one transaction (one more at the end), so a check that fails takes nothing; what Redis gave
is given back. When the generation ends, `Admission.finish` settles the real cost and frees the slot,
once.

Leases and reservations live 30 seconds and a keeper thread in each worker renews the ones still in
use every 10 seconds: when a worker dies, what it held is free again within 30 seconds.
"""
from __future__ import annotations

import logging
import math
import threading
from decimal import Decimal
from typing import Callable

from app.background import ProcessThread
from app.db import Database, DatabaseUnavailable
from app.keys.records import ClientKey
from app.quotas.budget import Budgets
from app.quotas.concurrency import DatabaseSlots, RedisSlots
from app.quotas.locking import lock_key
from app.quotas.errors import (CONCURRENCY_CODE, LedgerUnavailable, LimitsUnavailable, ModelNotAllowed,
                               ModelPriceUnknown, RateLimited)
from app.quotas.windows import DatabaseWindows, RedisWindows, WindowState

log = logging.getLogger("gateway")

LEASE_LIFETIME = 30.0
RENEW_INTERVAL = 10.0
MINUTE = 60
DAY = 86400
CONCURRENCY_RETRY_AFTER = 1


def reset_text(seconds: float) -> str:
    """OpenAI's duration form for x-ratelimit-reset-requests: `0s`, `12s`, `1m30s`."""
    whole = max(0, math.ceil(seconds))
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def rate_headers(state: WindowState) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(state.limit),
            "x-ratelimit-remaining-requests": str(state.remaining),
            "x-ratelimit-reset-requests": reset_text(state.reset_seconds)}


class Quotas:
    """The limit stores (Redis for windows and slots when configured, else the database; budgets always
    in the database) and the checks above."""

    def __init__(self, db: Database, redis_url: str | None = None):
        self.windows = RedisWindows(redis_url) if redis_url else DatabaseWindows(db)
        self.slots = RedisSlots(redis_url) if redis_url else DatabaseSlots(db)
        self.budgets = Budgets(db)
        self.keeper = Keeper(self)

    def ping(self) -> None:
        """Readiness of Redis, when the limits live there."""
        if isinstance(self.windows, RedisWindows):
            self.windows.ping()

    @property
    def database_backed(self) -> bool:
        """True when the windows and slots live in the database (no Redis): one transaction admits."""
        return isinstance(self.windows, DatabaseWindows)

    def peek_requests(self, key: ClientKey) -> WindowState | None:
        return None if key.limits.rpm is None else self.windows.peek(key.id, "requests", key.limits.rpm, MINUTE)

    @staticmethod
    def check_model(key: ClientKey, model: str) -> None:
        """403 when the key's allow-list does not match the model (also checked when a job is submitted)."""
        if not key.limits.allows_model(model):
            raise ModelNotAllowed(f"This key may not use the model {model!r} (allowed: {', '.join(key.limits.models)})",
                                  param="model")

    def count_request(self, key: ClientKey) -> WindowState | None:
        """One request against the key's requests per minute alone: a job's submit (its run is admitted
        later without counting it again). RateLimited, with the headers, when over it."""
        if key.limits.rpm is None:
            return None
        state = self.windows.hit(key.id, "requests", key.limits.rpm, MINUTE)
        _refuse_over_rpm(key.limits.rpm, state)
        return state

    def admit(self, key: ClientKey, model: str, images: int, quote: Callable[[], Decimal | None],
              count_request: bool = True) -> "Admission":
        """The checks above; the database's share of them in one transaction, so a refusal takes nothing.

        `count_request=False`: the request was counted already (a job's run; it was counted at its submit)."""
        limits = key.limits
        self.check_model(key, model)
        admission = Admission(self, key)
        if not limits.counted:
            return admission
        if limits.budget_usd is not None:
            admission.quote = quote()
            if admission.quote is None:
                raise ModelPriceUnknown(f"This key has a budget, and the price of {model!r} is unknown, so its "
                                        "spend could not be counted; use a priced model or add its price to "
                                        "the routing file", param="model")
        in_database = self.database_backed
        try:
            if in_database:
                with self.budgets.db.write() as within:
                    lock_key(within, key.id)  # once, for every step below
                    self._take(admission, images, within, count_request)
            else:
                # Redis answers the windows and slots; the budget's reservation is its own short transaction,
                # so the key's row lock is never held across a Redis round trip
                self._take(admission, images, None, count_request)
        except BaseException as exc:
            if in_database:
                admission.lease = admission.reservation = None  # rolled back with the transaction
            admission.finish(None, failed=True)  # gives back what Redis gave, and a reservation made apart
            if isinstance(exc, (DatabaseUnavailable, LimitsUnavailable)) and limits.budget_usd is not None and (
                    in_database or isinstance(exc, DatabaseUnavailable)):
                raise LedgerUnavailable(f"The spend of this key cannot be checked ({exc}); nothing was spent, "
                                        "try again shortly") from None
            if isinstance(exc, DatabaseUnavailable):
                raise LimitsUnavailable(f"The key's limits cannot be checked ({exc}); try again shortly") from None
            raise
        if admission.lease is not None:
            self.keeper.hold_lease(key.id, admission.lease)
        if admission.reservation is not None:
            self.keeper.hold_reservation(admission.reservation)
        return admission

    def _take(self, admission: "Admission", images: int, transaction, count_request: bool) -> None:
        """Each step in `transaction` when the database holds them all (None: Redis, and a budget apart)."""
        key, limits = admission.key, admission.key.limits
        if limits.rpm is not None and count_request:
            state = self.windows.hit(key.id, "requests", limits.rpm, MINUTE, within=transaction)
            admission.request_window = state
            _refuse_over_rpm(limits.rpm, state)
        if limits.concurrency is not None:
            admission.lease = self.slots.acquire(key.id, limits.concurrency, LEASE_LIFETIME,
                                                 within=transaction)
            if admission.lease is None:
                raise RateLimited(f"This key may run {limits.concurrency} generation(s) at once; one must "
                                  "finish first", retry_after=CONCURRENCY_RETRY_AFTER,
                                  code=CONCURRENCY_CODE)
        if limits.budget_usd is not None:
            # even a free request goes through the reservation: a spent budget refuses it, and a
            # database that is down refuses it too (budgeted keys fail closed)
            admission.reservation = self.budgets.reserve(key.id, admission.quote, LEASE_LIFETIME,
                                                         within=transaction)
        if limits.images_per_day is not None:
            state = self.windows.hit(key.id, "images", limits.images_per_day, DAY, cost=images,
                                     within=transaction, remaining_wanted=False)  # no header shows it
            if not state.allowed:
                raise RateLimited(f"This key may make {limits.images_per_day} images per day; "
                                  f"{state.remaining} are left now", retry_after=max(1.0, state.reset_seconds))


def _refuse_over_rpm(rpm: int, state: WindowState) -> None:
    if not state.allowed:
        raise RateLimited(f"This key is limited to {rpm} requests per minute; retry after "
                          f"{reset_text(state.reset_seconds)}", retry_after=max(1.0, state.reset_seconds),
                          headers=rate_headers(state))


class Admission:
    """What one admitted generation holds (a slot, a budget reservation) until `finish`."""

    def __init__(self, quotas: Quotas, key: ClientKey):
        self.quotas = quotas
        self.key = key
        self.lease: str | None = None
        self.reservation: str | None = None
        self.quote: Decimal | None = None
        self.request_window: WindowState | None = None  # for the x-ratelimit-* headers
        self._finished = False
        self._lock = threading.Lock()

    def finish(self, cost: Decimal | None, failed: bool = False) -> None:
        """Free the slot and settle the budget with `cost` (None: unknown, the quote is charged), once;
        in the database, both in one transaction."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        quotas, keeper = self.quotas, self.quotas.keeper
        lease_in_database = self.lease is not None and quotas.database_backed
        if self.lease is not None:
            keeper.drop_lease(self.key.id, self.lease)
            if not lease_in_database:
                self._release_lease(None)
        charge = None
        if self.key.limits.budget_usd is not None:
            charge = cost if cost is not None else (Decimal(0) if failed else self.quote)
            if cost is None and not failed and charge:
                log.warning("the cost of a budgeted request is unknown; its quote of %s USD was charged", charge)
        settle = charge is not None and (charge or self.reservation is not None)
        if not (settle or lease_in_database):
            return
        try:
            if lease_in_database:
                with quotas.budgets.db.write() as within:
                    self._release_lease(within)
                    if settle:
                        quotas.budgets.settle(self.key.id, self.reservation, charge, within=within)
            else:  # the settle alone: one statement on PostgreSQL, holding the key's row only while it runs
                quotas.budgets.settle(self.key.id, self.reservation, charge)
        except DatabaseUnavailable as exc:
            if settle:
                log.warning("settling a budget failed (%s); retrying in the background, the reservation is held",
                            exc)
                keeper.settle_later(self.key.id, self.reservation, charge)
            else:
                log.warning("could not free a concurrency slot (it expires by itself): %s", exc)
            return
        if self.reservation is not None:
            keeper.drop_reservation(self.reservation)

    def _release_lease(self, within) -> None:
        try:
            self.quotas.slots.release(self.key.id, self.lease, within=within)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # Redis: the lease expires by itself within LEASE_LIFETIME
            log.warning("could not free a concurrency slot (it expires by itself): %s", exc)


class Keeper:
    """Renews this worker's live leases and reservations, and retries settles the database refused."""

    def __init__(self, quotas: Quotas, interval: float = RENEW_INTERVAL):
        self.quotas = quotas
        self.interval = interval
        self._leases: dict[str, set[str]] = {}
        self._reservations: set[str] = set()
        self._settles: list[tuple[str, str | None, Decimal]] = []
        self._lock = threading.Lock()
        self._thread = ProcessThread("quota-keeper", self._loop)

    def hold_lease(self, key_id: str, lease: str) -> None:
        with self._lock:
            self._leases.setdefault(key_id, set()).add(lease)
        self._thread.ensure_running()

    def drop_lease(self, key_id: str, lease: str) -> None:
        with self._lock:
            self._leases.get(key_id, set()).discard(lease)

    def hold_reservation(self, reservation: str) -> None:
        with self._lock:
            self._reservations.add(reservation)
        self._thread.ensure_running()

    def drop_reservation(self, reservation: str) -> None:
        with self._lock:
            self._reservations.discard(reservation)

    def settle_later(self, key_id: str, reservation: str | None, cost: Decimal) -> None:
        with self._lock:
            self._settles.append((key_id, reservation, cost))
        self._thread.ensure_running()

    def _loop(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.interval):
            try:
                self.run_once()
            except Exception as exc:  # the next round tries again; leases outlive one missed renewal
                log.warning("renewing leases and reservations failed: %s", exc)

    def run_once(self) -> None:
        with self._lock:
            leases = {key_id: sorted(held) for key_id, held in self._leases.items() if held}
            reservations = sorted(self._reservations)
            settles, self._settles = self._settles, []
        if leases:
            self.quotas.slots.renew(leases, LEASE_LIFETIME)
        if reservations:
            self.quotas.budgets.renew(reservations, LEASE_LIFETIME)
        for position, (key_id, reservation, cost) in enumerate(settles):
            try:
                self.quotas.budgets.settle(key_id, reservation, cost)
            except DatabaseUnavailable:
                with self._lock:
                    self._settles.extend(settles[position:])
                return
            if reservation is not None:
                self.drop_reservation(reservation)
