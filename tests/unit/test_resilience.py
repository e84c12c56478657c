"""Retries, fallback and cooldown: what is retried, how long it waits, where a request goes next."""
import random
import time

import pytest
import requests
import responses

from app.core.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRequest
from app.core.result import ImageResult
from app.resilience import ChannelHealth, RetryingClient, RetryPolicy, with_fallback
from tests.conftest import OPENAI_BASE, chat_body
from tests.support.images import PNG_B64

GENERATIONS = OPENAI_BASE + "/images/generations"
OK = {"created": 1, "data": [{"b64_json": PNG_B64}]}


def retriable(error: GatewayError, retry_after=None) -> GatewayError:
    error.retriable = True
    error.retry_after = retry_after
    return error


class ScriptedClient:
    """A provider stand-in that fails as scripted, then succeeds."""

    name = "scripted"

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def max_n(self, model):
        return 10

    def generate(self, request):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ImageResult()

    def generate_streaming(self, request, on_partial):
        return self.generate(request)


def client_with(*failures, policy=None, waits=None):
    scripted = ScriptedClient(*failures)
    sleep = (lambda seconds: waits.append(seconds)) if waits is not None else (lambda seconds: None)
    return scripted, RetryingClient(scripted, policy or RetryPolicy(max_attempts=3, backoff=0.01), sleep=sleep)


def test_retriable_failures_are_retried_until_success():
    scripted, client = client_with(retriable(UpstreamError("503")), retriable(UpstreamError("reset")))
    client.generate(ImageRequest("m", "p"))
    assert scripted.calls == 3


def test_attempts_are_bounded():
    scripted, client = client_with(*[retriable(UpstreamError("503")) for _ in range(5)])
    with pytest.raises(UpstreamError):
        client.generate(ImageRequest("m", "p"))
    assert scripted.calls == 3


@pytest.mark.parametrize("error", [InvalidRequest("bad size"), UpstreamError("500 or malformed"),
                                   UpstreamTimeout("read timeout")])
def test_other_failures_are_not_retried(error):
    if isinstance(error, UpstreamTimeout):
        error.read_timeout = True
    scripted, client = client_with(error)
    with pytest.raises(type(error)):
        client.generate(ImageRequest("m", "p"))
    assert scripted.calls == 1


def test_read_timeouts_are_retried_only_when_configured():
    error = UpstreamTimeout("slow")
    error.read_timeout = True
    scripted, client = client_with(error, policy=RetryPolicy(max_attempts=2, backoff=0.01, retry_read_timeouts=True))
    client.generate(ImageRequest("m", "p"))
    assert scripted.calls == 2


def test_waits_grow_with_jitter_and_honour_retry_after():
    policy = RetryPolicy(backoff=1.0, max_wait=8.0)
    rng = random.Random(1)
    plain = UpstreamError("x")
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 8.0), (9, 8.0)):
        assert all(0 <= policy.wait(attempt, plain, rng) <= ceiling for _ in range(50))
    assert policy.wait(1, retriable(RateLimited("slow"), retry_after=5.0), rng) >= 5.0


def test_retry_after_is_what_the_client_waits(monkeypatch):
    waits = []
    _, client = client_with(retriable(RateLimited("429"), retry_after=1.5), waits=waits)
    client.generate(ImageRequest("m", "p"))
    assert waits[0] >= 1.5


class Route:
    def __init__(self, channel, client):
        self.channel, self.client = channel, client


def test_fallback_moves_to_the_next_route_on_retriable_failure_only():
    health = ChannelHealth()
    first, second = ScriptedClient(retriable(UpstreamError("503"))), ScriptedClient()
    routes = [Route("a", first), Route("b", second)]
    result, route = with_fallback(routes, lambda r: r.client.generate(None), health, RetryPolicy())
    assert route.channel == "b" and first.calls == 1 and second.calls == 1
    blocked = ScriptedClient(InvalidRequest("moderation"))
    with pytest.raises(InvalidRequest):
        with_fallback([Route("a", blocked), Route("b", second)], lambda r: r.client.generate(None), health,
                      RetryPolicy())
    assert second.calls == 1, "a non-retriable failure must not be re-sent (and re-billed) elsewhere"


def test_a_channel_that_keeps_failing_cools_down_and_is_tried_last():
    health = ChannelHealth(failures_to_cool=2, cooldown=60)
    for _ in range(2):
        health.failed("a")
    assert health.cooled("a")
    order = []
    healthy = ScriptedClient()

    def run(route):
        order.append(route.channel)
        return route.client.generate(None)

    with_fallback([Route("a", ScriptedClient()), Route("b", healthy)], run, health, RetryPolicy())
    assert order == ["b"]
    health.succeeded("a")
    assert not health.cooled("a")


def test_cooldown_ends_by_itself():
    health = ChannelHealth(failures_to_cool=1, cooldown=0.05)
    health.failed("a")
    assert health.cooled("a")
    time.sleep(0.06)
    assert not health.cooled("a")


# ----- through the app, with `responses` as the upstream -----

@pytest.fixture
def retrying_client(make_app):
    return make_app(GATEWAY_MAX_ATTEMPTS="3", GATEWAY_RETRY_BACKOFF_SECONDS="0.01").test_client()


def test_503_then_success_answers_200_after_two_attempts(retrying_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=503, json={"error": {"message": "overloaded"}})
        rsps.post(GENERATIONS, json=OK)
        response = retrying_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        assert len(rsps.calls) == 2
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "2" and response.headers["x-gateway-channel"] == "openai"


def test_connection_failure_is_retried(retrying_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, body=requests.ConnectionError("Connection refused"))
        rsps.post(GENERATIONS, json=OK)
        response = retrying_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    assert response.status_code == 200 and response.headers["x-gateway-attempts"] == "2"


def test_read_timeout_is_a_504_after_one_attempt(retrying_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, body=requests.ReadTimeout("read timed out"))
        response = retrying_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        assert len(rsps.calls) == 1
    assert response.status_code == 504


def test_alias_falls_back_to_its_next_route(tmp_path, make_app, auth):
    path = tmp_path / "gateway.toml"
    path.write_text('[channels.backup]\nprovider = "openai"\nbase_url = "https://backup.test/v1"\n'
                    'api_key_env = "BACKUP_KEY"\n\n[models."my-images"]\n'
                    'routes = ["openai:gpt-image-1", "backup:gpt-image-1-mini"]\ndefaults = { quality = "low" }\n')
    client = make_app(GATEWAY_CONFIG=str(path), BACKUP_KEY="sk-backup-123456", GATEWAY_MAX_ATTEMPTS="2",
                      GATEWAY_RETRY_BACKOFF_SECONDS="0.01").test_client()
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=502, json={"error": {"message": "bad gateway"}})
        rsps.post(GENERATIONS, status=502, json={"error": {"message": "bad gateway"}})
        backup = rsps.post("https://backup.test/v1/images/generations", json=OK)
        response = client.post("/v1/chat/completions", json=chat_body(model="my-images"), headers=auth)
        sent = backup.calls[0].request
    assert response.status_code == 200
    assert response.headers["x-gateway-channel"] == "backup" and response.headers["x-gateway-attempts"] == "3"
    assert response.json["model"] == "my-images"
    import json
    assert json.loads(sent.body) == {"model": "gpt-image-1-mini", "prompt": "a paper lantern shaped like a fox",
                                     "quality": "low"}
    assert sent.headers["Authorization"] == "Bearer sk-backup-123456"


def test_defaults_of_the_routing_file_yield_to_the_clients_parameters(tmp_path, make_app, auth):
    path = tmp_path / "gateway.toml"
    path.write_text('[models."local-image"]\ndefaults = { size = "32x32", quality = "low" }\n')
    client = make_app(GATEWAY_CONFIG=str(path)).test_client()
    default = client.post("/v1/chat/completions", json=chat_body(tool={}), headers=auth)
    asked = client.post("/v1/chat/completions", json=chat_body(tool={"size": "48x48"}), headers=auth)
    assert default.json["choices"][0]["message"]["tool_calls"][0]["image_generation"]["size"] == "32x32"
    assert asked.json["choices"][0]["message"]["tool_calls"][0]["image_generation"]["size"] == "48x48"


def test_deadline_stops_a_slow_retry(make_app, auth):
    client = make_app(GATEWAY_MAX_ATTEMPTS="5", GATEWAY_REQUEST_DEADLINE="1").test_client()
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=429, json={"error": {"message": "slow"}}, headers={"Retry-After": "30"})
        started = time.monotonic()
        response = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        assert len(rsps.calls) == 1, "a 30 s Retry-After cannot fit in a 1 s deadline"
    assert response.status_code == 429 and time.monotonic() - started < 1


def test_upstream_answer_over_the_limit_is_refused(make_app, auth):
    client = make_app(GATEWAY_MAX_UPSTREAM_BYTES="2048").test_client()
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, json={"created": 1, "data": [{"b64_json": PNG_B64 + "A" * 4096}]})
        response = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    assert response.status_code == 502 and response.json["error"]["code"] == "upstream_answer_too_large"
    assert "GATEWAY_MAX_UPSTREAM_BYTES" in response.json["error"]["message"]
