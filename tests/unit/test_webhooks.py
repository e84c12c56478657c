"""Webhooks: Standard Webhooks signatures checked by the reference verifier, the URL guard, the
outbox in the database, retries with backoff, and deliveries that survive a restart."""
from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.config import ConfigError, Settings
from app.webhooks import HEADER, Webhooks
from app.db import Database
from app.webhooks.outbox import DatabaseOutbox, Delivery
from app.webhooks.sender import RETRY_DELAYS, Dispatcher, WebhookSender, retry_delay
from app.webhooks.signing import signed_headers
from app.webhooks.targets import MAX_URL_LENGTH, TargetRefused, check_target
from tests.conftest import chat_body
from tests.support.db_writes import write_transactions
from tests.support.fake_upstream import Reply
from tests.support.webhook_receiver import SECRET, SECRET_BYTES, Receiver

PUBLIC_URL = "https://93.184.215.14/hooks"  # a public address literal: checked without any lookup


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.fake.stop()


def sender(allow_private: bool = True, secret: bytes = SECRET_BYTES) -> WebhookSender:
    return WebhookSender(secret, allow_private=allow_private, connect_timeout=2, read_timeout=5)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_signatures_verify_with_the_standard_webhooks_verifier():
    body = json.dumps({"id": "imgjob_1", "status": "succeeded"}).encode()
    headers = signed_headers(SECRET_BYTES, "msg_1", body, int(time.time()))
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == {"id": "imgjob_1", "status": "succeeded"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"succeeded", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(body, headers)


def test_a_delivery_reaches_the_receiver_signed(receiver):
    delivery = Delivery.new(receiver.url, json.dumps({"id": "imgjob_2", "object": "image.job"}).encode(), time.time())
    outcome = sender().attempt(delivery)
    assert outcome.delivered, outcome.error
    request, payload = receiver.verified[0]
    assert payload == {"id": "imgjob_2", "object": "image.job"}
    assert request.headers["webhook-id"] == delivery.id and request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("url, allow_private, reason", [
    ("http://93.184.215.14/hooks", False, "https"),
    ("https://127.0.0.1/hooks", False, "Could not reach 127.0.0.1"),  # why is for the log only
    ("https://10.1.2.3/hooks", True, None),
    ("http://127.0.0.1:9/hooks", True, None),
    ("https://user:pw@93.184.215.14/hooks", False, "credentials"),
    ("ftp://93.184.215.14/hooks", True, "https"),
    ("https:///hooks", False, "no host"),
    (PUBLIC_URL + "?" + "x" * MAX_URL_LENGTH, False, "longer"),
    (PUBLIC_URL, False, None),
])
def test_webhook_urls_are_guarded_like_downloads(url, allow_private, reason):
    if reason is None:
        assert check_target(url, allow_private) == url
        return
    with pytest.raises(TargetRefused, match=reason):
        check_target(url, allow_private)


def test_a_private_receiver_is_refused_at_send_time_too(receiver):
    url = receiver.url.replace("http://", "https://")  # accepted once, the setting turned off since
    outcome = sender(allow_private=False).attempt(Delivery.new(url, b"{}", time.time()))
    assert not outcome.delivered and outcome.permanent and "private" in outcome.error
    assert not receiver.fake.received()


def make_app_with_webhooks(make_app, **overrides):
    return make_app(GATEWAY_WEBHOOK_SECRET=SECRET, **overrides)


@pytest.mark.parametrize("url, message", [
    ("http://93.184.215.14/hooks", "https"),
    ("https://127.0.0.1/hooks", "Could not reach 127.0.0.1"),
    ("https://93.184.215.14/" + "x" * MAX_URL_LENGTH, "longer"),
    ("not a url", "https"),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/images/generations"])
def test_a_bad_webhook_url_header_is_a_400_naming_the_header(make_app, auth, url, message, path):
    client = make_app_with_webhooks(make_app).test_client()
    body = chat_body() if "chat" in path else {"model": "local-image", "prompt": "x"}
    response = client.post(path, json=body, headers={**auth, HEADER: url})
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["param"] == "Webhook-URL" and error["code"] == "invalid_webhook_url" and message in error["message"]


def test_a_webhook_url_without_a_secret_is_a_400_naming_the_setting(client, auth):
    response = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "x"},
                           headers={**auth, HEADER: PUBLIC_URL})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "Webhook-URL"
    assert "GATEWAY_WEBHOOK_SECRET" in response.json["error"]["message"]


def test_a_good_webhook_url_is_accepted(make_app, auth):
    client = make_app_with_webhooks(make_app).test_client()
    response = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "x", "size": "16x16"},
                           headers={**auth, HEADER: PUBLIC_URL})
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["whsec_" + base64.b64encode(b"k" * 32).decode(),
                                   base64.b64encode(b"k" * 32).decode(),
                                   "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")])
def test_the_secret_is_read_in_its_standard_form(value):
    assert Settings.from_env({"GATEWAY_WEBHOOK_SECRET": value}).webhook_secret == b"k" * 32


@pytest.mark.parametrize("value", ["whsec_short", "whsec_" + base64.b64encode(b"k" * 16).decode(), "whsec_!!!!"])
def test_a_bad_secret_stops_the_service_naming_the_variable(value):
    with pytest.raises(ConfigError, match="GATEWAY_WEBHOOK_SECRET"):
        Settings.from_env({"GATEWAY_WEBHOOK_SECRET": value})


def test_retries_back_off_for_about_an_hour():
    assert len(RETRY_DELAYS) + 1 == 7
    total = sum(RETRY_DELAYS)
    assert 55 * 60 <= total <= 70 * 60
    assert list(RETRY_DELAYS) == sorted(RETRY_DELAYS)
    for attempts, delay in enumerate(RETRY_DELAYS, start=1):
        assert 0.9 * delay <= retry_delay(attempts) <= 1.1 * delay
    assert retry_delay(len(RETRY_DELAYS) + 1) is None


def quick(attempts: int) -> float | None:
    """A compressed schedule for tests: 3 attempts, 50 ms apart."""
    return 0.05 if attempts < 3 else None


def outbox_on(database_url: str, lease: float = 120.0) -> DatabaseOutbox:
    """An outbox over the test's database, as a separate process would open it."""
    return DatabaseOutbox(Database(database_url), lease=lease)


def keep(outbox: DatabaseOutbox, delivery: Delivery) -> None:
    """Keep a delivery as a job's end does: inside a write transaction."""
    with outbox.db.write() as connection:
        outbox.add_within(connection, delivery)


def test_a_failing_receiver_is_retried_until_it_accepts(receiver, database_url):
    receiver.fake.reply("/hooks", Reply(500), Reply(503))
    outbox = outbox_on(database_url)
    dispatcher = Dispatcher(outbox, sender(), delays=quick, poll_interval=0.05)
    delivery = Delivery.new(receiver.url, b'{"id": "imgjob_3"}', time.time())
    keep(outbox, delivery)
    dispatcher.wake()
    try:
        wait_for(lambda: receiver.verified)
    finally:
        dispatcher.stop()
    attempts = receiver.fake.received("/hooks")
    assert len(attempts) == 3
    assert {r.headers["webhook-id"] for r in attempts} == {delivery.id}  # receivers can drop duplicates
    assert outbox.get(delivery.id) is None and outbox.next_due() is None  # delivered: nothing left


def test_a_delivery_is_given_up_with_its_reason_after_the_last_retry(receiver, database_url):
    receiver.fake.reply("/hooks", Reply(500), Reply(500), Reply(500))
    outbox = outbox_on(database_url)
    dispatcher = Dispatcher(outbox, sender(), delays=quick, poll_interval=0.05)
    delivery = Delivery.new(receiver.url, b"{}", time.time())
    keep(outbox, delivery)
    dispatcher.wake()
    try:
        wait_for(lambda: outbox.get(delivery.id)[0] == "failed")
    finally:
        dispatcher.stop()
    _, failed = outbox.get(delivery.id)
    assert failed.attempts == 3 and failed.last_error == "the receiver answered HTTP 500"
    assert len(receiver.fake.received("/hooks")) == 3
    assert outbox.next_due() is None  # never tried again


def test_gone_means_stop_at_once(receiver, database_url):
    receiver.fake.reply("/hooks", Reply(410))
    dispatcher = Dispatcher(outbox_on(database_url), sender(), delays=quick)
    delivery = Delivery.new(receiver.url, b"{}", time.time())
    keep(dispatcher.outbox, delivery)
    assert dispatcher.run_due() == 1
    assert dispatcher.outbox.get(delivery.id)[0] == "failed" and len(receiver.fake.received()) == 1


def test_a_pending_delivery_survives_a_restart(receiver, database_url):
    # the first process keeps it but never sends it (it stops first, or its receiver was down)
    first = Dispatcher(outbox_on(database_url), sender(), delays=quick)
    keep(first.outbox, Delivery.new(receiver.url, b'{"id": "imgjob_4"}', time.time() + 0.2))
    assert first.run_due() == 0  # not due yet
    # a new process over the same database sends it when it is due
    second = Dispatcher(outbox_on(database_url), sender(), delays=quick, poll_interval=0.05)
    second.ensure_running()
    try:
        wait_for(lambda: receiver.verified)
    finally:
        second.stop()
    assert receiver.verified[0][1] == {"id": "imgjob_4"}


def test_a_delivery_claimed_by_a_process_that_died_is_sent_again_after_the_lease(receiver, database_url):
    dying = outbox_on(database_url, lease=0.2)
    keep(dying, Delivery.new(receiver.url, b'{"id": "imgjob_5"}', time.time()))
    assert len(dying.claim_due(time.time(), 10)) == 1  # ... and the process is killed mid-send
    survivor = Dispatcher(outbox_on(database_url, lease=0.2), sender(), delays=quick)
    assert survivor.run_due() == 0  # still leased to the dead process
    time.sleep(0.3)
    assert survivor.run_due() == 1
    assert receiver.verified[0][1] == {"id": "imgjob_5"}


def test_two_dispatchers_never_claim_the_same_delivery(database_url):
    outbox_a, outbox_b = outbox_on(database_url), outbox_on(database_url)
    for index in range(20):
        keep(outbox_a, Delivery.new(f"https://93.184.215.14/{index}", b"{}", time.time()))
    claimed = outbox_a.claim_due(time.time(), 7) + outbox_b.claim_due(time.time(), 100)
    assert len(claimed) == 20 and len({d.id for d in claimed}) == 20


def test_an_idle_dispatcher_takes_no_write_transaction(database_url):
    """Every process polls every few seconds: with nothing due it only reads, leaving SQLite's one writer free."""
    outbox = outbox_on(database_url)
    dispatcher = Dispatcher(outbox, sender(), delays=quick)
    keep(outbox, Delivery.new(PUBLIC_URL, b"{}", time.time() + 60))  # not due yet
    with write_transactions(outbox.db) as writes:
        assert dispatcher.run_due() == 0
    assert writes == []


def test_the_app_sends_through_its_outbox(make_app, receiver, database_url):
    app = make_app_with_webhooks(make_app, GATEWAY_ALLOW_PRIVATE_URLS="true")
    webhooks: Webhooks = app.extensions["gateway"].webhooks
    body = json.dumps({"id": "imgjob_6", "status": "succeeded"}).encode()
    with webhooks.outbox.db.write() as connection:  # as a job's end keeps it
        delivery = webhooks.send_within(connection, receiver.url, body)
    webhooks.wake()
    try:
        wait_for(lambda: receiver.verified)
    finally:
        webhooks.dispatcher.stop()
    request, payload = receiver.verified[0]
    assert payload == {"id": "imgjob_6", "status": "succeeded"} and request.headers["webhook-id"] == delivery.id
    assert webhooks.outbox.db.url == database_url  # kept in the service's database, shared by its processes
