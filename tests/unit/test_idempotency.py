"""Idempotency-Key: kept answers are replayed, never regenerated; other bodies, clients and failures are not."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
import responses
from flask import Response
from hypothesis import given
from hypothesis import strategies as st

from app import idempotency
from app.core.settings import ConfigError
from app.idempotency_store import FileStore, Record, RedisStore, StoreUnavailable
from app.providers.local import LocalClient
from tests.conftest import CLIENT_KEY, OPENAI_BASE, chat_body
from tests.support.images import PNG_B64, PNG_BYTES
from tests.support.redis_server import running_redis

GENERATIONS = OPENAI_BASE + "/images/generations"
KEY = "order-42-attempt"
OTHER_CLIENT_KEY = "gw-second-client-7d1e"
OPENAI_ANSWER = {"created": 1, "data": [{"b64_json": PNG_B64}]}
STORE_KINDS = ["file", "redis"]


def record(fingerprint: str = "fp", body: bytes = b'{"ok":true}') -> Record:
    return Record(fingerprint, 200, (("Content-Type", "application/json"), ("x-gateway-provider", "openai")), body)


def hexkey(n: int = 0) -> str:
    return f"{n:064x}"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(idempotency, "POLL_INTERVAL", 0.02)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request):
    return request.param


@pytest.fixture
def make_store(store_kind, tmp_path, request):
    """Build a store of the parametrised kind; Redis ones start from an empty database."""
    def _make(ttl=60.0, max_bytes=1024 * 1024, claim_lifetime=30.0):
        if store_kind == "file":
            return FileStore(str(tmp_path / "idem"), ttl, max_bytes, claim_lifetime=claim_lifetime)
        server = request.getfixturevalue("redis_server")
        server.flush()
        return RedisStore(server.url, ttl, max_bytes=max_bytes, claim_lifetime=claim_lifetime)
    return _make


@pytest.fixture
def store_env(store_kind, tmp_path, request) -> dict:
    """Settings selecting the parametrised store kind, plus one attempt per channel (failures stay failures)."""
    env = {"GATEWAY_IDEMPOTENCY_DIR": str(tmp_path / "idem"), "GATEWAY_MAX_ATTEMPTS": "1",
           "GATEWAY_API_KEYS": f"{CLIENT_KEY},{OTHER_CLIENT_KEY}"}
    if store_kind == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        env["GATEWAY_REDIS_URL"] = server.url
    return env


@pytest.fixture
def idem_client(make_app, store_env):
    return make_app(**store_env).test_client()


@pytest.fixture
def openai_up():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(GENERATIONS, json=OPENAI_ANSWER)
        yield rsps


def upstream_calls(rsps) -> int:
    return sum(1 for call in rsps.calls if call.request.url == GENERATIONS)


def post(client, body, key=KEY, client_key=CLIENT_KEY, path="/v1/chat/completions", read=True):
    """POST like a client that reads the whole answer (answers are written lazily, in slices)."""
    headers = {"Authorization": f"Bearer {client_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post(path, json=body, headers=headers)
    if read:
        response.get_data()
    return response


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF, exclude_categories=("Cs",)))


@given(fingerprint=st.text(), status=st.integers(100, 599), body=st.binary(),
       headers=st.lists(st.tuples(header_text, header_text), max_size=4))
def test_records_round_trip_whatever_their_bytes(fingerprint, status, body, headers):
    kept = Record(fingerprint, status, tuple(headers), body)
    assert Record.from_bytes(kept.to_bytes()) == kept


@given(parts=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_a_multipart_fingerprint_does_not_depend_on_the_boundary(parts):
    def body(boundary: bytes) -> bytes:
        return b"".join(b"--" + boundary + b"\r\n\r\n" + part + b"\r\n" for part in parts) + b"--" + boundary + b"--"
    first, second = "a1b2c3d4e5f6", "zz-Other_boundary-99"
    if any(b"--" + b in part for part in parts for b in (first.encode(), second.encode())):
        return  # RFC 2046: a boundary never occurs inside a part
    assert idempotency.request_fingerprint("POST", "/v1/images/edits", body(first.encode()), first) == \
        idempotency.request_fingerprint("POST", "/v1/images/edits", body(second.encode()), second)


# --- the stores, each kind against the same contract ---

def test_a_claim_is_exclusive_until_the_answer_is_kept(make_store):
    store = make_store()
    token = store.claim(hexkey(), "fp")
    assert token and store.claim(hexkey(), "fp") is None
    assert store.claimant(hexkey()) == "fp"
    assert store.get(hexkey()) is None
    store.put(hexkey(), token, record())
    assert store.get(hexkey()) == record()
    assert store.claimant(hexkey()) is None  # putting released the claim


def test_only_the_owner_releases_a_claim(make_store):
    store = make_store()
    token = store.claim(hexkey(), "fp")
    store.release(hexkey(), "not-the-token")
    assert store.claimant(hexkey()) == "fp"
    store.release(hexkey(), token)
    assert store.claimant(hexkey()) is None
    assert store.claim(hexkey(), "fp")


def test_records_expire_after_the_ttl(make_store):
    store = make_store(ttl=0.2)
    store.put(hexkey(), store.claim(hexkey(), "fp"), record())
    assert store.get(hexkey()) is not None
    time.sleep(0.3)
    assert store.get(hexkey()) is None


def test_a_stale_claim_is_taken_over(make_store):
    store = make_store(claim_lifetime=0.2)
    first = store.claim(hexkey(), "fp")
    time.sleep(0.3)
    assert store.claimant(hexkey()) is None
    second = store.claim(hexkey(), "fp")
    assert second and second != first
    store.release(hexkey(), first)  # the late first owner cannot drop the new claim
    assert store.claimant(hexkey()) == "fp"


def test_a_record_larger_than_the_limit_is_not_kept_but_the_claim_is_released(make_store):
    store = make_store(max_bytes=1024)
    store.put(hexkey(), store.claim(hexkey(), "fp"), record(body=b"x" * 2048))
    assert store.get(hexkey()) is None and store.claimant(hexkey()) is None


def test_a_record_can_be_written_piece_by_piece(make_store):
    store = make_store()
    writer = store.writer(hexkey(), store.claim(hexkey(), "fp"), record(body=b""))
    for piece in (b'{"ok"', b":", b"true}"):
        writer.write(piece)
    writer.commit()
    assert store.get(hexkey()) == record() and store.claimant(hexkey()) is None


def test_an_aborted_or_oversized_piecewise_record_is_not_kept(make_store, tmp_path):
    store = make_store(max_bytes=1024)
    aborted = store.writer(hexkey(0), store.claim(hexkey(0), "fp"), record(body=b""))
    aborted.write(b"{}")
    aborted.abort()
    oversized = store.writer(hexkey(1), store.claim(hexkey(1), "fp"), record(body=b""))
    for _ in range(3):
        oversized.write(b"x" * 500)
    oversized.commit()
    for key in (hexkey(0), hexkey(1)):
        assert store.get(key) is None and store.claimant(key) is None
    assert not list((tmp_path / "idem").glob(".*"))  # no temp file left behind (file store)


def owned(owner: str, n: int) -> str:
    """A store key of client `owner` (its first 16 hex characters name the client)."""
    return owner * 16 + f"{n:064x}"


def keep(store, key: str, size: int = 1000):
    return store.put(key, store.claim(key, "fp"), record(body=b"x" * size))


def test_a_clients_own_oldest_answers_make_room_for_its_new_ones(make_store):
    size = len(record(body=b"x" * 1000).to_bytes())
    store = make_store(max_bytes=12 * size)  # each client may fill a quarter: 3 answers
    for n in range(3):
        assert keep(store, owned("a", n)) is None
        time.sleep(0.01)
    assert keep(store, owned("a", 3)) is None
    assert store.get(owned("a", 0)) is None
    assert all(store.get(owned("a", n)) is not None for n in (1, 2, 3))


def test_one_client_never_evicts_anothers_answers_and_a_full_store_keeps_nothing_new(make_store):
    """Client A's paid answer survives any number of client B's; with the store full, new answers are
    refused (the caller logs and counts it), never made room for at another client's expense."""
    size = len(record(body=b"x" * 1000).to_bytes())
    store = make_store(max_bytes=8 * size)  # a share is 2 answers; the store holds 8
    assert keep(store, owned("a", 0)) is None
    for n in range(50):
        assert keep(store, owned("b", n)) is None  # B only ever evicts its own oldest
    assert store.get(owned("a", 0)) is not None
    for owner in "cd":
        for n in range(2):
            assert keep(store, owned(owner, n)) is None
    assert keep(store, owned("e", 0)) is None  # 8 answers: full
    assert keep(store, owned("e", 1)) == "store_full"  # a 9th would need someone else's evicted
    assert store.get(owned("e", 1)) is None and store.claimant(owned("e", 1)) is None
    assert store.get(owned("a", 0)) is not None
    assert keep(store, owned("a", 1), size=3 * 1000) == "too_large"  # larger than a client's share


def test_file_store_sweeps_expired_records_when_writing(tmp_path):
    store = FileStore(str(tmp_path / "idem"), 60, 1024 * 1024)
    store.put(hexkey(0), store.claim(hexkey(0), "fp"), record())
    old = time.time() - 120
    os.utime(tmp_path / "idem" / f"{hexkey(0)}.record", (old, old))
    store.put(hexkey(1), store.claim(hexkey(1), "fp"), record())
    assert sorted(p.name for p in (tmp_path / "idem").iterdir()) == [f"{hexkey(1)}.record"]


def test_file_store_takes_over_a_claim_whose_process_is_gone(tmp_path):
    store = FileStore(str(tmp_path / "idem"), 60, 1024 * 1024, claim_lifetime=300)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.claim(hexkey(), "fp")
    claim_path = tmp_path / "idem" / f"{hexkey()}.claim"
    info = json.loads(claim_path.read_text())
    claim_path.write_text(json.dumps({**info, "pid": gone.pid}))
    assert store.claimant(hexkey()) is None
    assert store.claim(hexkey(), "fp")


def test_file_store_makes_its_directory_on_first_write_only_and_private(tmp_path, make_app):
    directory = tmp_path / "nested" / "idem"
    make_app(GATEWAY_IDEMPOTENCY_DIR=str(directory))
    store = FileStore(str(directory), 60, 1024 * 1024)
    assert store.get(hexkey()) is None and not directory.exists()
    store.claim(hexkey(), "fp")
    assert directory.stat().st_mode & 0o777 == 0o700


def test_file_store_refuses_a_symlinked_directory(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "idem").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreUnavailable):
        FileStore(str(tmp_path / "idem"), 60, 1024 * 1024).claim(hexkey(), "fp")


def test_file_store_ignores_a_torn_record(tmp_path):
    store = FileStore(str(tmp_path / "idem"), 60, 1024 * 1024)
    store.claim(hexkey(), "fp")
    (tmp_path / "idem" / f"{hexkey()}.record").write_bytes(b'{"format":1,"fing')
    assert store.get(hexkey()) is None


def test_an_unreachable_redis_is_unavailable_quickly_and_never_named_with_its_password():
    store = RedisStore("redis://:hunter2@127.0.0.1:1/0", 60, max_bytes=1024)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.claim(hexkey(), "fp")
    assert time.monotonic() - started < 3
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreUnavailable):  # within the cooldown: no new connection attempt
        store.get(hexkey())


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:port/0",
                                 "redis://:hunter2@127.0.0.1:6379/0?socket_timeout=soon"])
def test_an_unusable_redis_url_stops_the_app_naming_the_variable_not_the_password(make_app, url):
    with pytest.raises(ConfigError) as caught:
        make_app(GATEWAY_REDIS_URL=url)
    assert "GATEWAY_REDIS_URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_creating_an_app_with_redis_opens_no_connection(make_app):
    app = make_app(GATEWAY_REDIS_URL="redis://127.0.0.1:1/0")
    assert isinstance(app.extensions["idempotency"], RedisStore)
    assert app.extensions["idempotency"]._link._client is None


# --- waiting for a request in flight ---

def test_a_waiter_replays_the_answer_of_the_request_in_flight(make_store):
    store = make_store()
    token = store.claim(hexkey(), "fp")
    threading.Timer(0.2, lambda: store.put(hexkey(), token, record(body=b'{"first":1}'))).start()
    outcome = idempotency.resolve(store, hexkey(), "fp", wait_limit=5)
    assert outcome.body == b'{"first":1}'


def test_a_waiter_runs_the_request_itself_when_the_first_one_fails(make_store):
    store = make_store()
    token = store.claim(hexkey(), "fp")
    threading.Timer(0.2, lambda: store.release(hexkey(), token)).start()
    outcome = idempotency.resolve(store, hexkey(), "fp", wait_limit=5)
    assert isinstance(outcome, str) and store.claimant(hexkey()) == "fp"


def test_a_waiter_replays_an_answer_kept_between_its_lookup_and_its_claim(make_store):
    """The first request keeps its answer and lets go of the key just after the waiter looked for a
    record and just before it tries to claim: the waiter must replay, not run a second generation."""
    store = make_store()
    token = store.claim(hexkey(), "fp")

    class FinishingInBetween:
        def __init__(self):
            self.finished = False

        def __getattr__(self, name):
            return getattr(store, name)

        def get(self, key):
            found = store.get(key)
            if found is None and not self.finished:
                self.finished = True
                store.put(hexkey(), token, record(body=b'{"first":1}'))
            return found

    outcome = idempotency.resolve(FinishingInBetween(), hexkey(), "fp", wait_limit=5)
    assert isinstance(outcome, Record) and outcome.body == b'{"first":1}'
    assert store.claimant(hexkey()) is None  # the claim won in the race was given back


def test_a_waiter_gives_up_with_409_in_progress(make_store):
    store = make_store()
    store.claim(hexkey(), "fp")
    with pytest.raises(idempotency.Conflict) as caught:
        idempotency.resolve(store, hexkey(), "fp", wait_limit=0.2)
    assert caught.value.code == "idempotency_key_in_progress"
    assert caught.value.headers["Retry-After"]


def test_another_body_while_in_flight_is_409_at_once(make_store):
    store = make_store()
    store.claim(hexkey(), "fp")
    started = time.monotonic()
    with pytest.raises(idempotency.Conflict) as caught:
        idempotency.resolve(store, hexkey(), "other-fp", wait_limit=5)
    assert caught.value.code == "idempotency_key_reused" and time.monotonic() - started < 1


# --- through the app ---

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/chat/completions"])
def test_a_retry_replays_the_kept_answer_without_calling_the_provider(idem_client, openai_up, path):
    body = chat_body(model="gpt-image-1")
    first = post(idem_client, body, path=path)
    second = post(idem_client, body, path=path)
    assert first.status_code == second.status_code == 200
    assert upstream_calls(openai_up) == 1
    assert second.get_data() == first.get_data()  # same chatcmpl id and created: the very same answer
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["x-gateway-provider"] == first.headers["x-gateway-provider"] == "openai"
    assert second.headers["Content-Type"] == "application/json"
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]


def test_images_generations_are_replayed_too(idem_client, openai_up):
    body = {"model": "gpt-image-1", "prompt": "a fox"}
    first = post(idem_client, body, path="/v1/images/generations")
    second = post(idem_client, body, path="/v1/images/generations")
    assert second.headers["Idempotent-Replayed"] == "true" and second.json == first.json
    assert upstream_calls(openai_up) == 1


def test_multipart_edits_are_replayed_whatever_the_boundary(idem_client, monkeypatch):
    calls = []
    original = LocalClient.generate
    monkeypatch.setattr(LocalClient, "generate", lambda self, req: calls.append(1) or original(self, req))

    def edit(image: bytes):
        # the test client draws a fresh random boundary for every request, like httpx and requests
        response = idem_client.post("/v1/images/edits", headers={"Authorization": f"Bearer {CLIENT_KEY}",
                                                                 "Idempotency-Key": KEY},
                                    data={"model": "local-image", "prompt": "at night",
                                          "image": (io.BytesIO(image), "in.png", "image/png")},
                                    content_type="multipart/form-data")
        response.get_data()
        return response

    first, second = edit(PNG_BYTES), edit(PNG_BYTES)
    assert first.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"
    assert len(calls) == 1
    other = edit(PNG_BYTES + b"\0")
    assert other.status_code == 409


def test_the_same_key_with_another_body_is_409(idem_client, openai_up):
    post(idem_client, chat_body(model="gpt-image-1"))
    response = post(idem_client, chat_body("another prompt", model="gpt-image-1"))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "idempotency_key_reused"
    assert response.json["error"]["type"] == "invalid_request_error"
    assert response.headers["x-should-retry"] == "false"
    assert upstream_calls(openai_up) == 1


def test_the_api_v1_twin_with_the_same_body_is_a_replay(idem_client, openai_up):
    first = post(idem_client, chat_body(model="gpt-image-1"))
    twin = post(idem_client, chat_body(model="gpt-image-1"), path="/api/v1/chat/completions")
    assert twin.status_code == 200 and twin.headers["Idempotent-Replayed"] == "true"
    assert twin.get_data() == first.get_data()
    assert upstream_calls(openai_up) == 1


def test_clients_never_share_answers(idem_client, openai_up):
    body = chat_body(model="gpt-image-1")
    mine = post(idem_client, body)
    theirs = post(idem_client, body, client_key=OTHER_CLIENT_KEY)
    assert "Idempotent-Replayed" not in theirs.headers and theirs.json["id"] != mine.json["id"]
    assert upstream_calls(openai_up) == 2
    assert post(idem_client, chat_body("other", model="gpt-image-1"), client_key=OTHER_CLIENT_KEY).status_code == 409


@pytest.mark.parametrize("failure", [
    {"status": 500, "json": {"error": {"message": "boom"}}},
    {"status": 400, "json": {"error": {"message": "Your request was rejected by the safety system",
                                       "code": "moderation_blocked"}}},
])
def test_failures_are_not_kept_and_a_retry_generates(idem_client, failure):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, **failure)
        rsps.post(GENERATIONS, json=OPENAI_ANSWER)
        first = post(idem_client, chat_body(model="gpt-image-1"))
        second = post(idem_client, chat_body(model="gpt-image-1"))
        third = post(idem_client, chat_body(model="gpt-image-1"))
        assert upstream_calls(rsps) == 2
    assert first.status_code >= 400 and "Idempotent-Replayed" not in first.headers
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    assert third.headers["Idempotent-Replayed"] == "true" and third.json == second.json


def test_an_invalid_body_is_not_kept(idem_client):
    assert post(idem_client, chat_body(modalities=None)).status_code == 400
    assert post(idem_client, chat_body(modalities=None)).headers.get("Idempotent-Replayed") is None


@pytest.mark.parametrize("store_kind", ["file"])
def test_kept_answers_expire_after_the_ttl(make_app, store_env, openai_up, tmp_path):
    client = make_app(**store_env, GATEWAY_IDEMPOTENCY_TTL_SECONDS="60").test_client()
    post(client, chat_body(model="gpt-image-1"))
    assert post(client, chat_body(model="gpt-image-1")).headers["Idempotent-Replayed"] == "true"
    an_hour_ago = time.time() - 3600
    for kept in (tmp_path / "idem").glob("*.record"):
        os.utime(kept, (an_hour_ago, an_hour_ago))
    assert "Idempotent-Replayed" not in post(client, chat_body(model="gpt-image-1")).headers
    assert upstream_calls(openai_up) == 2


def spy_on_waiting(client) -> threading.Event:
    """Set once a request finds the key claimed by another one in flight (it then polls)."""
    store, waiting = client.application.extensions["idempotency"], threading.Event()
    claimant = store.claimant
    store.claimant = lambda key: waiting.set() or claimant(key)
    return waiting


def twins(client, replies) -> tuple[dict, int]:
    """Two requests with one key, the second sent while the first is generating.

    The upstream holds its answers (`replies`, in order) until the second request is seen waiting;
    returns both answers and the number of upstream calls made.
    """
    entered, go, waiting = threading.Event(), threading.Event(), spy_on_waiting(client)
    queued = iter(replies)

    def answer(request):
        entered.set()
        go.wait(5)
        return next(queued)

    answers = {}
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GENERATIONS, callback=answer)
        first = threading.Thread(target=lambda: answers.setdefault("first", post(client, chat_body(
            model="gpt-image-1"))))
        first.start()
        assert entered.wait(5)
        second = threading.Thread(target=lambda: answers.setdefault("second", post(client, chat_body(
            model="gpt-image-1"))))
        second.start()
        assert waiting.wait(5)  # the second request is polling while the first generates
        go.set()
        first.join(5)
        second.join(5)
        calls = upstream_calls(rsps)
    return answers, calls


def test_concurrent_requests_with_one_key_make_one_upstream_call(idem_client):
    answers, calls = twins(idem_client, [(200, {}, json.dumps(OPENAI_ANSWER))])
    assert calls == 1
    assert answers["first"].status_code == answers["second"].status_code == 200
    assert answers["second"].headers["Idempotent-Replayed"] == "true"
    assert answers["second"].get_data() == answers["first"].get_data()


def test_a_waiter_generates_when_the_first_request_fails(idem_client):
    answers, calls = twins(idem_client, [(500, {}, json.dumps({"error": {"message": "boom"}})),
                                         (200, {}, json.dumps(OPENAI_ANSWER))])
    assert calls == 2
    assert answers["first"].status_code == 502
    assert answers["second"].status_code == 200 and "Idempotent-Replayed" not in answers["second"].headers


def test_event_streams_pass_through_and_are_not_kept(idem_client):
    body = chat_body(stream=True)
    first = post(idem_client, body)
    assert first.mimetype == "text/event-stream" and first.get_data().endswith(b"data: [DONE]\n\n")
    second = post(idem_client, body)
    assert second.mimetype == "text/event-stream" and "Idempotent-Replayed" not in second.headers
    assert second.get_data().endswith(b"data: [DONE]\n\n")


def test_the_keepalive_mode_answer_is_kept(make_app, store_env):
    def slow_answer(request):
        time.sleep(0.3)
        return 200, {}, json.dumps(OPENAI_ANSWER)

    client = make_app(**store_env, GATEWAY_KEEPALIVE_SECONDS="0.05").test_client()
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GENERATIONS, callback=slow_answer)
        first = post(client, chat_body(model="gpt-image-1"))
        second = post(client, chat_body(model="gpt-image-1"))
        assert upstream_calls(rsps) == 1
    assert first.get_data().startswith(b" ")  # whitespace while it waited
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_data() == first.get_data().lstrip()


def keepalive_view(calls: list, final: bytes):
    """A stand-in for the keep-alive mode: a streamed application/json body, whitespace first."""
    def view():
        calls.append(1)

        def body():
            yield b" "
            yield b" "
            yield final
        return Response(body(), mimetype="application/json", headers={"x-gateway-provider": "local"})
    return view


@pytest.fixture
def keepalive_client(make_app, store_env):
    app = make_app(**store_env)
    calls: list = []
    answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion"}).encode()
    app.view_functions["chat_v1.chat_completions"] = keepalive_view(calls, answer)
    return app.test_client(), calls, answer


def test_a_keepalive_json_stream_is_kept_once_complete(keepalive_client):
    client, calls, answer = keepalive_client
    first = post(client, chat_body())
    assert first.get_data() == b"  " + answer  # the client gets the bytes unchanged
    second = post(client, chat_body())
    assert second.get_data() == answer and second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Content-Type"] == "application/json"
    assert second.headers["x-gateway-provider"] == "local"
    assert len(calls) == 1


def test_a_keepalive_answer_is_kept_even_when_the_client_hangs_up(keepalive_client):
    client, calls, answer = keepalive_client
    first = post(client, chat_body(), read=False)
    first.close()  # gone before the JSON arrived
    second = post(client, chat_body())
    assert second.get_data() == answer and second.headers["Idempotent-Replayed"] == "true"
    assert len(calls) == 1


def test_a_keepalive_error_object_is_not_kept(make_app, store_env):
    app = make_app(**store_env)
    calls: list = []
    app.view_functions["chat_v1.chat_completions"] = keepalive_view(
        calls, json.dumps({"error": {"message": "late failure", "type": "upstream_error"}}).encode())
    client = app.test_client()
    post(client, chat_body()).get_data()
    second = post(client, chat_body())
    assert "Idempotent-Replayed" not in second.headers and len(calls) == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\tinside", "caf\xe9", "bell\x07"])
def test_invalid_keys_are_400_naming_the_header(idem_client, key):
    response = post(idem_client, chat_body(), key=key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json["error"]["message"]
    assert response.json["error"]["code"] == "invalid_idempotency_key"


def test_a_key_of_255_printable_characters_is_fine(idem_client):
    assert post(idem_client, chat_body(), key="k" * 254 + "~").status_code == 200


class _Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the store was used ({name}) before the client was authenticated")


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic abc"])
def test_unauthenticated_requests_are_401_before_any_store_access(make_app, authorization):
    app = make_app()
    app.extensions["idempotency"] = _Untouchable()
    headers = {"Idempotency-Key": KEY, **({"Authorization": authorization} if authorization else {})}
    response = app.test_client().post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_api_key"


def test_other_routes_and_requests_without_the_header_are_untouched(make_app, auth):
    app = make_app()
    app.extensions["idempotency"] = _Untouchable()
    client = app.test_client()
    assert client.get("/v1/models", headers={**auth, "Idempotency-Key": KEY}).status_code == 200
    assert client.post("/v1/chat/completions", json=chat_body(), headers=auth).status_code == 200


@pytest.mark.parametrize("store_kind", ["file"])
def test_nothing_kept_holds_the_raw_keys(idem_client, tmp_path):
    key = "my-very-recognisable-idempotency-key"
    post(idem_client, chat_body(), key=key)
    files = list((tmp_path / "idem").iterdir())
    assert files
    for path in files:
        assert key not in path.name and CLIENT_KEY not in path.name
        assert key.encode() not in path.read_bytes() and CLIENT_KEY.encode() not in path.read_bytes()


@pytest.mark.parametrize("store_kind", ["redis"])
def test_nothing_kept_in_redis_holds_the_raw_keys(idem_client, redis_server):
    import redis
    key = "my-very-recognisable-idempotency-key"
    post(idem_client, chat_body(), key=key)
    client = redis.Redis.from_url(redis_server.url)
    names = client.keys("*")
    assert names
    for name in names:
        kind = client.type(name)
        content = client.get(name) if kind == b"string" else b" ".join(client.zrange(name, 0, -1))
        assert key.encode() not in name and CLIENT_KEY.encode() not in name
        assert key.encode() not in content and CLIENT_KEY.encode() not in content
    client.close()


def test_an_unusable_store_lets_requests_run_without_protection(make_app, tmp_path, caplog):
    (tmp_path / "a-file").write_text("not a directory")
    client = make_app(GATEWAY_IDEMPOTENCY_DIR=str(tmp_path / "a-file" / "idem")).test_client()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        first = post(client, chat_body())
        second = post(client, chat_body())
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway" and r.levelno == logging.WARNING]
    assert any("without Idempotency-Key protection" in w for w in warnings)
    assert not any(KEY in w or CLIENT_KEY in w for w in warnings)


def test_a_redis_outage_lets_requests_run_and_logs_no_password(make_app, caplog):
    client = make_app(GATEWAY_REDIS_URL="redis://:hunter2@127.0.0.1:1/0").test_client()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        assert post(client, chat_body()).status_code == 200
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "without Idempotency-Key protection" in text and "hunter2" not in text


# ----- claims are leases: renewed while the request runs, gone soon after its worker is -----

def test_a_renewed_claim_outlives_its_lease_and_an_unrenewed_one_does_not(make_store):
    store = make_store(claim_lifetime=0.3)
    token = store.claim(hexkey(0), "fp")
    for _ in range(4):
        time.sleep(0.15)
        assert store.renew(hexkey(0), token)
    assert store.claim(hexkey(0), "fp") is None and store.claimant(hexkey(0)) == "fp"
    time.sleep(0.45)
    assert store.claimant(hexkey(0)) is None
    taken = store.claim(hexkey(0), "fp")
    assert taken is not None and not store.renew(hexkey(0), token)  # the old owner lost it for good


def test_a_request_running_longer_than_the_lease_keeps_its_key(make_app, store_env, monkeypatch):
    """The heartbeat renews the claim: a twin sent long after the lease would have lapsed still waits."""
    monkeypatch.setattr(idempotency, "CLAIM_LEASE", 0.4)
    monkeypatch.setattr(idempotency, "_HEARTBEAT", idempotency._Heartbeat(0.1))
    client = make_app(**store_env).test_client()
    started = threading.Event()

    def slow(request):
        started.set()
        time.sleep(1.5)
        return 200, {}, json.dumps(OPENAI_ANSWER)

    answers = {}
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GENERATIONS, callback=slow)
        first = threading.Thread(target=lambda: answers.setdefault("first", post(client, chat_body(model="gpt-image-1"))))
        first.start()
        assert started.wait(5)
        time.sleep(0.8)  # twice the lease
        second = post(client, chat_body(model="gpt-image-1"))
        first.join(5)
        assert upstream_calls(rsps) == 1
    assert second.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"


def test_an_answer_the_store_cannot_keep_is_logged_and_counted(make_app, store_env, openai_up, caplog):
    from app import metrics
    before = metrics.IDEMPOTENCY_NOT_KEPT.labels("too_large")._value.get()
    client = make_app(**{**store_env, "GATEWAY_IDEMPOTENCY_MAX_BYTES": "2048"}).test_client()
    assert post(client, chat_body(model="gpt-image-1")).status_code == 200
    assert "Idempotent-Replayed" not in post(client, chat_body(model="gpt-image-1")).headers
    assert metrics.IDEMPOTENCY_NOT_KEPT.labels("too_large")._value.get() == before + 2
    assert "not kept for Idempotency-Key replays (too_large)" in caplog.text
