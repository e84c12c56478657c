"""The Redis side of per-key limits, against a real Redis: windows through the `limits` library and
generation slots through a Lua script, shared by every worker and instance that points at it."""
import pytest

from app.quotas.concurrency import RedisSlots
from app.quotas.windows import RedisWindows
from tests.support.redis_server import running_redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def test_requests_per_minute_count_down_then_refuse_with_when_to_retry(redis_url):
    windows = RedisWindows(redis_url)
    states = [windows.hit("key_rpm", "requests", 3, 60) for _ in range(4)]
    assert [(s.allowed, s.remaining) for s in states] == [(True, 2), (True, 1), (True, 0), (False, 0)]
    assert 0 < states[-1].reset_seconds <= 120


def test_images_per_day_skip_reading_what_is_left_until_refused(redis_url):
    windows = RedisWindows(redis_url)
    allowed = windows.hit("key_img", "images", 5, 86400, cost=4, remaining_wanted=False)
    assert (allowed.allowed, allowed.remaining) == (True, -1)  # one round trip: nothing read back
    refused = windows.hit("key_img", "images", 5, 86400, cost=2, remaining_wanted=False)
    assert not refused.allowed and refused.remaining == 1  # read back, for the message
    assert windows.hit("key_img", "images", 5, 86400, cost=1, remaining_wanted=False).allowed  # the refusal took nothing


def test_slots_are_shared_and_given_back(redis_url):
    first, second = RedisSlots(redis_url), RedisSlots(redis_url)  # two workers
    held = [first.acquire("key_slots", 2, 30), second.acquire("key_slots", 2, 30)]
    assert all(held) and first.acquire("key_slots", 2, 30) is None
    second.release("key_slots", held[1])
    assert first.acquire("key_slots", 2, 30) is not None
