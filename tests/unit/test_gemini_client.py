"""The Gemini client: the exact generateContent / :predict bodies it sends, every answer shape, every failure."""
import base64

import pytest
import requests
from responses import matchers

from app import schemas
from app.chat_request import read_chat_request
from app.core.errors import InvalidRequest, ModelNotFound, ProviderRejected, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers.gemini import GeminiClient
from tests.conftest import GEMINI_BASE, GEMINI_KEY
from tests.support.upstream_mock import sent
from tests.support.images import JPEG_B64, JPEG_BYTES, PNG_B64, PNG_BYTES, PNG_DATA_URL

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"
IMAGEN = "imagen-4.0-generate-001"
ENDPOINT = f"{GEMINI_BASE}/v1beta/models/{FLASH}:generateContent"
PRO_ENDPOINT = f"{GEMINI_BASE}/v1beta/models/{PRO}:generateContent"
PREDICT = f"{GEMINI_BASE}/v1beta/models/{IMAGEN}:predict"
MODALITIES = {"responseModalities": ["TEXT", "IMAGE"]}


def make_client(base: str = GEMINI_BASE) -> GeminiClient:
    settings = ProviderSettings(name="gemini", api_key=GEMINI_KEY, base_url=base, timeout=30)
    downloader = Downloader(DownloadPolicy(max_bytes=1 << 20, timeout=5, connect_timeout=2, allow_private=True))
    return GeminiClient(settings, downloader, connect_timeout=2)


def chat(messages, model=FLASH, tool=None, n=1) -> ImageRequest:
    """The ImageRequest the chat surface builds: validated by the real schema, read by the real reader."""
    body = {"model": model, "messages": messages, "modalities": ["image", "text"], "n": n}
    if tool is not None:
        body["tools"] = [{"type": "image_generation", "image_generation": tool}]
    return read_chat_request(schemas.load(schemas.ChatRequestSchema(), body)).request


def ask(prompt="a fox lantern", **kwargs) -> ImageRequest:
    return chat([{"role": "user", "content": prompt}], **kwargs)


def answer(*parts, finish="STOP", **extra) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1290, "totalTokenCount": 1299},
            **extra}


def inline(b64=PNG_B64, mime="image/png") -> dict:
    return {"inlineData": {"mimeType": mime, "data": b64}}


def run(mocked, request, reply=None, url=ENDPOINT, **kwargs):
    mocked.post(url, json=reply if reply is not None else answer(inline()), **kwargs)
    return make_client().generate(request)


def body_sent(mocked, index=-1) -> dict:
    return sent(mocked.calls[index]).json


# ----- what is sent -----

def test_a_prompt_becomes_one_user_turn_with_the_key_header_and_no_authorization(mocked):
    expected = {"contents": [{"role": "user", "parts": [{"text": "a fox lantern"}]}], "generationConfig": MODALITIES}
    mocked.post(ENDPOINT, json=answer(inline()), match=[matchers.json_params_matcher(expected, strict_match=True),
                                                        matchers.header_matcher({"x-goog-api-key": GEMINI_KEY})])
    result = make_client().generate(ask())
    headers = sent(mocked.calls[0]).headers
    assert "authorization" not in headers
    assert headers["content-type"] == "application/json"
    assert result.dropped == []


def test_the_whole_conversation_is_translated(mocked):
    mocked.get("http://localhost/cat.jpg", body=JPEG_BYTES, content_type="image/jpeg")
    messages = [
        {"role": "system", "content": "You draw in watercolour."},
        {"role": "developer", "content": [{"type": "text", "text": "Keep it"}, {"type": "text", "text": "simple."}]},
        {"role": "user", "content": [{"type": "text", "text": "a cat"},
                                     {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Here it is."},
                                          {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]},
        {"role": "tool", "content": "ignored tool output"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "now like this one"},
                                     {"type": "image_url", "image_url": {"url": "http://localhost/cat.jpg"}}]},
        {"role": "user", "content": "and add a hat"},
    ]
    run(mocked, chat(messages))
    png = {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}
    jpeg = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG_BYTES).decode()}}
    assert body_sent(mocked) == {
        "contents": [
            {"role": "user", "parts": [{"text": "a cat"}, png]},
            {"role": "model", "parts": [{"text": "Here it is."}, png]},
            {"role": "user", "parts": [{"text": "now like this one"}, jpeg]},
            {"role": "user", "parts": [{"text": "and add a hat"}]},
        ],
        "systemInstruction": {"parts": [{"text": "You draw in watercolour.\n\nKeep it\nsimple."}]},
        "generationConfig": MODALITIES,
    }


def test_an_earlier_tool_form_picture_becomes_one_model_turn_image(mocked):
    picture = {"id": "ig_1", "type": "image_generation",
               "image_generation": {"status": "completed", "result": JPEG_B64, "output_format": "jpeg"}}
    run(mocked, chat([{"role": "user", "content": "a kite"},
                      {"role": "assistant", "content": "Here it is.", "tool_calls": [picture]},
                      {"role": "user", "content": "now purple"}]))
    assert body_sent(mocked)["contents"][1] == {
        "role": "model", "parts": [{"text": "Here it is."}, inline(JPEG_B64, "image/jpeg")]}


def test_model_turns_after_the_last_user_message_are_not_sent(mocked):
    run(mocked, chat([{"role": "user", "content": "a fox"}, {"role": "assistant", "content": "Sure!"},
                      {"role": "system", "content": "Be brief."}]))
    body = body_sent(mocked)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a fox"}]}]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_a_refused_image_download_is_the_callers_400_before_any_generation(mocked):
    mocked.get("http://localhost/page", body=b"<html>hi</html>", content_type="text/html")
    page = {"type": "image_url", "image_url": {"url": "http://localhost/page"}}
    request = chat([{"role": "user", "content": "x"},
                    {"role": "user", "content": [{"type": "text", "text": "edit"}, page]}])
    with pytest.raises(InvalidRequest, match="localhost") as caught:
        make_client().generate(request)
    assert caught.value.param == "messages[1].content[1].image_url.url"
    assert [call.request.method for call in mocked.calls] == ["GET"]


def test_without_a_conversation_the_prompt_and_its_images_are_sent(mocked):
    images = (ImageRef("data:", "image", PNG_BYTES, "image/png"),)
    run(mocked, ImageRequest(FLASH, "add a hat", images=images))
    assert body_sent(mocked)["contents"] == [{"role": "user", "parts": [
        {"text": "add a hat"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}]


def test_a_base_url_that_already_names_the_api_version_is_not_doubled(mocked):
    mocked.post(ENDPOINT, json=answer(inline()))
    result = make_client(GEMINI_BASE + "/v1beta").generate(ask())
    assert mocked.calls[0].request.url == ENDPOINT  # /v1beta once, not /v1beta/v1beta
    assert len(result.images) == 1


@pytest.mark.parametrize("size, ratio", [("1024x1024", "1:1"), ("1536x1024", "3:2"), ("1024x1536", "2:3"),
                                         ("1792x1024", "16:9"), ("1024x1792", "9:16"), ("256x256", "1:1"),
                                         ("3000x1000", "21:9")])
def test_sizes_become_the_nearest_aspect_ratio(mocked, size, ratio):
    result = run(mocked, ask(tool={"size": size}))
    assert body_sent(mocked)["generationConfig"] == {**MODALITIES, "imageConfig": {"aspectRatio": ratio}}
    assert result.dropped == []


def test_auto_size_sends_no_image_config(mocked):
    run(mocked, ask(tool={"size": "auto", "quality": "auto"}))
    assert body_sent(mocked)["generationConfig"] == MODALITIES


@pytest.mark.parametrize("quality, tier", [("low", "1K"), ("standard", "1K"), ("medium", "2K"), ("high", "4K"),
                                           ("hd", "4K")])
def test_quality_becomes_image_size_on_gemini_3(mocked, quality, tier):
    result = run(mocked, ask(model=PRO, tool={"quality": quality, "size": "1536x1024"}), url=PRO_ENDPOINT)
    assert body_sent(mocked)["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2", "imageSize": tier}
    assert result.dropped == []


def test_a_tier_size_wins_over_quality_on_gemini_3(mocked):
    result = run(mocked, ask(model=PRO, tool={"size": "4K", "quality": "low"}), url=PRO_ENDPOINT)
    assert body_sent(mocked)["generationConfig"]["imageConfig"] == {"imageSize": "4K"}
    assert result.dropped == ["quality"]


@pytest.mark.parametrize("tool, dropped", [({"quality": "high"}, ["quality"]), ({"quality": "medium"}, ["quality"]),
                                           ({"size": "2K"}, ["size"]), ({"quality": "low"}, []),
                                           ({"size": "1K"}, [])])
def test_gemini_2_5_flash_makes_1k_only_and_names_what_asked_for_more(mocked, tool, dropped):
    result = run(mocked, ask(tool=tool))
    assert body_sent(mocked)["generationConfig"] == MODALITIES
    assert result.dropped == dropped


def test_parameters_gemini_cannot_honour_are_named_and_partial_images_ignored(mocked):
    tool = {"background": "opaque", "output_format": "jpeg", "output_compression": 70, "moderation": "low",
            "input_fidelity": "high", "watermark": False, "partial_images": 2, "size": "1024x1024"}
    result = run(mocked, ask(tool=tool))
    assert result.dropped == ["background", "input_fidelity", "moderation", "output_compression", "output_format",
                              "watermark"]
    assert body_sent(mocked) == {"contents": [{"role": "user", "parts": [{"text": "a fox lantern"}]}],
                                 "generationConfig": {**MODALITIES, "imageConfig": {"aspectRatio": "1:1"}}}


def test_a_mask_is_a_400_without_any_call(mocked):
    request = chat([{"role": "user", "content": [{"type": "text", "text": "x"},
                                                 {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]}],
                   tool={"input_image_mask": {"image_url": PNG_DATA_URL}})
    with pytest.raises(InvalidRequest, match="mask") as caught:
        make_client().generate(request)
    assert caught.value.param == "tools[0].image_generation.input_image_mask.image_url"
    assert len(mocked.calls) == 0


def test_generate_content_models_fan_out_for_n(mocked):
    mocked.post(ENDPOINT, json=answer({"text": "one"}, inline()))
    client = make_client()
    assert client.max_n(FLASH) == client.max_n(PRO) == 1
    result = generate(client, ask(n=3))
    assert len(mocked.calls) == 3 and len(result.images) == 3
    assert [image.text for image in result.images] == ["one"] * 3
    assert result.usage.completion_tokens == 3 * 1290


def test_known_models():
    """Current models only: gemini-2.5-flash-image and Imagen are retired (a relay may still serve them)."""
    assert make_client().models() == ["gemini-3.1-flash-image", "gemini-3-pro-image", PRO, "gemini-3.1-flash-image-preview"]


# ----- answers -----

def test_camel_case_answer_with_text_and_usage_details(mocked):
    reply = answer({"text": "Here is the scene."}, inline())
    reply["usageMetadata"] = {
        "promptTokenCount": 270, "candidatesTokenCount": 1301, "totalTokenCount": 1571,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}, {"modality": "IMAGE", "tokenCount": 258}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}, {"modality": "TEXT", "tokenCount": 11}]}
    result = run(mocked, ask(), reply)
    assert [(image.b64, image.mime) for image in result.images] == [(PNG_B64, "image/png")]
    assert (result.text, result.finish_reason) == ("Here is the scene.", "stop")
    assert result.usage.to_dict() == {
        "prompt_tokens": 270, "completion_tokens": 1301, "total_tokens": 1571,
        "prompt_tokens_details": {"text_tokens": 12, "image_tokens": 258},
        "completion_tokens_details": {"image_tokens": 1290, "text_tokens": 11}}


def test_snake_case_inline_data_is_read_too(mocked):
    result = run(mocked, ask(), answer({"inline_data": {"mime_type": "image/png", "data": PNG_B64}}))
    assert result.images[0].b64 == PNG_B64


def test_the_mime_type_is_sniffed_not_taken_from_the_answer(mocked):
    result = run(mocked, ask(), answer(inline(JPEG_B64, "image/png")))
    assert result.images[0].mime == "image/jpeg"


def test_thought_parts_are_skipped(mocked):
    reply = answer({"text": "Let me think about foxes", "thought": True}, inline(JPEG_B64) | {"thought": True},
                   {"text": "Done."}, inline() | {"thoughtSignature": "c2ln"})
    result = run(mocked, ask(), reply)
    assert [image.mime for image in result.images] == ["image/png"]
    assert result.text == "Done."


def test_several_images_become_several_generated_images(mocked):
    result = run(mocked, ask(), answer({"text": "Two takes."}, inline(), {"text": "and"}, inline(JPEG_B64)))
    assert [image.mime for image in result.images] == ["image/png", "image/jpeg"]
    assert result.text == "Two takes.\nand"


def test_thoughts_tokens_count_as_completion(mocked):
    reply = answer(inline())
    reply["usageMetadata"] = {"promptTokenCount": 10, "candidatesTokenCount": 1290, "thoughtsTokenCount": 200,
                              "totalTokenCount": 1500}
    usage = run(mocked, ask(), reply).usage.to_dict()
    assert usage == {"prompt_tokens": 10, "completion_tokens": 1490, "total_tokens": 1500,
                     "completion_tokens_details": {"reasoning_tokens": 200}}


def test_a_blocked_prompt_is_a_content_filter_result_without_an_image(mocked):
    reply = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "Not allowed."},
             "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}
    result = run(mocked, ask(), reply)
    assert (result.images, result.finish_reason) == ([], "content_filter")
    assert result.text == "gemini blocked the prompt (blockReason PROHIBITED_CONTENT): Not allowed."
    assert result.usage.prompt_tokens == 9


def test_image_safety_is_a_content_filter_result_naming_the_reason(mocked):
    reply = answer({"text": "I can't make that."}, finish="IMAGE_SAFETY")
    reply["candidates"][0]["finishMessage"] = "Unable to show the generated image."
    result = run(mocked, ask(), reply)
    assert (result.images, result.finish_reason) == ([], "content_filter")
    assert result.text == ("gemini withheld the image (finishReason IMAGE_SAFETY): Unable to show the generated "
                           "image.\nI can't make that.")


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
                                    "RECITATION", "IMAGE_RECITATION"])
def test_every_block_reason_is_content_filter(mocked, reason):
    result = run(mocked, ask(), answer(finish=reason))
    assert result.finish_reason == "content_filter" and reason in result.text and not result.images


@pytest.mark.parametrize("reason", ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "STOP"])
def test_no_image_is_a_502_quoting_the_reason_and_the_model(mocked, reason):
    with pytest.raises(UpstreamError) as caught:
        run(mocked, ask(), answer({"text": "I would rather describe it: a fox."}, finish=reason))
    assert caught.value.status == 502 and caught.value.code == "no_image_generated"
    assert f"finishReason {reason}" in caught.value.message
    assert "I would rather describe it: a fox." in caught.value.message


def test_the_models_words_in_a_no_image_error_are_cut_short(mocked):
    with pytest.raises(UpstreamError) as caught:
        run(mocked, ask(), answer({"text": "blah " * 200}, finish="NO_IMAGE"))
    assert len(caught.value.message) < 400 and caught.value.message.endswith("…")


def test_max_tokens_with_an_image_is_length(mocked):
    result = run(mocked, ask(), answer(inline(), finish="MAX_TOKENS"))
    assert result.finish_reason == "length" and len(result.images) == 1


def test_max_tokens_without_an_image_is_502(mocked):
    with pytest.raises(UpstreamError, match="MAX_TOKENS") as caught:
        run(mocked, ask(), answer({"text": "Once upon"}, finish="MAX_TOKENS"))
    assert caught.value.code == "no_image_generated"


@pytest.mark.parametrize("reply", [{}, {"candidates": []}, [1, 2], {"candidates": [{"content": {}}]},
                                   answer(inline("aGVsbG8=", "image/png"))])
def test_answers_without_a_usable_image_are_502(mocked, reply):
    with pytest.raises(UpstreamError):
        run(mocked, ask(), reply)


# ----- failures -----

def fail(mocked, status, body=None, **kwargs):
    if body is not None and not isinstance(body, (str, Exception)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["body"] = body
    mocked.post(ENDPOINT, status=status, **kwargs)
    make_client().generate(ask())


def google(code, status, message, **extra):
    return {"error": {"code": code, "message": message, "status": status, **extra}}


KEY_INVALID = google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
     "metadata": {"service": "generativelanguage.googleapis.com"}}])


def test_invalid_argument_is_the_callers_400_with_googles_message(mocked):
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, 400, google(400, "INVALID_ARGUMENT", "Unsupported aspect ratio 7:1"))
    assert (caught.value.status, caught.value.code) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "Unsupported aspect ratio 7:1"


@pytest.mark.parametrize("status, body", [
    (400, KEY_INVALID),
    (400, google(400, "INVALID_ARGUMENT", "API key expired. Please renew the API key.")),
    (401, google(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")),
], ids=["API_KEY_INVALID", "expired", "UNAUTHENTICATED"])
def test_a_bad_key_is_a_502_naming_the_variable_never_the_callers_fault(mocked, status, body):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status, body)
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"
    assert "GEMINI_API_KEY" in caught.value.message
    assert GEMINI_KEY not in caught.value.message


def test_permission_denied_is_a_502_keeping_googles_reason_without_the_key(mocked):
    body = google(403, "PERMISSION_DENIED", f"Consumer 'api_key:{GEMINI_KEY}' has been suspended.")
    with pytest.raises(UpstreamError, match="has been suspended") as caught:
        fail(mocked, 403, body)
    assert caught.value.status == 502 and "GEMINI_API_KEY" in caught.value.message
    assert GEMINI_KEY not in caught.value.message and "AIza" not in caught.value.message


def test_an_unknown_model_is_a_404_model_not_found(mocked):
    model = "gemini-3.9-flash-image-experimental"
    body = google(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta")
    mocked.post(f"{GEMINI_BASE}/v1beta/models/{model}:generateContent", status=404, json=body)
    with pytest.raises(ModelNotFound, match="is not found") as caught:
        make_client().generate(ask(model=model))
    assert (caught.value.status, caught.value.param, caught.value.code) == (404, "model", "model_not_found")


def test_failed_precondition_is_the_operators_502(mocked):
    body = google(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
    with pytest.raises(UpstreamError, match="location is not supported") as caught:
        fail(mocked, 400, body)
    assert caught.value.status == 502 and "GEMINI_API_KEY" in caught.value.message


def test_quota_is_429_passing_retry_after(mocked):
    with pytest.raises(RateLimited, match="Quota exceeded") as caught:
        fail(mocked, 429, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded for this model."),
             headers={"Retry-After": "9"})
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "9"


def test_quota_without_the_header_takes_the_retry_info_delay(mocked):
    body = google(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", details=[
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.2s"}])
    with pytest.raises(RateLimited) as caught:
        fail(mocked, 429, body)
    assert caught.value.headers["Retry-After"] == "38"


@pytest.mark.parametrize("status, word", [(500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_server_errors_are_502(mocked, status, word):
    with pytest.raises(UpstreamError, match=f"HTTP {status}") as caught:
        fail(mocked, status, google(status, word, "The model is overloaded. Please try again later."))
    assert caught.value.status == 502


def test_html_server_error_is_502(mocked):
    with pytest.raises(UpstreamError, match="HTTP 502"):
        fail(mocked, 502, "<html>Bad Gateway</html>", content_type="text/html")


def test_deadline_exceeded_is_504(mocked):
    with pytest.raises(UpstreamTimeout, match="Deadline expired") as caught:
        fail(mocked, 504, google(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."))
    assert caught.value.status == 504


def test_read_timeout_is_504(mocked):
    with pytest.raises(UpstreamTimeout):
        fail(mocked, 200, requests.ReadTimeout("read timed out"))


def test_connection_reset_is_502(mocked):
    error = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(UpstreamError, match="connection reset") as caught:
        fail(mocked, 200, error)
    assert caught.value.status == 502


def test_200_that_is_not_json_is_502(mocked):
    with pytest.raises(UpstreamError, match="not JSON"):
        fail(mocked, 200, "<html>proxy page</html>", content_type="text/html")


# ----- Imagen :predict -----

def predictions(count=1, filtered=()) -> dict:
    items = [{"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"} for _ in range(count)]
    return {"predictions": items + [{"raiFilteredReason": reason} for reason in filtered]}


def test_imagen_sends_predict_with_native_sample_count_and_mapped_options(mocked):
    expected = {"instances": [{"prompt": "a whale teapot"}],
                "parameters": {"sampleCount": 3, "includeRaiReason": True, "aspectRatio": "16:9",
                               "sampleImageSize": "2K",
                               "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80}}}
    mocked.post(PREDICT, json=predictions(3), match=[matchers.json_params_matcher(expected, strict_match=True),
                                                     matchers.header_matcher({"x-goog-api-key": GEMINI_KEY})])
    tool = {"size": "1792x1024", "quality": "medium", "output_format": "jpeg", "output_compression": 80,
            "background": "opaque", "watermark": True}
    client = make_client()
    assert client.max_n(IMAGEN) == 4
    result = generate(client, ask("a whale teapot", model=IMAGEN, tool=tool, n=3))
    assert len(mocked.calls) == 1 and len(result.images) == 3
    assert result.dropped == ["background", "watermark"]
    assert result.usage.to_dict() == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                                      "generated_images": 3}


def test_imagen_splits_a_large_n_into_calls_of_at_most_four(mocked):
    mocked.post(PREDICT, json=predictions(4))
    mocked.post(PREDICT, json=predictions(2))
    result = generate(make_client(), ask(model=IMAGEN, n=6))
    counts = sorted(sent(call).json["parameters"]["sampleCount"] for call in mocked.calls)
    assert counts == [2, 4] and len(result.images) == 6


@pytest.mark.parametrize("tool, dropped", [({"quality": "high"}, ["quality"]), ({"size": "4K"}, ["size"]),
                                           ({"output_format": "webp", "output_compression": 50},
                                            ["output_compression", "output_format"])])
def test_imagen_names_what_it_cannot_make(mocked, tool, dropped):
    result = run(mocked, ask(model=IMAGEN, tool=tool), predictions(), url=PREDICT)
    assert body_sent(mocked)["parameters"] == {"sampleCount": 1, "includeRaiReason": True}
    assert result.dropped == dropped


def test_imagen_3_takes_no_sample_image_size(mocked):
    url = f"{GEMINI_BASE}/v1beta/models/imagen-3.0-generate-002:predict"
    result = run(mocked, ask(model="imagen-3.0-generate-002", tool={"quality": "medium"}), predictions(), url=url)
    assert "sampleImageSize" not in body_sent(mocked)["parameters"] and result.dropped == ["quality"]


def test_imagen_filtered_samples_are_content_filter(mocked):
    result = run(mocked, ask(model=IMAGEN, n=2), predictions(1, ["Filtered: person"]), url=PREDICT)
    assert result.finish_reason == "content_filter" and len(result.images) == 1
    assert result.text == "gemini filtered 1 of 2 images (raiFilteredReason): Filtered: person"


def test_imagen_all_filtered_is_content_filter_without_images(mocked):
    result = run(mocked, ask(model=IMAGEN), predictions(0, ["Filtered: violence"]), url=PREDICT)
    assert (result.images, result.finish_reason) == ([], "content_filter")
    assert "Filtered: violence" in result.text


def test_imagen_empty_answer_is_502(mocked):
    with pytest.raises(UpstreamError):
        run(mocked, ask(model=IMAGEN), {"predictions": []}, url=PREDICT)


def test_imagen_cannot_edit(mocked):
    request = chat([{"role": "user", "content": [{"type": "text", "text": "x"},
                                                 {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]}],
                   model=IMAGEN)
    with pytest.raises(InvalidRequest, match="text only") as caught:
        make_client().generate(request)
    assert caught.value.param == "messages[0].content[1].image_url.url"
