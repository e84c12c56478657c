"""A database key's limits and cost as a client sees them through the API (Flask test client, SQLite)."""
from datetime import timedelta
from decimal import Decimal

import pytest
import responses

from app.keys.records import utcnow
from tests.conftest import OPENAI_BASE, chat_body
from tests.support.openai_fake import image_b64

RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


@pytest.fixture
def gateway(app):
    return app.extensions["gateway"]


@pytest.fixture
def new_key(gateway):
    def make(**fields):
        key, secret = gateway.key_store.create({"name": "client", **fields})
        return key, {"Authorization": f"Bearer {secret}"}
    return make


def ledger_rows(gateway):
    from sqlalchemy import text
    gateway.ledger.flush()
    with gateway.db.read() as connection:
        return [dict(row) for row in connection.execute(text("SELECT * FROM usage_records ORDER BY created_at"))
                .mappings()]


def test_rpm_refuses_the_third_request_with_retry_after_and_headers(client, new_key):
    _, headers = new_key(rpm=2)
    answers = [client.post("/v1/chat/completions", json=chat_body(), headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0", "0"]
    refused = answers[2]
    assert refused.json["error"]["type"] == "rate_limit_error"
    assert refused.json["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert all(a.headers["x-ratelimit-limit-requests"] == "2" for a in answers)


def test_limited_keys_get_the_headers_on_every_answer_static_keys_none(client, new_key, auth):
    _, headers = new_key(rpm=5)
    models = client.get("/v1/models", headers=headers)
    bad = client.post("/v1/chat/completions", json={"model": "local-image"}, headers=headers)
    assert models.status_code == 200 and bad.status_code == 400
    for answer in (models, bad):
        assert all(name in answer.headers for name in RATE_HEADERS)
    assert not any(name in client.get("/v1/models", headers=auth).headers for name in RATE_HEADERS)


def test_a_model_outside_the_allow_list_is_403(client, new_key):
    _, headers = new_key(models=["gpt-image-*"])
    answer = client.post("/v1/chat/completions", json=chat_body(model="local-image"), headers=headers)
    assert answer.status_code == 403
    assert (answer.json["error"]["type"], answer.json["error"]["code"], answer.json["error"]["param"]) == (
        "permission_error", "model_not_allowed", "model")


def test_an_expired_key_is_401(client, new_key, gateway):
    key, headers = new_key()
    gateway.key_store.update(key.id, {"expires_at": utcnow() - timedelta(seconds=1)})
    gateway.auth.forget(key.id)
    answer = client.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert answer.status_code == 401 and answer.json["error"]["code"] == "invalid_api_key"


def test_images_per_day_counts_pictures_asked(client, new_key):
    _, headers = new_key(images_per_day=3)
    assert client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a", "n": 2},
                       headers=headers).status_code == 200
    refused = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a", "n": 2},
                          headers=headers)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limit_exceeded"
    assert "Retry-After" in refused.headers
    assert client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a"},
                       headers=headers).status_code == 200


def test_local_costs_zero_on_every_entry_point(client, auth):
    chat = client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    tool = client.post("/v1/chat/completions", json=chat_body(modalities=None, tool={}), headers=auth)
    images = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a"}, headers=auth)
    for answer in (chat, tool, images):
        assert answer.status_code == 200
        assert answer.json["usage"]["cost"] == 0 and answer.headers["x-gateway-cost-usd"] == "0"


@pytest.fixture
def openai_answers(mocked):
    """The OpenAI Images API answering one gpt-image-1 picture with token usage, as often as asked."""
    def answer(request):
        import json
        n = int(json.loads(request.body).get("n", 1))
        return 200, {}, json.dumps({"created": 1, "data": [{"b64_json": image_b64(i)} for i in range(n)],
                                    "usage": {"input_tokens": 12, "output_tokens": 272 * n,
                                              "total_tokens": 12 + 272 * n,
                                              "input_tokens_details": {"text_tokens": 12, "image_tokens": 0}}})
    mocked.add_callback(responses.POST, f"{OPENAI_BASE}/images/generations", callback=answer)
    mocked.add_callback(responses.POST, f"{OPENAI_BASE}/images/edits",
                        callback=lambda request: answer(type("Edit", (), {"body": b'{"n": 1}'})()))
    mocked.assert_all_requests_are_fired = False
    return mocked


DALL_E_3_STANDARD = Decimal("0.04")  # one 1024x1024 standard picture
# gpt-image-1: 12 text tokens at $5/M + 272 image tokens at $40/M per picture
ONE_PICTURE = Decimal("0.00006") + Decimal("0.01088")


def test_cost_of_a_priced_model_in_usage_header_ledger_and_spend(client, new_key, gateway, openai_answers):
    key, headers = new_key(budget_usd="5")
    answer = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a kite",
                                                         "size": "1024x1024", "quality": "low"}, headers=headers)
    assert answer.status_code == 200
    assert Decimal(str(answer.json["usage"]["cost"])) == ONE_PICTURE
    assert Decimal(answer.headers["x-gateway-cost-usd"]) == ONE_PICTURE
    assert gateway.key_store.get(key.id).spent_usd == ONE_PICTURE
    row, = ledger_rows(gateway)
    assert (row["key_id"], row["entry_point"], row["model"], row["provider"], row["status"], row["images"],
            row["prompt_tokens"], row["completion_tokens"], row["replayed"]) == (
        key.id, "images/generations", "gpt-image-1", "openai", 200, 1, 12, 272, False)
    assert Decimal(str(row["cost_usd"])) == ONE_PICTURE


def test_a_spent_budget_is_429_insufficient_quota_before_any_upstream_call(client, new_key, openai_answers):
    _, headers = new_key(budget_usd="0.05")
    body = {"model": "gpt-image-1", "prompt": "a kite", "size": "1024x1024", "quality": "low"}
    statuses = [client.post("/v1/images/generations", json=body, headers=headers).status_code for _ in range(6)]
    assert statuses.count(200) == 4 and statuses[4:] == [429, 429]  # 4 x 0.01094 spent; a 5th quote does not fit
    refused = client.post("/v1/images/generations", json=body, headers=headers)
    assert refused.json["error"]["type"] == refused.json["error"]["code"] == "insufficient_quota"
    assert len(openai_answers.calls) == 4


def test_a_budgeted_key_may_not_use_a_model_without_a_price(make_app, mocked):
    app = make_app(OPENAI_MODELS="house-unpriced")
    _, secret = app.extensions["gateway"].key_store.create({"name": "budgeted", "budget_usd": "5"})
    answer = app.test_client().post("/v1/images/generations", json={"model": "house-unpriced", "prompt": "a"},
                                    headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403
    assert (answer.json["error"]["type"], answer.json["error"]["code"]) == ("permission_error", "model_price_unknown")
    assert len(mocked.calls) == 0  # refused before any upstream call


def test_the_ledger_records_refusals_and_replays(client, new_key, gateway):
    key, headers = new_key(rpm=1)
    first = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a"},
                        headers={**headers, "Idempotency-Key": "same-1"})
    first.get_data()  # the answer is kept as its body goes out
    replay = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a"},
                         headers={**headers, "Idempotency-Key": "same-1"})
    refused = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "b"}, headers=headers)
    assert (first.status_code, replay.status_code, refused.status_code) == (200, 200, 429)
    assert replay.headers["Idempotent-Replayed"] == "true"
    rows = ledger_rows(gateway)
    assert [(r["status"], r["replayed"], r["error_code"], r["key_id"]) for r in rows] == [
        (200, False, None, key.id), (200, True, None, key.id), (429, False, "rate_limit_exceeded", key.id)]
    assert all(Decimal(str(r["cost_usd"])) == 0 for r in rows)


def test_streams_carry_the_cost_in_their_final_usage(client, auth, openai_answers):
    from tests.support.sse import data_frames, parse
    chat = client.post("/v1/chat/completions", headers=auth, json=chat_body(
        model="gpt-image-1", stream=True, stream_options={"include_usage": True},
        tool={"size": "1024x1024", "quality": "low"}))
    chunks = [frame.json for frame in data_frames(parse(chat.get_data())) if frame.data != "[DONE]"]
    assert Decimal(str(chunks[-1]["usage"]["cost"])) == ONE_PICTURE and chunks[-1]["choices"] == []
    images = client.post("/v1/images/generations", headers=auth, json={
        "model": "gpt-image-1", "prompt": "a kite", "size": "1024x1024", "quality": "low", "stream": True})
    completed = [frame.json for frame in data_frames(parse(images.get_data()))
                 if frame.event == "image_generation.completed"]
    assert [Decimal(str(event["usage"]["cost"])) for event in completed] == [ONE_PICTURE]


def test_an_unknown_price_is_null_with_a_warning_metric(make_app, mocked):
    from prometheus_client import REGISTRY
    mocked.add(responses.POST, f"{OPENAI_BASE}/images/generations", json={
        "created": 1, "data": [{"b64_json": image_b64(0)}]})
    app = make_app(OPENAI_MODELS="house-unpriced")
    before = REGISTRY.get_sample_value("gateway_price_unknown_total", {"provider": "openai",
                                                                       "model": "house-unpriced"}) or 0
    answer = app.test_client().post("/v1/images/generations", json={"model": "house-unpriced", "prompt": "a"},
                                    headers={"Authorization": "Bearer gw-client-key-4f1b2c"})
    assert answer.status_code == 200 and answer.json["usage"]["cost"] is None
    assert "x-gateway-cost-usd" not in answer.headers
    assert REGISTRY.get_sample_value("gateway_price_unknown_total", {"provider": "openai",
                                                                     "model": "house-unpriced"}) == before + 1


def test_a_failed_fan_out_still_records_the_calls_that_completed(make_app, mocked):
    """dall-e-3 makes n pictures in n calls; the second fails after the first was made (and billed)."""
    app = make_app(GATEWAY_FANOUT_THREADS="1")
    gateway = app.extensions["gateway"]
    key, secret = gateway.key_store.create({"name": "fanout", "budget_usd": "5"})
    mocked.add(responses.POST, f"{OPENAI_BASE}/images/generations",
               json={"created": 1, "data": [{"b64_json": image_b64(0, 1024, 1024), "revised_prompt": "r"}]})
    mocked.add(responses.POST, f"{OPENAI_BASE}/images/generations", status=400,
               json={"error": {"message": "bad", "type": "invalid_request_error", "code": "bad", "param": None}})
    answer = app.test_client().post("/v1/images/generations", headers={"Authorization": f"Bearer {secret}"},
                                    json={"model": "dall-e-3", "prompt": "a", "n": 2, "size": "1024x1024",
                                          "quality": "standard"})
    assert answer.status_code == 400
    row, = ledger_rows(gateway)
    assert (row["images"], row["status"], Decimal(str(row["cost_usd"]))) == (1, 400, DALL_E_3_STANDARD)
    assert gateway.key_store.get(key.id).spent_usd == DALL_E_3_STANDARD


def test_an_edit_costs_the_same_way_and_the_cost_metric_counts_it(client, auth, openai_answers):
    import io

    from prometheus_client import REGISTRY
    from tests.support.images import PNG_BYTES
    labels = {"provider": "openai", "model": "gpt-image-1"}
    before = REGISTRY.get_sample_value("gateway_cost_usd_total", labels) or 0
    answer = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "gpt-image-1", "prompt": "make it blue", "size": "1024x1024", "quality": "low",
        "image": (io.BytesIO(PNG_BYTES), "a.png", "image/png")})
    assert answer.status_code == 200
    assert Decimal(str(answer.json["usage"]["cost"])) == ONE_PICTURE == Decimal(answer.headers["x-gateway-cost-usd"])
    after = REGISTRY.get_sample_value("gateway_cost_usd_total", labels)
    assert after - before == pytest.approx(float(ONE_PICTURE))  # a Prometheus counter adds floats
