"""The OpenRouter client: the exact chat bodies it sends, every answer shape it reads, every way it fails."""
import base64
import json

import pytest
import requests
from responses import matchers

from app import schemas
from app.chat_request import read_chat_request
from app.core.errors import InvalidRequest, ProviderRejected, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers.openrouter import OpenRouterClient
from tests.conftest import OPENROUTER_BASE as BASE
from tests.conftest import OPENROUTER_KEY as KEY
from tests.conftest import chat_body
from tests.support.images import JPEG_B64, JPEG_BYTES, PNG_B64, PNG_BYTES, PNG_DATA_URL, WEBP_B64

CHAT = BASE + "/chat/completions"
FLASH = "google/gemini-2.5-flash-image"
PRO = "google/gemini-3-pro-image-preview"
FLASH_31 = "google/gemini-3.1-flash-image-preview"
JPEG_DATA_URL = "data:image/jpeg;base64," + JPEG_B64
WEBP_DATA_URL = "data:image/webp;base64," + WEBP_B64


def make_client(**options) -> OpenRouterClient:
    settings = ProviderSettings(name="openrouter", api_key=KEY, base_url=BASE, timeout=30, options=options)
    downloader = Downloader(DownloadPolicy(max_bytes=1 << 20, timeout=5, connect_timeout=2, allow_private=True))
    return OpenRouterClient(settings, downloader, connect_timeout=2)


def chat_request(prompt="a paper lantern shaped like a fox", *, model=FLASH, tool=None, **extra) -> ImageRequest:
    """The ImageRequest the chat route builds from a client body (validated exactly as in production)."""
    body = chat_body(prompt, model=model, tool=tool, **extra)
    return read_chat_request(schemas.load(schemas.ChatRequestSchema(), body)).request


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def answer(content="Here is your image.", images=(PNG_DATA_URL,), *, finish_reason="stop", native="STOP",
           usage=None, **choice_extra) -> dict:
    message = {"role": "assistant", "content": content}
    if images is not None:
        message["images"] = [{**image_part(url), "index": i} for i, url in enumerate(images)]
    return {"id": "gen-1767225900-abc", "object": "chat.completion", "created": 1767225900, "model": FLASH,
            "provider": "Google AI Studio",
            "choices": [{"index": 0, "finish_reason": finish_reason, "native_finish_reason": native,
                         "message": message, **choice_extra}],
            "usage": usage or {"prompt_tokens": 12, "completion_tokens": 1290, "total_tokens": 1302}}


def sent_json(mocked, index=0) -> dict:
    return json.loads(mocked.calls[index].request.body)


# ----- what is sent -----

def test_a_plain_prompt_is_sent_as_the_conversation_with_image_modalities_and_no_stream(mocked):
    expected = {"model": FLASH, "messages": [{"role": "user", "content": "a paper lantern shaped like a fox"}],
                "modalities": ["image", "text"], "stream": False, "user": "end-user-42"}
    mocked.post(CHAT, json=answer(), match=[
        matchers.json_params_matcher(expected, strict_match=True),
        matchers.header_matcher({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})])
    result = make_client().generate(chat_request(user="end-user-42"))
    assert len(result.images) == 1 and result.dropped == []
    headers = mocked.calls[0].request.headers
    assert not {"HTTP-Referer", "X-Title", "X-OpenRouter-Title"} & set(headers)


def test_the_whole_conversation_is_translated(mocked):
    messages = [
        {"role": "system", "content": "You are a watercolour illustrator."},
        {"role": "developer", "content": [{"type": "text", "text": "Keep it soft."},
                                          image_part(PNG_DATA_URL)]},
        {"role": "user", "content": [{"type": "text", "text": "paint this kite"}, image_part(JPEG_DATA_URL),
                                     {"type": "image_url", "image_url": {"url": "https://img.example/kite.webp",
                                                                         "detail": "high"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Here is the kite."},
                                          image_part(PNG_DATA_URL)]},
        {"role": "tool", "content": "{\"weather\": \"windy\"}"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "make it purple"}]},
    ]
    mocked.post(CHAT, json=answer())
    make_client().generate(chat_request(messages=messages))
    assert sent_json(mocked)["messages"] == [
        {"role": "system", "content": "You are a watercolour illustrator."},
        {"role": "system", "content": "Keep it soft."},
        {"role": "user", "content": [{"type": "text", "text": "paint this kite"}, image_part(JPEG_DATA_URL),
                                     {"type": "image_url", "image_url": {"url": "https://img.example/kite.webp",
                                                                         "detail": "high"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Here is the kite."},
                                          image_part(PNG_DATA_URL)]},
        {"role": "user", "content": [{"type": "text", "text": "make it purple"}]},
    ]


def image_call(b64: str, **details) -> dict:
    """A tool call as the gateway's tool-form answer carries a picture."""
    return {"id": "ig_1", "type": "image_generation",
            "image_generation": {"status": "completed", "result": b64, "output_format": "jpeg", **details}}


def sent_assistant_turn(mocked, assistant: dict) -> dict:
    messages = [{"role": "user", "content": "a kite"}, {"role": "assistant", **assistant},
                {"role": "user", "content": "now purple"}]
    mocked.post(CHAT, json=answer())
    make_client().generate(chat_request(messages=messages))
    return sent_json(mocked)["messages"][1]


@pytest.mark.parametrize("assistant", [
    # tool form: the picture only in tool_calls (besides calls of other tools)
    {"content": "Here is the kite.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
        image_call(JPEG_B64)]},
    # OpenRouter's convention: a text content and the pictures in `images`
    {"content": "Here is the kite.", "images": [image_part(JPEG_DATA_URL)]},
    # the gateway's answer with both shapes asked: one picture in content, images and tool_calls
    {"content": [{"type": "text", "text": "Here is the kite."}, image_part(JPEG_DATA_URL)],
     "images": [image_part(JPEG_DATA_URL)], "tool_calls": [image_call(JPEG_B64)]},
], ids=["tool_calls", "images", "all-three"])
def test_an_earlier_assistant_picture_is_sent_once_whichever_shape_it_came_back_in(mocked, assistant):
    assert sent_assistant_turn(mocked, assistant) == {
        "role": "assistant", "content": [{"type": "text", "text": "Here is the kite."}, image_part(JPEG_DATA_URL)]}


def test_a_text_only_assistant_turn_stays_a_string(mocked):
    assert sent_assistant_turn(mocked, {"content": "No picture this time.", "tool_calls": []}) == {
        "role": "assistant", "content": "No picture this time."}


@pytest.mark.parametrize("result, error", [(12, "base64 text"), ("bm90IGFuIGltYWdl", "does not hold")])
def test_a_bad_tool_call_picture_is_the_callers_400_naming_it(mocked, result, error):
    messages = [{"role": "user", "content": "a kite"},
                {"role": "assistant", "content": None, "tool_calls": [image_call(JPEG_B64), image_call(result)]},
                {"role": "user", "content": "now purple"}]
    with pytest.raises(InvalidRequest, match=error) as caught:
        make_client().generate(chat_request(messages=messages))
    assert caught.value.param == "messages[1].tool_calls[1].image_generation.result"
    assert len(mocked.calls) == 0


def test_a_mislabelled_data_url_is_sent_with_the_type_of_its_bytes(mocked):
    mislabelled = "data:image/png;base64," + JPEG_B64
    mocked.post(CHAT, json=answer())
    make_client().generate(chat_request(messages=[{"role": "user", "content": [
        {"type": "text", "text": "x"}, image_part(mislabelled)]}]))
    assert sent_json(mocked)["messages"][0]["content"][1] == image_part(JPEG_DATA_URL)


@pytest.mark.parametrize("url, message", [("data:image/png;base64,aGVsbG8gd29ybGQ=", "does not hold"),
                                          ("data:image/png,rawbytes", "base64"),
                                          ("ftp://files.example/a.png", "http")])
def test_a_bad_image_url_in_an_earlier_turn_is_the_callers_400_before_any_call(mocked, url, message):
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, image_part(url)]},
                {"role": "user", "content": "b"}]
    with pytest.raises(InvalidRequest, match=message) as caught:
        make_client().generate(chat_request(messages=messages))
    assert caught.value.param == "messages[0].content[1].image_url.url"
    assert len(mocked.calls) == 0


def test_a_request_without_a_conversation_sends_the_prompt_and_its_images(mocked):
    mocked.post(CHAT, json=answer())
    refs = (ImageRef(PNG_DATA_URL, "image[0]", PNG_BYTES, "image/png"),
            ImageRef("https://img.example/a.jpg", "image[1]"))
    make_client().generate(ImageRequest(FLASH, "add a hat", images=refs))
    assert sent_json(mocked)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "add a hat"}, image_part(PNG_DATA_URL), image_part("https://img.example/a.jpg")]}]


@pytest.mark.parametrize("size, ratio", [("1024x1024", "1:1"), ("1536x1024", "3:2"), ("1024x1536", "2:3"),
                                         ("1792x1024", "16:9"), ("1024x1792", "9:16"), ("256x256", "1:1"),
                                         ("1200x900", "4:3"), ("4096x1024", "21:9")])
def test_size_becomes_the_nearest_aspect_ratio(mocked, size, ratio):
    mocked.post(CHAT, json=answer())
    result = make_client().generate(chat_request(tool={"size": size}))
    assert sent_json(mocked)["image_config"] == {"aspect_ratio": ratio}
    assert result.dropped == []


def test_gemini_3_1_flash_also_takes_the_extended_ratios(mocked):
    mocked.post(CHAT, json=answer())
    make_client().generate(chat_request(model=FLASH_31, tool={"size": "4096x1024"}))
    assert sent_json(mocked)["image_config"] == {"aspect_ratio": "4:1"}


def test_auto_size_sends_no_image_config(mocked):
    mocked.post(CHAT, json=answer())
    result = make_client().generate(chat_request(tool={"size": "auto"}))
    assert "image_config" not in sent_json(mocked) and result.dropped == []


@pytest.mark.parametrize("quality, tier", [("low", "1K"), ("standard", "1K"), ("medium", "2K"), ("high", "4K"),
                                           ("hd", "4K")])
def test_quality_becomes_image_size_on_gemini_3(mocked, quality, tier):
    mocked.post(CHAT, json=answer())
    result = make_client().generate(chat_request(model=PRO, tool={"quality": quality, "size": "1536x1024"}))
    assert sent_json(mocked)["image_config"] == {"aspect_ratio": "3:2", "image_size": tier}
    assert result.dropped == []


def test_quality_is_dropped_on_models_without_image_size(mocked):
    mocked.post(CHAT, json=answer())
    result = make_client().generate(chat_request(model=FLASH, tool={"quality": "high"}))
    assert "image_config" not in sent_json(mocked)
    assert result.dropped == ["quality"]


def test_auto_quality_asks_nothing_and_loses_nothing(mocked):
    mocked.post(CHAT, json=answer())
    mocked.post(CHAT, json=answer())
    assert make_client().generate(chat_request(model=FLASH, tool={"quality": "auto"})).dropped == []
    assert make_client().generate(chat_request(model=PRO, tool={"quality": "auto"})).dropped == []
    assert "image_config" not in sent_json(mocked, 0) and "image_config" not in sent_json(mocked, 1)


@pytest.mark.parametrize("model, params, config, dropped", [
    (PRO, {"size": "2K"}, {"image_size": "2K"}, []),
    (FLASH_31, {"size": "4K", "quality": "high"}, {"image_size": "4K"}, []),
    (PRO, {"size": "2K", "quality": "high"}, {"image_size": "2K"}, ["quality"]),  # the explicit tier wins
    (FLASH, {"size": "2K"}, None, ["size"]),
    ("black-forest-labs/flux.2-pro", {"size": "1K", "quality": "medium"}, None, ["quality", "size"]),
])
def test_size_tiers(mocked, model, params, config, dropped):
    mocked.post(CHAT, json=answer())
    result = make_client().generate(chat_request(model=model, tool=params))
    assert sent_json(mocked).get("image_config") == config
    assert result.dropped == dropped


def test_parameters_the_chat_route_cannot_honour_are_dropped_never_sent(mocked):
    tool = {"size": "1024x1536", "background": "transparent", "output_format": "webp", "output_compression": 80,
            "moderation": "low", "input_fidelity": "high", "watermark": False, "partial_images": 2}
    mocked.post(CHAT, json=answer(), match=[matchers.json_params_matcher({
        "model": FLASH, "messages": [{"role": "user", "content": "a paper lantern shaped like a fox"}],
        "modalities": ["image", "text"], "stream": False, "image_config": {"aspect_ratio": "2:3"}},
        strict_match=True)])
    result = make_client().generate(chat_request(tool=tool))
    # partial_images: ignored, not dropped (previews exist only when streaming)
    assert result.dropped == ["background", "input_fidelity", "moderation", "output_compression",
                              "output_format", "watermark"]


def test_a_mask_is_the_callers_400_before_any_call(mocked):
    messages = [{"role": "user", "content": [{"type": "text", "text": "x"}, image_part(PNG_DATA_URL)]}]
    request = chat_request(messages=messages, tool={"input_image_mask": {"image_url": PNG_DATA_URL}})
    with pytest.raises(InvalidRequest, match="mask") as caught:
        generate(make_client(), request)
    assert caught.value.param == "tools[0].image_generation.input_image_mask.image_url"
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("model, modalities", [(FLASH, ["image", "text"]), ("openai/gpt-5-image", ["image", "text"]),
                                               ("black-forest-labs/flux.2-pro", ["image"]),
                                               ("bytedance-seed/seedream-4.5", ["image"]),
                                               ("sourceful/riverflow-v2-fast", ["image"])])
def test_image_only_models_are_asked_for_images_only(mocked, model, modalities):
    mocked.post(CHAT, json=answer(content=None))
    make_client().generate(chat_request(model=model))
    assert sent_json(mocked)["modalities"] == modalities


def test_more_image_only_models_can_be_configured(mocked):
    mocked.post(CHAT, json=answer(content=None))
    make_client(image_only_models="recraft/*, acme/painter").generate(chat_request(model="recraft/recraft-v4"))
    assert sent_json(mocked)["modalities"] == ["image"]


def test_attribution_headers_from_options(mocked):
    mocked.post(CHAT, json=answer())
    make_client(referer="https://app.example", title="Lantern Studio").generate(chat_request())
    headers = mocked.calls[0].request.headers
    assert {name: headers[name] for name in ("Authorization", "HTTP-Referer", "X-Title", "X-OpenRouter-Title")} == {
        "Authorization": f"Bearer {KEY}", "HTTP-Referer": "https://app.example", "X-Title": "Lantern Studio",
        "X-OpenRouter-Title": "Lantern Studio"}


def test_a_title_outside_ascii_is_percent_encoded_not_a_crash(mocked):
    mocked.post(CHAT, json=answer())
    result = make_client(title="Café 画\n").generate(chat_request())
    headers = mocked.calls[0].request.headers
    assert headers["X-Title"] == headers["X-OpenRouter-Title"] == "Caf%C3%A9 %E7%94%BB"  # one line, ASCII only
    assert len(result.images) == 1


def test_n_fans_out_single_image_calls(mocked):
    mocked.post(CHAT, json=answer(usage={"prompt_tokens": 12, "completion_tokens": 1290, "total_tokens": 1302,
                                         "cost": 0.04}))
    result = generate(make_client(), chat_request(n=3))
    assert len(result.images) == 3 and len(mocked.calls) == 3
    assert all("n" not in sent_json(mocked, i) for i in range(3))
    usage = result.usage.to_dict()
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (36, 3870)
    assert usage["cost"] == pytest.approx(0.12)


def test_one_picture_per_upstream_call():
    assert make_client().max_n(FLASH) == 1


def test_known_models_are_listed_with_configured_extras():
    settings = ProviderSettings(name="openrouter", api_key=KEY, base_url=BASE, timeout=30,
                                extra_models=("acme/painter",))
    client = OpenRouterClient(settings, Downloader(DownloadPolicy(1, 1, 1, False)))
    assert client.models()[:2] == [FLASH_31, PRO] and client.models()[-1] == "acme/painter"
    assert FLASH not in client.models()  # retired at Google on 2026-10-02
    assert OpenRouterClient.serves("black-forest-labs/flux.2-pro") and not OpenRouterClient.serves("gpt-image-1")


# ----- what is read back -----

def test_images_field_text_and_usage(mocked):
    usage = {"prompt_tokens": 270, "completion_tokens": 1300, "total_tokens": 1570, "cost": 0.039, "is_byok": False,
             "prompt_tokens_details": {"cached_tokens": 0, "note": "x"},
             "completion_tokens_details": {"reasoning_tokens": 10, "image_tokens": 1290}}
    mocked.post(CHAT, json=answer(usage=usage))
    result = make_client().generate(chat_request())
    assert [(i.b64, i.mime) for i in result.images] == [(PNG_B64, "image/png")]
    assert result.text == "Here is your image." and result.finish_reason == "stop"
    assert result.usage.to_dict() == {
        "prompt_tokens": 270, "completion_tokens": 1300, "total_tokens": 1570, "cost": 0.039,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 10, "image_tokens": 1290}}


def test_image_parts_in_content_are_read_with_their_text(mocked):
    content = [{"type": "text", "text": "A kite."}, image_part(JPEG_DATA_URL), {"type": "text", "text": "Enjoy."}]
    mocked.post(CHAT, json=answer(content=content, images=None))
    result = make_client().generate(chat_request())
    assert [(i.b64, i.mime) for i in result.images] == [(JPEG_B64, "image/jpeg")]
    assert result.text == "A kite.\nEnjoy."


def test_the_same_image_in_both_places_is_one_image(mocked):
    content = [{"type": "text", "text": "Here."}, image_part("data:image/jpeg;base64," + PNG_B64)]
    mocked.post(CHAT, json=answer(content=content, images=[PNG_DATA_URL]))
    result = make_client().generate(chat_request())
    assert len(result.images) == 1 and result.images[0].mime == "image/png"


def test_several_images_become_several_results_and_the_text_goes_with_the_first(mocked):
    mocked.post(CHAT, json=answer(images=[PNG_DATA_URL, JPEG_DATA_URL, WEBP_DATA_URL]))
    result = generate(make_client(), chat_request())
    assert [i.mime for i in result.images] == ["image/png", "image/jpeg", "image/webp"]
    assert result.images[0].text == "Here is your image." and result.images[1].text is None


def test_the_mime_type_comes_from_the_bytes_not_the_label(mocked):
    mocked.post(CHAT, json=answer(images=["data:image/png;base64," + WEBP_B64]))
    assert make_client().generate(chat_request()).images[0].mime == "image/webp"


def test_an_image_answered_as_an_http_url_is_downloaded(mocked):
    mocked.post(CHAT, json=answer(images=["http://localhost/result.jpg"]))
    mocked.get("http://localhost/result.jpg", body=JPEG_BYTES, content_type="image/jpeg")
    image = make_client().generate(chat_request()).images[0]
    assert base64.b64decode(image.b64) == JPEG_BYTES and image.mime == "image/jpeg"


def test_an_answered_url_that_cannot_be_fetched_is_502(mocked):
    mocked.post(CHAT, json=answer(images=["http://localhost/gone.png"]))
    mocked.get("http://localhost/gone.png", status=404)
    with pytest.raises(UpstreamError, match="could not fetch") as caught:
        make_client().generate(chat_request())
    assert caught.value.status == 502


def test_a_text_only_answer_is_502_no_image_generated_with_the_models_words(mocked):
    mocked.post(CHAT, json=answer(content="I can only describe a lantern: " + "glow " * 200, images=[]))
    with pytest.raises(UpstreamError) as caught:
        make_client().generate(chat_request())
    assert caught.value.status == 502 and caught.value.code == "no_image_generated"
    assert "I can only describe a lantern" in caught.value.message
    assert len(caught.value.message) < 400


def test_content_filter_without_an_image_is_a_content_filter_result(mocked):
    mocked.post(CHAT, json=answer(content=None, images=None, finish_reason="content_filter",
                                  native="IMAGE_SAFETY"))
    result = make_client().generate(chat_request())
    assert result.images == [] and result.finish_reason == "content_filter"
    assert "IMAGE_SAFETY" in result.text


def test_a_native_block_reason_without_an_image_is_content_filter_too(mocked):
    mocked.post(CHAT, json=answer(content="I can't make that.", images=None, native="PROHIBITED_CONTENT"))
    result = make_client().generate(chat_request())
    assert (result.finish_reason, result.text) == ("content_filter", "I can't make that.")


def test_content_filter_keeps_the_images_that_survived(mocked):
    mocked.post(CHAT, json=answer(images=[PNG_DATA_URL], finish_reason="content_filter"))
    result = make_client().generate(chat_request())
    assert len(result.images) == 1 and result.finish_reason == "content_filter"


@pytest.mark.parametrize("error, raised, status", [
    ({"code": 429, "message": "Rate limit exceeded", "metadata": {"provider_name": "Google"}}, RateLimited, 429),
    ({"code": 502, "message": "Provider returned error"}, UpstreamError, 502),
    ({"message": "Something broke mid-generation"}, UpstreamError, 502),
    ({"code": 403, "message": "Input flagged", "metadata": {"reasons": ["violence"]}}, ProviderRejected, 400),
])
def test_a_200_with_a_top_level_error_is_that_error(mocked, error, raised, status):
    mocked.post(CHAT, json={"error": error, "choices": [{"index": 0, "finish_reason": "error",
                                                        "message": {"role": "assistant", "content": ""}}]})
    with pytest.raises(raised) as caught:
        make_client().generate(chat_request())
    assert caught.value.status == status


def test_a_200_with_finish_reason_error_is_502_with_the_reason(mocked):
    mocked.post(CHAT, json=answer(content="", images=None, finish_reason="error", native="MALFORMED_RESPONSE"))
    with pytest.raises(UpstreamError, match="MALFORMED_RESPONSE") as caught:
        make_client().generate(chat_request())
    assert caught.value.status == 502


def test_a_choice_error_message_is_preferred(mocked):
    mocked.post(CHAT, json=answer(content="", images=None, finish_reason="error", native=None,
                                  error={"code": 502, "message": "Upstream model crashed"}))
    with pytest.raises(UpstreamError, match="Upstream model crashed"):
        make_client().generate(chat_request())


@pytest.mark.parametrize("body", [{"choices": []}, {"id": "gen-1"}, [1, 2], {"choices": ["x"]},
                                  answer(images=["data:image/png;base64,aGVsbG8gd29ybGQ="])])
def test_an_answer_without_a_usable_image_or_choice_is_502(mocked, body):
    mocked.post(CHAT, json=body)
    with pytest.raises(UpstreamError) as caught:
        make_client().generate(chat_request())
    assert caught.value.status == 502


# ----- failure modes -----

def fail(mocked, **kwargs):
    mocked.post(CHAT, **kwargs)
    make_client().generate(chat_request())


def or_error(code, message, **metadata):
    return {"error": {"code": code, "message": message, **({"metadata": metadata} if metadata else {})}}


def test_400_is_the_callers_error_and_prefers_the_raw_provider_message(mocked):
    body = or_error(400, "Provider returned error", provider_name="Google AI Studio",
                    raw='{"error":{"code":400,"message":"Unsupported aspect ratio","status":"INVALID_ARGUMENT"}}')
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json=body)
    assert caught.value.status == 400 and caught.value.code == "400"
    assert caught.value.message.startswith("Google AI Studio: ") and "Unsupported aspect ratio" in caught.value.message


def test_400_without_metadata_keeps_the_message(mocked):
    with pytest.raises(ProviderRejected, match="^image_config.aspect_ratio is invalid$"):
        fail(mocked, status=400, json=or_error(400, "image_config.aspect_ratio is invalid"))


def test_401_is_502_naming_the_variable_and_never_echoing_the_key(mocked):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=401, json=or_error(401, f"No cookie auth credentials found for {KEY}"))
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"
    assert "OPENROUTER_API_KEY" in caught.value.message and KEY not in caught.value.message


def test_402_is_the_gateways_502_saying_the_account_is_out_of_credits(mocked):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=402, json=or_error(402, "Insufficient credits for this request."))
    assert caught.value.status == 502
    assert "out of credits" in caught.value.message and "Insufficient credits" in caught.value.message
    assert not isinstance(caught.value, ProviderRejected)


def test_403_with_moderation_metadata_is_the_callers_400(mocked):
    body = or_error(403, "Your chosen model requires moderation and your input was flagged",
                    reasons=["violence", "harassment"], flagged_input="a very violent lantern",
                    provider_name="OpenAI", model_slug="openai/gpt-5-image")
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=403, json=body)
    assert caught.value.status == 400 and caught.value.code == "moderation_blocked"
    assert "input was flagged" in caught.value.message and "violence, harassment" in caught.value.message


def test_a_plain_403_is_an_auth_failure_naming_the_variable(mocked):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=403, json=or_error(403, "This API key has been disabled"))
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"
    assert "OPENROUTER_API_KEY" in caught.value.message and "disabled" in caught.value.message


def test_408_is_504(mocked):
    with pytest.raises(UpstreamTimeout) as caught:
        fail(mocked, status=408, json=or_error(408, "Request timed out"))
    assert caught.value.status == 504


def test_429_passes_retry_after(mocked):
    with pytest.raises(RateLimited) as caught:
        fail(mocked, status=429, json=or_error(429, "Rate limit exceeded: free-models-per-min"),
             headers={"Retry-After": "5"})
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "5"
    assert "free-models-per-min" in caught.value.message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_502(mocked, status):
    with pytest.raises(UpstreamError, match=f"HTTP {status}") as caught:
        fail(mocked, status=status, json=or_error(status, "Internal Server Error"))
    assert caught.value.status == 502


def test_5xx_with_an_html_body_is_502(mocked):
    with pytest.raises(UpstreamError, match="HTTP 503"):
        fail(mocked, status=503, body="<html>Service Unavailable</html>", content_type="text/html")


def test_a_key_inside_a_raw_message_is_redacted(mocked):
    body = or_error(500, "Provider error", raw=f"upstream said: bad key {KEY} / sk-other-secret-123456")
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=500, json=body)
    assert KEY not in caught.value.message and "sk-other-secret" not in caught.value.message


def test_read_timeout_is_504(mocked):
    with pytest.raises(UpstreamTimeout) as caught:
        fail(mocked, body=requests.ReadTimeout("read timed out"))
    assert caught.value.status == 504


def test_connection_reset_is_502(mocked):
    error = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(UpstreamError, match="connection reset") as caught:
        fail(mocked, body=error)
    assert caught.value.status == 502


def test_a_200_that_is_not_json_is_502(mocked):
    with pytest.raises(UpstreamError, match="not JSON"):
        fail(mocked, body=": OPENROUTER PROCESSING\n\n", content_type="text/event-stream")
