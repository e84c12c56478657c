"""Jobs (DESIGN §9) in the app: submitting, polling, cancelling, per-key isolation, the lifecycle of a
job row (claims, leases, re-runs, the dead and the expired), idempotent submits and webhooks."""
from __future__ import annotations

import base64
import io
import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from app.jobs.records import (CANCELLED, FAILED, IN_PROGRESS, MAX_RUNS, PROCESS, QUEUE, QUEUED, SUCCEEDED, Job,
                              StoredRequest, gateway_restarted, new_job_id)
from app.keys.records import utcnow
from tests.conftest import CLIENT_KEY, chat_body
from tests.support.db_writes import write_transactions
from tests.support.webhook_receiver import SECRET, Receiver

OTHER_KEY = "gw-other-client-key-77aa"
ASYNC = {"Prefer": "respond-async"}
IMAGE = {"model": "local-image", "prompt": "a lighthouse at dusk", "size": "64x64"}


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(GATEWAY_API_KEYS=f"{CLIENT_KEY},{OTHER_KEY}", GATEWAY_JOB_LEASE_SECONDS="1",
                    GATEWAY_IDEMPOTENCY_DIR=str(tmp_path / "idempotency"))


@pytest.fixture
def other() -> dict:
    return {"Authorization": f"Bearer {OTHER_KEY}"}


def wait_for_end(client, location: str, auth: dict, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location, headers=auth).json
        if job["status"] not in (QUEUED, IN_PROGRESS):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def row(app, status=QUEUED, mode=PROCESS, key="env-1", **fields) -> Job:
    """A job kept directly in the store (no runner picks it up): for states a test must hold still."""
    job = Job(id=new_job_id(), key_id=key, status=QUEUED, mode=mode, created_at=utcnow(), **fields)
    store = app.extensions["gateway"].jobs.store
    store.create(job, StoredRequest(path="/v1/images/generations", headers={"Content-Type": "application/json"},
                                    body=b'{"model": "local-image", "prompt": "x", "size": "16x16"}',
                                    base_url="http://localhost"))
    if status != QUEUED:
        from sqlalchemy import update

        from app.db.models import ImageJob
        with store.db.write() as connection:
            connection.execute(update(ImageJob.__table__).where(ImageJob.__table__.c.id == job.id)
                               .values(status=status, attempts=1, runner="elsewhere",
                                       lease_expires_at=utcnow() + timedelta(seconds=60)))
    return store.get(job.id)


# -- submitting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/v1/images/generations", IMAGE),
    ("/api/v1/images/generations", IMAGE),
    ("/v1/chat/completions", chat_body()),
    ("/api/v1/chat/completions", chat_body(tool={"size": "64x64"})),
])
def test_a_job_is_accepted_at_once_and_polled_to_its_result(client, auth, path, body):
    response = client.post(path, json=body, headers={**auth, **ASYNC})
    assert response.status_code == 202, response.json
    job = response.json
    assert set(job) == {"id", "object", "status", "created_at"}
    assert job["id"].startswith("imgjob_") and job["object"] == "image.job" and job["status"] == QUEUED
    assert response.headers["Location"] == f"/v1/images/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    done = wait_for_end(client, response.headers["Location"], auth)
    assert done["status"] == SUCCEEDED and done["error"] is None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"] < done["expires_at"]
    # the /api/v1 twin of the poll route reads the same job
    assert client.get(f"/api/v1/images/jobs/{job['id']}", headers=auth).json == done


def test_the_result_is_the_synchronous_answer_with_links(client, auth):
    sync = client.post("/v1/chat/completions", json=chat_body(), headers=auth).json
    location = client.post("/v1/chat/completions", json=chat_body(), headers={**auth, **ASYNC}).headers["Location"]
    result = wait_for_end(client, location, auth)["result"]
    assert result["object"] == "chat.completion" and result["model"] == sync["model"]
    assert result["usage"] == sync["usage"]
    message, sync_message = result["choices"][0]["message"], sync["choices"][0]["message"]
    assert [part["type"] for part in message["content"]] == [part["type"] for part in sync_message["content"]]
    url = message["images"][0]["image_url"]["url"]
    assert url.startswith("http://localhost/images/") and "signature=" in url  # a link, not base64
    inline = sync_message["images"][0]["image_url"]["url"].split(",", 1)[1]
    with client.get(url.removeprefix("http://localhost")) as picture:
        assert picture.status_code == 200 and picture.data == base64.b64decode(inline)


def test_without_a_store_the_result_carries_base64_and_is_kept_for_the_job_ttl(make_app, auth):
    client = make_app(GATEWAY_IMAGE_STORE="none", GATEWAY_JOB_TTL_SECONDS="7200").test_client()
    location = client.post("/v1/images/generations", json=IMAGE, headers={**auth, **ASYNC}).headers["Location"]
    job = wait_for_end(client, location, auth)
    assert base64.b64decode(job["result"]["data"][0]["b64_json"]).startswith(b"\x89PNG")
    assert 7190 <= job["expires_at"] - job["finished_at"] <= 7200


def test_with_a_store_the_job_lives_as_long_as_its_links(make_app, auth):
    client = make_app(GATEWAY_IMAGE_URL_TTL="600").test_client()
    location = client.post("/v1/images/generations", json=IMAGE, headers={**auth, **ASYNC}).headers["Location"]
    job = wait_for_end(client, location, auth)
    expires = int(job["result"]["data"][0]["url"].split("expires=")[1].split("&")[0])
    assert job["expires_at"] - job["finished_at"] <= 600 and abs(job["expires_at"] - expires) <= 2


def test_the_answer_style_of_the_submit_is_the_results(client, auth):
    headers = {**auth, **ASYNC, "X-Gateway-Answer-Style": "openrouter"}
    location = client.post("/v1/chat/completions", json=chat_body(), headers=headers).headers["Location"]
    message = wait_for_end(client, location, auth)["result"]["choices"][0]["message"]
    assert isinstance(message["content"], str) and message["images"]


@pytest.mark.parametrize("body, status, param", [
    ({**IMAGE, "size": "3x3"}, 400, "size"),
    ({**IMAGE, "model": "no-such-model"}, 404, None),
    ({"model": "local-image"}, 400, "prompt"),
    ({**IMAGE, "response_format": "url", "stream": True}, 400, "stream"),
])
def test_a_bad_request_is_answered_at_once_and_makes_no_job(client, auth, body, status, param):
    response = client.post("/v1/images/generations", json=body, headers={**auth, **ASYNC})
    assert response.status_code == status, response.json
    assert "Location" not in response.headers and response.json["error"]["type"] == "invalid_request_error"
    if param:
        assert response.json["error"]["param"] == param


def test_a_streamed_chat_job_is_refused_naming_stream(client, auth):
    response = client.post("/v1/chat/completions", json=chat_body(stream=True), headers={**auth, **ASYNC})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "stream" and "respond-async" in response.json["error"]["message"]


def test_a_job_needs_a_client_key(client):
    response = client.post("/v1/images/generations", json=IMAGE, headers=ASYNC)
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("prefer", ["wait=5", "return=minimal", "respond-asynchronously", "handling=strict"])
def test_unknown_preferences_are_ignored(client, auth, prefer):
    response = client.post("/v1/images/generations", json=IMAGE, headers={**auth, "Prefer": prefer})
    assert response.status_code == 200 and response.json["data"][0]["b64_json"]
    assert "Preference-Applied" not in response.headers


def test_an_edit_job_keeps_its_uploaded_files(client, auth):
    png = client.post("/v1/images/generations", json=IMAGE, headers=auth).json["data"][0]["b64_json"]
    files = {"image": (io.BytesIO(base64.b64decode(png)), "in.png", "image/png")}
    response = client.post("/v1/images/edits", headers={**auth, **ASYNC}, content_type="multipart/form-data",
                           data={"model": "local-image", "prompt": "night", "size": "64x64", **files})
    assert response.status_code == 202, response.json
    job = wait_for_end(client, response.headers["Location"], auth)
    assert job["status"] == SUCCEEDED and job["result"]["data"][0]["url"]


# -- reading and cancelling: each key sees its own jobs only ---------------------------------------

def test_another_keys_job_is_not_found_like_an_unknown_one(client, auth, other):
    location = client.post("/v1/images/generations", json=IMAGE, headers={**auth, **ASYNC}).headers["Location"]
    wait_for_end(client, location, auth)
    foreign = client.get(location, headers=other)
    unknown = client.get("/v1/images/jobs/imgjob_doesnotexist", headers=other)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json["error"]["code"] == unknown.json["error"]["code"] == "job_not_found"
    assert client.delete(location, headers=other).status_code == 404
    assert client.get(location, headers=auth).json["status"] == SUCCEEDED  # untouched by the other key


def test_polling_needs_a_client_key(client):
    assert client.get("/v1/images/jobs/imgjob_x").status_code == 401


def test_a_queued_job_can_be_cancelled_once(app, client, auth):
    job = row(app)
    response = client.delete(f"/v1/images/jobs/{job.id}", headers=auth)
    assert response.status_code == 200 and response.json["status"] == CANCELLED and response.json["finished_at"]
    again = client.delete(f"/v1/images/jobs/{job.id}", headers=auth)
    assert again.status_code == 409 and again.json["error"]["code"] == "job_not_cancellable"
    assert "cancelled" in again.json["error"]["message"]
    # a runner handed the cancelled job does nothing with it
    claim = app.extensions["gateway"].jobs.store.claim(job.id, "runner-a", 30)
    assert not claim.run and claim.job.status == CANCELLED


def test_a_started_job_cannot_be_cancelled(app, client, auth):
    job = row(app, status=IN_PROGRESS)
    response = client.delete(f"/v1/images/jobs/{job.id}", headers=auth)
    assert response.status_code == 409 and response.json["error"]["code"] == "job_not_cancellable"
    assert "started" in response.json["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    assert client.get(f"/v1/images/jobs/{job.id}", headers=auth).json["status"] == IN_PROGRESS


# -- Idempotency-Key ------------------------------------------------------------------------------

def test_an_idempotency_key_returns_the_same_job(client, auth, other):
    headers = {**auth, **ASYNC, "Idempotency-Key": "order-42"}
    first = client.post("/v1/images/generations", json=IMAGE, headers=headers)
    second = client.post("/v1/images/generations", json=IMAGE, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json["id"] == second.json["id"] and second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Preference-Applied"] == "respond-async"
    # scoped per key: the same Idempotency-Key under another key is another job
    third = client.post("/v1/images/generations", json=IMAGE, headers={**other, **ASYNC, "Idempotency-Key": "order-42"})
    assert third.status_code == 202 and third.json["id"] != first.json["id"]
    # and a synchronous request is another request, not a replay of the job
    sync = client.post("/v1/images/generations", json=IMAGE, headers={**auth, "Idempotency-Key": "order-42"})
    assert sync.status_code == 409 and sync.json["error"]["code"] == "idempotency_key_reused"


# -- the lifecycle of a row -------------------------------------------------------------------------

def test_a_queue_job_whose_runner_died_runs_once_more_then_fails_as_lost(app):
    store = app.extensions["gateway"].jobs.store
    job = row(app, mode=QUEUE)
    first = store.claim(job.id, "worker-a", lease=30)
    assert first.run and first.job.status == IN_PROGRESS and first.job.attempts == 1
    assert first.request.body and first.request.headers["Content-Type"] == "application/json"
    busy = store.claim(job.id, "worker-b", lease=30)  # a duplicate message while worker-a is alive
    assert not busy.run and busy.busy_until is not None
    store.clock = lambda: utcnow() + timedelta(seconds=31)  # worker-a went silent past its lease
    second = store.claim(job.id, "worker-b", lease=30)
    assert second.run and second.job.attempts == MAX_RUNS and second.job.runner == "worker-b"
    store.clock = lambda: utcnow() + timedelta(seconds=62)  # worker-b died too
    third = store.claim(job.id, "worker-c", lease=30)
    assert not third.run and third.job.status == FAILED
    assert third.job.error["code"] == "worker_lost" and "2 times" in third.job.error["message"]
    assert store.finish(job.id, SUCCEEDED, result=b"{}") is None  # a late end of a lost run changes nothing


def test_an_in_process_job_is_never_taken_over(app):
    store = app.extensions["gateway"].jobs.store
    job = row(app, status=IN_PROGRESS, mode=PROCESS)
    store.clock = lambda: utcnow() + timedelta(seconds=120)
    assert not store.claim(job.id, "another-process", lease=30).run


def test_an_in_process_job_of_a_dead_process_fails_as_restarted(app, client, auth):
    job = row(app, status=IN_PROGRESS)
    store = app.extensions["gateway"].jobs.store
    assert client.get(f"/v1/images/jobs/{job.id}", headers=auth).json["status"] == IN_PROGRESS  # lease live
    store.clock = lambda: utcnow() + timedelta(seconds=61)
    ended = store.fail_abandoned(gateway_restarted())
    assert [j.id for j in ended] == [job.id]
    answer = client.get(f"/v1/images/jobs/{job.id}", headers=auth).json
    assert answer["status"] == FAILED and answer["error"]["code"] == "gateway_restarted"
    assert answer["error"]["type"] == "server_error" and answer["result"] is None


def test_polling_reports_a_dead_process_job_without_waiting_for_a_keeper(app, client, auth):
    job = row(app)
    from sqlalchemy import update

    from app.db.models import ImageJob
    table = ImageJob.__table__
    with app.extensions["gateway"].jobs.store.db.write() as connection:
        connection.execute(update(table).where(table.c.id == job.id)
                           .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    answer = client.get(f"/v1/images/jobs/{job.id}", headers=auth).json
    assert answer["status"] == FAILED and answer["error"]["code"] == "gateway_restarted"


def test_a_stopping_process_fails_its_unfinished_jobs_at_once(app, client, auth):
    jobs = app.extensions["gateway"].jobs
    from app.jobs.runner import runner_id
    mine = row(app, runner=runner_id())
    theirs = row(app, runner="another-process", lease_expires_at=utcnow() + timedelta(seconds=60))
    jobs.abandon_own()
    assert client.get(f"/v1/images/jobs/{mine.id}", headers=auth).json["error"]["code"] == "gateway_restarted"
    assert client.get(f"/v1/images/jobs/{theirs.id}", headers=auth).json["status"] == QUEUED


def test_expired_jobs_are_deleted_and_jobs_never_started_fail(app, client, auth):
    store = app.extensions["gateway"].jobs.store
    ended = row(app)
    store.cancel(ended.id, "env-1")
    waiting = row(app, mode=QUEUE)
    store.clock = lambda: utcnow() + timedelta(days=2)
    assert store.sweep(not_started_before=utcnow() + timedelta(days=1)) == 1
    store.clock = utcnow
    assert client.get(f"/v1/images/jobs/{ended.id}", headers=auth).status_code == 404
    stale = client.get(f"/v1/images/jobs/{waiting.id}", headers=auth).json
    assert stale["status"] == FAILED and stale["error"]["code"] == "job_not_started"


def test_an_idle_maintenance_pass_takes_no_write_transaction(app):
    """Every process runs it every lease: with nothing to do it only reads, leaving SQLite's one writer free."""
    jobs = app.extensions["gateway"].jobs
    running = row(app, status=IN_PROGRESS)  # its runner's lease is live
    jobs.store.cancel(row(app).id, "env-1")  # ended, not yet expired
    with write_transactions(jobs.store.db) as writes:
        jobs.maintain()
    assert writes == []
    from sqlalchemy import update

    from app.db.models import ImageJob
    with jobs.store.db.write() as connection:  # its web process is gone
        connection.execute(update(ImageJob.__table__).where(ImageJob.__table__.c.id == running.id)
                           .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    with write_transactions(jobs.store.db) as writes:
        jobs.maintain()
    assert len(writes) == 1 and jobs.store.get(running.id).status == FAILED


def test_queue_jobs_without_a_live_message_are_found_for_dispatch(app):
    store = app.extensions["gateway"].jobs.store
    never_sent = row(app, mode=QUEUE)
    sent = row(app, mode=QUEUE)
    store.mark_enqueued(sent.id)
    lost = row(app, status=IN_PROGRESS, mode=QUEUE)
    later = utcnow() + timedelta(seconds=5)
    assert store.to_dispatch(queued_before=later, lost_before=later) == [never_sent.id]
    much_later = utcnow() + timedelta(seconds=120)
    assert sorted(store.to_dispatch(queued_before=later, lost_before=much_later)) == sorted([never_sent.id, lost.id])


def test_a_job_of_a_revoked_or_vanished_key_fails_when_it_runs(make_app, auth):
    app = make_app(GATEWAY_API_KEYS=CLIENT_KEY)
    job = row(app, key="env-7")  # no such static key any more
    from app.jobs.runner import execute
    assert execute(app, job.id).kind == "done"
    answer = app.extensions["gateway"].jobs.store.get(job.id)
    assert answer.status == FAILED and answer.error["code"] == "invalid_api_key"


# -- webhooks ---------------------------------------------------------------------------------------

def test_a_finished_job_is_posted_to_its_webhook_signed(make_app, auth):
    receiver = Receiver()
    try:
        app = make_app(GATEWAY_WEBHOOK_SECRET=SECRET, GATEWAY_ALLOW_PRIVATE_URLS="true")
        client = app.test_client()
        response = client.post("/v1/images/generations", json=IMAGE,
                               headers={**auth, **ASYNC, "Webhook-URL": receiver.url})
        job = wait_for_end(client, response.headers["Location"], auth)
        deadline = time.monotonic() + 10
        while not receiver.verified:
            assert time.monotonic() < deadline, receiver.rejected
            time.sleep(0.02)
        request, payload = receiver.verified[0]
        assert payload == job  # the body is the job object, as GET shows it
        assert Webhook(SECRET).verify(request.body, request.headers) == job
        app.extensions["gateway"].webhooks.dispatcher.stop()
    finally:
        receiver.fake.stop()


def test_a_cancelled_job_is_posted_to_its_webhook(make_app, auth):
    receiver = Receiver()
    try:
        app = make_app(GATEWAY_WEBHOOK_SECRET=SECRET, GATEWAY_ALLOW_PRIVATE_URLS="true")
        job = row(app, webhook_url=receiver.url)
        app.extensions["gateway"].jobs.store.cancel(job.id, "env-1")  # the delivery is kept with the cancel
        deadline = time.monotonic() + 10
        while not receiver.verified:
            assert time.monotonic() < deadline, receiver.rejected
            time.sleep(0.02)
        payload = receiver.verified[0][1]
        assert payload["id"] == job.id and payload["status"] == CANCELLED and payload["result"] is None
        app.extensions["gateway"].webhooks.dispatcher.stop()
    finally:
        receiver.fake.stop()


@pytest.mark.parametrize("url", ["http://93.184.215.14/hooks", "https://127.0.0.1/hooks"])
def test_a_bad_webhook_url_on_a_job_is_a_400_naming_the_header(make_app, auth, url):
    client = make_app(GATEWAY_WEBHOOK_SECRET=SECRET).test_client()
    response = client.post("/v1/images/generations", json=IMAGE, headers={**auth, **ASYNC, "Webhook-URL": url})
    assert response.status_code == 400 and response.json["error"]["param"] == "Webhook-URL"


# -- a key's limits, budget and usage ledger (DESIGN §7) ------------------------------------------------

@pytest.fixture
def new_key(app):
    def make(**fields):
        key, secret = app.extensions["gateway"].key_store.create({"name": "client", **fields})
        return key, {"Authorization": f"Bearer {secret}"}
    return make


def ledger_rows(app) -> list[dict]:
    from sqlalchemy import text
    gateway = app.extensions["gateway"]
    gateway.ledger.flush()
    with gateway.db.read() as connection:
        return [dict(row) for row in connection.execute(text("SELECT * FROM usage_records")).mappings()]


def test_requests_per_minute_count_the_submit_not_the_run(client, new_key):
    _, headers = new_key(rpm=3)
    jobs = [client.post("/v1/images/generations", json=IMAGE, headers={**headers, **ASYNC}) for _ in range(2)]
    assert [job.status_code for job in jobs] == [202, 202]
    assert jobs[1].headers["x-ratelimit-remaining-requests"] == "1"
    for job in jobs:
        assert wait_for_end(client, job.headers["Location"], headers)["status"] == SUCCEEDED
    third = client.post("/v1/images/generations", json=IMAGE, headers=headers)  # the runs took none of the minute
    assert third.status_code == 200
    refused = client.post("/v1/images/generations", json=IMAGE, headers={**headers, **ASYNC})
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limit_exceeded"


def test_a_model_outside_the_keys_allow_list_is_refused_at_submit(client, new_key):
    _, headers = new_key(models=["gpt-image-*"])
    response = client.post("/v1/images/generations", json=IMAGE, headers={**headers, **ASYNC})
    assert response.status_code == 403 and response.json["error"]["code"] == "model_not_allowed"


def test_a_job_waits_queued_while_its_keys_concurrency_is_full_and_is_one_ledger_row(app, client, new_key):
    key, headers = new_key(concurrency=1)
    quotas = app.extensions["gateway"].quotas
    busy = quotas.slots.acquire(key.id, 1, 30)  # another generation of this key is in flight
    assert busy is not None
    location = client.post("/v1/images/generations", json=IMAGE, headers={**headers, **ASYNC}).headers["Location"]
    time.sleep(0.5)
    assert client.get(location, headers=headers).json["status"] == QUEUED  # held back, not failed
    assert ledger_rows(app) == []  # neither the submit nor the held-back tries are requests of the ledger
    quotas.slots.release(key.id, busy)
    job = wait_for_end(client, location, headers)
    assert job["status"] == SUCCEEDED
    row, = ledger_rows(app)  # one row: the job's generation
    assert (row["key_id"], row["entry_point"], row["status"], row["images"]) == (key.id, "images/generations", 200, 1)
