"""The key's row lock that makes a read-then-write of its counters, leases and budget atomic."""
from __future__ import annotations

_LOCK = None


def lock_key(connection, key_id: str) -> None:
    """PostgreSQL: SELECT ... FOR UPDATE on the key's row, held until the transaction ends. SQLite needs
    nothing: every write transaction there is BEGIN IMMEDIATE, which already lets one writer in."""
    global _LOCK
    if connection.dialect.name == "sqlite":
        return
    if _LOCK is None:
        from sqlalchemy import bindparam, select

        from app.db.models import ApiKey
        keys = ApiKey.__table__
        _LOCK = select(keys.c.id).where(keys.c.id == bindparam("key_id")).with_for_update()
    connection.execute(_LOCK, {"key_id": key_id})
