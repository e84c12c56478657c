"""Budgets that never overspend: reserve a request's most possible cost before the upstream call, settle
its real cost after (nothing, on failure), all under the key's row lock in the database.

reserve: lock the key's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write transaction locks
the database), check spent + live reservations + this quote <= budget, insert a reservation that
expires (a worker that dies between reserve and settle leaves one behind: it stops counting when it
expires). settle: delete the reservation and add the real cost to the key's spend in one transaction.

On PostgreSQL each is one statement in autocommit (reserve calls the function of migration 0003), so
the key's row is locked only while the server runs it, never across a round trip back to this
process: requests on one key do not queue behind each other's turns at the GIL.
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


def _postgresql_statements():
    """One statement each (see the module's docstring); the CTE's DELETE runs whether or not it is read."""
    from sqlalchemy import text
    return {
        "reserve": text("SELECT reserved, budget, spent, held FROM gateway_reserve_budget("
                        ":kid, :reservation, :amount, :now, :expires)"),
        "settle": text("WITH gone AS (DELETE FROM budget_reservations WHERE id = :reservation) "
                       "UPDATE api_keys SET spent_usd = spent_usd + :cost WHERE id = :kid"),
    }


class Budgets:
    def __init__(self, db: Database, clock=utcnow):
        self.db = db
        self._clock = clock
        self._sql = _statements()
        self._pg = _postgresql_statements() if db.dialect == "postgresql" else None

    def reserve(self, key_id: str, amount: Decimal, lifetime: float, within=None) -> str:
        """A reservation id; InsufficientQuota when it does not fit, LedgerUnavailable when the database is down."""
        now = self._clock()
        reservation = "resv_" + secrets.token_hex(8)
        params = {"kid": key_id, "now": now, "reservation": reservation, "amount": amount,
                  "expires": now + timedelta(seconds=lifetime)}
        try:
            if self._pg is not None:
                with self._statement(within) as connection:
                    row = connection.execute(self._pg["reserve"], params).one()
                if not row.reserved:
                    _refuse(row.budget, row.spent, row.held, amount)
                return reservation
            with self.db.write(within) as connection:
                key = connection.execute(self._sql["key"], params).one_or_none()
                held = connection.execute(self._sql["held"], params).scalar_one()
                if key is None or not _fits(key.budget_usd, key.spent_usd, held, amount):
                    _refuse(key and key.budget_usd, key and key.spent_usd, held, amount)
                connection.execute(self._sql["reserve"], params)
        except DatabaseUnavailable as exc:
            raise LedgerUnavailable(f"The spend of this key cannot be checked ({exc}); nothing was spent, "
                                    "try again shortly") from None
        return reservation

    def _statement(self, within):
        """The caller's transaction, or (PostgreSQL) an autocommit connection for one statement."""
        return self.db.write(within) if within is not None else self.db.single_statement()

    def settle(self, key_id: str, reservation: str | None, cost: Decimal, within=None) -> None:
        """The real cost is added to the key's spend and the reservation goes, together (also after it expired)."""
        if self._pg is not None:
            with self._statement(within) as connection:
                connection.execute(self._pg["settle"], {"reservation": reservation or "", "kid": key_id,
                                                        "cost": cost or Decimal(0)})
            return
        with self.db.write(within) as connection:
            if reservation:
                connection.execute(self._sql["drop"], {"reservation": reservation})
            if cost:
                connection.execute(self._sql["spend"], {"kid": key_id, "cost": cost})

    def renew(self, reservations: list[str], lifetime: float) -> None:
        if reservations:
            with self.db.write() as connection:
                connection.execute(self._sql["renew"], {"reservations": reservations,
                                                        "expires": self._clock() + timedelta(seconds=lifetime)})


def _fits(budget, spent, held, amount: Decimal) -> bool:
    """True when this reservation may be made: no budget, or one not yet spent (a spent budget refuses
    even a free request) with room for `amount` beside what requests in flight hold. The function of
    migration 0003 applies the same rule on PostgreSQL."""
    if budget is None:
        return True
    budget, spent = Decimal(budget), Decimal(spent)
    return spent < budget and spent + Decimal(held) + amount <= budget


def _refuse(budget, spent, held, amount: Decimal) -> None:
    """InsufficientQuota, saying what is spent, what requests in flight hold and what is left."""
    if budget is None:
        raise InsufficientQuota("This key's budget cannot be found; nothing was spent")
    budget, spent, held = Decimal(budget), Decimal(spent), Decimal(held)
    left = max(Decimal(0), budget - spent - held)
    raise InsufficientQuota(
        f"This key's budget is spent: ${_dollars(spent)} of ${_dollars(budget)} used"
        + (f", ${_dollars(held)} held by requests in flight" if held else "")
        + f"; this request may cost up to ${_dollars(amount)} and ${_dollars(left)} is left")
