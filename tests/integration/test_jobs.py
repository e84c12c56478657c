"""Jobs under gunicorn (Procfile `web:`), in both modes: in the web process, and on Redis with a real
worker process started through the Procfile's `worker:` command. Nothing is lost: a web restart keeps a
queued job (Redis), a worker killed mid-job re-runs it once then fails it with a reason, a web process
that stops fails its unfinished in-process jobs with `gateway_restarted`; webhooks are verified with
the standardwebhooks verifier; the OpenAI SDK submits and polls."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import CLIENT_KEY
from tests.integration.conftest import OPENAI_PATH
from tests.support.gateway_process import ROOT, GatewayProcess
from tests.support.openai_fake import openai_images
from tests.support.processes import stop_group
from tests.support.redis_server import running_redis
from tests.support.webhook_receiver import SECRET, Receiver

OTHER_KEY = "gw-other-client-key-77aa"
LEASE = 2          # seconds: how long a silent runner counts as alive (GATEWAY_JOB_LEASE_SECONDS)
GENERATIONS = OPENAI_PATH + "/images/generations"
BODY = {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "size": "1024x1024"}


def procfile_worker() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            return line[len("worker:"):].strip()
    raise RuntimeError("Procfile has no worker: line")


class WorkerProcess:
    """`image-gateway worker` as the Procfile starts it, in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self, timeout: float = 30) -> "WorkerProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["/bin/sh", "-c", "exec " + procfile_worker()], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while b"worker ready" not in self.log_path.read_bytes():
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        stop_group(self.proc, timeout=30)
        if not self._log.closed:
            self._log.close()


class Gate:
    """Upstream calls that wait until the test opens the gate (a generation that takes as long as needed)."""

    def __init__(self):
        self.opened = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request):
        with self._lock:
            self.calls += 1
        self.opened.wait(60)
        return openai_images(request)

    def wait_calls(self, count: int, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while self.calls < count:
            assert time.monotonic() < deadline, f"{self.calls} upstream calls, expected {count}"
            time.sleep(0.02)
        return time.monotonic()


@pytest.fixture
def gate(upstream):
    gate = Gate()
    for _ in range(4):
        upstream.reply(GENERATIONS, gate)
    yield gate
    gate.opened.set()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.fake.stop()


def job_env(openai_server, tmp_path: Path, **extra) -> dict[str, str]:
    return {
        "GATEWAY_API_KEYS": f"{CLIENT_KEY},{OTHER_KEY}",
        "OPENAI_API_KEY": "sk-test-provider-secret", "OPENAI_BASE_URL": openai_server.url + OPENAI_PATH,
        "GATEWAY_ALLOW_PRIVATE_URLS": "true", "GATEWAY_MAX_ATTEMPTS": "1", "GATEWAY_UPSTREAM_TIMEOUT": "90",
        "GATEWAY_WEBHOOK_SECRET": SECRET, "GATEWAY_JOB_LEASE_SECONDS": str(LEASE),
        "GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_IDEMPOTENCY_DIR": str(tmp_path / "idempotency"), **extra,
    }


def gateway(env: dict, tmp_path: Path, name: str, **overrides) -> GatewayProcess:
    process = GatewayProcess({**env, **overrides}, tmp_path / f"{name}.log")
    process.env["GATEWAY_DATA_DIR"] = env["GATEWAY_DATA_DIR"]  # one database across restarts
    return process.start()


def worker(web: GatewayProcess, tmp_path: Path) -> WorkerProcess:
    """A new worker with a log of its own (so waiting for its "worker ready" line waits for it)."""
    return WorkerProcess(dict(web.env), tmp_path / f"worker-{time.monotonic_ns()}.log").start()


def submit(web: GatewayProcess, headers: dict | None = None, key: str = CLIENT_KEY) -> requests.Response:
    response = requests.post(web.url + "/v1/images/generations", json=BODY, timeout=30,
                             headers={"Authorization": f"Bearer {key}", "Prefer": "respond-async", **(headers or {})})
    assert response.status_code == 202, response.text
    return response


def poll(web: GatewayProcess, location: str, until=("succeeded", "failed", "cancelled"), timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(web.url + location, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=10).json()
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def verified_webhooks(receiver: Receiver, count: int = 1, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(receiver.verified) < count:
        assert time.monotonic() < deadline, receiver.rejected
        time.sleep(0.05)
    return [payload for _, payload in receiver.verified]


# -- in the web process (no Redis) --------------------------------------------------------------------

def test_in_process_job_through_the_sdk_with_a_signed_webhook(openai_server, upstream, receiver, tmp_path):
    openai = pytest.importorskip("openai")
    web = gateway(job_env(openai_server, tmp_path), tmp_path, "web")
    try:
        with openai.OpenAI(base_url=web.url + "/v1", api_key=CLIENT_KEY, max_retries=0) as client:
            started = time.perf_counter()
            raw = client.images.with_raw_response.generate(
                model="gpt-image-1", prompt="a lighthouse at dusk",
                extra_headers={"Prefer": "respond-async", "Webhook-URL": receiver.url, "Idempotency-Key": "j-1"})
            submit_ms = (time.perf_counter() - started) * 1000
            assert raw.status_code == 202 and raw.headers["preference-applied"] == "respond-async"
            accepted = raw.http_response.json()
            assert raw.headers["location"] == f"/v1/images/jobs/{accepted['id']}"
            deadline = time.monotonic() + 30
            while (job := client.get(f"/images/jobs/{accepted['id']}", cast_to=object))["status"] != "succeeded":
                assert job["status"] in ("queued", "in_progress") and time.monotonic() < deadline, job
                time.sleep(0.05)
            picture = requests.get(job["result"]["data"][0]["url"], timeout=10)  # a link: the row stays small
            assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
            # the same Idempotency-Key gives the same job, without a second generation
            again = client.images.with_raw_response.generate(
                model="gpt-image-1", prompt="a lighthouse at dusk",
                extra_headers={"Prefer": "respond-async", "Webhook-URL": receiver.url, "Idempotency-Key": "j-1"})
            assert again.status_code == 202 and again.http_response.json()["id"] == accepted["id"]
        assert verified_webhooks(receiver) == [job]  # signed, verified, the job object as GET shows it
        assert len(upstream.received(GENERATIONS)) == 1
        other = requests.get(web.url + f"/v1/images/jobs/{accepted['id']}", timeout=10,
                             headers={"Authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"
        print(f"submit latency: {submit_ms:.1f} ms")
    finally:
        web.stop()


def test_in_process_a_stopping_web_process_fails_its_queued_job_and_finishes_its_running_one(
        openai_server, gate, tmp_path):
    env = job_env(openai_server, tmp_path, WEB_CONCURRENCY="1", GATEWAY_JOB_THREADS="1")
    web = gateway(env, tmp_path, "web")
    running = submit(web).headers["Location"]
    gate.wait_calls(1)
    queued = submit(web).headers["Location"]  # waits behind the running one (one job thread)
    stopper = threading.Thread(target=web.stop)
    stopper.start()           # SIGTERM: the running job gets a grace period, the queued one fails at once
    time.sleep(1.0)
    gate.opened.set()
    stopper.join(60)
    web = gateway(env, tmp_path, "web-again")
    try:
        assert poll(web, running)["status"] == "succeeded"
        failed = poll(web, queued)
        assert failed["status"] == "failed" and failed["error"]["code"] == "gateway_restarted"
        assert gate.calls == 1  # the queued job was never run
    finally:
        web.stop()


def test_in_process_a_killed_web_process_leaves_no_job_in_progress(openai_server, gate, receiver, tmp_path):
    env = job_env(openai_server, tmp_path)
    web = gateway(env, tmp_path, "web")
    location = submit(web, {"Webhook-URL": receiver.url}).headers["Location"]
    gate.wait_calls(1)
    assert poll(web, location, until=("in_progress",))["status"] == "in_progress"
    os.killpg(web.proc.pid, signal.SIGKILL)
    web.proc.wait(10)
    web.stop()  # already gone: closes its log
    web = gateway(env, tmp_path, "web-again")
    try:
        failed = poll(web, location, timeout=LEASE + 10)
        assert failed["status"] == "failed" and failed["error"]["code"] == "gateway_restarted"
        assert failed["error"]["message"]
        assert verified_webhooks(receiver)[0]["error"]["code"] == "gateway_restarted"
    finally:
        web.stop()


# -- on Redis, with a worker process ----------------------------------------------------------------------

@pytest.fixture
def redis(tmp_path):
    with running_redis(tmp_path) as server:
        yield server


def test_queue_a_job_survives_a_web_restart_and_is_delivered_by_a_worker(openai_server, upstream, redis, receiver,
                                                                         tmp_path):
    env = job_env(openai_server, tmp_path, GATEWAY_REDIS_URL=redis.url)
    web = gateway(env, tmp_path, "web")
    location = submit(web, {"Webhook-URL": receiver.url}).headers["Location"]
    web.stop()                                    # no worker yet: the job is only in the database and Redis
    web = gateway(env, tmp_path, "web-again")
    assert poll(web, location, until=("queued",))["status"] == "queued"
    runner = worker(web, tmp_path)
    try:
        job = poll(web, location)
        assert job["status"] == "succeeded", job
        link = urlsplit(job["result"]["data"][0]["url"])  # made for the first web process's address
        assert requests.get(f"{web.url}{link.path}?{link.query}", timeout=10).status_code == 200
        assert verified_webhooks(receiver) == [job]
        assert len(upstream.received(GENERATIONS)) == 1
    finally:
        runner.stop()
        web.stop()


def test_queue_a_worker_killed_mid_job_reruns_it_once_then_it_fails_as_lost(openai_server, gate, redis, tmp_path):
    env = job_env(openai_server, tmp_path, GATEWAY_REDIS_URL=redis.url)
    web = gateway(env, tmp_path, "web")
    first = worker(web, tmp_path)
    runners = [first]
    try:
        rerun = submit(web).headers["Location"]
        gate.wait_calls(1)
        first.kill()                                  # kill -9 mid-job
        killed = time.monotonic()
        runners.append(worker(web, tmp_path))
        rerun_seconds = gate.wait_calls(2) - killed   # the broker gave the dead worker's message back
        runners[-1].kill()                            # ... and the re-run is killed too
        runners.append(worker(web, tmp_path))
        lost = poll(web, rerun, timeout=LEASE * 5 + 30)
        assert lost["status"] == "failed" and lost["error"]["code"] == "worker_lost", lost
        assert "2 times" in lost["error"]["message"] and gate.calls == 2  # never a third run
        # a job whose first worker dies succeeds on the next one
        gate.opened.set()
        survivor = submit(web).headers["Location"]
        assert poll(web, survivor)["status"] == "succeeded"
        print(f"worker kill -9 to re-run: {rerun_seconds:.1f} s (lease {LEASE} s)")
    finally:
        gate.opened.set()
        for runner in runners:
            runner.stop()
        web.stop()


def test_queue_jobs_of_one_key_are_invisible_to_another(openai_server, upstream, redis, tmp_path):
    env = job_env(openai_server, tmp_path, GATEWAY_REDIS_URL=redis.url)
    web = gateway(env, tmp_path, "web")
    runner = worker(web, tmp_path)
    try:
        location = submit(web).headers["Location"]
        assert poll(web, location)["status"] == "succeeded"
        for method in ("GET", "DELETE"):
            answer = requests.request(method, web.url + location, headers={"Authorization": f"Bearer {OTHER_KEY}"},
                                      timeout=10)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found"
    finally:
        runner.stop()
        web.stop()


# -- the job rows and the webhook outbox on PostgreSQL (row locks, SKIP LOCKED) ------------------------------

def test_job_rows_and_their_webhooks_on_postgresql(postgres, receiver):
    from datetime import timedelta

    from app.config import Settings
    from app.db import Database, migrate
    from app.db.urls import database_url
    from app.jobs.records import MAX_RUNS, QUEUE, Job, StoredRequest, new_job_id
    from app.jobs.store import JobStore
    from app.keys.records import utcnow
    from app.webhooks import Webhooks
    from app.webhooks.outbox import Delivery

    db = Database(database_url(postgres.database(), "."))
    migrate.upgrade(db)
    settings = Settings.from_env({"GATEWAY_WEBHOOK_SECRET": SECRET, "GATEWAY_ALLOW_PRIVATE_URLS": "true"})
    webhooks = Webhooks(settings, db)
    try:
        store = JobStore(db, webhooks)
        job = Job(id=new_job_id(), key_id="env-1", status="queued", mode=QUEUE, created_at=utcnow(),
                  webhook_url=receiver.url)
        store.create(job, StoredRequest("/v1/images/generations", {"Content-Type": "application/json"},
                                        b'{"prompt": "x"}', "https://gateway.example.com"))
        first = store.claim(job.id, "worker-a", lease=30)
        assert first.run and first.request.body == b'{"prompt": "x"}'
        assert store.claim(job.id, "worker-b", lease=30).busy_until is not None
        store.clock = lambda: utcnow() + timedelta(seconds=31)
        assert store.claim(job.id, "worker-b", lease=30).job.attempts == MAX_RUNS
        ended = store.finish(job.id, "succeeded", result=b'{"created": 1, "data": []}')
        assert ended.status == "succeeded" and store.get(job.id, "env-2") is None
        # the webhook kept with the job's end is delivered, signed
        payload = verified_webhooks(receiver)[0]
        assert payload["id"] == job.id and payload["result"] == {"created": 1, "data": []}
        store.clock = lambda: utcnow() + timedelta(days=3)
        assert store.sweep(not_started_before=utcnow()) == 1 and store.get(job.id) is None
        # two dispatchers never claim the same delivery (rows locked with SKIP LOCKED)
        webhooks.dispatcher.stop()
        outbox = webhooks.outbox
        with db.write() as connection:
            for index in range(12):
                outbox.add_within(connection, Delivery.new(f"{receiver.url}/{index}", b"{}", time.time()))
        claimed = outbox.claim_due(time.time(), 5) + outbox.claim_due(time.time(), 50)
        assert len(claimed) == 12 and len({d.id for d in claimed}) == 12
    finally:
        if webhooks.dispatcher is not None:
            webhooks.dispatcher.stop()
        db.dispose()
