"""The per-key limits of tests/unit/test_quotas.py again, on PostgreSQL, where budgets are reserved by
the server-side function of migration 0003 and settled in one autocommit statement; and the race that
function exists for: many threads reserving on one key at once never hold more than its budget."""
import threading
from decimal import Decimal

import pytest

from app.db import Database, migrate
from app.keys.store import KeyStore
from app.quotas.budget import Budgets
from app.quotas.errors import InsufficientQuota
# the same tests, collected here with this module's `db` (the fixtures below take precedence)
from tests.unit.test_quotas import (  # noqa: F401
    LEASE_LIFETIME, make_key, test_a_crash_between_reserve_and_settle_frees_the_budget_when_the_reservation_expires,
    test_a_refused_hit_costs_nothing, test_a_settle_after_the_reservation_expired_still_counts_the_spend,
    test_a_spent_budget_refuses_even_a_free_request_and_a_zero_budget_allows_none,
    test_admission_checks_model_price_and_gives_back_on_refusal, test_budget_reserve_settle_release,
    test_concurrency_slots_are_atomic_and_a_dead_workers_lease_expires,
    test_one_transaction_admits_so_a_refusal_takes_nothing, test_rpm_window_refuses_the_third_request_and_says_when_to_retry,
    test_the_keeper_renews_what_is_still_held, test_the_window_slides_instead_of_resetting_at_the_minute,
    test_with_redis_down_a_key_with_request_limits_fails_closed_a_budget_only_key_does_not)


@pytest.fixture
def migrated(postgres) -> str:
    """A fresh, migrated database per test, as the SQLite tests have (some count every row of a table)."""
    url = postgres.database()
    database = Database(url)
    migrate.upgrade(database)
    database.dispose()
    return url


@pytest.fixture
def db(migrated):
    database = Database(migrated, pool_size=20)
    yield database
    database.dispose()


@pytest.fixture
def store(db):
    return KeyStore(db)


def test_twenty_threads_reserving_at_once_hold_exactly_the_budget(db, store):
    key = make_key(store, budget_usd=Decimal("1.00"))
    budgets = Budgets(db)
    assert budgets._pg is not None  # the server-side path is the one under test
    start, granted, refused = threading.Barrier(20), [], []

    def reserve() -> None:
        start.wait()
        try:
            granted.append(budgets.reserve(key.id, Decimal("0.10"), LEASE_LIFETIME))
        except InsufficientQuota:
            refused.append(1)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(refused)) == (10, 10)
    for reservation in granted:  # each settles at its real cost: the spend is exact
        budgets.settle(key.id, reservation, Decimal("0.07"))
    assert store.get(key.id).spent_usd == Decimal("0.70")
    assert budgets.reserve(key.id, Decimal("0.30"), LEASE_LIFETIME)  # exactly what is left
    with pytest.raises(InsufficientQuota, match=r"\$0.7000 of \$1.0000 used, \$0.3000 held"):
        budgets.reserve(key.id, Decimal("0.01"), LEASE_LIFETIME)


def test_the_migration_can_be_undone_and_redone(postgres):
    from sqlalchemy import text

    database = Database(postgres.database())
    migrate.upgrade(database)
    function = text("SELECT count(*) FROM pg_proc WHERE proname = 'gateway_reserve_budget'")
    with database.read() as connection:
        assert connection.execute(function).scalar_one() == 1
    from alembic import command
    with database.write() as connection:
        config = migrate._config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002_jobs")
    with database.read() as connection:
        assert connection.execute(function).scalar_one() == 0
    migrate.upgrade(database)
    with database.read() as connection:
        assert connection.execute(function).scalar_one() == 1
    database.dispose()
