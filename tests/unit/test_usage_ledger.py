"""The usage ledger: rows spooled off the request path, written in batches, kept while the database is down,
replayed after a crash; budgeted keys fail closed when the database is down, unlimited keys do not."""
import os
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.db import Database, DatabaseUnavailable
from app.db.models import UsageRecord
from app.usage.ledger import Ledger
from tests.conftest import chat_body

LEDGER = UsageRecord.__table__


def row(number: int, **fields) -> dict:
    return {"id": f"use_{number:08d}", "request_id": f"req-{number}", "created_at": datetime(2026, 12, 1, 12, 0),
            "key_id": "env-1", "entry_point": "chat/completions", "model": "local-image", "upstream_model": None,
            "provider": "local", "channel": "local", "n": 1, "size": None, "quality": None, "images": 1,
            "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": Decimal("0.0125"),
            "status": 200, "error_code": None, "latency_ms": 12, "attempts": 1, "replayed": False, **fields}


class Down:
    """A database that does not answer."""

    dialect = "sqlite"

    @contextmanager
    def write(self):
        raise DatabaseUnavailable("sqlite is unavailable: disk I/O error")
        yield

    read = write


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def count(db) -> int:
    with db.read() as connection:
        return connection.execute(select(func.count()).select_from(LEDGER)).scalar_one()


def test_rows_go_through_the_spool_into_the_database(db, tmp_path):
    ledger = Ledger(db, str(tmp_path / "spool"))
    for number in range(3):
        ledger.add(row(number))
    assert count(db) == 0  # nothing on the request path
    assert ledger.flush() == 3 and count(db) == 3
    assert all(name.endswith(".lock") for name in os.listdir(tmp_path / "spool"))  # nothing left waiting
    with db.read() as connection:
        cost = connection.execute(select(LEDGER.c.cost_usd).where(LEDGER.c.id == "use_00000001")).scalar_one()
    assert Decimal(cost) == Decimal("0.0125")


def test_while_the_database_is_down_rows_wait_and_are_written_later(db, tmp_path):
    ledger = Ledger(Down(), str(tmp_path / "spool"))
    ledger.add(row(1))
    assert ledger.flush() == 0
    ledger.add(row(2))
    ledger.db = db
    ledger._next_try = 0.0  # the retry pause is over
    assert ledger.flush() == 2 and count(db) == 2


def test_a_killed_workers_spool_is_replayed_once_a_living_ones_is_left_alone(db, tmp_path):
    import fcntl
    import json
    spool = tmp_path / "spool"
    spool.mkdir()
    lines = [json.dumps({**row(n), "created_at": "2026-12-01T12:00:00", "cost_usd": "0.01"}) for n in range(6)]
    # a killed worker: its lock file is there, nobody holds it
    (spool / "4242xdead.lock").write_text("")
    (spool / "4242xdead-current.jsonl").write_text("\n".join(lines[:4]) + "\n" + '{"id": "torn')
    (spool / "4242xdead-pending-1-1.jsonl").write_text(lines[0] + "\n")  # written twice: counted once
    # a worker still running: it holds its lock
    (spool / "4343xlive.lock").write_text("")
    (spool / "4343xlive-current.jsonl").write_text("\n".join(lines[4:]) + "\n")
    held = os.open(spool / "4343xlive.lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert Ledger(db, str(spool)).replay_orphans() == 5
        assert count(db) == 4
        assert {"4343xlive-current.jsonl", "4343xlive.lock"} <= set(os.listdir(spool))
        assert not any(name.startswith("4242xdead") for name in os.listdir(spool))
    finally:
        os.close(held)


def test_a_row_that_cannot_be_spooled_is_counted_as_lost(db, tmp_path):
    lost = []
    ledger = Ledger(db, str(tmp_path / "spool"), max_spool_bytes=10, on_lost=lost.append)
    ledger.add(row(1))
    assert lost == ["spool_unwritable"]


def test_database_down_budgeted_keys_fail_closed_unlimited_keys_are_served(app, client, auth):
    gateway = app.extensions["gateway"]
    _, budgeted = gateway.key_store.create({"name": "budgeted", "budget_usd": "1"})
    _, unlimited = gateway.key_store.create({"name": "free"})
    for secret in (budgeted, unlimited):  # both keys seen once while the database was up
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    gateway.quotas.budgets.db = gateway.ledger.db = Down()
    refused = client.post("/v1/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {budgeted}"})
    assert refused.status_code == 503
    assert (refused.json["error"]["code"], refused.json["error"]["type"]) == ("ledger_unavailable", "server_error")
    for headers in ({"Authorization": f"Bearer {unlimited}"}, auth):
        assert client.post("/v1/chat/completions", json=chat_body(), headers=headers).status_code == 200
    gateway.ledger.flush()
    gateway.ledger.db = gateway.db
    gateway.ledger._next_try = 0.0
    gateway.ledger.flush()
    with gateway.db.read() as connection:
        statuses = sorted(connection.execute(select(LEDGER.c.status)).scalars())
    assert statuses == [200, 200, 503]
