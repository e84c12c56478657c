"""Limits on what a client may send, each naming its setting; and the opt-in JSON keep-alive."""
import base64
import io
import json
import time

import pytest
import responses

from tests.conftest import OPENAI_BASE, chat_body
from tests.support.images import PNG_B64, PNG_BYTES, PNG_DATA_URL


def image_message(*urls, text="edit this"):
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}]


@pytest.mark.parametrize("overrides, body, status, setting", [
    ({"GATEWAY_MAX_MESSAGES": "2"}, chat_body(messages=[{"role": "user", "content": "x"}] * 3), 400,
     "GATEWAY_MAX_MESSAGES"),
    ({"GATEWAY_MAX_INPUT_IMAGES": "1"}, chat_body(messages=image_message(PNG_DATA_URL, PNG_DATA_URL)), 400,
     "GATEWAY_MAX_INPUT_IMAGES"),
    ({"GATEWAY_MAX_IMAGE_BYTES": "2048"},
     chat_body(messages=image_message("data:image/png;base64," + base64.b64encode(PNG_BYTES + b"\0" * 4096).decode())),
     413, "GATEWAY_MAX_IMAGE_BYTES"),
    ({"GATEWAY_MAX_PROMPT_CHARS": "10"}, chat_body("a prompt that is too long"), 400, "GATEWAY_MAX_PROMPT_CHARS"),
])
def test_each_limit_is_enforced_and_named(make_app, auth, overrides, body, status, setting):
    response = make_app(**overrides).test_client().post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == status
    assert setting in response.json["error"]["message"]


def test_limits_apply_to_the_images_api_too(make_app, auth):
    client = make_app(GATEWAY_MAX_PROMPT_CHARS="5", GATEWAY_MAX_IMAGE_BYTES="2048",
                      GATEWAY_MAX_INPUT_IMAGES="1").test_client()
    long_prompt = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "too long"},
                              headers=auth)
    assert long_prompt.status_code == 400 and long_prompt.json["error"]["param"] == "prompt"
    big_upload = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "local-image", "prompt": "x", "image": (io.BytesIO(PNG_BYTES + b"\0" * 4096), "a.png")})
    assert big_upload.status_code == 413 and "GATEWAY_MAX_IMAGE_BYTES" in big_upload.json["error"]["message"]
    two = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "local-image", "prompt": "x", "image[]": [(io.BytesIO(PNG_BYTES), "a.png"),
                                                           (io.BytesIO(PNG_BYTES), "b.png")]})
    assert two.status_code == 400 and "GATEWAY_MAX_INPUT_IMAGES" in two.json["error"]["message"]


@pytest.fixture
def keepalive_client(make_app):
    return make_app(GATEWAY_KEEPALIVE_SECONDS="0.1").test_client()


def slow(status, payload, delay=0.35):
    def callback(request):
        time.sleep(delay)
        return status, {}, json.dumps(payload)
    return callback


def test_keepalive_sends_whitespace_then_the_json(keepalive_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", OPENAI_BASE + "/images/generations",
                          callback=slow(200, {"created": 1, "data": [{"b64_json": PNG_B64}]}))
        response = keepalive_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        body = response.get_data()
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert body.startswith(b" ") and len(body) - len(body.lstrip()) >= 2
    assert json.loads(body)["object"] == "chat.completion"


def test_keepalive_failure_after_the_start_is_an_error_body_under_200(keepalive_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", OPENAI_BASE + "/images/generations",
                          callback=slow(500, {"error": {"message": "boom"}}))
        response = keepalive_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        body = response.get_data()
    assert response.status_code == 200
    assert json.loads(body)["error"]["type"] == "upstream_error"


def test_keepalive_keeps_the_real_status_of_quick_answers(keepalive_client, auth):
    response = keepalive_client.post("/v1/chat/completions", json=chat_body(tool={"size": "8x8"}), headers=auth)
    assert response.status_code == 400
    ok = keepalive_client.post("/v1/chat/completions", json=chat_body(tool={"size": "16x16"}), headers=auth)
    assert ok.status_code == 200 and ok.headers["x-gateway-channel"] == "local"
