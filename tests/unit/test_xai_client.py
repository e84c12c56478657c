"""The xAI client: the bodies it sends to /images/generations and /images/edits, and how it reads answers."""
import pytest
from responses import matchers

from app.config import Settings
from app.core.errors import InvalidRequest, ModelNotFound, ProviderRejected, RateLimited, UpstreamError
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers.xai import XaiClient
from app.routing import Router
from tests.conftest import XAI_KEY
from tests.support.images import JPEG_BYTES, PNG_B64, PNG_BYTES, WEBP_B64, data_url
from tests.support.upstream_mock import sent

BASE = "https://api.x.test/v1"
GENERATIONS, EDITS = BASE + "/images/generations", BASE + "/images/edits"
MODEL = "grok-imagine-image"
TOOL = "tools[0].image_generation."


def make_client() -> XaiClient:
    settings = ProviderSettings(name="xai", api_key=XAI_KEY, base_url=BASE, timeout=30)
    return XaiClient(settings, Downloader(DownloadPolicy(1 << 20, 5, 2, True)), connect_timeout=2)


def request(model=MODEL, prompt="a red kite", **kwargs) -> ImageRequest:
    return ImageRequest(model, prompt, param_prefix=TOOL, prompt_param="messages[0].content", **kwargs)


def ok(n=1, **item):
    return {"data": [{"b64_json": PNG_B64, "mime_type": "image/png", "revised_prompt": "", **item} for _ in range(n)],
            "usage": {"cost_in_usd_ticks": 200000000}}


def test_generation_asks_for_base64_with_the_mapped_ratio_resolution_and_quality(mocked):
    expected = {"model": MODEL, "prompt": "a red kite", "response_format": "b64_json", "n": 3,
                "aspect_ratio": "16:9", "quality": "high", "user": "u-7"}
    mocked.post(GENERATIONS, json=ok(3), match=[matchers.json_params_matcher(expected, strict_match=True),
                                                 matchers.header_matcher({"Authorization": f"Bearer {XAI_KEY}"})])
    result = make_client().generate(request(n=3, user="u-7", params={"size": "1792x1024", "quality": "hd"}))
    assert [(image.b64, image.mime) for image in result.images] == [(PNG_B64, "image/png")] * 3
    assert result.dropped == [] and result.usage.extra == {"generated_images": 3}


@pytest.mark.parametrize("params, fields", [
    ({"size": "1024x1024"}, {"aspect_ratio": "1:1"}), ({"size": "1024x1536"}, {"aspect_ratio": "2:3"}),
    ({"size": "1080x2340"}, {"aspect_ratio": "9:19.5"}), ({"size": "4096x1024"}, {"aspect_ratio": "20:9"}), ({"size": "2000x1000"}, {"aspect_ratio": "2:1"}),
    ({"size": "1K"}, {"resolution": "1k"}), ({"size": "2K"}, {"resolution": "2k"}), ({"size": "auto"}, {}),
    ({"quality": "low"}, {"quality": "low"}), ({"quality": "standard"}, {"quality": "medium"}),
    ({"quality": "auto"}, {}),
])
def test_size_and_quality_mapping(mocked, params, fields):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request(params=params))
    body = sent(mocked.calls[0]).json
    assert {k: body[k] for k in ("aspect_ratio", "resolution", "quality") if k in body} == fields
    assert result.dropped == []


def test_a_4k_size_and_what_xai_lacks_are_dropped_never_sent(mocked):
    mocked.post(GENERATIONS, json=ok())
    params = {"size": "4K", "background": "transparent", "output_format": "webp", "moderation": "low",
              "style": "vivid", "watermark": False, "partial_images": 1}
    result = make_client().generate(request(params=params))
    assert set(sent(mocked.calls[0]).json) == {"model", "prompt", "response_format"}
    assert result.dropped == ["background", "moderation", "output_format", "size", "style", "watermark"]


def test_one_source_image_is_an_edit_with_image_url(mocked):
    mocked.post(EDITS, json=ok())
    ref = ImageRef("data:...", "messages[0].content[1].image_url.url", JPEG_BYTES, "image/jpeg")
    make_client().generate(request(images=(ref,), params={"size": "1536x1024"}))
    body = sent(mocked.calls[0]).json
    assert body["image"] == {"url": data_url(JPEG_BYTES, "image/jpeg")} and "images" not in body
    assert body["aspect_ratio"] == "3:2"


def test_several_source_images_go_as_images_and_http_urls_pass_as_given(mocked):
    mocked.post(EDITS, json=ok())
    refs = (ImageRef("data:", "p1", PNG_BYTES, "image/png"), ImageRef("https://cdn.example.test/a.jpg", "p2"))
    make_client().generate(request(images=refs))
    assert sent(mocked.calls[0]).json["images"] == [{"url": data_url(PNG_BYTES)}, {"url": "https://cdn.example.test/a.jpg"}]
    assert len(mocked.calls) == 1, "a source URL is xAI's to fetch"


def test_four_source_images_or_a_mask_are_400_before_any_call(mocked):
    refs = tuple(ImageRef("data:", f"messages[0].content[{i}].image_url.url", PNG_BYTES, "image/png")
                 for i in range(4))
    with pytest.raises(InvalidRequest, match="at most 3") as caught:
        make_client().generate(request(images=refs))
    assert caught.value.param == refs[3].param
    mask = ImageRef("data:", TOOL + "input_image_mask.image_url", PNG_BYTES, "image/png")
    with pytest.raises(InvalidRequest, match="mask"):
        make_client().generate(request(images=refs[:1], mask=mask))
    assert len(mocked.calls) == 0


def test_grok_2_image_makes_one_size_from_text_only(mocked):
    mocked.post(GENERATIONS, json=ok())
    result = make_client().generate(request("grok-2-image-1212", params={"size": "1024x1024", "quality": "high"}))
    assert "aspect_ratio" not in sent(mocked.calls[0]).json and result.dropped == ["quality", "size"]
    with pytest.raises(InvalidRequest, match="text only"):
        make_client().generate(request("grok-2-image-1212", images=(ImageRef("data:", "p", PNG_BYTES, "image/png"),)))


def test_native_n_in_one_call_and_more_than_ten_split(mocked):
    mocked.post(GENERATIONS, json=ok(10))
    mocked.post(GENERATIONS, json=ok(2))
    result = generate(make_client(), request(n=12))
    assert sorted(sent(call).json.get("n", 1) for call in mocked.calls) == [2, 10] and len(result.images) == 12


def test_url_answers_are_downloaded_and_the_mime_is_sniffed(mocked):
    mocked.post(GENERATIONS, json={"data": [{"url": "http://localhost/a.png", "mime_type": "image/jpeg"}]})
    mocked.get("http://localhost/a.png", body=PNG_BYTES, content_type="image/png")
    mocked.post(GENERATIONS, json=ok(b64_json=WEBP_B64, mime_type="image/png", revised_prompt="a redder kite"))
    assert make_client().generate(request()).images[0].mime == "image/png"
    image = make_client().generate(request()).images[0]
    assert (image.mime, image.revised_prompt) == ("image/webp", "a redder kite")


def test_a_block_reason_without_a_picture_is_content_filter(mocked):
    mocked.post(GENERATIONS, json={"block_reason": "flagged by moderation", "data": []})
    result = make_client().generate(request())
    assert result.images == [] and result.finish_reason == "content_filter" and "flagged" in result.text


@pytest.mark.parametrize("answer", [{"data": []}, {"data": [{"revised_prompt": "x"}]}, []])
def test_an_answer_without_a_picture_is_502_no_image_generated(mocked, answer):
    mocked.post(GENERATIONS, json=answer)
    with pytest.raises(UpstreamError) as caught:
        make_client().generate(request())
    assert caught.value.status == 502


@pytest.mark.parametrize("status, body, error, expected", [
    (400, {"code": "Client specified an invalid argument", "error": "Invalid aspect_ratio"}, ProviderRejected,
     "Invalid aspect_ratio"),
    (429, {"error": "Too many requests"}, RateLimited, "rate limit"),
    (401, {"error": f"Incorrect API key provided: {XAI_KEY[:6]}***"}, UpstreamError, "XAI_API_KEY"),
    (503, {"error": "overloaded"}, UpstreamError, "HTTP 503"),
])
def test_failures_map_like_every_provider(mocked, status, body, error, expected):
    mocked.post(GENERATIONS, status=status, json=body)
    with pytest.raises(error, match=expected) as caught:
        make_client().generate(request())
    assert XAI_KEY[:6] not in caught.value.message


def test_grok_image_names_route_to_xai_only_when_its_key_is_set():
    downloader = Downloader(DownloadPolicy(1, 1, 1, False))
    route = Router(Settings.from_env({"XAI_API_KEY": XAI_KEY}), downloader).route("grok-imagine-image-quality")
    assert route.client.name == "xai" and route.client.settings.base_url == "https://api.x.ai/v1"
    with pytest.raises(ModelNotFound, match="XAI_API_KEY"):
        Router(Settings.from_env({}), downloader).route("grok-imagine-image")
