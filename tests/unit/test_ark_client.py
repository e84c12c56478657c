"""The Ark (Seedream / SeedEdit) client: the exact bodies it sends, every answer shape, every failure mode."""
import base64
import re

import pytest
import requests
from responses import matchers

from app import create_app
from app.config import Settings
from app.core.errors import InvalidRequest, ProviderRejected, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ConfigError, ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers.ark import ArkClient
from app.routing import Router
from tests.conftest import ARK_BASE, ARK_KEY
from tests.support.upstream_mock import sent
from tests.support.images import JPEG_B64, JPEG_BYTES, PNG_B64, PNG_BYTES

GENERATIONS = ARK_BASE + "/images/generations"
V40, V45, V50 = "doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128"
V30, EDIT = "doubao-seedream-3-0-t2i-250415", "doubao-seededit-3-0-i2i-250628"
TOOL = "tools[0].image_generation."
# what every Seedream 4.0+ call carries besides model and prompt
DEFAULTS = {"sequential_image_generation": "disabled", "stream": False, "response_format": "b64_json",
            "watermark": False}


def make_client(allow_private: bool = True, **options) -> ArkClient:
    settings = ProviderSettings(name="ark", api_key=ARK_KEY, base_url=ARK_BASE, timeout=30, options=options)
    downloader = Downloader(DownloadPolicy(max_bytes=1 << 20, timeout=5, connect_timeout=2,
                                           allow_private=allow_private))
    return ArkClient(settings, downloader, connect_timeout=2)


def ok(data=None, **extra):
    """A Seedream answer: one JPEG, 2048x2048, with Ark's usage."""
    return {"model": V40, "created": 1767225800, "data": data or [{"b64_json": JPEG_B64, "size": "2048x2048"}],
            "usage": {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}, **extra}


def request(model=V40, prompt="a whale teapot", **kwargs) -> ImageRequest:
    return ImageRequest(model, prompt, param_prefix=TOOL, prompt_param="messages[0].content", **kwargs)


def data_ref(index: int, data: bytes = PNG_BYTES, mime: str = "image/png", label: str = "image/png") -> ImageRef:
    return ImageRef(f"data:{label};base64,{base64.b64encode(data).decode()}",
                    f"messages[0].content[{index}].image_url.url", data, mime)


def http_ref(index: int, url: str = "https://cdn.example.test/robot.jpg") -> ImageRef:
    return ImageRef(url, f"messages[0].content[{index}].image_url.url")


def body_of(mocked, req: ImageRequest, client: ArkClient | None = None) -> dict:
    """Run one request against a canned answer and return the JSON body the client sent."""
    mocked.post(GENERATIONS, json=ok())
    (client or make_client()).generate(req)
    return sent(mocked.calls[-1]).json


# ----- the body sent -----

def test_seedream_4_text_to_image_sends_exactly_the_documented_body(mocked):
    expected = {"model": V40, "prompt": "a whale teapot", **DEFAULTS}
    mocked.post(GENERATIONS, json=ok(), match=[matchers.json_params_matcher(expected, strict_match=True),
                                                matchers.header_matcher({"Authorization": f"Bearer {ARK_KEY}"})])
    result = make_client().generate(request())
    assert result.dropped == [] and result.finish_reason == "stop"


@pytest.mark.parametrize("model, size, upstream", [
    (V40, "auto", None), (V40, "1K", "1K"), (V40, "2K", "2K"), (V40, "4K", "4K"),
    (V40, "512x512", "960x960"),            # under 1280x720 pixels: scaled up, ratio kept
    (V40, "256x256", "960x960"),
    (V40, "1024x576", "1280x720"),
    (V40, "300x500", "744x1240"),           # sides rounded up to multiples of 8
    (V40, "1024x1024", "1024x1024"), (V40, "1536x1024", "1536x1024"), (V40, "4096x4096", "4096x4096"),
    (V45, "auto", None), (V45, "2K", "2K"), (V45, "4K", "4K"),
    (V45, "1K", "2K"),                      # no 1K on 4.5: the smallest tier, ratio still from the prompt
    (V45, "512x512", "2048x2048"),          # under 2560x1440 pixels: recommended 2K pair of the nearest ratio
    (V45, "1024x1024", "2048x2048"), (V45, "1536x1024", "2496x1664"), (V45, "1024x1536", "1664x2496"),
    (V45, "1792x1024", "2560x1440"), (V45, "1024x1792", "1440x2560"), (V45, "1024x768", "2304x1728"),
    (V45, "2100x900", "3024x1296"),
    (V45, "2560x1440", "2560x1440"), (V45, "3000x3000", "3000x3000"),
    (V50, "512x512", "2048x2048"), (V50, "1K", "2K"),
    ("doubao-seedream-6-0-270101", "512x512", "960x960"),   # unknown newer models get the newest rules
    ("doubao-seedream-6-0-270101", "1K", "1K"), ("doubao-seedream-6-0-270101", "3000x2000", "3000x2000"),
    (V30, "auto", None), (V30, "1K", "1024x1024"), (V30, "2K", "2048x2048"),
    (V30, "256x256", "512x512"), (V30, "300x500", "512x856"), (V30, "1536x1024", "1536x1024"),
    (V30, "2048x512", "2048x512"),
])
def test_sizes_are_mapped_per_family(mocked, model, size, upstream):
    body = body_of(mocked, request(model, params={"size": size}))
    assert body.get("size") == upstream


@pytest.mark.parametrize("model, size, listed", [
    (V40, "5000x5000", "at most 4096x4096 pixels"),
    (V40, "4096x200", "between 1:16 and 16:1"),
    (V45, "8192x4096", "2K, 4K"),
    (V45, "100x2000", "between 1:16 and 16:1"),
    (V30, "4K", "auto, 1K, 2K or any WIDTHxHEIGHT with sides up to 2048"),
    (V30, "4096x1024", "sides up to 2048"),
    (V30, "256x2048", "shorter sides under 512 are scaled up"),   # scaling the short side up pushes the long one over
])
def test_sizes_a_model_cannot_make_are_400_listing_valid_sizes_without_calling_ark(mocked, model, size, listed):
    with pytest.raises(InvalidRequest, match=re.escape(listed)) as caught:
        make_client().generate(request(model, params={"size": size}))
    assert caught.value.param == TOOL + "size" and caught.value.code == "unsupported_size"
    assert size in caught.value.message and len(mocked.calls) == 0


@pytest.mark.parametrize("model, quality, upstream", [
    (V40, "low", "1K"), (V40, "standard", "1K"), (V40, "auto", "1K"), (V40, "medium", "2K"),
    (V40, "high", "4K"), (V40, "hd", "4K"),
    (V45, "low", "2K"), (V45, "standard", "2K"), (V45, "auto", "2K"), (V45, "medium", "2K"), (V45, "high", "4K"),
    (V50, "hd", "3K"), (V50, "low", "2K"),  # 5.0-lite makes 2K and 3K: 4K becomes its largest tier
    (V30, "low", "1024x1024"), (V30, "medium", "2048x2048"), (V30, "high", "2048x2048"),  # 3.0 has no 4K
])
def test_quality_without_a_size_becomes_a_size_tier(mocked, model, quality, upstream):
    for params in ({"quality": quality}, {"quality": quality, "size": "auto"}):
        mocked.post(GENERATIONS, json=ok())
        result = make_client().generate(request(model, params=params))
        assert sent(mocked.calls[-1]).json["size"] == upstream
        assert result.dropped == []


def test_quality_next_to_a_size_is_dropped_and_never_faked_with_guidance_scale(mocked):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(params={"quality": "high", "size": "1536x1024"}))
    body = sent(mocked.calls[0]).json
    assert body["size"] == "1536x1024" and "guidance_scale" not in body and "quality" not in body
    assert result.dropped == ["quality"]


def test_quality_auto_next_to_a_size_asks_for_nothing_and_is_not_named(mocked):
    mocked.post(GENERATIONS, json=ok())
    assert make_client().generate(request(params={"quality": "auto", "size": "2K"})).dropped == []


@pytest.mark.parametrize("tool, option, expected", [
    ({}, None, False),                       # upstream default is on: the gateway's default off is sent
    ({"watermark": True}, None, True),
    ({"watermark": False}, None, False),
    ({}, "true", True),                      # ARK_WATERMARK sets the default...
    ({"watermark": False}, "on", False),     # ...which the client's tool param overrides
    ({}, "0", False), ({}, "YES", True), ({}, "off", False), ({}, "", False),
])
def test_watermark_is_always_sent_explicitly(mocked, tool, option, expected):
    client = make_client(**({} if option is None else {"watermark": option}))
    body = body_of(mocked, request(params=tool), client)
    assert body["watermark"] is expected


def test_a_bad_ark_watermark_setting_stops_the_service_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="ARK_WATERMARK") as caught:
        make_client(watermark="sometimes")
    assert "sometimes" in str(caught.value)
    with pytest.raises(ConfigError, match="ARK_WATERMARK"):
        create_app({"ARK_API_KEY": ARK_KEY, "ARK_WATERMARK": "maybe", "GATEWAY_DATA_DIR": str(tmp_path)})


def test_ark_watermark_is_read_from_the_environment(mocked):
    client = Router(Settings.from_env({"ARK_API_KEY": ARK_KEY, "ARK_BASE_URL": ARK_BASE, "ARK_WATERMARK": "yes"}),
                    Downloader(DownloadPolicy(1, 1, 1, False))).route(V40).client
    assert body_of(mocked, request(), client)["watermark"] is True


def test_one_data_url_input_goes_as_a_string_relabelled_with_the_sniffed_type(mocked):
    jpeg_labelled_png = data_ref(1, JPEG_BYTES, "image/jpeg", label="image/PNG")
    body = body_of(mocked, request(images=(jpeg_labelled_png,)))
    assert body["image"] == "data:image/jpeg;base64," + base64.b64encode(JPEG_BYTES).decode()


def test_several_inputs_go_as_a_list_and_http_urls_pass_as_given(mocked):
    images = (data_ref(1), http_ref(2, "https://cdn.example.test/robot-side.jpg?sig=a%2Fb"))
    body = body_of(mocked, request(images=images))  # no GET registered: Ark fetches the URL, not us
    assert body["image"] == ["data:image/png;base64," + PNG_B64, "https://cdn.example.test/robot-side.jpg?sig=a%2Fb"]
    assert len(mocked.calls) == 1


def test_edit_body_is_the_generation_body_plus_image(mocked):
    expected = {"model": V45, "prompt": "make the sky purple", "image": "https://cdn.example.test/robot.jpg",
                "size": "2K", **DEFAULTS}
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(V45, "make the sky purple", params={"size": "2K"}, images=(http_ref(1),)))
    assert sent(mocked.calls[0]).json == expected
    assert len(result.images) == 1 and len(mocked.calls) == 1  # Ark fetches the input URL, not the gateway


@pytest.mark.parametrize("model, count", [(V40, 11), (V45, 15)])
def test_too_many_input_images_is_400_at_the_first_extra_one(mocked, model, count):
    images = tuple(http_ref(i) for i in range(1, count + 1))
    with pytest.raises(InvalidRequest, match="at most") as caught:
        make_client().generate(request(model, images=images))
    assert caught.value.param == images[count - 1].param


def test_seededit_sends_one_image_adaptive_size_and_drops_size_and_quality(mocked):
    expected = {"model": EDIT, "prompt": "make the sky purple", "image": "data:image/png;base64," + PNG_B64,
                "size": "adaptive", "response_format": "b64_json", "watermark": False}
    mocked.post(GENERATIONS, json=ok(), match=[matchers.json_params_matcher(expected, strict_match=True)])
    result = make_client().generate(request(EDIT, "make the sky purple", images=(data_ref(1),),
                                            params={"size": "1024x1024", "quality": "high"}))
    assert result.dropped == ["quality", "size"]


def test_seededit_with_size_auto_drops_nothing(mocked):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(EDIT, images=(data_ref(1),), params={"size": "auto", "quality": "auto"}))
    assert sent(mocked.calls[0]).json["size"] == "adaptive" and result.dropped == []


@pytest.mark.parametrize("count, param", [(0, "messages[0].content"), (2, "messages[0].content[2].image_url.url")])
def test_seededit_needs_exactly_one_input_image(mocked, count, param):
    images = tuple(data_ref(i) for i in range(1, count + 1))
    with pytest.raises(InvalidRequest, match="exactly one input image") as caught:
        make_client().generate(request(EDIT, images=images))
    assert caught.value.param == param and len(mocked.calls) == 0


def test_seedream_3_text_to_image_refuses_input_images(mocked):
    with pytest.raises(InvalidRequest, match="text only") as caught:
        make_client().generate(request(V30, images=(http_ref(1),)))
    assert caught.value.param == "messages[0].content[1].image_url.url" and len(mocked.calls) == 0


def test_seedream_3_gets_no_4_0_only_fields(mocked):
    expected = {"model": V30, "prompt": "a whale teapot", "size": "1024x1024", "response_format": "b64_json",
                "watermark": False}
    mocked.post(GENERATIONS, json=ok())
    make_client().generate(request(V30, params={"size": "1K"}))
    body = sent(mocked.calls[0]).json
    assert body == expected
    assert "sequential_image_generation" not in body and "stream" not in body


def test_a_mask_is_400_without_calling_ark(mocked):
    mask = ImageRef("data:", TOOL + "input_image_mask.image_url", PNG_BYTES, "image/png")
    with pytest.raises(InvalidRequest, match="mask") as caught:
        make_client().generate(request(images=(data_ref(1),), mask=mask))
    assert caught.value.param == TOOL + "input_image_mask.image_url" and len(mocked.calls) == 0


@pytest.mark.parametrize("model, fmt, sent_format", [(V50, "png", "png"), (V50, "jpeg", "jpeg"), (V50, "webp", None),
                                                     (V40, "png", None), (V45, "jpeg", None)])
def test_output_format_only_on_seedream_5(mocked, model, fmt, sent_format):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(model, params={"output_format": fmt}))
    assert sent(mocked.calls[0]).json.get("output_format") == sent_format
    assert result.dropped == ([] if sent_format else ["output_format"])


def test_openai_only_params_are_dropped_and_partial_images_ignored(mocked):
    params = {"background": "opaque", "moderation": "low", "output_compression": 80, "output_format": "jpeg",
              "input_fidelity": "high", "partial_images": 2, "watermark": True}
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(params=params, images=(data_ref(1),)))
    body = sent(mocked.calls[0]).json
    assert set(body) == {"model", "prompt", "image", *DEFAULTS}
    assert result.dropped == ["background", "input_fidelity", "moderation", "output_compression", "output_format"]


def test_n_is_fanned_out_into_single_image_calls_and_usage_summed(mocked):
    mocked.post(GENERATIONS, json=ok())
    client = make_client()
    assert client.max_n(V40) == 1
    result = generate(client, request(n=3))
    assert len(result.images) == 3 and len(mocked.calls) == 3
    assert all(sent(call).json == {"model": V40, "prompt": "a whale teapot", **DEFAULTS} for call in mocked.calls)
    assert result.usage.to_dict() == {"prompt_tokens": 0, "completion_tokens": 3 * 16384,
                                      "total_tokens": 3 * 16384, "generated_images": 3}


@pytest.mark.parametrize("model", ["doubao-seedream-4-0-250828", "seedream-4-5-251128", "seededit-3-0-i2i-250628",
                                   "doubao-seededit-3-0-i2i-250628"])
def test_ark_model_names_route_to_ark_and_known_models_are_listed(model):
    router = Router(Settings.from_env({"ARK_API_KEY": ARK_KEY}), Downloader(DownloadPolicy(1, 1, 1, False)))
    assert router.route(model).client.name == "ark"
    # 4.0, 4.5 and 5.0-lite were shut down on Volcengine on 2026-11-24 (app/providers/retired.py): not listed
    assert {m for m, provider in router.models() if provider == "ark"} == {"doubao-seedream-5-0-pro-260628", V30, EDIT}


# ----- the answer -----

def test_a_jpeg_answer_is_labelled_jpeg_and_usage_mapped(mocked):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request())
    assert result.images[0].mime == "image/jpeg" and result.images[0].b64 == JPEG_B64
    assert result.usage.to_dict() == {"prompt_tokens": 0, "completion_tokens": 16384, "total_tokens": 16384,
                                      "generated_images": 1}


def test_mime_comes_from_the_bytes_even_when_png_was_asked(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"b64_json": JPEG_B64}]))
    assert make_client().generate(request(V50, params={"output_format": "png"})).images[0].mime == "image/jpeg"
    mocked.post(GENERATIONS, json=ok(data=[{"b64_json": PNG_B64}]))
    assert make_client().generate(request(V50)).images[0].mime == "image/png"


def test_created_at_and_usage_with_only_generated_images_are_accepted(mocked):
    answer = {"model": V30, "created_at": 1767225800, "data": [{"b64_json": JPEG_B64, "size": "1024x1024"}],
              "usage": {"generated_images": 1}}
    mocked.post(GENERATIONS, json=answer)
    result = make_client().generate(request(V30))
    assert len(result.images) == 1
    assert result.usage.to_dict() == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                                      "generated_images": 1}


def test_a_url_answer_is_downloaded(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"url": "http://localhost/result.jpeg", "size": "2048x2048"}]))
    mocked.get("http://localhost/result.jpeg", body=JPEG_BYTES, content_type="image/jpeg")
    image = make_client().generate(request()).images[0]
    assert base64.b64decode(image.b64) == JPEG_BYTES and image.mime == "image/jpeg"


def test_a_url_answer_the_guard_refuses_is_502(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"url": "http://127.0.0.1:9/result.jpeg"}]))
    with pytest.raises(UpstreamError, match="could not fetch") as caught:
        make_client(allow_private=False).generate(request())
    assert caught.value.status == 502


def test_a_url_that_is_not_an_image_is_502(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"url": "http://localhost/result.jpeg"}]))
    mocked.get("http://localhost/result.jpeg", body=b"<html>expired</html>", content_type="text/html")
    with pytest.raises(UpstreamError, match="could not fetch"):
        make_client().generate(request())


def test_an_image_blocked_in_the_answer_is_a_content_filter_result(mocked):
    blocked = {"error": {"code": "OutputImageSensitiveContentDetected", "message": "The output image may contain "
                         "sensitive information."}}
    mocked.post(GENERATIONS, json=ok(data=[blocked], usage={"generated_images": 0, "output_tokens": 0,
                                                             "total_tokens": 0}))
    result = make_client().generate(request())
    assert result.images == [] and result.finish_reason == "content_filter"
    assert "OutputImageSensitiveContentDetected" in result.text and "sensitive information" in result.text


def test_survivors_of_a_partly_blocked_answer_are_kept(mocked):
    blocked = {"error": {"code": "OutputImageSensitiveContentDetected.PrivacyInformation", "message": "blocked"}}
    mocked.post(GENERATIONS, json=ok(data=[{"b64_json": JPEG_B64}, blocked]))
    result = make_client().generate(request())
    assert len(result.images) == 1 and result.finish_reason == "content_filter" and "blocked" in result.text


def test_a_per_image_failure_that_is_not_a_block_is_502(mocked):
    failed = {"error": {"code": "InternalServiceError", "message": "The service encountered an unexpected error."}}
    mocked.post(GENERATIONS, json=ok(data=[failed]))
    with pytest.raises(UpstreamError, match="unexpected error") as caught:
        make_client().generate(request())
    assert caught.value.status == 502 and caught.value.code == "InternalServiceError"


@pytest.mark.parametrize("error, cls, status, code", [
    ({"code": "InvalidParameter", "message": "The parameter `size` is not valid.", "param": "size",
      "type": "BadRequest"}, ProviderRejected, 400, "InvalidParameter"),
    ({"code": "InputTextSensitiveContentDetected", "message": "The request failed because the input text may "
      "contain sensitive information."}, ProviderRejected, 400, "InputTextSensitiveContentDetected"),
    ({"code": "RateLimitExceeded.EndpointRPMExceeded", "message": "slow down", "type": "TooManyRequests"},
     RateLimited, 429, "rate_limit_exceeded"),
    ({"code": "InternalServiceError", "message": "boom", "type": "InternalServiceError"}, UpstreamError, 502, None),
    ({"message": "something odd"}, ProviderRejected, 400, None),
])
def test_a_200_answer_carrying_an_error_is_that_error(mocked, error, cls, status, code):
    mocked.post(GENERATIONS, json={"error": error})
    with pytest.raises(cls) as caught:
        make_client().generate(request())
    assert caught.value.status == status and caught.value.code == code


@pytest.mark.parametrize("answer", [{"created": 1}, {"data": []}, {"data": [{"size": "2048x2048"}]}, {"data": None},
                                    [1, 2], "done"])
def test_an_answer_without_an_image_or_a_block_is_502_no_image_generated(mocked, answer):
    mocked.post(GENERATIONS, json=answer)
    with pytest.raises(UpstreamError) as caught:
        make_client().generate(request())
    assert caught.value.status == 502 and caught.value.code == "no_image_generated"


def test_b64_that_is_not_an_image_is_502(mocked):
    mocked.post(GENERATIONS, json=ok(data=[{"b64_json": base64.b64encode(b"hello world, not a picture").decode()}]))
    with pytest.raises(UpstreamError, match="not an image"):
        make_client().generate(request())


# ----- failure modes -----

def fail(mocked, **kwargs):
    mocked.post(GENERATIONS, **kwargs)
    make_client().generate(request())


def ark_error(code, message, param="", kind="BadRequest"):
    return {"error": {"code": code, "message": f"{message} Request id: 0217000000000000abc", "param": param,
                      "type": kind}}


@pytest.mark.parametrize("code", ["InputTextSensitiveContentDetected", "InputImageSensitiveContentDetected.Sexy",
                                  "OutputImageSensitiveContentDetected"])
def test_a_sensitive_content_rejection_is_the_callers_400_with_that_code(mocked, code):
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json=ark_error(code, "The request failed because it may contain sensitive content."))
    assert caught.value.status == 400 and caught.value.code == code
    assert caught.value.message.startswith("The request failed because it may contain sensitive content.")


def test_an_invalid_parameter_400_keeps_code_and_param(mocked):
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json=ark_error("InvalidParameter", "The parameter `size` is not valid.", "size"))
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "InvalidParameter", "size")


def test_the_type_word_stands_in_for_a_missing_code(mocked):
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=400, json={"error": {"message": "bad", "type": "BadRequest"}})
    assert caught.value.code == "BadRequest"


def test_a_sensitive_code_under_another_status_is_still_the_callers_400(mocked):
    with pytest.raises(ProviderRejected) as caught:
        fail(mocked, status=422, json=ark_error("OutputImageSensitiveContentDetected", "blocked"))
    assert caught.value.status == 400


def test_401_is_a_502_naming_ark_api_key_and_never_the_key(mocked):
    body = ark_error("AuthenticationError", f"The API key {ARK_KEY[:10]}...{ARK_KEY[-4:]} is invalid.",
                     kind="Unauthorized")
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=401, json=body)
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"
    assert "ARK_API_KEY" in caught.value.message
    assert ARK_KEY[:10] not in caught.value.message and ARK_KEY[-4:] not in caught.value.message


def test_403_is_a_502_with_the_reason(mocked):
    with pytest.raises(UpstreamError, match="has not activated") as caught:
        fail(mocked, status=403, json=ark_error("ServiceNotOpen", "Your account has not activated the model.",
                                                kind="Forbidden"))
    assert caught.value.status == 502 and "ARK_API_KEY" in caught.value.message


def test_429_passes_retry_after(mocked):
    with pytest.raises(RateLimited, match="RPM") as caught:
        fail(mocked, status=429, json=ark_error("RateLimitExceeded.EndpointRPMExceeded", "Endpoint RPM exceeded.",
                                                kind="TooManyRequests"), headers={"Retry-After": "12"})
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "12"


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_502(mocked, status):
    with pytest.raises(UpstreamError, match=f"HTTP {status}") as caught:
        fail(mocked, status=status, json=ark_error("InternalServiceError", "The service encountered an error.",
                                                   kind="InternalServiceError"))
    assert caught.value.status == 502


def test_5xx_with_an_html_body_is_502(mocked):
    with pytest.raises(UpstreamError, match="HTTP 502"):
        fail(mocked, status=502, body="<html>Bad Gateway</html>", content_type="text/html")


def test_a_key_inside_an_upstream_message_is_redacted(mocked):
    with pytest.raises(UpstreamError) as caught:
        fail(mocked, status=500, json=ark_error("InternalServiceError", f"boom with {ARK_KEY}"))
    assert ARK_KEY not in caught.value.message


def test_read_timeout_is_504(mocked):
    with pytest.raises(UpstreamTimeout) as caught:
        fail(mocked, body=requests.ReadTimeout("read timed out"))
    assert caught.value.status == 504


def test_connection_reset_is_502(mocked):
    with pytest.raises(UpstreamError, match="connection reset") as caught:
        fail(mocked, body=requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer")))
    assert caught.value.status == 502


def test_a_200_that_is_not_json_is_502(mocked):
    with pytest.raises(UpstreamError, match="not JSON"):
        fail(mocked, body="<html>gateway</html>", content_type="text/html")
