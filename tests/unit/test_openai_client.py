"""The OpenAI Images client: the exact bodies it sends, and every way the upstream can fail."""
import base64

import pytest
import requests
from responses import matchers

from app.core.errors import InvalidRequest, ProviderRejected, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers.openai import OpenAIClient
from tests.support.upstream_mock import sent
from tests.support.images import JPEG_BYTES, PNG_B64, PNG_BYTES, WEBP_B64

KEY = "sk-test-provider-secret-9a8b7c6d5e"
BASE = "https://openai.test/v1"
GENERATIONS = BASE + "/images/generations"
EDITS = BASE + "/images/edits"


def make_client(**options) -> OpenAIClient:
    settings = ProviderSettings(name="openai", api_key=KEY, base_url=BASE, timeout=30, options=options)
    downloader = Downloader(DownloadPolicy(max_bytes=1 << 20, timeout=5, connect_timeout=2, allow_private=True))
    return OpenAIClient(settings, downloader, connect_timeout=2)


def ok(n=1, **extra):
    return {"created": 1767225600, "data": [{"b64_json": PNG_B64} for _ in range(n)], **extra}


def test_gpt_image_generation_sends_every_mapped_parameter_and_no_response_format(mocked):
    params = {"size": "1536x1024", "quality": "hd", "background": "transparent", "moderation": "low",
              "output_format": "webp", "output_compression": 80}
    expected = {"model": "gpt-image-1", "prompt": "a fox lantern", "n": 3, "user": "u-42", "size": "1536x1024",
                "quality": "high", "background": "transparent", "moderation": "low", "output_format": "webp",
                "output_compression": 80}
    mocked.post(GENERATIONS, json=ok(3), match=[matchers.json_params_matcher(expected, strict_match=True),
                                                 matchers.header_matcher({"Authorization": f"Bearer {KEY}"})])
    result = make_client().generate(ImageRequest("gpt-image-1", "a fox lantern", n=3, params=params, user="u-42"))
    assert len(result.images) == 3
    assert result.dropped == []


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2",
                                   "chatgpt-image-latest"])
def test_no_gpt_image_model_gets_response_format(mocked, model):
    mocked.post(GENERATIONS, json=ok())
    make_client().generate(ImageRequest(model, "x"))
    assert "response_format" not in sent(mocked.calls[0]).json


@pytest.mark.parametrize("quality, sent_quality", [("hd", "high"), ("standard", "medium"), ("low", "low"),
                                                   ("auto", "auto")])
def test_gpt_quality_mapping(mocked, quality, sent_quality):
    mocked.post(GENERATIONS, json=ok())
    make_client().generate(ImageRequest("gpt-image-1", "x", params={"quality": quality}))
    assert sent(mocked.calls[0]).json["quality"] == sent_quality


def test_dall_e_3_asks_for_b64_maps_quality_and_drops_gpt_only_params(mocked):
    expected = {"model": "dall-e-3", "prompt": "x", "response_format": "b64_json", "size": "1792x1024",
                "quality": "hd"}
    mocked.post(GENERATIONS, json=ok(1, data=[{"b64_json": PNG_B64, "revised_prompt": "a better x"}]),
                match=[matchers.json_params_matcher(expected, strict_match=True)])
    params = {"size": "1792x1024", "quality": "high", "background": "opaque", "output_format": "png",
              "watermark": True, "partial_images": 2}
    result = make_client().generate(ImageRequest("dall-e-3", "x", params=params))
    assert result.dropped == ["background", "output_format", "watermark"]  # partial_images: ignored, not dropped
    assert result.images[0].revised_prompt == "a better x"


def test_dall_e_3_has_no_native_n_so_the_gateway_fans_out(mocked):
    mocked.post(GENERATIONS, json=ok())
    client = make_client()
    result = generate(client, ImageRequest("dall-e-3", "x", n=3))
    assert len(result.images) == 3
    assert len(mocked.calls) == 3
    assert all("n" not in sent(call).json for call in mocked.calls)


def test_dall_e_2_drops_quality_it_cannot_honour(mocked):
    mocked.post(GENERATIONS, json=ok(), match=[matchers.json_params_matcher(
        {"model": "dall-e-2", "prompt": "x", "response_format": "b64_json", "size": "512x512"}, strict_match=True)])
    result = make_client().generate(ImageRequest("dall-e-2", "x", params={"quality": "high", "size": "512x512"}))
    assert result.dropped == ["quality"]


@pytest.mark.parametrize("model, size, listed", [
    ("gpt-image-1", "512x512", "1024x1024, 1536x1024, 1024x1536, auto"),
    ("gpt-image-1", "2K", "1024x1024"),
    ("dall-e-3", "512x512", "1024x1024, 1792x1024, 1024x1792"),
    ("dall-e-2", "1536x1024", "256x256, 512x512, 1024x1024"),
    ("gpt-image-2", "2000x1000", "multiple of 16"),
    ("gpt-image-2", "3840x3840", "3840x2160"),
    ("gpt-image-2", "4096x1024", "ratio between 1:3 and 3:1"),
])
def test_unsupported_size_is_400_listing_valid_sizes_without_calling_upstream(mocked, model, size, listed):
    request = ImageRequest(model, "x", params={"size": size}, param_prefix="tools[0].image_generation.")
    with pytest.raises(InvalidRequest, match=listed) as caught:
        make_client().generate(request)
    assert caught.value.param == "tools[0].image_generation.size"
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("model, size, upstream", [("gpt-image-2", "2048x1152", "2048x1152"),
                                                   ("gpt-image-2", "2K", "2048x2048"),
                                                   ("gpt-image-1", "1K", "1024x1024"),
                                                   ("gpt-image-1", "auto", "auto")])
def test_sizes_spelled_for_openai(mocked, model, size, upstream):
    mocked.post(GENERATIONS, json=ok())
    make_client().generate(ImageRequest(model, "x", params={"size": size}))
    assert sent(mocked.calls[0]).json["size"] == upstream


def test_dall_e_auto_size_is_left_to_openai(mocked):
    mocked.post(GENERATIONS, json=ok())
    make_client().generate(ImageRequest("dall-e-3", "x", params={"size": "auto"}))
    assert "size" not in sent(mocked.calls[0]).json


def test_prompt_longer_than_the_model_takes_is_400(mocked):
    with pytest.raises(InvalidRequest, match="1000"):
        make_client().generate(ImageRequest("dall-e-2", "x" * 1001, prompt_param="messages[0].content"))


def test_edit_sends_multipart_image_array_with_real_types_and_mask(mocked):
    mocked.post(EDITS, json=ok())
    images = (ImageRef("data:...", "messages[0].content[1].image_url.url", PNG_BYTES, "image/png"),
              ImageRef("data:...", "messages[0].content[2].image_url.url", JPEG_BYTES, "image/jpeg"))
    mask = ImageRef("data:...", "tools[0].image_generation.input_image_mask.image_url", PNG_BYTES, "image/png")
    params = {"size": "1024x1024", "input_fidelity": "high", "moderation": "low", "quality": "low"}
    result = make_client().generate(ImageRequest("gpt-image-1", "put it on a table", n=2, params=params,
                                                 images=images, mask=mask))
    request = sent(mocked.calls[0])
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.fields() == {"model": "gpt-image-1", "prompt": "put it on a table", "n": "2",
                                "size": "1024x1024", "input_fidelity": "high", "quality": "low"}
    files = request.files("image[]")
    assert [(f.filename, f.content_type, f.data) for f in files] == [
        ("image_0.png", "image/png", PNG_BYTES), ("image_1.jpg", "image/jpeg", JPEG_BYTES)]
    assert [(f.filename, f.content_type) for f in request.files("mask")] == [("mask.png", "image/png")]
    assert result.dropped == ["moderation"]  # multipart edits take no moderation


def test_edit_downloads_http_input_images(mocked):
    mocked.get("http://localhost/cat.jpg", body=JPEG_BYTES, content_type="image/jpeg")
    mocked.post(EDITS, json=ok())
    ref = ImageRef("http://localhost/cat.jpg", "messages[0].content[1].image_url.url")
    make_client().generate(ImageRequest("gpt-image-1.5", "x", images=(ref,)))
    files = sent(mocked.calls[1]).files("image[]")
    assert files[0].data == JPEG_BYTES and files[0].content_type == "image/jpeg"


def test_edit_with_a_download_that_is_not_an_image_is_the_clients_400(mocked):
    mocked.get("http://localhost/page", body=b"<html>hi</html>", content_type="text/html")
    ref = ImageRef("http://localhost/page", "messages[0].content[1].image_url.url")
    with pytest.raises(InvalidRequest, match="localhost") as caught:
        make_client().generate(ImageRequest("gpt-image-1", "x", images=(ref,)))
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_dall_e_2_edit_uses_the_single_image_field(mocked):
    mocked.post(EDITS, json=ok())
    ref = ImageRef("data:", "p", PNG_BYTES, "image/png")
    make_client().generate(ImageRequest("dall-e-2", "x", images=(ref,)))
    request = sent(mocked.calls[0])
    assert len(request.files("image")) == 1 and not request.files("image[]")
    assert request.fields()["response_format"] == "b64_json"


@pytest.mark.parametrize("model, images, message", [
    ("dall-e-3", 1, "cannot edit"),
    ("dall-e-2", 2, "at most 1"),
    ("gpt-image-1", 17, "at most 16"),
])
def test_edit_limits(mocked, model, images, message):
    refs = tuple(ImageRef("data:", f"p{i}", PNG_BYTES, "image/png") for i in range(images))
    with pytest.raises(InvalidRequest, match=message):
        make_client().generate(ImageRequest(model, "x", images=refs))


def test_usage_is_mapped_with_details(mocked):
    mocked.post(GENERATIONS, json=ok(usage={"input_tokens": 21, "output_tokens": 1056, "total_tokens": 1077,
                                            "input_tokens_details": {"text_tokens": 21, "image_tokens": 0}}))
    usage = make_client().generate(ImageRequest("gpt-image-1", "x")).usage.to_dict()
    assert usage == {"prompt_tokens": 21, "completion_tokens": 1056, "total_tokens": 1077,
                     "prompt_tokens_details": {"text_tokens": 21, "image_tokens": 0}}


def test_mime_is_sniffed_not_taken_from_output_format(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"b64_json": WEBP_B64}], output_format="png"))
    assert make_client().generate(ImageRequest("gpt-image-1", "x")).images[0].mime == "image/webp"


def test_url_answers_are_downloaded(mocked):
    mocked.post(GENERATIONS, json={"created": 1, "data": [{"url": "http://localhost/result.png"}]})
    mocked.get("http://localhost/result.png", body=PNG_BYTES, content_type="image/png")
    image = make_client().generate(ImageRequest("dall-e-2", "x")).images[0]
    assert base64.b64decode(image.b64) == PNG_BYTES


def test_organization_and_project_headers_from_options(mocked):
    mocked.post(GENERATIONS, json=ok())
    make_client(organization="org-1", project="proj-1").generate(ImageRequest("gpt-image-1", "x"))
    headers = sent(mocked.calls[0]).headers
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-1")
    assert headers["authorization"] == f"Bearer {KEY}"


# ----- failure modes -----

def fail(mocked, **kwargs):
    mocked.post(GENERATIONS, **kwargs)
    make_client().generate(ImageRequest("gpt-image-1", "x"))


def test_moderation_block_is_the_callers_400_with_the_providers_message(mocked):
    body = {"error": {"message": "Your request was rejected by the safety system.",
                      "type": "image_generation_user_error", "param": None, "code": "moderation_blocked"}}
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json=body)
    assert caught.value.status == 400
    assert caught.value.code == "moderation_blocked"
    assert caught.value.message == "Your request was rejected by the safety system."


def test_upstream_400_keeps_its_param(mocked):
    body = {"error": {"message": "Invalid value for size", "type": "invalid_request_error", "param": "size",
                      "code": "invalid_value"}}
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json=body)
    assert (caught.value.param, caught.value.code) == ("size", "invalid_value")


def test_upstream_401_is_a_502_naming_the_variable_and_never_echoing_the_key(mocked):
    body = {"error": {"message": f"Incorrect API key provided: {KEY[:8]}*****{KEY[-4:]}", "type":
                      "invalid_request_error", "code": "invalid_api_key"}}
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=401, json=body)
    assert caught.value.status == 502
    assert "OPENAI_API_KEY" in caught.value.message
    assert KEY[:8] not in caught.value.message and KEY[-4:] not in caught.value.message


def test_upstream_403_is_a_502_with_the_reason(mocked):
    body = {"error": {"message": "Your organization must be verified to use gpt-image-1."}}
    with pytest.raises(UpstreamError, match="must be verified") as caught:
        fail(mocked, status=403, json=body)
    assert caught.value.status == 502


@pytest.mark.parametrize("headers, seconds", [({"Retry-After": "7"}, "7"), ({"retry-after-ms": "1500"}, "2"),
                                              ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "0"), ({}, None)])
def test_upstream_429_passes_retry_after(mocked, headers, seconds):
    with pytest.raises(RateLimited) as caught:
        fail(mocked, status=429, json={"error": {"message": "Rate limit reached"}}, headers=headers)
    assert caught.value.status == 429
    assert caught.value.headers.get("Retry-After") == seconds


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_is_502(mocked, status):
    with pytest.raises(UpstreamError, match=f"HTTP {status}") as caught:
        fail(mocked, status=status, json={"error": {"message": "The server had an error"}})
    assert caught.value.status == 502


def test_upstream_5xx_with_html_body_is_502(mocked):
    with pytest.raises(UpstreamError, match="HTTP 503"):
        fail(mocked, status=503, body="<html>Service Unavailable</html>", content_type="text/html")


def test_a_key_inside_an_upstream_message_is_redacted(mocked):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=500, json={"error": {"message": f"boom with {KEY} and sk-other-secret-123456"}})
    assert KEY not in caught.value.message and "sk-other-secret" not in caught.value.message


def test_read_timeout_is_504(mocked):
    with pytest.raises(UpstreamTimeout) as caught:
        fail(mocked, body=requests.ReadTimeout("read timed out"))
    assert caught.value.status == 504


def test_connect_timeout_is_504(mocked):
    with pytest.raises(UpstreamTimeout):
        fail(mocked, body=requests.ConnectTimeout("connect timed out"))


def test_connection_reset_is_502(mocked):
    error = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(UpstreamError, match="connection reset") as caught:
        fail(mocked, body=error)
    assert caught.value.status == 502


def test_cut_off_answer_is_502(mocked):
    with pytest.raises(UpstreamError):
        fail(mocked, body=requests.exceptions.ChunkedEncodingError("incomplete read"))


def test_200_that_is_not_json_is_502(mocked):
    with pytest.raises(UpstreamError, match="not JSON"):
        fail(mocked, body="<html>gateway</html>", content_type="text/html")


@pytest.mark.parametrize("answer", [{"created": 1}, {"data": []}, {"data": [{"b64_json": "aGVsbG8="}]}, [1, 2]])
def test_200_without_a_usable_image_is_502(mocked, answer):
    with pytest.raises(UpstreamError):
        fail(mocked, json=answer)
