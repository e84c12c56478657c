"""Counting a database's write transactions: background passes with nothing to do must take none."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def write_transactions(db) -> Iterator[list]:
    """The write transactions `db` begins inside the block (SQLite: each is a BEGIN IMMEDIATE)."""
    from sqlalchemy import event

    begun: list = []

    def on_begin(connection) -> None:
        if connection.get_execution_options().get("gateway_write", True):
            begun.append(connection)

    event.listen(db.engine, "begin", on_begin)
    try:
        yield begun
    finally:
        event.remove(db.engine, "begin", on_begin)
