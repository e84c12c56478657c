"""OpenRouter through the real service under gunicorn, against a fake OpenRouter chat route."""
import base64

import openai
import pytest
import requests

from app.media import image_size
from tests.conftest import CLIENT_KEY, OPENROUTER_KEY, chat_body
from tests.support.fake_upstream import Reply
from tests.support.images import JPEG_BYTES, PNG_BYTES, data_url

CHAT = "/api/v1/chat/completions"  # the fake is mounted where OpenRouter lives: <base>/api/v1
FLASH = "google/gemini-2.5-flash-image"
PRO = "google/gemini-3-pro-image-preview"


def post(gateway, body, headers, path="/v1/chat/completions"):
    return requests.post(gateway.url + path, json=body, headers=headers, timeout=30)


def png(data_url_: str) -> bytes:
    header, b64 = data_url_.split(",", 1)
    data = base64.b64decode(b64)
    assert header == "data:image/png;base64" and data.startswith(b"\x89PNG")
    return data


def test_a_modalities_request_reaches_openrouter_and_comes_back_as_data_urls(gateway, openrouter, headers):
    response = post(gateway, chat_body(model=FLASH, user="end-user-7"), headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "openrouter"
    assert "x-gateway-dropped-params" not in response.headers
    sent = openrouter.received(CHAT)[0]
    assert sent.json == {"model": FLASH, "messages": [{"role": "user", "content": "a paper lantern shaped like a fox"}],
                         "modalities": ["image", "text"], "stream": False, "user": "end-user-7"}
    assert sent.headers["authorization"] == f"Bearer {OPENROUTER_KEY}"
    body = response.json()
    assert body["model"] == FLASH and len(body["choices"]) == 1
    message = body["choices"][0]["message"]
    assert message["content"][0] == {"type": "text", "text": "Here is your image."}
    assert image_size(png(message["content"][1]["image_url"]["url"])) == (16, 16)
    assert message["images"] == [message["content"][1]]
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 1290, "total_tokens": 1302, "cost": 0.039,
                             "prompt_tokens_details": {"cached_tokens": 0},
                             "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 1290}}


def test_sdk_n_3_makes_three_upstream_calls_and_three_choices(sdk, openrouter):
    completion = sdk.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a teapot shaped like a whale"}],
        modalities=["image", "text"], n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        parts = choice.message.content
        assert parts[0] == {"type": "text", "text": "Here is your image."}
        png(parts[1]["image_url"]["url"])
        assert choice.message.model_extra["images"] == [parts[1]]
    calls = openrouter.received(CHAT)
    assert len(calls) == 3 and all("n" not in call.json for call in calls)
    assert completion.usage.prompt_tokens == 36 and completion.usage.completion_tokens == 3870
    assert completion.usage.model_extra["cost"] == pytest.approx(0.117)


def test_sdk_tool_form_maps_size_and_quality_on_gemini_3(sdk, openrouter):
    completion = sdk.chat.completions.create(
        model=PRO, messages=[{"role": "user", "content": "a lighthouse"}],
        tools=[{"type": "image_generation", "image_generation": {"size": "1536x1024", "quality": "medium"}}])
    assert openrouter.received(CHAT)[0].json["image_config"] == {"aspect_ratio": "3:2", "image_size": "2K"}
    details = completion.choices[0].message.tool_calls[0].model_extra["image_generation"]
    assert details["status"] == "completed" and details["output_format"] == "png"
    assert details["size"] == "48x32"  # 3:2 at the 2K tier, read from the PNG the fake drew


def test_a_multi_turn_edit_sends_the_whole_conversation(gateway, openrouter, headers):
    first = data_url(JPEG_BYTES, "image/jpeg")
    earlier_answer = data_url(PNG_BYTES)
    messages = [
        {"role": "system", "content": "You are a watercolour illustrator."},
        {"role": "user", "content": [{"type": "text", "text": "paint this kite"},
                                     {"type": "image_url", "image_url": {"url": first}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Here is the kite."},
                                          {"type": "image_url", "image_url": {"url": earlier_answer}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ignored"},
        {"role": "user", "content": "now make it purple"},
    ]
    response = post(gateway, {"model": FLASH, "modalities": ["image", "text"], "messages": messages}, headers)
    assert response.status_code == 200, response.text
    assert openrouter.received(CHAT)[0].json["messages"] == [
        {"role": "system", "content": "You are a watercolour illustrator."},
        {"role": "user", "content": [{"type": "text", "text": "paint this kite"},
                                     {"type": "image_url", "image_url": {"url": first}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Here is the kite."},
                                          {"type": "image_url", "image_url": {"url": earlier_answer}}]},
        {"role": "user", "content": "now make it purple"},
    ]
    assert response.json()["usage"]["prompt_tokens"] == 12 + 2 * 258  # the fake counted both input images


def test_parameters_openrouter_cannot_honour_are_named_in_the_dropped_header(gateway, openrouter, headers):
    tool = {"size": "1024x1536", "quality": "high", "background": "opaque", "output_format": "png",
            "watermark": False, "partial_images": 2}
    response = post(gateway, chat_body(model=FLASH, tool=tool), headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-dropped-params"] == "background,output_format,quality,watermark"
    sent = openrouter.received(CHAT)[0].json
    assert sent["image_config"] == {"aspect_ratio": "2:3"}
    assert not {"tools", "watermark", "n", "background", "quality"} & set(sent)
    details = response.json()["choices"][0]["message"]["tool_calls"][0]["image_generation"]
    assert details["size"] == "16x24"


def test_an_image_only_model_is_asked_for_images_only(gateway, openrouter, headers):
    response = post(gateway, chat_body(model="black-forest-labs/flux.2-pro"), headers)
    assert response.status_code == 200, response.text
    assert openrouter.received(CHAT)[0].json["modalities"] == ["image"]
    message = response.json()["choices"][0]["message"]
    assert [part["type"] for part in message["content"]] == ["image_url"]  # the model said nothing


def test_a_mask_is_a_400_and_nothing_reaches_openrouter(gateway, openrouter, headers):
    body = chat_body(model=FLASH, messages=[{"role": "user", "content": [
        {"type": "text", "text": "fill the hole"}, {"type": "image_url", "image_url": {"url": data_url(PNG_BYTES)}}]}],
        tool={"input_image_mask": {"image_url": data_url(PNG_BYTES)}})
    response = post(gateway, body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].image_generation.input_image_mask.image_url"
    assert openrouter.received() == []


def test_a_blocked_image_is_a_content_filter_choice(gateway, openrouter, headers):
    openrouter.reply(CHAT, Reply(json={"id": "gen-1", "object": "chat.completion", "model": FLASH, "choices": [
        {"index": 0, "finish_reason": "content_filter", "native_finish_reason": "IMAGE_SAFETY",
         "message": {"role": "assistant", "content": None}}]}))
    response = post(gateway, chat_body(model=FLASH), headers)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and "IMAGE_SAFETY" in choice["message"]["content"]
    assert choice["message"]["images"] == []


def or_error(status, message, **metadata):
    return Reply(status, json={"error": {"code": status, "message": message,
                                         **({"metadata": metadata} if metadata else {})}})


@pytest.mark.parametrize("reply, status, error_type, code", [
    (or_error(400, "Provider returned error", raw="Unsupported aspect ratio"), 400, "invalid_request_error", "400"),
    (or_error(401, f"Invalid key {OPENROUTER_KEY}"), 502, "upstream_error", "upstream_auth_failed"),
    (or_error(402, "Insufficient credits"), 502, "upstream_error", None),
    (or_error(403, "Your input was flagged", reasons=["violence"], flagged_input="x"), 400, "invalid_request_error",
     "moderation_blocked"),
    (or_error(403, "Key disabled"), 502, "upstream_error", "upstream_auth_failed"),
    (or_error(408, "Request timed out"), 504, "upstream_timeout", "upstream_timeout"),
    (Reply(429, json={"error": {"code": 429, "message": "Rate limited"}}, headers={"Retry-After": "9"}), 429,
     "rate_limit_error", "rate_limit_exceeded"),
    (or_error(502, "Provider returned error"), 502, "upstream_error", None),
    (Reply(json={"error": {"code": 502, "message": "Provider disconnected"}, "choices": []}), 502,
     "upstream_error", None),
    (Reply(json={"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                               "content": "I'd rather not."}}]}),
     502, "upstream_error", "no_image_generated"),
    (Reply(action="reset"), 502, "upstream_error", None),
    (Reply(body=b": OPENROUTER PROCESSING\n\n"), 502, "upstream_error", None),
    (Reply(json={"choices": []}, delay=4), 504, "upstream_timeout", "upstream_timeout"),
], ids=["400", "401", "402", "403-moderation", "403", "408", "429", "502", "200-error", "text-only", "reset",
        "not-json", "slow"])
def test_openrouter_faults_become_documented_errors(gateway, openrouter, headers, reply, status, error_type, code):
    openrouter.reply(CHAT, reply)
    response = post(gateway, chat_body(model=FLASH), headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (error_type, code) and error["message"]
    if status == 429:
        assert response.headers["Retry-After"] == "9"
    assert OPENROUTER_KEY not in response.text and CLIENT_KEY not in response.text


def test_the_sdk_sees_a_flagged_prompt_as_a_bad_request(sdk, openrouter):
    openrouter.reply(CHAT, or_error(403, "Your input was flagged", reasons=["violence"]))
    with pytest.raises(openai.BadRequestError, match="flagged"):
        sdk.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "x"}], modalities=["image"])


def test_models_lists_the_openrouter_models(sdk):
    ids = {model.id for model in sdk.models.list()}
    assert {"google/gemini-3.1-flash-image-preview", PRO, "black-forest-labs/flux.2-pro",
            "bytedance-seed/seedream-4.5"} <= ids and FLASH not in ids
