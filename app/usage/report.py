"""Usage summed from the ledger, grouped by key, model, provider or day: `image-gateway usage` and the admin API."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select

from app.db import Database
from app.db.models import UsageRecord
from app.keys.records import parse_utc, utcnow

GROUPS = {"key": "key_id", "model": "model", "provider": "provider", "day": "day"}
_RELATIVE = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_LEDGER = UsageRecord.__table__


class BadReportQuery(ValueError):
    """A report parameter is invalid; `field` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def parse_moment(text: str, field_name: str, now: datetime | None = None) -> datetime:
    """`7d`, `24h`, `30m`, `2w` (that long ago) or an ISO 8601 date/time (UTC unless it says) -> naive UTC."""
    now = now or utcnow()
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_utc(value)
    except ValueError:
        raise BadReportQuery(field_name, f"{text!r} is neither a duration like 7d, 24h, 30m nor an ISO 8601 "
                                         "date or time") from None


def _day(db: Database):
    if db.dialect == "sqlite":
        return func.strftime("%Y-%m-%d", _LEDGER.c.created_at)
    return func.to_char(_LEDGER.c.created_at, "YYYY-MM-DD")


def summarize(db: Database, *, group_by: str = "key", key_id: str | None = None, model: str | None = None,
              since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """`{"data": [{<group>: value, requests, images, cost_usd, errors}], "total": {...}}`, biggest spend first."""
    if group_by not in GROUPS:
        raise BadReportQuery("group_by", f"must be one of {', '.join(GROUPS)}")
    column = _day(db) if group_by == "day" else _LEDGER.c[GROUPS[group_by]]
    measures = (
        func.count().label("requests"),
        func.coalesce(func.sum(_LEDGER.c.images), 0).label("images"),
        func.coalesce(func.sum(_LEDGER.c.cost_usd), 0).label("cost_usd"),
        func.coalesce(func.sum(case((_LEDGER.c.status >= 400, 1), else_=0)), 0).label("errors"),
        func.coalesce(func.sum(case((_LEDGER.c.cost_usd.is_(None) & (_LEDGER.c.images > 0), 1), else_=0)),
                      0).label("unpriced"),
    )
    conditions = []
    if key_id:
        conditions.append(_LEDGER.c.key_id == key_id)
    if model:
        conditions.append(_LEDGER.c.model == model)
    if since:
        conditions.append(_LEDGER.c.created_at >= since)
    if until:
        conditions.append(_LEDGER.c.created_at < until)
    grouped = select(column.label("group"), *measures).where(*conditions).group_by(column)
    total = select(*measures).where(*conditions)
    with db.read() as connection:
        rows = connection.execute(grouped).all()
        whole = connection.execute(total).one()
    data = [{GROUPS[group_by]: row.group, **_measures(row)} for row in rows]
    data.sort(key=lambda item: (-item["cost_usd"], -item["requests"], str(item[GROUPS[group_by]])))
    return {"data": data, "total": _measures(whole)}


def _measures(row: Any) -> dict[str, Any]:
    return {"requests": int(row.requests), "images": int(row.images),
            "cost_usd": float(Decimal(str(row.cost_usd)).quantize(Decimal("0.00000001"))),
            "errors": int(row.errors), "unpriced": int(row.unpriced)}
