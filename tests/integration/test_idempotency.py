"""Idempotency-Key through the real service under gunicorn: retries, races, hang-ups, and Redis across instances."""
from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests

from tests.conftest import CLIENT_KEY, chat_body
from tests.integration.conftest import gateway_env
from tests.support.fake_upstream import Recorded, Reply
from tests.support.gateway_process import GatewayProcess
from tests.support.openai_fake import openai_images
from tests.support.redis_server import running_redis

GENERATIONS = "/v1/images/generations"
SLOW = 1.5  # seconds the fake provider takes when a test needs a request in flight (under UPSTREAM_TIMEOUT)


@pytest.fixture(scope="module")
def servers(openai_server, ark_server, openrouter_server, gemini_server):
    return openai_server, ark_server, openrouter_server, gemini_server


@pytest.fixture(scope="module")
def file_gateway(servers, tmp_path_factory):
    """Two gunicorn workers sharing the embedded file store."""
    workdir = tmp_path_factory.mktemp("idempotency-files")
    env = gateway_env(*servers, GATEWAY_IDEMPOTENCY_DIR=str(workdir / "store"))
    process = GatewayProcess(env, workdir / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keepalive_gateway(servers, tmp_path_factory):
    """GATEWAY_KEEPALIVE_SECONDS on: slow JSON answers start at once as whitespace, then the JSON."""
    workdir = tmp_path_factory.mktemp("idempotency-keepalive")
    env = gateway_env(*servers, GATEWAY_IDEMPOTENCY_DIR=str(workdir / "store"), GATEWAY_KEEPALIVE_SECONDS="0.2")
    process = GatewayProcess(env, workdir / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def redis_gateways(servers, tmp_path_factory):
    """Two separate instances, each with its own (empty) idempotency directory, sharing one redis-server."""
    workdir = tmp_path_factory.mktemp("idempotency-redis")
    with running_redis(workdir) as redis_server:
        processes = []
        try:
            for name in ("a", "b"):
                env = gateway_env(*servers, GATEWAY_REDIS_URL=redis_server.url,
                                  GATEWAY_IDEMPOTENCY_DIR=str(workdir / f"unused-{name}"))
                processes.append(GatewayProcess(env, workdir / f"gunicorn-{name}.log").start())
            yield processes
        finally:
            for process in processes:
                process.stop()


def slow(request: Recorded) -> Reply:
    return replace(openai_images(request), delay=SLOW)


def post(gateway, body, headers, key, **kwargs):
    kwargs.setdefault("timeout", 30)
    return requests.post(gateway.url + "/v1/chat/completions", json=body,
                         headers={**headers, "Idempotency-Key": key}, **kwargs)


KEY_PREFIX = "idem-key-"


def new_key() -> str:
    return f"{KEY_PREFIX}{uuid.uuid4()}"


def image_url(response) -> str:
    return response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"]


def test_a_retry_is_replayed_without_a_second_upstream_call(file_gateway, upstream, headers):
    key, body = new_key(), chat_body(model="gpt-image-1")
    first = post(file_gateway, body, headers, key)
    second = post(file_gateway, body, headers, key)
    assert first.status_code == second.status_code == 200, first.text
    assert len(upstream.received(GENERATIONS)) == 1
    assert second.headers["Idempotent-Replayed"] == "true" and second.content == first.content
    assert second.headers["x-gateway-provider"] == "openai"
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]


def test_the_same_key_with_another_body_is_409(file_gateway, upstream, headers):
    key = new_key()
    assert post(file_gateway, chat_body(model="gpt-image-1"), headers, key).status_code == 200
    response = post(file_gateway, chat_body("something else", model="gpt-image-1"), headers, key)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(upstream.received(GENERATIONS)) == 1


def test_concurrent_requests_with_one_key_make_one_upstream_call(file_gateway, upstream, headers):
    upstream.reply(GENERATIONS, slow)
    key, body = new_key(), chat_body(model="gpt-image-1")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, file_gateway, body, headers, key)
        time.sleep(SLOW / 3)  # the first is generating; the second waits for it (perhaps in another worker)
        second = pool.submit(post, file_gateway, body, headers, key)
        answers = [first.result(), second.result()]
    assert [a.status_code for a in answers] == [200, 200]
    assert len(upstream.received(GENERATIONS)) == 1
    assert image_url(answers[0]) == image_url(answers[1])
    assert answers[1].headers["Idempotent-Replayed"] == "true"


def test_an_answer_made_after_the_client_hung_up_is_replayed(file_gateway, upstream, headers):
    upstream.reply(GENERATIONS, slow)
    key, body = new_key(), chat_body(model="gpt-image-1")
    with pytest.raises(requests.ReadTimeout):
        post(file_gateway, body, headers, key, timeout=(5, SLOW / 3))
    time.sleep(SLOW)  # the abandoned request finishes and keeps its answer
    started = time.monotonic()
    retry = post(file_gateway, body, headers, key)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert time.monotonic() - started < SLOW  # straight from the store, no generation
    assert len(upstream.received(GENERATIONS)) == 1
    assert image_url(retry).startswith("data:image/png;base64,")


def test_a_keepalive_answer_abandoned_mid_wait_is_replayed(keepalive_gateway, upstream, headers):
    upstream.reply(GENERATIONS, slow)
    key, body = new_key(), chat_body(model="gpt-image-1")
    with post(keepalive_gateway, body, headers, key, stream=True) as first:
        assert first.status_code == 200 and first.raw.read(1) == b" "  # keep-alive whitespace
    # hung up; the generation goes on and its answer is kept
    time.sleep(SLOW)
    retry = post(keepalive_gateway, body, headers, key)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert image_url(retry).startswith("data:image/png;base64,")
    assert len(upstream.received(GENERATIONS)) == 1


def test_redis_shares_answers_between_instances(redis_gateways, upstream, headers):
    instance_a, instance_b = redis_gateways
    key, body = new_key(), chat_body(model="gpt-image-1")
    made = post(instance_a, body, headers, key)
    replayed = post(instance_b, body, headers, key)
    assert made.status_code == replayed.status_code == 200
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.content == made.content
    assert len(upstream.received(GENERATIONS)) == 1
    assert post(instance_b, chat_body("another", model="gpt-image-1"), headers, key).status_code == 409


def test_redis_concurrent_requests_on_two_instances_make_one_upstream_call(redis_gateways, upstream, headers):
    instance_a, instance_b = redis_gateways
    upstream.reply(GENERATIONS, slow)
    key, body = new_key(), chat_body(model="gpt-image-1")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, instance_a, body, headers, key)
        time.sleep(SLOW / 3)
        second = pool.submit(post, instance_b, body, headers, key)
        answers = [first.result(), second.result()]
    assert [a.status_code for a in answers] == [200, 200]
    assert len(upstream.received(GENERATIONS)) == 1
    assert answers[1].content == answers[0].content


def test_the_logs_hold_no_error_and_no_key(file_gateway, keepalive_gateway, redis_gateways):
    for process in (file_gateway, keepalive_gateway, *redis_gateways):
        log = process.log()
        assert "Traceback" not in log and "Error handling request" not in log
        # a store outage makes requests run unprotected (fail open): here it would hide a real race
        assert "idempotency store unavailable" not in log
        assert KEY_PREFIX not in log and CLIENT_KEY not in log


# ----- a worker killed mid-generation: its claim is a lease that lapses within seconds -----

LEASE_BOUND = 12.0  # seconds: the 6 s lease, a worker reboot and polling; before leases Redis kept it 390 s


@pytest.fixture(scope="module", params=["file", "redis"])
def lone_worker_gateway(request, servers, tmp_path_factory):
    """One worker (so the test knows whom to kill), with the file store or Redis."""
    workdir = tmp_path_factory.mktemp(f"idempotency-kill-{request.param}")
    with running_redis(workdir) as redis_server:
        store = {"GATEWAY_REDIS_URL": redis_server.url} if request.param == "redis" else {}
        env = gateway_env(*servers, WEB_CONCURRENCY="1", GATEWAY_IDEMPOTENCY_DIR=str(workdir / "store"), **store)
        process = GatewayProcess(env, workdir / "gunicorn.log").start()
        yield process
        process.stop()


def test_a_retry_after_the_worker_was_killed_generates_again_within_seconds(lone_worker_gateway, upstream, headers):
    upstream.reply(GENERATIONS, lambda request: replace(openai_images(request), delay=2.5),
                   lambda request: replace(openai_images(request), delay=0.5))
    key, body = new_key(), chat_body(model="gpt-image-1")
    pool = ThreadPoolExecutor(1)
    pool.submit(post, lone_worker_gateway, body, headers, key)
    deadline = time.monotonic() + 10
    while not upstream.received(GENERATIONS) and time.monotonic() < deadline:
        time.sleep(0.02)
    (worker,) = lone_worker_gateway.worker_pids()
    os.kill(worker, signal.SIGKILL)  # the generation's owner dies holding the claim
    started = time.monotonic()
    retry = post(lone_worker_gateway, body, headers, key)
    elapsed = time.monotonic() - started
    pool.shutdown(wait=True)
    assert retry.status_code == 200, retry.text[:300]
    assert "Idempotent-Replayed" not in retry.headers
    assert len(upstream.received(GENERATIONS)) == 2
    assert elapsed < LEASE_BOUND
