"""Budgets that never overspend: reserve a request's most possible cost before the upstream call, settle
its real cost after (or release on failure), all under the key's row lock in the database.

reserve: lock the key's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write transaction locks
the database), check spent + live reservations + this quote <= budget, insert a reservation that
expires (a worker that dies between reserve and settle leaves one behind: it stops counting when it
expires). settle: delete the reservation and add the real cost to the key's spend in one transaction.
"""
from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

from app.db import Database, DatabaseUnavailable
from app.db.models import ApiKey, BudgetReservation
from app.keys.records import utcnow
from app.quotas.errors import InsufficientQuota, LedgerUnavailable

_RESERVATIONS = BudgetReservation.__table__
_KEYS = ApiKey.__table__


def _dollars(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.0001")), "f")


class Budgets:
    def __init__(self, db: Database, clock=utcnow):
        self.db = db
        self._clock = clock

    def reserve(self, key_id: str, amount: Decimal, lifetime: float) -> str:
        """A reservation id; InsufficientQuota when it does not fit, LedgerUnavailable when the database is down."""
        from sqlalchemy import func, select

        now = self._clock()
        reservation = "resv_" + secrets.token_hex(8)
        try:
            with self.db.write() as connection:
                key = connection.execute(select(_KEYS.c.budget_usd, _KEYS.c.spent_usd)
                                         .where(_KEYS.c.id == key_id).with_for_update()).one()
                held = connection.execute(select(func.coalesce(func.sum(_RESERVATIONS.c.amount_usd), 0)).where(
                    _RESERVATIONS.c.key_id == key_id, _RESERVATIONS.c.expires_at > now)).scalar_one()
                budget, spent, held = Decimal(key.budget_usd), Decimal(key.spent_usd), Decimal(held)
                if spent + held + amount > budget:
                    left = max(Decimal(0), budget - spent - held)
                    raise InsufficientQuota(
                        f"This key's budget is spent: ${_dollars(spent)} of ${_dollars(budget)} used"
                        + (f", ${_dollars(held)} held by requests in flight" if held else "")
                        + f"; this request may cost up to ${_dollars(amount)} and ${_dollars(left)} is left")
                connection.execute(_RESERVATIONS.insert().values(
                    id=reservation, key_id=key_id, amount_usd=amount, created_at=now,
                    expires_at=now + timedelta(seconds=lifetime)))
        except DatabaseUnavailable as exc:
            raise LedgerUnavailable(f"The spend of this key cannot be checked ({exc}); nothing was spent, "
                                    "try again shortly") from None
        return reservation

    def settle(self, key_id: str, reservation: str | None, cost: Decimal) -> None:
        """The real cost is added to the key's spend and the reservation goes, together (also after it expired)."""
        from sqlalchemy import delete, update

        with self.db.write() as connection:
            if reservation:
                connection.execute(delete(_RESERVATIONS).where(_RESERVATIONS.c.id == reservation))
            if cost:
                connection.execute(update(_KEYS).where(_KEYS.c.id == key_id)
                                   .values(spent_usd=_KEYS.c.spent_usd + cost))

    def release(self, reservation: str) -> None:
        from sqlalchemy import delete
        with self.db.write() as connection:
            connection.execute(delete(_RESERVATIONS).where(_RESERVATIONS.c.id == reservation))

    def renew(self, reservations: list[str], lifetime: float) -> None:
        from sqlalchemy import update
        if reservations:
            with self.db.write() as connection:
                connection.execute(update(_RESERVATIONS).where(_RESERVATIONS.c.id.in_(reservations))
                                   .values(expires_at=self._clock() + timedelta(seconds=lifetime)))
