"""ClientKey and its limits, and the one validation of key fields shared by the CLI and the admin API."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from app.answer_options import ANSWER_STYLES

KEY_PREFIX = "sk-gw-"
_PATTERN = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9._:/@*?+-]{0,199}$")
MAX_BUDGET = Decimal("1000000000")


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp has in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 date or time as naive UTC (without a zone it is UTC); ValueError when it is none."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


@dataclass(frozen=True)
class Limits:
    """What one key may do; None (or no patterns) means unlimited."""

    rpm: int | None = None
    concurrency: int | None = None
    images_per_day: int | None = None
    budget_usd: Decimal | None = None
    models: tuple[str, ...] = ()
    expires_at: datetime | None = None

    @property
    def counted(self) -> bool:
        """True when requests must be counted or reserved for (rpm, concurrency, images, budget)."""
        return any(v is not None for v in (self.rpm, self.concurrency, self.images_per_day, self.budget_usd))

    def allows_model(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


@dataclass(frozen=True)
class ClientKey:
    """The authenticated client of a request (`flask.g.client_key`); scope anything per client by `id`."""

    id: str
    name: str
    limits: Limits = field(default_factory=Limits)
    answer_style: str | None = None
    static: bool = False                 # from GATEWAY_API_KEYS: no limits, not in the database
    hint: str | None = None              # first characters of the secret, to recognise it in a list
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    spent_usd: Decimal = Decimal(0)

    def expired(self, now: datetime | None = None) -> bool:
        expires = self.limits.expires_at
        return expires is not None and (now or utcnow()) >= expires

    @property
    def status(self) -> str:
        """The key's state, "revoked", "expired" or "active": only an active key may call the API."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired() else "active"

    def to_dict(self) -> dict[str, Any]:
        """The public view of a key (never its secret): what `keys list` and the admin API show."""
        limits = self.limits
        return {
            "id": self.id, "name": self.name, "key_hint": self.hint,
            "rpm": limits.rpm, "concurrency": limits.concurrency, "images_per_day": limits.images_per_day,
            "budget_usd": _number(limits.budget_usd), "spent_usd": _number(self.spent_usd),
            "models": list(limits.models) or None, "expires_at": _iso(limits.expires_at),
            "answer_style": self.answer_style, "created_at": _iso(self.created_at),
            "revoked": self.revoked_at is not None, "revoked_at": _iso(self.revoked_at),
        }


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


class _Money(fields.Field):
    """A USD amount from a JSON number or a string; never a float on the way to the database."""

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        if isinstance(value, bool):
            raise ValidationError("must be a number of US dollars")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError("must be a number of US dollars") from None
        if not amount.is_finite() or amount < 0:
            raise ValidationError("must be zero or more US dollars")
        if amount > MAX_BUDGET:
            raise ValidationError(f"must be at most {MAX_BUDGET} US dollars")
        return amount


class _Patterns(fields.Field):
    """Model patterns from a list or one comma-separated string: `gpt-image-*,local-*`."""

    def _deserialize(self, value, attr, data, **kwargs) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValidationError("must be a list of model patterns or one comma-separated string")
        patterns = tuple(str(item).strip() for item in items if str(item).strip())
        if not patterns:
            raise ValidationError("names no model pattern")
        for pattern in patterns:
            if not isinstance(pattern, str) or not _PATTERN.match(pattern):
                raise ValidationError(f"{pattern!r} is not a model pattern (letters, digits, . _ : / @ + -, "
                                      "and the wildcards * and ?)")
        return patterns


class _Moment(fields.Field):
    """An ISO 8601 date or time, in the future; without a zone it is UTC. Stored as naive UTC."""

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 date or time, e.g. 2027-01-31T00:00:00Z")
        try:
            moment = parse_utc(value)
        except ValueError:
            raise ValidationError(f"{value!r} is not an ISO 8601 date or time, e.g. 2027-01-31T00:00:00Z") from None
        if moment <= utcnow():
            raise ValidationError(f"{value!r} is in the past")
        return moment


class _Count(fields.Field):
    """A whole number from 1 to 10^9, from a JSON integer or a string of digits (the CLI's)."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
            raise ValidationError("must be a whole number from 1 to 10^9")
        return value


def _positive() -> _Count:
    return _Count(allow_none=True)


class KeyFieldsSchema(Schema):
    """The fields of `keys create|update` and POST/PATCH /admin/v1/keys. null clears a limit."""

    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(min=1, max=200))
    rpm = _positive()
    concurrency = _positive()
    images_per_day = _positive()
    budget_usd = _Money(allow_none=True)
    models = _Patterns(allow_none=True)
    expires_at = _Moment(allow_none=True)
    answer_style = fields.String(allow_none=True, validate=validate.OneOf(ANSWER_STYLES))

    @validates("name")
    def _name_not_blank(self, value: str, **kwargs) -> None:
        if not value.strip():
            raise ValidationError("must not be blank")


class KeyFieldError(ValueError):
    """A key field is invalid; `field` names it."""

    def __init__(self, field_name: str | None, message: str):
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name
        self.message = message


_SCHEMA = KeyFieldsSchema()


def parse_key_fields(data: Any, *, creating: bool) -> dict[str, Any]:
    """Validated key fields; KeyFieldError naming the first bad field (creating needs `name`)."""
    if not isinstance(data, dict):
        raise KeyFieldError(None, "the body must be a JSON object of key fields")
    try:
        loaded = _SCHEMA.load(data)
    except ValidationError as exc:
        name = sorted(exc.messages, key=str)[0]
        message = exc.messages[name]
        while isinstance(message, (list, dict)):
            message = message[0] if isinstance(message, list) else next(iter(message.values()))
        if message == "Unknown field.":
            message = f"is not a key field (known: {', '.join(_SCHEMA.fields)})"
        raise KeyFieldError(str(name), str(message)) from None
    if creating and not loaded.get("name"):
        raise KeyFieldError("name", "is required")
    if "name" in loaded and loaded["name"] is None:
        raise KeyFieldError("name", "must not be null")
    return loaded
