"""Proof under faults and load, through gunicorn: documented statuses, retry and fallback counts,
no secret anywhere, workers alive afterwards, and concurrency that holds."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import CLIENT_KEY, OPENAI_KEY, OPENROUTER_KEY, chat_body
from tests.integration.conftest import OPENROUTER_PATH, gateway_env
from tests.support.fake_upstream import Reply
from tests.support.gateway_process import GatewayProcess
from tests.support.openai_fake import image_b64

BACKUP_KEY = "sk-backup-channel-secret-42"
UPSTREAM_TIMEOUT = 2
ANSWER_LIMIT = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def resilient(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    """One worker (so channel health is observable), retries on, a backup channel from a routing file."""
    directory = tmp_path_factory.mktemp("resilient")
    config = directory / "gateway.toml"
    config.write_text(f'[channels.backup]\nprovider = "openrouter"\nbase_url = "{openrouter_server.url}{OPENROUTER_PATH}"\n'
                      'api_key_env = "BACKUP_KEY"\n\n[models."resilient-image"]\n'
                      'routes = ["openai:gpt-image-1", "backup:google/gemini-2.5-flash-image"]\n')
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server,
                      GATEWAY_CONFIG=str(config), BACKUP_KEY=BACKUP_KEY, WEB_CONCURRENCY="1",
                      GATEWAY_MAX_ATTEMPTS="3", GATEWAY_RETRY_BACKOFF_SECONDS="0.05",
                      GATEWAY_UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT), GATEWAY_REQUEST_DEADLINE="6",
                      GATEWAY_MAX_UPSTREAM_BYTES=str(ANSWER_LIMIT), GATEWAY_COOLDOWN_FAILURES="2",
                      GATEWAY_COOLDOWN_SECONDS="60")
    process = GatewayProcess(env, directory / "gunicorn.log").start()
    yield process
    process.stop()


def ask(gateway, model="gpt-image-1", timeout=30):
    return requests.post(gateway.url + "/v1/chat/completions", json=chat_body(model=model),
                         headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=timeout)


def ok_image():
    return Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]})


FAULTS = {
    "500": ([Reply(500, json={"error": {"message": "The server had an error"}})], 502, 1),
    "429-then-ok": ([Reply(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "1"}), ok_image()],
                    200, 2),
    "503-then-ok": ([Reply(503, json={"error": {"message": "overloaded"}}), ok_image()], 200, 2),
    "reset": ([Reply(action="reset")] * 3, 502, 3),
    "slow-beyond-deadline": ([Reply(json={"created": 1}, delay=UPSTREAM_TIMEOUT + 1.5)], 504, 1),
    "truncated-json": ([Reply(body=b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgo')], 502, 1),
    "cut-connection": ([Reply(json={"created": 1, "data": []}, action="truncate")], 502, 1),
    "40-MB-body": ([Reply(body=b" " * (40 * 1024 * 1024), action="chunked")], 502, 1),
    "no-image": ([Reply(json={"created": 1, "data": []})], 502, 1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_answers_its_documented_status(resilient, upstream, fault):
    replies, status, calls = FAULTS[fault]
    upstream.reply("/v1/images/generations", *replies)
    started = time.monotonic()
    response = ask(resilient)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    assert len(upstream.received("/v1/images/generations")) == calls
    assert response.headers["Content-Type"] == "application/json"
    if status == 200:
        assert response.headers["x-gateway-attempts"] == str(calls)
    else:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    if fault == "429-then-ok":
        assert elapsed >= 1.0, "Retry-After was not honoured"
    if fault == "40-MB-body":
        assert response.json()["error"]["code"] == "upstream_answer_too_large"
    assert OPENAI_KEY not in response.text and CLIENT_KEY not in response.text


def test_fallback_to_the_next_route_then_cooldown(resilient, upstream, openrouter):
    upstream.reply("/v1/images/generations", ok_image())
    assert ask(resilient).status_code == 200  # the openai channel starts healthy
    for round_ in range(2):
        upstream.reply("/v1/images/generations", *[Reply(503, json={"error": {"message": "down"}})] * 3)
        response = ask(resilient, model="resilient-image")
        assert response.status_code == 200
        assert response.headers["x-gateway-channel"] == "backup"
        assert response.headers["x-gateway-attempts"] == "4"  # 3 tries on openai, 1 on the backup
    assert openrouter.received()[0].headers["authorization"] == f"Bearer {BACKUP_KEY}"
    calls_before = len(upstream.received("/v1/images/generations"))
    response = ask(resilient, model="resilient-image")  # openai failed twice: it is cooling down
    assert response.headers["x-gateway-channel"] == "backup" and response.headers["x-gateway-attempts"] == "1"
    assert len(upstream.received("/v1/images/generations")) == calls_before


def test_the_gateway_is_healthy_afterwards_and_nothing_leaked(resilient, upstream):
    upstream.reply("/v1/images/generations", ok_image())
    assert requests.get(resilient.url + "/healthz", timeout=5).status_code == 200
    assert ask(resilient).status_code == 200
    log = resilient.log()
    assert log.count("Booting worker") == 1, "a worker died and was replaced"
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log
    for secret in (OPENAI_KEY, CLIENT_KEY, BACKUP_KEY, OPENROUTER_KEY):
        assert secret not in log


def test_forty_concurrent_slow_requests_all_succeed_concurrently(gateway, upstream):
    delay, count = 2.0, 40
    upstream.reply("/v1/images/generations",
                   *[Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]}, delay=delay)] * count)
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(lambda _: ask(gateway, timeout=60).status_code, range(count)))
    wall = time.monotonic() - started
    print(f"\n{count} concurrent requests against a {delay:.0f} s upstream took {wall:.2f} s "
          f"(one after another: {count * delay:.0f} s)")
    assert statuses == [200] * count
    assert wall < delay * 3, f"{count} requests of {delay} s took {wall:.1f} s: they did not run concurrently"
    log = gateway.log()
    assert "WORKER TIMEOUT" not in log and log.count("Booting worker") == 2
