"""POST /v1/chat/completions end to end inside Flask: what asks for an image, and what comes back."""
import base64

import pytest
import responses

from tests.conftest import GEMINI_BASE, OPENAI_BASE, chat_body
from tests.support.fake_upstream import Recorded
from tests.support.upstream_mock import sent
from tests.support.images import JPEG_BYTES, PNG_B64, PNG_DATA_URL, data_url

GENERATIONS = OPENAI_BASE + "/images/generations"
EDITS = OPENAI_BASE + "/images/edits"


def decoded_image(url: str) -> bytes:
    assert url.startswith("data:image/png;base64,")
    return base64.b64decode(url.split(",", 1)[1])


@pytest.fixture
def openai_up():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(GENERATIONS, json={"created": 1, "data": [{"b64_json": PNG_B64}],
                                     "usage": {"input_tokens": 5, "output_tokens": 50, "total_tokens": 55}})
        rsps.post(EDITS, json={"created": 1, "data": [{"b64_json": PNG_B64}]})
        yield rsps


def last_sent(rsps) -> Recorded:
    return sent(rsps.calls[-1])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/chat/completions"])
def test_modalities_request_on_the_local_provider(post_chat, path):
    response = post_chat(chat_body(), path=path)
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "local"
    message = response.json["choices"][0]["message"]
    image = decoded_image(message["images"][0]["image_url"]["url"])
    assert image.startswith(b"\x89PNG")
    assert message["content"][-1] == message["images"][0]


def test_tool_alone_asks_for_an_image(post_chat):
    response = post_chat(chat_body(modalities=None, tool={"size": "64x64"}))
    assert response.status_code == 200
    call = response.json["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "image_generation"
    assert call["image_generation"]["size"] == "64x64"
    assert base64.b64decode(call["image_generation"]["result"]).startswith(b"\x89PNG")


def test_n_gives_one_choice_per_image(post_chat):
    response = post_chat(chat_body(n=3, tool={"size": "32x32"}))
    assert [c["index"] for c in response.json["choices"]] == [0, 1, 2]


def test_dropped_parameters_are_named_in_a_header(post_chat):
    response = post_chat(chat_body(tool={"size": "32x32", "quality": "high", "watermark": True}))
    assert response.headers["x-gateway-dropped-params"] == "quality,watermark"


@pytest.mark.parametrize("body", [
    chat_body(modalities=None),
    chat_body(modalities=["text"]),
    chat_body(modalities=None, tools=[{"type": "function", "function": {"name": "draw"}}]),
])
def test_requests_that_do_not_ask_for_an_image_are_400_saying_how(post_chat, body):
    response = post_chat(body)
    assert response.status_code == 400
    assert "image_generation" in response.json["error"]["message"]
    assert response.json["error"]["param"] == "modalities"


def test_stream_true_answers_an_event_stream(post_chat):
    response = post_chat(chat_body(stream=True))
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.get_data().endswith(b"data: [DONE]\n\n")


def test_stream_with_an_invalid_size_is_still_a_json_400(post_chat):
    response = post_chat(chat_body(stream=True, tool={"size": "8x8"}))
    assert response.status_code == 400
    assert response.mimetype == "application/json"


def test_prompt_is_the_last_user_message_text_parts_joined(post_chat, openai_up):
    body = chat_body(model="gpt-image-1", messages=[
        {"role": "system", "content": "You are a painter."},
        {"role": "user", "content": "first idea"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "a red fox"}, {"type": "text", "text": "at dusk"}]},
    ])
    assert post_chat(body).status_code == 200
    assert last_sent(openai_up).json["prompt"] == "a red fox\nat dusk"


def test_input_images_come_from_the_last_user_message_only(post_chat, openai_up):
    body = chat_body(model="gpt-image-1", messages=[
        {"role": "user", "content": [{"type": "text", "text": "old"},
                                     {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]},
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]},
        {"role": "user", "content": [{"type": "text", "text": "make it night"},
                                     {"type": "image_url", "image_url": {"url": data_url(JPEG_BYTES, "image/png")}}]},
    ])
    response = post_chat(body)
    assert response.status_code == 200
    sent = last_sent(openai_up)
    assert sent.path.endswith("/images/edits")
    files = sent.files("image[]")
    assert [(f.content_type, f.data) for f in files] == [("image/jpeg", JPEG_BYTES)]  # sniffed, not the label


def test_openai_usage_reaches_the_answer(post_chat, openai_up):
    response = post_chat(chat_body(model="gpt-image-1"))
    # cost: 5 text tokens at $5/M + 50 image tokens at $40/M (gpt-image-1's price row)
    assert response.json["usage"] == {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55,
                                      "cost": 0.002025}
    assert response.headers["x-gateway-cost-usd"] == "0.002025"
    assert response.json["model"] == "gpt-image-1"


def test_size_the_model_lacks_is_400_with_the_tool_path(post_chat, openai_up):
    response = post_chat(chat_body(model="gpt-image-1", tool={"size": "512x512"}))
    assert response.status_code == 400
    assert response.json["error"]["param"] == "tools[0].image_generation.size"
    assert "1536x1024" in response.json["error"]["message"]
    assert len(openai_up.calls) == 0


def test_upstream_rate_limit_reaches_the_client_with_retry_after(post_chat):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "12"})
        response = post_chat(chat_body(model="gpt-image-1"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "12"
    assert response.json["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("messages, param", [
    ([{"role": "user", "content": "   "}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]}], "messages[0].content"),
    ([{"role": "system", "content": "draw"}], "messages"),
    ([{"role": "user", "content": None}], "messages[0].content"),
])
def test_missing_prompt_is_400(post_chat, messages, param):
    response = post_chat(chat_body(messages=messages))
    assert response.status_code == 400
    assert response.json["error"]["param"] == param


@pytest.mark.parametrize("url, message", [
    ("data:image/png;base64,@@@", "malformed base64"),
    ("data:text/plain;base64,aGVsbG8=", "does not hold a PNG"),
    ("ftp://example.com/a.png", "data: URLs or http(s) URLs"),
    ("https://user:pass@example.com/a.png", "credentials"),
])
def test_bad_input_image_urls_are_400_naming_the_part(post_chat, url, message):
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "edit"},
                                                            {"type": "image_url", "image_url": {"url": url}}]}])
    response = post_chat(body)
    assert response.status_code == 400
    assert message in response.json["error"]["message"]
    assert response.json["error"]["param"] == "messages[0].content[1].image_url.url"


def test_mask_without_input_image_is_400(post_chat):
    response = post_chat(chat_body(tool={"input_image_mask": {"image_url": PNG_DATA_URL}}))
    assert response.status_code == 400
    assert response.json["error"]["param"] == "tools[0].image_generation.input_image_mask.image_url"


def test_mask_file_id_is_400_explaining(post_chat):
    response = post_chat(chat_body(tool={"input_image_mask": {"file_id": "file-1"}}))
    assert response.status_code == 400
    assert "data URL" in response.json["error"]["message"]


def test_unknown_model_is_404(post_chat):
    response = post_chat(chat_body(model="stable-diffusion-xl"))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "model_not_found"


def test_unconfigured_provider_is_404_naming_its_variable(make_app, auth):
    client = make_app(OPENAI_API_KEY="").test_client()
    response = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    assert response.status_code == 404
    assert "OPENAI_API_KEY" in response.json["error"]["message"]


def test_models_endpoint_lists_live_models_in_openai_shape(client, auth):
    response = client.get("/v1/models", headers=auth)
    assert response.json["object"] == "list"
    ids = {m["id"]: m["owned_by"] for m in response.json["data"]}
    assert ids["local-image"] == "local" and ids["gpt-image-2.6-flare"] == "openai"
    assert "gpt-image-1" not in ids and "dall-e-3" not in ids  # retired models are not listed
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in response.json["data"])


def test_model_retrieve(client, auth):
    assert client.get("/v1/models/gpt-image-1", headers=auth).json["owned_by"] == "openai"
    assert client.get("/v1/models/nope", headers=auth).status_code == 404


# --- input images given by URL: downloaded once per request ---

GEMINI_FLASH = f"{GEMINI_BASE}/v1beta/models/gemini-2.5-flash-image:generateContent"
CAT_URL = "http://localhost/cat.jpg"
GEMINI_ANSWER = {"candidates": [{"content": {"role": "model", "parts": [
    {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}, "finishReason": "STOP"}]}


def edit_body(n: int, **extra) -> dict:
    return chat_body(model="gemini-2.5-flash-image", n=n, messages=[
        {"role": "user", "content": [{"type": "text", "text": "give the cat a hat"},
                                     {"type": "image_url", "image_url": {"url": CAT_URL}}]}], **extra)


def calls_to(rsps, method: str, url: str) -> list:
    return [call for call in rsps.calls if call.request.method == method and call.request.url == url]


@pytest.fixture
def private_urls_client(make_app, auth):
    app = make_app(GATEWAY_ALLOW_PRIVATE_URLS="1", GATEWAY_MAX_ATTEMPTS="2", GATEWAY_RETRY_BACKOFF_SECONDS="0.01")
    client = app.test_client()
    return lambda body: client.post("/v1/chat/completions", json=body, headers=auth)


@pytest.mark.parametrize("stream", [False, True])
def test_an_input_image_url_is_downloaded_once_for_all_fanned_out_calls(private_urls_client, stream):
    with responses.RequestsMock() as rsps:
        rsps.get(CAT_URL, body=JPEG_BYTES, content_type="image/jpeg")
        rsps.post(GEMINI_FLASH, json=GEMINI_ANSWER)
        response = private_urls_client(edit_body(3, stream=stream))
        response.get_data()
        assert response.status_code == 200
        assert len(calls_to(rsps, "GET", CAT_URL)) == 1
        posts = calls_to(rsps, "POST", GEMINI_FLASH)
        assert len(posts) == 3
        cat = base64.b64encode(JPEG_BYTES).decode()
        assert all(sent(call).json["contents"][0]["parts"][1]["inlineData"]["data"] == cat for call in posts)


def test_a_retried_call_reuses_the_downloaded_input(private_urls_client):
    with responses.RequestsMock() as rsps:
        rsps.get(CAT_URL, body=JPEG_BYTES, content_type="image/jpeg")
        rsps.post(GEMINI_FLASH, status=503, json={"error": {"message": "overloaded", "status": "UNAVAILABLE"}})
        rsps.post(GEMINI_FLASH, json=GEMINI_ANSWER)
        response = private_urls_client(edit_body(1))
        assert response.status_code == 200 and response.headers["x-gateway-attempts"] == "2"
        assert len(calls_to(rsps, "GET", CAT_URL)) == 1


def test_a_refused_input_url_is_one_download_and_one_400_for_all_calls(private_urls_client):
    with responses.RequestsMock() as rsps:
        rsps.get(CAT_URL, body=b"<html>not a cat</html>", content_type="text/html")
        response = private_urls_client(edit_body(3))
        assert response.status_code == 400
        assert response.json["error"]["param"] == "messages[0].content[1].image_url.url"
        assert len(calls_to(rsps, "GET", CAT_URL)) == 1 and not calls_to(rsps, "POST", GEMINI_FLASH)


@pytest.mark.parametrize("ask", [{"modalities": ["image", "text"]},
                                 {"modalities": None, "tool": {"output_format": "png"}},
                                 {"modalities": ["image", "text"], "tool": {"output_format": "png"}}],
                         ids=["modalities", "tool", "both"])
def test_an_answer_sent_back_as_history_shows_the_model_its_picture_once(post_chat, ask):
    first = post_chat(chat_body("a kite", **ask))
    assert first.status_code == 200
    picture = first.json["choices"][0]["message"]
    history = [{"role": "user", "content": "a kite"}, picture, {"role": "user", "content": "now purple"}]
    with responses.RequestsMock() as rsps:
        rsps.post(GEMINI_FLASH, json=GEMINI_ANSWER)
        assert post_chat(chat_body(model="gemini-2.5-flash-image", messages=history)).status_code == 200
        model_turn = sent(rsps.calls[0]).json["contents"][1]
    assert model_turn["role"] == "model"
    pictures = [part["inlineData"] for part in model_turn["parts"] if "inlineData" in part]
    assert [inline["mimeType"] for inline in pictures] == ["image/png"]
    assert base64.b64decode(pictures[0]["data"]) == decoded_image_of(picture)


def decoded_image_of(message: dict) -> bytes:
    if message.get("images"):
        return decoded_image(message["images"][0]["image_url"]["url"])
    return base64.b64decode(message["tool_calls"][0]["image_generation"]["result"])
