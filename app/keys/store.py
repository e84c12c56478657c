"""Client keys in the database: create (the secret is shown once, kept as SHA-256), list, update, revoke."""
from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from app.db import Database
from app.db.models import ApiKey
from app.keys.records import KEY_PREFIX, ClientKey, Limits, utcnow

HINT_LENGTH = len(KEY_PREFIX) + 4
_KEYS = ApiKey.__table__


class UnknownKey(LookupError):
    """No key has this id."""

    def __init__(self, key_id: str):
        super().__init__(f"no key has the id {key_id!r}")
        self.key_id = key_id


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_id(prefix: str = "key_") -> str:
    return prefix + secrets.token_hex(8)


def from_row(row: Any) -> ClientKey:
    models = tuple(p for p in (row.models or "").split(",") if p)
    return ClientKey(
        id=row.id, name=row.name, answer_style=row.answer_style, hint=row.secret_hint,
        created_at=row.created_at, revoked_at=row.revoked_at, spent_usd=Decimal(row.spent_usd or 0),
        limits=Limits(rpm=row.rpm, concurrency=row.concurrency, images_per_day=row.images_per_day,
                      budget_usd=None if row.budget_usd is None else Decimal(row.budget_usd),
                      models=models, expires_at=row.expires_at),
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "models" in values:
        values["models"] = ",".join(values["models"]) if values["models"] else None
    return values


class KeyStore:
    """Keys in the database. Fields given here were validated by `parse_key_fields`."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, fields: dict[str, Any]) -> tuple[ClientKey, str]:
        """A new key and its secret (the only time the secret exists outside the client)."""
        secret = new_secret()
        now = utcnow()
        values = {"id": new_id(), "secret_sha256": digest(secret), "secret_hint": secret[:HINT_LENGTH] + "…",
                  "created_at": now, "updated_at": now, "spent_usd": Decimal(0), **_columns(fields)}
        with self.db.write() as connection:
            connection.execute(_KEYS.insert().values(**values))
            row = connection.execute(select(_KEYS).where(_KEYS.c.id == values["id"])).one()
        return from_row(row), secret

    def list(self) -> list[ClientKey]:
        with self.db.read() as connection:
            rows = connection.execute(select(_KEYS).order_by(_KEYS.c.created_at, _KEYS.c.id)).all()
        return [from_row(row) for row in rows]

    def get(self, key_id: str) -> ClientKey:
        with self.db.read() as connection:
            row = connection.execute(select(_KEYS).where(_KEYS.c.id == key_id)).first()
        if row is None:
            raise UnknownKey(key_id)
        return from_row(row)

    def find(self, secret_sha256: str) -> ClientKey | None:
        """The key whose secret hashes to this (`digest(secret)`: the caller has it already), revoked and
        expired ones included: the caller decides."""
        with self.db.read() as connection:
            row = connection.execute(select(_KEYS).where(_KEYS.c.secret_sha256 == secret_sha256)).first()
        return None if row is None else from_row(row)

    def update(self, key_id: str, fields: dict[str, Any]) -> ClientKey:
        with self.db.write() as connection:
            changed = connection.execute(update(_KEYS).where(_KEYS.c.id == key_id)
                                         .values(updated_at=utcnow(), **_columns(fields))).rowcount
            row = connection.execute(select(_KEYS).where(_KEYS.c.id == key_id)).first()
        if not changed or row is None:
            raise UnknownKey(key_id)
        return from_row(row)

    def revoke(self, key_id: str) -> ClientKey:
        """Revoked keys stay listed (their usage keeps its owner); they authenticate no more."""
        now = utcnow()
        with self.db.write() as connection:
            # a key revoked already keeps its first revoked_at: revoking twice is not an error
            connection.execute(update(_KEYS).where(_KEYS.c.id == key_id, _KEYS.c.revoked_at.is_(None))
                               .values(revoked_at=now, updated_at=now))
            row = connection.execute(select(_KEYS).where(_KEYS.c.id == key_id)).first()
        if row is None:
            raise UnknownKey(key_id)
        return from_row(row)
