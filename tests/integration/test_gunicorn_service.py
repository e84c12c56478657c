"""The real service under gunicorn (started by the Procfile command) against a fake OpenAI server."""
import base64
import os

import openai
import pytest
import requests

from tests.conftest import CLIENT_KEY, OPENAI_KEY, chat_body
from tests.support.fake_upstream import Reply
from tests.support.images import JPEG_BYTES, PNG_BYTES, data_url


def image_bytes(data_url_: str) -> bytes:
    header, b64 = data_url_.split(",", 1)
    data = base64.b64decode(b64)
    assert header == "data:image/png;base64" and data.startswith(b"\x89PNG")
    return data


def post(gateway, body, headers, path="/v1/chat/completions", **kwargs):
    return requests.post(gateway.url + path, json=body, headers=headers, timeout=30, **kwargs)


def test_procfile_starts_the_configured_number_of_workers_of_the_configured_class(gateway):
    log = gateway.log()
    assert log.count("Booting worker") == 2
    expected = {"gevent": "app.workers.GeventWorker", "gthread": "app.workers.ThreadWorker"}
    assert f"Using worker: {expected[os.environ.get('GATEWAY_WORKER_CLASS', 'gevent')]}" in log
    assert f"0.0.0.0:{gateway.port}" in log


def test_healthz(gateway):
    response = requests.get(gateway.url + "/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/chat/completions"])
def test_modalities_request_reaches_openai_and_comes_back_as_data_urls(gateway, upstream, headers, path):
    response = post(gateway, chat_body(model="gpt-image-1", tool={"size": "1024x1536", "quality": "low"}), headers,
                    path=path)
    assert response.status_code == 200, response.text
    sent = upstream.received("/v1/images/generations")[0]
    assert sent.json == {"model": "gpt-image-1", "prompt": "a paper lantern shaped like a fox",
                         "size": "1024x1536", "quality": "low"}
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    message = response.json()["choices"][0]["message"]
    image_bytes(message["images"][0]["image_url"]["url"])
    assert message["tool_calls"][0]["image_generation"]["size"] == "16x24"  # read from the PNG header


def test_sdk_modalities_form(sdk, upstream):
    completion = sdk.chat.completions.create(
        model="gpt-image-1", messages=[{"role": "user", "content": "a teapot shaped like a whale"}],
        modalities=["image", "text"], n=2)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert len(completion.choices) == 2
    message = completion.choices[1].message
    assert message.content[0]["type"] == "image_url"
    image_bytes(message.content[0]["image_url"]["url"])
    assert message.model_extra["images"][0] == message.content[0]
    assert completion.usage.prompt_tokens == 12 and completion.usage.completion_tokens == 544
    assert upstream.received()[0].json["n"] == 2


def test_sdk_tool_form(sdk, upstream):
    completion = sdk.chat.completions.create(
        model="gpt-image-1", messages=[{"role": "user", "content": "a lighthouse"}],
        tools=[{"type": "image_generation", "image_generation": {"quality": "high", "size": "1024x1024",
                                                                  "output_format": "png", "background": "opaque"}}])
    call = completion.choices[0].message.tool_calls[0]
    assert call.type == "image_generation"
    details = call.model_extra["image_generation"]
    assert details["status"] == "completed" and details["output_format"] == "png"
    assert base64.b64decode(details["result"]).startswith(b"\x89PNG")
    assert upstream.received()[0].json["background"] == "opaque"


def test_sdk_edit_with_an_input_image_and_mask(sdk, upstream):
    completion = sdk.chat.completions.create(
        model="gpt-image-1",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "make the sky purple"},
            {"type": "image_url", "image_url": {"url": data_url(JPEG_BYTES, "image/jpeg")}}]}],
        modalities=["image", "text"],
        tools=[{"type": "image_generation", "image_generation": {
            "input_fidelity": "high", "input_image_mask": {"image_url": data_url(PNG_BYTES)}}}])
    assert completion.choices[0].message.content[0]["type"] == "image_url"
    sent = upstream.received("/v1/images/edits")[0]
    assert sent.fields()["prompt"] == "make the sky purple"
    assert sent.fields()["input_fidelity"] == "high"
    assert [(f.content_type, f.data) for f in sent.files("image[]")] == [("image/jpeg", JPEG_BYTES)]
    assert sent.files("mask")[0].data == PNG_BYTES


def test_edit_with_an_http_image_url_is_downloaded(gateway, upstream, headers):
    upstream.reply("/cat.png", Reply(body=PNG_BYTES, headers={"Content-Type": "image/png"}))
    body = chat_body(model="gpt-image-1.5", messages=[{"role": "user", "content": [
        {"type": "text", "text": "add a hat"}, {"type": "image_url", "image_url": {"url": upstream.url + "/cat.png"}}]}])
    response = post(gateway, body, headers)
    assert response.status_code == 200, response.text
    assert upstream.received("/v1/images/edits")[0].files("image[]")[0].data == PNG_BYTES


def test_local_provider_through_the_sdk(sdk):
    completion = sdk.chat.completions.create(model="local-image", messages=[{"role": "user", "content": "a fox"}],
                                             modalities=["image", "text"])
    parts = completion.choices[0].message.content
    assert parts[0]["type"] == "text" and "local provider" in parts[0]["text"]
    assert len(image_bytes(parts[1]["image_url"]["url"])) > 1000


def test_sdk_sees_openai_errors(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-image-1", messages=[{"role": "user", "content": "x"}],
                                    modalities=["image"], n=11)
    assert caught.value.body["param"] == "n"
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}],
                                    modalities=["image"])
    with openai.OpenAI(base_url=sdk.base_url, api_key="wrong", max_retries=0) as wrong_key:
        with pytest.raises(openai.AuthenticationError):
            wrong_key.models.list()


def test_sdk_lists_models(sdk):
    ids = {model.id for model in sdk.models.list()}
    assert {"local-image", "gpt-image-2.6-flare", "gpt-image-2"} <= ids and not {"gpt-image-1", "dall-e-3"} & ids


@pytest.mark.parametrize("reply, status, error_type", [
    (Reply(500, json={"error": {"message": "The server had an error"}}), 502, "upstream_error"),
    (Reply(503, body=b"<html>busy</html>"), 502, "upstream_error"),
    (Reply(401, json={"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}}), 502, "upstream_error"),
    (Reply(429, json={"error": {"message": "Rate limit"}}, headers={"Retry-After": "9"}), 429, "rate_limit_error"),
    (Reply(400, json={"error": {"message": "Your request was rejected by the safety system.",
                                "type": "image_generation_user_error", "code": "moderation_blocked"}}),
     400, "invalid_request_error"),
    (Reply(action="reset"), 502, "upstream_error"),
    (Reply(json={"data": [{"b64_json": "x"}]}, action="truncate"), 502, "upstream_error"),
    (Reply(body=b"not json at all"), 502, "upstream_error"),
    (Reply(json={"created": 1, "data": []}), 502, "upstream_error"),
    (Reply(json={"created": 1}, delay=4), 504, "upstream_timeout"),
], ids=["500", "503-html", "401", "429", "moderation", "reset", "truncated", "not-json", "no-image", "slow"])
def test_upstream_faults_become_documented_errors(gateway, upstream, headers, reply, status, error_type):
    upstream.reply("/v1/images/generations", reply)
    response = post(gateway, chat_body(model="gpt-image-1"), headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    if status == 429:
        assert response.headers["Retry-After"] == "9"
    assert OPENAI_KEY not in response.text and CLIENT_KEY not in response.text


def test_workers_survive_faults_and_no_secret_reaches_the_log(gateway, upstream, headers):
    for reply in (Reply(action="reset"), Reply(500, json={}), Reply(json={}, delay=4)):
        upstream.reply("/v1/images/generations", reply)
        post(gateway, chat_body(model="gpt-image-1"), headers)
    assert post(gateway, chat_body(), headers).status_code == 200
    log = gateway.log()
    assert log.count("Booting worker") == 2, "a worker was restarted"
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log
    assert OPENAI_KEY not in log and CLIENT_KEY not in log


def test_body_over_the_limit_is_413_json(gateway, headers):
    body = b'{"model": "local-image", "pad": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    response = requests.post(gateway.url + "/v1/chat/completions", data=body, timeout=30,
                             headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_body_just_under_the_limit_is_read(gateway, headers):
    pad = "x" * (30 * 1024 * 1024)
    response = post(gateway, chat_body(pad=pad, tool={"size": "32x32"}), headers)
    assert response.status_code == 200
