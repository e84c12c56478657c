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


def _statements():
    """Built once: composing SQLAlchemy expressions per request costs more than running them."""
    from sqlalchemy import bindparam, delete, func, select, update

    r, k = _RESERVATIONS.c, _KEYS.c
    return {
        # FOR UPDATE: the key's row lock (SQLite: rendered without it; its write transaction locks)
        "key": select(k.budget_usd, k.spent_usd).where(k.id == bindparam("kid")).with_for_update(),
        "held": select(func.coalesce(func.sum(r.amount_usd), 0)).where(r.key_id == bindparam("kid"),
                                                                         r.expires_at > bindparam("now")),
        "reserve": _RESERVATIONS.insert().values(id=bindparam("reservation"), key_id=bindparam("kid"),
                                                 amount_usd=bindparam("amount", type_=r.amount_usd.type),
                                                 created_at=bindparam("now"), expires_at=bindparam("expires")),
        "drop": delete(_RESERVATIONS).where(r.id == bindparam("reservation")),
        "spend": update(_KEYS).where(k.id == bindparam("kid"))
        .values(spent_usd=k.spent_usd + bindparam("cost", type_=k.spent_usd.type)),
        "renew": update(_RESERVATIONS).where(r.id.in_(bindparam("reservations", expanding=True)))
        .values(expires_at=bindparam("expires")),
    }


class Budgets:
    def __init__(self, db: Database, clock=utcnow):
        self.db = db
        self._clock = clock
        self._sql = _statements()

    def reserve(self, key_id: str, amount: Decimal, lifetime: float, within=None) -> str:
        """A reservation id; InsufficientQuota when it does not fit, LedgerUnavailable when the database is down."""
        now = self._clock()
        reservation = "resv_" + secrets.token_hex(8)
        params = {"kid": key_id, "now": now, "reservation": reservation, "amount": amount,
                  "expires": now + timedelta(seconds=lifetime)}
        try:
            with self.db.write(within) as connection:
                key = connection.execute(self._sql["key"], params).one()
                held = connection.execute(self._sql["held"], params).scalar_one()
                budget, spent, held = Decimal(key.budget_usd), Decimal(key.spent_usd), Decimal(held)
                if spent + held + amount > budget:
                    left = max(Decimal(0), budget - spent - held)
                    raise InsufficientQuota(
                        f"This key's budget is spent: ${_dollars(spent)} of ${_dollars(budget)} used"
                        + (f", ${_dollars(held)} held by requests in flight" if held else "")
                        + f"; this request may cost up to ${_dollars(amount)} and ${_dollars(left)} is left")
                connection.execute(self._sql["reserve"], params)
        except DatabaseUnavailable as exc:
            raise LedgerUnavailable(f"The spend of this key cannot be checked ({exc}); nothing was spent, "
                                    "try again shortly") from None
        return reservation

    def settle(self, key_id: str, reservation: str | None, cost: Decimal, within=None) -> None:
        """The real cost is added to the key's spend and the reservation goes, together (also after it expired)."""
        with self.db.write(within) as connection:
            if reservation:
                connection.execute(self._sql["drop"], {"reservation": reservation})
            if cost:
                connection.execute(self._sql["spend"], {"kid": key_id, "cost": cost})

    def release(self, reservation: str) -> None:
        with self.db.write() as connection:
            connection.execute(self._sql["drop"], {"reservation": reservation})

    def renew(self, reservations: list[str], lifetime: float) -> None:
        if reservations:
            with self.db.write() as connection:
                connection.execute(self._sql["renew"], {"reservations": reservations,
                                                        "expires": self._clock() + timedelta(seconds=lifetime)})
