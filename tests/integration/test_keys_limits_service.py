"""Keys, limits and budgets in the real service: gunicorn instances sharing PostgreSQL and Redis (or one
instance's workers sharing SQLite), a priced fake provider, the CLI making keys."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal

import pytest
import requests

from tests.conftest import OPENAI_KEY
from tests.integration.conftest import OPENAI_PATH
from tests.support.fake_upstream import Reply
from tests.support.gateway_process import GatewayProcess
from tests.support.openai_fake import openai_images
from tests.support.redis_server import running_redis

CLI = os.path.join(os.path.dirname(sys.executable), "image-gateway")
ADMIN = "admin-token-integration-5c2e"
PRICE = Decimal("0.01")  # per picture of house-image, from the routing file
PICTURES_IN_BUDGET = 10
CONCURRENT_REQUESTS = 40
ROUTING = f'''
[prices."house-image"]
unit = "image"
price = "{PRICE}"
source = "test price"
'''


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def cli(env: dict, *args: str) -> dict:
    result = subprocess.run([CLI, *args, "--json"], env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def service_env(tmp_path, openai_server, **extra) -> dict:
    routing = tmp_path / "gateway.toml"
    routing.write_text(ROUTING)
    return {"GATEWAY_API_KEYS": "static-key", "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_server.url + OPENAI_PATH, "OPENAI_MODELS": "house-image",
            "GATEWAY_CONFIG": str(routing), "GATEWAY_ADMIN_TOKEN": ADMIN, "GATEWAY_MAX_ATTEMPTS": "1", **extra}


def post_image(gateway: GatewayProcess, secret: str, prompt: str = "a kite") -> requests.Response:
    return requests.post(gateway.url + "/v1/images/generations", json={"model": "house-image", "prompt": prompt},
                         headers={"Authorization": f"Bearer {secret}"}, timeout=60)


def ledger(gateway: GatewayProcess, key_id: str, requests_expected: int, timeout: float = 20) -> dict:
    """The admin API's total for a key, once the ledger holds `requests_expected` rows (it is written behind)."""
    deadline = time.monotonic() + timeout
    while True:
        total = requests.get(gateway.url + f"/admin/v1/usage?key_id={key_id}",
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()["total"]
        if total["requests"] >= requests_expected or time.monotonic() > deadline:
            return total
        time.sleep(0.2)


def test_two_instances_sharing_postgresql_and_redis_never_overspend(postgres, redis, upstream, tmp_path):
    """The overspend proof: 40 concurrent requests over two instances on a key whose budget is 10 pictures."""
    database = postgres.database()
    env = service_env(tmp_path, upstream, DATABASE_URL=database, GATEWAY_REDIS_URL=redis.url)
    subprocess.run([CLI, "db", "upgrade"], env={"PATH": os.environ["PATH"], **env}, check=True, capture_output=True,
                   timeout=60)
    key = cli(env, "keys", "create", "--name", "budgeted", "--budget-usd", str(PRICE * PICTURES_IN_BUDGET))
    for _ in range(CONCURRENT_REQUESTS):  # each picture takes a while, so the requests overlap
        upstream.reply(OPENAI_PATH + "/images/generations", lambda request: replace(openai_images(request), delay=0.3))
    first = GatewayProcess(env, tmp_path / "first.log").start()
    second = GatewayProcess(env, tmp_path / "second.log").start()
    try:
        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
            answers = list(pool.map(lambda i: post_image((first, second)[i % 2], key["key"], f"kite {i}"),
                                    range(CONCURRENT_REQUESTS)))
        billed = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code != 200]
        assert 0 < len(billed) <= PICTURES_IN_BUDGET
        assert {(a.status_code, a.json()["error"]["type"], a.json()["error"]["code"]) for a in refused} == {
            (429, "insufficient_quota", "insufficient_quota")}
        client_sum = sum(Decimal(str(a.json()["usage"]["cost"])) for a in billed)
        assert client_sum == PRICE * len(billed)
        assert len(upstream.received(OPENAI_PATH + "/images/generations")) == len(billed)  # no unbudgeted call
        total = ledger(first, key["id"], CONCURRENT_REQUESTS)
        assert total["requests"] == CONCURRENT_REQUESTS and total["images"] == len(billed)
        assert Decimal(str(total["cost_usd"])) == client_sum
        spent = requests.get(second.url + f"/admin/v1/keys/{key['id']}",
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()["spent_usd"]
        assert Decimal(str(spent)) == client_sum
        print(f"overspend proof: {len(billed)} billed, {len(refused)} refused, ledger ${total['cost_usd']}, "
              f"clients ${client_sum}")
    finally:
        first.stop()
        second.stop()


def test_rpm_and_concurrency_hold_across_two_instances_through_redis(postgres, redis, upstream, tmp_path):
    database = postgres.database()
    env = service_env(tmp_path, upstream, DATABASE_URL=database, GATEWAY_REDIS_URL=redis.url)
    subprocess.run([CLI, "db", "upgrade"], env={"PATH": os.environ["PATH"], **env}, check=True, capture_output=True,
                   timeout=60)
    limited = cli(env, "keys", "create", "--name", "rpm", "--rpm", "2")
    single = cli(env, "keys", "create", "--name", "one-at-a-time", "--concurrency", "1")
    first = GatewayProcess(env, tmp_path / "first.log").start()
    second = GatewayProcess(env, tmp_path / "second.log").start()
    try:
        statuses = [post_image(gateway, limited["key"]).status_code for gateway in (first, second, first)]
        assert statuses == [200, 200, 429]
        for _ in range(2):
            upstream.reply(OPENAI_PATH + "/images/generations",
                           lambda request: replace(openai_images(request), delay=1.0))
        with ThreadPoolExecutor(2) as pool:
            both = list(pool.map(lambda g: post_image(g, single["key"]), (first, second)))
        assert sorted(a.status_code for a in both) == [200, 429]
        busy = next(a for a in both if a.status_code == 429)
        assert busy.json()["error"]["code"] == "concurrency_limit_exceeded" and busy.headers["Retry-After"] == "1"
        assert post_image(second, single["key"]).status_code == 200  # the slot is free again
    finally:
        first.stop()
        second.stop()


def test_the_quick_start_holds_rpm_across_its_two_workers_without_redis(upstream, tmp_path):
    env = service_env(tmp_path, upstream, GATEWAY_DATA_DIR=str(tmp_path / "data"))
    key = cli(env, "keys", "create", "--name", "quick", "--rpm", "2")
    gateway = GatewayProcess(env, tmp_path / "gunicorn.log").start()  # WEB_CONCURRENCY=2
    try:
        # new connections each time, so both workers take requests
        statuses = [post_image(gateway, key["key"]).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
    finally:
        gateway.stop()


def test_ledger_rows_survive_a_killed_worker(upstream, tmp_path):
    env = service_env(tmp_path, upstream, GATEWAY_DATA_DIR=str(tmp_path / "data"), WEB_CONCURRENCY="1")
    key = cli(env, "keys", "create", "--name", "crash")
    gateway = GatewayProcess(env, tmp_path / "gunicorn.log").start()
    try:
        answer = post_image(gateway, key["key"])
        assert answer.status_code == 200
        worker = int(subprocess.run(["pgrep", "-P", str(gateway.proc.pid)], capture_output=True, text=True)
                     .stdout.split()[0])
        os.kill(worker, signal.SIGKILL)  # within the writer's half second: the row is still in the spool
        total = ledger(gateway, key["id"], 1, timeout=30)  # the replacement worker replays the dead one's spool
        assert total["requests"] == 1 and total["images"] == 1
        assert Decimal(str(total["cost_usd"])) == PRICE
    finally:
        gateway.stop()
