"""Limits on what a client may send, each naming its setting; and the opt-in JSON keep-alive."""
import base64
import io
import json
import time

import pytest
import responses

from tests.conftest import OPENAI_BASE, chat_body
from tests.support.images import PNG_B64, PNG_BYTES, PNG_DATA_URL, data_url


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


# ----- every image of the conversation counts (the gateway fetches or forwards them all) -----

GEMINI = "gemini-2.5-flash-image"


def padded_png(size: int) -> str:
    return data_url(PNG_BYTES + b"\0" * (size - len(PNG_BYTES)))


def parts(*urls, text="look"):
    return [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": u}} for u in urls)]


def test_urls_in_earlier_turns_count_against_the_image_limit_before_any_download(client, auth):
    earlier = [f"http://images.example/{i}.png" for i in range(16)]
    body = chat_body(model=GEMINI, messages=[{"role": "user", "content": parts(*earlier)},
                                             {"role": "assistant", "content": "ok"},
                                             {"role": "user", "content": parts("http://images.example/last.png")}])
    with responses.RequestsMock():  # any download or upstream call would fail the test
        response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_images"
    assert response.json["error"]["param"] == "messages[2].content[1].image_url.url"
    assert "whole conversation" in response.json["error"]["message"]


@pytest.mark.parametrize("assistant, param", [
    ({"role": "assistant", "content": parts(padded_png(4096))}, "messages[1].content[1].image_url.url"),
    ({"role": "assistant", "content": "here", "images": [{"type": "image_url", "image_url": {"url": padded_png(4096)}}]},
     "messages[1].images[0].image_url.url"),
    ({"role": "assistant", "content": None, "tool_calls": [{"id": "ig_1", "type": "image_generation",
                                                            "image_generation": {"result": padded_png(4096).split(",")[1]}}]},
     "messages[1].tool_calls[0].image_generation.result"),
])
def test_an_image_too_large_in_an_earlier_assistant_turn_is_a_413_as_in_the_last_one(make_app, auth, assistant,
                                                                                     param):
    client = make_app(GATEWAY_MAX_IMAGE_BYTES="2048").test_client()
    body = chat_body(model=GEMINI, messages=[{"role": "user", "content": "draw"}, assistant,
                                             {"role": "user", "content": "now a fox"}])
    with responses.RequestsMock():
        response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 413 and response.json["error"]["code"] == "image_too_large"
    assert response.json["error"]["param"] == param


def test_the_images_of_a_request_have_a_total_byte_bound(make_app, auth):
    client = make_app(GATEWAY_MAX_TOTAL_IMAGE_BYTES="5000").test_client()
    body = chat_body(messages=[{"role": "user", "content": parts(padded_png(2000), padded_png(2000))},
                               {"role": "assistant", "content": "ok"},
                               {"role": "user", "content": parts(padded_png(2000))}])
    response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 413 and response.json["error"]["code"] == "images_too_large"
    assert response.json["error"]["param"] == "messages[2].content[1].image_url.url"
    assert "GATEWAY_MAX_TOTAL_IMAGE_BYTES" in response.json["error"]["message"]
    body["messages"] = body["messages"][1:]
    assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 200


def test_downloads_count_against_the_total_and_each_against_the_image_limit(make_app, auth):
    """Data URLs in the body use 3000 of 5000 bytes; the first download fits, the second does not."""
    client = make_app(GATEWAY_MAX_TOTAL_IMAGE_BYTES="5000", GATEWAY_ALLOW_PRIVATE_URLS="true").test_client()
    image = PNG_BYTES + b"\0" * (1500 - len(PNG_BYTES))
    body = chat_body(model=GEMINI, messages=[
        {"role": "user", "content": parts(padded_png(3000), "http://localhost/a.png", "http://localhost/b.png")}])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("http://localhost/a.png", body=image, content_type="image/png")
        rsps.get("http://localhost/b.png", body=image, content_type="image/png")
        response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["param"] == "messages[0].content[3].image_url.url"
    assert "larger than 5000 bytes in all" in response.json["error"]["message"]


def test_a_download_larger_than_the_image_limit_is_refused(make_app, auth):
    client = make_app(GATEWAY_MAX_IMAGE_BYTES="2048", GATEWAY_ALLOW_PRIVATE_URLS="true").test_client()
    body = chat_body(model=GEMINI, messages=[{"role": "user", "content": parts("http://localhost/big.png")}])
    with responses.RequestsMock() as rsps:
        rsps.get("http://localhost/big.png", body=PNG_BYTES + b"\0" * 4096, content_type="image/png")
        response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400 and "larger than 2048 bytes" in response.json["error"]["message"]


def test_the_images_api_counts_uploads_and_mask_in_the_total(make_app, auth):
    client = make_app(GATEWAY_MAX_TOTAL_IMAGE_BYTES="3000").test_client()
    image = PNG_BYTES + b"\0" * (1200 - len(PNG_BYTES))
    response = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "local-image", "prompt": "x", "image[]": [(io.BytesIO(image), "a.png"), (io.BytesIO(image), "b.png")],
        "mask": (io.BytesIO(image), "m.png")})
    assert response.status_code == 413 and response.json["error"]["param"] == "mask"
