"""The JSON layer: long base64 strings stay in their read buffer, and answers are written in slices."""
import base64
import json
import os

import pytest
import responses

from app import jsonio
from app.jsonio import BigText
from app.png import encode_png
from tests.conftest import ARK_BASE, GEMINI_BASE, OPENAI_BASE, OPENROUTER_BASE, chat_body

BIG_PNG = encode_png(128, 128, (os.urandom(128 * 3) for _ in range(128)), level=0)
BIG_B64 = base64.b64encode(BIG_PNG).decode()
assert len(BIG_B64) > jsonio.BIG


def test_client_requests_are_parsed_into_plain_strings():
    body = json.dumps({"url": "data:image/png;base64," + BIG_B64}).encode()
    assert isinstance(jsonio.loads(body)["url"], str)


def test_long_base64_strings_come_back_as_windows_on_the_buffer():
    body = bytearray(json.dumps({"data": [{"b64_json": BIG_B64, "note": "small"}], "n": 1}).encode())
    parsed = jsonio.loads_answer(body)
    value = parsed["data"][0]["b64_json"]
    assert isinstance(value, BigText) and value.buffer is body
    assert str(value) == BIG_B64 and value == BIG_B64 and len(value) == len(BIG_B64)
    assert parsed["data"][0]["note"] == "small" and parsed["n"] == 1
    assert value.startswith("iVBOR") and value[4:9] == BIG_B64[4:9]


def test_data_urls_stay_too_and_strip_to_their_payload():
    from app.media import sniff_mime_b64, strip_data_url
    body = json.dumps({"url": "data:image/png;base64," + BIG_B64}).encode()
    url = jsonio.loads_answer(body)["url"]
    assert isinstance(url, BigText) and url.startswith("data:")
    payload = strip_data_url(url)
    assert payload == BIG_B64 and sniff_mime_b64(payload) == "image/png"


@pytest.mark.parametrize("text", ["x" * 20000, "AAAA\\u0041" * 3000, "héllo " * 4000])
def test_other_long_strings_are_plain_strings(text):
    raw = ('{"t": "%s"}' % text).encode()
    value = jsonio.loads_answer(raw)["t"]
    assert isinstance(value, str) and value == json.loads(raw)["t"]


def test_a_base64_string_with_escapes_is_parsed_normally():
    escaped = BIG_B64.replace("/", "\\/")
    value = jsonio.loads_answer(('{"b": "%s"}' % escaped).encode())["b"]
    assert isinstance(value, str) and value == BIG_B64


def test_invalid_json_still_fails():
    with pytest.raises(ValueError):
        jsonio.loads_answer(('{"b": "%s", ' % BIG_B64).encode())


def test_answers_with_big_text_are_written_whole_with_the_right_length():
    big = jsonio.loads_answer(json.dumps({"v": BIG_B64}).encode())["v"]
    doc = {"a": jsonio.Raw("data:image/png;base64,", big), "b": big, "c": [1, "two"]}
    parts, length = jsonio.pieces(doc)
    written = b"".join(jsonio.iter_bytes(parts))
    assert len(written) == length
    assert json.loads(written) == {"a": "data:image/png;base64," + BIG_B64, "b": BIG_B64, "c": [1, "two"]}
    response = jsonio.json_response(doc)
    assert response.headers["Content-Length"] == str(length) and response.get_data() == written


BIG_ANSWERS = {
    "gpt-image-1": (OPENAI_BASE + "/images/generations", {"created": 1, "data": [{"b64_json": BIG_B64}]}),
    "doubao-seedream-4-0-250828": (ARK_BASE + "/images/generations",
                                   {"created": 1, "data": [{"b64_json": BIG_B64, "size": "128x128"}]}),
    "google/gemini-2.5-flash-image": (OPENROUTER_BASE + "/chat/completions", {"choices": [{"finish_reason": "stop",
        "message": {"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + BIG_B64}}],
                    "images": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + BIG_B64}}]}}]}),
    "gemini-2.5-flash-image": (GEMINI_BASE + "/v1beta/models/gemini-2.5-flash-image:generateContent",
                               {"candidates": [{"finishReason": "STOP", "content": {"parts": [
                                   {"inlineData": {"mimeType": "image/jpeg", "data": BIG_B64}}]}}]}),
}


@pytest.mark.parametrize("model", list(BIG_ANSWERS))
def test_every_provider_passes_a_big_picture_through_unchanged(client, auth, model):
    url, answer = BIG_ANSWERS[model]
    with responses.RequestsMock() as rsps:
        rsps.post(url, json=answer)
        response = client.post("/v1/chat/completions", json=chat_body(model=model, tool={}), headers=auth)
    assert response.status_code == 200, response.get_data()[:300]
    message = json.loads(response.get_data())["choices"][0]["message"]
    assert len(json.loads(response.get_data())["choices"]) == 1
    assert message["images"][0]["image_url"]["url"] == "data:image/png;base64," + BIG_B64
    assert message["tool_calls"][0]["image_generation"]["result"] == BIG_B64
    assert message["tool_calls"][0]["image_generation"]["size"] == "128x128"
