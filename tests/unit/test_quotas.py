"""Per-key limits against a real database (SQLite here; PostgreSQL and Redis in the integration tests):
sliding windows, generations in flight, budgets reserved then settled, and what a dead worker leaves."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from app.db import Database
from app.db.models import BudgetReservation, ConcurrencyLease
from app.keys.records import utcnow
from app.keys.store import KeyStore
from app.quotas.admission import LEASE_LIFETIME, Quotas, rate_headers, reset_text
from app.quotas.budget import Budgets
from app.quotas.concurrency import DatabaseSlots
from app.quotas.errors import InsufficientQuota, ModelNotAllowed, ModelPriceUnknown, RateLimited
from app.quotas.windows import DatabaseWindows
from tests.support.clock import Clock


LEASES = ConcurrencyLease.__table__
RESERVATIONS = BudgetReservation.__table__



@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def store(db):
    return KeyStore(db)


def make_key(store, **limits):
    key, _ = store.create({"name": "k", **limits})
    return key


def test_rpm_window_refuses_the_third_request_and_says_when_to_retry(db, store):
    key = make_key(store, rpm=2)
    clock = Clock(1_800_000_000.0)  # the start of a minute
    windows = DatabaseWindows(db, clock)
    first, second, third = (windows.hit(key.id, "requests", 2, 60) for _ in range(3))
    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert not third.allowed and 0 < third.reset_seconds <= 120
    clock.now += 121  # both old requests have slid out of the window
    assert windows.hit(key.id, "requests", 2, 60).allowed


def test_the_window_slides_instead_of_resetting_at_the_minute(db, store):
    key = make_key(store, rpm=4)
    clock = Clock(1_800_000_000.0 + 50)  # late in a minute
    windows = DatabaseWindows(db, clock)
    for _ in range(4):
        assert windows.hit(key.id, "requests", 4, 60).allowed
    clock.now += 15  # a new fixed minute has begun, but 4 requests were 15 s ago
    assert not windows.hit(key.id, "requests", 4, 60).allowed


def test_a_refused_hit_costs_nothing(db, store):
    key = make_key(store, images_per_day=5)
    windows = DatabaseWindows(db, Clock())
    assert windows.hit(key.id, "images", 5, 86400, cost=4).allowed
    assert not windows.hit(key.id, "images", 5, 86400, cost=2).allowed
    assert windows.hit(key.id, "images", 5, 86400, cost=1).allowed


def test_concurrency_slots_are_atomic_and_a_dead_workers_lease_expires(db, store):
    key = make_key(store, concurrency=2)
    slots = DatabaseSlots(db)
    first = slots.acquire(key.id, 2, LEASE_LIFETIME)
    second = slots.acquire(key.id, 2, LEASE_LIFETIME)
    assert first and second and slots.acquire(key.id, 2, LEASE_LIFETIME) is None
    slots.release(key.id, first)
    third = slots.acquire(key.id, 2, LEASE_LIFETIME)
    assert third is not None
    # the worker holding `second` and `third` is killed: nobody releases them; they expire
    with db.write() as connection:
        connection.execute(update(LEASES).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert slots.acquire(key.id, 2, LEASE_LIFETIME) is not None


def test_budget_reserve_settle_release(db, store):
    key = make_key(store, budget_usd=Decimal("1.00"))
    budgets = Budgets(db)
    first = budgets.reserve(key.id, Decimal("0.60"), LEASE_LIFETIME)
    with pytest.raises(InsufficientQuota) as caught:
        budgets.reserve(key.id, Decimal("0.50"), LEASE_LIFETIME)  # 0.60 is held by a request in flight
    assert caught.value.status == 429 and caught.value.type == caught.value.code == "insufficient_quota"
    budgets.settle(key.id, first, Decimal("0.25"))  # it cost less than its quote
    second = budgets.reserve(key.id, Decimal("0.50"), LEASE_LIFETIME)
    budgets.settle(key.id, second, Decimal(0))  # failed upstream: nothing spent
    assert store.get(key.id).spent_usd == Decimal("0.25")
    budgets.reserve(key.id, Decimal("0.75"), LEASE_LIFETIME)  # exactly what is left
    with pytest.raises(InsufficientQuota):
        budgets.reserve(key.id, Decimal("0.01"), LEASE_LIFETIME)


def test_a_spent_budget_refuses_even_a_free_request_and_a_zero_budget_allows_none(db, store):
    budgets = Budgets(db)
    key = make_key(store, budget_usd=Decimal("0.50"))
    assert budgets.reserve(key.id, Decimal(0), LEASE_LIFETIME)  # free, and the budget is not spent yet
    budgets.settle(key.id, budgets.reserve(key.id, Decimal("0.50"), LEASE_LIFETIME), Decimal("0.50"))
    with pytest.raises(InsufficientQuota, match=r"\$0.5000 of \$0.5000 used"):
        budgets.reserve(key.id, Decimal(0), LEASE_LIFETIME)
    nothing = make_key(store, budget_usd=Decimal(0))
    with pytest.raises(InsufficientQuota):
        budgets.reserve(nothing.id, Decimal(0), LEASE_LIFETIME)


def test_a_crash_between_reserve_and_settle_frees_the_budget_when_the_reservation_expires(db, store):
    key = make_key(store, budget_usd=Decimal("1.00"))
    now = utcnow()
    budgets = Budgets(db, clock=lambda: now)
    budgets.reserve(key.id, Decimal("0.90"), LEASE_LIFETIME)  # the worker dies here: no settle, no release
    with pytest.raises(InsufficientQuota):
        budgets.reserve(key.id, Decimal("0.20"), LEASE_LIFETIME)
    later = Budgets(db, clock=lambda: now + timedelta(seconds=LEASE_LIFETIME + 1))
    assert later.reserve(key.id, Decimal("0.20"), LEASE_LIFETIME)


def test_a_settle_after_the_reservation_expired_still_counts_the_spend(db, store):
    key = make_key(store, budget_usd=Decimal("1.00"))
    budgets = Budgets(db)
    reservation = budgets.reserve(key.id, Decimal("0.40"), LEASE_LIFETIME)
    with db.write() as connection:
        connection.execute(delete(RESERVATIONS))
    budgets.settle(key.id, reservation, Decimal("0.40"))
    assert store.get(key.id).spent_usd == Decimal("0.40")


def test_admission_checks_model_price_and_gives_back_on_refusal(db, store):
    quotas = Quotas(db)
    key = make_key(store, models=("local-*",), concurrency=1, budget_usd=Decimal("1"))
    with pytest.raises(ModelNotAllowed) as caught:
        quotas.admit(key, "gpt-image-1", 1, lambda: Decimal("0.1"))
    assert (caught.value.status, caught.value.type, caught.value.code) == (403, "permission_error",
                                                                           "model_not_allowed")
    with pytest.raises(ModelPriceUnknown):
        quotas.admit(key, "local-image", 1, lambda: None)
    # the refused request gave its slot back: a priced one is admitted
    admission = quotas.admit(key, "local-image", 1, lambda: Decimal("0.2"))
    with pytest.raises(RateLimited) as busy:
        quotas.admit(key, "local-image", 1, lambda: Decimal("0.2"))
    assert busy.value.code == "concurrency_limit_exceeded" and busy.value.headers["Retry-After"] == "1"
    admission.finish(Decimal("0.15"))
    admission.finish(Decimal("0.15"))  # once only
    assert store.get(key.id).spent_usd == Decimal("0.15")
    quotas.admit(key, "local-image", 1, lambda: Decimal("0.2")).finish(None, failed=True)
    assert store.get(key.id).spent_usd == Decimal("0.15")


def test_the_keeper_renews_what_is_still_held(db, store):
    quotas = Quotas(db)
    key = make_key(store, concurrency=1, budget_usd=Decimal("1"))
    admission = quotas.admit(key, "local-image", 1, lambda: Decimal("0.5"))
    with db.write() as connection:  # both would expire within a second...
        for table in (LEASES, RESERVATIONS):
            connection.execute(update(table).values(expires_at=utcnow() + timedelta(seconds=1)))
    quotas.keeper.run_once()  # ...but the request is still running
    with db.read() as connection:
        lease, = connection.execute(select(LEASES.c.expires_at)).scalars()
        reservation, = connection.execute(select(RESERVATIONS.c.expires_at)).scalars()
    for expires in (lease, reservation):
        assert expires - utcnow() > timedelta(seconds=LEASE_LIFETIME - 5)
    admission.finish(Decimal("0.1"))


def test_rate_limit_headers_in_openai_form():
    from app.quotas.windows import WindowState
    assert rate_headers(WindowState(True, 60, 59, 0.0)) == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "0s"}
    assert reset_text(0.2) == "1s" and reset_text(90) == "1m30s"


def test_with_redis_down_a_key_with_request_limits_fails_closed_a_budget_only_key_does_not(db, store):
    from app.quotas.errors import LimitsUnavailable
    quotas = Quotas(db, "redis://127.0.0.1:1/0")  # nothing listens there
    limited = make_key(store, rpm=5)
    with pytest.raises(LimitsUnavailable) as caught:
        quotas.admit(limited, "local-image", 1, lambda: Decimal(0))
    assert (caught.value.status, caught.value.code) == (503, "limits_unavailable")
    budgeted = make_key(store, budget_usd=Decimal("1"))  # its budget lives in the database, which answers
    quotas.admit(budgeted, "local-image", 1, lambda: Decimal("0.1")).finish(Decimal("0.1"))
    assert store.get(budgeted.id).spent_usd == Decimal("0.1")


def test_one_transaction_admits_so_a_refusal_takes_nothing(db, store):
    quotas = Quotas(db)
    key = make_key(store, rpm=100, concurrency=5, images_per_day=100, budget_usd=Decimal("0.15"))
    quotas.admit(key, "local-image", 1, lambda: Decimal("0.10"))
    with pytest.raises(InsufficientQuota):  # rpm and the slot were taken in the same transaction...
        quotas.admit(key, "local-image", 1, lambda: Decimal("0.10"))
    state = quotas.peek_requests(key)
    assert state.remaining == 99  # ...and rolled back with it
    with db.read() as connection:
        assert len(connection.execute(select(LEASES.c.id)).all()) == 1
