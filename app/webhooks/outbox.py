"""Pending webhook deliveries, kept in the database so a restart loses none, whichever process sends them.

The `Outbox` contract is what the dispatcher needs; `DatabaseOutbox` keeps it in the
`webhook_deliveries` table, shared by every web worker, queue worker and instance of the deployment
(a job that ends on a queue worker on another machine is delivered even if that machine goes away).
A delivery can be added inside the transaction that ends its job (`add_within`), so a job is never
finished without its webhook, nor the reverse.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

from app.db.models import WebhookDelivery

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from app.db import Database

SENDING_LEASE = 120.0          # a claim older than this belonged to a process that died mid-send
FAILED_KEPT_SECONDS = 7 * 24 * 3600.0
PENDING, SENDING, FAILED = "pending", "sending", "failed"
_TABLE = WebhookDelivery.__table__


@dataclass(frozen=True)
class Delivery:
    """One webhook message to one URL; the same `id` (the webhook-id header) on every attempt."""

    id: str
    url: str
    body: bytes
    attempts: int = 0        # attempts made so far
    due: float = 0.0         # unix seconds of the next attempt
    created: float = 0.0
    last_error: str | None = None

    @classmethod
    def new(cls, url: str, body: bytes, now: float) -> "Delivery":
        return cls(id="msg_" + secrets.token_urlsafe(18), url=url, body=body, due=now, created=now)


class Outbox(Protocol):
    """Where deliveries wait. A claimed delivery is invisible to other dispatchers until it is
    finished, rescheduled or given up — or until its claim is older than the lease (a dead sender)."""

    def claim_due(self, now: float, limit: int) -> list[Delivery]: ...

    def finish(self, delivery: Delivery) -> None: ...

    def reschedule(self, delivery: Delivery, due: float, error: str) -> None: ...

    def give_up(self, delivery: Delivery, error: str) -> None: ...

    def next_due(self) -> float | None: ...


def naive_utc(unix: float) -> datetime:
    """Unix seconds as the naive UTC datetime every database timestamp is."""
    return datetime.fromtimestamp(unix, timezone.utc).replace(tzinfo=None)


def unix(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


class DatabaseOutbox:
    """Rows of `webhook_deliveries`: pending -> sending (claimed) -> deleted | pending again | failed.

    Claims are taken in a write transaction (PostgreSQL: rows locked with SKIP LOCKED; SQLite: its
    write lock), so two dispatchers never claim the same delivery.
    """

    def __init__(self, db: "Database", lease: float = SENDING_LEASE):
        self.db = db
        self.lease = lease

    @staticmethod
    def add_within(connection: "Connection", delivery: Delivery) -> None:
        """Insert `delivery` in the caller's transaction (it is kept only if that commits)."""
        connection.execute(_TABLE.insert().values(
            id=delivery.id, url=delivery.url, body=delivery.body, state=PENDING, attempts=delivery.attempts,
            due_at=naive_utc(delivery.due), created_at=naive_utc(delivery.created), last_error=delivery.last_error))

    def claim_due(self, now: float, limit: int) -> list[Delivery]:
        from sqlalchemy import delete, or_, select, update

        moment = naive_utc(now)
        lost, old, due = self._lost_claims(moment), _old_failures(moment), _due(moment)
        # read first, without the write lock: an idle dispatcher (polling every few seconds, in every
        # process) then takes no write transaction; the write below looks again under the lock
        with self.db.read() as connection:
            if connection.execute(select(_TABLE.c.id).where(or_(lost, old, due)).limit(1)).first() is None:
                return []
        with self.db.write() as connection:
            # claims older than the lease belonged to a process that died mid-send: due again now
            connection.execute(update(_TABLE).where(lost).values(state=PENDING, due_at=moment, claimed_at=None))
            connection.execute(delete(_TABLE).where(old))
            query = select(_TABLE).where(due).order_by(_TABLE.c.due_at).limit(limit)
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if rows:
                connection.execute(update(_TABLE).where(_TABLE.c.id.in_([row.id for row in rows]))
                                   .values(state=SENDING, claimed_at=moment))
        return [_delivery(row) for row in rows]

    def _lost_claims(self, moment: datetime):
        """Claims older than the lease (their sender died mid-send)."""
        from sqlalchemy import and_
        return and_(_TABLE.c.state == SENDING, _TABLE.c.claimed_at < moment - timedelta(seconds=self.lease))

    def finish(self, delivery: Delivery) -> None:
        from sqlalchemy import delete
        with self.db.write() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.id == delivery.id))

    def reschedule(self, delivery: Delivery, due: float, error: str) -> None:
        self._update(delivery, state=PENDING, attempts=delivery.attempts + 1, due_at=naive_utc(due),
                     claimed_at=None, last_error=error)

    def give_up(self, delivery: Delivery, error: str) -> None:
        # due_at stays the time of the last attempt: failed rows are kept a week from then
        self._update(delivery, state=FAILED, attempts=delivery.attempts + 1, claimed_at=None, last_error=error)

    def next_due(self) -> float | None:
        from sqlalchemy import func, select
        with self.db.read() as connection:
            due = connection.execute(select(func.min(_TABLE.c.due_at)).where(_TABLE.c.state == PENDING)).scalar()
        return None if due is None else unix(due)

    def get(self, delivery_id: str) -> tuple[str, Delivery] | None:
        """A delivery's state and content (tests, operators)."""
        from sqlalchemy import select
        with self.db.read() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == delivery_id)).first()
        return None if row is None else (row.state, _delivery(row))

    def _update(self, delivery: Delivery, **values) -> None:
        from sqlalchemy import update
        with self.db.write() as connection:
            connection.execute(update(_TABLE).where(_TABLE.c.id == delivery.id).values(**values))


def _old_failures(moment: datetime):
    """Given-up deliveries kept long enough."""
    from sqlalchemy import and_
    return and_(_TABLE.c.state == FAILED, _TABLE.c.due_at < moment - timedelta(seconds=FAILED_KEPT_SECONDS))


def _due(moment: datetime):
    from sqlalchemy import and_
    return and_(_TABLE.c.state == PENDING, _TABLE.c.due_at <= moment)


def _delivery(row) -> Delivery:
    return Delivery(id=row.id, url=row.url, body=bytes(row.body), attempts=row.attempts, due=unix(row.due_at),
                    created=unix(row.created_at), last_error=row.last_error)
