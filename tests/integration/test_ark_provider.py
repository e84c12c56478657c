"""Seedream / SeedEdit through the real service under gunicorn, against a fake Ark on 127.0.0.1."""
import base64

import pytest
import requests

from tests.conftest import ARK_KEY, CLIENT_KEY, chat_body
from tests.integration.conftest import ARK_PATH, gateway_env
from tests.support.fake_upstream import Reply
from tests.support.gateway_process import GatewayProcess
from tests.support.images import JPEG_B64, JPEG_BYTES, PNG_B64, PNG_BYTES, data_url

V40, V45, EDIT = "doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seededit-3-0-i2i-250628"
GENERATIONS = ARK_PATH + "/images/generations"
DEFAULTS = {"sequential_image_generation": "disabled", "stream": False, "response_format": "b64_json",
            "watermark": False}


def post(gateway, body, headers):
    return requests.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def jpeg_of(url: str) -> bytes:
    header, b64 = url.split(",", 1)
    assert header == "data:image/jpeg;base64"
    return base64.b64decode(b64)


def url_answer(ark, path="/results/only.jpeg") -> Reply:
    return Reply(json={"model": V40, "created": 1767225800, "data": [{"url": ark.url + path, "size": "2048x2048"}],
                       "usage": {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}})


def test_sdk_n3_is_three_single_image_calls_and_three_jpeg_choices(sdk, ark):
    completion = sdk.chat.completions.create(
        model=V40, messages=[{"role": "user", "content": "a teapot shaped like a whale"}],
        modalities=["image", "text"], n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        assert jpeg_of(choice.message.content[0]["image_url"]["url"]) == JPEG_BYTES
    calls = ark.received(GENERATIONS)
    assert len(calls) == 3
    assert all(call.json == {"model": V40, "prompt": "a teapot shaped like a whale", **DEFAULTS} for call in calls)
    assert calls[0].headers["authorization"] == f"Bearer {ARK_KEY}"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 3 * 16384)
    assert usage.model_extra["generated_images"] == 3


def test_an_edit_sends_input_images_in_the_image_field(gateway, ark, headers):
    jpeg_labelled_png = data_url(JPEG_BYTES, "image/PNG")
    body = chat_body(model=V45, modalities=None, tool={"size": "512x512", "watermark": True}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "put the robot on a beach"},
                                     {"type": "image_url", "image_url": {"url": jpeg_labelled_png}},
                                     {"type": "image_url", "image_url": {"url": "https://cdn.example.test/r.png"}}]}])
    response = post(gateway, body, headers)
    assert response.status_code == 200, response.text
    sent = ark.received(GENERATIONS)[0].json
    assert sent["image"] == ["data:image/jpeg;base64," + JPEG_B64, "https://cdn.example.test/r.png"]
    assert sent["size"] == "2048x2048"  # 512x512 is under 4.5's minimum: mapped up, not a 400 from Ark
    assert sent["watermark"] is True
    call = response.json()["choices"][0]["message"]["tool_calls"][0]["image_generation"]
    assert call["output_format"] == "jpeg" and base64.b64decode(call["result"]) == JPEG_BYTES


def test_seededit_edits_one_image_at_its_own_size(gateway, ark, headers):
    body = chat_body(model=EDIT, tool={"size": "1024x1024", "background": "opaque"}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "make the sky purple"},
                                     {"type": "image_url", "image_url": {"url": data_url(PNG_BYTES)}}]}])
    response = post(gateway, body, headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "ark"
    assert response.headers["x-gateway-dropped-params"] == "background,size"
    assert ark.received(GENERATIONS)[0].json == {
        "model": EDIT, "prompt": "make the sky purple", "image": "data:image/png;base64," + PNG_B64,
        "size": "adaptive", "response_format": "b64_json", "watermark": False}


def test_512x512_on_seedream_4_0_is_scaled_up_keeping_the_ratio(gateway, ark, headers):
    response = post(gateway, chat_body(model=V40, tool={"size": "512x512", "quality": "high"}), headers)
    assert response.status_code == 200, response.text
    assert ark.received(GENERATIONS)[0].json["size"] == "960x960"
    assert response.headers["x-gateway-dropped-params"] == "quality"


def test_a_size_no_seedream_makes_is_a_400_before_any_upstream_call(gateway, ark, headers):
    response = post(gateway, chat_body(model=V45, tool={"size": "8192x4096"}), headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools[0].image_generation.size" and "valid sizes" in error["message"]
    assert ark.received() == []


def test_a_mask_is_a_400(gateway, ark, headers):
    body = chat_body(model=V40, tool={"input_image_mask": {"image_url": data_url(PNG_BYTES)}}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "x"},
                                     {"type": "image_url", "image_url": {"url": data_url(PNG_BYTES)}}]}])
    response = post(gateway, body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].image_generation.input_image_mask.image_url"
    assert ark.received() == []


def test_a_url_answer_is_downloaded(gateway, ark, headers):
    ark.reply(GENERATIONS, url_answer(ark))
    response = post(gateway, chat_body(model=V40), headers)
    assert response.status_code == 200, response.text
    assert jpeg_of(response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"]) == JPEG_BYTES
    assert len(ark.received("/results/only.jpeg")) == 1


def test_a_url_answer_on_a_loopback_address_is_refused_by_the_download_guard(strict_gateway, ark, headers):
    ark.reply(GENERATIONS, url_answer(ark))
    response = post(strict_gateway, chat_body(model=V40), headers)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and "could not fetch" in error["message"]
    assert "private" not in error["message"]  # why is for the log, not for the client
    assert ark.received("/results/only.jpeg") == []
    assert "a private or reserved address" in strict_gateway.log()


def test_an_image_blocked_inside_the_answer_is_content_filter(gateway, ark, headers):
    ark.reply(GENERATIONS, Reply(json={"model": V40, "created": 1, "data": [{"error": {
        "code": "OutputImageSensitiveContentDetected", "message": "The output image may be sensitive."}}],
        "usage": {"generated_images": 0, "output_tokens": 0, "total_tokens": 0}}))
    response = post(gateway, chat_body(model=V40), headers)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert "OutputImageSensitiveContentDetected" in choice["message"]["content"]
    assert choice["message"]["images"] == []


@pytest.mark.parametrize("reply, status, error_type, code", [
    (Reply(400, json={"error": {"code": "InputTextSensitiveContentDetected", "message": "The input text may "
                                "contain sensitive information.", "param": "", "type": "BadRequest"}}),
     400, "invalid_request_error", "InputTextSensitiveContentDetected"),
    (Reply(400, json={"error": {"code": "InvalidParameter", "message": "The parameter `prompt` is not valid.",
                                "param": "prompt", "type": "BadRequest"}}), 400, "invalid_request_error",
     "InvalidParameter"),
    (Reply(401, json={"error": {"code": "AuthenticationError", "message": f"bad key {ARK_KEY}",
                                "type": "Unauthorized"}}), 502, "upstream_error", "upstream_auth_failed"),
    (Reply(429, json={"error": {"code": "RateLimitExceeded", "message": "Too many requests.",
                                "type": "TooManyRequests"}}, headers={"Retry-After": "9"}),
     429, "rate_limit_error", "rate_limit_exceeded"),
    (Reply(500, json={"error": {"code": "InternalServiceError", "message": "oops", "type": "InternalServiceError"}}),
     502, "upstream_error", None),
    (Reply(json={"error": {"code": "InvalidParameter", "message": "bad size", "param": "size",
                           "type": "BadRequest"}}), 400, "invalid_request_error", "InvalidParameter"),
    (Reply(action="reset"), 502, "upstream_error", None),
    (Reply(body=b"<html>busy</html>"), 502, "upstream_error", None),
    (Reply(json={"model": V40, "created": 1, "data": []}), 502, "upstream_error", "no_image_generated"),
    (Reply(json={"created": 1}, delay=4), 504, "upstream_timeout", "upstream_timeout"),
], ids=["sensitive", "invalid-param", "401", "429", "500", "200-with-error", "reset", "not-json", "no-image", "slow"])
def test_ark_faults_become_documented_errors(gateway, ark, headers, reply, status, error_type, code):
    ark.reply(GENERATIONS, reply)
    response = post(gateway, chat_body(model=V40), headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (error_type, code) and error["message"]
    if status == 429:
        assert response.headers["Retry-After"] == "9"
    if code == "upstream_auth_failed":
        assert "ARK_API_KEY" in error["message"]
    assert ARK_KEY not in response.text and CLIENT_KEY not in response.text


def test_models_lists_the_seedream_models(sdk):
    ids = {model.id for model in sdk.models.list()}
    assert {"doubao-seedream-5-0-pro-260628", "doubao-seedream-3-0-t2i-250415", EDIT} <= ids
    assert not {V40, V45, "doubao-seedream-5-0-260128"} & ids  # shut down on Volcengine on 2026-11-24


@pytest.fixture(scope="module")
def watermarking_gateway(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    """A service started with ARK_WATERMARK=on."""
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server, ARK_WATERMARK="on")
    process = GatewayProcess(env, tmp_path_factory.mktemp("gunicorn-watermark") / "gunicorn.log").start()
    yield process
    process.stop()


def test_ark_watermark_sets_the_default_and_the_tool_param_overrides_it(watermarking_gateway, ark, headers):
    assert post(watermarking_gateway, chat_body(model=V40), headers).status_code == 200
    assert post(watermarking_gateway, chat_body(model=V40, tool={"watermark": False}), headers).status_code == 200
    assert [call.json["watermark"] for call in ark.received(GENERATIONS)] == [True, False]
