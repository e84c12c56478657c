"""The real service under gunicorn against a fake Gemini Developer API on 127.0.0.1."""
import base64

import openai
import pytest
import requests

from tests.conftest import CLIENT_KEY, GEMINI_KEY, chat_body
from tests.support.fake_upstream import Reply
from tests.support.gemini_fake import TEXT
from tests.support.images import PNG_BYTES, data_url

FLASH = "gemini-2.5-flash-image"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"
PRO_GENERATE = "/v1beta/models/gemini-3-pro-image-preview:generateContent"
PREDICT = "/v1beta/models/imagen-4.0-generate-001:predict"
KEY_INVALID = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT", "details": [
                             {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}


def post(gateway, body, headers):
    return requests.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def png_of(url: str) -> bytes:
    header, b64 = url.split(",", 1)
    data = base64.b64decode(b64)
    assert header == "data:image/png;base64" and data.startswith(b"\x89PNG")
    return data


def edit_body(url: str) -> dict:
    return chat_body(model=FLASH, messages=[{"role": "user", "content": [
        {"type": "text", "text": "add a hat"}, {"type": "image_url", "image_url": {"url": url}}]}])


def test_modalities_request_reaches_gemini_and_comes_back_as_text_and_data_url(gateway, gemini, headers):
    body = chat_body(model=FLASH, tool={"size": "1536x1024", "background": "opaque"})
    response = post(gateway, body, headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "gemini"
    assert response.headers["x-gateway-dropped-params"] == "background"
    sent = gemini.received(GENERATE)[0]
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY and "authorization" not in sent.headers
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "a paper lantern shaped like a fox"}]}],
                         "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                              "imageConfig": {"aspectRatio": "3:2"}}}
    answer = response.json()
    message = answer["choices"][0]["message"]
    assert message["content"][0] == {"type": "text", "text": TEXT}
    png_of(message["images"][0]["image_url"]["url"])
    assert message["tool_calls"][0]["image_generation"]["size"] == "24x16"  # read from the PNG header
    # cost: 12 prompt tokens x $0.30/M + 1290 image tokens x $30/M + 11 text tokens x $2.50/M
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 1301, "total_tokens": 1313,
                               "prompt_tokens_details": {"text_tokens": 12},
                               "completion_tokens_details": {"image_tokens": 1290, "text_tokens": 11},
                               "cost": 0.0387311}


def test_sdk_n_3_makes_three_upstream_calls_and_three_choices(sdk, gemini):
    completion = sdk.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a teapot shaped like a whale"}],
        modalities=["image", "text"], n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        png_of(choice.message.model_extra["images"][0]["image_url"]["url"])
    assert len(gemini.received(GENERATE)) == 3
    assert completion.usage.completion_tokens == 3 * 1301


def test_sdk_quality_on_gemini_3_sends_image_size(sdk, gemini):
    completion = sdk.chat.completions.create(
        model="gemini-3-pro-image-preview", messages=[{"role": "user", "content": "a lighthouse"}],
        tools=[{"type": "image_generation", "image_generation": {"quality": "high", "size": "1792x1024"}}])
    details = completion.choices[0].message.tool_calls[0].model_extra["image_generation"]
    assert details["size"] == "128x72"
    config = gemini.received(PRO_GENERATE)[0].json["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "4K"}


def test_a_safety_block_is_a_content_filter_choice(sdk, gemini):
    gemini.reply(GENERATE, Reply(json={"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                       "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}))
    completion = sdk.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "something bad"}],
                                             modalities=["image", "text"])
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert "PROHIBITED_CONTENT" in choice.message.content
    assert choice.message.model_extra["images"] == []
    assert completion.usage.prompt_tokens == 9


def test_a_conversation_with_an_earlier_image_is_sent_as_turns(gateway, gemini, headers):
    body = chat_body(model=FLASH, messages=[
        {"role": "system", "content": "Flat colours only."},
        {"role": "user", "content": "a red fox"},
        {"role": "assistant", "content": [{"type": "text", "text": "Here."},
                                          {"type": "image_url", "image_url": {"url": data_url(PNG_BYTES)}}]},
        {"role": "user", "content": "make it blue"}])
    assert post(gateway, body, headers).status_code == 200
    sent = gemini.received(GENERATE)[0].json
    assert sent["systemInstruction"] == {"parts": [{"text": "Flat colours only."}]}
    assert [turn["role"] for turn in sent["contents"]] == ["user", "model", "user"]
    assert base64.b64decode(sent["contents"][1]["parts"][1]["inlineData"]["data"]) == PNG_BYTES


def test_an_http_image_url_is_downloaded_and_inlined(gateway, gemini, headers):
    gemini.reply("/cat.png", Reply(body=PNG_BYTES, headers={"Content-Type": "image/png"}))
    response = post(gateway, edit_body(gemini.url + "/cat.png"), headers)
    assert response.status_code == 200, response.text
    parts = gemini.received(GENERATE)[0].json["contents"][0]["parts"]
    assert parts[0] == {"text": "add a hat"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == PNG_BYTES


def test_the_strict_gateway_refuses_a_loopback_image_url_before_calling_gemini(strict_gateway, gemini, headers):
    gemini.reply("/cat.png", Reply(body=PNG_BYTES, headers={"Content-Type": "image/png"}))
    response = post(strict_gateway, edit_body(gemini.url + "/cat.png"), headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "127.0.0.1" in error["message"]
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert gemini.received(GENERATE) == [] and gemini.received("/cat.png") == []


def test_a_mask_is_refused_without_calling_gemini(gateway, gemini, headers):
    body = edit_body(data_url(PNG_BYTES))
    body["tools"] = [{"type": "image_generation", "image_generation": {"input_image_mask": {
        "image_url": data_url(PNG_BYTES)}}}]
    response = post(gateway, body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].image_generation.input_image_mask.image_url"
    assert gemini.received() == []


def test_sdk_imagen_n_is_native(sdk, gemini):
    completion = sdk.chat.completions.create(
        model="imagen-4.0-generate-001", messages=[{"role": "user", "content": "a ceramic whale"}],
        modalities=["image"], n=2)
    assert len(completion.choices) == 2
    calls = gemini.received(PREDICT)
    assert len(calls) == 1 and calls[0].json["parameters"]["sampleCount"] == 2


def test_sdk_lists_the_gemini_models(sdk):
    ids = {model.id for model in sdk.models.list()}
    assert {"gemini-3.1-flash-image", "gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview"} <= ids
    assert not {FLASH, "imagen-4.0-generate-001"} & ids  # retired


@pytest.mark.parametrize("reply, status, error_type, code", [
    (Reply(400, json=KEY_INVALID), 502, "upstream_error", "upstream_auth_failed"),
    (Reply(429, json={"error": {"code": 429, "message": "Quota exceeded for this model.",
                                "status": "RESOURCE_EXHAUSTED"}}, headers={"Retry-After": "9"}),
     429, "rate_limit_error", "rate_limit_exceeded"),
    (Reply(400, json={"error": {"code": 400, "message": "Bad aspect ratio", "status": "INVALID_ARGUMENT"}}),
     400, "invalid_request_error", "INVALID_ARGUMENT"),
    (Reply(503, json={"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
     502, "upstream_error", None),
    (Reply(json={"candidates": [{"content": {"parts": [{"text": "No."}]}, "finishReason": "NO_IMAGE"}]}),
     502, "upstream_error", "no_image_generated"),
    (Reply(action="reset"), 502, "upstream_error", None),
    (Reply(body=b"not json"), 502, "upstream_error", None),
    (Reply(json={}, delay=4), 504, "upstream_timeout", "upstream_timeout"),
], ids=["API_KEY_INVALID", "429", "INVALID_ARGUMENT", "503", "NO_IMAGE", "reset", "not-json", "slow"])
def test_gemini_faults_become_documented_errors(gateway, gemini, headers, reply, status, error_type, code):
    gemini.reply(GENERATE, reply)
    response = post(gateway, chat_body(model=FLASH), headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (error_type, code)
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code == "upstream_auth_failed":
        assert "GEMINI_API_KEY" in error["message"]
    if status == 429:
        assert response.headers["Retry-After"] == "9"
    assert GEMINI_KEY not in response.text and CLIENT_KEY not in response.text


def test_no_gemini_key_reaches_the_log(gateway, gemini, headers):
    gemini.reply(GENERATE, Reply(400, json=KEY_INVALID))
    post(gateway, chat_body(model=FLASH), headers)
    assert GEMINI_KEY not in gateway.log()


def test_sdk_sees_the_bad_key_as_a_server_side_error(sdk, gemini):
    gemini.reply(GENERATE, Reply(400, json=KEY_INVALID))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "x"}], modalities=["image"])
    assert caught.value.status_code == 502
