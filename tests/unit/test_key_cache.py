"""Database keys through the in-process cache: fast lookups, and a revoke or update seen everywhere within the TTL."""
from datetime import timedelta

import pytest

from app.auth import Authenticator, KeysUnavailable
from app.db import Database, DatabaseUnavailable
from app.core.errors import AuthenticationFailed
from app.keys.cache import DEFAULT_TTL, STALE_GRACE, KeyCache
from app.keys.records import utcnow
from app.keys.store import KeyStore
from tests.support.clock import Clock



@pytest.fixture
def store(database_url):
    db = Database(database_url)
    yield KeyStore(db)
    db.dispose()


def worker(store, clock):
    """One gunicorn worker's view: its own cache over the shared database."""
    return Authenticator((), store, KeyCache(clock=clock))


def test_a_revoke_elsewhere_takes_effect_within_the_ttl(store):
    clock = Clock()
    key, secret = store.create({"name": "alice"})
    other_worker = worker(store, clock)
    assert other_worker.authenticate(f"Bearer {secret}").id == key.id
    store.revoke(key.id)  # another process (the CLI, the admin API on another instance)
    assert other_worker.authenticate(f"Bearer {secret}").id == key.id  # cached: no database read
    clock.now += DEFAULT_TTL
    with pytest.raises(AuthenticationFailed, match="revoked"):
        other_worker.authenticate(f"Bearer {secret}")
    assert DEFAULT_TTL <= 5  # the promise in the README


def test_an_update_elsewhere_is_seen_after_the_ttl(store):
    clock = Clock()
    key, secret = store.create({"name": "bob", "rpm": 5})
    auth = worker(store, clock)
    assert auth.authenticate(f"Bearer {secret}").limits.rpm == 5
    store.update(key.id, {"rpm": 9})
    clock.now += DEFAULT_TTL + 0.01
    assert auth.authenticate(f"Bearer {secret}").limits.rpm == 9


def test_forget_drops_a_key_at_once(store):
    clock = Clock()
    key, secret = store.create({"name": "carol"})
    auth = worker(store, clock)
    auth.authenticate(f"Bearer {secret}")
    store.revoke(key.id)
    auth.forget(key.id)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(f"Bearer {secret}")


def test_an_expired_key_is_refused(store):
    key, secret = store.create({"name": "dave"})
    store.update(key.id, {"expires_at": utcnow() - timedelta(seconds=1)})
    with pytest.raises(AuthenticationFailed, match="expired") as caught:
        worker(store, Clock()).authenticate(f"Bearer {secret}")
    assert caught.value.code == "invalid_api_key" and caught.value.status == 401


def test_unknown_secrets_are_cached_too(store):
    clock = Clock()
    auth = worker(store, clock)
    calls = []
    real_find = store.find
    store.find = lambda secret_sha256: calls.append(secret_sha256) or real_find(secret_sha256)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate("Bearer sk-gw-not-a-real-key")
    assert len(calls) == 1


def test_database_down_a_recent_key_still_works_an_unseen_one_is_503(store):
    clock = Clock()
    _, secret = store.create({"name": "erin"})
    auth = worker(store, clock)
    auth.authenticate(f"Bearer {secret}")
    clock.now += DEFAULT_TTL + 1

    def down(_secret_sha256):
        raise DatabaseUnavailable("postgresql is unavailable: connection refused")
    store.find = down
    assert auth.authenticate(f"Bearer {secret}").name == "erin"
    with pytest.raises(KeysUnavailable) as caught:
        auth.authenticate("Bearer sk-gw-never-seen")
    assert caught.value.status == 503
    clock.now += STALE_GRACE
    with pytest.raises(KeysUnavailable):
        auth.authenticate(f"Bearer {secret}")
